-- Trim a commit stream behind its consumer groups, keeping a resume window, and remember how far it was trimmed.
-- KEYS: 1 the commit stream, 2 its trim mark (a string: the id of the newest entry ever trimmed from it).
-- ARGV: 1 the floor: the oldest id that some consumer group has not acknowledged (kept, like all after it);
--       2 the window in ms: entries newer than Redis's clock minus the window are kept as well.
-- Entries older than both go. The mark only moves forward, in the same step as the trim, so that a reader who
-- finds an entry gone also finds the mark past it. Returns the number of entries removed.
local function parse(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(ms), tonumber(seq)
end

local function older(a, b)
  local ams, aseq = parse(a)
  local bms, bseq = parse(b)
  return ams < bms or (ams == bms and aseq < bseq)
end

local minid = ARGV[1]
local window = tonumber(ARGV[2])
if window > 0 then -- 0: no window, right behind the groups (entries of this very millisecond included)
  local now = redis.call('TIME')
  local cutoff = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) - window
  if cutoff <= 0 then
    return 0
  end
  local cutoff_id = string.format('%.0f-0', cutoff)
  if older(cutoff_id, minid) then
    minid = cutoff_id
  end
end
if minid == '0-0' then
  return 0
end
local newest = redis.call('XREVRANGE', KEYS[1], '(' .. minid, '-', 'COUNT', 1)
if #newest == 0 then
  return 0
end
local mark = redis.call('GET', KEYS[2])
if not mark or older(mark, newest[1][1]) then
  redis.call('SET', KEYS[2], newest[1][1])
end
return redis.call('XTRIM', KEYS[1], 'MINID', minid)
