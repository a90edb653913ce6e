-- deadletter.lua: move entries that cannot be applied to the dead-letter
-- stream, each together with the acknowledgement of the original. The XADD
-- happens only when this call's XACK acknowledged the entry, so an entry is
-- either folded (apply.lua) or dead-lettered, once, never both.
--
-- KEYS[1]     the stream, e.g. {metrics:0}:stream
-- KEYS[2]     the dead-letter stream, e.g. {metrics:0}:dead
-- ARGV[1]     consumer group
-- ARGV[2]     cap of the dead-letter stream (XADD MAXLEN ~)
-- ARGV[3]     consumer name, recorded with each dead letter
-- ARGV[4]     n, the number of entries
-- ARGV[5..]   n groups: entry id, reason, m (number of original field and
--             value strings, even), then those m strings
--
-- Each dead letter has the fields dlq_source_id, dlq_reason, dlq_consumer,
-- followed by the entry's original fields unchanged.
--
-- Returns the number of entries dead-lettered; entries whose XACK returned 0
-- were already handled elsewhere and are skipped. Arguments are validated
-- before the first write; on bad input nothing is written.

local function fail(msg)
  return redis.error_reply('ERR deadletter: ' .. msg)
end

local group, cap, consumer, n = ARGV[1], tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4])
if not group or group == '' then return fail('empty group') end
if not cap or cap < 1 or cap ~= math.floor(cap) then return fail('bad cap') end
if not n or n < 0 or n ~= math.floor(n) then return fail('bad entry count') end

local entries = {}
local p = 5
for i = 1, n do
  local id, reason, m = ARGV[p], ARGV[p + 1], tonumber(ARGV[p + 2])
  if not id or not string.match(id, '^%d+%-%d+$') then return fail('entry ' .. i .. ': bad id') end
  if not reason or reason == '' then return fail('entry ' .. i .. ': empty reason') end
  if not m or m < 0 or m % 2 ~= 0 or p + 2 + m > #ARGV then return fail('entry ' .. i .. ': bad field count') end
  entries[i] = { id, reason, p + 3, m }
  p = p + 3 + m
end
if p ~= #ARGV + 1 then return fail('trailing args') end

local moved = 0
for i = 1, n do
  local e = entries[i]
  if redis.call('XACK', KEYS[1], group, e[1]) == 1 then
    local args = { 'XADD', KEYS[2], 'MAXLEN', '~', cap, '*',
      'dlq_source_id', e[1], 'dlq_reason', e[2], 'dlq_consumer', consumer }
    for j = e[3], e[3] + e[4] - 1 do
      args[#args + 1] = ARGV[j]
    end
    redis.call(unpack(args))
    moved = moved + 1
  end
end
return moved
