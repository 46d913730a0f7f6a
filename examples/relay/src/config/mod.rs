//! The relay's configuration file (TOML): listeners, spool, limits, TLS, logging and delivery.
//!
//! ```toml
//! [[listener]]
//! name = "public"
//! address = "0.0.0.0:25"
//! kind = "public"                 # public: mail from the internet; private: submission/relay
//! certificate = "mx"              # a certificate name in the cert store ("demo" = built-in)
//! hat = "hat.toml"                # Host Access Table, relative to this file
//! hostname = "mx.example.org"     # greeting / EHLO / Received name (default: delivery.ehlo_name)
//! dns_resolver = "127.0.0.1:53"   # PTR / DNS-list lookups of the HAT (default: the system's)
//!
//! [spool]
//! dir = "relay-data/spool"        # relative to the working directory
//! commit = "group"                # "group" (group commit) | "per-message"
//!
//! [limits]                        # see `InboundLimits`
//! [tls]
//! cert_store = "relay-data/certs"
//! [log]
//! format = "text"                 # "text" | "json"
//! filter = "info"                 # tracing EnvFilter syntax
//! [delivery]                      # the outbound half's `OutboundConfig`
//! local_domains = ["*"]           # "*" = every domain to the local maildir (the default config)
//! [[https_listener]]              # optional: the MTA-STS policy host, see `mta_sts_host`
//! [[mta_sts_policy]]
//! [state]                         # MTA-STS policy cache and TLS-RPT counters: see `state`
//! backend = "file"                # "file" (default, no server) | "redis" (shared by relays)
//! [tlsrpt]                        # TLS reporting (RFC 8460), off by default: see `tlsrpt`
//! [runtime]
//! listener_threads = 2            # SMTP connections on 2 per-core threads (0: shared runtime)
//! ```
//!
//! Unknown keys are errors. Every error names the file, the line and the key
//! ([`ConfigError`]).

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

mod locate;
mod view;

use locate::{locate, outbound_key, syntax};
pub use view::{DeliveryView, EffectiveConfig, MtaStsPolicyView, RuntimeView, StateView};

use super::inbound::{DomainSet, InboundError, InboundLimits};
use super::mta_sts_host::{self, HttpsListenerConfig, MtaStsHostError, MtaStsPolicyConfig};
use super::outbound::{OutboundConfig, OutboundError};
use super::state::StateConfig;
use super::{CommitMode, SpoolConfig};

/// The embedded default configuration (`examples/relay/config/default/`), used when `relay` runs
/// without `--config`: written to [`DEFAULT_CONFIG_DIR`] and loaded from there.
pub const DEFAULT_FILES: [(&str, &str); 3] = [
    (
        "relay.toml",
        include_str!("../../config/default/relay.toml"),
    ),
    ("hat.toml", include_str!("../../config/default/hat.toml")),
    (
        "destinations.toml",
        include_str!("../../config/default/destinations.toml"),
    ),
];

/// Where the embedded default configuration is written (relative to the working directory).
pub const DEFAULT_CONFIG_DIR: &str = "relay-data/default-config";

/// Largest configuration file read.
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;
/// Most listeners.
pub const MAX_LISTENERS: usize = 64;
/// `[runtime] listener_threads` when absent: the shared runtime (see the README's figures).
const DEFAULT_LISTENER_THREADS: usize = 0;
/// Most `[runtime] listener_threads`.
pub const MAX_LISTENER_THREADS: u32 = 256;

/// Why a configuration was refused: the file, the line (1-based, when known) and the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("{}: cannot read: {kind}", file.display())]
    Read {
        /// The file.
        file: PathBuf,
        /// The OS error kind.
        kind: std::io::ErrorKind,
    },
    /// The file is larger than [`MAX_CONFIG_BYTES`].
    #[error("{}: larger than {MAX_CONFIG_BYTES} bytes", file.display())]
    TooLarge {
        /// The file.
        file: PathBuf,
    },
    /// TOML syntax, a wrong type, or an unknown key.
    #[error("{}:{line}:{column}: key `{key}`: {message}", file.display())]
    Syntax {
        /// The file.
        file: PathBuf,
        /// Line.
        line: usize,
        /// Column.
        column: usize,
        /// The key (dotted path) the error is about.
        key: String,
        /// The parser's message.
        message: String,
    },
    /// A value is well-formed TOML but not acceptable.
    #[error("{}:{}: key `{key}`: {reason}", file.display(), line_text(*line))]
    Invalid {
        /// The file.
        file: PathBuf,
        /// Line, when it could be found.
        line: Option<usize>,
        /// The key (dotted path).
        key: String,
        /// What is wrong.
        reason: String,
    },
    /// A listener's Host Access Table does not load (the inner error names the table's file,
    /// line and text).
    #[error("{}:{}: key `{key}`: {source}", file.display(), line_text(*line))]
    Hat {
        /// The relay configuration file.
        file: PathBuf,
        /// The line of the `hat` key.
        line: Option<usize>,
        /// The key, e.g. `listener[0].hat`.
        key: String,
        /// The table's error.
        source: Box<hat_match::Error>,
    },
    /// An `[[mta_sts_policy]]` is refused (the MTA-STS policy host).
    #[error("{}:{}: key `{key}`: {source}", file.display(), line_text(*line))]
    MtaStsPolicy {
        /// The relay configuration file.
        file: PathBuf,
        /// The line of the key, when found.
        line: Option<usize>,
        /// The key, e.g. `mta_sts_policy[0].mx`.
        key: String,
        /// What is wrong.
        source: Box<MtaStsHostError>,
    },
    /// The `[delivery]` table is refused by the outbound half.
    #[error("{}:{}: {source}", file.display(), line_text(*line))]
    Delivery {
        /// The relay configuration file.
        file: PathBuf,
        /// The line of the key, when found.
        line: Option<usize>,
        /// The outbound half's error (names the `delivery.…` key).
        source: Box<OutboundError>,
    },
}

fn line_text(line: Option<usize>) -> String {
    line.map_or_else(|| "?".into(), |l| l.to_string())
}

/// What a listener is for (Cisco: public listeners take mail from the internet, private ones
/// from internal systems); informational, the HAT decides what clients may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum ListenerKind {
    /// Mail from the internet.
    #[default]
    Public,
    /// Mail from internal systems.
    Private,
}

/// One `[[listener]]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ListenerConfig {
    /// Unique name (logs, cert-store assignment).
    pub name: String,
    /// Address and port to listen on.
    pub address: SocketAddr,
    /// Public or private.
    #[serde(default)]
    pub kind: ListenerKind,
    /// Certificate name in the cert store; absent: STARTTLS is never offered.
    #[serde(default)]
    pub certificate: Option<String>,
    /// The Host Access Table file, relative to the configuration file.
    pub hat: PathBuf,
    /// Our name in the greeting, EHLO and `Received:` (default: `delivery.ehlo_name`).
    #[serde(default)]
    pub hostname: Option<String>,
    /// The DNS server for the HAT's PTR and DNS-list lookups (made only when a host-name or
    /// DNS-list entry could change the verdict); default: the system's (`/etc/resolv.conf`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_resolver: Option<SocketAddr>,
}

/// How spool writes are made durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum CommitSetting {
    /// Group commit (one directory fsync per batch).
    #[default]
    Group,
    /// One fsync round per message.
    PerMessage,
}

/// `[spool]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct SpoolSection {
    /// Spool directory (relative to the working directory).
    pub dir: PathBuf,
    /// Commit mode.
    pub commit: CommitSetting,
    /// Most operations per group commit.
    pub max_batch: usize,
}

impl Default for SpoolSection {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("relay-data/spool"),
            commit: CommitSetting::Group,
            max_batch: 256,
        }
    }
}

/// `[tls]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct TlsSection {
    /// The cert-store directory (relative to the working directory).
    pub cert_store: PathBuf,
}

impl Default for TlsSection {
    fn default() -> Self {
        Self {
            cert_store: PathBuf::from("relay-data/certs"),
        }
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per event.
    Json,
}

/// `[log]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct LogSection {
    /// Output format (`--log-format` overrides it).
    pub format: LogFormat,
    /// `tracing` filter (`RUST_LOG` overrides it).
    pub filter: String,
}

impl Default for LogSection {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            filter: "info".into(),
        }
    }
}

/// `[runtime]`: where the SMTP listeners' connections run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct RuntimeSection {
    /// Threads serving the SMTP listeners, shared by all of them: each runs a current-thread
    /// runtime and accepts on its own `SO_REUSEPORT` socket per listener (Linux spreads the
    /// connections over them), so a connection's accept, I/O and timers stay on one thread.
    /// `0`: every connection on the relay's shared multi-thread runtime. Absent: the default
    /// ([`RelayConfig::listener_threads`]). Elsewhere than on Linux always `0`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listener_threads: Option<u32>,
}

/// The whole relay configuration, validated.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct RelayConfig {
    /// The listeners.
    #[serde(rename = "listener", default)]
    pub listeners: Vec<ListenerConfig>,
    /// The spool.
    #[serde(default)]
    pub spool: SpoolSection,
    /// Global limits and timeouts.
    #[serde(default)]
    pub limits: InboundLimits,
    /// TLS (cert store).
    #[serde(default)]
    pub tls: TlsSection,
    /// Logging.
    #[serde(default)]
    pub log: LogSection,
    /// Delivery (the outbound half).
    #[serde(default)]
    pub delivery: OutboundConfig,
    /// The HTTPS listeners of the MTA-STS policy host (optional).
    #[serde(rename = "https_listener", default)]
    pub https_listeners: Vec<HttpsListenerConfig>,
    /// The MTA-STS policies the HTTPS listeners serve.
    #[serde(rename = "mta_sts_policy", default)]
    pub mta_sts_policies: Vec<MtaStsPolicyConfig>,
    /// Where the MTA-STS policy cache and the report counters are kept (`[state]`): files
    /// (default) or Redis shared by several relays.
    #[serde(default)]
    pub state: StateConfig,
    /// TLS reporting (`[tlsrpt]`, RFC 8460).
    #[serde(default)]
    pub tlsrpt: crate::tlsrpt::TlsRptConfig,
    /// Threads (`[runtime]`).
    #[serde(default)]
    pub runtime: RuntimeSection,
    /// The file it was read from.
    #[serde(skip)]
    pub file: PathBuf,
}

impl RelayConfig {
    /// Reads, parses and validates `file` (HAT files and destination controls included).
    pub fn load(file: &Path) -> Result<Self, ConfigError> {
        let read = |kind| ConfigError::Read {
            file: file.to_owned(),
            kind,
        };
        let meta = std::fs::metadata(file).map_err(|e| read(e.kind()))?;
        if meta.len() > MAX_CONFIG_BYTES {
            return Err(ConfigError::TooLarge {
                file: file.to_owned(),
            });
        }
        let text = std::fs::read_to_string(file).map_err(|e| read(e.kind()))?;
        Self::from_toml(file, &text)
    }

    /// Parses and validates `text`, read from `file` (relative paths resolve against its
    /// directory).
    pub fn from_toml(file: &Path, text: &str) -> Result<Self, ConfigError> {
        let mut config: Self = toml::from_str(text).map_err(|e| syntax(&e, text, file))?;
        config.file = file.to_owned();
        let dir = file.parent().unwrap_or(Path::new("."));
        for l in &mut config.listeners {
            if l.hat.is_relative() {
                l.hat = dir.join(&l.hat);
            }
        }
        config.delivery.resolve_paths(dir);
        // `state.dir` unset: next to the spool directory the delivery engine is given
        config.delivery.state = config.state.clone();
        config.delivery.tlsrpt = config.tlsrpt.clone();
        config.validate(text)?;
        Ok(config)
    }

    fn validate(&self, text: &str) -> Result<(), ConfigError> {
        let invalid = |key: String, reason: String| ConfigError::Invalid {
            file: self.file.clone(),
            line: locate(text, &key),
            key,
            reason,
        };
        if self.listeners.is_empty() {
            return Err(invalid(
                "listener".into(),
                "at least one [[listener]] is needed".into(),
            ));
        }
        if self.listeners.len() > MAX_LISTENERS {
            return Err(invalid(
                "listener".into(),
                format!("more than {MAX_LISTENERS}"),
            ));
        }
        let (mut names, mut addrs) = (HashSet::new(), HashSet::new());
        for (i, l) in self.listeners.iter().enumerate() {
            let key = |k: &str| format!("listener[{i}].{k}");
            if l.name.is_empty() || l.name.len() > 64 || l.name.chars().any(char::is_control) {
                return Err(invalid(key("name"), "1 to 64 printable characters".into()));
            }
            if !names.insert(&l.name) {
                return Err(invalid(key("name"), format!("duplicate name {:?}", l.name)));
            }
            if !addrs.insert(l.address) {
                return Err(invalid(key("address"), format!("{} used twice", l.address)));
            }
            if let Some(h) = &l.hostname
                && smtp_tls_policy::identity::DnsName::parse(h).is_err()
            {
                return Err(invalid(
                    key("hostname"),
                    format!("{h:?} is not a host name"),
                ));
            }
            if let Some(c) = &l.certificate
                && cert_store::validate_name(c).is_err()
            {
                return Err(invalid(
                    key("certificate"),
                    format!("{c:?} is not a certificate name"),
                ));
            }
            let hat = self.hat(i).map_err(|source| ConfigError::Hat {
                file: self.file.clone(),
                line: locate(text, &key("hat")),
                key: key("hat"),
                source: Box::new(source),
            })?;
            if l.certificate.is_none()
                && let Some(p) = hat
                    .policies()
                    .iter()
                    .find(|p| p.tls() != hat_match::ListenerTls::No)
            {
                return Err(invalid(
                    key("certificate"),
                    InboundError::TlsWithoutCertificate {
                        listener: l.name.clone(),
                        policy: p.name().into(),
                        tls: p.tls().as_str(),
                    }
                    .to_string(),
                ));
            }
        }
        self.validate_mta_sts_host(text, &addrs)?;
        self.limits
            .validate()
            .map_err(|(k, reason)| invalid(format!("limits.{k}"), reason))?;
        if let Some(n) = self.runtime.listener_threads
            && n > MAX_LISTENER_THREADS
        {
            return Err(invalid(
                "runtime.listener_threads".into(),
                format!("0 to {MAX_LISTENER_THREADS}"),
            ));
        }
        if self.spool.max_batch == 0 {
            return Err(invalid(
                "spool.max_batch".into(),
                "must be at least 1".into(),
            ));
        }
        if self
            .log
            .filter
            .parse::<tracing_subscriber::EnvFilter>()
            .is_err()
        {
            return Err(invalid("log.filter".into(), "not a tracing filter".into()));
        }
        self.delivery
            .validate()
            .map_err(|source| ConfigError::Delivery {
                file: self.file.clone(),
                line: outbound_key(&source).and_then(|k| locate(text, &k)),
                source: Box::new(source),
            })?;
        self.accepted_domains()
            .map_err(|e| invalid("delivery.local_domains".into(), e.to_string()))?;
        self.state
            .validate()
            .map_err(|(k, reason)| invalid(format!("state.{k}"), reason))?;
        self.tlsrpt
            .validate()
            .map_err(|(k, reason)| invalid(format!("tlsrpt.{k}"), reason))?;
        Ok(())
    }

    /// `[[https_listener]]` and `[[mta_sts_policy]]`: listeners valid, names unique, addresses
    /// not used by any listener; policies valid, and both present or both absent.
    fn validate_mta_sts_host(
        &self,
        text: &str,
        smtp_addrs: &HashSet<SocketAddr>,
    ) -> Result<(), ConfigError> {
        let invalid = |key: String, reason: String| ConfigError::Invalid {
            file: self.file.clone(),
            line: locate(text, &key),
            key,
            reason,
        };
        if self.https_listeners.len() > mta_sts_host::config::MAX_HTTPS_LISTENERS {
            return Err(invalid(
                "https_listener".into(),
                format!("more than {}", mta_sts_host::config::MAX_HTTPS_LISTENERS),
            ));
        }
        let (mut names, mut addrs) = (HashSet::new(), smtp_addrs.clone());
        for (i, l) in self.https_listeners.iter().enumerate() {
            let key = |k: &str| format!("https_listener[{i}].{k}");
            l.validate()
                .map_err(|(k, reason)| invalid(key(k), reason))?;
            if !names.insert(&l.name) {
                return Err(invalid(key("name"), format!("duplicate name {:?}", l.name)));
            }
            if !addrs.insert(l.address) {
                return Err(invalid(key("address"), format!("{} used twice", l.address)));
            }
        }
        if self.mta_sts_policies.len() > mta_sts_host::config::MAX_POLICIES {
            return Err(invalid(
                "mta_sts_policy".into(),
                format!("more than {}", mta_sts_host::config::MAX_POLICIES),
            ));
        }
        mta_sts_host::publish_all(&self.mta_sts_policies).map_err(|(i, source)| {
            let field = match &source {
                MtaStsHostError::BadDomain { .. } | MtaStsHostError::DuplicateDomain { .. } => {
                    "domain"
                }
                MtaStsHostError::MaxAgeTooLarge { .. } => "max_age",
                _ => "mx",
            };
            let key = format!("mta_sts_policy[{i}].{field}");
            ConfigError::MtaStsPolicy {
                file: self.file.clone(),
                line: locate(text, &key),
                key,
                source: Box::new(source),
            }
        })?;
        match (
            self.https_listeners.is_empty(),
            self.mta_sts_policies.is_empty(),
        ) {
            (false, true) => Err(invalid(
                "https_listener".into(),
                "an HTTPS listener serves MTA-STS policies: add an [[mta_sts_policy]]".into(),
            )),
            (true, false) => Err(invalid(
                "mta_sts_policy".into(),
                "no [[https_listener]] serves it".into(),
            )),
            _ => Ok(()),
        }
    }

    /// Loads the Host Access Table of listener `i`.
    pub fn hat(&self, i: usize) -> Result<hat_match::HostAccessTable, hat_match::Error> {
        hat_match::HostAccessTable::from_file(&self.listeners[i].hat)
    }

    /// The host name listener `i` announces.
    #[must_use]
    pub fn hostname(&self, i: usize) -> String {
        self.listeners[i]
            .hostname
            .clone()
            .unwrap_or_else(|| self.delivery.ehlo_name.clone())
    }

    /// Recipient domains accepted from `accept` senders: the local domains and the domains with
    /// an SMTP route (like Postfix's `relay_domains`); every domain with the catch-all
    /// `local_domains = ["*"]` (everything is delivered locally, so nothing is relayed).
    pub fn accepted_domains(&self) -> Result<DomainSet, InboundError> {
        let mut set = DomainSet::new(&self.delivery.local_domains)?;
        for r in &self.delivery.routes {
            set.insert(&r.domain)?;
        }
        Ok(set)
    }

    /// Threads serving the SMTP listeners (`[runtime] listener_threads`, see
    /// [`RuntimeSection`]): the configured number, by default 0 (the shared runtime); always
    /// 0 elsewhere than on Linux (no `SO_REUSEPORT` load balancing).
    #[must_use]
    pub fn listener_threads(&self) -> usize {
        if !cfg!(target_os = "linux") {
            return 0;
        }
        self.runtime
            .listener_threads
            .map_or(DEFAULT_LISTENER_THREADS, |n| n as usize)
    }

    /// The spool settings.
    #[must_use]
    pub fn spool_config(&self) -> SpoolConfig {
        let commit = match self.spool.commit {
            CommitSetting::Group => CommitMode::Group {
                max_batch: self.spool.max_batch,
            },
            CommitSetting::PerMessage => CommitMode::PerMessage,
        };
        // The stored body holds the message plus our `Received:` header.
        SpoolConfig::default()
            .with_commit(commit)
            .with_max_body(self.limits.max_message_size + 4096)
    }

    /// The effective configuration, for printing.
    #[must_use]
    pub fn effective(&self) -> EffectiveConfig<'_> {
        EffectiveConfig::new(self)
    }
}

/// Writes the embedded default configuration to `dir` (overwriting) and returns the path of
/// its `relay.toml`.
pub fn write_default(dir: &Path) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    for (name, text) in DEFAULT_FILES {
        std::fs::write(dir.join(name), text)?;
    }
    Ok(dir.join("relay.toml"))
}

#[cfg(test)]
mod tests;
