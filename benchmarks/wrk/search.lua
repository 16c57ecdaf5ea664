-- GET /books/?search=T for a random term: substring of title or author, with count.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "common.lua")

local paths = {}
for i, term in ipairs(TERMS) do paths[i] = "/books/?search=" .. urlencode(term) end
request = function()
  return wrk.format("GET", pick(paths))
end
