-- wrk script: each request takes the next line of a file (a path with its query string),
-- threads take disjoint lines, and the answers are counted by status.
-- Usage: wrk ... -s bench/lua/pool.lua http://127.0.0.1:PORT -- FILE
local threads = {}
local counter = 1

function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

function init(args)
  paths = {}
  for line in io.lines(args[1]) do
    paths[#paths + 1] = line
  end
  nthreads = tonumber(args[2] or "1")
  s200, s3xx, s4xx, s409, s5xx, other = 0, 0, 0, 0, 0, 0
end

function request()
  local i = tid + 1 + (counter - 1) * nthreads
  counter = counter + 1
  if i > #paths then
    i = ((i - 1) % #paths) + 1
  end
  return wrk.format("GET", paths[i])
end

function response(status, headers, body)
  if status == 200 then s200 = s200 + 1
  elseif status == 409 then s409 = s409 + 1
  elseif status >= 300 and status < 400 then s3xx = s3xx + 1
  elseif status >= 400 and status < 500 then s4xx = s4xx + 1
  elseif status >= 500 then s5xx = s5xx + 1
  else other = other + 1 end
end

function done(summary, latency, requests)
  local t200, t3xx, t4xx, t409, t5xx = 0, 0, 0, 0, 0
  for _, thread in ipairs(threads) do
    t200 = t200 + thread:get("s200")
    t3xx = t3xx + thread:get("s3xx")
    t4xx = t4xx + thread:get("s4xx")
    t409 = t409 + thread:get("s409")
    t5xx = t5xx + thread:get("s5xx")
  end
  io.write(string.format("STATUSES 200=%d 3xx=%d 409=%d 4xx=%d 5xx=%d errors=%d\n",
    t200, t3xx, t409, t4xx, t5xx,
    summary.errors.connect + summary.errors.read + summary.errors.write +
    summary.errors.timeout))
  io.write(string.format("LATENCY p50=%.3f p99=%.3f\n",
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
