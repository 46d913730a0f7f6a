//! How a [`DaneResolver`](super::DaneResolver) validates DNSSEC ([`Validation`]), with which
//! trust anchors ([`TrustAnchorSet`]), and whether that validation has been proven by a probe
//! ([`ValidationState`]).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use hickory_resolver::proto::dnssec::TrustAnchors;

use crate::Error;

/// What [`Validation::in_process`] trusts without a file: the IANA root zone's key-signing
/// keys as built into hickory-proto 0.26 (`TrustAnchors::default()`).
pub const BUILT_IN_ROOT_ANCHORS: &str =
    "IANA root zone KSK-2017 (key tag 20326) and KSK-2024 (key tag 38696), built in";

/// Most upstream resolvers of one in-process validator.
pub const MAX_UPSTREAMS: usize = 8;

/// How answers are validated.
#[derive(Clone)]
#[non_exhaustive]
pub enum Validation {
    /// hickory validates in-process from `trust_anchors`; `upstreams` are recursive resolvers
    /// (tried in order; they must pass DNSSEC records through, they need not validate).
    InProcess {
        /// The recursive resolvers to ask (1 to [`MAX_UPSTREAMS`]).
        upstreams: Vec<SocketAddr>,
        /// Trust anchors (DNSKEYs).
        trust_anchors: TrustAnchorSet,
    },
    /// Trust the AD bit of this validating resolver; must be a loopback address.
    TrustAd {
        /// The validating resolver.
        resolver: SocketAddr,
    },
}

impl std::fmt::Debug for Validation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::InProcess {
                upstreams,
                trust_anchors,
            } => f
                .debug_struct("InProcess")
                .field("upstreams", upstreams)
                .field("root_anchors", &trust_anchors.len())
                .finish(),
            Self::TrustAd { resolver } => f
                .debug_struct("TrustAd")
                .field("resolver", resolver)
                .finish(),
        }
    }
}

impl Validation {
    /// In-process validation asking `upstreams`, trusting the DNSKEY records of `anchor_file`
    /// or, without a file, the IANA root anchors built into hickory ([`BUILT_IN_ROOT_ANCHORS`]).
    ///
    /// ```
    /// use dane_verify::resolver::Validation;
    /// let v = Validation::in_process(vec!["127.0.0.1:53".parse().unwrap()], None).unwrap();
    /// assert!(matches!(v, Validation::InProcess { .. }));
    /// assert!(Validation::in_process(Vec::new(), None).is_err());
    /// ```
    pub fn in_process(
        upstreams: Vec<SocketAddr>,
        anchor_file: Option<&Path>,
    ) -> Result<Self, Error> {
        if upstreams.is_empty() || upstreams.len() > MAX_UPSTREAMS {
            return Err(Error::Config {
                reason: format!(
                    "in-process validation needs 1 to {MAX_UPSTREAMS} upstream resolvers, not {}",
                    upstreams.len()
                ),
            });
        }
        let trust_anchors = match anchor_file {
            Some(path) => TrustAnchorSet::from_file(path)?,
            None => TrustAnchorSet::iana_root(),
        };
        Ok(Self::InProcess {
            upstreams,
            trust_anchors,
        })
    }

    /// In-process validation with the DNSKEY records in `path` (zone-file lines, as
    /// `dnssec-lab.sh` writes `test.dnskeys`), asking `upstream`.
    pub fn in_process_from_file(upstream: SocketAddr, path: &Path) -> Result<Self, Error> {
        Self::in_process(vec![upstream], Some(path))
    }
}

/// The DNSSEC trust anchors (DNSKEYs) an in-process validator starts from: the IANA root
/// zone's key-signing keys ([`Self::iana_root`], [`BUILT_IN_ROOT_ANCHORS`]) or the DNSKEY
/// records of a file (for a private zone, the whole DNSKEY RRset of its apex). Cheap to clone.
///
/// ```
/// use dane_verify::resolver::TrustAnchorSet;
/// assert_eq!(TrustAnchorSet::iana_root().len(), 2);
/// assert!(TrustAnchorSet::from_zone_text("example. 3600 IN A 192.0.2.1\n").is_err());
/// ```
#[derive(Clone)]
pub struct TrustAnchorSet(Arc<TrustAnchors>);

impl TrustAnchorSet {
    /// The IANA root zone's key-signing keys built into hickory-proto
    /// ([`BUILT_IN_ROOT_ANCHORS`]).
    #[must_use]
    pub fn iana_root() -> Self {
        Self(Arc::new(TrustAnchors::default()))
    }

    /// The DNSKEY records of the zone-file lines in `path` (as `dnssec-lab.sh` writes
    /// `test.dnskeys`); a file without a DNSKEY record is refused.
    pub fn from_file(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::TrustAnchor {
            reason: format!("{}: {e}", path.display()),
        })?;
        Self::from_zone_text(&text).map_err(|e| match e {
            Error::TrustAnchor { reason } => Error::TrustAnchor {
                reason: format!("{}: {reason}", path.display()),
            },
            other => other,
        })
    }

    /// The DNSKEY records of zone-file text; text without a DNSKEY record is refused.
    pub fn from_zone_text(text: &str) -> Result<Self, Error> {
        // hickory's emptiness check counts root keys only: look for a DNSKEY ourselves
        if !text
            .lines()
            .any(|l| l.split_whitespace().any(|t| t == "DNSKEY"))
        {
            return Err(Error::TrustAnchor {
                reason: "no DNSKEY records".to_owned(),
            });
        }
        let anchors: TrustAnchors = text.parse().map_err(|e| Error::TrustAnchor {
            reason: format!("{e}"),
        })?;
        Ok(Self(Arc::new(anchors)))
    }

    /// How many keys the set holds.
    #[must_use]
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the set holds no key.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub(crate) fn hickory(&self) -> Arc<TrustAnchors> {
        Arc::clone(&self.0)
    }
}

impl std::fmt::Debug for TrustAnchorSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrustAnchorSet")
            .field("keys", &self.len())
            .finish()
    }
}

/// Whether a [`DaneResolver`](super::DaneResolver) has been shown to validate DNSSEC
/// ([`DaneResolver::probe`](super::DaneResolver::probe)).
///
/// Until it is [`ValidationState::Validating`], the resolver reports every status as
/// [`DnssecStatus::Indeterminate`](crate::DnssecStatus::Indeterminate) (bogus stays bogus). The default is the least trusted value.
#[must_use]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum ValidationState {
    /// No probe has succeeded yet and none has shown the resolver not to validate (not probed
    /// yet, or the probe got no answer: offline, timeout, SERVFAIL).
    #[default]
    Unproven,
    /// The last conclusive probe answer was secure.
    Validating,
    /// A probe answer came back but was not secure: the resolver does not validate (no AD bit,
    /// a stripped or unsigned answer), or, before any success, the trust anchor does not fit.
    NotValidating,
}

impl ValidationState {
    /// Whether validation is proven (statuses are reported as they are).
    #[must_use]
    pub fn is_proven(self) -> bool {
        self == Self::Validating
    }

    /// Lower-case name for logs and JSON: `unproven`, `validating`, `not-validating`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unproven => "unproven",
            Self::Validating => "validating",
            Self::NotValidating => "not-validating",
        }
    }

    pub(super) fn to_u8(self) -> u8 {
        match self {
            Self::Unproven => 0,
            Self::Validating => 1,
            Self::NotValidating => 2,
        }
    }

    pub(super) fn from_u8(v: u8) -> Self {
        match v {
            1 => Self::Validating,
            2 => Self::NotValidating,
            _ => Self::Unproven,
        }
    }
}
