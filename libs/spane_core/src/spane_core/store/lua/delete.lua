-- Delete a workflow: its triggers stop (webhook paths and schedules dropped), its versions stay readable for
-- running executions.
-- KEYS: 1 latest hash, 2 deleted set, 3 webhooks hash, 4 events stream, 5 hook paths hash, 6 schedules hash
-- ARGV: 1 workflow id, 2 event. Returns 1 deleted, 0 unknown or already deleted.
local id = ARGV[1]
if not redis.call('HGET', KEYS[1], id) or redis.call('SISMEMBER', KEYS[2], id) == 1 then
  return 0
end
local old = redis.call('HGET', KEYS[5], id)
for path in string.gmatch(old or '', '[^\n]+') do
  local kept = {}
  for owner in string.gmatch(redis.call('HGET', KEYS[3], path) or '', '[^\n]+') do
    if owner ~= id then table.insert(kept, owner) end
  end
  if #kept == 0 then redis.call('HDEL', KEYS[3], path) else redis.call('HSET', KEYS[3], path, table.concat(kept, '\n')) end
end
redis.call('HDEL', KEYS[5], id)
redis.call('HDEL', KEYS[6], id)
redis.call('SADD', KEYS[2], id)
redis.call('XADD', KEYS[4], '*', 'b', ARGV[2])
return 1
