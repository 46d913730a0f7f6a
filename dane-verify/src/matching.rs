//! Matching a presented certificate chain against a TLSA RRset.
//!
//! Two modes:
//! - [`MatchMode::Smtp`] (RFC 7672 §3.1): PKIX-TA(0) and PKIX-EE(1) are unusable; DANE-EE(3)
//!   matches the leaf with no name and no validity check (RFC 7672 §3.1.1); DANE-TA(2) matches a
//!   certificate of the chain at depth >= 1 (or, for `2 1 0`, acts as a bare public-key anchor
//!   that need not be in the chain, RFC 7672 §3.1.2), then the chain is validated up to it and the
//!   leaf name checked against the reference identities (TLSA base domain, MX host, next-hop
//!   domain; RFC 7672 §3.2.2-3.2.3).
//! - [`MatchMode::Generic`] (RFC 6698 §2.1.1, RFC 7671 §5): all four usages; PKIX-TA/PKIX-EE
//!   need a PKIX-valid chain to the given trust store; DANE-EE name checks can be skipped
//!   (RFC 7671 §5.1).
//!
//! Digest agility (RFC 7671 §9): among records with the same usage and selector, only those with
//! the strongest digest present (SHA2-512 over SHA2-256) are used; `Full(0)` records stay.

use rustls_pki_types::{CertificateDer, Der, ServerName, TrustAnchor, UnixTime};
use webpki::{EndEntityCert, KeyUsage, anchor_from_trusted_cert};

use crate::cert::{CertParts, matches};
use crate::tlsa::{CertUsage, Matching, Selector, TlsaRecord};
pub use crate::verdict::{Outcome, Verdict};

/// Longest chain accepted from a peer (certificates), a work bound.
pub const MAX_CHAIN_LEN: usize = 16;

/// Which rules a match follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum MatchMode {
    /// RFC 7672: SMTP opportunistic/mandatory DANE.
    Smtp,
    /// RFC 6698/7671: all usages; PKIX usages need the trust store.
    Generic,
}

/// Whether DANE-EE(3) checks the leaf's name in generic mode (RFC 7671 §5.1 says it should not).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DaneEeNames {
    /// Check the reference identity against the leaf (RFC 6698 behaviour).
    #[default]
    Check,
    /// Skip the name check (RFC 7671 §5.1; always so in SMTP mode, RFC 7672 §3.1.1).
    Skip,
}

/// Matches chains against TLSA RRsets for a set of reference identities.
///
/// ```
/// use dane_verify::{DaneMatcher, Outcome, TlsaRecord};
/// use rustls_pki_types::UnixTime;
/// let key = rcgen::KeyPair::generate().unwrap();
/// let cert = rcgen::CertificateParams::new(vec!["mx.example".into()]).unwrap()
///     .self_signed(&key).unwrap();
/// let records = dane_verify::server_tlsa_records(cert.der(), None).unwrap();
/// let matcher = DaneMatcher::smtp(["mx.example", "example"]).unwrap();
/// let verdict = matcher.verify(&records, &[cert.der().clone()], UnixTime::now());
/// assert_eq!(verdict.outcome, Outcome::Verified);
/// assert_eq!(verdict.depth, 0);
/// ```
#[derive(Debug, Clone)]
pub struct DaneMatcher {
    mode: MatchMode,
    names: Vec<ServerName<'static>>,
    trust_store: Vec<CertificateDer<'static>>,
    dane_ee_names: DaneEeNames,
}

impl DaneMatcher {
    /// SMTP mode (RFC 7672) with the reference identities for DANE-TA: the TLSA base domain,
    /// the MX host name and the next-hop domain (RFC 7672 §3.2.2).
    pub fn smtp<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<Self, crate::Error> {
        Ok(Self {
            mode: MatchMode::Smtp,
            names: parse_names(names)?,
            trust_store: Vec::new(),
            dane_ee_names: DaneEeNames::Skip,
        })
    }

    /// Generic mode (RFC 6698/7671) with reference identities, a PKIX trust store for usages
    /// 0 and 1, and the DANE-EE name policy.
    pub fn generic<'a>(
        names: impl IntoIterator<Item = &'a str>,
        trust_store: Vec<CertificateDer<'static>>,
        dane_ee_names: DaneEeNames,
    ) -> Result<Self, crate::Error> {
        Ok(Self {
            mode: MatchMode::Generic,
            names: parse_names(names)?,
            trust_store,
            dane_ee_names,
        })
    }

    /// The mode.
    #[must_use]
    pub fn mode(&self) -> MatchMode {
        self.mode
    }

    /// Matches `chain` (leaf first) against `records` at time `now`.
    pub fn verify(
        &self,
        records: &[TlsaRecord],
        chain: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Verdict {
        let usable = self.usable_records(records);
        if usable.is_empty() {
            return Verdict::new(Outcome::Unusable);
        }
        if chain.is_empty() {
            return failed(Outcome::ChainError, "the peer sent no certificate");
        }
        if chain.len() > MAX_CHAIN_LEN {
            return failed(
                Outcome::ChainError,
                &format!(
                    "chain of {} certificates exceeds {MAX_CHAIN_LEN}",
                    chain.len()
                ),
            );
        }
        let parts = match chain
            .iter()
            .enumerate()
            .map(|(d, c)| CertParts::parse(c, d))
            .collect::<Result<Vec<_>, _>>()
        {
            Ok(p) => p,
            Err(e) => return failed(Outcome::ChainError, &e.to_string()),
        };
        let mut best = Verdict::new(Outcome::NoMatch);
        for record in usable {
            let v = match record.usage() {
                CertUsage::DaneEe => self.dane_ee(record, chain, &parts),
                CertUsage::DaneTa => self.dane_ta(record, chain, &parts, now),
                CertUsage::PkixEe => self.pkix(record, chain, &parts, now, true),
                CertUsage::PkixTa => self.pkix(record, chain, &parts, now, false),
                CertUsage::Unassigned(_) | CertUsage::Private => continue,
            };
            if v.outcome == Outcome::Verified {
                return v;
            }
            if v.outcome.rank() > best.outcome.rank() {
                best = v;
            }
        }
        best
    }

    /// Records this mode may use, after digest agility (RFC 7671 §9), DANE-EE first.
    fn usable_records<'r>(&self, records: &'r [TlsaRecord]) -> Vec<&'r TlsaRecord> {
        let usable: Vec<&TlsaRecord> = records
            .iter()
            .filter(|r| match self.mode {
                MatchMode::Smtp => r.is_usable_for_smtp(),
                MatchMode::Generic => {
                    r.is_supported()
                        && !matches!(r.usage(), CertUsage::Unassigned(_) | CertUsage::Private)
                }
            })
            .collect();
        let strongest = |u: CertUsage, s: Selector| {
            usable
                .iter()
                .filter(|r| r.usage() == u && r.selector() == s)
                .filter_map(|r| r.matching().digest_rank())
                .max()
        };
        let mut kept: Vec<&TlsaRecord> = usable
            .iter()
            .copied()
            .filter(|r| match r.matching().digest_rank() {
                None => true,
                Some(rank) => Some(rank) == strongest(r.usage(), r.selector()),
            })
            .collect();
        kept.sort_by_key(|r| match r.usage() {
            CertUsage::DaneEe => 0,
            CertUsage::DaneTa => 1,
            CertUsage::PkixEe => 2,
            _ => 3,
        });
        kept
    }

    fn dane_ee(
        &self,
        record: &TlsaRecord,
        chain: &[CertificateDer<'_>],
        parts: &[CertParts<'_>],
    ) -> Verdict {
        if !record_matches(record, &parts[0]) {
            return Verdict::new(Outcome::NoMatch);
        }
        // RFC 7672 §3.1.1 / RFC 7671 §5.1: no name, no expiry check for DANE-EE.
        if self.mode == MatchMode::Generic && self.dane_ee_names == DaneEeNames::Check {
            if let Err(reason) = self.check_name(&chain[0]) {
                return matched(Outcome::NameMismatch, record, 0, Some(reason));
            }
        }
        matched(Outcome::Verified, record, 0, None)
    }

    fn dane_ta(
        &self,
        record: &TlsaRecord,
        chain: &[CertificateDer<'_>],
        parts: &[CertParts<'_>],
        now: UnixTime,
    ) -> Verdict {
        let mut best = Verdict::new(Outcome::NoMatch);
        for depth in 1..chain.len() {
            if !record_matches(record, &parts[depth]) {
                continue;
            }
            let Ok(anchor) = anchor_from_trusted_cert(&chain[depth]) else {
                best = matched(
                    Outcome::ChainError,
                    record,
                    depth,
                    Some("trust anchor certificate cannot be parsed".into()),
                );
                continue;
            };
            let v = self.path_and_name(record, chain, &chain[1..depth], &[anchor], now, depth);
            if v.outcome == Outcome::Verified {
                return v;
            }
            if v.outcome.rank() > best.outcome.rank() {
                best = v;
            }
        }
        // `2 1 0`: the record carries the anchor's public key; it need not be in the chain
        // (RFC 7672 §3.1.2). Its subject is the issuer name of the top certificate we try.
        if record.selector() == Selector::Spki && record.matching() == Matching::Full {
            let Some(spki) = der_contents(record.data()) else {
                return best;
            };
            for depth in 0..chain.len() {
                let Some(subject) = der_contents(parts[depth].issuer) else {
                    continue;
                };
                let anchor = TrustAnchor {
                    subject: Der::from_slice(subject),
                    subject_public_key_info: Der::from_slice(spki),
                    name_constraints: None,
                };
                let v = match validate_path(&chain[0], &chain[1..=depth], &[anchor], now) {
                    Ok(()) => self.name_verdict(record, chain, depth + 1),
                    // A bare key that signs nothing here is simply not a match.
                    Err(
                        webpki::Error::UnknownIssuer | webpki::Error::InvalidSignatureForPublicKey,
                    ) => {
                        continue;
                    }
                    Err(e) => matched(
                        Outcome::ChainError,
                        record,
                        depth + 1,
                        Some(format!("{e:?}")),
                    ),
                };
                if v.outcome == Outcome::Verified {
                    return v;
                }
                if v.outcome.rank() > best.outcome.rank() {
                    best = v;
                }
            }
        }
        best
    }

    fn pkix(
        &self,
        record: &TlsaRecord,
        chain: &[CertificateDer<'_>],
        parts: &[CertParts<'_>],
        now: UnixTime,
        end_entity: bool,
    ) -> Verdict {
        let anchors: Vec<TrustAnchor<'_>> = self
            .trust_store
            .iter()
            .filter_map(|c| anchor_from_trusted_cert(c).ok())
            .collect();
        if end_entity {
            if !record_matches(record, &parts[0]) {
                return Verdict::new(Outcome::NoMatch);
            }
            return self.path_and_name(record, chain, &chain[1..], &anchors, now, 0);
        }
        // PKIX-TA: the record names a CA; the chain must be PKIX-valid to the store. When the
        // record matches a store CA, only that CA anchors the path (so the path ends at it).
        let matching_store: Vec<TrustAnchor<'_>> = self
            .trust_store
            .iter()
            .enumerate()
            .filter(|(i, c)| CertParts::parse(c, *i).is_ok_and(|p| record_matches(record, &p)))
            .filter_map(|(_, c)| anchor_from_trusted_cert(c).ok())
            .collect();
        if let Some(d) = (1..chain.len()).find(|&d| record_matches(record, &parts[d])) {
            return self.path_and_name(record, chain, &chain[1..], &anchors, now, d);
        }
        if matching_store.is_empty() {
            return Verdict::new(Outcome::NoMatch);
        }
        self.path_and_name(
            record,
            chain,
            &chain[1..],
            &matching_store,
            now,
            chain.len(),
        )
    }

    /// Validates leaf -> intermediates -> anchor at `now`, then the reference identities.
    fn path_and_name(
        &self,
        record: &TlsaRecord,
        chain: &[CertificateDer<'_>],
        intermediates: &[CertificateDer<'_>],
        anchors: &[TrustAnchor<'_>],
        now: UnixTime,
        depth: usize,
    ) -> Verdict {
        match validate_path(&chain[0], intermediates, anchors, now) {
            Ok(()) => self.name_verdict(record, chain, depth),
            Err(e) => matched(Outcome::ChainError, record, depth, Some(format!("{e:?}"))),
        }
    }

    /// After a valid path: the name check decides (RFC 7672 §3.2.3).
    fn name_verdict(
        &self,
        record: &TlsaRecord,
        chain: &[CertificateDer<'_>],
        depth: usize,
    ) -> Verdict {
        match self.check_name(&chain[0]) {
            Ok(()) => matched(Outcome::Verified, record, depth, None),
            Err(reason) => matched(Outcome::NameMismatch, record, depth, Some(reason)),
        }
    }

    /// The leaf must be valid for at least one reference identity (RFC 7672 §3.2.3).
    fn check_name(&self, leaf: &CertificateDer<'_>) -> Result<(), String> {
        let ee = EndEntityCert::try_from(leaf).map_err(|e| e.to_string())?;
        if self
            .names
            .iter()
            .any(|n| ee.verify_is_valid_for_subject_name(n).is_ok())
        {
            Ok(())
        } else {
            let names: Vec<String> = self.names.iter().map(|n| n.to_str().into_owned()).collect();
            Err(format!(
                "certificate is not valid for any of {}",
                names.join(", ")
            ))
        }
    }
}

/// Validates leaf -> intermediates -> one of `anchors` at `now` for TLS server use, with the
/// aws-lc-rs signature algorithms.
fn validate_path(
    leaf: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
    anchors: &[TrustAnchor<'_>],
    now: UnixTime,
) -> Result<(), webpki::Error> {
    let ee = EndEntityCert::try_from(leaf)?;
    let algs = rustls::crypto::aws_lc_rs::default_provider()
        .signature_verification_algorithms
        .all;
    ee.verify_for_usage(
        algs,
        anchors,
        intermediates,
        now,
        KeyUsage::server_auth(),
        None,
        None,
    )
    .map(|_| ())
}

fn parse_names<'a>(
    names: impl IntoIterator<Item = &'a str>,
) -> Result<Vec<ServerName<'static>>, crate::Error> {
    names
        .into_iter()
        .map(|n| {
            let n = n.trim_end_matches('.');
            ServerName::try_from(n.to_owned())
                .ok()
                .filter(|s| matches!(s, ServerName::DnsName(_)))
                .ok_or_else(|| crate::Error::BadName { name: n.into() })
        })
        .collect()
}

fn record_matches(record: &TlsaRecord, cert: &CertParts<'_>) -> bool {
    cert.select(record.selector())
        .is_some_and(|content| matches(record.matching(), content, record.data()))
}

fn matched(outcome: Outcome, record: &TlsaRecord, depth: usize, reason: Option<String>) -> Verdict {
    Verdict {
        outcome,
        depth: i32::try_from(depth).unwrap_or(i32::MAX),
        matched: Some(record.clone()),
        reason,
    }
}

fn failed(outcome: Outcome, reason: &str) -> Verdict {
    Verdict {
        reason: Some(reason.into()),
        ..Verdict::new(outcome)
    }
}

/// The contents of a DER SEQUENCE (tag 0x30) that spans all of `der`.
fn der_contents(der: &[u8]) -> Option<&[u8]> {
    let (&tag, rest) = der.split_first()?;
    if tag != 0x30 {
        return None;
    }
    let (&first, rest) = rest.split_first()?;
    let (len, body) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 3 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |a, &b| a << 8 | usize::from(b));
        (len, &rest[n..])
    };
    (body.len() == len).then_some(body)
}
