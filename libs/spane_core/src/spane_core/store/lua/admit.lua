-- Admit one try of a node through all its shared limits at once, or say until when it must wait.
-- KEYS: 1 stats, 2 breakers set, 3 buckets set, 4 concurrency limits hash, 5 breaker hash, 6 breaker waiting zset,
--       7 concurrency holders zset, 8 concurrency waiting zset, then per bucket: its hash, its reserved zset.
-- ARGV: 1 member (execution|node|attempt, the node's timer member), 2 hold ms (a concurrency slot or a probe),
--       3 poll ms, 4 breaker name ('' none), 5 failureThreshold, 6 successThreshold, 7 timeoutMs,
--       8 concurrency name ('' none), 9 its limit, 10 bucket count, then per bucket: name, max, perMs.
-- Returns {1} when admitted, else {0, until (epoch ms), reason, limit name}. Time is the server's, shared by all.
-- Breaker and concurrency refusals take nothing. Buckets are GCRA token buckets (burst max, one token every
-- perMs / max) that reserve a later turn for a try they cannot serve now: it comes back at that time and is let
-- through on its reservation, so waiting tries run in order and none is refused twice by the same bucket.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local member, hold, poll = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local breaker, conc, nb = ARGV[4], ARGV[8], tonumber(ARGV[10])

local function throttled(reason, name, at)
  redis.call('HINCRBY', KEYS[1], 'throttled|' .. reason .. '|' .. name, 1)
  return {0, math.ceil(at), reason, name}
end

local probe = false
if breaker ~= '' then
  redis.call('SADD', KEYS[2], breaker)
  redis.call('HSET', KEYS[5], 'failureThreshold', ARGV[5], 'successThreshold', ARGV[6], 'timeoutMs', ARGV[7])
  local state = redis.call('HGET', KEYS[5], 'state') or 'closed'
  if state == 'open' then
    local open_until = tonumber(redis.call('HGET', KEYS[5], 'openUntil') or '0')
    if now < open_until then
      redis.call('ZADD', KEYS[6], 'NX', now, member)
      return throttled('circuit-breaker', breaker, open_until)
    end
    state = 'half_open'
    redis.call('HSET', KEYS[5], 'state', state, 'successes', 0, 'probe', '', 'probeUntil', 0)
    redis.call('HINCRBY', KEYS[1], 'transitions|' .. breaker .. '|half_open', 1)
  end
  if state == 'half_open' then
    local holder = redis.call('HGET', KEYS[5], 'probe') or ''
    local probe_until = tonumber(redis.call('HGET', KEYS[5], 'probeUntil') or '0')
    if holder ~= '' and holder ~= member and now < probe_until then
      redis.call('ZADD', KEYS[6], 'NX', now, member)
      return throttled('circuit-breaker', breaker, now + poll)
    end
    probe = true
  end
end

if conc ~= '' then
  redis.call('HSET', KEYS[4], conc, ARGV[9])
  redis.call('ZREMRANGEBYSCORE', KEYS[7], '-inf', now)
  if not redis.call('ZSCORE', KEYS[7], member) and redis.call('ZCARD', KEYS[7]) >= tonumber(ARGV[9]) then
    redis.call('ZADD', KEYS[8], 'NX', now, member)
    return throttled('concurrency-limit', conc, now + poll)
  end
end

local permitted, slowest = now, ''
for b = 0, nb - 1 do
  local name, max, per = ARGV[11 + 3 * b], tonumber(ARGV[12 + 3 * b]), tonumber(ARGV[13 + 3 * b])
  local bucket, reserved = KEYS[9 + 2 * b], KEYS[10 + 2 * b]
  redis.call('SADD', KEYS[3], name)
  redis.call('ZREMRANGEBYSCORE', reserved, '-inf', now - 3600000)  -- turns of tries that never came back
  local at = redis.call('ZSCORE', reserved, member)
  if at then
    at = tonumber(at)
  else
    local interval = per / max
    local tat = math.max(tonumber(redis.call('HGET', bucket, 'tat') or '0'), now)
    at = math.max(now, tat + interval - per)
    redis.call('HSET', bucket, 'tat', tat + interval, 'max', max, 'perMs', per)
    if at > now then
      redis.call('ZADD', reserved, at, member)
    end
  end
  if at > permitted then
    permitted, slowest = at, name
  end
end
if permitted > now then
  return throttled('rate-limit', slowest, permitted)
end

for b = 0, nb - 1 do
  redis.call('ZREM', KEYS[10 + 2 * b], member)
end
if conc ~= '' then
  redis.call('ZADD', KEYS[7], now + hold, member)
  redis.call('ZREM', KEYS[8], member)
end
if breaker ~= '' then
  redis.call('ZREM', KEYS[6], member)
  if probe then
    redis.call('HSET', KEYS[5], 'probe', member, 'probeUntil', now + hold)
  end
end
return {1}
