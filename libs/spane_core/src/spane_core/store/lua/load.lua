-- One execution as stored: {snapshot, its seq, {the log's envelopes after it}}; {} when there is none.
-- KEYS: 1 snapshot hash, 2 log list. A snapshot written before 'sv' existed is at 'v' (the tail is then empty).
local snap = redis.call('HMGET', KEYS[1], 's', 'sv', 'v')
if not snap[1] then return {} end
local base = tonumber(snap[2] or snap[3])
return {snap[1], base, redis.call('LRANGE', KEYS[2], base, -1)}
