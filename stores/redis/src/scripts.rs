//! The Lua scripts that make each per-key step atomic.
//!
//! Every script touches only the keys it is given in `KEYS`, so each runs on one node of a
//! cluster (and behind sharding proxies). Scripts that take a second key (a user index) are
//! only called with one outside cluster mode, where any two keys may meet in one script.
//!
//! A session is one hash (see [`codec`](crate::codec) for its fields). A record counts as
//! present only if its format version is known, it is not being moved by a rotation, and
//! both deadlines lie after the `now` the layer passed; anything else is "gone".

use redis::Script;

/// Helpers every script starts with.
const PRELUDE: &str = r"
local function chunked(cmd, key, arr, first, last)
  local i = first
  while i <= last do
    local j = math.min(i + 199, last)
    redis.call(cmd, key, unpack(arr, i, j))
    i = j + 1
  end
end

local function live(key, now)
  local m = redis.call('HMGET', key, 'v', 'x', 'm:idle', 'm:abs')
  if m[1] ~= '1' or m[2] then return nil end
  local idle, abs = tonumber(m[3]), tonumber(m[4])
  if not idle or not abs or not (now < idle and now < abs) then return nil end
  return idle, abs, m[4]
end

local function expire(key, expires, now)
  local ttl = expires - now
  if ttl <= 0 then
    redis.call('DEL', key)
    return false
  end
  redis.call('PEXPIRE', key, string.format('%d', ttl))
  return true
end

-- The idle deadline (number, text) a due touch sets, or nil if none is due: the deadline
-- for the session's persistence flag `pers` (given as texts, now plus each idle timeout),
-- capped at the absolute one, must lie more than `step` after the stored one.
local function due(idle, abs, abs_s, pers, browser_s, persistent_s, step)
  local s = browser_s
  if pers == '1' then s = persistent_s end
  local n = tonumber(s)
  if n > abs then n, s = abs, abs_s end
  if n - idle > tonumber(step) then return n, s end
  return nil
end

local function index_add(z, member, score, now)
  redis.call('ZREMRANGEBYSCORE', z, '-inf', now)
  redis.call('ZADD', z, score, member)
  local top = redis.call('ZRANGE', z, -1, -1, 'WITHSCORES')
  expire(z, tonumber(top[2]), tonumber(now))
end
";

/// KEYS: session, [index]. ARGV: token, ttl, now, member, score, field/value pairs...
/// Returns 1 if stored (or already stored by this same call), 0 if the key is taken.
const CREATE: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then
  if redis.call('HGET', KEYS[1], 'c') == ARGV[1] then return 1 end
  return 0
end
if KEYS[2] then index_add(KEYS[2], ARGV[4], ARGV[5], ARGV[3]) end
chunked('HSET', KEYS[1], ARGV, 6, #ARGV)
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
";

/// The start of an update (and of a write): finds the live record or returns nil.
/// ARGV: now, clear, seen, idle, persistent, user op ('' keep, '0' remove, '1' set), user,
/// member, #removed, #set, then arguments of the script's own, then the removed fields from
/// `ARGV[o]`, then the set field/value pairs.
const APPLY_HEAD: &str = r"
local k = KEYS[1]
local now = tonumber(ARGV[1])
local idle, abs, abs_s = live(k, now)
if not idle then return false end
local nrem, nset = tonumber(ARGV[9]), tonumber(ARGV[10])
";

/// The end of an update (and of a write): applies the change, with the touch `seen_s`,
/// `idle_s` ('' for none), and returns the metadata fields afterwards.
const APPLY_TAIL: &str = r"
if KEYS[2] then index_add(KEYS[2], ARGV[8], abs_s, ARGV[1]) end
if ARGV[2] == '1' then
  local dead = {}
  for _, f in ipairs(redis.call('HKEYS', k)) do
    if string.sub(f, 1, 2) == 'd:' then dead[#dead + 1] = f end
  end
  chunked('HDEL', k, dead, 1, #dead)
end
chunked('HDEL', k, ARGV, o, o - 1 + nrem)
chunked('HSET', k, ARGV, o + nrem, o - 1 + nrem + 2 * nset)
if seen_s ~= '' then
  local new_idle, s = tonumber(idle_s), idle_s
  if new_idle > abs then new_idle, s = abs, abs_s end
  redis.call('HSET', k, 'm:seen', seen_s, 'm:idle', s)
  idle = new_idle
end
if ARGV[5] ~= '' then redis.call('HSET', k, 'm:pers', ARGV[5]) end
if ARGV[6] == '1' then
  redis.call('HSET', k, 'm:user', ARGV[7])
elseif ARGV[6] == '0' then
  redis.call('HDEL', k, 'm:user')
end
local meta = redis.call('HMGET', k, 'm:created', 'm:seen', 'm:idle', 'm:abs', 'm:pers', 'm:user')
expire(k, math.min(idle, abs), now)
return meta
";

/// A change, within the limits and with a due touch. KEYS: session, [index of the new user]. ARGV: as
/// [`APPLY_HEAD`], with five of its own: max keys, max bytes, the idle deadlines a touch now
/// sets for a browser-only and for a persistent session, and the touch step. Returns nil if
/// gone; `L`, keys, bytes (nothing written) if the data would pass the limits and grow on
/// the count that passes them; else the metadata fields afterwards. Data is counted as the
/// layer's `Limits` counts it: per key, its length plus its JSON text's.
const WRITE: &str = r"
local o = 16
if nset > 0 then
  local size, before_k, before_b = {}, 0, 0
  local all = redis.call('HGETALL', k)
  for i = 1, #all, 2 do
    local f = all[i]
    if string.sub(f, 1, 2) == 'd:' then
      local n = #f - 2 + #all[i + 1]
      before_k, before_b = before_k + 1, before_b + n
      if ARGV[2] ~= '1' then size[f] = n end
    end
  end
  for i = o, o - 1 + nrem do size[ARGV[i]] = nil end
  for i = o + nrem, o - 1 + nrem + 2 * nset, 2 do size[ARGV[i]] = #ARGV[i] - 2 + #ARGV[i + 1] end
  local keys, bytes = 0, 0
  for _, n in pairs(size) do keys, bytes = keys + 1, bytes + n end
  if (keys > tonumber(ARGV[11]) and keys > before_k)
      or (bytes > tonumber(ARGV[12]) and bytes > before_b) then
    return {'L', tostring(keys), tostring(bytes)}
  end
end
local seen_s, idle_s = ARGV[3], ARGV[4]
if seen_s == '' then
  local pers = ARGV[5]
  if pers == '' then pers = redis.call('HGET', k, 'm:pers') end
  local n, s = due(idle, abs, abs_s, pers, ARGV[13], ARGV[14], ARGV[15])
  if n then seen_s, idle_s = ARGV[1], s end
end
";

/// A load that touches if due. KEYS: session. ARGV: now, the idle deadlines a touch now sets
/// for a browser-only and for a persistent session, the touch step. Moves `m:seen`,
/// `m:idle` and the TTL of a live record if a touch is due, and returns every field (as
/// `HGETALL`), whatever the record's state, for the caller to read.
const LOAD_TOUCHING: &str = r"
local k = KEYS[1]
local now = tonumber(ARGV[1])
local idle, abs, abs_s = live(k, now)
if idle then
  local n, s = due(idle, abs, abs_s, redis.call('HGET', k, 'm:pers'), ARGV[2], ARGV[3], ARGV[4])
  if n then
    redis.call('HSET', k, 'm:seen', ARGV[1], 'm:idle', s)
    expire(k, n, now)
  end
end
return redis.call('HGETALL', k)
";

/// Rotation, step 1. KEYS: old session. ARGV: now, token. Marks the live record as moving
/// (from here on every other operation finds it gone) and returns all its fields, or nil.
const MARK: &str = r"
local k = KEYS[1]
local x = redis.call('HGET', k, 'x')
if x then
  if x == ARGV[2] then return redis.call('HGETALL', k) end
  return false
end
if not live(k, tonumber(ARGV[1])) then return false end
redis.call('HSET', k, 'x', ARGV[2])
return redis.call('HGETALL', k)
";

/// Rotation, undo. KEYS: old session. ARGV: token. Clears this rotation's mark.
const UNMARK: &str = r"
if redis.call('HGET', KEYS[1], 'x') == ARGV[1] then
  redis.call('HDEL', KEYS[1], 'x')
  return 1
end
return 0
";

/// Rotation, last step. KEYS: old session. ARGV: token, the new key's member, the owner
/// ('' for none), how long to keep the forwarding note (milliseconds). If this rotation
/// still holds its mark, replaces the old record with a note naming the new key and the
/// owner (so a revocation of the owner that read the index before the new key was in it
/// still finds the session) and returns 1; 0 means someone deleted it meanwhile (a sign-out
/// won).
const FINISH: &str = r"
if redis.call('HGET', KEYS[1], 'x') == ARGV[1] then
  redis.call('DEL', KEYS[1])
  if ARGV[3] ~= '' then
    redis.call('HSET', KEYS[1], 'x', 'moved', 'to', ARGV[2], 'm:user', ARGV[3])
    redis.call('PEXPIRE', KEYS[1], ARGV[4])
  end
  return 1
end
return 0
";

/// KEYS: user index. ARGV: member, score (absolute deadline), now.
const INDEX_ADD: &str = r"
index_add(KEYS[1], ARGV[1], ARGV[2], ARGV[3])
return 1
";

/// KEYS: user index. ARGV: now. Drops members past their absolute deadline, lists the rest.
const INDEX_READ: &str = r"
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
return redis.call('ZRANGE', KEYS[1], 0, -1)
";

/// KEYS: session. ARGV: user, now. Deletes the record if `user` owns it. Returns -1 if it
/// does not (or is absent), 1 if a live record was deleted, 0 if an expired one was, and
/// the new key's member if it was the forwarding note a rotation left (the caller follows
/// it).
const DELETE_OWNED: &str = r"
local k = KEYS[1]
local m = redis.call('HMGET', k, 'm:user', 'm:idle', 'm:abs', 'x', 'to')
if m[1] ~= ARGV[1] then return -1 end
redis.call('DEL', k)
if m[4] == 'moved' then return m[5] end
local now, idle, abs = tonumber(ARGV[2]), tonumber(m[2]), tonumber(m[3])
if idle and abs and now < idle and now < abs then return 1 end
return 0
";

/// The compiled scripts, each sent by SHA (EVALSHA) and loaded on a `NOSCRIPT` miss.
pub(crate) struct Scripts {
    pub(crate) create: Script,
    pub(crate) write: Script,
    pub(crate) load_touching: Script,
    pub(crate) mark: Script,
    pub(crate) unmark: Script,
    pub(crate) finish: Script,
    pub(crate) index_add: Script,
    pub(crate) index_read: Script,
    pub(crate) delete_owned: Script,
}

impl Scripts {
    pub(crate) fn new() -> Self {
        let with_prelude = |body: &str| Script::new(&format!("{PRELUDE}{body}"));
        Self {
            create: with_prelude(CREATE),
            write: with_prelude(&format!("{APPLY_HEAD}{WRITE}{APPLY_TAIL}")),
            load_touching: with_prelude(LOAD_TOUCHING),
            mark: with_prelude(MARK),
            unmark: Script::new(UNMARK),
            finish: Script::new(FINISH),
            index_add: with_prelude(INDEX_ADD),
            index_read: Script::new(INDEX_READ),
            delete_owned: Script::new(DELETE_OWNED),
        }
    }
}
