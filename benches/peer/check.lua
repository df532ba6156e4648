-- wrk script of the peer benchmark: POSTs body.json (path in BODY_FILE) and checks every
-- response (status 200 and the computed fields); done() prints one parseable line.
local f = assert(io.open(os.getenv("BODY_FILE"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a"):gsub("%s+$", "")
f:close()
wrk.headers["Content-Type"] = "application/json"

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  bad = 0
  first_bad = nil
end

-- JSON has no fixed key order or spacing: match each field on its own.
local want = {
  '"items_count"%s*:%s*3[^%d.]',
  '"items_sum"%s*:%s*46[^%d]',
  '"ok"%s*:%s*true',
  '"echo_id"%s*:%s*"ord%-10042"',
  '"customer"%s*:%s*"Ada Lovelace"',
}

function response(status, headers, body)
  local good = status == 200
  for _, p in ipairs(want) do
    if not good then break end
    good = body:find(p) ~= nil
  end
  if not good then
    bad = bad + 1
    if first_bad == nil then first_bad = status .. " " .. body:sub(1, 300) end
  end
end

function done(summary, latency, requests)
  local bad_total, example = 0, ""
  for _, t in ipairs(threads) do
    bad_total = bad_total + t:get("bad")
    example = example ~= "" and example or (t:get("first_bad") or "")
  end
  local e = summary.errors
  io.write(string.format(
    "RESULT requests=%d seconds=%.3f bad=%d socket_errors=%d p50_us=%d p99_us=%d\n",
    summary.requests, summary.duration / 1e6, bad_total,
    e.connect + e.read + e.write + e.timeout, latency:percentile(50), latency:percentile(99)))
  if example ~= "" then
    io.write("BAD " .. example:gsub("\n", " ") .. "\n")
  end
end
