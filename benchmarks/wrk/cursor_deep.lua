-- GET /books/?limit=20&cursor=C with a cursor taken from a next link deep in the table.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "common.lua")

local paths = {}
for i, cursor in ipairs(CURSORS) do paths[i] = "/books/?limit=20&cursor=" .. cursor end
request = function()
  return wrk.format("GET", pick(paths))
end
