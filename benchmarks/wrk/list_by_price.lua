-- GET /books/?ordering=price&limit=20: the first page by price, with count.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "common.lua")

request = function()
  return wrk.format("GET", "/books/?ordering=price&limit=20")
end
