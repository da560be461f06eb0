-- wrk script of bench/run.sh. Run with one thread (-t1). Environment:
--   BENCH_PATH         request path (default /)
--   BENCH_HEADER_FILE  a file holding one "Authorization: Bearer TOKEN" line,
--                      sent on every request (the repeated token)
--   BENCH_TOKENS_FILE  a file of tokens, one per line: each request carries
--                      the next one, so each token is used once (first-seen);
--   BENCH_TOKENS_FROM  skip this many lines first (default 0)
-- The tokens never appear in wrk's output. done() prints one line:
--   RESULT requests=N duration_us=N rps=F p50_us=N p99_us=N non2xx=N errors=N tokens_read=N exhausted=0|1
-- exhausted=1 means the token file ran out before the end of the run: the
-- first-seen figures are then wrong (mint more tokens or shorten -d).

local path = os.getenv("BENCH_PATH") or "/"
local fixed = nil
local tokens = nil
tokens_read = 0
exhausted = 0

local threads = {}

function setup(thread)
   table.insert(threads, thread)
   if #threads > 1 then
      error("bench.lua: run wrk with one thread (-t1): the token file is read by one thread")
   end
end

function init(args)
   local hf = os.getenv("BENCH_HEADER_FILE")
   if hf and hf ~= "" then
      local f = assert(io.open(hf, "r"), "bench.lua: cannot open BENCH_HEADER_FILE")
      local line = f:read("*l")
      f:close()
      local name, value = line:match("^([^:]+):%s*(.-)%s*$")
      assert(name, "bench.lua: BENCH_HEADER_FILE must hold one 'Name: value' line")
      fixed = wrk.format("GET", path, { [name] = value })
   end
   local tf = os.getenv("BENCH_TOKENS_FILE")
   if tf and tf ~= "" then
      tokens = assert(io.open(tf, "r"), "bench.lua: cannot open BENCH_TOKENS_FILE")
      for _ = 1, tonumber(os.getenv("BENCH_TOKENS_FROM") or "0") do
         tokens:read("*l")
      end
   end
   if not fixed and not tokens then
      fixed = wrk.format("GET", path)
   end
end

function request()
   if tokens then
      local t = tokens:read("*l")
      if t then
         tokens_read = tokens_read + 1
         return wrk.format("GET", path, { ["Authorization"] = "Bearer " .. t })
      end
      -- Out of tokens: stop this thread rather than reuse one.
      exhausted = 1
      wrk.thread:stop()
      return wrk.format("GET", "/healthz")
   end
   return fixed
end

function done(summary, latency, requests)
   local t = threads[1]
   local secs = summary.duration / 1e6
   local non2xx = summary.errors.status
   local errs = summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout
   io.write(string.format(
      "RESULT requests=%d duration_us=%d rps=%.1f p50_us=%d p99_us=%d non2xx=%d errors=%d tokens_read=%d exhausted=%d\n",
      summary.requests, summary.duration, summary.requests / secs,
      latency:percentile(50), latency:percentile(99), non2xx, errs,
      t:get("tokens_read") or 0, t:get("exhausted") or 0))
end
