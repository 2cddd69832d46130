-- Closed-loop POSTs cycling real request bodies (benchmarks/serving.py).
-- Env: WRK_BODIES (one JSON body per line), WRK_PATH (default /predict),
-- WRK_OUT (where done() writes the JSON summary benchmarks/wrk.py parses).
local reqs, n, i = {}, 0, 0

function init(args)
  local headers = { ["Content-Type"] = "application/json" }
  local path = os.getenv("WRK_PATH") or "/predict"
  for line in io.lines(os.getenv("WRK_BODIES")) do
    n = n + 1
    reqs[n] = wrk.format("POST", path, headers, line)
  end
end

function request()
  i = i % n + 1
  return reqs[i]
end

function done(summary, latency, requests)
  local e = summary.errors
  local f = assert(io.open(os.getenv("WRK_OUT"), "w"))
  f:write(string.format(
    '{"duration_us": %d, "requests": %d, "bytes": %d, "errors": {"connect": %d, "read": %d, '
      .. '"write": %d, "status": %d, "timeout": %d}, "latency_us": {"p50": %d, "p90": %d, '
      .. '"p99": %d, "p99.9": %d, "max": %d, "mean": %.1f}}\n',
    summary.duration, summary.requests, summary.bytes, e.connect, e.read, e.write, e.status,
    e.timeout, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max, latency.mean))
  f:close()
end
