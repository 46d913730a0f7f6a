//! Matching a presented certificate chain against a TLSA RRset.
//!
//! Two modes:
//! - [`MatchMode::Smtp`] (RFC 7672 §3.1): PKIX-TA(0) and PKIX-EE(1) are unusable; DANE-EE(3)
//!   matches the leaf with no name, validity or key-usage check (RFC 7672 §3.1.1); DANE-TA(2)
//!   names a trust anchor: a certificate of the chain at depth >= 1, or one published whole in
//!   DNS (`2 0 0` certificate, `2 1 0` bare public key) that the server need not send
//!   (RFC 7671 §5.2.2-5.2.3, RFC 7672 §3.1.2). The chain is validated up to it, then the leaf's
//!   key usage and its name are checked against the reference identities (TLSA base domain,
//!   MX host, next-hop domain; RFC 7672 §3.2.2-3.2.3): its DNS-IDs, or its CN-ID when it has
//!   no DNS-ID, held to the path's name constraints.
//! - [`MatchMode::Generic`] (RFC 6698 §2.1.1, RFC 7671 §5): all four usages; PKIX-TA/PKIX-EE
//!   need a PKIX-valid chain to the given trust store, and a full certificate in a `0 0 0`
//!   record may supply an intermediate the server does not send (RFC 7671 §5.2); DANE-EE name
//!   checks can be skipped (RFC 7671 §5.1).
//!
//! The depth reported is that of OpenSSL's `SSL_get0_dane_authority`: 0 for the leaf, the
//! matched certificate's place in the validated path for a trust anchor (for an anchor
//! certificate from DNS, one beyond the top certificate sent), and for a `2 1 0` bare key the
//! place of the top certificate it signed.
//!
//! Digest agility (RFC 7671 §9): among records with the same usage and selector, only those with
//! the strongest digest present (SHA2-512 over SHA2-256) are used; `Full(0)` records stay.

use std::cell::Cell;
use std::collections::HashSet;

use rustls_pki_types::{CertificateDer, Der, ServerName, TrustAnchor, UnixTime};
use webpki::{EndEntityCert, KeyUsage, anchor_from_trusted_cert};

use crate::cert::{CertParts, check_server_key_usage, matches};
use crate::names::{self, PathCa};
use crate::tlsa::{CertUsage, Matching, Selector, TlsaRecord};
use crate::verdict::{DaneMatchOutcome, DaneVerdict};

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
/// use dane_verify::{DaneMatcher, DaneMatchOutcome, TlsaRecord};
/// use rustls_pki_types::UnixTime;
/// let key = rcgen::KeyPair::generate().unwrap();
/// let cert = rcgen::CertificateParams::new(vec!["mx.example".into()]).unwrap()
///     .self_signed(&key).unwrap();
/// let records = dane_verify::server_tlsa_records(cert.der(), None).unwrap();
/// let matcher = DaneMatcher::smtp(["mx.example", "example"]).unwrap();
/// let verdict = matcher.verify(&records, &[cert.der().clone()], UnixTime::now());
/// assert_eq!(verdict.outcome, DaneMatchOutcome::Verified);
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
    ///
    /// Every usable record is tried (once however often the RRset repeats it; a certificate the
    /// server sends more than once is one DANE-TA candidate); a verified match wins, the lowest
    /// usage first (DANE-EE, DANE-TA, PKIX-EE, PKIX-TA) and, within DANE-TA, the lowest depth
    /// (RFC 7671 §5.2, as OpenSSL's chain building finds it). Otherwise the most telling failure
    /// is returned.
    pub fn verify(
        &self,
        records: &[TlsaRecord],
        chain: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> DaneVerdict {
        let usable = self.usable_records(records);
        if usable.is_empty() {
            return DaneVerdict::new(DaneMatchOutcome::Unusable);
        }
        if chain.is_empty() {
            return failed(DaneMatchOutcome::ChainError, "the peer sent no certificate");
        }
        if chain.len() > MAX_CHAIN_LEN {
            return failed(
                DaneMatchOutcome::ChainError,
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
            Err(e) => return failed(DaneMatchOutcome::ChainError, &e.to_string()),
        };
        let peer = Peer {
            chain,
            parts: &parts,
            from_dns: self.certs_from_dns(&usable),
            now,
            budget: Cell::new(names::MAX_CN_CONSTRAINT_COMPARISONS),
        };
        let mut best = DaneVerdict::new(DaneMatchOutcome::NoMatch);
        let mut verified: Option<(u8, DaneVerdict)> = None;
        for record in usable {
            let rank = usage_rank(record.usage());
            if verified.as_ref().is_some_and(|(r, _)| *r < rank) {
                break;
            }
            let v = match record.usage() {
                CertUsage::DaneEe => self.dane_ee(record, &peer),
                CertUsage::DaneTa => self.dane_ta(record, &peer),
                CertUsage::PkixEe => self.pkix_ee(record, &peer),
                CertUsage::PkixTa => self.pkix_ta(record, &peer),
                CertUsage::Unassigned(_) | CertUsage::Private => continue,
            };
            if v.outcome == DaneMatchOutcome::Verified {
                if verified.as_ref().is_none_or(|(_, b)| v.depth < b.depth) {
                    verified = Some((rank, v));
                }
            } else if v.outcome.rank() > best.outcome.rank() {
                best = v;
            }
        }
        verified.map_or(best, |(_, v)| v)
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
        // A record repeated in the RRset is tried once: its verdict would be the same.
        let mut seen = HashSet::new();
        let mut kept: Vec<&TlsaRecord> = usable
            .iter()
            .copied()
            .filter(|r| match r.matching().digest_rank() {
                None => true,
                Some(rank) => Some(rank) == strongest(r.usage(), r.selector()),
            })
            .filter(|r| seen.insert(*r))
            .collect();
        kept.sort_by_key(|r| usage_rank(r.usage()));
        kept
    }

    /// Full certificates published in DNS (`0 0 0`, `2 0 0`) that the server may not send: extra
    /// untrusted certificates for path building (RFC 7671 §5.2.2; OpenSSL adds them the same
    /// way). Only records that parse as one X.509 certificate count.
    fn certs_from_dns<'r>(&self, usable: &[&'r TlsaRecord]) -> Vec<CertificateDer<'r>> {
        let mut certs: Vec<CertificateDer<'r>> = Vec::new();
        for r in usable {
            if matches!(r.usage(), CertUsage::PkixTa | CertUsage::DaneTa)
                && r.selector() == Selector::Cert
                && r.matching() == Matching::Full
            {
                let der = CertificateDer::from(r.data());
                if CertParts::parse(&der, 0).is_ok() && !certs.contains(&der) {
                    certs.push(der);
                }
            }
        }
        certs
    }

    fn dane_ee(&self, record: &TlsaRecord, peer: &Peer<'_, '_>) -> DaneVerdict {
        if !record_matches(record, &peer.parts[0]) {
            return DaneVerdict::new(DaneMatchOutcome::NoMatch);
        }
        // RFC 7672 §3.1.1 / RFC 7671 §5.1: no name, no expiry, no key-usage check for DANE-EE.
        if self.mode == MatchMode::Generic && self.dane_ee_names == DaneEeNames::Check {
            if let Err(e) = names::check(&peer.chain[0], &self.names, &[], &peer.budget) {
                return name_failure(record, 0, e);
            }
        }
        matched(DaneMatchOutcome::Verified, record, 0, None)
    }

    /// DANE-TA(2): the record names a trust anchor: a certificate the server sends (depth >= 1),
    /// or — RFC 7671 §5.2.2-5.2.3 — a full certificate (`2 0 0`) or a bare public key
    /// (`2 1 0`) published in DNS that the server need not send. The path is validated to that
    /// anchor alone; then the leaf's key usage and names are checked (RFC 7672 §3.2.3).
    ///
    /// Depth as OpenSSL's `SSL_get0_dane_authority` reports it: the anchor certificate's place
    /// in the validated path (for a `2 0 0` anchor not sent, one beyond the top certificate
    /// used), and for a bare key the place of the top certificate it signed.
    fn dane_ta(&self, record: &TlsaRecord, peer: &Peer<'_, '_>) -> DaneVerdict {
        // (depth if the path fails, anchor certificate), each certificate once, at its lowest
        // depth: a copy sent again would give the same path and verdict, at the cost of another
        // validation (a hostile server may send one CA 15 times).
        let mut candidates: Vec<(usize, &[u8])> = Vec::new();
        for (depth, cert) in peer.chain.iter().enumerate().skip(1) {
            let der = cert.as_ref();
            if candidates.iter().all(|(_, c)| *c != der)
                && record_matches(record, &peer.parts[depth])
            {
                candidates.push((depth, der));
            }
        }
        let full = record.matching() == Matching::Full;
        if full
            && record.selector() == Selector::Cert
            && peer.from_dns.contains(&CertificateDer::from(record.data()))
            && candidates.iter().all(|(_, c)| *c != record.data())
        {
            candidates.push((peer.chain.len(), record.data()));
        }
        let mut best = DaneVerdict::new(DaneMatchOutcome::NoMatch);
        for (depth, anchor_der) in candidates {
            let v = match anchor_from_trusted_cert(&CertificateDer::from(anchor_der)) {
                Ok(anchor) => {
                    let pool = peer.pool(Some(anchor_der));
                    let anchors = [anchor];
                    match validate_path(
                        &peer.chain[0],
                        &pool,
                        &anchors,
                        &[Some(anchor_der)],
                        peer.now,
                    ) {
                        Ok(path) => self.after_path(record, peer, &path, path.intermediates + 1),
                        // A certificate from DNS that issues nothing here is simply not a match.
                        Err(
                            webpki::Error::UnknownIssuer
                            | webpki::Error::InvalidSignatureForPublicKey,
                        ) if depth == peer.chain.len() => {
                            DaneVerdict::new(DaneMatchOutcome::NoMatch)
                        }
                        Err(e) => chain_error(record, depth, &e),
                    }
                }
                Err(_) => matched(
                    DaneMatchOutcome::ChainError,
                    record,
                    depth,
                    Some("trust anchor certificate cannot be parsed".into()),
                ),
            };
            best = better(best, v);
            if best.outcome == DaneMatchOutcome::Verified {
                return best;
            }
        }
        if full && record.selector() == Selector::Spki {
            best = better(best, self.bare_key(record, peer));
        }
        best
    }

    /// `2 1 0`: the record carries the anchor's SubjectPublicKeyInfo. Its subject is taken from
    /// the issuer name of the certificate it signs, so one anchor per distinct issuer name of
    /// the certificates at hand; path building picks the lowest one that verifies.
    fn bare_key(&self, record: &TlsaRecord, peer: &Peer<'_, '_>) -> DaneVerdict {
        let Some(spki) = der_contents(record.data()) else {
            return DaneVerdict::new(DaneMatchOutcome::NoMatch);
        };
        let mut subjects: Vec<&[u8]> = Vec::new();
        for issuer in peer.parts.iter().map(|p| p.issuer) {
            if let Some(s) = der_contents(issuer) {
                if !subjects.contains(&s) {
                    subjects.push(s);
                }
            }
        }
        let anchors: Vec<TrustAnchor<'_>> = subjects
            .iter()
            .map(|s| TrustAnchor {
                subject: Der::from_slice(s),
                subject_public_key_info: Der::from_slice(spki),
                name_constraints: None,
            })
            .collect();
        let no_certs = vec![None; anchors.len()];
        let pool = peer.pool(None);
        match validate_path(&peer.chain[0], &pool, &anchors, &no_certs, peer.now) {
            Ok(path) => self.after_path(record, peer, &path, path.intermediates),
            // A bare key that signs nothing here is simply not a match.
            Err(webpki::Error::UnknownIssuer | webpki::Error::InvalidSignatureForPublicKey) => {
                DaneVerdict::new(DaneMatchOutcome::NoMatch)
            }
            Err(e) => chain_error(record, 0, &e),
        }
    }

    /// PKIX-EE(1): the record matches the leaf, which must validate to the trust store.
    fn pkix_ee(&self, record: &TlsaRecord, peer: &Peer<'_, '_>) -> DaneVerdict {
        if !record_matches(record, &peer.parts[0]) {
            return DaneVerdict::new(DaneMatchOutcome::NoMatch);
        }
        let (anchors, certs) = self.store_anchors(|_| true);
        match validate_path(&peer.chain[0], &peer.pool(None), &anchors, &certs, peer.now) {
            Ok(path) => self.after_path(record, peer, &path, 0),
            Err(e) => chain_error(record, 0, &e),
        }
    }

    /// PKIX-TA(0): the record names a CA on a path that validates to the trust store: a store
    /// CA (then only it anchors the path), or a certificate sent or published in DNS, which
    /// must then lie on the validated path.
    fn pkix_ta(&self, record: &TlsaRecord, peer: &Peer<'_, '_>) -> DaneVerdict {
        let (anchors, certs) = self.store_anchors(|p| record_matches(record, p));
        let pool = peer.pool(None);
        if !anchors.is_empty() {
            let v = match validate_path(&peer.chain[0], &pool, &anchors, &certs, peer.now) {
                Ok(path) => self.after_path(record, peer, &path, path.intermediates + 1),
                Err(e) => chain_error(record, peer.chain.len(), &e),
            };
            if v.outcome == DaneMatchOutcome::Verified {
                return v;
            }
            return better(self.pkix_ta_below(record, peer, &pool), v);
        }
        self.pkix_ta_below(record, peer, &pool)
    }

    /// PKIX-TA(0) for a CA among the sent or DNS-published certificates.
    fn pkix_ta_below(
        &self,
        record: &TlsaRecord,
        peer: &Peer<'_, '_>,
        pool: &[CertificateDer<'_>],
    ) -> DaneVerdict {
        let named = |c: &CertificateDer<'_>| {
            CertParts::parse(c, 1).is_ok_and(|p| record_matches(record, &p))
        };
        let sent = (1..peer.chain.len()).find(|&d| record_matches(record, &peer.parts[d]));
        if sent.is_none() && !peer.from_dns.iter().any(named) {
            return DaneVerdict::new(DaneMatchOutcome::NoMatch);
        }
        let (anchors, certs) = self.store_anchors(|_| true);
        match validate_path(&peer.chain[0], pool, &anchors, &certs, peer.now) {
            Ok(path) => match path.cas.iter().position(named) {
                Some(i) => self.after_path(record, peer, &path, i + 1),
                // Named but not on the path (an unrelated certificate): no match, as OpenSSL.
                None => DaneVerdict::new(DaneMatchOutcome::NoMatch),
            },
            Err(e) => chain_error(record, sent.unwrap_or(1), &e),
        }
    }

    /// The trust store's anchors whose certificate passes `keep`, with their certificates.
    fn store_anchors(
        &self,
        keep: impl Fn(&CertParts<'_>) -> bool,
    ) -> (Vec<TrustAnchor<'_>>, Vec<Option<&[u8]>>) {
        self.trust_store
            .iter()
            .enumerate()
            .filter(|(i, c)| CertParts::parse(c, *i).is_ok_and(|p| keep(&p)))
            .filter_map(|(_, c)| Some((anchor_from_trusted_cert(c).ok()?, Some(c.as_ref()))))
            .unzip()
    }

    /// After a valid path: the leaf's key usage (one rule with PKIX verification, OpenSSL's
    /// `ssl_server` purpose), then the name check decides (RFC 7672 §3.2.3).
    fn after_path(
        &self,
        record: &TlsaRecord,
        peer: &Peer<'_, '_>,
        path: &ValidPath,
        depth: usize,
    ) -> DaneVerdict {
        if let Err(e) = check_server_key_usage(&peer.chain[0]) {
            return matched(
                DaneMatchOutcome::ChainError,
                record,
                depth,
                Some(e.to_string()),
            );
        }
        let cas: Vec<PathCa<'_>> = path
            .cas
            .iter()
            .map(|c| PathCa::Certificate(c.as_ref()))
            .collect();
        match names::check(&peer.chain[0], &self.names, &cas, &peer.budget) {
            Ok(()) => matched(DaneMatchOutcome::Verified, record, depth, None),
            Err(e) => name_failure(record, depth, e),
        }
    }
}

/// The presented chain, parsed, with the certificates DNS supplies and the work left.
struct Peer<'c, 'p> {
    chain: &'c [CertificateDer<'c>],
    parts: &'p [CertParts<'p>],
    from_dns: Vec<CertificateDer<'c>>,
    now: UnixTime,
    /// What is left of [`names::MAX_CN_CONSTRAINT_COMPARISONS`] for this verification.
    budget: Cell<usize>,
}

impl<'c> Peer<'c, '_> {
    /// Untrusted certificates for path building: those sent after the leaf, then those from
    /// DNS, without `anchor` (a path does not run through its own anchor).
    fn pool(&self, anchor: Option<&[u8]>) -> Vec<CertificateDer<'c>> {
        let mut pool: Vec<CertificateDer<'c>> = Vec::new();
        for c in self.chain[1..].iter().chain(&self.from_dns) {
            if Some(c.as_ref()) != anchor && !pool.contains(c) {
                pool.push(c.clone());
            }
        }
        pool
    }
}

/// A validated path: the CA certificates above the leaf (intermediates used, then the anchor's
/// certificate when it came from one) and how many of them are intermediates.
struct ValidPath {
    cas: Vec<CertificateDer<'static>>,
    intermediates: usize,
}

/// Validates leaf -> intermediates from `pool` -> one of `anchors` at `now` for TLS server use,
/// with the aws-lc-rs signature algorithms. `anchor_certs[i]` is the certificate `anchors[i]`
/// was made from, if any.
fn validate_path(
    leaf: &CertificateDer<'_>,
    pool: &[CertificateDer<'_>],
    anchors: &[TrustAnchor<'_>],
    anchor_certs: &[Option<&[u8]>],
    now: UnixTime,
) -> Result<ValidPath, webpki::Error> {
    #[cfg(test)]
    tests::PATH_VALIDATIONS.with(|n| n.set(n.get() + 1));
    let ee = EndEntityCert::try_from(leaf)?;
    let algs = rustls::crypto::aws_lc_rs::default_provider()
        .signature_verification_algorithms
        .all;
    let path = ee.verify_for_usage(
        algs,
        anchors,
        pool,
        now,
        KeyUsage::server_auth(),
        None,
        None,
    )?;
    let mut cas: Vec<CertificateDer<'static>> = path
        .intermediate_certificates()
        .map(|c| c.der().into_owned())
        .collect();
    let intermediates = cas.len();
    let used = anchors.iter().position(|a| std::ptr::eq(a, path.anchor()));
    if let Some(Some(der)) = used.and_then(|i| anchor_certs.get(i)) {
        cas.push(CertificateDer::from(der.to_vec()));
    }
    Ok(ValidPath { cas, intermediates })
}

/// DANE-EE, DANE-TA, PKIX-EE, PKIX-TA: the order records are tried in (RFC 7671 §5).
fn usage_rank(usage: CertUsage) -> u8 {
    match usage {
        CertUsage::DaneEe => 0,
        CertUsage::DaneTa => 1,
        CertUsage::PkixEe => 2,
        _ => 3,
    }
}

/// The more telling of two verdicts (a verified one first).
fn better(a: DaneVerdict, b: DaneVerdict) -> DaneVerdict {
    if b.outcome.rank() > a.outcome.rank() {
        b
    } else {
        a
    }
}

/// A failed name check: a mismatch, or — the work bound spent — a chain error.
fn name_failure(record: &TlsaRecord, depth: usize, e: names::NameFailure) -> DaneVerdict {
    match e {
        names::NameFailure::Mismatch(reason) => {
            matched(DaneMatchOutcome::NameMismatch, record, depth, Some(reason))
        }
        names::NameFailure::Budget => matched(
            DaneMatchOutcome::ChainError,
            record,
            depth,
            Some(format!(
                "more than {} CN-ID name-constraint comparisons",
                names::MAX_CN_CONSTRAINT_COMPARISONS
            )),
        ),
    }
}

fn chain_error(record: &TlsaRecord, depth: usize, e: &webpki::Error) -> DaneVerdict {
    matched(
        DaneMatchOutcome::ChainError,
        record,
        depth,
        Some(format!("{e:?}")),
    )
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

fn matched(
    outcome: DaneMatchOutcome,
    record: &TlsaRecord,
    depth: usize,
    reason: Option<String>,
) -> DaneVerdict {
    DaneVerdict {
        outcome,
        depth: i32::try_from(depth).unwrap_or(i32::MAX),
        matched: Some(record.clone()),
        reason,
    }
}

fn failed(outcome: DaneMatchOutcome, reason: &str) -> DaneVerdict {
    DaneVerdict {
        reason: Some(reason.into()),
        ..DaneVerdict::new(outcome)
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

#[cfg(test)]
#[path = "matching_tests.rs"]
mod tests;
