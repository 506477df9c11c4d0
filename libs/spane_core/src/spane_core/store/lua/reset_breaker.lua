-- Close a circuit breaker by hand.
-- KEYS: 1 stats, 2 breakers set, 3 breaker hash, 4 breaker waiting zset. ARGV: 1 breaker name.
-- Returns false when there is no such breaker, else the timer members of the tries it deferred (to wake now).
if redis.call('SISMEMBER', KEYS[2], ARGV[1]) == 0 then
  return false
end
if (redis.call('HGET', KEYS[3], 'state') or 'closed') ~= 'closed' then
  redis.call('HINCRBY', KEYS[1], 'transitions|' .. ARGV[1] .. '|closed', 1)
end
redis.call('HSET', KEYS[3], 'state', 'closed', 'failures', 0, 'successes', 0, 'openUntil', 0, 'probe', '',
  'probeUntil', 0)
local waiting = redis.call('ZRANGE', KEYS[4], 0, -1)
redis.call('DEL', KEYS[4])
return waiting
