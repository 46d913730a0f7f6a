//! `[state]`: where the relay keeps the state that several relays behind one MX may share —
//! the MTA-STS policy cache and the TLS-RPT report counters.
//!
//! ```toml
//! [state]
//! backend = "file"                    # the default: on disk, no server
//! # dir = "relay-data/state"          # file backend: report counters and claims (default: the
//!                                     # directory "state" next to the spool directory)
//! # backend = "redis"
//! # url = "redis://127.0.0.1:6379/0"  # Redis or Valkey (redis:// or unix://; no TLS)
//! # key_prefix = "relay:"             # every key starts with it
//! # connect_timeout_ms = 200          # a delivery never waits longer for Redis
//! # response_timeout_ms = 500
//! # retry_interval_ms = 1000          # while Redis is unreachable: how often it is tried again
//! # max_buffered = 100000             # counter updates kept in memory while Redis is down
//!                                     # (a bucket's policy description counts as one)
//! ```
//!
//! The MTA-STS policy cache always has its local copy under `delivery.mta_sts.cache_dir`: the
//! file backend's store, and the Redis backend's fallback while Redis is unreachable.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The file backend's directory when neither `state.dir` nor a spool directory says where
/// (relative to the working directory).
pub const DEFAULT_STATE_DIR: &str = "relay-data/state";
/// The name of the default state directory, next to the spool directory.
pub const STATE_DIR_NAME: &str = "state";
/// Default of `state.key_prefix`.
pub const DEFAULT_KEY_PREFIX: &str = "relay:";
/// Longest `state.key_prefix`.
pub const MAX_KEY_PREFIX: usize = 64;
/// Most counter updates (distinct bucket fields) buffered while Redis is down, at most.
pub const MAX_BUFFERED_LIMIT: usize = 10_000_000;

/// Which store keeps the shared state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Backend {
    /// Files under `state.dir` and `delivery.mta_sts.cache_dir`: one relay, no server.
    #[default]
    File,
    /// A Redis or Valkey server shared by several relays (`state.url`).
    Redis,
}

impl Backend {
    /// `"file"` or `"redis"`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::File => "file",
            Self::Redis => "redis",
        }
    }
}

/// A Redis URL. Its `Debug` and `Display` hide the password (`redis://user:***@host/0`), so
/// the configuration can be logged and printed by `--check-config`.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct RedisUrl(String);

impl RedisUrl {
    /// Wraps `url` (checked by [`StateConfig::validate`]).
    #[must_use]
    pub fn new(url: impl Into<String>) -> Self {
        Self(url.into())
    }

    /// The URL with its password: only for connecting, never for logs.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URL with the password replaced by `***`.
    #[must_use]
    pub fn redacted(&self) -> String {
        let Some((scheme, rest)) = self.0.split_once("://") else {
            return self.0.clone();
        };
        let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(authority_end);
        let Some((userinfo, host)) = authority.rsplit_once('@') else {
            return self.0.clone();
        };
        // no `:` in the user information: a user name alone, nothing secret
        let Some((user, _password)) = userinfo.split_once(':') else {
            return self.0.clone();
        };
        format!("{scheme}://{user}:***@{host}{tail}")
    }
}

impl std::fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RedisUrl({:?})", self.redacted())
    }
}

impl std::fmt::Display for RedisUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl Serialize for RedisUrl {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.redacted())
    }
}

/// `[state]`. Every field has a default, so the table may be absent.
///
/// ```
/// use relay::state::{Backend, StateConfig};
/// let c: StateConfig = toml::from_str("backend = \"redis\"\nurl = \"redis://:pw@127.0.0.1:6379/0\"\n").unwrap();
/// assert_eq!(c.backend, Backend::Redis);
/// c.validate().unwrap();
/// assert_eq!(c.url.unwrap().to_string(), "redis://:***@127.0.0.1:6379/0");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct StateConfig {
    /// `"file"` (default) or `"redis"`.
    pub backend: Backend,
    /// File backend: the directory of the report counters and claims (relative to the working
    /// directory); default: `state` next to the spool directory (`relay-data/state`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dir: Option<PathBuf>,
    /// Redis backend: `redis://[user:password@]host:port/db` or `unix:///path`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<RedisUrl>,
    /// Redis backend: the prefix of every key (several relay groups may share one server).
    pub key_prefix: String,
    /// Redis backend: TCP connect limit, milliseconds.
    pub connect_timeout_ms: u64,
    /// Redis backend: reply limit, milliseconds.
    pub response_timeout_ms: u64,
    /// Redis backend: while Redis is unreachable, how often it is tried again, milliseconds.
    pub retry_interval_ms: u64,
    /// Redis backend: most distinct counter fields buffered in memory while Redis is
    /// unreachable; updates beyond are dropped and counted.
    ///
    /// A bucket's buffered description (`set_meta`: the policy its report names) counts as
    /// one entry, as a counter field does. That is deliberate: there is one per bucket, a
    /// bucket's counts cannot be reported without it, so it is kept on the same terms, and
    /// every description comes with at least one field of its bucket (at most half the
    /// entries are descriptions). The bound is on entries, not bytes: a field takes a few
    /// hundred bytes, a description its policy's text and MX names — usually under 1 KiB, at
    /// most about 130 KiB for an MTA-STS policy of the 64 KiB limit ([`super::MAX_META_LEN`]
    /// in any case). With the default 100,000, typically some tens of MB; in the worst case
    /// (50,000 policy domains with 64 KiB policies, each delivered to during one outage)
    /// several GB — lower it to bound memory tighter.
    pub max_buffered: usize,
}

impl Default for StateConfig {
    fn default() -> Self {
        Self {
            backend: Backend::File,
            dir: None,
            url: None,
            key_prefix: DEFAULT_KEY_PREFIX.into(),
            connect_timeout_ms: 200,
            response_timeout_ms: 500,
            retry_interval_ms: 1000,
            max_buffered: 100_000,
        }
    }
}

impl StateConfig {
    /// A Redis configuration for `url` with the other values at their defaults.
    #[must_use]
    pub fn redis(url: impl Into<String>) -> Self {
        Self {
            backend: Backend::Redis,
            url: Some(RedisUrl::new(url)),
            ..Self::default()
        }
    }

    /// A file configuration with its data under `dir`.
    #[must_use]
    pub fn file(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: Some(dir.into()),
            ..Self::default()
        }
    }

    /// Checks every value. `Err((key, reason))`, the key without the `state.` prefix.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.dir.as_ref().is_some_and(|d| d.as_os_str().is_empty()) {
            return Err(("dir", "must name a directory".into()));
        }
        match (self.backend, &self.url) {
            (Backend::Redis, None) => {
                return Err(("url", "backend = \"redis\" needs a url".into()));
            }
            (Backend::File, Some(_)) => {
                return Err(("url", "only with backend = \"redis\"".into()));
            }
            (Backend::Redis, Some(url)) => check_url(url)?,
            (Backend::File, None) => {}
        }
        if self.key_prefix.len() > MAX_KEY_PREFIX
            || self
                .key_prefix
                .chars()
                .any(|c| c.is_whitespace() || c.is_control())
        {
            return Err((
                "key_prefix",
                format!("at most {MAX_KEY_PREFIX} characters, no spaces or control characters"),
            ));
        }
        for (key, v, max) in [
            ("connect_timeout_ms", self.connect_timeout_ms, 10_000),
            ("response_timeout_ms", self.response_timeout_ms, 10_000),
            ("retry_interval_ms", self.retry_interval_ms, 600_000),
        ] {
            if v == 0 || v > max {
                return Err((key, format!("must be 1 to {max}")));
            }
        }
        if self.max_buffered == 0 || self.max_buffered > MAX_BUFFERED_LIMIT {
            return Err(("max_buffered", format!("must be 1 to {MAX_BUFFERED_LIMIT}")));
        }
        Ok(())
    }

    /// The file backend's directory: `state.dir`, else `state` next to `spool_dir`.
    #[must_use]
    pub fn dir_next_to(&self, spool_dir: &Path) -> PathBuf {
        self.dir.clone().unwrap_or_else(|| {
            spool_dir
                .parent()
                .unwrap_or(Path::new("."))
                .join(STATE_DIR_NAME)
        })
    }

    /// The connect limit.
    #[must_use]
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }

    /// The reply limit.
    #[must_use]
    pub fn response_timeout(&self) -> Duration {
        Duration::from_millis(self.response_timeout_ms)
    }

    /// The retry interval while Redis is unreachable.
    #[must_use]
    pub fn retry_interval(&self) -> Duration {
        Duration::from_millis(self.retry_interval_ms)
    }
}

/// `redis://` or `unix://` / `redis+unix://`, parsed by redis-rs (no connection is made).
fn check_url(url: &RedisUrl) -> Result<(), (&'static str, String)> {
    let text = url.expose();
    let scheme = text.split_once("://").map(|(s, _)| s);
    if !matches!(scheme, Some("redis" | "unix" | "redis+unix")) {
        return Err((
            "url",
            format!(
                "{}: use redis://host:port/db or unix:///path (no TLS: keep Redis on loopback or a private network)",
                url.redacted()
            ),
        ));
    }
    redis::Client::open(text)
        .map(drop)
        .map_err(|e| ("url", format!("{}: {e}", url.redacted())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_and_bad_values_name_their_key() {
        let c = StateConfig::default();
        assert_eq!(c.backend, Backend::File);
        c.validate().unwrap();
        assert_eq!(
            c.dir_next_to(Path::new("relay-data/spool")),
            Path::new("relay-data/state")
        );
        assert_eq!(
            StateConfig::file("/x").dir_next_to(Path::new("relay-data/spool")),
            Path::new("/x")
        );
        StateConfig::redis("redis://127.0.0.1:6379/0")
            .validate()
            .unwrap();
        for (text, key) in [
            ("backend = \"redis\"", "url"),
            ("url = \"redis://127.0.0.1/\"", "url"),
            ("backend = \"redis\"\nurl = \"rediss://h:1/\"", "url"),
            ("backend = \"redis\"\nurl = \"http://h:1/\"", "url"),
            ("dir = \"\"", "dir"),
            ("key_prefix = \"a b\"", "key_prefix"),
            ("connect_timeout_ms = 0", "connect_timeout_ms"),
            ("response_timeout_ms = 10001", "response_timeout_ms"),
            ("retry_interval_ms = 0", "retry_interval_ms"),
            ("max_buffered = 0", "max_buffered"),
        ] {
            let c: StateConfig = toml::from_str(text).unwrap();
            assert_eq!(c.validate().unwrap_err().0, key, "{text}");
        }
        assert!(toml::from_str::<StateConfig>("backend = \"memcached\"").is_err());
        assert!(toml::from_str::<StateConfig>("urls = \"x\"").is_err());
    }

    #[test]
    fn the_password_never_shows() {
        for (url, shown) in [
            ("redis://:s3cret@h:6379/0", "redis://:***@h:6379/0"),
            ("redis://user:s3cret@h:6379/0", "redis://user:***@h:6379/0"),
            ("redis://alice@h/", "redis://alice@h/"),
            ("redis://h:6379/0", "redis://h:6379/0"),
            ("unix:///run/redis.sock", "unix:///run/redis.sock"),
        ] {
            let u = RedisUrl::new(url);
            assert_eq!(u.to_string(), shown, "{url}");
            assert!(!format!("{u:?}").contains("s3cret"), "{url}");
        }
        let c = StateConfig::redis("redis://u:s3cret@h:1/0");
        let printed = toml::to_string(&c).unwrap();
        assert!(!printed.contains("s3cret"), "{printed}");
        assert!(!format!("{c:?}").contains("s3cret"));
    }
}
