-- GET one of the paths in BENCH_PATHS ("|"-separated, already URL-encoded), at random:
-- the list-shape matrix (benchmarks/matrix.py), one shape per scenario.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "common.lua")

local paths = {}
for path in string.gmatch(os.getenv("BENCH_PATHS") or "", "[^|]+") do paths[#paths + 1] = path end
if #paths == 0 then paths[1] = "/books/?limit=20" end
request = function()
  return wrk.format("GET", pick(paths))
end
