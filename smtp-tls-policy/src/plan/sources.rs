//! The remote and per-message policy sources of a plan — MTA-STS (RFC 8461), REQUIRETLS and
//! `TLS-Required: No` (RFC 8689) — folded over the destination controls and DANE before the
//! requirement is computed: the effective TLS setting, DANE setting and DANE action, a hold,
//! the REQUIRETLS route, and the rules that explain it (see the [module docs](super)).

use dane_verify::{DaneAction, DaneSetting, DeferReason, HostFacts, NoDaneReason};
use serde::Serialize;

use super::HoldReason;
use super::explain::{Effect, Rule, Source};
use crate::delivery::dane::tlsa_status;
use crate::delivery::{RequireTlsRefusal, RequireTlsRoute, Requirement, TlsRequest};
use crate::destination::{DeliveryTls, DestinationMatch, DestinationPolicy, MtaStsSetting};
use crate::mta_sts::{MxListMatch, StsFailure, StsHostAction, StsHostVerdict};

/// What MTA-STS does to a connection to the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) enum StsRole {
    /// Nothing (no policy, `none`, ignored, relaxed, or the host is skipped).
    #[default]
    Inactive,
    /// `enforce`, host listed, no DANE: the certificate must pass the MTA-STS check.
    Enforce,
    /// `enforce`, host listed, DANE decides for the host (RFC 8461 §2): no PKIX required.
    DanePrecedence,
    /// `testing`: check and report, never block.
    Testing,
}

/// The sources folded over the destination policy.
#[derive(Debug, Clone)]
pub(super) struct Overlay {
    /// The effective TLS setting (the local one, made stricter or relaxed).
    pub tls: DeliveryTls,
    /// The effective DANE setting.
    pub dane: DaneSetting,
    /// The effective DANE action (dane-verify's, unless `TLS-Required: No` relaxed it).
    pub action: DaneAction,
    /// MTA-STS's part in the connection.
    pub sts: StsRole,
    /// Whether the local setting itself enforces PKIX (`required-verify*`).
    pub local_pkix: bool,
    /// A hold from a source (MTA-STS unlisted host, REQUIRETLS on an insecure route).
    pub hold: Option<HoldReason>,
    /// RFC 8689 §4.2.1 item 1 for this host.
    pub route: RequireTlsRoute,
    /// The sender's request.
    pub request: TlsRequest,
    /// The rules of these sources, in order.
    pub rules: Vec<Rule>,
    /// The source that decided the requirement or the hold, if one of these did.
    pub decided_by: Option<Source>,
    /// The MTA-STS part of the explanation.
    pub mta_sts: Option<MtaStsExplanation>,
}

/// The MTA-STS part of a plan's explanation (`"mta_sts"` in the JSON).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct MtaStsExplanation {
    /// The TXT record's `id`, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy_id: Option<String>,
    /// `enforce`, `testing`, `none`, or `None` without a policy.
    pub mode: Option<&'static str>,
    /// The host against the policy's `mx` patterns (with each pattern's miss reason).
    pub mx_match: Option<MxListMatch>,
    /// `no-constraint`, `require-pkix`, `skip-host`, `report-only`.
    pub action: &'static str,
    /// Whether the peer must present a PKIX-valid certificate for the MX host name (SAN only)
    /// because of MTA-STS.
    pub pkix_required: bool,
    /// Why the policy's own action is not applied as is: `dane-precedence`,
    /// `tls-required-header`, `ignored-by-destination-control`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
    /// The destination-control entry that says `mta_sts = "ignore"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ignored_by: Option<String>,
    /// A failure already known before connecting (host not listed), as TLS-RPT names it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<StsFailure>,
}

/// The stricter of `tls` and `required-verify`.
fn at_least_verified(tls: DeliveryTls) -> DeliveryTls {
    match tls {
        DeliveryTls::RequiredVerifyHostedDomains => tls,
        _ => DeliveryTls::RequiredVerify,
    }
}

fn action_name(a: &StsHostAction) -> &'static str {
    match a {
        StsHostAction::RequirePkix => "require-pkix",
        StsHostAction::SkipHost { .. } => "skip-host",
        StsHostAction::ReportOnly { .. } => "report-only",
        _ => "no-constraint",
    }
}

fn entry_name(policy: &DestinationPolicy) -> String {
    match &policy.matched {
        DestinationMatch::Exact(k) | DestinationMatch::Parent(k) => k.clone(),
        _ => "default".into(),
    }
}

fn rule(source: Source, effect: Effect, reason: impl Into<String>) -> Rule {
    Rule {
        source,
        effect,
        reason: reason.into(),
    }
}

/// Folds MTA-STS, REQUIRETLS and `TLS-Required: No` over the destination policy and DANE.
pub(super) fn overlay(
    policy: &DestinationPolicy,
    facts: &HostFacts,
    action: &DaneAction,
    sts: Option<&StsHostVerdict>,
    request: TlsRequest,
) -> Overlay {
    let mut o = Overlay {
        tls: policy.tls,
        dane: policy.dane,
        action: action.clone(),
        sts: StsRole::Inactive,
        local_pkix: matches!(
            policy.tls,
            DeliveryTls::RequiredVerify | DeliveryTls::RequiredVerifyHostedDomains
        ),
        hold: None,
        route: if facts.mx_status.is_secure() {
            RequireTlsRoute::Secure
        } else {
            RequireTlsRoute::Insecure
        },
        request,
        rules: Vec::new(),
        decided_by: None,
        mta_sts: sts.map(|v| MtaStsExplanation {
            policy_id: v.policy_id.clone(),
            mode: v.mode.map(crate::mta_sts::Mode::as_str),
            mx_match: v.mx_match.clone(),
            action: action_name(&v.action),
            ..MtaStsExplanation::default()
        }),
    };
    let host = &facts.mx_host;
    if request == TlsRequest::TlsOptional {
        relax(&mut o, action);
        return o;
    }
    let dane_decides =
        Requirement::new(policy.tls, policy.dane, &tlsa_status(action)) == Ok(Requirement::Dane);
    if let (Some(v), Some(e)) = (sts, o.mta_sts.as_mut()) {
        if policy.mta_sts == MtaStsSetting::Ignore && v.mode.is_some() {
            let entry = entry_name(policy);
            e.reason = Some("ignored-by-destination-control");
            o.rules.push(rule(
                Source::MtaSts,
                Effect::NoEffect,
                format!("mta-sts ignored by destination control {entry}"),
            ));
            e.ignored_by = Some(entry);
        } else {
            match &v.action {
                StsHostAction::SkipHost { failure } => {
                    e.failure = Some(failure.clone());
                    o.rules.push(rule(
                        Source::MtaSts,
                        Effect::SkipsHost,
                        format!("MTA-STS enforce: {}", failure.detail),
                    ));
                    o.hold = Some(HoldReason::MtaSts(failure.clone()));
                    o.decided_by = Some(Source::MtaSts);
                }
                StsHostAction::RequirePkix if dane_decides => {
                    e.reason = Some("dane-precedence");
                    o.sts = StsRole::DanePrecedence;
                    o.route = RequireTlsRoute::Secure;
                    o.rules.push(rule(
                        Source::MtaSts,
                        Effect::NoEffect,
                        format!(
                            "MTA-STS enforce lists {host}, but DANE decides for this host \
                             (RFC 8461 2): PKIX not required"
                        ),
                    ));
                }
                StsHostAction::RequirePkix => {
                    e.pkix_required = true;
                    o.sts = StsRole::Enforce;
                    o.route = RequireTlsRoute::Secure;
                    o.tls = at_least_verified(o.tls);
                    o.decided_by = Some(Source::MtaSts);
                    o.rules.push(rule(
                        Source::MtaSts,
                        Effect::Authenticates,
                        format!(
                            "MTA-STS enforce lists {host}: TLS and a PKIX-valid certificate with \
                             a SAN dNSName for {host} required (RFC 8461 4.1), combined with the \
                             local setting to the stricter ({})",
                            o.tls.as_str()
                        ),
                    ));
                }
                StsHostAction::ReportOnly { .. } if dane_decides => {
                    e.reason = Some("dane-precedence");
                    o.rules.push(rule(
                        Source::MtaSts,
                        Effect::NoEffect,
                        "MTA-STS testing, but DANE decides for this host (RFC 8461 2): \
                         nothing checked nor reported by MTA-STS",
                    ));
                }
                StsHostAction::ReportOnly { failure } => {
                    e.failure.clone_from(failure);
                    o.sts = StsRole::Testing;
                    o.rules.push(rule(
                        Source::MtaSts,
                        Effect::NoEffect,
                        "MTA-STS testing: delivery per the local setting; failures are \
                         reported (TLS-RPT), never block",
                    ));
                }
                _ => o.rules.push(rule(
                    Source::MtaSts,
                    Effect::NoEffect,
                    "no MTA-STS policy in force (none, or mode none)",
                )),
            }
        }
    }
    // An MTA-STS hold already keeps the message off this host.
    if request == TlsRequest::RequireTls && o.hold.is_none() {
        requiretls(&mut o, dane_decides);
    }
    o
}

/// `TLS-Required: No` (RFC 8689 §3, §4.2.2): opportunistic TLS, no DANE, no MTA-STS.
fn relax(o: &mut Overlay, action: &DaneAction) {
    if o.tls != DeliveryTls::No {
        o.tls = DeliveryTls::Preferred;
    }
    o.dane = DaneSetting::None;
    o.local_pkix = false;
    o.action = match action {
        // Facts every host needs, whatever the TLS policy: still a hold.
        DaneAction::Defer(r @ (DeferReason::MxLookup(_) | DeferReason::AddressLookup(_))) => {
            DaneAction::Defer(*r)
        }
        _ => DaneAction::ConfiguredTls(NoDaneReason::SettingNone),
    };
    if let Some(e) = o.mta_sts.as_mut() {
        e.reason = Some("tls-required-header");
    }
    o.decided_by = Some(Source::TlsRequiredHeader);
    o.rules.push(rule(
        Source::TlsRequiredHeader,
        Effect::SetsTlsMode,
        "TLS-Required: No (RFC 8689 4.2.2): the destination's TLS setting and the remote policies \
         (DANE, MTA-STS) are relaxed to opportunistic TLS for this message",
    ));
}

/// REQUIRETLS (RFC 8689 §4.2.1): a secure route and an authenticated host, else no connection.
fn requiretls(o: &mut Overlay, dane_decides: bool) {
    if o.route != RequireTlsRoute::Secure {
        o.rules.push(rule(
            Source::RequireTls,
            Effect::SkipsHost,
            format!(
                "REQUIRETLS: {} (RFC 8689 4.2.1)",
                RequireTlsRefusal::RouteNotSecure
            ),
        ));
        o.hold = Some(HoldReason::RequireTls(RequireTlsRefusal::RouteNotSecure));
        o.decided_by = Some(Source::RequireTls);
        return;
    }
    if dane_decides || o.sts == StsRole::Enforce {
        o.rules.push(rule(
            Source::RequireTls,
            Effect::NoEffect,
            "REQUIRETLS: secure route, host authenticated by DANE or MTA-STS-validated PKIX",
        ));
        return;
    }
    if o.local_pkix {
        o.rules.push(rule(
            Source::RequireTls,
            Effect::NoEffect,
            "REQUIRETLS: DNSSEC-secure MX route; the local setting already requires a \
             PKIX-verified certificate",
        ));
        return;
    }
    o.tls = at_least_verified(o.tls);
    o.local_pkix = true;
    o.decided_by = Some(Source::RequireTls);
    o.rules.push(rule(
        Source::RequireTls,
        Effect::Authenticates,
        format!(
            "REQUIRETLS: DNSSEC-secure MX route, TLS with a PKIX-verified certificate required \
             ({})",
            o.tls.as_str()
        ),
    ));
}
