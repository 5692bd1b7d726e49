//! The Lua scripts that make each write atomic.
//!
//! Every script touches only the keys it is given in `KEYS`, so each runs on one node of a
//! cluster (and behind sharding proxies). Scripts that take a second key (a user index, a
//! rotation's new key) are only called with one outside cluster mode, where any two keys
//! may meet in one script.
//!
//! A session is one string (see [`codec`](crate::codec) for its layout). A record counts
//! as present only if its format version is known and both deadlines lie after the `now`
//! the layer passed; anything else is "gone", and no script ever writes to a value it
//! cannot read. The rules the scripts apply (how a change applies, the limits, when a
//! touch is due) mirror `WriteRules::apply` of the core exactly; the conformance suite
//! holds the two together.

use redis::Script;

/// Helpers every script starts with.
///
/// The change arguments (`ARGV`), shared by the write and rotation scripts: 1 now, 2 clear
/// (`1`/`0`), 3 and 4 the change's own touch (seen, idle deadline; `''` for none), 5 a new
/// persistence flag (`''` to keep), 6 owner op (`''` keep, `0` remove, `1` set), 7 the new
/// owner, 8 the index member (the session's storage key in hex, the new one for a
/// rotation), 9 and 10 how many keys are removed and set, 11 and 12 the limits (keys,
/// bytes), 13 and 14 the idle deadlines a touch at `now` sets for a browser-only and a
/// persistent session, 15 the touch step, 16 how long a rotation's note lives, 17 `1` in
/// cluster mode, 18 the session's own idle timeout op (`''` keep, `0` clear, `1` set) and
/// 19 the timeout (milliseconds), 20 the end time op (`''` keep, `0` back to the lifetime,
/// `1` set) and 21 the end time, 22 the lifetime and 23 the longest lifetime (milliseconds);
/// then the removed keys, then key, JSON text pairs.
const PRELUDE: &str = r"
local function t16(n) return string.format('%016d', n) end

-- The record in value `v`, or nil if `v` is no record this version can read.
local function parse(v)
  if type(v) ~= 'string' or string.byte(v, 1) ~= 50 then return nil end
  local hl = tonumber(string.sub(v, 2, 4))
  if not hl or hl < 80 or hl > #v then return nil end
  local ol = tonumber(string.sub(v, 71, 80))
  local idle, abs = tonumber(string.sub(v, 37, 52)), tonumber(string.sub(v, 53, 68))
  if not ol or not idle or not abs or hl + ol > #v then return nil end
  -- The session's own idle timeout: a header of 97 bytes or more has the field.
  local it = nil
  if hl >= 97 and string.sub(v, 81, 81) == '1' then
    it = tonumber(string.sub(v, 82, 97))
    if not it then return nil end
  end
  return {v = v, hl = hl, idle = idle, abs = abs, abs_s = string.sub(v, 53, 68),
    created = tonumber(string.sub(v, 5, 20)), it = it,
    pers = string.sub(v, 69, 69), owned = string.sub(v, 70, 70) == '1',
    owner = string.sub(v, hl + 1, hl + ol), data = hl + ol + 1}
end

local function read(key)
  return parse(redis.pcall('GET', key))
end

-- The data entries of record r: the keys in order and their JSON texts, or nil if damaged.
local function entries(r)
  local v, i, keys, vals = r.v, r.data, {}, {}
  while i <= #v do
    local c = string.find(v, ':', i, true)
    local kl = c and tonumber(string.sub(v, i, c - 1))
    if not kl then return nil end
    local key = string.sub(v, c + 1, c + kl)
    i = c + kl + 1
    c = string.find(v, ':', i, true)
    local vl = c and tonumber(string.sub(v, i, c - 1))
    if not vl or c + vl > #v then return nil end
    keys[#keys + 1] = key
    vals[key] = string.sub(v, c + 1, c + vl)
    i = c + vl + 1
  end
  return keys, vals
end

-- The idle deadline activity at `now` gives a session: now plus its own idle timeout `it`
-- if it has one, else that of its persistence flag `pers` (given as deadlines), capped at
-- the absolute deadline (TouchRule::idle_deadline).
local function idle_at(abs, pers, it, now, browser, persistent)
  local n = tonumber(browser)
  if pers == '1' then n = tonumber(persistent) end
  if it then n = now + it end
  if n > abs then n = abs end
  return n
end

-- The idle deadline a due touch sets, or nil if none is due: the one activity at `now`
-- gives must lie more than `step` after the stored one (TouchRule::due).
local function due(idle, abs, pers, it, now, browser, persistent, step)
  local n = idle_at(abs, pers, it, now, browser, persistent)
  if n - idle > tonumber(step) then return n end
  return nil
end

-- Keeps `value` under `key` until `expires`, or deletes the key if that has passed.
local function store(key, value, expires, now)
  local ttl = expires - now
  if ttl <= 0 then
    redis.call('DEL', key)
  else
    redis.call('SET', key, value, 'PX', string.format('%d', ttl))
  end
end

local function index_add(z, member, score, now)
  redis.call('ZREMRANGEBYSCORE', z, '-inf', now)
  redis.call('ZADD', z, score, member)
  local top = redis.call('ZRANGE', z, -1, -1, 'WITHSCORES')
  local ttl = tonumber(top[2]) - tonumber(now)
  if ttl > 0 then redis.call('PEXPIRE', z, string.format('%d', ttl)) end
end

-- Applies the change in ARGV to live record r, as the core's WriteRules::apply does.
-- Returns the new value, the length of its header and owner, and its expiry; or false and
-- {'L', keys, bytes} if the limits refuse it; or nil if the data's layout is damaged (the
-- JSON texts themselves are the reader's to check).
local function apply(r, now)
  local nrem, nset, o = tonumber(ARGV[9]), tonumber(ARGV[10]), 24
  local data = string.sub(r.v, r.data)
  local keys, vals = entries(r)
  if not keys then return nil end
  if ARGV[2] == '1' or nrem > 0 or nset > 0 then
    local bk, bb = #keys, 0
    for _, key in ipairs(keys) do bb = bb + #key + #vals[key] end
    if ARGV[2] == '1' then keys, vals = {}, {} end
    for i = o, o - 1 + nrem do vals[ARGV[i]] = nil end
    for i = o + nrem, o - 2 + nrem + 2 * nset, 2 do
      keys[#keys + 1] = ARGV[i]
      vals[ARGV[i]] = ARGV[i + 1]
    end
    local ak, ab, parts, done = 0, 0, {}, {}
    for _, key in ipairs(keys) do
      local val = vals[key]
      if val and not done[key] then
        done[key] = true
        ak, ab = ak + 1, ab + #key + #val
        parts[#parts + 1] = #key .. ':' .. key .. #val .. ':' .. val
      end
    end
    if (ak > tonumber(ARGV[11]) and ak > bk) or (ab > tonumber(ARGV[12]) and ab > bb) then
      return false, {'L', tostring(ak), tostring(ab)}
    end
    data = table.concat(parts)
  end
  local pers, owned, owner = r.pers, r.owned, r.owner
  if ARGV[5] ~= '' then pers = ARGV[5] end
  if ARGV[6] == '1' then
    owned, owner = true, ARGV[7]
  elseif ARGV[6] == '0' then
    owned, owner = false, ''
  end
  -- Metadata in the order of WriteRules::apply_meta: the change's own fields (its touch
  -- capped at the stored absolute deadline), the end time, then the idle restart (when the
  -- persistence or the idle timeout changes) or a due touch, unless the change touched.
  local it = r.it
  if ARGV[18] == '1' then it = tonumber(ARGV[19]) elseif ARGV[18] == '0' then it = nil end
  local seen, idle = string.sub(r.v, 21, 36), r.idle
  if ARGV[3] ~= '' then
    seen, idle = t16(tonumber(ARGV[3])), math.min(tonumber(ARGV[4]), r.abs)
  end
  local abs = r.abs
  if ARGV[20] == '1' then
    abs = math.max(math.min(tonumber(ARGV[21]), r.created + tonumber(ARGV[23])), r.created)
  elseif ARGV[20] == '0' then
    abs = r.created + tonumber(ARGV[22])
  end
  if idle > abs then idle = abs end
  if ARGV[3] ~= '' then
  elseif ARGV[5] ~= '' or ARGV[18] ~= '' then
    seen, idle = t16(now), idle_at(abs, pers, it, now, ARGV[13], ARGV[14])
  else
    local n = due(idle, abs, pers, it, now, ARGV[13], ARGV[14], ARGV[15])
    if n then seen, idle = t16(now), n end
  end
  local hl = math.max(r.hl, 97)
  local own = '0' .. t16(0)
  if it then own = '1' .. t16(it) end
  local head = '2' .. string.format('%03d', hl) .. string.sub(r.v, 5, 20) .. seen
    .. t16(idle) .. t16(abs) .. pers .. (owned and '1' or '0')
    .. string.format('%010d', #owner) .. own .. string.sub(r.v, 98, r.hl) .. owner
  return head .. data, #head, math.min(idle, abs), t16(abs)
end

-- What a rotation leaves under the old key `k` of record r: a note naming the new member
-- and the old owner, so a revocation of that owner that read the index before the new key
-- was in it still finds the session; nothing if the session had no owner.
local function leave(k, r)
  if r.owned then
    redis.call('SET', k, 'N' .. string.format('%010d', #r.owner) .. r.owner .. ARGV[8],
      'PX', ARGV[16])
  else
    redis.call('DEL', k)
  end
end
";

/// KEYS: session, index. ARGV: value, ttl, member, score (absolute deadline), now.
/// Stores a new session and its index entry unless the key is taken: 1 if stored, 0 if not.
const CREATE: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
index_add(KEYS[2], ARGV[3], ARGV[4], ARGV[5])
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
";

/// A change, within the limits and with a due touch. KEYS: session, [index of the new
/// owner]. ARGV: the change arguments. Returns nil if gone; `L`, keys, bytes (nothing
/// written) if the data would pass the limits and grow on the count that passes them;
/// else the header and owner afterwards.
const WRITE: &str = r"
local k, now = KEYS[1], tonumber(ARGV[1])
local r = read(k)
if not r or not (now < r.idle and now < r.abs) then return false end
local value, head, expires, abs_s = apply(r, now)
if not value then return head end
store(k, value, expires, now)
if KEYS[2] then index_add(KEYS[2], ARGV[8], abs_s, ARGV[1]) end
return string.sub(value, 1, head)
";

/// A load that touches if due. KEYS: session. ARGV: now, the idle deadlines a touch now
/// sets for a browser-only and for a persistent session, the touch step. Moves the seen
/// time, the idle deadline and the TTL of a live record if a touch is due, and returns the
/// value (as `GET` would; `W` for a key of another type, such as a record of the previous
/// format) for the caller to read.
///
/// Every read runs it, so it stands alone rather than after [`PRELUDE`]: it reads only the
/// fields a touch needs, with the same checks as the prelude's `parse` (a value `parse`
/// refuses is returned untouched) and the same rule as its `due`.
const LOAD_TOUCHING: &str = r"
local k = KEYS[1]
local v = redis.pcall('GET', k)
if type(v) == 'table' then return 'W' end
if type(v) ~= 'string' or string.byte(v, 1) ~= 50 then return v end
local sub = string.sub
local hl = tonumber(sub(v, 2, 4))
if not hl or hl < 80 or hl > #v then return v end
local ol = tonumber(sub(v, 71, 80))
local idle, abs = tonumber(sub(v, 37, 52)), tonumber(sub(v, 53, 68))
if not ol or not idle or not abs or hl + ol > #v then return v end
local it = nil
if hl >= 97 and sub(v, 81, 81) == '1' then
  it = tonumber(sub(v, 82, 97))
  if not it then return v end
end
local now = tonumber(ARGV[1])
if not (now < idle and now < abs) then return v end
local n = tonumber(ARGV[2])
if sub(v, 69, 69) == '1' then n = tonumber(ARGV[3]) end
if it then n = now + it end
if n > abs then n = abs end
if n - idle <= tonumber(ARGV[4]) then return v end
local moved = string.format('%016d', now) .. string.format('%016d', n)
redis.call('SETRANGE', k, 20, moved)
redis.call('PEXPIRE', k, string.format('%d', n - now))
return sub(v, 1, 20) .. moved .. sub(v, 53)
";

/// Rotation on one server, in one step. KEYS: old session, new session, [index of the new
/// owner]. ARGV: the change arguments, member being the new key's. Returns nil if the old
/// record is gone, `C` if the new key is taken, `L`... as the write script if too large,
/// else the header and owner of the record now under the new key.
const ROTATE: &str = r"
local k, nk, now = KEYS[1], KEYS[2], tonumber(ARGV[1])
local r = read(k)
if not r or not (now < r.idle and now < r.abs) then return false end
if redis.call('EXISTS', nk) == 1 then return 'C' end
local value, head, expires, abs_s = apply(r, now)
if not value then return head end
store(nk, value, expires, now)
leave(k, r)
if KEYS[3] then index_add(KEYS[3], ARGV[8], abs_s, ARGV[1]) end
return string.sub(value, 1, head)
";

/// Rotation on a cluster, step 1 (the old and new keys live in different slots). KEYS: old
/// session. ARGV: the change arguments, member being the new key's. Takes the live record
/// out (leaving the note) and returns the new value, the length of its header and owner,
/// its TTL, the old value and its TTL, for the caller to store under the new key; nil if
/// gone, `L`... if too large.
const MOVE_OUT: &str = r"
local k, now = KEYS[1], tonumber(ARGV[1])
local r = read(k)
if not r or not (now < r.idle and now < r.abs) then return false end
local value, head, expires = apply(r, now)
if not value then return head end
leave(k, r)
return {value, tostring(head), string.format('%d', expires - now), r.v,
  string.format('%d', math.min(r.idle, r.abs) - now)}
";

/// Rotation on a cluster, undo after a collision. KEYS: old session. ARGV: the note the
/// move left (`''` if none), the old value, its TTL. Puts the record back if nothing
/// replaced the note meanwhile: 1 if it did, 0 if a revocation got there first.
const MOVE_BACK: &str = r"
local v = redis.call('GET', KEYS[1])
if (ARGV[1] == '' and not v) or v == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
";

/// KEYS: user index. ARGV: member, score (absolute deadline), now.
const INDEX_ADD: &str = r"
index_add(KEYS[1], ARGV[1], ARGV[2], ARGV[3])
return 1
";

/// KEYS: session. ARGV: user, now, how long a marker lives, `1` to leave one on an empty
/// key. Deletes the record if `user` owns it. Returns -1 if it does not (or is absent), 1
/// if a live record was deleted, 0 if an expired one was, and the new key's member if it
/// was the note a rotation left (the caller follows it). With ARGV[4] (cluster mode) an
/// empty key gets a marker for ARGV[3] ms, so a create or rotation still on its way to it
/// fails rather than escaping the revocation.
const DELETE_OWNED: &str = r"
local k = KEYS[1]
local v = redis.pcall('GET', k)
if v == false then
  if ARGV[4] == '1' then redis.call('SET', k, 'T', 'PX', ARGV[3]) end
  return -1
end
if type(v) ~= 'string' then return -1 end
if string.byte(v, 1) == 78 then
  local ol = tonumber(string.sub(v, 2, 11))
  if not ol or string.sub(v, 12, 11 + ol) ~= ARGV[1] then return -1 end
  redis.call('DEL', k)
  return string.sub(v, 12 + ol)
end
local r = parse(v)
if not r or not r.owned or r.owner ~= ARGV[1] then return -1 end
redis.call('DEL', k)
local now = tonumber(ARGV[2])
if now < r.idle and now < r.abs then return 1 end
return 0
";

/// KEYS: user index. ARGV: now, members... Drops the members given (dead sessions) and
/// those past their absolute deadline; deletes an index left empty.
const INDEX_PRUNE: &str = r"
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
local i = 2
while i <= #ARGV do
  local j = math.min(i + 199, #ARGV)
  redis.call('ZREM', KEYS[1], unpack(ARGV, i, j))
  i = j + 1
end
return redis.call('ZCARD', KEYS[1])
";

/// The compiled scripts, each sent by SHA (EVALSHA) and loaded on a `NOSCRIPT` miss.
pub(crate) struct Scripts {
    pub(crate) create: Script,
    pub(crate) write: Script,
    pub(crate) load_touching: Script,
    pub(crate) rotate: Script,
    pub(crate) move_out: Script,
    pub(crate) move_back: Script,
    pub(crate) index_add: Script,
    pub(crate) index_prune: Script,
    pub(crate) delete_owned: Script,
}

impl Scripts {
    pub(crate) fn new() -> Self {
        let with_prelude = |body: &str| Script::new(&format!("{PRELUDE}{body}"));
        Self {
            create: with_prelude(CREATE),
            write: with_prelude(WRITE),
            load_touching: Script::new(LOAD_TOUCHING),
            rotate: with_prelude(ROTATE),
            move_out: with_prelude(MOVE_OUT),
            move_back: Script::new(MOVE_BACK),
            index_add: with_prelude(INDEX_ADD),
            index_prune: Script::new(INDEX_PRUNE),
            delete_owned: with_prelude(DELETE_OWNED),
        }
    }
}
