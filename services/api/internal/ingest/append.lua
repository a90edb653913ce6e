-- append.lua: check the client's fixed-window rate limit and append the
-- request's metrics to the stream, atomically, in one round trip.
--
-- KEYS[1]  rate-limit counter of the client ({metrics:p}:rl:<client>)
-- KEYS[2]  stream ({metrics:p}:stream)
-- ARGV[1]  max requests per window (0 = limiter off: KEYS[1] is not touched)
-- ARGV[2]  window in milliseconds
-- ARGV[3]  n, the number of metrics
-- ARGV[4]  w, the number of field arguments per metric (name, value pairs)
-- ARGV[5..] n*w field arguments, metric after metric
--
-- Returns {allowed, remaining, reset_ms, id_1, ..., id_n}; allowed is 1 or
-- 0 (then nothing was appended and no ids follow). remaining and reset_ms
-- are -1 when the limiter is off.
--
-- Every argument is checked before the first write: Redis does not roll a
-- script back when it fails half-way. The window starts at the client's
-- first request (INCR, then PEXPIRE when the count is 1); a key found
-- without a TTL (PTTL < 0) is re-armed, so no counter can live forever.

local max = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local n = tonumber(ARGV[3])
local w = tonumber(ARGV[4])
if not (max and window and n and w) or max < 0 or (max > 0 and window < 1) or n < 1 or w < 2 or #ARGV ~= 4 + n * w then
  return redis.error_reply('ERR append.lua: bad arguments')
end

local remaining, reset = -1, -1
if max > 0 then
  local count = redis.call('INCR', KEYS[1])
  local pttl
  if count == 1 then
    redis.call('PEXPIRE', KEYS[1], window)
    pttl = window
  else
    pttl = redis.call('PTTL', KEYS[1])
    if pttl < 0 then
      redis.call('PEXPIRE', KEYS[1], window)
      pttl = window
    end
  end
  if count > max then
    return {0, 0, pttl}
  end
  remaining, reset = max - count, pttl
end

local out = {1, remaining, reset}
local i = 5
for _ = 1, n do
  out[#out + 1] = redis.call('XADD', KEYS[2], '*', unpack(ARGV, i, i + w - 1))
  i = i + w
end
return out
