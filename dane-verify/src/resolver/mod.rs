//! hickory-resolver adapter: gathers the DNSSEC facts RFC 7672 needs for a destination (MX
//! RRset, each MX host's address records and TLSA records), concurrently per MX host, with
//! limits and a TTL-bounded cache. The decision itself is [`crate::policy::decide`].
//!
//! Two ways to get validated answers ([`Validation`]):
//! - [`Validation::InProcess`]: hickory validates itself from trust anchors — by default the
//!   IANA root zone's KSKs built into hickory-proto ([`Validation::in_process`] with no file;
//!   [`BUILT_IN_ROOT_ANCHORS`]), or a DNSKEY file (for a private zone, the whole DNSKEY RRset
//!   of its apex); the upstreams (e.g. the system's nameservers) need not validate.
//! - [`Validation::TrustAd`]: a validating resolver on loopback; its AD bit is trusted
//!   (RFC 6698 §A.3 / RFC 7672 §8.3: only over a trusted path, so loopback only).
//!
//! **Validation must be proven** ([`ValidationState`]): until [`DaneResolver::probe`] has seen
//! a secure answer, every status the resolver reports is [`DnssecStatus::Indeterminate`]
//! (bogus stays bogus), never `Secure` or `Insecure`: a resolver that does not validate makes
//! every answer look insecure, which would silently switch DANE off. Probe at start-up and
//! periodically ([`DaneResolver::probe`]); [`DestinationFacts::actions`] then keeps mandatory
//! DANE deferred and lets other destinations go without DANE.

mod backend;
mod cache;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use hickory_resolver::proto::dnssec::TrustAnchors;
use hickory_resolver::proto::rr::{Name, RData, Record, RecordType};

use self::backend::{Answer, Backend};
use self::cache::Cache;
use crate::policy::{
    Action, DaneSetting, DeferReason, HostFacts, LookupFailure, NoDaneReason, TlsaLookup,
};
use crate::{DnssecStatus, Error, TlsaRecord};

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

/// Whether a [`DaneResolver`] has been shown to validate DNSSEC ([`DaneResolver::probe`]).
///
/// Until it is [`ValidationState::Validating`], the resolver reports every status as
/// [`DnssecStatus::Indeterminate`] (bogus stays bogus). The default is the least trusted value.
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

    fn to_u8(self) -> u8 {
        match self {
            Self::Unproven => 0,
            Self::Validating => 1,
            Self::NotValidating => 2,
        }
    }

    fn from_u8(v: u8) -> Self {
        match v {
            1 => Self::Validating,
            2 => Self::NotValidating,
            _ => Self::Unproven,
        }
    }
}

/// Work bounds for lookups (construct with `..Limits::default()`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Per-query timeout.
    pub timeout: Duration,
    /// MX hosts considered per destination (lowest preference first; the rest ignored).
    pub max_mx_hosts: usize,
    /// TLSA records per RRset; more makes the lookup fail (defer), never truncate.
    pub max_tlsa_records: usize,
    /// CNAME links followed for an MX host.
    pub max_cname_depth: usize,
    /// Cached answers.
    pub max_cache_entries: usize,
    /// Upper bound on how long an answer is cached, whatever its TTL.
    pub max_cache_ttl: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            max_mx_hosts: 10,
            max_tlsa_records: 32,
            max_cname_depth: 8,
            max_cache_entries: 10_000,
            max_cache_ttl: Duration::from_secs(3600),
        }
    }
}

/// What DNS said about a destination: the MX RRset and the facts for each MX host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DestinationFacts {
    /// The next-hop domain.
    pub domain: String,
    /// DNSSEC status of the MX RRset (or of its denial).
    pub mx_status: DnssecStatus,
    /// Whether the MX lookup failed outright (SERVFAIL, bogus, timeout).
    pub mx_failure: Option<LookupFailure>,
    /// One entry per MX host (by preference), each with its facts.
    pub hosts: Vec<HostFacts>,
    /// MX hosts beyond [`Limits::max_mx_hosts`] that were ignored.
    pub ignored_mx_hosts: usize,
    /// The resolver's [`ValidationState`] when the facts were gathered; unless it is
    /// `Validating`, every status above is `Indeterminate` (or `Bogus`).
    pub validation: ValidationState,
}

impl DestinationFacts {
    /// The RFC 7672 action for each MX host under `setting`. A failed MX lookup gives no hosts:
    /// the destination as a whole defers (an empty list when the domain has no MX host at all).
    ///
    /// While the resolver's validation is not proven ([`Self::validation`]), DANE is not
    /// available: `Mandatory` defers every host (`MxLookup(Indeterminate)`: the MX status cannot
    /// be known), `Opportunistic` goes on without DANE (configured TLS,
    /// [`NoDaneReason::ValidationUnproven`]; `None` stays [`NoDaneReason::SettingNone`]), so a broken validator does not hold all mail; the
    /// answers are used as plain DNS (no MX host listed means a null MX or NXDOMAIN, as
    /// without DNSSEC). A bogus MX answer still defers.
    pub fn actions(&self, setting: DaneSetting) -> Vec<(String, Action)> {
        if !self.validation.is_proven() {
            return self.actions_unproven(setting);
        }
        if self.hosts.is_empty() && (self.mx_failure.is_some() || self.mx_status.is_failure()) {
            let action = if setting == DaneSetting::None {
                Action::Defer(DeferReason::MxLookup(DnssecStatus::Indeterminate))
            } else {
                Action::Defer(DeferReason::MxLookup(self.mx_status))
            };
            return vec![(self.domain.clone(), action)];
        }
        self.hosts
            .iter()
            .map(|h| (h.mx_host.clone(), crate::policy::decide(setting, h)))
            .collect()
    }

    fn actions_unproven(&self, setting: DaneSetting) -> Vec<(String, Action)> {
        let failed = self.mx_failure.is_some() || self.mx_status == DnssecStatus::Bogus;
        if self.hosts.is_empty() && failed {
            let status = if setting == DaneSetting::None {
                DnssecStatus::Indeterminate
            } else {
                self.mx_status
            };
            return vec![(
                self.domain.clone(),
                Action::Defer(DeferReason::MxLookup(status)),
            )];
        }
        self.hosts
            .iter()
            .map(|h| {
                let action = match setting {
                    DaneSetting::Mandatory => Action::Defer(DeferReason::MxLookup(
                        h.mx_status.combine(DnssecStatus::Indeterminate),
                    )),
                    _ if h.mx_status == DnssecStatus::Bogus => {
                        Action::Defer(DeferReason::MxLookup(DnssecStatus::Bogus))
                    }
                    DaneSetting::None => Action::ConfiguredTls(NoDaneReason::SettingNone),
                    _ => Action::ConfiguredTls(NoDaneReason::ValidationUnproven),
                };
                (h.mx_host.clone(), action)
            })
            .collect()
    }
}

/// Gathers DANE facts with a hickory backend. Cheap to share behind an `Arc`.
pub struct DaneResolver {
    backend: Backend,
    limits: Limits,
    cache: Cache,
    /// [`ValidationState`] as a `u8`: set by [`DaneResolver::probe`], read by every lookup.
    state: AtomicU8,
}

impl std::fmt::Debug for DaneResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DaneResolver")
            .field("limits", &self.limits)
            .field("validation", &self.validation_state())
            .finish_non_exhaustive()
    }
}

impl DaneResolver {
    /// Builds a resolver. [`Validation::TrustAd`] with a non-loopback address is refused.
    pub fn new(validation: Validation, limits: Limits) -> Result<Self, Error> {
        let backend = match validation {
            Validation::TrustAd { resolver } => {
                if !resolver.ip().is_loopback() {
                    return Err(Error::Config {
                        reason: format!(
                            "AD bit trusted only from a loopback resolver, not {resolver}"
                        ),
                    });
                }
                Backend::TrustAd { server: resolver }
            }
            Validation::InProcess {
                upstreams,
                trust_anchors,
            } => Backend::InProcess(Box::new(backend::in_process_resolver(
                &upstreams,
                trust_anchors.hickory(),
                limits.timeout,
            )?)),
        };
        Ok(Self {
            backend,
            cache: Cache::new(limits.max_cache_entries, limits.max_cache_ttl),
            limits,
            state: AtomicU8::new(ValidationState::Unproven.to_u8()),
        })
    }

    /// Whether validation is proven; until it is, every status is reported `Indeterminate`.
    pub fn validation_state(&self) -> ValidationState {
        ValidationState::from_u8(self.state.load(Ordering::Acquire))
    }

    /// The limits in force.
    #[must_use]
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Empties the answer cache.
    pub fn clear_cache(&self) {
        self.cache.clear();
    }

    /// The validation probe, at start-up and periodically: `signed_name`'s SOA must come back
    /// [`DnssecStatus::Secure`]; otherwise DANE is not available ([`Error::NoValidation`]). Use
    /// a name known to be signed (`.` on the internet; the lab's `test.`). Updates
    /// [`Self::validation_state`]:
    ///
    /// | probe answer | new state |
    /// |---|---|
    /// | secure | `Validating` |
    /// | insecure (no AD bit, unsigned, stripped) | `NotValidating` |
    /// | bogus | `NotValidating`, unless `Validating` already (a forged answer must not switch DANE off) |
    /// | none (timeout, SERVFAIL, network) | unchanged |
    pub async fn probe(&self, signed_name: &str) -> Result<(), Error> {
        let name = parse_name(signed_name)?;
        let answer = self
            .backend
            .query(&name, RecordType::SOA, self.limits.timeout)
            .await;
        let current = self.validation_state();
        let next = match &answer {
            Answer::Records {
                status: DnssecStatus::Secure,
                ..
            } => ValidationState::Validating,
            Answer::Records {
                status: DnssecStatus::Insecure,
                ..
            }
            | Answer::NoRecords {
                status: DnssecStatus::Insecure,
                ..
            } => ValidationState::NotValidating,
            Answer::Records {
                status: DnssecStatus::Bogus,
                ..
            }
            | Answer::NoRecords {
                status: DnssecStatus::Bogus,
                ..
            }
            | Answer::Failed {
                status: DnssecStatus::Bogus,
                ..
            } if current != ValidationState::Validating => ValidationState::NotValidating,
            _ => current,
        };
        if next != current {
            self.state.store(next.to_u8(), Ordering::Release);
            // answers cached under the other state carry statuses of that state
            self.cache.clear();
        }
        if next == ValidationState::Validating && matches!(answer, Answer::Records { .. }) {
            Ok(())
        } else {
            Err(Error::NoValidation {
                reason: format!("SOA of {signed_name} is not secure: {}", describe(&answer)),
            })
        }
    }

    /// One answer, from the cache or the backend, with its status masked while validation is
    /// not proven (the cache keeps what the backend said).
    async fn query(&self, name: &Name, rtype: RecordType) -> Answer {
        let a = match self.cache.get(name, rtype) {
            Some(a) => a,
            None => {
                let a = self.backend.query(name, rtype, self.limits.timeout).await;
                self.cache.put(name, rtype, &a);
                a
            }
        };
        if self.validation_state().is_proven() {
            a
        } else {
            a.unproven()
        }
    }

    /// All DANE facts for `domain` with SMTP service on `port`: MX lookup, then each MX host
    /// concurrently (addresses, CNAME expansion, TLSA per RFC 7672 §2.2).
    pub async fn destination(&self, domain: &str, port: u16) -> Result<DestinationFacts, Error> {
        let name = parse_name(domain)?;
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        let mut facts = DestinationFacts {
            domain: domain.clone(),
            mx_status: DnssecStatus::Indeterminate,
            mx_failure: None,
            hosts: Vec::new(),
            ignored_mx_hosts: 0,
            validation: self.validation_state(),
        };
        let mut hosts: Vec<(u16, String)> = match self.query(&name, RecordType::MX).await {
            Answer::Records {
                records, status, ..
            } => {
                facts.mx_status = status;
                records
                    .iter()
                    .filter_map(|r| match &r.data {
                        RData::MX(mx) => Some((mx.preference, name_str(&mx.exchange))),
                        _ => None,
                    })
                    .collect()
            }
            Answer::NoRecords {
                nxdomain: false,
                status,
                ..
            } => {
                // RFC 5321 §5.1: no MX -> the domain itself is the host
                facts.mx_status = status;
                vec![(0, domain.clone())]
            }
            Answer::NoRecords {
                nxdomain: true,
                status,
                ..
            } => {
                facts.mx_status = status;
                Vec::new()
            }
            Answer::Failed { failure, status } => {
                facts.mx_status = status;
                facts.mx_failure = Some(failure);
                return Ok(facts);
            }
        };
        hosts.sort();
        hosts.dedup_by(|a, b| a.1 == b.1);
        // RFC 7505 null MX: "." means no mail service.
        hosts.retain(|(_, h)| !h.is_empty());
        if hosts.len() > self.limits.max_mx_hosts {
            facts.ignored_mx_hosts = hosts.len() - self.limits.max_mx_hosts;
            hosts.truncate(self.limits.max_mx_hosts);
        }
        let mx_status = facts.mx_status;
        let lookups = hosts
            .iter()
            .map(|(_, host)| self.host_facts(&domain, host, mx_status, port));
        facts.hosts = futures::future::join_all(lookups).await;
        Ok(facts)
    }

    /// The facts for one MX host (RFC 7672 §2.2.2): address records, then TLSA records when the
    /// addresses are secure, at the CNAME-expanded name first and then the original name.
    pub async fn host_facts(
        &self,
        next_hop: &str,
        mx_host: &str,
        mx_status: DnssecStatus,
        port: u16,
    ) -> HostFacts {
        let mut facts = HostFacts {
            next_hop: next_hop.to_owned(),
            mx_host: mx_host.to_owned(),
            mx_status,
            address_status: DnssecStatus::Indeterminate,
            tlsa_base: mx_host.to_owned(),
            tlsa: TlsaLookup::NotQueried,
        };
        if !mx_status.is_secure() {
            return facts; // no DANE without a secure MX RRset: nothing more to learn
        }
        let Ok(host) = parse_name(mx_host) else {
            return facts;
        };
        // RFC 7672 §2.2.2: the TLSA base is the CNAME-expanded name. The expansion is taken from
        // whichever address answer carries it: the A answer (records, or NODATA with the chain),
        // else the AAAA answer — a host whose alias target has only AAAA records (or only A
        // records) must not lose DANE. Each family's absence is then asked at the expanded
        // name, so its denial is proven for the name that owns it (hickory cannot validate
        // "CNAME + NSEC of the target" in one answer, and drops the chain of a NODATA answer).
        let mut statuses = Vec::new();
        let mut a = self.query(&host, RecordType::A).await;
        let mut expanded = match cname_target(&host, a.cnames(), self.limits.max_cname_depth) {
            Ok(t) => t,
            Err(()) => {
                statuses.push(DnssecStatus::Indeterminate);
                None
            }
        };
        let aaaa = self
            .query(expanded.as_ref().unwrap_or(&host), RecordType::AAAA)
            .await;
        if expanded.is_none() {
            match cname_target(&host, aaaa.cnames(), self.limits.max_cname_depth) {
                Ok(Some(target)) => {
                    // the A answer was about the alias, not the target: ask the target
                    if !matches!(a, Answer::Records { .. }) {
                        a = self.query(&target, RecordType::A).await;
                    }
                    expanded = Some(target);
                }
                Ok(None) => {}
                Err(()) => statuses.push(DnssecStatus::Indeterminate),
            }
        }
        let mut any_address = false;
        for ans in [&a, &aaaa] {
            match ans {
                Answer::Records { status, .. } => {
                    any_address = true;
                    statuses.push(*status);
                }
                Answer::NoRecords { status, .. } | Answer::Failed { status, .. } => {
                    statuses.push(*status);
                }
            }
        }
        let mut status = statuses
            .into_iter()
            .reduce(DnssecStatus::combine)
            .unwrap_or_default();
        if !any_address && status.is_secure() {
            status = DnssecStatus::Indeterminate; // a host without addresses cannot be reached
        }
        facts.address_status = status;
        if !status.is_secure() {
            return facts; // RFC 7672 §2.2.2: TLSA only for hosts with secure addresses
        }
        let original = self.tlsa_lookup(&host, port).await;
        facts.tlsa = match expanded {
            Some(target) if target != host => {
                let at_target = self.tlsa_lookup(&target, port).await;
                let (lookup, used_original) = at_target.cname_fallback(|| original);
                if !used_original {
                    facts.tlsa_base = name_str(&target);
                }
                lookup
            }
            _ => original,
        };
        facts
    }

    /// The IP addresses of `host` (A then AAAA, CNAMEs followed; cached like every answer).
    pub async fn addresses(&self, host: &str) -> Result<Vec<std::net::IpAddr>, Error> {
        let name = parse_name(host)?;
        let mut out = Vec::new();
        for rtype in [RecordType::A, RecordType::AAAA] {
            if let Answer::Records { records, .. } = self.query(&name, rtype).await {
                out.extend(records.iter().filter_map(|r| r.data.ip_addr()));
            }
        }
        Ok(out)
    }

    /// The TLSA RRset at `_PORT._tcp.HOST`.
    pub async fn tlsa(&self, host: &str, port: u16) -> Result<TlsaLookup, Error> {
        Ok(self.tlsa_lookup(&parse_name(host)?, port).await)
    }

    async fn tlsa_lookup(&self, host: &Name, port: u16) -> TlsaLookup {
        let Ok(name) = Name::from_ascii(format!("_{port}._tcp.{}", name_str(host) + ".")) else {
            return TlsaLookup::Failed(LookupFailure::Other);
        };
        match self.query(&name, RecordType::TLSA).await {
            Answer::Records {
                records, status, ..
            } => {
                let tlsa: Vec<_> = records
                    .iter()
                    .filter_map(|r| match &r.data {
                        RData::TLSA(t) => Some(t),
                        _ => None,
                    })
                    .collect();
                if tlsa.len() > self.limits.max_tlsa_records {
                    tracing::warn!(%name, count = tlsa.len(), "too many TLSA records");
                    return TlsaLookup::Failed(LookupFailure::Other);
                }
                // malformed records are unusable: dropped (RFC 7671 §4.1 / RFC 7672 §2.2)
                let records: Vec<TlsaRecord> = tlsa
                    .into_iter()
                    .filter_map(|t| TlsaRecord::from_hickory(t).ok())
                    .collect();
                TlsaLookup::Found { records, status }
            }
            Answer::NoRecords { status, .. } => TlsaLookup::NotFound { status },
            Answer::Failed {
                status: DnssecStatus::Bogus,
                ..
            } => TlsaLookup::Found {
                records: Vec::new(),
                status: DnssecStatus::Bogus,
            },
            Answer::Failed { failure, .. } => TlsaLookup::Failed(failure),
        }
    }
}

/// Follows the CNAME chain from `host` in an answer; `Ok(Some(target))` when aliased.
fn cname_target(host: &Name, records: &[Record], max_depth: usize) -> Result<Option<Name>, ()> {
    let mut current = host.clone();
    let mut depth = 0;
    while let Some(next) = records.iter().find_map(|r| match &r.data {
        RData::CNAME(c) if r.name == current => Some(c.0.clone()),
        _ => None,
    }) {
        depth += 1;
        if depth > max_depth {
            return Err(());
        }
        current = next;
    }
    Ok((depth > 0).then_some(current))
}

fn parse_name(s: &str) -> Result<Name, Error> {
    let fqdn = if s.ends_with('.') {
        s.to_owned()
    } else {
        format!("{s}.")
    };
    Name::from_ascii(&fqdn).map_err(|_| Error::BadName { name: s.into() })
}

fn name_str(n: &Name) -> String {
    n.to_ascii().trim_end_matches('.').to_ascii_lowercase()
}

fn describe(a: &Answer) -> String {
    match a {
        Answer::Records { status, .. } => format!("answer is {}", status.as_str()),
        Answer::NoRecords { status, .. } => format!("no records ({})", status.as_str()),
        Answer::Failed { failure, status } => format!("{failure:?} ({})", status.as_str()),
    }
}

#[cfg(test)]
mod tests {
    use hickory_resolver::proto::dnssec::rdata::DNSKEY;

    use super::*;

    #[test]
    fn built_in_root_anchors_are_the_iana_ksks() {
        // BUILT_IN_ROOT_ANCHORS names these key tags: keep them true when hickory changes
        let anchors = TrustAnchors::default();
        let tags: Vec<u16> = (0..anchors.len())
            .map(|i| {
                let key = anchors.get(i).unwrap().clone();
                DNSKEY::new(true, true, false, key)
                    .calculate_key_tag()
                    .unwrap()
            })
            .collect();
        assert_eq!(tags, [20326, 38696]);
        for tag in tags {
            assert!(BUILT_IN_ROOT_ANCHORS.contains(&tag.to_string()));
        }
    }

    #[test]
    fn validation_state_round_trips_and_defaults_to_unproven() {
        assert_eq!(ValidationState::default(), ValidationState::Unproven);
        for s in [
            ValidationState::Unproven,
            ValidationState::Validating,
            ValidationState::NotValidating,
        ] {
            assert_eq!(ValidationState::from_u8(s.to_u8()), s);
            assert_eq!(
                s.is_proven(),
                s == ValidationState::Validating,
                "{}",
                s.as_str()
            );
        }
    }

    #[test]
    fn unproven_answers_are_indeterminate_but_bogus_stays() {
        use DnssecStatus::{Bogus, Indeterminate, Insecure, Secure};
        for (before, after) in [
            (Secure, Indeterminate),
            (Insecure, Indeterminate),
            (Bogus, Bogus),
            (Indeterminate, Indeterminate),
        ] {
            let a = Answer::NoRecords {
                nxdomain: false,
                status: before,
                ttl: 5,
                cnames: Vec::new(),
            };
            assert!(
                matches!(a.unproven(), Answer::NoRecords { status, .. } if status == after),
                "{before:?}"
            );
        }
    }

    #[test]
    fn unproven_actions_defer_mandatory_only() {
        let host = HostFacts {
            next_hop: "example.test".into(),
            mx_host: "mx.example.test".into(),
            mx_status: DnssecStatus::Indeterminate,
            address_status: DnssecStatus::Indeterminate,
            tlsa_base: "mx.example.test".into(),
            tlsa: TlsaLookup::NotQueried,
        };
        let mut f = DestinationFacts {
            domain: "example.test".into(),
            mx_status: DnssecStatus::Indeterminate,
            mx_failure: None,
            hosts: vec![host],
            ignored_mx_hosts: 0,
            validation: ValidationState::NotValidating,
        };
        let action = |f: &DestinationFacts, s| f.actions(s)[0].1.clone();
        let indeterminate = Action::Defer(DeferReason::MxLookup(DnssecStatus::Indeterminate));
        assert_eq!(action(&f, DaneSetting::Mandatory), indeterminate);
        assert_eq!(
            action(&f, DaneSetting::Opportunistic),
            Action::ConfiguredTls(NoDaneReason::ValidationUnproven)
        );
        assert_eq!(
            action(&f, DaneSetting::None),
            Action::ConfiguredTls(NoDaneReason::SettingNone)
        );
        // proven, the same indeterminate facts defer (RFC 7672 §2.1.1)
        f.validation = ValidationState::Validating;
        assert_eq!(action(&f, DaneSetting::Opportunistic), indeterminate);
        // unproven and the MX lookup failed: the destination defers whatever the setting
        f.validation = ValidationState::Unproven;
        f.hosts.clear();
        f.mx_failure = Some(LookupFailure::Timeout);
        assert_eq!(action(&f, DaneSetting::None), indeterminate);
        // unproven NXDOMAIN / null MX: no host, nothing to defer on
        f.mx_failure = None;
        assert!(f.actions(DaneSetting::Mandatory).is_empty());
    }
}
