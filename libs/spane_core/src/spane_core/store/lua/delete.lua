-- Delete a workflow: its triggers stop (webhook paths freed), its versions stay readable for running executions.
-- KEYS: 1 latest hash, 2 deleted set, 3 webhooks hash, 4 events stream, 5 hook paths hash
-- ARGV: 1 workflow id, 2 event. Returns 1 deleted, 0 unknown or already deleted.
local id = ARGV[1]
if not redis.call('HGET', KEYS[1], id) or redis.call('SISMEMBER', KEYS[2], id) == 1 then
  return 0
end
local old = redis.call('HGET', KEYS[5], id)
if old and old ~= '' then
  for path in string.gmatch(old, '[^\n]+') do
    if redis.call('HGET', KEYS[3], path) == id then redis.call('HDEL', KEYS[3], path) end
  end
end
redis.call('HDEL', KEYS[5], id)
redis.call('SADD', KEYS[2], id)
redis.call('XADD', KEYS[4], '*', 'b', ARGV[2])
return 1
