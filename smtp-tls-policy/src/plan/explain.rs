//! The plan explained as data: which rules applied, which one decided, the reference
//! identities, why plaintext is or is not permitted, the DNSSEC statuses.
//!
//! JSON field names are snake_case, values kebab-case; both are stable (`smtp-tls-check policy
//! DOMAIN --json` prints them). MTA-STS, REQUIRETLS and `TLS-Required: No` are [`Source`]s
//! with [`Rule`]s in the same list; the fields they add (`mta_sts`, `tls_request`,
//! `requiretls_route`) are left out of the JSON when the plan was not given them.

use dane_verify::{DaneAction, HostFacts, NoDaneReason, TlsaLookup};
use serde::Serialize;

use super::sources::MtaStsExplanation;
use super::verify::Authentication;
use super::{HoldReason, HopPlan, HostSource, PlanOptions};
use crate::delivery::Requirement;
use crate::delivery::{RequireTlsRoute, TlsRequest};
use crate::destination::{DeliveryTls, DestinationMatch, DestinationPolicy};
use crate::identity::IdentityAlgorithm;
use dane_verify::DaneSetting;

/// A policy source that can decide part of a plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Source {
    /// A destination-control entry for the domain (exact or `.parent`).
    DestinationControl,
    /// The default destination-control entry (no entry for the domain).
    #[serde(rename = "default")]
    DefaultEntry,
    /// DANE (RFC 7672): dane-verify's decision for the host.
    Dane,
    /// The facts handed in (inconsistent or unusable names): fail closed.
    #[default]
    HopFacts,
    /// The recipient domain's MTA-STS policy (RFC 8461).
    MtaSts,
    /// The sender's `REQUIRETLS` (RFC 8689 §2, §4).
    #[serde(rename = "requiretls")]
    RequireTls,
    /// The sender's `TLS-Required: No` header field (RFC 8689 §3).
    TlsRequiredHeader,
}

/// What a rule did to the plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Effect {
    /// Chose the base TLS mode.
    SetsTlsMode,
    /// Made TLS mandatory, unauthenticated.
    RequiresTls,
    /// Authenticates the peer (and overrides the mode's PKIX verification).
    Authenticates,
    /// Consulted, changed nothing.
    NoEffect,
    /// No connection to this host; try the next one.
    SkipsHost,
    /// No connection to the destination now.
    Defers,
}

/// One rule that applied, in evaluation order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Rule {
    /// Where it comes from.
    pub source: Source,
    /// What it did.
    pub effect: Effect,
    /// Why, for humans.
    pub reason: String,
}

/// The destination-control lookup.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct DestinationExplanation {
    /// `exact`, `parent` or `default`.
    pub matched: &'static str,
    /// The entry's key (`example.com`, `.example.com`), `None` for the default entry.
    pub entry: Option<String>,
    /// The effective TLS mode (`no`, `preferred`, ..., `required-verify-hosted-domains`).
    pub tls_mode: &'static str,
    /// The effective DANE setting (`none`, `opportunistic`, `mandatory`).
    pub dane: &'static str,
}

/// DNSSEC statuses of the facts (`secure`, `insecure`, `bogus`, `indeterminate`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct DnssecExplanation {
    /// The MX RRset (or the denial that made the domain its own MX).
    pub mx: &'static str,
    /// The host's address records, every CNAME link included.
    pub address: &'static str,
    /// The TLSA answer: a status, `not-queried` or `failed`.
    pub tlsa: &'static str,
    /// The TLSA lookup: `found`, `not-found`, `not-queried`, `failed`.
    pub tlsa_lookup: &'static str,
    /// Where TLSA records were sought (the CNAME-expanded host name, RFC 7672 §2.2.2).
    pub tlsa_base: String,
}

/// dane-verify's decision for the host.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct DaneExplanation {
    /// `dane`, `tls-unauthenticated`, `configured-tls` or `defer`.
    pub action: &'static str,
    /// Why the host is not DANE-protected or is deferred (a code), if so.
    pub reason: Option<&'static str>,
    /// The TLSA records found, in presentation form.
    pub records: Vec<String>,
}

/// The reference identities the plan verifies against.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ReferenceIdsExplanation {
    /// `verify` (`hosted-verify` under `required-verify-hosted-domains`) when TLS is
    /// attempted, else `None`.
    pub pkix_algorithm: Option<&'static str>,
    /// PKIX reference identities, in order: enforced when `authentication` is `pkix`, reported
    /// otherwise.
    pub pkix: Vec<String>,
    /// DANE-TA reference names (RFC 7672 §3.2.2), when the requirement is DANE.
    pub dane: Vec<String>,
}

/// Whether the message may travel in plaintext, and why.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct PlaintextExplanation {
    /// From the state machine's only constructor of plaintext permits
    /// ([`Requirement::plaintext_permit`]).
    pub permitted: bool,
    /// `no-connection`, `tls-disabled`, `tls-preferred`, `tls-required`, `dane-tls-mandatory`,
    /// `tls-required-verify`, `dane`.
    pub reason: &'static str,
    /// For humans.
    pub detail: &'static str,
}

/// What to do before connecting.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct PreConnectExplanation {
    /// `connect`, `skip-host` or `defer`.
    pub action: &'static str,
    /// The [`HoldReason::code`] when no connection is made.
    pub reason: Option<&'static str>,
    /// The hold reason for humans.
    pub detail: Option<String>,
}

/// A [`HopPlan`] as data.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Explanation {
    /// The recipient (next-hop) domain.
    pub domain: String,
    /// The host: MX host, the domain itself (implicit MX) or the route host.
    pub host: String,
    /// Where the host came from.
    pub host_source: HostSource,
    /// What to do before connecting.
    pub pre_connect: PreConnectExplanation,
    /// The TLS requirement (`plaintext`, `opportunistic`, `opportunistic-verify`, `encrypted`,
    /// `verified`, `verified-hosted-domains`, `dane`), `None` without a connection.
    pub requirement: Option<&'static str>,
    /// What authenticates the peer when delivery proceeds (`none`, `pkix`, `dane`).
    pub authentication: Authentication,
    /// The SNI to send, when a handshake will be made.
    pub sni: Option<String>,
    /// The destination-control lookup.
    pub destination: DestinationExplanation,
    /// The DNSSEC statuses.
    pub dnssec: DnssecExplanation,
    /// dane-verify's decision.
    pub dane: DaneExplanation,
    /// The reference identities.
    pub reference_ids: ReferenceIdsExplanation,
    /// Whether plaintext is permitted.
    pub plaintext: PlaintextExplanation,
    /// The source of the rule that decided the requirement (or the hold).
    pub decided_by: Source,
    /// Every rule that applied, in order.
    pub rules: Vec<Rule>,
    /// MTA-STS for this host, when the plan was given a verdict
    /// ([`HopPlan::with_mta_sts`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mta_sts: Option<MtaStsExplanation>,
    /// The sender's TLS request (`require-tls`, `tls-optional`), absent when nothing was asked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_request: Option<&'static str>,
    /// For a REQUIRETLS message: `secure` (DNSSEC-secure MX, or MTA-STS `enforce` listing the
    /// host) or `insecure` (RFC 8689 §4.2.1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requiretls_route: Option<&'static str>,
}

impl Explanation {
    pub(super) fn build(
        plan: &HopPlan,
        facts: &HostFacts,
        options: PlanOptions,
        held: Option<&HoldReason>,
    ) -> Self {
        let policy = &plan.policy;
        let overlay = &plan.overlay;
        let requirement = plan.requirement;
        let (dest_source, destination) = destination(policy);
        let mut rules = vec![Rule {
            source: dest_source,
            effect: Effect::SetsTlsMode,
            reason: format!(
                "TLS mode {} and DANE {} from the {} entry",
                policy.tls.as_str(),
                destination.dane,
                destination.entry.as_deref().unwrap_or("default")
            ),
        }];
        let hold_effect = |r: &HoldReason| {
            if r.destination_wide() {
                Effect::Defers
            } else {
                Effect::SkipsHost
            }
        };
        let mut decided_by = dest_source;
        let dane_rule = match (&overlay.action, held) {
            (_, Some(r @ HoldReason::Dane(_))) => Some((hold_effect(r), r.to_string())),
            (_, Some(_)) => None,
            (_, None) if overlay.dane == DaneSetting::None => Some((
                Effect::NoEffect,
                "DANE not used for this destination (setting none, or TLS no)".into(),
            )),
            (DaneAction::UseDane { .. }, None) => Some((
                Effect::Authenticates,
                format!(
                    "usable DNSSEC-secure TLSA records at {}: TLS mandatory and authenticated by \
                     DANE whatever the TLS mode; PKIX not required (RFC 7672 2.2, 3)",
                    facts.tlsa_base
                ),
            )),
            (DaneAction::TlsMandatoryUnauthenticated, None) => Some((
                Effect::RequiresTls,
                "only unusable TLSA records: TLS mandatory, unauthenticated (RFC 7672 2.2, 3.1.3)"
                    .into(),
            )),
            (DaneAction::ConfiguredTls(r), None) => Some((
                Effect::NoEffect,
                format!(
                    "not DANE-protected ({}): the configured TLS mode applies",
                    no_dane_code(*r)
                ),
            )),
            (_, None) => Some((Effect::NoEffect, "DANE action not applied".into())),
        };
        if let Some((effect, reason)) = dane_rule {
            let decisive = match effect {
                Effect::Authenticates | Effect::SkipsHost | Effect::Defers => true,
                Effect::RequiresTls => !overlay.tls.is_required(),
                _ => false,
            };
            if decisive {
                decided_by = Source::Dane;
            }
            rules.push(Rule {
                source: Source::Dane,
                effect,
                reason,
            });
        }
        rules.extend(overlay.rules.iter().cloned());
        if let Some(source) = overlay.decided_by
            && !matches!(held, Some(HoldReason::Dane(_)))
        {
            decided_by = source;
        }
        if let Some(r) = held.filter(|r| {
            !matches!(
                r,
                HoldReason::Dane(_) | HoldReason::MtaSts(_) | HoldReason::RequireTls(_)
            )
        }) {
            decided_by = Source::HopFacts;
            rules.push(Rule {
                source: Source::HopFacts,
                effect: hold_effect(r),
                reason: r.to_string(),
            });
        }
        let (permitted, reason, detail) = plaintext(overlay.tls, requirement);
        Self {
            domain: policy.domain.clone(),
            host: facts.mx_host.clone(),
            host_source: options.host_source,
            pre_connect: PreConnectExplanation {
                action: plan.pre_connect.as_str(),
                reason: held.map(HoldReason::code),
                detail: held.map(ToString::to_string),
            },
            requirement: requirement.map(requirement_name),
            authentication: match requirement {
                Some(Requirement::Dane) => Authentication::Dane,
                Some(Requirement::Verified(_)) => Authentication::Pkix,
                _ => Authentication::None,
            },
            sni: plan.server_name().map(|n| n.to_str().into_owned()),
            destination,
            dnssec: dnssec(facts),
            dane: dane(&plan.dane_action, facts),
            reference_ids: ReferenceIdsExplanation {
                pkix_algorithm: plan.pkix.map(|p| p.algorithm.name()),
                pkix: plan.pkix_ids.iter().map(ToString::to_string).collect(),
                dane: plan.dane_names.clone(),
            },
            plaintext: PlaintextExplanation {
                permitted,
                reason,
                detail,
            },
            decided_by,
            rules,
            mta_sts: overlay.mta_sts.clone(),
            tls_request: (!overlay.request.is_default()).then(|| overlay.request.as_str()),
            requiretls_route: (overlay.request == TlsRequest::RequireTls).then(|| {
                if overlay.route == RequireTlsRoute::Secure {
                    "secure"
                } else {
                    "insecure"
                }
            }),
        }
    }
}

fn destination(policy: &DestinationPolicy) -> (Source, DestinationExplanation) {
    let (source, matched, entry) = match &policy.matched {
        DestinationMatch::Exact(k) => (Source::DestinationControl, "exact", Some(k.clone())),
        DestinationMatch::Parent(k) => (Source::DestinationControl, "parent", Some(k.clone())),
        _ => (Source::DefaultEntry, "default", None),
    };
    let dane = policy.dane.as_str();
    (
        source,
        DestinationExplanation {
            matched,
            entry,
            tls_mode: policy.tls.as_str(),
            dane,
        },
    )
}

fn dnssec(facts: &HostFacts) -> DnssecExplanation {
    let (tlsa, tlsa_lookup) = match &facts.tlsa {
        TlsaLookup::NotQueried => ("not-queried", "not-queried"),
        TlsaLookup::Found { status, .. } => (status.as_str(), "found"),
        TlsaLookup::NotFound { status } => (status.as_str(), "not-found"),
        _ => ("failed", "failed"),
    };
    DnssecExplanation {
        mx: facts.mx_status.as_str(),
        address: facts.address_status.as_str(),
        tlsa,
        tlsa_lookup,
        tlsa_base: facts.tlsa_base.clone(),
    }
}

fn dane(action: &DaneAction, facts: &HostFacts) -> DaneExplanation {
    let reason = match action {
        DaneAction::ConfiguredTls(r) => Some(no_dane_code(*r)),
        DaneAction::Defer(r) => Some(HoldReason::Dane(*r).code()),
        _ => None,
    };
    let records = match &facts.tlsa {
        TlsaLookup::Found { records, .. } => records.iter().map(ToString::to_string).collect(),
        _ => Vec::new(),
    };
    DaneExplanation {
        action: action.as_str(),
        reason,
        records,
    }
}

/// A kebab-case code for dane-verify's "not DANE-protected" reasons.
fn no_dane_code(r: NoDaneReason) -> &'static str {
    match r {
        NoDaneReason::SettingNone => "setting-none",
        NoDaneReason::MxInsecure => "mx-insecure",
        NoDaneReason::AddressInsecure => "address-insecure",
        NoDaneReason::NoTlsa => "no-tlsa",
        NoDaneReason::TlsaInsecure => "tlsa-insecure",
        NoDaneReason::OnlyUnusable => "only-unusable",
        NoDaneReason::ValidationUnproven => "validation-unproven",
        _ => "not-dane-protected",
    }
}

/// The JSON name of a requirement.
pub(super) fn requirement_name(r: Requirement) -> &'static str {
    match r {
        Requirement::Plaintext => "plaintext",
        Requirement::Opportunistic { verify: false } => "opportunistic",
        Requirement::Opportunistic { verify: true } => "opportunistic-verify",
        Requirement::Encrypted => "encrypted",
        Requirement::Verified(IdentityAlgorithm::HostedVerify) => "verified-hosted-domains",
        Requirement::Verified(_) => "verified",
        Requirement::Dane => "dane",
        Requirement::PlaintextRetry => "plaintext-retry",
    }
}

/// Whether plaintext is permitted — from [`Requirement::plaintext_permit`], the only
/// constructor of the machine's plaintext tokens — and why.
fn plaintext(
    tls: DeliveryTls,
    requirement: Option<Requirement>,
) -> (bool, &'static str, &'static str) {
    let Some(r) = requirement else {
        return (false, "no-connection", "no connection is made");
    };
    let permitted = r.plaintext_permit().is_some();
    let (reason, detail) = match r {
        Requirement::Plaintext => ("tls-disabled", "TLS mode no: STARTTLS is not attempted"),
        Requirement::PlaintextRetry => (
            "tls-preferred",
            "plaintext retry after a failed handshake (TLS preferred)",
        ),
        Requirement::Opportunistic { .. } => (
            "tls-preferred",
            "TLS preferred: plaintext when STARTTLS is not offered or refused before 220, and \
             on a new connection after a failed handshake",
        ),
        Requirement::Encrypted if tls.is_required() => (
            "tls-required",
            "TLS required: never plaintext; the message is deferred instead",
        ),
        Requirement::Encrypted => (
            "dane-tls-mandatory",
            "DNSSEC-secure TLSA records (none usable) make TLS mandatory (RFC 7672 2.2)",
        ),
        Requirement::Verified(_) => (
            "tls-required-verify",
            "TLS and a verified certificate required: never plaintext",
        ),
        Requirement::Dane => (
            "dane",
            "usable DNSSEC-secure TLSA records: TLS mandatory, DANE-authenticated (RFC 7672 2.2)",
        ),
    };
    (permitted, reason, detail)
}
