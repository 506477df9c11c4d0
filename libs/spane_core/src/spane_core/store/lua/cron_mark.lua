-- Record the last tick a schedule fired, never moving it back (two schedulers may record out of order).
-- KEYS: 1 cron runs hash. ARGV: 1 field ("<workflow id> <schedule key>"), 2 tick (epoch ms), 3 value "<tick> <id>".
-- Returns 1 recorded, 0 an equal or later tick was recorded already.
local current = redis.call('HGET', KEYS[1], ARGV[1])
if current then
  local tick = tonumber(string.match(current, '^(%d+)'))
  if tick and tick >= tonumber(ARGV[2]) then return 0 end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
return 1
