-- Register a new version of a workflow definition, atomically with its trigger indexes and its event.
-- KEYS: 1 defs hash, 2 latest hash, 3 digests hash, 4 deleted set, 5 webhooks hash, 6 events stream,
--       7 hook paths hash, 8 schedules hash
-- ARGV: 1 workflow id, 2 expected latest version ("0" none), 3 digest, 4 canonical JSON, 5 event,
--       6 "1" when the definition has schedule triggers, 7 n, then n webhook paths.
-- Returns {1, version} registered, {2, version} identical to the latest, {0, latest} conflict.
-- The webhooks hash maps a path to the newline-separated ids of the workflows listening on it (several may).
local id = ARGV[1]
local latest = redis.call('HGET', KEYS[2], id) or '0'
local deleted = redis.call('SISMEMBER', KEYS[4], id) == 1
if latest ~= '0' and not deleted and redis.call('HGET', KEYS[3], id) == ARGV[3] then
  return {2, tonumber(latest)}
end
if latest ~= ARGV[2] then
  return {0, tonumber(latest)}
end
local function without(list, path)
  local kept = {}
  for owner in string.gmatch(list or '', '[^\n]+') do
    if owner ~= id then table.insert(kept, owner) end
  end
  if #kept == 0 then redis.call('HDEL', KEYS[5], path) else redis.call('HSET', KEYS[5], path, table.concat(kept, '\n')) end
  return kept
end
local old = redis.call('HGET', KEYS[7], id)
for path in string.gmatch(old or '', '[^\n]+') do
  without(redis.call('HGET', KEYS[5], path), path)
end
local n = tonumber(ARGV[7])
local paths = {}
for p = 8, 7 + n do
  local owners = without(redis.call('HGET', KEYS[5], ARGV[p]), ARGV[p])
  table.insert(owners, id)
  redis.call('HSET', KEYS[5], ARGV[p], table.concat(owners, '\n'))
  table.insert(paths, ARGV[p])
end
redis.call('HSET', KEYS[7], id, table.concat(paths, '\n'))
local version = tonumber(latest) + 1
if ARGV[6] == '1' then redis.call('HSET', KEYS[8], id, version) else redis.call('HDEL', KEYS[8], id) end
redis.call('HSET', KEYS[1], id .. '@' .. version, ARGV[4])
redis.call('HSET', KEYS[2], id, version)
redis.call('HSET', KEYS[3], id, ARGV[3])
redis.call('SREM', KEYS[4], id)
redis.call('XADD', KEYS[6], '*', 'b', ARGV[5])
return {1, version}
