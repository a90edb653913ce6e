-- append.lua: for each of m requests, check the client's fixed-window rate
-- limit and, when allowed, append the request's metrics to the stream. The
-- api coalesces concurrent requests into one call of this script: Redis
-- then pays the script overhead once per batch instead of once per request,
-- and each request's result is still its own.
--
-- KEYS[1]        stream ({metrics:p}:stream)
-- KEYS[1+r]      rate-limit counter of request r's client ({metrics:p}:rl:<client>),
--                r = 1..m; the same client may appear more than once
-- KEYS[1+m+r]    Idempotency-Key record of request r ({metrics:p}:idem:<hash>),
--                or KEYS[1] again (unused) when request r carries no key
-- KEYS[2+2m]     the partition's aggregated types ({metrics:p}:types, a sorted set)
-- KEYS[3+2m]     the partition's admitted types ({metrics:p}:admitted, a set)
-- ARGV[1]        w, the number of fields of a stream entry
-- ARGV[2..1+w]   the field names
-- then for each request r: its metric count n_r, its quota max_r (requests
-- per window; 0 = limiter off for it: its counter is untouched) and window_r
-- (milliseconds), followed by n_r*w field values, metric after metric. The
-- names are sent once per call rather than with every metric: half the
-- arguments for Redis to parse. Each request has its own quota (API keys
-- may carry their own).
-- then for each request r (after all of the above): fp_r, the hex SHA-256
-- of its body ('' = no Idempotency-Key), and ttl_r, its record's TTL in
-- milliseconds.
-- then the types block: max_types (>= 1), then for each request r: k_r, the
-- number of its distinct types, followed by those k_r types.
--
-- Returns one array per request: {allowed, count, pttl_ms, id_1..id_n}.
-- allowed is 1, or 0 when the client is over quota (nothing appended, no
-- ids). count is the client's request count in the window including this
-- one and pttl_ms the time until the window ends; both -1 when the limiter
-- is off for the request. The caller derives remaining and reset from them.
-- With an Idempotency-Key whose record exists, nothing is counted or
-- written and the reply is {2, -1, -1, ids} when the record's fingerprint
-- is fp_r (ids: the original ids, packed as the record keeps them, see
-- pack_ids), or {3, -1, -1} when it is another body's.
-- A request that would bring the partition's admitted types past
-- max_types answers {4, -1, -1, <the first type past the cap>}: nothing is
-- appended and no quota is used (the check runs before the request's
-- first write). The cap is counted on the admitted set, which this script
-- adds a request's new types to right after its XADDs, so requests racing
-- for the last free types (in this call or in the next) see each other
-- before the aggregator has folded anything. apply.lua adds every type it
-- folds too, so the admitted set holds the types set. When it holds fewer
-- members than the types set (it was lost, or predates this check) the
-- types set is copied into it first: the one write before the decision,
-- correct whatever the request's outcome.
--
-- Every argument is checked before the first write: Redis does not roll a
-- script back when it fails half-way. The window starts at the client's
-- first request (INCR, then PEXPIRE when the count is 1); a counter found
-- without a TTL (PTTL < 0) is re-armed, so none can live forever.

local w = tonumber(ARGV[1])
local m = (#KEYS - 3) / 2 -- KEYS: the stream, m counters, m records, the two types keys
if not w or w < 1 or #ARGV < 1 + w or m < 1 or m ~= math.floor(m) then
  return redis.error_reply('ERR append.lua: bad arguments')
end

-- xadd is XADD's argument list, reused for every entry: the names stay,
-- the value slots are refilled.
local xadd = {KEYS[1], '*'}
for f = 1, w do
  xadd[1 + 2 * f] = ARGV[1 + f]
end

local first = 2 + w
local counts, maxes, windows = {}, {}, {}
local pos = first
for r = 1, m do
  local n, max, window = tonumber(ARGV[pos]), tonumber(ARGV[pos + 1]), tonumber(ARGV[pos + 2])
  if not n or n < 1 or n ~= math.floor(n) then
    return redis.error_reply('ERR append.lua: bad metric count for request ' .. r)
  end
  if not (max and window) or max < 0 or max ~= math.floor(max) or (max > 0 and (window < 1 or window ~= math.floor(window))) then
    return redis.error_reply('ERR append.lua: bad quota for request ' .. r)
  end
  counts[r], maxes[r], windows[r] = n, max, window
  pos = pos + 3 + n * w
end

-- Idempotency-Key: arguments ------------------------------------------
local fps, ttls = {}, {}
for r = 1, m do
  local fp, ttl = ARGV[pos], tonumber(ARGV[pos + 1])
  if fp == nil or (fp ~= '' and (#fp ~= 64 or not ttl or ttl < 1 or ttl ~= math.floor(ttl))) then
    return redis.error_reply('ERR append.lua: bad idempotency arguments for request ' .. r)
  end
  fps[r], ttls[r] = fp, ttl
  pos = pos + 2
end
-- pack_ids keeps a request's ids compact: an id that follows the one
-- before it in the same millisecond (as XADD * ids of one script call do)
-- joins a run "+k", so a batch of 1000 costs a few bytes, not 16 KB.
local function pack_ids(res, n)
  local parts, run, pms, pseq = {}, 0, nil, nil
  for e = 1, n do
    local id = res[3 + e]
    local ms, seq = string.match(id, '^(%d+)-(%d+)$')
    seq = tonumber(seq)
    if pms and ms == pms and seq and pseq and seq < 2 ^ 53 and seq == pseq + 1 then
      run = run + 1
    else
      if run > 0 then parts[#parts + 1] = '+' .. run end
      parts[#parts + 1] = id
      run = 0
    end
    pms, pseq = ms, seq
  end
  if run > 0 then parts[#parts + 1] = '+' .. run end
  return table.concat(parts, ' ')
end
-- ---------------------------------------------------------------------

-- Types block: max_types, then each request's distinct types.
local T_TYPES, T_ADMITTED = KEYS[2 + 2 * m], KEYS[3 + 2 * m]
local maxTypes = tonumber(ARGV[pos])
if not maxTypes or maxTypes < 1 or maxTypes ~= math.floor(maxTypes) then
  return redis.error_reply('ERR append.lua: bad max_types')
end
local typesFrom, typesCount = {}, {}
local tpos = pos + 1
for r = 1, m do
  local k = tonumber(ARGV[tpos])
  if not k or k < 1 or k > counts[r] or k ~= math.floor(k) or tpos + k > #ARGV then
    return redis.error_reply('ERR append.lua: bad type count for request ' .. r)
  end
  typesFrom[r], typesCount[r] = tpos + 1, k
  tpos = tpos + 1 + k
end
if tpos - 1 ~= #ARGV then
  return redis.error_reply('ERR append.lua: argument count does not match the metric counts')
end

-- newTypes returns the types of request r the admitted set lacks, or nil
-- and the first type past max_types when they do not all fit.
local function newTypes(r)
  local from, k = typesFrom[r], typesCount[r]
  local fresh = {}
  local function collect()
    fresh = {}
    -- In chunks: unpack is bounded by the Lua C stack.
    for c = from, from + k - 1, 1000 do
      local last = math.min(c + 999, from + k - 1)
      local in_set = redis.call('SMISMEMBER', T_ADMITTED, unpack(ARGV, c, last))
      for j = 1, #in_set do
        if in_set[j] == 0 then fresh[#fresh + 1] = ARGV[c + j - 1] end
      end
    end
  end
  collect()
  if #fresh == 0 then return fresh end
  local have = redis.call('SCARD', T_ADMITTED)
  local known = redis.call('ZCARD', T_TYPES)
  if known > have then
    for c = 0, known - 1, 1000 do
      local names = redis.call('ZRANGE', T_TYPES, c, c + 999)
      if #names > 0 then redis.call('SADD', T_ADMITTED, unpack(names)) end
    end
    have = redis.call('SCARD', T_ADMITTED)
    collect()
    if #fresh == 0 then return fresh end
  end
  if have + #fresh > maxTypes then
    return nil, fresh[math.max(1, maxTypes - have + 1)]
  end
  return fresh
end

local out = {}
pos = first
for r = 1, m do
  -- Idempotency-Key: check. A record answers for the request, even one
  -- written earlier in this call (two requests with one key in a batch).
  local fp, rec = fps[r], nil
  if fp ~= '' then
    rec = redis.call('GET', KEYS[1 + m + r])
  end
  if rec then
    if string.sub(rec, 1, 64) == fp then
      out[r] = {2, -1, -1, string.sub(rec, 66)}
    else
      out[r] = {3, -1, -1}
    end
  else
  -- ---------------------------------------------------------------------
  local n, max, window = counts[r], maxes[r], windows[r]
  local count, pttl = -1, -1
  local allowed = true
  local fresh, refused = newTypes(r) -- MAX_TYPES, before the request's first write
  if refused then allowed = false end
  if max > 0 and not refused then
    local key = KEYS[1 + r]
    count = redis.call('INCR', key)
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
    allowed = count <= max
  end
  local res
  if allowed then
    res = {1, count, pttl}
    local i = pos + 3
    for e = 1, n do
      for f = 1, w do
        xadd[2 + 2 * f] = ARGV[i + f - 1]
      end
      res[3 + e] = redis.call('XADD', unpack(xadd))
      i = i + w
    end
    for c = 1, #fresh, 1000 do -- MAX_TYPES: admit the request's new types
      redis.call('SADD', T_ADMITTED, unpack(fresh, c, math.min(c + 999, #fresh)))
    end
  elseif refused then
    res = {4, -1, -1, refused}
  else
    res = {0, count, pttl}
  end
  out[r] = res
  -- Idempotency-Key: record, after the XADDs. Only a 201 is recorded: a
  -- request over its quota may come back with its key later.
  if fp ~= '' and res[1] == 1 then
    redis.call('SET', KEYS[1 + m + r], fp .. ' ' .. pack_ids(res, n), 'PX', ttls[r])
  end
  end
  -- ---------------------------------------------------------------------
  pos = pos + 3 + counts[r] * w
end
return out
