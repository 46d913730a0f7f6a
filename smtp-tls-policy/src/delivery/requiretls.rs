//! REQUIRETLS on delivery (RFC 8689 §4.2.1), sans-IO: whether a message that asked for
//! `REQUIRETLS` may go over an established session, and with which `MAIL FROM` parameter.
//!
//! RFC 8689 §4.2.1 lets a flagged message go to a next hop only when:
//! 1. the MX lookup was DNSSEC-secure, or the domain has an MTA-STS `enforce` policy
//!    ([`RequireTlsRoute`], set by the hop plan: [`crate::plan::HopPlan::requiretls_route`];
//!    a plan made with [`TlsRequest::RequireTls`] does not even connect over an insecure
//!    route; [`RequireTlsRoute::NotChecked`] is left for callers without a plan);
//! 2. the session is TLS and the host was authenticated, by DANE or by PKIX (the PKIX
//!    name check being MTA-STS-validated is again the plan's part of item 1);
//! 3. the host advertised `REQUIRETLS` in its EHLO reply **inside TLS**, and gets
//!    `REQUIRETLS` on `MAIL FROM`.
//!
//! Otherwise the message must not be sent to that host ([`RequireTlsVerdict::Refuse`]): the
//! driver tries the next MX host and finally returns the message with 5.7.30 ("REQUIRETLS
//! support required", [`REQUIRETLS_STATUS`]).

use std::fmt;

use super::outcome::{Decision, DeliveryAction, PeerAuthentication, Reason};
use crate::smtp::EhloCapabilities;

/// RFC 8689 §7 (IANA: the RFC 3463 registry): 5.7.30, "REQUIRETLS support required".
pub const REQUIRETLS_STATUS: (u8, u16, u16) = (5, 7, 30);

/// What the sender asked of TLS for the onward relay of a message (RFC 8689): an input of
/// the hop plan ([`crate::plan::HopPlan::with_tls_request`]) and what a relay stores with the
/// message in its spool (serde: `default`, `require-tls`, `tls-optional`).
///
/// ```
/// use smtp_tls_policy::delivery::TlsRequest;
/// assert_eq!(TlsRequest::from_receipt(true, true), TlsRequest::RequireTls);
/// assert!(TlsRequest::from_receipt(false, true).tls_optional());
/// assert_eq!(serde_json::to_string(&TlsRequest::TlsOptional).unwrap(), r#""tls-optional""#);
/// ```
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum TlsRequest {
    /// Nothing asked: the destination's own TLS policy applies.
    #[default]
    Default,
    /// `MAIL FROM:<..> REQUIRETLS` (RFC 8689 §2, §4.1): every onward hop must be authenticated TLS
    /// (DANE, or PKIX on a DNSSEC-secure or MTA-STS `enforce` route) to a host that advertises
    /// `REQUIRETLS` and gets it on `MAIL FROM`; otherwise the message bounces with 5.7.30.
    /// Takes precedence over a `TLS-Required: No` header (RFC 8689 §4.1).
    RequireTls,
    /// A `TLS-Required: No` header field (RFC 8689 §3, §4.2.2) without `REQUIRETLS`: the
    /// destination's TLS setting and the remote policies (DANE, MTA-STS) are relaxed to
    /// opportunistic TLS for this message (the hop plan says so in its explanation).
    TlsOptional,
}

impl TlsRequest {
    /// `MAIL FROM:<..> REQUIRETLS` was given.
    #[must_use]
    pub fn requires_tls(self) -> bool {
        self == Self::RequireTls
    }

    /// `TLS-Required: No` was given (and `REQUIRETLS` was not).
    #[must_use]
    pub fn tls_optional(self) -> bool {
        self == Self::TlsOptional
    }

    /// Nothing asked (a relay need not store it, so old readers see no change).
    #[must_use]
    pub fn is_default(&self) -> bool {
        *self == Self::Default
    }

    /// The request of a message received with (`requiretls`) or without the `MAIL FROM`
    /// parameter, and with or without a `TLS-Required: No` header (ignored under
    /// `REQUIRETLS`, RFC 8689 §4.1).
    #[must_use]
    pub fn from_receipt(requiretls: bool, tls_required_no: bool) -> Self {
        match (requiretls, tls_required_no) {
            (true, _) => Self::RequireTls,
            (false, true) => Self::TlsOptional,
            (false, false) => Self::Default,
        }
    }

    /// `default`, `require-tls` or `tls-optional` (the serde names).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Default => "default",
            Self::RequireTls => "require-tls",
            Self::TlsOptional => "tls-optional",
        }
    }
}

/// What the hop plan established about the route to the next hop, for a REQUIRETLS message
/// (RFC 8689 §4.2.1 item 1), as [`crate::plan::HopPlan::requiretls_route`] gives it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RequireTlsRoute {
    /// The plan has not checked the route (today's default): only the session conditions
    /// (TLS, authenticated peer, advertised extension) are enforced.
    #[default]
    NotChecked,
    /// The MX lookup was DNSSEC-secure, or the domain has an MTA-STS `enforce` policy.
    Secure,
    /// Neither: the message must not take this route.
    Insecure,
}

/// The facts of an established delivery session that REQUIRETLS depends on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct RequireTlsSession {
    /// The session runs over TLS.
    pub tls: bool,
    /// The peer was authenticated (PKIX or DANE verified).
    pub authenticated: bool,
    /// `REQUIRETLS` was in the EHLO reply given inside TLS.
    pub advertised: bool,
}

impl RequireTlsSession {
    /// The facts of a session from the delivery machine's decision and the EHLO capabilities
    /// of the session (the ones given after STARTTLS when TLS is up).
    ///
    /// ```
    /// use smtp_tls_policy::delivery::RequireTlsSession;
    /// let s = RequireTlsSession::new(true, true, true);
    /// assert!(s.tls && s.authenticated && s.advertised);
    /// ```
    #[must_use]
    pub fn new(tls: bool, authenticated: bool, advertised: bool) -> Self {
        Self {
            tls,
            authenticated,
            advertised: tls && advertised,
        }
    }

    /// The facts of a session the delivery machine let continue (`decision`), with the
    /// capabilities of its last EHLO reply.
    #[must_use]
    pub fn from_decision(decision: &Decision, capabilities: Option<&EhloCapabilities>) -> Self {
        let tls = decision.action == DeliveryAction::ContinueTls;
        let authenticated = tls
            && matches!(
                decision.reason,
                Reason::TlsEstablished(
                    PeerAuthentication::PkixVerified | PeerAuthentication::DaneVerified
                )
            );
        let advertised = capabilities.is_some_and(|c| c.keywords.iter().any(|k| k == "REQUIRETLS"));
        Self::new(tls, authenticated, advertised)
    }
}

/// Why a REQUIRETLS message may not go over a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RequireTlsRefusal {
    /// The hop plan found the route neither DNSSEC-secure nor under MTA-STS `enforce`.
    RouteNotSecure,
    /// The session is not TLS.
    NotTls,
    /// TLS, but the peer was not authenticated by DANE or PKIX.
    PeerNotAuthenticated,
    /// The next hop does not advertise `REQUIRETLS` (RFC 8689 §4.2.1 item 3).
    NotAdvertised,
}

impl fmt::Display for RequireTlsRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::RouteNotSecure => {
                "the MX lookup was not DNSSEC-secure and no MTA-STS enforce policy applies"
            }
            Self::NotTls => "the session with the next hop is not TLS",
            Self::PeerNotAuthenticated => "the next hop was not authenticated by DANE or PKIX",
            Self::NotAdvertised => "the next hop does not advertise REQUIRETLS",
        })
    }
}

/// Whether and how a message goes over a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[must_use]
#[non_exhaustive]
pub enum RequireTlsVerdict {
    /// The message did not ask for REQUIRETLS: a plain `MAIL FROM`.
    NotRequested,
    /// Send with `MAIL FROM:<..> REQUIRETLS`.
    Send,
    /// Do not send the message to this host (try the next, finally bounce with 5.7.30).
    Refuse(RequireTlsRefusal),
}

impl RequireTlsVerdict {
    /// Whether `REQUIRETLS` goes on `MAIL FROM`.
    #[must_use]
    pub fn mail_parameter(self) -> bool {
        self == Self::Send
    }
}

/// The verdict for a message that asked (`requested`) or not for REQUIRETLS, over `session`,
/// on a route the hop plan judged as `route`. The conditions are checked in RFC 8689 §4.2.1
/// order, so the refusal names the first one that fails.
///
/// ```
/// use smtp_tls_policy::delivery::*;
/// let authenticated = RequireTlsSession::new(true, true, false);
/// assert_eq!(
///     requiretls_verdict(true, RequireTlsRoute::NotChecked, authenticated),
///     RequireTlsVerdict::Refuse(RequireTlsRefusal::NotAdvertised),
/// );
/// assert_eq!(
///     requiretls_verdict(false, RequireTlsRoute::Insecure, RequireTlsSession::default()),
///     RequireTlsVerdict::NotRequested,
/// );
/// ```
pub fn requiretls_verdict(
    requested: bool,
    route: RequireTlsRoute,
    session: RequireTlsSession,
) -> RequireTlsVerdict {
    use RequireTlsRefusal as R;
    if !requested {
        return RequireTlsVerdict::NotRequested;
    }
    let refusal = if route == RequireTlsRoute::Insecure {
        Some(R::RouteNotSecure)
    } else if !session.tls {
        Some(R::NotTls)
    } else if !session.authenticated {
        Some(R::PeerNotAuthenticated)
    } else if !session.advertised {
        Some(R::NotAdvertised)
    } else {
        None
    };
    refusal.map_or(RequireTlsVerdict::Send, RequireTlsVerdict::Refuse)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delivery::PlaintextPermit;
    use crate::smtp::parse_reply;

    fn caps(text: &[u8]) -> EhloCapabilities {
        let (r, _) = parse_reply(text).unwrap();
        EhloCapabilities::from_reply(&r).unwrap()
    }

    fn decision(action: DeliveryAction, reason: Reason) -> Decision {
        Decision {
            action,
            reason,
            events: Vec::new(),
        }
    }

    #[test]
    fn verdict_table() {
        use RequireTlsRefusal as R;
        use RequireTlsRoute::{Insecure, NotChecked, Secure};
        let s = RequireTlsSession::new;
        for (requested, route, session, expected) in [
            (
                false,
                Insecure,
                s(false, false, false),
                RequireTlsVerdict::NotRequested,
            ),
            (
                true,
                NotChecked,
                s(true, true, true),
                RequireTlsVerdict::Send,
            ),
            (true, Secure, s(true, true, true), RequireTlsVerdict::Send),
            (
                true,
                Insecure,
                s(true, true, true),
                RequireTlsVerdict::Refuse(R::RouteNotSecure),
            ),
            (
                true,
                Secure,
                s(false, false, true),
                RequireTlsVerdict::Refuse(R::NotTls),
            ),
            (
                true,
                Secure,
                s(true, false, true),
                RequireTlsVerdict::Refuse(R::PeerNotAuthenticated),
            ),
            (
                true,
                Secure,
                s(true, true, false),
                RequireTlsVerdict::Refuse(R::NotAdvertised),
            ),
        ] {
            assert_eq!(
                requiretls_verdict(requested, route, session),
                expected,
                "{requested} {route:?} {session:?}"
            );
        }
        assert!(RequireTlsVerdict::Send.mail_parameter());
        assert!(!RequireTlsVerdict::NotRequested.mail_parameter());
    }

    #[test]
    fn session_facts_from_the_machine_and_the_ehlo_reply() {
        let with = caps(b"250-mx.example\r\n250-PIPELINING\r\n250 REQUIRETLS\r\n");
        let without = caps(b"250-mx.example\r\n250 PIPELINING\r\n");
        let verified = decision(
            DeliveryAction::ContinueTls,
            Reason::TlsEstablished(PeerAuthentication::DaneVerified),
        );
        let s = RequireTlsSession::from_decision(&verified, Some(&with));
        assert_eq!(s, RequireTlsSession::new(true, true, true));
        let s = RequireTlsSession::from_decision(&verified, Some(&without));
        assert_eq!(
            requiretls_verdict(true, RequireTlsRoute::NotChecked, s),
            RequireTlsVerdict::Refuse(RequireTlsRefusal::NotAdvertised)
        );
        // TLS without verification (`preferred`, `required`): not authenticated.
        let unverified = decision(
            DeliveryAction::ContinueTls,
            Reason::TlsEstablished(PeerAuthentication::NotRequested),
        );
        let s = RequireTlsSession::from_decision(&unverified, Some(&with));
        assert_eq!(
            requiretls_verdict(true, RequireTlsRoute::NotChecked, s),
            RequireTlsVerdict::Refuse(RequireTlsRefusal::PeerNotAuthenticated)
        );
        // A plaintext session that (wrongly) lists REQUIRETLS is still refused as not TLS.
        let plain = decision(
            DeliveryAction::ContinuePlaintext(PlaintextPermit(())),
            Reason::StartTlsNotAdvertised,
        );
        let s = RequireTlsSession::from_decision(&plain, Some(&with));
        assert!(!s.advertised);
        assert_eq!(
            requiretls_verdict(true, RequireTlsRoute::NotChecked, s),
            RequireTlsVerdict::Refuse(RequireTlsRefusal::NotTls)
        );
    }
}
