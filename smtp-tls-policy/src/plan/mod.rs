//! The hop plan: one sans-IO decision per next hop — "may I deliver this message to this host,
//! and how" — composed from the destination controls ([`crate::destination`]), dane-verify's
//! RFC 7672 decision for the host ([`dane_verify::decide`]), the delivery TLS state
//! machine ([`crate::delivery`]) and certificate verification
//! ([`crate::verify_server_certificate`], [`dane_verify::DaneMatcher`]).
//!
//! Input: the [`DestinationPolicy`] of the recipient domain
//! ([`crate::destination::DestinationControls::lookup`]), dane-verify's [`HostFacts`] about one
//! host (MX host name, TLSA base domain — the CNAME-expanded name —, DNSSEC statuses of the MX
//! RRset, the addresses and the TLSA lookup, the TLSA records) and [`PlanOptions`] (where the host
//! came from: MX, implicit MX per RFC 5321 §5.1, SMTP route; the optional certificate checks).
//!
//! Optional: the MTA-STS verdict for the host and the sender's TLS request (see below).
//!
//! Output: a [`HopPlan`] saying
//! - what to do before connecting ([`PreConnect`]: connect, skip this host, defer the
//!   destination),
//! - the SNI ([`HopPlan::server_name`]), the reference identities
//!   ([`HopPlan::reference_ids`], [`HopPlan::dane_reference_names`]),
//! - the TLS [`Requirement`] and the [`DeliveryAttempt`] that enforces it ([`HopPlan::attempt`]),
//! - [`HopPlan::verify_peer`]: PKIX per the TLS mode **and** DANE on the presented chain, each
//!   run once, giving one [`PeerVerdict`] that the state machine consumes
//!   ([`PeerVerdict::handshake_outcome`]); [`HopPlan::verifier`] is the rustls
//!   `ServerCertVerifier` built from the plan that calls it,
//! - and why, as data ([`Explanation`], `serde::Serialize`): which rules applied and which one
//!   decided ([`Rule`], [`Source`]), the reference identities, why plaintext is or is not
//!   permitted, the DNSSEC statuses.
//!
//! Rules (RFC 7672 §2.2, seed Table 2): usable DNSSEC-secure TLSA records make TLS mandatory and
//! DANE-authenticated whatever the TLS mode — DANE then authenticates and PKIX is not required
//! (it is still run and reported, as in every TLS mode that does not enforce it); only unusable
//! records make TLS mandatory and unauthenticated; a failed or bogus lookup skips the host (a
//! failed MX lookup, or mandatory DANE for an insecure MX RRset, defers the whole destination);
//! TLS `no` never uses DANE. The requirement is the state machine's own
//! ([`Requirement::new`]), so plan and machine cannot disagree, and "required" never becomes
//! plaintext: the plan derives "plaintext permitted" from [`Requirement::plaintext_permit`], the
//! only constructor of the plaintext tokens.
//!
//! # Remote and per-message sources: MTA-STS, REQUIRETLS, `TLS-Required: No`
//! Optional inputs, given with [`HopPlan::with_mta_sts`] (the per-host
//! [`StsHostVerdict`] of the recipient domain's policy, [`crate::mta_sts::host_verdict`]) and
//! [`HopPlan::with_tls_request`] ([`TlsRequest`]). Without them a plan is what it was.
//! Precedence (each step can only make the plan stricter, except `TLS-Required: No`):
//! 1. **`TLS-Required: No`** ([`TlsRequest::TlsOptional`], RFC 8689 §4.2.2) relaxes the local TLS
//!    setting, DANE and MTA-STS to opportunistic TLS for that message: STARTTLS when offered,
//!    no certificate check enforced, plaintext when STARTTLS is missing (TLS `no` stays `no`).
//!    Source `tls-required-header`.
//! 2. **DANE** decides for a host with a secure usable TLSA RRset (RFC 8461 §2); MTA-STS never
//!    overrides a DANE failure. A DANE-authenticated host under STS `enforce` does **not** also
//!    need PKIX (as Stalwart and KumoMTA; Mox and maddy require both): `"pkix_required": false,
//!    "reason": "dane-precedence"`. The STS `mx` filter still applies: an unlisted host is
//!    skipped even with TLSA records.
//! 3. **MTA-STS** combines with the local setting to the stricter ([`MtaStsSetting`] `ignore`
//!    in the destination entry drops it: "mta-sts ignored by destination control ENTRY").
//!    `enforce`, host unlisted: [`PreConnect::SkipHost`] with [`HoldReason::MtaSts`] and each
//!    pattern's reason ("pattern matches one label; host has two"). `enforce`, host listed: TLS
//!    required and the certificate must pass [`crate::mta_sts::check_sts_certificate`] (PKIX,
//!    SAN dNSName for the MX host, never the CN) **and** what the local setting enforces
//!    (`required-verify*` keeps its own identity check). `testing`: the local setting decides;
//!    [`PeerVerdict::sts_failure`] carries the failure for TLS-RPT. `none`/no policy: nothing.
//! 4. **REQUIRETLS** ([`TlsRequest::RequireTls`], RFC 8689 §4.2.1): the route must be secure —
//!    DNSSEC-secure MX, or STS `enforce` listing the host — else [`HoldReason::RequireTls`]
//!    (skip the host; the relay finally bounces with 5.7.30); the host must be authenticated
//!    by DANE or by MTA-STS-validated PKIX, or (secure MX) by PKIX with the MX host name as a
//!    reference identity: the requirement becomes at least `verified`.
//!    [`HopPlan::requiretls_route`] feeds [`crate::delivery::requiretls_verdict`].
//!
//! [`HopPlan::verify_peer`] runs PKIX, DANE and the MTA-STS check on the chain once each (the
//! MTA-STS check reuses the chain validation when PKIX got that far) and says which source
//! decided ([`PeerVerdict::decided_by`]).
//!
//! An example verdict: MTA-STS `enforce` lists the host, no DANE, local TLS `preferred`.
//!
//! ```
//! use dane_verify::DnssecStatus::Insecure;
//! use dane_verify::{HostFacts, TlsaLookup};
//! use smtp_tls_policy::destination::DestinationControls;
//! use smtp_tls_policy::mta_sts::{Policy, host_verdict};
//! use smtp_tls_policy::plan::{HopPlan, PlanOptions};
//! let controls = DestinationControls::from_toml("d.toml", "[default]\ntls = \"preferred\"\ndane = \"opportunistic\"")?;
//! let policy = Policy::parse(b"version: STSv1\nmode: enforce\nmx: *.mail.example.com\nmax_age: 86400\n")?;
//! let facts = HostFacts {
//!     next_hop: "example.com".into(),
//!     mx_host: "mx1.mail.example.com".into(),
//!     mx_status: Insecure,
//!     address_status: Insecure,
//!     tlsa_base: "mx1.mail.example.com".into(),
//!     tlsa: TlsaLookup::NotQueried,
//! };
//! let plan = HopPlan::new(&controls.lookup("example.com")?, &facts, PlanOptions::new())
//!     .with_mta_sts(host_verdict(Some(&policy), "mx1.mail.example.com").with_policy_id("20261204"));
//! let json = serde_json::to_value(plan.explanation())?;
//! assert_eq!(json["requirement"], "verified");
//! assert_eq!(json["plaintext"]["permitted"], false);
//! assert_eq!(json["decided_by"], "mta-sts");
//! assert_eq!(json["mta_sts"], serde_json::json!({
//!     "policy_id": "20261204", "mode": "enforce",
//!     "mx_match": {"result": "matched", "pattern": "*.mail.example.com"},
//!     "action": "require-pkix", "pkix_required": true,
//! }));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Fail closed: inconsistent facts (a next-hop domain other than the policy's, an implicit MX
//! whose host is not the domain, names that do not parse) never give a connection.

mod explain;
mod hold;
#[cfg(feature = "tokio")]
mod io;
mod sources;
#[cfg(test)]
mod tests;
mod verifier;
mod verify;

use std::net::IpAddr;

use dane_verify::{DaneAction, DeferReason, HostFacts, NoDaneReason, decide};
use dane_verify::{DaneMatcher, TlsaRecord};
use rustls_pki_types::ServerName;

pub use explain::{
    DaneExplanation, DestinationExplanation, DnssecExplanation, Effect, Explanation,
    PlaintextExplanation, PreConnectExplanation, ReferenceIdsExplanation, Rule, Source,
};
pub use hold::{HoldReason, PreConnect};
pub use sources::MtaStsExplanation;
pub use verifier::PlanVerifier;
pub use verify::{Authentication, PeerVerdict};

use crate::delivery::dane::tlsa_status;
use crate::delivery::{
    Decision, DeliveryAttempt, DeliveryOptions, RequireTlsRoute, Requirement, TlsRequest,
    TlsaStatus,
};
use crate::destination::DestinationPolicy;
#[cfg(doc)]
use crate::destination::MtaStsSetting;
use crate::error::Error;
use crate::identity::{DeliveryTarget, IdentityAlgorithm, MxSecurity, ReferenceId};
use crate::mta_sts::StsHostVerdict;
use crate::verify::VerificationPolicy;

/// Most TLSA records of one host a plan matches chains against (bounded work; the same as
/// dane-verify's resolver limit). More make the plan skip the host.
pub const MAX_TLSA_RECORDS: usize = 32;

/// Where the host of a hop came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum HostSource {
    /// An MX record of the recipient domain.
    #[default]
    Mx,
    /// The domain has no MX record: the domain itself is the host (RFC 5321 §5.1). The host
    /// name in the facts must be the domain.
    ImplicitMx,
    /// An SMTP route configured by the operator: the route host is a reference identity of its
    /// own (seed, "Verify Hosted Domains").
    Route,
}

/// Options of a plan that are not facts from DNS.
///
/// The certificate checks live in one place, a [`VerificationPolicy`]: FQDN and X.509
/// validation, chain profile, intermediate limit. Its identity algorithm is not used: the
/// destination's TLS setting chooses it ([`IdentityAlgorithm::for_setting`]).
///
/// ```
/// use smtp_tls_policy::identity::{FqdnValidation, IdentityAlgorithm};
/// use smtp_tls_policy::plan::{HostSource, PlanOptions};
/// use smtp_tls_policy::VerificationPolicy;
/// let checks = VerificationPolicy::new(IdentityAlgorithm::Verify)
///     .with_fqdn_validation(FqdnValidation::Enabled);
/// let options = PlanOptions::new()
///     .with_host_source(HostSource::ImplicitMx)
///     .with_verification(checks);
/// assert_eq!(options.host_source, HostSource::ImplicitMx);
/// assert_eq!(options.verification.fqdn, FqdnValidation::Enabled);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct PlanOptions {
    /// Where the host came from (default: an MX record).
    pub host_source: HostSource,
    /// The certificate checks (default: [`VerificationPolicy::new`], optional checks off); its
    /// `algorithm` is replaced by the destination's.
    pub verification: VerificationPolicy,
}

impl Default for PlanOptions {
    fn default() -> Self {
        Self {
            host_source: HostSource::default(),
            verification: VerificationPolicy::new(IdentityAlgorithm::Verify),
        }
    }
}

impl PlanOptions {
    /// The defaults: host from an MX record, optional checks off.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets where the host came from.
    #[must_use]
    pub fn with_host_source(mut self, source: HostSource) -> Self {
        self.host_source = source;
        self
    }

    /// Sets the certificate checks (FQDN, X.509, chain profile, intermediate limit); the
    /// identity algorithm stays the destination's.
    #[must_use]
    pub fn with_verification(mut self, verification: VerificationPolicy) -> Self {
        self.verification = verification;
        self
    }
}

/// DANE material of a plan whose requirement is DANE.
#[derive(Debug, Clone)]
struct DanePart {
    matcher: DaneMatcher,
    records: Vec<TlsaRecord>,
}

/// The plan for one next hop: see the [module documentation](self).
///
/// ```
/// use dane_verify::DnssecStatus::Insecure;
/// use dane_verify::{HostFacts, TlsaLookup};
/// use smtp_tls_policy::destination::*;
/// use smtp_tls_policy::plan::{HopPlan, PlanOptions, PreConnect};
///
/// let controls = DestinationControls::builder()
///     .default_entry(DestinationEntry::new(TlsMode::RequiredVerify, ConfiguredDane::Opportunistic))?
///     .build();
/// let facts = HostFacts {
///     next_hop: "example.com".into(),
///     mx_host: "mx.example.com".into(),
///     mx_status: Insecure,
///     address_status: Insecure,
///     tlsa_base: "mx.example.com".into(),
///     tlsa: TlsaLookup::NotQueried,
/// };
/// let plan = HopPlan::new(&controls.lookup("example.com")?, &facts, PlanOptions::new());
/// assert_eq!(plan.pre_connect(), &PreConnect::Connect);
/// assert!(!plan.explanation().plaintext.permitted);
/// # Ok::<(), smtp_tls_policy::Error>(())
/// ```
#[must_use]
#[derive(Debug, Clone)]
pub struct HopPlan {
    pre_connect: PreConnect,
    requirement: Option<Requirement>,
    policy: DestinationPolicy,
    host: String,
    dane_action: DaneAction,
    server_name: Option<ServerName<'static>>,
    target: Option<DeliveryTarget>,
    pkix: Option<VerificationPolicy>,
    pkix_ids: Vec<ReferenceId>,
    dane: Option<DanePart>,
    dane_names: Vec<String>,
    explanation: Explanation,
    facts: HostFacts,
    options: PlanOptions,
    sts_verdict: Option<StsHostVerdict>,
    overlay: sources::Overlay,
}

impl HopPlan {
    /// The plan for the host of `facts` under `policy`, with dane-verify's RFC 7672 decision
    /// made here ([`dane_verify::decide`] with the policy's DANE setting).
    pub fn new(policy: &DestinationPolicy, facts: &HostFacts, options: PlanOptions) -> Self {
        let action = decide(policy.dane, facts);
        Self::with_dane_action(policy, facts, action, options)
    }

    /// The plan with a DANE action decided elsewhere (e.g. dane-verify's resolver, which also
    /// knows whether its DNSSEC validation is proven:
    /// `DestinationFacts::actions`). Give it the policy's DANE setting; a `Defer` action always
    /// holds the connection, whatever the policy says.
    pub fn with_dane_action(
        policy: &DestinationPolicy,
        facts: &HostFacts,
        action: DaneAction,
        options: PlanOptions,
    ) -> Self {
        Self::make(policy, facts, action, options, None, TlsRequest::Default)
    }

    /// The plan with the MTA-STS verdict for this host (RFC 8461), computed by the caller with
    /// [`crate::mta_sts::host_verdict`] from the recipient domain's policy (never another
    /// domain's: filter per recipient domain before any connection reuse). Without it the plan
    /// has no MTA-STS information. See the [module docs](self) for the precedence.
    pub fn with_mta_sts(self, verdict: StsHostVerdict) -> Self {
        let request = self.overlay.request;
        Self::make(
            &self.policy,
            &self.facts,
            self.dane_action,
            self.options,
            Some(verdict),
            request,
        )
    }

    /// The plan for a message with the sender's TLS request (RFC 8689): `REQUIRETLS` needs a
    /// secure route and an authenticated host; `TLS-Required: No` relaxes everything to
    /// opportunistic TLS. See the [module docs](self).
    pub fn with_tls_request(self, request: TlsRequest) -> Self {
        Self::make(
            &self.policy,
            &self.facts,
            self.dane_action,
            self.options,
            self.sts_verdict,
            request,
        )
    }

    fn make(
        policy: &DestinationPolicy,
        facts: &HostFacts,
        action: DaneAction,
        options: PlanOptions,
        sts: Option<StsHostVerdict>,
        request: TlsRequest,
    ) -> Self {
        let overlay = sources::overlay(policy, facts, &action, sts.as_ref(), request);
        let mut plan = Self {
            pre_connect: PreConnect::default(),
            requirement: None,
            policy: policy.clone(),
            host: facts.mx_host.clone(),
            dane_action: action,
            server_name: None,
            target: None,
            pkix: None,
            pkix_ids: Vec::new(),
            dane: None,
            dane_names: Vec::new(),
            explanation: Explanation::default(),
            facts: facts.clone(),
            options,
            sts_verdict: sts,
            overlay,
        };
        let held = plan.decide(facts, options).err();
        if let Some(reason) = &held {
            plan.pre_connect = PreConnect::hold(reason.clone());
        }
        plan.explanation = Explanation::build(&plan, facts, options, held.as_ref());
        plan
    }

    /// Fills the plan; `Err` with the reason when no connection may be made.
    fn decide(&mut self, facts: &HostFacts, options: PlanOptions) -> Result<(), HoldReason> {
        let domain = ReferenceId::parse(&self.policy.domain).map_err(|reason| {
            HoldReason::InvalidDomain(Error::InvalidReferenceId {
                name: self.policy.domain.clone(),
                reason,
            })
        })?;
        match ReferenceId::parse(&facts.next_hop) {
            Ok(next_hop) if next_hop == domain => {}
            _ => {
                return Err(HoldReason::DomainMismatch {
                    policy: self.policy.domain.clone(),
                    facts: facts.next_hop.chars().take(255).collect(),
                });
            }
        }
        if options.host_source == HostSource::ImplicitMx
            && ReferenceId::parse(&facts.mx_host).ok().as_ref() != Some(&domain)
        {
            return Err(HoldReason::ImplicitMxHost {
                domain: self.policy.domain.clone(),
                host: facts.mx_host.chars().take(255).collect(),
            });
        }
        let target = target(&self.policy.domain, facts, options.host_source)
            .map_err(HoldReason::InvalidName)?;
        let (tls, dane, action) = (self.overlay.tls, self.overlay.dane, &self.overlay.action);
        if let DaneAction::Defer(r) = action {
            return Err(HoldReason::Dane(*r));
        }
        if let Some(hold) = &self.overlay.hold {
            return Err(hold.clone());
        }
        let tlsa = tlsa_status(action);
        let requirement = match Requirement::new(tls, dane, &tlsa) {
            Ok(r) => r,
            Err(status) => {
                let reason = match status {
                    TlsaStatus::Unusable => NoDaneReason::OnlyUnusable,
                    _ => match action {
                        DaneAction::ConfiguredTls(r) => *r,
                        _ => NoDaneReason::NoTlsa,
                    },
                };
                return Err(HoldReason::Dane(DeferReason::DaneRequired(reason)));
            }
        };
        let sni = match action {
            DaneAction::UseDane { sni, .. } if requirement.needs_dane() => sni.clone(),
            _ => facts.mx_host.clone(),
        };
        let server_name = server_name(&sni).map_err(HoldReason::InvalidName)?;
        if requirement.needs_dane() {
            if let DaneAction::UseDane {
                records,
                reference_names,
                ..
            } = action
            {
                if records.len() > MAX_TLSA_RECORDS {
                    return Err(HoldReason::TooManyTlsaRecords {
                        count: records.len(),
                        limit: MAX_TLSA_RECORDS,
                    });
                }
                let matcher = DaneMatcher::smtp(reference_names.iter().map(String::as_str))
                    .map_err(HoldReason::InvalidDaneNames)?;
                self.dane = Some(DanePart {
                    matcher,
                    records: records.clone(),
                });
                self.dane_names.clone_from(reference_names);
            }
        }
        // PKIX is run whenever TLS is attempted: enforced by `required-verify*`, reported by the
        // other modes and under DANE (the relay and `tlsverify --connect` log it).
        if requirement.attempts_tls() {
            let algorithm = IdentityAlgorithm::for_setting(tls);
            self.pkix = Some(VerificationPolicy {
                algorithm,
                ..options.verification
            });
            self.pkix_ids = target.reference_ids(algorithm);
        }
        self.target = Some(target);
        self.server_name = Some(server_name);
        self.requirement = Some(requirement);
        self.pre_connect = PreConnect::Connect;
        Ok(())
    }

    /// What to do before connecting.
    pub fn pre_connect(&self) -> &PreConnect {
        &self.pre_connect
    }

    /// Whether a connection may be made ([`PreConnect::Connect`]).
    #[must_use]
    pub fn may_connect(&self) -> bool {
        self.pre_connect == PreConnect::Connect
    }

    /// The TLS requirement of the connection (`None` when no connection may be made).
    #[must_use]
    pub fn requirement(&self) -> Option<Requirement> {
        self.requirement
    }

    /// Whether the peer will be authenticated when delivery proceeds: DANE, or PKIX under a
    /// `required-verify*` mode. `false` when no connection may be made.
    #[must_use]
    pub fn is_authenticated(&self) -> bool {
        self.explanation.authentication != Authentication::None
    }

    /// The state machine's decision when no connection may be made and the hold comes from the
    /// DANE policy (the `TlsRequiredButUnavailable` event and, with
    /// [`DeliveryOptions::required_tls_alerts`], the alert): what a delivery agent logs
    /// and reports for a [`PreConnect::SkipHost`] or [`PreConnect::Defer`]. `None` when a
    /// connection may be made, or when the hold is not the machine's (inconsistent facts, names
    /// that do not parse: see [`PreConnect::hold_reason`]).
    pub fn hold_decision(&self, options: DeliveryOptions) -> Option<Decision> {
        if self.may_connect() {
            return None;
        }
        DeliveryAttempt::new(
            self.policy.domain.clone(),
            self.overlay.tls,
            self.overlay.dane,
            tlsa_status(&self.overlay.action),
            options,
        )
        .preflight()
    }

    /// The state machine for one connection attempt under this plan (`None` when no
    /// connection may be made). Its requirement is [`Self::requirement`].
    pub fn attempt(&self, options: DeliveryOptions) -> Option<DeliveryAttempt> {
        self.requirement?;
        Some(DeliveryAttempt::new(
            self.policy.domain.clone(),
            self.overlay.tls,
            self.overlay.dane,
            tlsa_status(&self.overlay.action),
            options,
        ))
    }

    /// RFC 8689 §4.2.1 item 1 for this host, for [`crate::delivery::requiretls_verdict`]:
    /// `Secure` when the MX lookup was DNSSEC-secure or an MTA-STS `enforce` policy lists the
    /// host, else `Insecure`. (A plan made with [`TlsRequest::RequireTls`] does not connect
    /// over an insecure route at all: [`HoldReason::RequireTls`].)
    #[must_use]
    pub fn requiretls_route(&self) -> RequireTlsRoute {
        self.overlay.route
    }

    /// The sender's TLS request the plan was made for.
    #[must_use]
    pub fn tls_request(&self) -> TlsRequest {
        self.overlay.request
    }

    /// The MTA-STS verdict the plan was given ([`Self::with_mta_sts`]).
    pub fn mta_sts(&self) -> Option<&StsHostVerdict> {
        self.sts_verdict.as_ref()
    }

    /// The name to send as SNI (and to give rustls): the TLSA base domain under DANE
    /// (RFC 7672 §8.1), else the host name. `None` when no TLS handshake will be made.
    #[must_use]
    pub fn server_name(&self) -> Option<&ServerName<'static>> {
        self.requirement.filter(|r| r.attempts_tls())?;
        self.server_name.as_ref()
    }

    /// The PKIX reference identities, in order (empty without a TLS connection). They are
    /// enforced only under `required-verify*` ([`Self::is_authenticated`]), reported otherwise.
    #[must_use]
    pub fn reference_ids(&self) -> &[ReferenceId] {
        &self.pkix_ids
    }

    /// The DANE-TA reference names (TLSA base domain, MX host, next-hop domain; RFC 7672
    /// §3.2.2), when the requirement is DANE.
    #[must_use]
    pub fn dane_reference_names(&self) -> &[String] {
        &self.dane_names
    }

    /// The destination policy the plan was made from.
    pub fn policy(&self) -> &DestinationPolicy {
        &self.policy
    }

    /// The host (MX host, the domain for an implicit MX, or the route host).
    #[must_use]
    pub fn host(&self) -> &str {
        &self.host
    }

    /// dane-verify's RFC 7672 action for the host.
    pub fn dane_action(&self) -> &DaneAction {
        &self.dane_action
    }

    /// The delivery target (reference-identity facts), when the names parsed.
    #[must_use]
    pub fn target(&self) -> Option<&DeliveryTarget> {
        self.target.as_ref()
    }

    /// The plan explained as data (also what `serde` serialises for the plan).
    #[must_use]
    pub fn explanation(&self) -> &Explanation {
        &self.explanation
    }
}

impl serde::Serialize for HopPlan {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.explanation.serialize(s)
    }
}

/// Facts for a host known without DNSSEC — a resolver that does not validate, or a configured
/// SMTP route — as dane-verify's [`HostFacts`]: every status
/// [`Insecure`](dane_verify::DnssecStatus::Insecure), TLSA not queried, the TLSA base domain
/// the host itself. DANE then never applies: the configured TLS mode under `opportunistic`, a
/// deferred destination under `mandatory`
/// (RFC 7672 §2.2.1). Only a caller that does not validate DNSSEC at all may say so; a
/// validating resolver reports its real statuses.
///
/// ```
/// use smtp_tls_policy::plan::{HostSource, PlanOptions, facts_without_dnssec};
/// use smtp_tls_policy::{HopPlan, destination::*};
/// let toml = "[default]\ntls = \"required\"\ndane = \"opportunistic\"";
/// let controls = DestinationControls::from_toml("d.toml", toml)?;
/// let facts = facts_without_dnssec("example.com", "relay.example.net");
/// let options = PlanOptions::new().with_host_source(HostSource::Route);
/// let plan = HopPlan::new(&controls.lookup("example.com")?, &facts, options);
/// assert!(plan.may_connect() && !plan.is_authenticated());
/// # Ok::<(), smtp_tls_policy::Error>(())
/// ```
#[must_use]
pub fn facts_without_dnssec(next_hop: &str, host: &str) -> HostFacts {
    HostFacts {
        next_hop: next_hop.to_owned(),
        mx_host: host.to_owned(),
        mx_status: dane_verify::DnssecStatus::Insecure,
        address_status: dane_verify::DnssecStatus::Insecure,
        tlsa_base: host.to_owned(),
        tlsa: dane_verify::TlsaLookup::NotQueried,
    }
}

/// The reference-identity facts: the domain, and the MX host with the MX answer's DNSSEC status
/// or the route host.
fn target(domain: &str, facts: &HostFacts, source: HostSource) -> Result<DeliveryTarget, Error> {
    let b = DeliveryTarget::builder(domain);
    let b = match source {
        HostSource::Route => b.with_route_host(facts.mx_host.clone()),
        HostSource::Mx | HostSource::ImplicitMx => {
            let security = if facts.mx_status.is_secure() {
                MxSecurity::Secure
            } else {
                MxSecurity::Insecure
            };
            b.with_mx_host(facts.mx_host.clone())
                .with_mx_security(security)
        }
    };
    b.build()
}

/// The rustls server name of an SNI host name or IP literal.
fn server_name(name: &str) -> Result<ServerName<'static>, Error> {
    let name = name.trim_end_matches('.');
    if let Ok(ip) = name.parse::<IpAddr>() {
        return Ok(ServerName::IpAddress(ip.into()));
    }
    ServerName::try_from(name.to_owned()).map_err(|_| Error::InvalidReferenceId {
        name: name.chars().take(255).collect(),
        reason: crate::identity::NameError::Syntax,
    })
}
