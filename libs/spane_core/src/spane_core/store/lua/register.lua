-- Register a new version of a workflow definition, atomically with its webhook paths and its event.
-- KEYS: 1 defs hash, 2 latest hash, 3 digests hash, 4 deleted set, 5 webhooks hash, 6 events stream, 7 hook paths hash
-- ARGV: 1 workflow id, 2 expected latest version ("0" none), 3 digest, 4 canonical JSON, 5 event, 6 n, then n paths.
-- Returns {1, version} registered, {2, version} identical to the latest, {0, latest} conflict, {-1, path} taken.
local id = ARGV[1]
local latest = redis.call('HGET', KEYS[2], id) or '0'
local deleted = redis.call('SISMEMBER', KEYS[4], id) == 1
if latest ~= '0' and not deleted and redis.call('HGET', KEYS[3], id) == ARGV[3] then
  return {2, tonumber(latest)}
end
if latest ~= ARGV[2] then
  return {0, tonumber(latest)}
end
local n = tonumber(ARGV[6])
for p = 7, 6 + n do
  local owner = redis.call('HGET', KEYS[5], ARGV[p])
  if owner and owner ~= id then
    return {-1, ARGV[p]}
  end
end
local old = redis.call('HGET', KEYS[7], id)
if old and old ~= '' then
  for path in string.gmatch(old, '[^\n]+') do
    if redis.call('HGET', KEYS[5], path) == id then redis.call('HDEL', KEYS[5], path) end
  end
end
local paths = {}
for p = 7, 6 + n do
  redis.call('HSET', KEYS[5], ARGV[p], id)
  table.insert(paths, ARGV[p])
end
redis.call('HSET', KEYS[7], id, table.concat(paths, '\n'))
local version = tonumber(latest) + 1
redis.call('HSET', KEYS[1], id .. '@' .. version, ARGV[4])
redis.call('HSET', KEYS[2], id, version)
redis.call('HSET', KEYS[3], id, ARGV[3])
redis.call('SREM', KEYS[4], id)
redis.call('XADD', KEYS[6], '*', 'b', ARGV[5])
return {1, version}
