//! Mail flow policies: what happens to a connection once its sender group is known
//! (seed "Enabling TLS on a Listener's HAT", table 1 for the TLS setting).

use std::num::{NonZeroU32, NonZeroU64};

use serde::{Deserialize, Serialize};

use crate::error::{BannerProblem, Error};

/// Longest SMTP banner text accepted (RFC 5321 §4.5.3.1.5: a reply line is at most 512 octets,
/// of which the code and separator take 4).
pub const MAX_BANNER_LEN: usize = 508;
/// Longest mail flow policy or sender group name.
pub const MAX_NAME_LEN: usize = 128;

/// What a mail flow policy does with the connection.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Behavior {
    /// Accept mail for local recipients.
    Accept,
    /// Accept and relay mail (for trusted internal senders).
    Relay,
    /// Refuse with an SMTP 554 reply at connect time (the least trusted outcome short of
    /// dropping the connection, and the default).
    #[default]
    Reject,
    /// Close the TCP connection without an SMTP greeting.
    TcpRefuse,
    /// Record the match and keep evaluating the next sender groups.
    Continue,
}

impl Behavior {
    /// The configuration spelling (`accept`, `relay`, `reject`, `tcp-refuse`, `continue`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Accept => "accept",
            Self::Relay => "relay",
            Self::Reject => "reject",
            Self::TcpRefuse => "tcp-refuse",
            Self::Continue => "continue",
        }
    }
}

/// The TLS setting of a mail flow policy (seed "Enabling TLS on a Listener's HAT", table 1).
///
/// The same type drives `smtp_tls_policy::listener::Gate`, which re-exports it.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ListenerTls {
    /// TLS is not offered. The seed's default for every listener, so the default here.
    #[default]
    No,
    /// STARTTLS is offered; the client may send in the clear.
    Preferred,
    /// STARTTLS is offered, and until it succeeds every command other than NOOP, EHLO and QUIT
    /// gets an error (RFC 3207 §4).
    Required,
}

impl ListenerTls {
    /// The configuration spelling (`no`, `preferred`, `required`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::No => "no",
            Self::Preferred => "preferred",
            Self::Required => "required",
        }
    }
}

/// Limits a mail flow policy puts on a connection; `None` means "no limit set here".
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Limits {
    /// Largest message accepted, in bytes.
    pub max_message_size: Option<NonZeroU64>,
    /// Most recipients accepted in one message.
    pub max_recipients_per_message: Option<NonZeroU32>,
    /// Most messages accepted in one connection.
    pub max_messages_per_connection: Option<NonZeroU32>,
    /// Most connections at once from one client IP.
    pub max_concurrent_connections_per_ip: Option<NonZeroU32>,
}

/// A named mail flow policy.
///
/// ```
/// use hat_match::{Behavior, MailFlowPolicy, ListenerTls};
/// let p = MailFlowPolicy::new("TLS_REQUIRED", Behavior::Accept)?.with_tls(ListenerTls::Required);
/// assert_eq!(p.tls(), ListenerTls::Required);
/// assert!(MailFlowPolicy::new("X", Behavior::Accept)?.with_banner("hi\r\n250 oops").is_err());
/// # Ok::<(), hat_match::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailFlowPolicy {
    name: Box<str>,
    behavior: Behavior,
    tls: ListenerTls,
    limits: Limits,
    banner: Option<Box<str>>,
}

impl MailFlowPolicy {
    /// A policy with TLS `no`, no limits and no banner text.
    pub fn new(name: &str, behavior: Behavior) -> Result<Self, Error> {
        check_identifier(name)?;
        Ok(Self {
            name: name.into(),
            behavior,
            tls: ListenerTls::No,
            limits: Limits::default(),
            banner: None,
        })
    }

    /// Sets the TLS setting.
    pub fn with_tls(mut self, tls: ListenerTls) -> Self {
        self.tls = tls;
        self
    }

    /// Sets the limits.
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Sets the SMTP banner text; refuses control characters (they would inject reply lines)
    /// and text longer than [`MAX_BANNER_LEN`].
    pub fn with_banner(mut self, banner: &str) -> Result<Self, Error> {
        let problem = if banner.chars().any(char::is_control) {
            Some(BannerProblem::ControlCharacter)
        } else if banner.len() > MAX_BANNER_LEN {
            Some(BannerProblem::TooLong)
        } else {
            None
        };
        if let Some(problem) = problem {
            return Err(Error::InvalidBanner {
                policy: self.name.to_string(),
                problem,
            });
        }
        self.banner = Some(banner.into());
        Ok(self)
    }

    /// The policy's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What it does with the connection.
    pub fn behavior(&self) -> Behavior {
        self.behavior
    }

    /// Its TLS setting.
    pub fn tls(&self) -> ListenerTls {
        self.tls
    }

    /// Its limits.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Its SMTP banner text, if set.
    pub fn banner(&self) -> Option<&str> {
        self.banner.as_deref()
    }
}

/// Names of policies and groups: 1 to [`MAX_NAME_LEN`] characters, no control characters.
pub(crate) fn check_identifier(name: &str) -> Result<(), Error> {
    if name.trim().is_empty() || name.len() > MAX_NAME_LEN || name.chars().any(char::is_control) {
        return Err(Error::InvalidIdentifier {
            name: name.to_owned(),
        });
    }
    Ok(())
}
