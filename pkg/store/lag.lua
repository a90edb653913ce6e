-- lag.lua: count the entries of a stream after a consumer group's
-- last-delivered id, up to a cap. That is the group's lag without the
-- group's entries-read counter, which Redis 7.0 does not persist: after a
-- restart from the AOF, XINFO GROUPS reports the lag as null, or as a
-- figure that no longer returns to 0 once everything is delivered.
--
-- KEYS[1]  stream ({metrics:p}:stream)
-- ARGV[1]  the group's last-delivered id ("0-0" before its first read)
-- ARGV[2]  cap, the most entries counted (>= 1): a read-only scan that
--          stays short however far behind the group is
--
-- Returns the number of entries after ARGV[1], at most cap.

local cap = tonumber(ARGV[2])
if not cap or cap < 1 or cap ~= math.floor(cap) then
  return redis.error_reply('ERR lag.lua: bad cap')
end
return #redis.call('XRANGE', KEYS[1], '(' .. ARGV[1], '+', 'COUNT', cap)
