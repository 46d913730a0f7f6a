//! The TOML configuration: `[[mail_flow_policy]]` and `[[sender_group]]` tables. Every error
//! names the file, the line and the offending text.
//!
//! ```toml
//! [[mail_flow_policy]]
//! name = "TLS_REQUIRED"
//! behavior = "accept"          # accept | relay | reject | tcp-refuse | continue
//! tls = "required"             # no (default) | preferred | required
//! max_message_size = 20971520  # optional limits, all positive integers
//! max_recipients_per_message = 100
//! max_messages_per_connection = 10
//! max_concurrent_connections_per_ip = 10
//! banner = "mail.example.com ESMTP"
//!
//! [[sender_group]]
//! name = "CRES"
//! order = 1
//! policy = "TLS_REQUIRED"
//! senders = [".res.cisco.com", ".cres.iphmx.com", "208.90.57.0/26", "204.15.81.0/26"]
//! comment = "optional"
//! ```

use std::num::{NonZeroU32, NonZeroU64};
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::entry::SenderEntry;
use crate::error::{Error, Location};
use crate::policy::{Behavior, Limits, ListenerTls, MailFlowPolicy};
use crate::table::{HostAccessTable, SenderGroup};

/// Largest configuration text accepted.
pub const MAX_CONFIG_BYTES: u64 = 64 * 1024 * 1024;
/// Longest offending text quoted in an error.
const MAX_QUOTE: usize = 80;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    mail_flow_policy: Vec<RawPolicy>,
    #[serde(default)]
    sender_group: Vec<RawGroup>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    name: Spanned<String>,
    behavior: Behavior,
    #[serde(default)]
    tls: ListenerTls,
    max_message_size: Option<NonZeroU64>,
    max_recipients_per_message: Option<NonZeroU32>,
    max_messages_per_connection: Option<NonZeroU32>,
    max_concurrent_connections_per_ip: Option<NonZeroU32>,
    banner: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGroup {
    name: Spanned<String>,
    order: Spanned<u32>,
    policy: Spanned<String>,
    senders: Spanned<Vec<Spanned<String>>>,
    #[allow(dead_code)]
    comment: Option<String>,
}

/// Turns byte spans of one text into located errors.
struct Locator<'a> {
    file: &'a Path,
    text: &'a str,
}

impl Locator<'_> {
    fn at(&self, span: Range<usize>, error: Error) -> Error {
        let start = span.start.min(self.text.len());
        let end = span.end.clamp(start, self.text.len());
        let before = self.text.get(..start).unwrap_or("");
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        let quoted = self.text.get(start..end).unwrap_or("");
        let quoted = quoted.lines().next().unwrap_or("");
        let quoted: String = quoted.chars().take(MAX_QUOTE).collect();
        Error::Config {
            location: Location {
                file: self.file.to_owned(),
                line,
                column,
                text: quoted,
            },
            source: Box::new(error),
        }
    }
}

impl HostAccessTable {
    /// Reads and parses a TOML configuration file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, Error> {
        let path = path.as_ref();
        let io = |e: std::io::Error| Error::Io {
            file: path.to_owned(),
            kind: e.kind(),
        };
        let size = std::fs::metadata(path).map_err(io)?.len();
        if size > MAX_CONFIG_BYTES {
            return Err(Error::ConfigTooLarge {
                bytes: size,
                max: MAX_CONFIG_BYTES,
            });
        }
        let text = std::fs::read_to_string(path).map_err(io)?;
        Self::from_toml(path, &text)
    }

    /// Parses a TOML configuration; `file` names it in errors (the argument order of
    /// `smtp_tls_policy`'s `DestinationControls::from_toml`).
    pub fn from_toml(file: impl Into<PathBuf>, text: &str) -> Result<Self, Error> {
        let file = file.into();
        if text.len() as u64 > MAX_CONFIG_BYTES {
            return Err(Error::ConfigTooLarge {
                bytes: text.len() as u64,
                max: MAX_CONFIG_BYTES,
            });
        }
        let loc = Locator { file: &file, text };
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            let message = e.message().trim_end().to_owned();
            loc.at(e.span().unwrap_or(0..0), Error::Toml { message })
        })?;
        let mut policies = Vec::with_capacity(raw.mail_flow_policy.len());
        for p in raw.mail_flow_policy {
            let name_span = p.name.span();
            let limits = Limits {
                max_message_size: p.max_message_size,
                max_recipients_per_message: p.max_recipients_per_message,
                max_messages_per_connection: p.max_messages_per_connection,
                max_concurrent_connections_per_ip: p.max_concurrent_connections_per_ip,
            };
            let mut policy = MailFlowPolicy::new(p.name.get_ref(), p.behavior)
                .map_err(|e| loc.at(name_span.clone(), e))?
                .with_tls(p.tls)
                .with_limits(limits);
            if let Some(banner) = p.banner {
                policy = policy
                    .with_banner(banner.get_ref())
                    .map_err(|e| loc.at(banner.span(), e))?;
            }
            if policies
                .iter()
                .any(|q: &MailFlowPolicy| q.name() == policy.name())
            {
                let name = policy.name().to_owned();
                return Err(loc.at(name_span, Error::DuplicatePolicy { name }));
            }
            policies.push(policy);
        }
        let mut groups: Vec<SenderGroup> = Vec::with_capacity(raw.sender_group.len());
        let mut entries = 0usize;
        for g in raw.sender_group {
            let name = g.name.get_ref();
            if policies.iter().all(|p| p.name() != g.policy.get_ref()) {
                let error = Error::UnknownPolicy {
                    group: name.clone(),
                    policy: g.policy.get_ref().clone(),
                };
                return Err(loc.at(g.policy.span(), error));
            }
            if let Some(first) = groups.iter().find(|o| o.order() == *g.order.get_ref()) {
                let error = Error::DuplicateOrder {
                    order: *g.order.get_ref(),
                    first: first.name().to_owned(),
                    second: name.clone(),
                };
                return Err(loc.at(g.order.span(), error));
            }
            if groups.iter().any(|o| o.name() == name) {
                return Err(loc.at(g.name.span(), Error::DuplicateGroup { name: name.clone() }));
            }
            let senders_span = g.senders.span();
            let raw_senders = g.senders.into_inner();
            entries += raw_senders.len();
            if entries > crate::MAX_ENTRIES {
                return Err(loc.at(
                    senders_span,
                    Error::TooManyEntries {
                        max: crate::MAX_ENTRIES,
                    },
                ));
            }
            let mut senders = Vec::with_capacity(raw_senders.len());
            for s in raw_senders {
                let entry = SenderEntry::parse(s.get_ref()).map_err(|e| loc.at(s.span(), e))?;
                senders.push(entry);
            }
            let group = SenderGroup::new(name, *g.order.get_ref(), g.policy.get_ref(), senders)
                .map_err(|e| match e {
                    Error::EmptyGroup { .. } => loc.at(senders_span, e),
                    _ => loc.at(g.name.span(), e),
                })?;
            groups.push(group);
        }
        Self::new(policies, groups).map_err(|e| loc.at(0..0, e))
    }
}
