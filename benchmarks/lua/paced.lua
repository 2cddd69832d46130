-- Constant-rate, open-loop realistic mix (benchmarks/load.py). One connection per wrk
-- thread, so a thread's Lua state sees that connection's requests strictly in order.
-- Request j of thread k is due at start + (k / N + j) * N / RATE: the N connections
-- interleave into one even stream of RATE req/s. delay() waits until a request is due;
-- a connection that is late (the previous answer came after the next one was due) sends
-- at once, and that request's latency is counted from when it was DUE, not when it was
-- sent (the coordinated-omission correction wrk2 makes), so a slow server cannot hide
-- its queue in the client. Mix (as the old locustfile): 85% /predict (X-Request-ID set,
-- so feedback can name it), 5% /predict_batch of 2-20 bookings, 10% /feedback with the
-- true rate of one of this connection's last 200 answered predictions.
-- Env: WRK_BODIES, WRK_ACTUALS (one per line), WRK_RATE, WRK_CONNECTIONS, WRK_WARMUP_S,
-- WRK_RUN (short run id), WRK_TOKEN (optional bearer token), WRK_OUT (samples file).
local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } shipway_timespec;
int clock_gettime(int clk, shipway_timespec *tp);
]]
local tsbuf = ffi.new("shipway_timespec")
local function now_us()
  ffi.C.clock_gettime(1, tsbuf) -- CLOCK_MONOTONIC: one clock for every thread
  return tonumber(tsbuf.tv_sec) * 1000000 + tonumber(tsbuf.tv_nsec) / 1000
end

local LATE_US = 2000 -- sent more than this after it was due: latency counted from due time

-- main state: number the threads, give them one common start
local threads, counter, start0 = {}, 0, nil
function setup(thread)
  start0 = start0 or (now_us() + 1000000)
  thread:set("tid", counter)
  thread:set("start_us", start0)
  counter = counter + 1
  table.insert(threads, thread)
end

-- thread state
local bodies, actuals, nb = {}, {}, 0
local nthreads, interval, warm_us, run, headers
local due, sent, kind, rid, actual = 0, 0, 0, nil, 0
local queue, qh, qt = {}, 1, 0
seq = 0
kinds, lats, stats, dues = {}, {}, {}, {}
ns = 0

function init(args)
  for line in io.lines(os.getenv("WRK_BODIES")) do
    nb = nb + 1
    bodies[nb] = line
  end
  local j = 0
  for line in io.lines(os.getenv("WRK_ACTUALS")) do
    j = j + 1
    actuals[j] = tonumber(line)
  end
  nthreads = tonumber(os.getenv("WRK_CONNECTIONS"))
  interval = nthreads * 1000000 / tonumber(os.getenv("WRK_RATE"))
  warm_us = tonumber(os.getenv("WRK_WARMUP_S")) * 1000000
  run = os.getenv("WRK_RUN")
  headers = { ["Content-Type"] = "application/json" }
  local token = os.getenv("WRK_TOKEN")
  if token and token ~= "" then headers["Authorization"] = "Bearer " .. token end
  math.randomseed(tid * 7919 + 17)
end

local function due_at(j)
  return start_us + (tid / nthreads + j) * interval
end

function delay()
  local wait = due_at(seq) - now_us()
  if wait > 0 then return math.ceil(wait / 1000) end
  return 0
end

function request()
  due, sent = due_at(seq), now_us()
  seq = seq + 1
  local r = math.random()
  if r >= 0.90 and qh <= qt then
    local a = queue[qh]
    queue[qh] = nil
    qh = qh + 1
    kind = 3
    return wrk.format("POST", "/feedback", headers,
      string.format('{"request_id": "%s", "actual": %.17g}', a[1], a[2]))
  elseif r >= 0.85 and r < 0.90 then
    local parts = {}
    for i = 1, math.random(2, 20) do parts[i] = bodies[math.random(nb)] end
    kind = 2
    return wrk.format("POST", "/predict_batch", headers, "[" .. table.concat(parts, ",") .. "]")
  end
  local b = math.random(nb)
  kind, actual = 1, actuals[b]
  rid = string.format("ld-%s-%d-%d", run, tid, seq)
  headers["X-Request-ID"] = rid
  local req = wrk.format("POST", "/predict", headers, bodies[b])
  headers["X-Request-ID"] = nil
  return req
end

function response(status, hdrs, body)
  local t = now_us()
  local from = sent
  if sent - due > LATE_US then from = due end
  if due >= start_us + warm_us then
    ns = ns + 1
    kinds[ns], lats[ns], stats[ns], dues[ns] = kind, math.floor(t - from), status,
        math.floor(due - start_us)
  end
  if kind == 1 and status == 200 then
    qt = qt + 1
    queue[qt] = { rid, actual }
    if qt - qh >= 200 then
      queue[qh] = nil
      qh = qh + 1
    end
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  local f = assert(io.open(os.getenv("WRK_OUT"), "w"))
  f:write(string.format("# duration_us=%d requests=%d connect=%d read=%d write=%d status=%d timeout=%d\n",
    summary.duration, summary.requests, e.connect, e.read, e.write, e.status, e.timeout))
  for _, th in ipairs(threads) do
    f:write(string.format("# thread=%d sent=%d\n", th:get("tid"), th:get("seq")))
    local k, l, s, d = th:get("kinds"), th:get("lats"), th:get("stats"), th:get("dues")
    for j = 1, th:get("ns") do
      f:write(string.format("%d %d %d %d\n", k[j], l[j], s[j], d[j]))
    end
  end
  f:close()
end
