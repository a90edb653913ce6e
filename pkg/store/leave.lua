-- leave.lua: delete a consumer from its group only when it owns no pending
-- entry. XGROUP DELCONSUMER drops a consumer's pending entries with it, which
-- would strand them (nobody could claim them any more), so the check and the
-- delete run atomically here.
--
-- KEYS[1]  the stream, e.g. {metrics:0}:stream
-- ARGV[1]  consumer group
-- ARGV[2]  consumer name
--
-- Returns 1 when the consumer was deleted (or did not exist), 0 when it
-- still owns pending entries and was kept.

local owned = redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 1, ARGV[2])
if #owned > 0 then
  return 0
end
redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
return 1
