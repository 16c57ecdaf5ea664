-- Shared by every scenario script: the run's context from the environment, per-thread
-- random seeds, and a done() that prints one JSON line the runner parses.
--
-- Environment (set by `python -m benchmarks`; set it yourself to run a script by hand):
--   BENCH_ROWS     ids 1..BENCH_ROWS exist (python main.py seed --count N --replace)
--   BENCH_TOKEN    an API key for the writes (python main.py token create NAME)
--   BENCH_AUTHORS  "|"-separated authors that exist (list_filtered)
--   BENCH_TERMS    "|"-separated search terms (search)
--   BENCH_CURSORS  "|"-separated cursor values taken from `next` links (cursor_deep)

local function split(text)
  local out = {}
  for item in string.gmatch(text or "", "[^|]+") do out[#out + 1] = item end
  return out
end

ROWS = tonumber(os.getenv("BENCH_ROWS") or "10000")
TOKEN = os.getenv("BENCH_TOKEN") or ""
AUTHORS = split(os.getenv("BENCH_AUTHORS"))
TERMS = split(os.getenv("BENCH_TERMS"))
CURSORS = split(os.getenv("BENCH_CURSORS"))
WRITE_HEADERS = {["Content-Type"] = "application/json", ["Authorization"] = "Token " .. TOKEN}

function urlencode(text)
  return (string.gsub(text, "[^%w%-%._~]", function(c)
    return string.format("%%%02X", string.byte(c))
  end))
end

function pick(list)
  return list[math.random(1, #list)]
end

function random_book()
  local n = math.random(0, 999999)
  return string.format(
    '{"title":"Benchmark Book %d","author":"Load Tester %d","published_date":"%d-%02d-%02d","price":"%d.%02d"}',
    n, n % 997, math.random(1950, 2024), math.random(1, 12), math.random(1, 28),
    math.random(1, 998), math.random(0, 99))
end

function random_price_body()
  return string.format('{"price":"%d.%02d"}', math.random(1, 998), math.random(0, 99))
end

-- Counters a script's response() may bump; done() sums them over the threads.
conflicts = 0
local threads = {}
local next_thread = 0

function setup(thread)
  next_thread = next_thread + 1
  thread:set("thread_index", next_thread)
  threads[#threads + 1] = thread
end

function init(args)
  math.randomseed(tonumber(os.getenv("BENCH_SEED") or "1") * 1000 + (thread_index or 0))
end

local function num(x)
  if x ~= x or x == math.huge or x == -math.huge then return "null" end
  return string.format("%.3f", x)
end

function done(summary, latency, requests)
  local total_conflicts = 0
  for _, t in ipairs(threads) do total_conflicts = total_conflicts + (t:get("conflicts") or 0) end
  local e = summary.errors
  local parts = {
    '"requests":' .. summary.requests,
    '"duration_us":' .. summary.duration,
    '"bytes":' .. summary.bytes,
    '"errors":{"connect":' .. e.connect .. ',"read":' .. e.read .. ',"write":' .. e.write
      .. ',"status":' .. e.status .. ',"timeout":' .. e.timeout .. '}',
    '"conflicts":' .. total_conflicts,
    '"latency_us":{"min":' .. num(latency.min) .. ',"mean":' .. num(latency.mean)
      .. ',"stdev":' .. num(latency.stdev) .. ',"max":' .. num(latency.max)
      .. ',"p50":' .. num(latency:percentile(50)) .. ',"p90":' .. num(latency:percentile(90))
      .. ',"p99":' .. num(latency:percentile(99)) .. ',"p99.9":' .. num(latency:percentile(99.9))
      .. '}',
  }
  io.write("BENCHJSON {" .. table.concat(parts, ",") .. "}\n")
end
