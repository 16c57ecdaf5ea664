-- GET /books/?limit=20: the first page, with count and a cursor next link.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "common.lua")

request = function()
  return wrk.format("GET", "/books/?limit=20")
end
