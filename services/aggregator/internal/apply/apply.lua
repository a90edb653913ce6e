-- apply.lua: acknowledge a batch of stream entries and fold every entry that
-- THIS call acknowledged into its type's summary hash. XACK returns 1 only
-- for the first acknowledgement of an entry, so a redelivered or concurrently
-- claimed entry is folded exactly once, whichever replica gets there first.
--
-- KEYS[1]     the stream, e.g. {metrics:0}:stream
-- KEYS[2..]   every distinct summary hash of the batch, e.g. {metrics:0}:summary:cpu
-- ARGV[1]     consumer group
-- ARGV[2..7]  summary field names: count, sum, min, max, first ts, last ts
--             (passed in so the names live only in Go, pkg/summary)
-- ARGV[8]     n, the number of entries
-- ARGV[9..]   n groups of 4: entry id, index of its summary in KEYS (2..#KEYS),
--             value (finite number), ts (integer Unix microseconds, 0..2^53)
--
-- Returns {applied, duplicates}: entries folded, and entries skipped because
-- their XACK returned 0 (already acknowledged).
--
-- Redis does not roll back a script that fails half-way, so every argument
-- and every existing summary is checked BEFORE the first write: on bad input
-- the script returns an error and has acknowledged and folded nothing.

local function fail(msg)
  return redis.error_reply('ERR apply: ' .. msg)
end

local group = ARGV[1]
local F_COUNT, F_SUM, F_MIN, F_MAX, F_FIRST, F_LAST = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7]
local n = tonumber(ARGV[8])
if not group or group == '' then return fail('empty group') end
if not F_LAST then return fail('missing summary field names') end
if not n or n < 0 or n ~= math.floor(n) then return fail('bad entry count') end
if #ARGV ~= 8 + 4 * n then return fail('expected ' .. (8 + 4 * n) .. ' args, got ' .. #ARGV) end

local MAX_TS = 9007199254740992 -- 2^53: larger integers are not exact in a Lua number
local ids, idx, vals, tss = {}, {}, {}, {}
for i = 1, n do
  local b = 8 + (i - 1) * 4
  local id, k, v, ts = ARGV[b + 1], tonumber(ARGV[b + 2]), tonumber(ARGV[b + 3]), tonumber(ARGV[b + 4])
  if not string.match(id, '^%d+%-%d+$') then return fail('entry ' .. i .. ': bad id') end
  if not k or k ~= math.floor(k) or k < 2 or k > #KEYS then return fail('entry ' .. i .. ': bad key index') end
  -- v ~= v is NaN; strtod also accepts "inf".
  if not v or v ~= v or v == math.huge or v == -math.huge then return fail('entry ' .. i .. ': value not finite') end
  if not ts or ts ~= math.floor(ts) or ts < 0 or ts > MAX_TS then return fail('entry ' .. i .. ': bad ts') end
  ids[i], idx[i], vals[i], tss[i] = id, k, v, ts
end

-- Read every summary of the batch before writing anything: a corrupt hash
-- must stop the batch here, not after its entries were acknowledged.
local cur = {}
for k = 2, #KEYS do
  local h = redis.call('HMGET', KEYS[k], F_COUNT, F_SUM, F_MIN, F_MAX, F_FIRST, F_LAST)
  if h[1] then
    local s = { tonumber(h[1]), tonumber(h[2]), tonumber(h[3]), tonumber(h[4]), tonumber(h[5]), tonumber(h[6]) }
    for j = 1, 6 do
      if not s[j] then return fail('summary ' .. KEYS[k] .. ' is corrupt') end
    end
    cur[k] = s
  end
end

-- First write: acknowledge, and fold only what this XACK acknowledged.
local applied, dups = 0, 0
local acc = {}
for i = 1, n do
  if redis.call('XACK', KEYS[1], group, ids[i]) == 1 then
    applied = applied + 1
    local k, v, ts = idx[i], vals[i], tss[i]
    local a = acc[k]
    if not a then
      acc[k] = { 1, v, v, v, ts, ts }
    else
      a[1] = a[1] + 1
      a[2] = a[2] + v
      if v < a[3] then a[3] = v end
      if v > a[4] then a[4] = v end
      if ts < a[5] then a[5] = ts end
      if ts > a[6] then a[6] = ts end
    end
  else
    dups = dups + 1
  end
end

-- One HSET per summary; floats keep full precision (%.17g), count and
-- timestamps stay integers.
for k, a in pairs(acc) do
  local s = cur[k]
  if s then
    a[1] = a[1] + s[1]
    a[2] = a[2] + s[2]
    if s[3] < a[3] then a[3] = s[3] end
    if s[4] > a[4] then a[4] = s[4] end
    if s[5] < a[5] then a[5] = s[5] end
    if s[6] > a[6] then a[6] = s[6] end
  end
  redis.call('HSET', KEYS[k],
    F_COUNT, string.format('%d', a[1]),
    F_SUM, string.format('%.17g', a[2]),
    F_MIN, string.format('%.17g', a[3]),
    F_MAX, string.format('%.17g', a[4]),
    F_FIRST, string.format('%d', a[5]),
    F_LAST, string.format('%d', a[6]))
end

return { applied, dups }
