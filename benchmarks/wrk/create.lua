-- POST /books/ with one new book.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "common.lua")

request = function()
  return wrk.format("POST", "/books/", WRITE_HEADERS, random_book())
end
