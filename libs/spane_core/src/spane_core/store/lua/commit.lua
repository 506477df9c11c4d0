-- One atomic transition of one execution (all keys share the execution's partition slot).
-- KEYS: 1 snapshot hash, 2 log list, 3 events stream, 4 tasks stream, 5 timers zset
-- ARGV: 1 expected seq, 2 new seq, 3 state (empty: the stored snapshot stays, the log after it holds the rest; its
--       seq is 'sv'), 4 workflow id, 5 workflow version, 6 commit batch (events stream), 7 worker group name, then
--       counted lists: envelopes, tasks, timers (due, member), dropped timers, acks.
-- Returns {1, seq} when committed; on a version conflict (nothing written) what the caller lacks to decide again
-- without another round trip: {0, current seq, '', {the log after the expected seq}} when it expected a state
-- still in the log, else {0, current seq, snapshot, {the log after the snapshot}} ({0, 0} when there is none).
local i = 8
local function take()
  local n = tonumber(ARGV[i]); local first = i + 1; i = i + 1 + n; return first, n
end
-- Lua's unpack fails past a few thousand values ("too many results to unpack"): every variadic call is made in
-- chunks of at most CHUNK arguments, so a transition may carry any number of events, timers and acks.
local CHUNK = 1000  -- even: ZADD's arguments come in (score, member) pairs
local function chunked(prefix, first, n)
  if n <= 0 then return end
  if n <= CHUNK then  -- the usual case: one call, no table built
    if #prefix == 2 then return redis.call(prefix[1], prefix[2], unpack(ARGV, first, first + n - 1)) end
    return redis.call(prefix[1], prefix[2], prefix[3], unpack(ARGV, first, first + n - 1))
  end
  for from = first, first + n - 1, CHUNK do
    local args = {unpack(prefix)}
    for j = from, math.min(from + CHUNK - 1, first + n - 1) do args[#args + 1] = ARGV[j] end
    redis.call(unpack(args))
  end
end
local env_first, n_env = take()
local task_first, n_task = take()
local timer_first, n_timer_args = take()
local drop_first, n_drop = take()
local ack_first, n_ack = take()

-- Refuse before writing anything: Redis keeps what a script wrote before an error, so whatever could fail half-way
-- (a key of another type, a timer due that is no number) is checked first, and a refused commit writes nothing.
local function expect(key, kind)
  local found = redis.call('TYPE', key)['ok']
  if found ~= 'none' and found ~= kind then
    return redis.error_reply('WRONGTYPE ' .. key .. ' holds a ' .. found .. ', not a ' .. kind)
  end
end
-- (The snapshot hash is checked by the HGET below, the log list by its RPUSH: the first write, so nothing is
-- written before it.)
local refusal = (n_env > 0 and expect(KEYS[3], 'stream'))
  or ((n_task > 0 or n_ack > 0) and expect(KEYS[4], 'stream'))
  or ((n_timer_args > 0 or n_drop > 0) and expect(KEYS[5], 'zset'))
if refusal then return refusal end
for j = timer_first, timer_first + n_timer_args - 1, 2 do
  local due = tonumber(ARGV[j])
  if not due or due ~= due or due == math.huge or due == -math.huge then
    return redis.error_reply('ERR a timer is due at ' .. ARGV[j] .. ', which is not a finite number')
  end
end

if n_env > 0 then
  local current = redis.call('HGET', KEYS[1], 'v') or '0'
  if current ~= ARGV[1] then
    local have, now = tonumber(ARGV[1]), tonumber(current)
    if now == 0 then return {0, 0} end
    if have > 0 and have < now then return {0, now, '', redis.call('LRANGE', KEYS[2], have, -1)} end
    local snap = redis.call('HMGET', KEYS[1], 's', 'sv')
    local base = tonumber(snap[2] or current)
    return {0, now, snap[1], redis.call('LRANGE', KEYS[2], base, -1)}
  end
  chunked({'RPUSH', KEYS[2]}, env_first, n_env)
  if ARGV[3] ~= '' then
    redis.call('HSET', KEYS[1], 'v', ARGV[2], 's', ARGV[3], 'sv', ARGV[2], 'w', ARGV[4], 'n', ARGV[5])
  else
    redis.call('HSET', KEYS[1], 'v', ARGV[2])
  end
  redis.call('XADD', KEYS[3], '*', 'b', ARGV[6])
  for t = task_first, task_first + n_task - 1 do
    redis.call('XADD', KEYS[4], '*', 't', ARGV[t])
  end
  chunked({'ZADD', KEYS[5]}, timer_first, n_timer_args)
end
chunked({'ZREM', KEYS[5]}, drop_first, n_drop)
-- A task acknowledged is done for good: delete it too, so the tasks stream holds only live work.
chunked({'XACK', KEYS[4], ARGV[7]}, ack_first, n_ack)
chunked({'XDEL', KEYS[4]}, ack_first, n_ack)
return {1, tonumber(ARGV[2])}
