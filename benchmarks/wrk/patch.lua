-- PATCH /books/{id}/ with a new price, for a random seeded id (no If-Match).
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "common.lua")

request = function()
  return wrk.format("PATCH", "/books/" .. math.random(1, ROWS) .. "/", WRITE_HEADERS,
                    random_price_body())
end
