-- GET /books/{id}/ for a random seeded id.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "common.lua")

request = function()
  return wrk.format("GET", "/books/" .. math.random(1, ROWS) .. "/")
end
