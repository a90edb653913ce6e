-- append.lua: for each of m requests, check the client's fixed-window rate
-- limit (its own max and window: an API key may have its own quota) and,
-- when allowed, append the request's metrics to the stream. The
-- api coalesces concurrent requests into one call of this script: Redis
-- then pays the script overhead once per batch instead of once per request,
-- and each request's result is still its own.
--
-- KEYS[1]        stream ({metrics:p}:stream)
-- KEYS[1+r]      rate-limit counter of request r's client ({metrics:p}:rl:<client>),
--                r = 1..m; the same client may appear more than once
-- ARGV[1]        w, the number of fields of a stream entry
-- ARGV[2..1+w]   the field names
-- then for each request r:
--   max_r        max requests per window (0 = not counted: counter untouched)
--   window_r     window in milliseconds (>= 1 when max_r > 0)
--   n_r          its metric count (>= 1)
--   n_r*w field values, metric after metric.
-- The names are sent once per call rather than with every metric: half the
-- arguments for Redis to parse.
--
-- Returns one array per request: {allowed, remaining, reset_ms, id_1..id_n}.
-- allowed is 1, or 0 when the client is over quota (nothing appended, no
-- ids). remaining and reset_ms are -1 when the request is not counted.
--
-- Every argument is checked before the first write: Redis does not roll a
-- script back when it fails half-way. The window starts at the client's
-- first request (INCR, then PEXPIRE when the count is 1); a counter found
-- without a TTL (PTTL < 0) is re-armed, so none can live forever.

local w = tonumber(ARGV[1])
local m = #KEYS - 1
if not w or w < 1 or #ARGV < 1 + w or m < 1 then
  return redis.error_reply('ERR append.lua: bad arguments')
end
-- xadd is XADD's argument list, reused for every entry: the names stay,
-- the value slots are refilled.
local xadd = {KEYS[1], '*'}
for f = 1, w do
  xadd[1 + 2 * f] = ARGV[1 + f]
end
local first = 2 + w
local maxes, windows, counts = {}, {}, {}
local pos = first
for r = 1, m do
  local max, window, n = tonumber(ARGV[pos]), tonumber(ARGV[pos + 1]), tonumber(ARGV[pos + 2])
  if not (max and window) or max < 0 or (max > 0 and window < 1) then
    return redis.error_reply('ERR append.lua: bad max or window for request ' .. r)
  end
  if not n or n < 1 then
    return redis.error_reply('ERR append.lua: bad metric count for request ' .. r)
  end
  maxes[r], windows[r], counts[r] = max, window, n
  pos = pos + 3 + n * w
end
if pos - 1 ~= #ARGV then
  return redis.error_reply('ERR append.lua: argument count does not match the metric counts')
end

local out = {}
pos = first
for r = 1, m do
  local max, window, n = maxes[r], windows[r], counts[r]
  local res
  local remaining, reset = -1, -1
  if max > 0 then
    local key = KEYS[1 + r]
    local count = redis.call('INCR', key)
    local pttl
    if count == 1 then
      redis.call('PEXPIRE', key, window)
      pttl = window
    else
      pttl = redis.call('PTTL', key)
      if pttl < 0 then
        redis.call('PEXPIRE', key, window)
        pttl = window
      end
    end
    if count > max then
      res = {0, 0, pttl}
    end
    remaining, reset = max - count, pttl
  end
  if not res then
    res = {1, remaining, reset}
    local i = pos + 3
    for e = 1, n do
      for f = 1, w do
        xadd[2 + 2 * f] = ARGV[i + f - 1]
      end
      res[3 + e] = redis.call('XADD', unpack(xadd))
      i = i + w
    end
  end
  out[r] = res
  pos = pos + 3 + n * w
end
return out
