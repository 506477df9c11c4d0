-- A try admitted by admit.lua ended: free its concurrency slot and tell its breaker how it went.
-- KEYS: 1 stats, 2 breaker hash, 3 breaker waiting zset, 4 concurrency holders zset, 5 concurrency waiting zset
-- ARGV: 1 member, 2 outcome ('success', 'failure', or 'none': the try ended without a verdict on the target),
--       3 breaker name ('' none), 4 concurrency name ('' none)
-- Returns the timer members of deferred tries to wake now: the next waiter for a freed slot or a free probe, and
-- every waiter when the breaker closes.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local member, outcome, breaker = ARGV[1], ARGV[2], ARGV[3]
local wake = {}

local function wake_next(key)
  local next = redis.call('ZPOPMIN', KEYS[key])
  if next[1] then
    wake[#wake + 1] = next[1]
  end
end

if ARGV[4] ~= '' and redis.call('ZREM', KEYS[4], member) == 1 then
  wake_next(5)
end

if breaker ~= '' then
  local h = KEYS[2]
  local function open()
    local timeout = tonumber(redis.call('HGET', h, 'timeoutMs') or '30000')
    redis.call('HSET', h, 'state', 'open', 'openUntil', now + timeout, 'successes', 0, 'probe', '', 'probeUntil', 0)
    redis.call('HINCRBY', KEYS[1], 'transitions|' .. breaker .. '|open', 1)
  end
  local state = redis.call('HGET', h, 'state') or 'closed'
  if state == 'closed' then
    if outcome == 'failure' then
      local failures = redis.call('HINCRBY', h, 'failures', 1)
      if failures >= tonumber(redis.call('HGET', h, 'failureThreshold') or '5') then
        open()
      end
    elseif outcome == 'success' then
      redis.call('HSET', h, 'failures', 0)
    end
  elseif state == 'half_open' and (redis.call('HGET', h, 'probe') or '') == member then
    redis.call('HSET', h, 'probe', '', 'probeUntil', 0)
    if outcome == 'failure' then
      open()
    elseif outcome == 'success'
        and redis.call('HINCRBY', h, 'successes', 1) >= tonumber(redis.call('HGET', h, 'successThreshold') or '1') then
      redis.call('HSET', h, 'state', 'closed', 'failures', 0, 'successes', 0, 'openUntil', 0)
      redis.call('HINCRBY', KEYS[1], 'transitions|' .. breaker .. '|closed', 1)
      for _, waiting in ipairs(redis.call('ZRANGE', KEYS[3], 0, 9999)) do
        wake[#wake + 1] = waiting
      end
      redis.call('ZREMRANGEBYRANK', KEYS[3], 0, 9999)
    else
      wake_next(3)  -- the next probe
    end
  end
  -- Open: results of tries admitted before it opened say nothing new.
end
return wake
