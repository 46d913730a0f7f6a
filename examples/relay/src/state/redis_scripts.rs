//! The Lua scripts of the Redis report counters ([`super::redis_counters`]): one per update,
//! read and claim operation, and the reading of their replies. No script stops half-way on a
//! key of the wrong type (left by another, older or hostile, relay): an update replaces it, a
//! read takes it as absent. And the MTA-STS policy store's reads ([`super::redis_policy`]),
//! which check a value's size before they read it.

use std::collections::BTreeMap;

use super::counters::BucketData;

/// `KEYS`: bucket, index, the relay's ops, the day's deletion mark; `ARGV`: field, overflow
/// field (`""`: unbounded), increment, bound, the field outside the bound, retention (s),
/// bucket name, this increment's id, then the ids to forget (acknowledged). Returns the field
/// counted (nil: counted before, under this id, or the day was deleted — reported: the mark
/// then lives on for the retention).
pub(super) const INCR_SCRIPT: &str = r"
local b, idx, ops = KEYS[1], KEYS[2], KEYS[3]
local field, overflow = ARGV[1], ARGV[2]
local t = redis.call('TYPE', ops).ok
if t ~= 'hash' and t ~= 'none' then redis.call('DEL', ops) end
for i = 9, #ARGV do redis.call('HDEL', ops, ARGV[i]) end
if redis.call('EXISTS', KEYS[4]) == 1 then
  redis.call('EXPIRE', KEYS[4], ARGV[6])
  return false
end
if redis.call('HSETNX', ops, ARGV[8], 1) == 0 then return false end
redis.call('EXPIRE', ops, ARGV[6])
t = redis.call('TYPE', b).ok
if t ~= 'hash' and t ~= 'none' then redis.call('DEL', b) end
t = redis.call('TYPE', idx).ok
if t ~= 'set' and t ~= 'none' then redis.call('DEL', idx) end
if overflow ~= '' and redis.call('HEXISTS', b, field) == 0 then
  local n = redis.call('HLEN', b) - redis.call('HEXISTS', b, ARGV[5])
  if n >= tonumber(ARGV[4]) then field = overflow end
end
local r = redis.pcall('HINCRBY', b, field, ARGV[3])
if type(r) == 'table' and r.err then
  local cur = redis.call('HGET', b, field)
  if cur and string.match(cur, '^%d+$') then
    redis.call('HSET', b, field, '9223372036854775807')
  else
    redis.call('HSET', b, field, ARGV[3])
  end
end
redis.call('SADD', idx, ARGV[7])
redis.call('EXPIRE', b, ARGV[6])
redis.call('EXPIRE', idx, ARGV[6])
return field
";

/// `KEYS`: meta, index, the day's deletion mark; `ARGV`: value, retention (s), bucket name.
/// Nothing is written once the day was deleted (as [`INCR_SCRIPT`]).
pub(super) const META_SCRIPT: &str = r"
local m, idx = KEYS[1], KEYS[2]
if redis.call('EXISTS', KEYS[3]) == 1 then
  redis.call('EXPIRE', KEYS[3], ARGV[2])
  return 0
end
local t = redis.call('TYPE', m).ok
if t ~= 'string' and t ~= 'none' then redis.call('DEL', m) end
t = redis.call('TYPE', idx).ok
if t ~= 'set' and t ~= 'none' then redis.call('DEL', idx) end
redis.call('SET', m, ARGV[1], 'NX', 'EX', ARGV[2])
redis.call('SADD', idx, ARGV[3])
redis.call('EXPIRE', idx, ARGV[2])
return 1
";

/// `KEYS`: meta, bucket. Returns `{meta or nil, {field, value, ...}}`, keys of the wrong type
/// read as absent.
pub(super) const READ_SCRIPT: &str = r"
local meta = false
if redis.call('TYPE', KEYS[1]).ok == 'string' then meta = redis.call('GET', KEYS[1]) end
local fields = {}
if redis.call('TYPE', KEYS[2]).ok == 'hash' then fields = redis.call('HGETALL', KEYS[2]) end
return {meta, fields}
";

/// `KEYS`: index. Its members (none when it is not a set).
pub(super) const BUCKETS_SCRIPT: &str = r"
if redis.call('TYPE', KEYS[1]).ok ~= 'set' then return {} end
return redis.call('SMEMBERS', KEYS[1])
";

/// `KEYS`: claim; `ARGV`: token, ttl (ms). 1: taken; 0: held or done. A key of the wrong
/// type is replaced, and a value without expiry (never written by a relay) gets one, so that
/// nothing left in Redis blocks a period for ever.
pub(super) const CLAIM_SCRIPT: &str = r"
local k = KEYS[1]
local t = redis.call('TYPE', k).ok
if t ~= 'string' and t ~= 'none' then redis.call('DEL', k) end
if redis.call('SET', k, ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
if redis.call('PTTL', k) == -1 then redis.call('PEXPIRE', k, ARGV[2]) end
return 0
";

/// `KEYS`: claim; `ARGV`: token. Deletes the claim when it holds the token.
pub(super) const RELEASE_SCRIPT: &str = r"
if redis.call('TYPE', KEYS[1]).ok == 'string' and redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

/// `KEYS`: claim; `ARGV`: token, ttl (ms). 1: the claim holds the token and now expires
/// after the ttl; 0: it is someone else's, done or gone (unchanged).
pub(super) const EXTEND_SCRIPT: &str = r"
if redis.call('TYPE', KEYS[1]).ok == 'string' and redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
";

/// `KEYS`: claim. 1: done; 0: free, held, or of the wrong type.
pub(super) const IS_DONE_SCRIPT: &str = r"
if redis.call('TYPE', KEYS[1]).ok == 'string' and redis.call('GET', KEYS[1]) == 'done' then
  return 1
end
return 0
";

/// `KEYS`: a policy entry; `ARGV`: the largest value read (bytes), `1` to delete the key.
/// Returns `{-1}` when the key is absent, `{length}` when its value is larger (not read),
/// else `{length, value}`. A key that is not a string is an error (`WRONGTYPE`, as `GET`),
/// except when it is being deleted: then it is deleted and reads as absent (a broken or
/// hostile key can always be purged).
pub(super) const POLICY_GET_SCRIPT: &str = r"
local t = redis.call('TYPE', KEYS[1]).ok
if t == 'none' then return {-1} end
if t ~= 'string' then
  if ARGV[2] == '1' then
    redis.call('DEL', KEYS[1])
    return {-1}
  end
  return redis.error_reply('WRONGTYPE Operation against a key holding the wrong kind of value')
end
local n = redis.call('STRLEN', KEYS[1])
local v = false
if n <= tonumber(ARGV[1]) then v = redis.call('GET', KEYS[1]) end
if ARGV[2] == '1' then redis.call('DEL', KEYS[1]) end
if n == 0 and not v then return {-1} end
if not v then return {n} end
return {n, v}
";

/// `KEYS`: policy entries; `ARGV`: the largest value read (bytes). Returns two items per
/// key: `-1` and `''` when the key is absent or not a string, its length and `''` when its
/// value is larger (not read), else its length and its value.
pub(super) const POLICY_LIST_SCRIPT: &str = r"
local max = tonumber(ARGV[1])
local out = {}
for i, k in ipairs(KEYS) do
  local n, v = -1, ''
  if redis.call('TYPE', k).ok == 'string' then
    n = redis.call('STRLEN', k)
    if n <= max then v = redis.call('GET', k) end
  end
  out[2 * i - 1] = n
  out[2 * i] = v
end
return out
";

/// A stored value as a size-checked script read it.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum SizedValue {
    /// No such key (or, listing, not a string).
    Absent,
    /// Larger than the limit: this many bytes, not read.
    TooLarge(u64),
    /// The value.
    Value(Vec<u8>),
}

/// One value of a [`POLICY_GET_SCRIPT`] or [`POLICY_LIST_SCRIPT`] reply: its length, then the
/// value unless it was too large.
pub(super) fn sized_value(len: Option<&redis::Value>, value: Option<redis::Value>) -> SizedValue {
    let len = match len {
        Some(redis::Value::Int(n)) => *n,
        _ => -1,
    };
    let Ok(len) = u64::try_from(len) else {
        return SizedValue::Absent;
    };
    match value {
        Some(redis::Value::BulkString(b)) if b.len() as u64 == len => SizedValue::Value(b),
        _ => SizedValue::TooLarge(len),
    }
}

/// A [`READ_SCRIPT`] reply as a bucket: a meta that is not UTF-8 is absent; fields that are
/// not UTF-8, or whose value is not a counter (a non-negative integer), are skipped.
pub(super) fn bucket_data(reply: Vec<redis::Value>) -> BucketData {
    let bytes = |v: redis::Value| match v {
        redis::Value::BulkString(b) => Some(b),
        redis::Value::SimpleString(s) => Some(s.into_bytes()),
        _ => None,
    };
    let mut reply = reply.into_iter();
    let meta = reply
        .next()
        .and_then(bytes)
        .and_then(|b| String::from_utf8(b).ok());
    let mut fields = BTreeMap::new();
    let mut skipped = 0usize;
    if let Some(redis::Value::Array(items)) = reply.next() {
        let mut items = items.into_iter();
        while let (Some(f), Some(v)) = (items.next(), items.next()) {
            let field = bytes(f).and_then(|b| String::from_utf8(b).ok());
            let value = bytes(v)
                .and_then(|b| String::from_utf8(b).ok())
                .and_then(|v| v.parse::<u64>().ok());
            match (field, value) {
                (Some(f), Some(n)) => {
                    fields.insert(f, n);
                }
                _ => skipped += 1,
            }
        }
    }
    if skipped > 0 {
        tracing::warn!(skipped, "report counters: unusable fields in Redis skipped");
    }
    BucketData {
        meta,
        fields: fields.into_iter().collect(),
    }
}
