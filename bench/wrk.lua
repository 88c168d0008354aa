-- POST bodies for wrk: `wrk -s bench/wrk.lua URL -- BODIES_FILE [JWT|-]`.
-- BODIES_FILE holds one JSON body a line; each thread cycles through them from a random
-- start. `done` prints one line, `JSON {...}`, with the counts and latency percentiles
-- (microseconds) that bench/run.py reads.
local bodies = {}
local index = 0
local headers = { ["Content-Type"] = "application/json" }

function init(args)
  for line in io.lines(args[1]) do
    bodies[#bodies + 1] = line
  end
  if args[2] and args[2] ~= "-" then
    headers["Authorization"] = "Bearer " .. args[2]
  end
  math.randomseed(os.time() + math.floor(os.clock() * 1000000))
  index = math.random(#bodies) - 1
end

function request()
  index = index % #bodies + 1
  return wrk.format("POST", nil, headers, bodies[index])
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'JSON {"requests": %d, "duration_us": %d, "socket_errors": %d, "non2xx": %d, ' ..
    '"p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d}\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
