-- trim.lua: trim a stream below the oldest entry any consumer group still
-- needs, and only past the retention time. Computing the bound and trimming
-- run in one script, so no group can move backwards (or appear) in between.
--
-- KEYS[1]  the stream, e.g. {metrics:0}:stream
-- ARGV[1]  retention in milliseconds (entries younger than this are kept)
--
-- For each group the first entry it still needs is its oldest pending entry
-- or, with none pending, the entry after its last-delivered id. The MINID is
-- the smallest of those and of (Redis TIME - retention); entries with a
-- smaller id are removed (exact XTRIM MINID). Without any group nothing is
-- trimmed: nobody has processed anything yet.
--
-- Returns {trimmed, minid}: entries removed and the MINID used ("" when the
-- script did not trim).

local retention = tonumber(ARGV[1])
if not retention or retention < 0 then
  return redis.error_reply('ERR trim: bad retention')
end
if redis.call('EXISTS', KEYS[1]) == 0 then
  return { 0, '' }
end

local function parse(id)
  local ms, seq = string.match(id, '^(%d+)%-(%d+)$')
  return tonumber(ms), tonumber(seq)
end

local function less(ams, aseq, bms, bseq)
  return ams < bms or (ams == bms and aseq < bseq)
end

local groups = redis.call('XINFO', 'GROUPS', KEYS[1])
if #groups == 0 then
  return { 0, '' }
end

local t = redis.call('TIME')
local min_ms, min_seq = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) - retention, 0

for _, g in ipairs(groups) do
  local info = {}
  for i = 1, #g, 2 do
    info[g[i]] = g[i + 1]
  end
  local ms, seq
  if tonumber(info['pending']) > 0 then
    local p = redis.call('XPENDING', KEYS[1], info['name'])
    ms, seq = parse(p[2])
  else
    ms, seq = parse(info['last-delivered-id'])
    seq = seq + 1
  end
  if less(ms, seq, min_ms, min_seq) then
    min_ms, min_seq = ms, seq
  end
end

if min_ms <= 0 then
  return { 0, '' }
end
local minid = string.format('%d-%d', min_ms, min_seq)
local n = redis.call('XTRIM', KEYS[1], 'MINID', minid)
return { n, minid }
