-- Take new node tasks from the priority streams of one partition for one consumer, in weighted shares, in one step.
-- KEYS: the partition's tasks streams, highest priority first. ARGV: 1 group, 2 consumer, 3 count, then one share
-- per stream (their sum is at most the count).
-- First each stream gives up to its share; then what is left of the count goes, highest priority first, to the
-- streams that gave all they were asked (they may hold more) or were asked for none.
-- Returns {i, n, entries..., i, n, entries..., ...}: stream index (1-based), entry count, then the entries as
-- XREADGROUP gives them; a stream (not empty) whose group is missing returns {i, -1} so that the caller creates it
-- again.
local group, consumer, left = ARGV[1], ARGV[2], tonumber(ARGV[3])
local out = {}
local asked, got = {}, {}
local function take(i, n)
  -- An empty stream has nothing new: XLEN costs far less than an XREADGROUP that finds nothing (most priorities
  -- are idle). A stream that is gone (with its group) is found out once a task is added to it again.
  if redis.call('XLEN', KEYS[i]) == 0 then return end
  local reply = redis.pcall('XREADGROUP', 'GROUP', group, consumer, 'COUNT', n, 'STREAMS', KEYS[i], '>')
  if type(reply) == 'table' and reply.err then
    out[#out + 1] = i; out[#out + 1] = -1; got[i] = -1
    return
  end
  if not reply then return end
  local entries = reply[1][2]
  out[#out + 1] = i; out[#out + 1] = #entries
  for _, entry in ipairs(entries) do out[#out + 1] = entry end
  got[i] = (got[i] or 0) + #entries
  left = left - #entries
end
for i = 1, #KEYS do
  local share = math.min(tonumber(ARGV[3 + i]), left)
  asked[i] = share
  got[i] = 0
  if share > 0 then take(i, share) end
end
for i = 1, #KEYS do
  if left <= 0 then break end
  if got[i] >= 0 and got[i] == asked[i] then take(i, left) end
end
return out
