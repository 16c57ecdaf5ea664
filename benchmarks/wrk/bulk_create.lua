-- POST /books/ with an array of 100 new books (one body per thread, sent again and again).
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "common.lua")

local body
request = function()
  if body == nil then
    local items = {}
    for i = 1, 100 do items[i] = random_book() end
    body = "[" .. table.concat(items, ",") .. "]"
  end
  return wrk.format("POST", "/books/", WRITE_HEADERS, body)
end
