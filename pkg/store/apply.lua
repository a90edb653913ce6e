-- apply.lua: acknowledge a batch of stream entries and fold every entry that
-- THIS call acknowledged into its type's summary hash, its type's per-minute
-- bucket (by event time) and the known-types set. XACK returns 1 only for the
-- first acknowledgement of an entry, so a redelivered or concurrently claimed
-- entry is folded exactly once, whichever replica gets there first: summary,
-- bucket and types move together or not at all.
--
-- KEYS[1]          the stream, e.g. {metrics:0}:stream
-- KEYS[2]          the known-types sorted set, e.g. {metrics:0}:types
-- KEYS[3]          the admitted-types set, e.g. {metrics:0}:admitted (append.lua
--                  counts MAX_TYPES on it; every folded type is added)
-- KEYS[4..3+ns]    every distinct summary hash of the batch, e.g. {metrics:0}:summary:cpu
-- KEYS[4+ns..]     every distinct bucket hash of the batch (nb of them),
--                  e.g. {metrics:0}:bucket:cpu:492000 (type, Unix hour)
-- ARGV[1]          consumer group
-- ARGV[2..7]       summary field names: count, sum, min, max, first ts, last ts
--                  (passed in so the names live only in Go, pkg/summary)
-- ARGV[8]          bucket retention in seconds: a bucket hash expires at the
--                  end of its hour + this (EXPIREAT)
-- ARGV[9]          nb, the number of bucket hashes in KEYS
-- ARGV[10]         n, the number of entries
-- ARGV[11..10+ns]  the metric type of each summary key, in KEYS order
--                  (the member written to the types set)
-- next nb          the Unix hour of each bucket key, in KEYS order
-- next n × 5       entry id, index of its summary in KEYS, index of its
--                  bucket in KEYS or 0 (not bucketed: outside the retention,
--                  decided by the caller), value (finite number), ts (integer
--                  Unix microseconds, 0..2^53)
--
-- Bucket fields are minute offsets "0".."59", each "<count> <sum> <min> <max>"
-- (pkg/bucket). The types set's score is the type's latest event time in
-- Unix microseconds, raised with ZADD GT (never lowered).
--
-- Returns {applied, duplicates, rejected}: entries folded, entries skipped
-- because their XACK returned 0 (already acknowledged), and the entries
-- this call would not fold, as a flat list of {index (1-based, in ARGV
-- order), class, reason} triples. They are left pending, unacknowledged,
-- for the caller to dead-letter (deadletter.lua acknowledges and moves
-- them in one step). Classes:
--   corrupt     the entry's summary hash, or its bucket minute, does not
--               hold numbers (or holds inf/nan): folding into it would
--               write garbage, and reads of that type answer "corrupt"
--               until an operator repairs or deletes the hash;
--   non_finite  folding the entry would make its summary's or its
--               minute's sum overflow to inf (only an entry written past
--               the api's INGEST_MAX_ABS_VALUE can; min and max of finite
--               values stay finite).
-- Every other entry of the batch, of that type too, is folded as usual:
-- one bad hash or one huge value never stops the rest.
--
-- Redis does not roll back a script that fails half-way, so every argument,
-- every existing summary and every bucket minute the batch may touch is
-- read and checked BEFORE the first write: on bad arguments the script
-- returns an error and has acknowledged and folded nothing.

local function fail(msg)
  return redis.error_reply('ERR apply: ' .. msg)
end

local group = ARGV[1]
local F_COUNT, F_SUM, F_MIN, F_MAX, F_FIRST, F_LAST = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7]
local retention = tonumber(ARGV[8])
local nb = tonumber(ARGV[9])
local n = tonumber(ARGV[10])
if not group or group == '' then return fail('empty group') end
if not F_LAST then return fail('missing summary field names') end
if not retention or retention < 0 or retention ~= math.floor(retention) then return fail('bad retention') end
if not nb or nb < 0 or nb ~= math.floor(nb) then return fail('bad bucket count') end
if not n or n < 0 or n ~= math.floor(n) then return fail('bad entry count') end
local ns = #KEYS - 3 - nb
if ns < 0 then return fail('bad key count') end
local base = 10 + ns + nb
if #ARGV ~= base + 5 * n then return fail('expected ' .. (base + 5 * n) .. ' args, got ' .. #ARGV) end

local S_FIRST, S_LAST = 4, 3 + ns
local B_FIRST = 4 + ns
local HOUR, MINUTE = 3600000000, 60000000
local types = {}
for k = S_FIRST, S_LAST do
  types[k] = ARGV[11 + (k - S_FIRST)]
  if types[k] == '' then return fail('empty type') end
end
local hours = {}
for k = B_FIRST, #KEYS do
  local h = tonumber(ARGV[11 + ns + (k - B_FIRST)])
  if not h or h < 0 or h ~= math.floor(h) then return fail('bad hour of ' .. KEYS[k]) end
  hours[k] = h
end

local MAX_TS = 9007199254740992 -- 2^53: larger integers are not exact in a Lua number
local ids, sidx, bidx, mins, vals, tss = {}, {}, {}, {}, {}, {}
local want = {} -- bucket index -> {minute -> true}: the fields to read first
for i = 1, n do
  local b = base + (i - 1) * 5
  local id, k, bk, v, ts = ARGV[b + 1], tonumber(ARGV[b + 2]), tonumber(ARGV[b + 3]), tonumber(ARGV[b + 4]), tonumber(ARGV[b + 5])
  if not string.match(id, '^%d+%-%d+$') then return fail('entry ' .. i .. ': bad id') end
  if not k or k ~= math.floor(k) or k < S_FIRST or k > S_LAST then return fail('entry ' .. i .. ': bad key index') end
  -- v ~= v is NaN; strtod also accepts "inf".
  if not v or v ~= v or v == math.huge or v == -math.huge then return fail('entry ' .. i .. ': value not finite') end
  if not ts or ts ~= math.floor(ts) or ts < 0 or ts > MAX_TS then return fail('entry ' .. i .. ': bad ts') end
  if not bk or bk ~= math.floor(bk) or (bk ~= 0 and (bk < B_FIRST or bk > #KEYS)) then
    return fail('entry ' .. i .. ': bad bucket index')
  end
  local m = 0
  if bk ~= 0 then
    local off = ts - hours[bk] * HOUR
    if off < 0 or off >= HOUR then return fail('entry ' .. i .. ': ts outside the hour of ' .. KEYS[bk]) end
    m = math.floor(off / MINUTE)
    local w = want[bk]
    if not w then w = {}; want[bk] = w end
    w[m] = true
  end
  ids[i], sidx[i], bidx[i], mins[i], vals[i], tss[i] = id, k, bk, m, v, ts
end

-- Read every summary and every bucket minute of the batch before writing
-- anything. A hash that does not hold finite numbers is not an error of
-- the batch: the entries that would fold into it are rejected below, the
-- rest of the batch goes on.
local function finite(x) return x and x == x and x ~= math.huge and x ~= -math.huge end
local cur, bad = {}, {} -- summary index -> its fold / why it is corrupt
for k = S_FIRST, S_LAST do
  local h = redis.call('HMGET', KEYS[k], F_COUNT, F_SUM, F_MIN, F_MAX, F_FIRST, F_LAST)
  if h[1] then
    local s = { tonumber(h[1]), tonumber(h[2]), tonumber(h[3]), tonumber(h[4]), tonumber(h[5]), tonumber(h[6]) }
    for j = 1, 6 do
      if not finite(s[j]) then
        bad[k] = 'summary ' .. KEYS[k] .. ' is corrupt: field ' .. ARGV[1 + j] .. ' is ' .. (h[j] and ('"' .. string.sub(h[j], 1, 40) .. '"') or 'missing')
        break
      end
    end
    if not bad[k] then cur[k] = s end
  end
end
local bcur, bbad = {}, {} -- bucket index -> {minute -> {count, sum, min, max}} / {minute -> why}
for bk, w in pairs(want) do
  local fields = {}
  for m in pairs(w) do fields[#fields + 1] = tostring(m) end
  local vs = redis.call('HMGET', KEYS[bk], unpack(fields))
  local cells, sick = {}, {}
  for j = 1, #fields do
    local raw = vs[j]
    if raw then
      local c, s, lo, hi = string.match(raw, '^(%S+) (%S+) (%S+) (%S+)$')
      c, s, lo, hi = tonumber(c), tonumber(s), tonumber(lo), tonumber(hi)
      if not (finite(c) and finite(s) and finite(lo) and finite(hi)) then
        sick[tonumber(fields[j])] = 'bucket ' .. KEYS[bk] .. ' minute ' .. fields[j] .. ' is corrupt'
      else
        cells[tonumber(fields[j])] = { c, s, lo, hi }
      end
    end
  end
  bcur[bk], bbad[bk] = cells, sick
end

-- First write: acknowledge, and fold only what this XACK acknowledged.
-- acc and bacc start from what Redis holds, so the finiteness check of an
-- entry sees the sum it would really produce. An entry that cannot be
-- folded is decided on before its XACK, so it stays pending.
local applied, dups = 0, 0
local acc, bacc = {}, {}
local rejected = {}
local function reject(i, class, reason)
  rejected[#rejected + 1] = i
  rejected[#rejected + 1] = class
  rejected[#rejected + 1] = reason
end
for i = 1, n do
  local k, v, ts, bk, m = sidx[i], vals[i], tss[i], bidx[i], mins[i]
  local a = acc[k]
  local c
  if bk ~= 0 then
    local cells = bacc[bk]
    c = cells and cells[m]
    if not c then c = bcur[bk][m] end
  end
  if bad[k] then
    reject(i, 'corrupt', bad[k])
  elseif bk ~= 0 and bbad[bk][m] then
    reject(i, 'corrupt', bbad[bk][m])
  elseif not finite(((a or cur[k]) and (a or cur[k])[2] or 0) + v) then
    reject(i, 'non_finite', 'the sum of ' .. types[k] .. ' would overflow: value ' .. ARGV[base + (i - 1) * 5 + 4])
  elseif c and not finite(c[2] + v) then
    reject(i, 'non_finite', 'the sum of minute ' .. m .. ' of ' .. KEYS[bk] .. ' would overflow: value ' .. ARGV[base + (i - 1) * 5 + 4])
  elseif redis.call('XACK', KEYS[1], group, ids[i]) == 1 then
    applied = applied + 1
    -- The batch's fold of this summary starts from a copy of the stored
    -- one (or from this entry), then folds every entry into it.
    local s = cur[k]
    if not a and s then
      a = { s[1], s[2], s[3], s[4], s[5], s[6] }
      acc[k] = a
    end
    if not a then
      a = { 1, v, v, v, ts, ts }
      acc[k] = a
    else
      a[1] = a[1] + 1
      a[2] = a[2] + v
      if v < a[3] then a[3] = v end
      if v > a[4] then a[4] = v end
      if ts < a[5] then a[5] = ts end
      if ts > a[6] then a[6] = ts end
    end
    if bk ~= 0 then
      local cells = bacc[bk]
      if not cells then cells = {}; bacc[bk] = cells end
      local cell = cells[m]
      if not cell then
        local p = bcur[bk][m]
        if p then
          cell = { p[1] + 1, p[2] + v, math.min(p[3], v), math.max(p[4], v) }
        else
          cell = { 1, v, v, v }
        end
        cells[m] = cell
      else
        cell[1] = cell[1] + 1
        cell[2] = cell[2] + v
        if v < cell[3] then cell[3] = v end
        if v > cell[4] then cell[4] = v end
      end
    end
  else
    dups = dups + 1
  end
end

-- One HSET per summary; floats keep full precision (%.17g), count and
-- timestamps stay integers. The types set gets one ZADD for the batch, the
-- admitted set one SADD.
local zargs, names = {}, {}
for k, a in pairs(acc) do
  redis.call('HSET', KEYS[k],
    F_COUNT, string.format('%d', a[1]),
    F_SUM, string.format('%.17g', a[2]),
    F_MIN, string.format('%.17g', a[3]),
    F_MAX, string.format('%.17g', a[4]),
    F_FIRST, string.format('%d', a[5]),
    F_LAST, string.format('%d', a[6]))
  -- The batch's latest event time of this type; GT keeps the larger of it
  -- and what the set holds, so an old entry never lowers last-seen.
  zargs[#zargs + 1] = string.format('%d', a[6])
  zargs[#zargs + 1] = types[k]
  names[#names + 1] = types[k]
end
-- In chunks: unpack is bounded by the Lua C stack (~8000 values), and a
-- batch may carry thousands of types.
for from = 1, #zargs, 1000 do
  redis.call('ZADD', KEYS[2], 'GT', unpack(zargs, from, math.min(from + 999, #zargs)))
end
for from = 1, #names, 1000 do
  redis.call('SADD', KEYS[3], unpack(names, from, math.min(from + 999, #names)))
end

-- One HSET (every minute the batch touched) and one EXPIREAT per bucket
-- hash. The expiry is absolute (end of the hour + retention), so repeating
-- it is harmless and a late metric cannot extend an hour's life.
for bk, cells in pairs(bacc) do
  local hargs = {}
  for m, c in pairs(cells) do
    hargs[#hargs + 1] = tostring(m)
    hargs[#hargs + 1] = string.format('%d %.17g %.17g %.17g', c[1], c[2], c[3], c[4])
  end
  redis.call('HSET', KEYS[bk], unpack(hargs))
  redis.call('EXPIREAT', KEYS[bk], string.format('%d', (hours[bk] + 1) * 3600 + retention))
end

return { applied, dups, rejected }
