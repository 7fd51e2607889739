"""The Lua scripts of the Redis broker: each one atomic step on the shared bus.

Keys (``P`` is the prefix in braces, a Redis Cluster hash tag, so one script's keys share a
slot): ``P:l:<stream>`` a stream of the listener's deliveries of one priority (the
listener's name for normal ones, then byte 31 and ``high`` or ``low``; field ``d``: the
payload), read by the consumer group ``eventbus``; ``P:due`` a sorted set of delivery ids
by due time (ms, Redis's clock) with ``P:due:data`` holding ``state TAB stream TAB
payload``; ``P:waiting`` counts what waits there by ``stream:state``; ``P:failed`` (id -> JSON) and
``P:failed:order`` (id by failure time) the failed list; ``P:stats`` the counters;
``P:key:<key>`` a dedupe key holding its first answer, expiring after the window
(``P:keys`` orders them by expiry, to keep at most ``max_dedupe_keys``);
``P:hosts:<listener>`` the daemons that load a listener; ``P:routes`` listener -> its event
patterns; ``P:rate:<listener>`` the earliest next start a rate allows (us, Redis's clock);
``P:paused`` listener -> when it resumes (ms; 0: when told); ``P:o:<listener>:<order key>``
the ids of the key's unfinished deliveries in emit order (the first may run; the others
wait), with ``P:os:<listener>`` the listener's keys that have such a list.
"""

from __future__ import annotations

__all__ = ("ACK", "EMIT", "FAIL", "MOVE_DUE", "PACE", "PARK", "PURGE_WAITING", "REFRESH",
           "REQUEUE", "RESERVE", "RETIRE")

_KEYS = """
local function key_done(p, l, key, id)
  l = string.match(l, '^[^\31]*')  -- the listener of the stream l
  local list = p .. ':o:' .. l .. ':' .. key
  redis.call('LREM', list, 1, id)
  if redis.call('LLEN', list) == 0 then
    redis.call('DEL', list)
    redis.call('SREM', p .. ':os:' .. l, key)
  end
end
local function keys_dropped(p, l)
  l = string.match(l, '^[^\31]*')
  for _, key in ipairs(redis.call('SMEMBERS', p .. ':os:' .. l)) do
    redis.call('DEL', p .. ':o:' .. l .. ':' .. key)
  end
  redis.call('DEL', p .. ':os:' .. l)
end
"""

_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

EMIT = _NOW + """
-- ARGV: prefix, dedupe window ms, most dedupe keys, the events as lines: per event a head
-- line 'k|due ms or empty|answer TAB key' (nothing after the second '|' without a key) and k
-- lines 'listener TAB payload' (led by byte 1, the order key and a TAB for a delivery with
-- one: its id joins the end of the key's list); and the names it writes under, a line each:
-- 's' and a listener (its stream), 'k' and a dedupe key, 'o' listener TAB order key. All
-- or nothing: the type of every key it writes is checked first, and foreign data under the
-- prefix fails it before it writes.
-- Per event it returns 0 (queued) or, for a key taken lately, the answer kept under that
-- key (nothing queued). Keys past the most kept go, oldest first (P:keys orders them).
local p, window, most, blob = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local pos, last, out, keyed = 1, #blob, {}, false
local function line()
  local stop = string.find(blob, '\\n', pos, true) or (last + 1)
  local text = string.sub(blob, pos, stop - 1)
  pos = stop + 1
  return text
end
local function head()
  local text = line()
  local a = string.find(text, '|', 1, true)
  local b = string.find(text, '|', a + 1, true)
  local rest, answer, key = string.sub(text, b + 1), nil, nil
  if rest ~= '' then
    local tab = string.find(rest, '\\t', 1, true)
    answer, key = string.sub(rest, 1, tab - 1), string.sub(rest, tab + 1)
  end
  return tonumber(string.sub(text, 1, a - 1)), string.sub(text, a + 1, b - 1), answer, key
end
local kinds = {[p .. ':stats'] = 'hash', [p .. ':due'] = 'zset', [p .. ':due:data'] = 'hash',
  [p .. ':waiting'] = 'hash', [p .. ':keys'] = 'zset'}
for item in string.gmatch(ARGV[5], '[^\\n]+') do
  local kind = string.sub(item, 1, 1)
  if kind == 's' then
    kinds[p .. ':l:' .. string.sub(item, 2)] = 'stream'
  elseif kind == 'o' then
    local tab = string.find(item, '\\t', 1, true)
    local l = string.sub(item, 2, tab - 1)
    kinds[p .. ':o:' .. l .. ':' .. string.sub(item, tab + 1)] = 'list'
    kinds[p .. ':os:' .. l] = 'set'
  else
    kinds[p .. ':key:' .. string.sub(item, 2)] = 'string'
  end
end
for name, kind in pairs(kinds) do
  local found = redis.call('TYPE', name)['ok']
  if found ~= 'none' and found ~= kind then
    return redis.error_reply('FOREIGN ' .. name .. ' is a ' .. found .. ' where eventbus keeps a '
      .. kind)
  end
end
while pos <= last do
  local k, due, answer, key = head()
  local first = false
  if key then
    first = redis.call('SET', p .. ':key:' .. key, answer, 'NX', 'GET', 'PX', window)
    if not first then
      redis.call('ZADD', p .. ':keys', now + window, key)
      keyed = true
    end
  end
  if first then
    redis.call('HINCRBY', p .. ':stats', 'duplicates', 1)
    for _ = 1, k do line() end
    table.insert(out, first)
  else
    if k == 0 then redis.call('HINCRBY', p .. ':stats', 'unrouted', 1) end
    for _ = 1, k do
      local item, order = line(), nil
      if string.sub(item, 1, 1) == '\\1' then  -- '\\1' order key TAB, then as any other
        local cut = string.find(item, '\\t', 1, true)
        order, item = string.sub(item, 2, cut - 1), string.sub(item, cut + 1)
      end
      local tab = string.find(item, '\\t', 1, true)
      local l, payload = string.sub(item, 1, tab - 1), string.sub(item, tab + 1)
      if order then  -- one list per listener and key, whatever the stream (the priority)
        local base = string.match(l, '^[^\31]*')
        redis.call('RPUSH', p .. ':o:' .. base .. ':' .. order,
                   string.match(payload, '^%[(%d+)'))
        redis.call('SADD', p .. ':os:' .. base, order)
      end
      if due == '' then
        redis.call('XADD', p .. ':l:' .. l, '*', 'd', payload)
      else
        local id = string.match(payload, '^%[(%d+)')
        redis.call('ZADD', p .. ':due', due, id)
        redis.call('HSET', p .. ':due:data', id, 'scheduled\t' .. item)
        redis.call('HINCRBY', p .. ':waiting', l .. ':scheduled', 1)
      end
    end
    table.insert(out, 0)
  end
end
if keyed then
  redis.call('ZREMRANGEBYSCORE', p .. ':keys', '-inf', now)
  local extra = redis.call('ZCARD', p .. ':keys') - most
  if extra > 0 then
    local gone = redis.call('ZPOPMIN', p .. ':keys', extra)
    for j = 1, #gone, 2 do redis.call('DEL', p .. ':key:' .. gone[j]) end
  end
end
return out
"""

PACE = r"""
-- ARGV: prefix, listener, the gap its rate leaves between two starts (us). Grants the next
-- start of the listener bus-wide, no sooner than a gap after the one granted before it (on
-- any daemon): returns how many us from now that start is.
local key = ARGV[1] .. ':rate:' .. ARGV[2]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local start = math.max(now, tonumber(redis.call('GET', key) or '0') or 0)
local after = start + tonumber(ARGV[3])
redis.call('SET', key, string.format('%.0f', after), 'PX',
           math.floor((after - now) / 1000) + 60000)
return math.floor(start - now)
"""

RESERVE = _NOW + r"""
-- ARGV: prefix, how many. Reserves that many delivery ids bus-wide and returns the last.
-- The counter P:seq never stands below Redis's clock in ms times 1000, so the ids stay above
-- every id handed out before even when Redis comes back without the counter.
local seq = ARGV[1] .. ':seq'
local last = math.max(tonumber(redis.call('GET', seq) or '0'), now * 1000) + tonumber(ARGV[2])
redis.call('SET', seq, string.format('%d', last))
return last
"""

ACK = _KEYS + """
-- ARGV: prefix, then per listener: its name, its entry ids joined by spaces, and lines
-- 'delivery id TAB order key' for those with a key. The entries are acked and deleted; those
-- that were still pending count as succeeded; each key passes to its next delivery.
local p, done = ARGV[1], 0
for i = 2, #ARGV, 3 do
  local l, ids = ARGV[i], {}
  for id in string.gmatch(ARGV[i + 1], '%S+') do table.insert(ids, id) end
  for keyed in string.gmatch(ARGV[i + 2], '[^\\n]+') do
    local tab = string.find(keyed, '\\t', 1, true)
    key_done(p, l, string.sub(keyed, tab + 1), string.sub(keyed, 1, tab - 1))
  end
  local s, acked = p .. ':l:' .. l, 0
  for cut = 1, #ids, 1000 do
    local stop = math.min(cut + 999, #ids)
    acked = acked + redis.call('XACK', s, 'eventbus', unpack(ids, cut, stop))
    redis.call('XDEL', s, unpack(ids, cut, stop))
  end
  if acked > 0 then redis.call('HINCRBY', p .. ':stats', l .. ':succeeded', acked) end
  done = done + acked
end
return done
"""

PARK = _NOW + """
-- ARGV: prefix, then (listener, entry id, delivery id, delay ms, payload): a failed attempt
-- waits out its backoff in P:due, on Redis's clock, wherever its next attempt runs.
local p = ARGV[1]
for i = 2, #ARGV, 5 do
  local l = ARGV[i]
  local s = p .. ':l:' .. l
  if redis.call('XACK', s, 'eventbus', ARGV[i + 1]) == 1 then
    redis.call('XDEL', s, ARGV[i + 1])
    redis.call('ZADD', p .. ':due', now + tonumber(ARGV[i + 3]), ARGV[i + 2])
    redis.call('HSET', p .. ':due:data', ARGV[i + 2], 'retrying\\t' .. l .. '\\t' .. ARGV[i + 4])
    redis.call('HINCRBY', p .. ':waiting', l .. ':retrying', 1)
  end
end
return now
"""

FAIL = _KEYS + """
-- ARGV: prefix, keep_failed, then (listener, entry id, delivery id, failed at ms, record,
-- order key or ''): the delivery goes to the failed list, the oldest beyond keep_failed drop
-- out of it; its order key passes to the next delivery of the key.
local p, keep = ARGV[1], tonumber(ARGV[2])
for i = 3, #ARGV, 6 do
  local l = ARGV[i]
  local s = p .. ':l:' .. l
  if ARGV[i + 5] ~= '' then key_done(p, l, ARGV[i + 5], ARGV[i + 2]) end
  if ARGV[i + 1] == '' or redis.call('XACK', s, 'eventbus', ARGV[i + 1]) == 1 then
    if ARGV[i + 1] ~= '' then redis.call('XDEL', s, ARGV[i + 1]) end
    redis.call('HSET', p .. ':failed', ARGV[i + 2], ARGV[i + 4])
    redis.call('ZADD', p .. ':failed:order', ARGV[i + 3], ARGV[i + 2])
    redis.call('HINCRBY', p .. ':stats', l .. ':failed', 1)
  end
end
local extra = redis.call('ZCARD', p .. ':failed:order') - keep
if extra > 0 then
  local gone = redis.call('ZPOPMIN', p .. ':failed:order', extra)
  for j = 1, #gone, 2 do redis.call('HDEL', p .. ':failed', gone[j]) end
end
return 0
"""

MOVE_DUE = _NOW + """
-- ARGV: prefix, most to move. Deliveries whose time has come go back to their listener's
-- stream. Returns {moved, next due ms or false, now}.
local p = ARGV[1]
local ids = redis.call('ZRANGEBYSCORE', p .. ':due', '-inf', now, 'LIMIT', 0, tonumber(ARGV[2]))
for _, id in ipairs(ids) do
  local v = redis.call('HGET', p .. ':due:data', id)
  if v then
    local a = string.find(v, '\\t', 1, true)
    local b = string.find(v, '\\t', a + 1, true)
    local state, l = string.sub(v, 1, a - 1), string.sub(v, a + 1, b - 1)
    redis.call('XADD', p .. ':l:' .. l, '*', 'd', string.sub(v, b + 1))
    redis.call('HINCRBY', p .. ':waiting', l .. ':' .. state, -1)
    if state == 'retrying' then redis.call('HINCRBY', p .. ':stats', l .. ':retried', 1) end
    redis.call('HDEL', p .. ':due:data', id)
  end
  redis.call('ZREM', p .. ':due', id)
end
local first = redis.call('ZRANGE', p .. ':due', 0, 0, 'WITHSCORES')
return {#ids, first[2] or false, now}
"""

REFRESH = """
-- ARGV: prefix, this daemon's name, then (listener, entry id) it holds. Resets the idle
-- time of each entry still this daemon's, so none is taken over while it runs; never
-- takes back one another daemon took over. Returns the entry ids that are no longer ours.
local p, me, lost = ARGV[1], ARGV[2], {}
for i = 3, #ARGV, 2 do
  local s = p .. ':l:' .. ARGV[i]
  local mine = redis.call('XPENDING', s, 'eventbus', ARGV[i + 1], ARGV[i + 1], 1, me)
  if #mine == 1 then
    redis.call('XCLAIM', s, 'eventbus', me, 0, ARGV[i + 1], 'JUSTID')
  else
    table.insert(lost, ARGV[i + 1])
  end
end
return lost
"""

REQUEUE = """
-- ARGV: prefix, then (delivery id, listener, payload, order key or '', stream). Checks
-- every one first: failed, and its listener loaded by some daemon; changes nothing unless
-- all are. One with an order key joins the end of the key's list. Returns {'ok'} or
-- {'missing' | 'gone', id}.
local p = ARGV[1]
for i = 2, #ARGV, 5 do
  if redis.call('HEXISTS', p .. ':failed', ARGV[i]) == 0 then return {'missing', ARGV[i]} end
  if redis.call('SCARD', p .. ':hosts:' .. ARGV[i + 1]) == 0 then return {'gone', ARGV[i]} end
end
for i = 2, #ARGV, 5 do
  if ARGV[i + 3] ~= '' then
    redis.call('RPUSH', p .. ':o:' .. ARGV[i + 1] .. ':' .. ARGV[i + 3], ARGV[i])
    redis.call('SADD', p .. ':os:' .. ARGV[i + 1], ARGV[i + 3])
  end
  redis.call('XADD', p .. ':l:' .. ARGV[i + 4], '*', 'd', ARGV[i + 2])
  redis.call('HDEL', p .. ':failed', ARGV[i])
  redis.call('ZREM', p .. ':failed:order', ARGV[i])
end
return {'ok'}
"""

PURGE_WAITING = _KEYS + """
-- ARGV: prefix, state ('retrying' or 'scheduled'), then listeners. Drops the deliveries
-- waiting in P:due in that state, and with 'retrying' also those no daemon has read yet
-- from the listeners' streams (and the listeners' order keys: what holds them is gone);
-- returns how many.
local p, state, dropped = ARGV[1], ARGV[2], 0
if state == 'retrying' then
  for i = 3, #ARGV do
    keys_dropped(p, ARGV[i])
    local s = p .. ':l:' .. ARGV[i]
    if redis.call('EXISTS', s) == 1 then
      local last = '0-0'
      for _, g in ipairs(redis.call('XINFO', 'GROUPS', s)) do
        for j = 1, #g, 2 do if g[j] == 'last-delivered-id' then last = g[j + 1] end end
      end
      local unread = redis.call('XRANGE', s, '(' .. last, '+')
      for _, entry in ipairs(unread) do redis.call('XDEL', s, entry[1]) end
      dropped = dropped + #unread
    end
  end
end
local prefix = state .. '\t'
local waiting = redis.call('HGETALL', p .. ':due:data')
for j = 1, #waiting, 2 do
  local v = waiting[j + 1]
  if string.sub(v, 1, #prefix) == prefix then
    local rest = string.sub(v, #prefix + 1)
    local l = string.sub(rest, 1, string.find(rest, '\t', 1, true) - 1)
    redis.call('HDEL', p .. ':due:data', waiting[j])
    redis.call('ZREM', p .. ':due', waiting[j])
    redis.call('HINCRBY', p .. ':waiting', l .. ':' .. state, -1)
    dropped = dropped + 1
  end
end
return dropped
"""

RETIRE = _NOW + _KEYS + """
-- ARGV: prefix, listener, keep_failed, error. No daemon loads the listener any more: what
-- waits for it goes to the failed list with the error, and its stream is deleted.
local p, l, keep, err = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
if redis.call('SCARD', p .. ':hosts:' .. l) > 0 then return -1 end
local moved = 0
local function fail(id, payload)
  local record = cjson.encode({l = l, at = now / 1000, err = err, p = payload})
  redis.call('HSET', p .. ':failed', id, record)
  redis.call('ZADD', p .. ':failed:order', now, id)
  redis.call('HINCRBY', p .. ':stats', l .. ':failed', 1)
  moved = moved + 1
end
local s = p .. ':l:' .. l
for _, entry in ipairs(redis.call('XRANGE', s, '-', '+')) do
  local payload = entry[2][2]
  fail(string.match(payload, '^%[(%d+)'), payload)
end
redis.call('DEL', s)
local waiting = redis.call('HGETALL', p .. ':due:data')
for j = 1, #waiting, 2 do
  local v = waiting[j + 1]
  local a = string.find(v, '\\t', 1, true)
  local b = string.find(v, '\\t', a + 1, true)
  if string.sub(v, a + 1, b - 1) == l then
    redis.call('HDEL', p .. ':due:data', waiting[j])
    redis.call('ZREM', p .. ':due', waiting[j])
    redis.call('HINCRBY', p .. ':waiting', l .. ':' .. string.sub(v, 1, a - 1), -1)
    fail(waiting[j], string.sub(v, b + 1))
  end
end
redis.call('HDEL', p .. ':routes', l)
keys_dropped(p, l)
local extra = redis.call('ZCARD', p .. ':failed:order') - keep
if extra > 0 then
  local gone = redis.call('ZPOPMIN', p .. ':failed:order', extra)
  for j = 1, #gone, 2 do redis.call('HDEL', p .. ':failed', gone[j]) end
end
return moved
"""
