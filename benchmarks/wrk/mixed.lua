-- 90% GET /books/{id}/, 10% PATCH with If-Match: the tag of a book an earlier read returned.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "common.lua")

-- Tags seen in responses, as a ring of (id, tag); a PATCH takes one out so no two of
-- this thread's writes send the same tag. Two connections can still race on one book:
-- the loser gets 412, counted as a conflict, not as an error.
local ring_ids, ring_tags, ring_size, ring_next, ring_count = {}, {}, 512, 1, 0
local patch_headers = {["Content-Type"] = "application/json",
                       ["Authorization"] = "Token " .. TOKEN}

request = function()
  if math.random() < 0.1 and ring_count > 0 then
    -- The newest tag: the least likely to have gone stale since.
    ring_next = ((ring_next - 2) % ring_size) + 1
    local slot = ring_next
    ring_count = ring_count - 1
    patch_headers["If-Match"] = ring_tags[slot]
    return wrk.format("PATCH", "/books/" .. ring_ids[slot] .. "/", patch_headers,
                      random_price_body())
  end
  return wrk.format("GET", "/books/" .. math.random(1, ROWS) .. "/")
end

response = function(status, headers, body)
  if status == 412 then conflicts = conflicts + 1 end
  local tag = headers["ETag"] or headers["etag"] or headers["Etag"]
  if tag then
    local id = string.match(tag, '^"(%d+)%-')
    if id then
      ring_ids[ring_next], ring_tags[ring_next] = id, tag
      ring_next = (ring_next % ring_size) + 1
      if ring_count < ring_size then ring_count = ring_count + 1 end
    end
  end
end
