-- GET /books/?author=A for a random seeded author: exact match, with count.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "common.lua")

local paths = {}
for i, author in ipairs(AUTHORS) do paths[i] = "/books/?author=" .. urlencode(author) end
request = function()
  return wrk.format("GET", pick(paths))
end
