-- wrk script for bench/ingest.py: POST pre-signed delivery-status bodies.
--
-- Usage: wrk ... -s bench/wrk_signed.lua URL -- REQUESTS_FILE SLICES FIRST_SLICE
--
-- REQUESTS_FILE holds one "signature<TAB>body" line per request (written by
-- bench/payloads.py, since HMAC cannot be computed here). The file is cut into
-- SLICES interleaved slices; thread i of this wrk takes slice FIRST_SLICE + i
-- (lines s, s+SLICES, ...), so no two threads, nor two wrk processes started with
-- disjoint FIRST_SLICE ranges, send the same body. A thread that runs out of
-- lines starts over and counts the wrap.
--
-- done() prints one line "WRK_JSON {...}" that bench/ingest.py parses.

local threads = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  local path = args[1]
  local slices, slice = tonumber(args[2] or "1"), tonumber(args[3] or "0") + id
  sigs, bodies = {}, {}
  local line_no = 0
  for line in io.lines(path) do
    if line_no % slices == slice then
      local tab = line:find("\t", 1, true)
      sigs[#sigs + 1] = line:sub(1, tab - 1)
      bodies[#bodies + 1] = line:sub(tab + 1)
    end
    line_no = line_no + 1
  end
  assert(#bodies > 0, "no requests for slice " .. slice .. " in " .. path)
  next_index, generated, wraps = 1, 0, 0
  status_200, status_other = 0, 0
end

function request()
  local i = next_index
  next_index = i + 1
  if next_index > #bodies then
    next_index, wraps = 1, wraps + 1
  end
  generated = generated + 1
  return wrk.format("POST", nil, {
    ["Content-Type"] = "application/json",
    ["X-Signature"] = sigs[i],
  }, bodies[i])
end

function response(status, headers, body)
  if status == 200 then
    status_200 = status_200 + 1
  else
    status_other = status_other + 1
  end
end

function done(summary, latency, requests)
  local ok, other, gen, wrapped = 0, 0, 0, 0
  for _, thread in ipairs(threads) do
    ok = ok + thread:get("status_200")
    other = other + thread:get("status_other")
    gen = gen + thread:get("generated")
    wrapped = wrapped + thread:get("wraps")
  end
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"duration_us":%d,"requests":%d,"status_200":%d,"status_other":%d,'
      .. '"generated":%d,"wraps":%d,"connect_errors":%d,"read_errors":%d,'
      .. '"write_errors":%d,"timeouts":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,'
      .. '"max_us":%d}\n',
    summary.duration, summary.requests, ok, other, gen, wrapped,
    e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
