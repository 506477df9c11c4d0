-- Delete a consumer of a group only if it holds no pending entry, atomically: deleting a consumer drops its
-- pending entries from the group, and those would then never be delivered again.
-- KEYS: 1 stream. ARGV: 1 group, 2 consumer. Returns 1 when deleted, 0 when it holds entries (kept).
local pending = redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 1, ARGV[2])
if #pending > 0 then
  return 0
end
redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
return 1
