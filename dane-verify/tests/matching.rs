//! TLSA matching: every usage x selector x matching type, digest agility, DANE-TA with and
//! without the anchor in the chain, expiry and names. Certificates come from rcgen, in-test.

use dane_verify::{
    CertUsage, DaneEeNames, DaneMatchOutcome, DaneMatcher, Matching, Selector, TlsaRecord,
    server_tlsa_records,
};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
};
use rustls_pki_types::{CertificateDer, UnixTime};
use sha2::{Digest, Sha256, Sha512};
use x509_parser::prelude::{FromDer, X509Certificate};

struct Pki {
    root: CertificateDer<'static>,
    inter: CertificateDer<'static>,
    leaf: CertificateDer<'static>,
}

fn ca_params(cn: &str) -> CertificateParams {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p
}

/// root -> intermediate -> leaf for `names`, the leaf valid in `[from, to]` (years).
fn pki(names: &[&str], from: i32, to: i32) -> Pki {
    let root_key = KeyPair::generate().unwrap();
    let root_params = ca_params("Test Root");
    let root = root_params.self_signed(&root_key).unwrap();
    let root_issuer = Issuer::new(root_params, root_key);
    let inter_key = KeyPair::generate().unwrap();
    let inter_params = ca_params("Test Intermediate");
    let inter = inter_params.signed_by(&inter_key, &root_issuer).unwrap();
    let inter_issuer = Issuer::new(inter_params, inter_key);
    let leaf_key = KeyPair::generate().unwrap();
    let mut lp =
        CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    lp.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    lp.not_before = rcgen::date_time_ymd(from, 1, 1);
    lp.not_after = rcgen::date_time_ymd(to, 1, 1);
    let leaf = lp.signed_by(&leaf_key, &inter_issuer).unwrap();
    Pki {
        root: root.der().clone(),
        inter: inter.der().clone(),
        leaf: leaf.der().clone(),
    }
}

fn current() -> Pki {
    pki(&["mx.example.net"], 2020, 2099)
}

fn spki(cert: &CertificateDer<'_>) -> Vec<u8> {
    let (_, c) = X509Certificate::from_der(cert.as_ref()).unwrap();
    c.tbs_certificate.subject_pki.raw.to_vec()
}

/// The record `usage selector matching` computed from `cert`.
fn record(usage: u8, selector: u8, matching: u8, cert: &CertificateDer<'_>) -> TlsaRecord {
    let content = match selector {
        0 => cert.as_ref().to_vec(),
        _ => spki(cert),
    };
    let data = match matching {
        0 => content,
        1 => Sha256::digest(&content).to_vec(),
        _ => Sha512::digest(&content).to_vec(),
    };
    TlsaRecord::new(usage.into(), selector.into(), matching.into(), data).unwrap()
}

fn now() -> UnixTime {
    UnixTime::now()
}

fn smtp() -> DaneMatcher {
    DaneMatcher::smtp(["mx.example.net", "example.net"]).unwrap()
}

#[test]
fn every_usage_selector_matching_in_both_modes() {
    let p = current();
    let chain = vec![p.leaf.clone(), p.inter.clone(), p.root.clone()];
    let generic =
        DaneMatcher::generic(["mx.example.net"], vec![p.root.clone()], DaneEeNames::Check).unwrap();
    let mut cells = 0;
    for usage in 0..=3u8 {
        for selector in 0..=1u8 {
            for matching in 0..=2u8 {
                // EE usages name the leaf, TA usages the intermediate (depth 1)
                let (cert, depth) = if usage % 2 == 1 {
                    (&p.leaf, 0)
                } else {
                    (&p.inter, 1)
                };
                let r = record(usage, selector, matching, cert);
                let g = generic.verify(std::slice::from_ref(&r), &chain, now());
                assert_eq!(
                    g.outcome,
                    DaneMatchOutcome::Verified,
                    "generic {r}: {:?}",
                    g.reason
                );
                assert_eq!(g.depth, depth, "generic {r}");
                assert_eq!(g.matched.as_ref(), Some(&r));
                let s = smtp().verify(std::slice::from_ref(&r), &chain, now());
                if usage < 2 {
                    assert_eq!(s.outcome, DaneMatchOutcome::Unusable, "smtp {r}");
                    assert_eq!(s.depth, -1);
                } else {
                    assert_eq!(
                        s.outcome,
                        DaneMatchOutcome::Verified,
                        "smtp {r}: {:?}",
                        s.reason
                    );
                    assert_eq!(s.depth, depth);
                }
                // a record for another key never matches
                let other = current();
                let wrong = record(
                    usage,
                    selector,
                    matching,
                    if usage % 2 == 1 {
                        &other.leaf
                    } else {
                        &other.inter
                    },
                );
                let w = generic.verify(&[wrong], &chain, now());
                assert_eq!(w.outcome, DaneMatchOutcome::NoMatch, "wrong {r}");
                assert_eq!((w.depth, w.matched), (-1, None));
                cells += 1;
            }
        }
    }
    assert_eq!(cells, 24);
}

#[test]
fn pkix_usages_need_a_trusted_root() {
    let p = current();
    let chain = vec![p.leaf.clone(), p.inter.clone()];
    let untrusted = DaneMatcher::generic(["mx.example.net"], vec![], DaneEeNames::Check).unwrap();
    let v = untrusted.verify(&[record(1, 1, 1, &p.leaf)], &chain, now());
    assert_eq!(v.outcome, DaneMatchOutcome::ChainError);
    assert_eq!(v.depth, 0);
    // PKIX-TA naming the root that is not in the chain but in the store
    let store =
        DaneMatcher::generic(["mx.example.net"], vec![p.root.clone()], DaneEeNames::Check).unwrap();
    let v = store.verify(&[record(0, 0, 1, &p.root)], &chain, now());
    assert_eq!(v.outcome, DaneMatchOutcome::Verified, "{:?}", v.reason);
    assert_eq!(v.depth, 2);
}

#[test]
fn unusable_only_rrset_means_unauthenticated_tls() {
    let p = current();
    let chain = vec![p.leaf.clone(), p.inter.clone()];
    let records = vec![
        record(0, 1, 1, &p.inter),
        record(1, 1, 1, &p.leaf),
        format!("3 9 1 {}", "00".repeat(32))
            .parse::<TlsaRecord>()
            .unwrap(), // unassigned selector
        "3 1 7 00".parse::<TlsaRecord>().unwrap(), // unassigned matching
        "200 1 0 00".parse::<TlsaRecord>().unwrap(),
    ];
    let v = smtp().verify(&records, &chain, now());
    assert_eq!(v.outcome, DaneMatchOutcome::Unusable);
    assert_eq!(v.matched, None);
}

#[test]
fn digest_agility_stronger_digest_alone_decides() {
    let p = current();
    let chain = vec![p.leaf.clone(), p.inter.clone()];
    let good256 = record(3, 1, 1, &p.leaf);
    let good512 = record(3, 1, 2, &p.leaf);
    let bad512 = TlsaRecord::new(
        CertUsage::DaneEe,
        Selector::Spki,
        Matching::Sha512,
        vec![7; 64],
    )
    .unwrap();
    // SHA-512 present but wrong: the matching SHA-256 record is ignored (RFC 7671 §9)
    let v = smtp().verify(&[good256.clone(), bad512.clone()], &chain, now());
    assert_eq!(v.outcome, DaneMatchOutcome::NoMatch);
    // both right: the SHA-512 one is the match
    let v = smtp().verify(&[good256.clone(), good512.clone()], &chain, now());
    assert_eq!(v.matched, Some(good512));
    // agility is per (usage, selector): a SHA-512 cert-selector record does not mask SPKI ones
    let bad512_cert = TlsaRecord::new(
        CertUsage::DaneEe,
        Selector::Cert,
        Matching::Sha512,
        vec![7; 64],
    )
    .unwrap();
    let v = smtp().verify(&[bad512_cert, good256.clone()], &chain, now());
    assert_eq!(v.matched, Some(good256));
    // Full(0) records are not subject to agility
    let full = record(3, 1, 0, &p.leaf);
    let v = smtp().verify(&[bad512, full.clone()], &chain, now());
    assert_eq!(v.matched, Some(full));
}

#[test]
fn dane_ta_with_and_without_anchor_in_chain() {
    let p = current();
    let with_root = vec![p.leaf.clone(), p.inter.clone(), p.root.clone()];
    let without_root = vec![p.leaf.clone(), p.inter.clone()];
    // 2 1 1 for the root: found at depth 2 when sent
    let v = smtp().verify(&[record(2, 1, 1, &p.root)], &with_root, now());
    assert_eq!((v.outcome, v.depth), (DaneMatchOutcome::Verified, 2));
    // not sent: digest records cannot name an absent anchor (RFC 7672 §3.1.2)
    let v = smtp().verify(&[record(2, 1, 1, &p.root)], &without_root, now());
    assert_eq!((v.outcome, v.depth), (DaneMatchOutcome::NoMatch, -1));
    // 2 1 0 carries the key itself: the anchor need not be in the chain; the depth is that of
    // the top certificate the key signed (OpenSSL's SSL_get0_dane_authority)
    let v = smtp().verify(&[record(2, 1, 0, &p.root)], &without_root, now());
    assert_eq!(v.outcome, DaneMatchOutcome::Verified, "{:?}", v.reason);
    assert_eq!(v.depth, 1);
    // 2 1 0 for the intermediate, chain of the leaf alone
    let v = smtp().verify(
        &[record(2, 1, 0, &p.inter)],
        std::slice::from_ref(&p.leaf),
        now(),
    );
    assert_eq!(
        (v.outcome, v.depth),
        (DaneMatchOutcome::Verified, 0),
        "{:?}",
        v.reason
    );
    // 2 0 0 carries the whole anchor certificate: also usable when not sent (RFC 7671
    // §5.2.2); its depth is one beyond the top certificate sent
    let v = smtp().verify(&[record(2, 0, 0, &p.root)], &without_root, now());
    assert_eq!(
        (v.outcome, v.depth),
        (DaneMatchOutcome::Verified, 2),
        "{:?}",
        v.reason
    );
    let v = smtp().verify(
        &[record(2, 0, 0, &p.inter)],
        std::slice::from_ref(&p.leaf),
        now(),
    );
    assert_eq!(
        (v.outcome, v.depth),
        (DaneMatchOutcome::Verified, 1),
        "{:?}",
        v.reason
    );
    // an unrelated anchor from DNS is no match
    let other = current();
    let v = smtp().verify(&[record(2, 0, 0, &other.root)], &without_root, now());
    assert_eq!((v.outcome, v.depth), (DaneMatchOutcome::NoMatch, -1));
    let v = smtp().verify(&[record(2, 1, 0, &other.root)], &without_root, now());
    assert_eq!((v.outcome, v.depth), (DaneMatchOutcome::NoMatch, -1));
    // DANE-TA never matches the leaf itself
    let v = smtp().verify(&[record(2, 1, 1, &p.leaf)], &with_root, now());
    assert_eq!(v.outcome, DaneMatchOutcome::NoMatch);
}

#[test]
fn dane_ta_checks_name_and_expiry() {
    let p = current();
    let chain = vec![p.leaf.clone(), p.inter.clone()];
    let r = record(2, 1, 1, &p.inter);
    let other = DaneMatcher::smtp(["mx.other.example", "other.example"]).unwrap();
    let v = other.verify(std::slice::from_ref(&r), &chain, now());
    assert_eq!((v.outcome, v.depth), (DaneMatchOutcome::NameMismatch, 1));
    // the next-hop domain alone is enough as reference identity
    let nexthop = DaneMatcher::smtp(["mx.example.org", "mx.example.net"]).unwrap();
    assert_eq!(
        nexthop
            .verify(std::slice::from_ref(&r), &chain, now())
            .outcome,
        DaneMatchOutcome::Verified
    );
    let expired = pki(&["mx.example.net"], 2001, 2002);
    let chain = vec![expired.leaf.clone(), expired.inter.clone()];
    let v = smtp().verify(&[record(2, 1, 1, &expired.inter)], &chain, now());
    assert_eq!((v.outcome, v.depth), (DaneMatchOutcome::ChainError, 1));
    assert!(v.reason.unwrap().contains("Expired"));
}

#[test]
fn expired_leaf_and_wrong_name_pass_under_dane_ee() {
    let expired = pki(&["somewhere.else.example"], 2001, 2002);
    let chain = vec![expired.leaf.clone()];
    let r = record(3, 1, 1, &expired.leaf);
    let v = smtp().verify(std::slice::from_ref(&r), &chain, now());
    assert_eq!((v.outcome, v.depth), (DaneMatchOutcome::Verified, 0));
    // generic mode checks the name unless told not to (RFC 7671 §5.1)
    let check = DaneMatcher::generic(["mx.example.net"], vec![], DaneEeNames::Check).unwrap();
    assert_eq!(
        check
            .verify(std::slice::from_ref(&r), &chain, now())
            .outcome,
        DaneMatchOutcome::NameMismatch
    );
    let skip = DaneMatcher::generic(["mx.example.net"], vec![], DaneEeNames::Skip).unwrap();
    assert_eq!(
        skip.verify(&[r], &chain, now()).outcome,
        DaneMatchOutcome::Verified
    );
}

#[test]
fn bad_chains_are_chain_errors_not_panics() {
    let p = current();
    let r = record(3, 1, 1, &p.leaf);
    let v = smtp().verify(std::slice::from_ref(&r), &[], now());
    assert_eq!(v.outcome, DaneMatchOutcome::ChainError);
    let junk = CertificateDer::from(vec![0x30, 0x03, 0x02, 0x01, 0x00]);
    let v = smtp().verify(std::slice::from_ref(&r), &[junk], now());
    assert_eq!(v.outcome, DaneMatchOutcome::ChainError);
    let long = vec![p.leaf.clone(); 17];
    assert_eq!(
        smtp().verify(&[r], &long, now()).outcome,
        DaneMatchOutcome::ChainError
    );
    assert!(DaneMatcher::smtp(["not a name!"]).is_err());
}

#[test]
fn output_helper_records_match_their_certificate() {
    let p = current();
    let records = server_tlsa_records(&p.leaf, Some(&p.inter)).unwrap();
    assert_eq!(records.len(), 2);
    assert_eq!(records[0], record(3, 1, 1, &p.leaf));
    assert_eq!(records[1], record(2, 1, 1, &p.inter));
    let hex_spki = hex::encode(Sha256::digest(spki(&p.leaf)));
    assert_eq!(
        records[0].to_rr_line("mx.example.net", 25),
        format!("_25._tcp.mx.example.net. IN TLSA 3 1 1 {hex_spki}")
    );
    let chain = vec![p.leaf.clone(), p.inter.clone()];
    for r in &records {
        assert!(
            smtp()
                .verify(std::slice::from_ref(r), &chain, now())
                .is_verified()
        );
    }
    assert!(server_tlsa_records(&CertificateDer::from(vec![1, 2, 3]), None).is_err());
}

/// A private CA and a leaf it signs; `leaf` shapes the leaf's parameters (names, key usage).
struct Private {
    ca: CertificateDer<'static>,
    leaf: CertificateDer<'static>,
}

fn private_ca(
    constraints: Option<rcgen::NameConstraints>,
    leaf: impl FnOnce(&mut CertificateParams),
) -> Private {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_p = ca_params("Private CA");
    ca_p.name_constraints = constraints;
    let ca = ca_p.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_p, ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let mut lp = CertificateParams::new(Vec::<String>::new()).unwrap();
    lp.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    leaf(&mut lp);
    let leaf = lp.signed_by(&leaf_key, &issuer).unwrap();
    Private {
        ca: ca.der().clone(),
        leaf: leaf.der().clone(),
    }
}

fn cn(p: &mut CertificateParams, name: &str) {
    p.distinguished_name.push(DnType::CommonName, name);
}

/// Issue 11, finding 4: with DANE-TA the CN-ID counts when the leaf has no DNS-ID (RFC 7672
/// §3.2.3), as OpenSSL/Postfix do; a DNS-ID, when present, is the only identity used.
#[test]
fn dane_ta_uses_the_cn_when_the_leaf_has_no_dns_id() {
    let p = private_ca(None, |l| cn(l, "mx.example"));
    let chain = vec![p.leaf.clone(), p.ca.clone()];
    let m = DaneMatcher::smtp(["mx.example", "example"]).unwrap();
    for r in [record(2, 1, 1, &p.ca), record(2, 0, 1, &p.ca)] {
        let v = m.verify(std::slice::from_ref(&r), &chain, now());
        assert_eq!(
            (v.outcome, v.depth),
            (DaneMatchOutcome::Verified, 1),
            "{r}: {:?}",
            v.reason
        );
    }
    // the CN is still compared: another name does not match it
    let other = DaneMatcher::smtp(["mx.other.example"]).unwrap();
    let v = other.verify(&[record(2, 1, 1, &p.ca)], &chain, now());
    assert_eq!((v.outcome, v.depth), (DaneMatchOutcome::NameMismatch, 1));
    // a wildcard CN covers one label
    let p = private_ca(None, |l| cn(l, "*.example.net"));
    let chain = vec![p.leaf.clone(), p.ca.clone()];
    let v = smtp().verify(&[record(2, 1, 1, &p.ca)], &chain, now());
    assert_eq!(v.outcome, DaneMatchOutcome::Verified, "{:?}", v.reason);
    let deep = DaneMatcher::smtp(["a.mx.example.net"]).unwrap();
    let v = deep.verify(&[record(2, 1, 1, &p.ca)], &chain, now());
    assert_eq!(v.outcome, DaneMatchOutcome::NameMismatch);
}

#[test]
fn dane_ta_ignores_the_cn_when_a_dns_id_is_present() {
    let p = private_ca(None, |l| {
        cn(l, "mx.example");
        l.subject_alt_names = vec![rcgen::SanType::DnsName("other.example".try_into().unwrap())];
    });
    let chain = vec![p.leaf.clone(), p.ca.clone()];
    let m = DaneMatcher::smtp(["mx.example", "example"]).unwrap();
    let v = m.verify(&[record(2, 1, 1, &p.ca)], &chain, now());
    assert_eq!((v.outcome, v.depth), (DaneMatchOutcome::NameMismatch, 1));
    let san = DaneMatcher::smtp(["other.example"]).unwrap();
    let v = san.verify(&[record(2, 1, 1, &p.ca)], &chain, now());
    assert_eq!(v.outcome, DaneMatchOutcome::Verified, "{:?}", v.reason);
}

/// A CN used as a DNS-ID obeys the dNSName constraints of the path, as a SAN would (issue 11,
/// finding 1: rustls-webpki applies them to SANs only).
#[test]
fn a_cn_used_as_dns_id_obeys_name_constraints() {
    let permit = |names: &[&str]| rcgen::NameConstraints {
        permitted_subtrees: names
            .iter()
            .map(|n| rcgen::GeneralSubtree::DnsName((*n).into()))
            .collect(),
        excluded_subtrees: vec![],
    };
    let m = DaneMatcher::smtp(["mx.example", "example"]).unwrap();
    let p = private_ca(Some(permit(&["allowed.test"])), |l| cn(l, "mx.example"));
    let chain = vec![p.leaf.clone(), p.ca.clone()];
    let v = m.verify(&[record(2, 1, 1, &p.ca)], &chain, now());
    assert_eq!(
        (v.outcome, v.depth),
        (DaneMatchOutcome::NameMismatch, 1),
        "{v:?}"
    );
    let p = private_ca(Some(permit(&["example"])), |l| cn(l, "mx.example"));
    let chain = vec![p.leaf.clone(), p.ca.clone()];
    let v = m.verify(&[record(2, 1, 1, &p.ca)], &chain, now());
    assert_eq!(v.outcome, DaneMatchOutcome::Verified, "{:?}", v.reason);
    let exclude = rcgen::NameConstraints {
        permitted_subtrees: vec![],
        excluded_subtrees: vec![rcgen::GeneralSubtree::DnsName("mx.example".into())],
    };
    let p = private_ca(Some(exclude), |l| cn(l, "mx.example"));
    let chain = vec![p.leaf.clone(), p.ca.clone()];
    let v = m.verify(&[record(2, 1, 1, &p.ca)], &chain, now());
    assert_eq!(v.outcome, DaneMatchOutcome::NameMismatch, "{v:?}");
}

/// Issue 11, finding 8: a DANE-TA leaf whose keyUsage allows no TLS server use (keyCertSign
/// only) is refused, as by `tlsverify` and OpenSSL's `ssl_server` purpose; DANE-EE(3) skips
/// the check, as OpenSSL does.
#[test]
fn dane_ta_refuses_a_leaf_whose_key_usage_excludes_tls_server() {
    use rcgen::KeyUsagePurpose as Ku;
    let m = DaneMatcher::smtp(["mx.example"]).unwrap();
    let names = |l: &mut CertificateParams| {
        l.subject_alt_names = vec![rcgen::SanType::DnsName("mx.example".try_into().unwrap())];
    };
    let p = private_ca(None, |l| {
        names(l);
        l.key_usages = vec![Ku::KeyCertSign];
    });
    let chain = vec![p.leaf.clone(), p.ca.clone()];
    let v = m.verify(&[record(2, 1, 1, &p.ca)], &chain, now());
    assert_eq!(
        (v.outcome, v.depth),
        (DaneMatchOutcome::ChainError, 1),
        "{v:?}"
    );
    assert!(v.reason.unwrap().contains("keyUsage"));
    let v = m.verify(&[record(3, 1, 1, &p.leaf)], &chain, now());
    assert_eq!((v.outcome, v.depth), (DaneMatchOutcome::Verified, 0));
    for ku in [
        vec![Ku::DigitalSignature],
        vec![Ku::KeyEncipherment],
        vec![Ku::KeyAgreement],
        vec![],
    ] {
        let p = private_ca(None, |l| {
            names(l);
            l.key_usages = ku.clone();
        });
        let chain = vec![p.leaf.clone(), p.ca.clone()];
        let v = m.verify(&[record(2, 1, 1, &p.ca)], &chain, now());
        assert_eq!(
            v.outcome,
            DaneMatchOutcome::Verified,
            "{ku:?}: {:?}",
            v.reason
        );
    }
}

/// The shape of OpenSSL's `test/dane-cross.in`: the server sends its root cross-signed by another
/// root (plus that root), the TLSA record is `2 0 0` with the self-signed root certificate,
/// which the server does not send: the path ends at the anchor from DNS, depth 2.
#[test]
fn dane_ta_full_certificate_from_dns_beside_a_cross_signed_root() {
    let root_key = KeyPair::generate().unwrap();
    let root_params = ca_params("Root CA");
    let root_self = root_params.self_signed(&root_key).unwrap();
    let cross_key = KeyPair::generate().unwrap();
    let cross_params = ca_params("Cross Root");
    let cross = cross_params.self_signed(&cross_key).unwrap();
    let cross_issuer = Issuer::new(cross_params, cross_key);
    let root_cross = ca_params("Root CA")
        .signed_by(&root_key, &cross_issuer)
        .unwrap();
    let root_issuer = Issuer::new(root_params, root_key);
    let ca_key = KeyPair::generate().unwrap();
    let ca_p = ca_params("CA");
    let ca = ca_p.signed_by(&ca_key, &root_issuer).unwrap();
    let ca_issuer = Issuer::new(ca_p, ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let mut lp = CertificateParams::new(vec!["mx.example.net".to_string()]).unwrap();
    lp.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let leaf = lp.signed_by(&leaf_key, &ca_issuer).unwrap();
    let chain = vec![
        leaf.der().clone(),
        ca.der().clone(),
        root_cross.der().clone(),
        cross.der().clone(),
    ];
    let r = record(2, 0, 0, root_self.der());
    let v = smtp().verify(std::slice::from_ref(&r), &chain, now());
    assert_eq!(
        (v.outcome, v.depth),
        (DaneMatchOutcome::Verified, 2),
        "{:?}",
        v.reason
    );
    // the cross-signed copy sent is matched by its own digest at depth 2 as well
    let v = smtp().verify(&[record(2, 0, 1, root_cross.der())], &chain, now());
    assert_eq!(
        (v.outcome, v.depth),
        (DaneMatchOutcome::Verified, 2),
        "{:?}",
        v.reason
    );
}

/// Many reference names against a CA with many dNSName constraints: the CN-ID checks are bounded
/// (250 000 comparisons per verification, rustls-webpki's budget for SANs), then refused.
#[test]
fn cn_name_constraint_work_is_bounded() {
    let constraints = rcgen::NameConstraints {
        permitted_subtrees: (0..1000)
            .map(|i| rcgen::GeneralSubtree::DnsName(format!("n{i}.invalid")))
            .collect(),
        excluded_subtrees: vec![],
    };
    let p = private_ca(Some(constraints), |l| cn(l, "*.example.net"));
    let chain = vec![p.leaf.clone(), p.ca.clone()];
    let r = record(2, 1, 1, &p.ca);
    let few: Vec<String> = (0..10).map(|i| format!("h{i}.example.net")).collect();
    let m = DaneMatcher::smtp(few.iter().map(String::as_str)).unwrap();
    let v = m.verify(std::slice::from_ref(&r), &chain, now());
    assert_eq!(
        (v.outcome, v.depth),
        (DaneMatchOutcome::NameMismatch, 1),
        "{v:?}"
    );
    let many: Vec<String> = (0..600).map(|i| format!("h{i}.example.net")).collect();
    let m = DaneMatcher::smtp(many.iter().map(String::as_str)).unwrap();
    let v = m.verify(&[r], &chain, now());
    assert_eq!(
        (v.outcome, v.depth),
        (DaneMatchOutcome::ChainError, 1),
        "{v:?}"
    );
    assert!(v.reason.unwrap().contains("250000"));
}

/// `count` dNSName subtrees `n{i}.invalid`, none of which holds `*.example.net`.
fn unrelated_subtrees(count: usize) -> rcgen::NameConstraints {
    rcgen::NameConstraints {
        permitted_subtrees: (0..count)
            .map(|i| rcgen::GeneralSubtree::DnsName(format!("n{i}.invalid")))
            .collect(),
        excluded_subtrees: vec![],
    }
}

/// Security review, finding 1: a server that sends the matching CA 15 times (the chain limit is
/// 16), or an RRset that repeats the record, gives the verdict and depth of sending it once.
#[test]
fn a_matching_ca_sent_15_times_counts_once() {
    let repeated = |leaf: &CertificateDer<'static>, ca: &CertificateDer<'static>| {
        let mut chain = vec![leaf.clone()];
        chain.extend(std::iter::repeat_n(ca.clone(), 15));
        assert_eq!(chain.len(), 16);
        chain
    };
    let p = current();
    let other = DaneMatcher::smtp(["mx.other.example"]).unwrap();
    let constrained = private_ca(Some(unrelated_subtrees(1000)), |l| cn(l, "*.example.net"));
    let ten: Vec<String> = (0..10).map(|i| format!("h{i}.example.net")).collect();
    let ten = DaneMatcher::smtp(ten.iter().map(String::as_str)).unwrap();
    for (matcher, leaf, ca, expected) in [
        (smtp(), &p.leaf, &p.inter, DaneMatchOutcome::Verified),
        (other, &p.leaf, &p.inter, DaneMatchOutcome::NameMismatch),
        (
            ten,
            &constrained.leaf,
            &constrained.ca,
            DaneMatchOutcome::NameMismatch,
        ),
    ] {
        for r in [
            record(2, 1, 1, ca),
            record(2, 0, 0, ca),
            record(2, 0, 1, ca),
        ] {
            let once = matcher.verify(std::slice::from_ref(&r), &[leaf.clone(), ca.clone()], now());
            assert_eq!((once.outcome, once.depth), (expected, 1), "{r}: {once:?}");
            let many = matcher.verify(std::slice::from_ref(&r), &repeated(leaf, ca), now());
            assert_eq!((many.outcome, many.depth), (expected, 1), "{r}: {many:?}");
            assert_eq!(many.matched, once.matched);
            // the same record 15 times in the RRset: the same again
            let rrset = vec![r.clone(); 15];
            let many = matcher.verify(&rrset, &repeated(leaf, ca), now());
            assert_eq!((many.outcome, many.depth), (expected, 1), "{r}: {many:?}");
        }
    }
}

/// Security review, finding 1: the copies of a CA sent again are not validated again, so they
/// do not spend the CN name-constraint budget of the verification. The CA is sent 15 times
/// under constraints that refuse the leaf's CN; each validation of it costs 10 names × 2 × 1000
/// subtrees. A second certificate of the same CA key and subject, published as `2 0 0` and
/// permitting the name, then verifies; when every copy was validated, the budget was spent
/// (250 000 < 15 × 20 000) and the chain was refused.
#[test]
fn copies_of_a_ca_do_not_spend_the_name_constraint_budget() {
    let ca_key = KeyPair::generate().unwrap();
    let ca = |last: &str| {
        let mut p = ca_params("Private CA");
        let mut constraints = unrelated_subtrees(999);
        let last = rcgen::GeneralSubtree::DnsName(last.into());
        constraints.permitted_subtrees.push(last);
        p.name_constraints = Some(constraints);
        p
    };
    let refusing = ca("refused.invalid").self_signed(&ca_key).unwrap();
    let permitting = ca("example.net").self_signed(&ca_key).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let mut lp = CertificateParams::new(Vec::<String>::new()).unwrap();
    lp.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    cn(&mut lp, "*.example.net");
    let issuer = Issuer::new(ca("refused.invalid"), ca_key);
    let leaf = lp.signed_by(&leaf_key, &issuer).unwrap();
    let records = [
        record(2, 0, 1, refusing.der()),
        record(2, 0, 0, permitting.der()),
    ];
    let names: Vec<String> = (0..10).map(|i| format!("h{i}.example.net")).collect();
    let m = DaneMatcher::smtp(names.iter().map(String::as_str)).unwrap();
    for copies in [1, 15] {
        let mut chain = vec![leaf.der().clone()];
        chain.extend(std::iter::repeat_n(refusing.der().clone(), copies));
        let v = m.verify(&records, &chain, now());
        assert_eq!(
            (v.outcome, v.depth, v.matched.as_ref() == Some(&records[1])),
            (DaneMatchOutcome::Verified, 1, true),
            "{copies} copies: {:?}",
            v.reason
        );
    }
}

/// Security review, finding 1: a CN the leaf repeats (here once more in another case, with a
/// trailing dot) is held to the name constraints once. 100 reference names × 2 × 1000 subtrees
/// fit the budget of 250 000 comparisons once, not twice.
#[test]
fn a_repeated_cn_is_checked_once() {
    let p = private_ca(Some(unrelated_subtrees(1000)), |l| {
        cn(l, "*.example.net");
        // rcgen keeps one value per attribute type: the CN OID (2.5.4.3) once more, by number
        l.distinguished_name
            .push(DnType::CustomDnType(vec![2, 5, 4, 3]), "*.Example.NET.");
    });
    let (_, leaf) = X509Certificate::from_der(p.leaf.as_ref()).unwrap();
    assert_eq!(leaf.subject().iter_common_name().count(), 2);
    let chain = vec![p.leaf.clone(), p.ca.clone()];
    let names: Vec<String> = (0..100).map(|i| format!("h{i}.example.net")).collect();
    let m = DaneMatcher::smtp(names.iter().map(String::as_str)).unwrap();
    let v = m.verify(&[record(2, 1, 1, &p.ca)], &chain, now());
    assert_eq!(
        (v.outcome, v.depth),
        (DaneMatchOutcome::NameMismatch, 1),
        "{v:?}"
    );
}

/// RFC 7672 §3.1.3: SMTP clients use no PKIX-TA(0)/PKIX-EE(1) record, not even a `0 0 0` one
/// as a source of the intermediate the server leaves out (generic mode does, RFC 7671 §5.2).
/// The server sends the leaf and the root, not the intermediate; the RRset is `0 0 0
/// <intermediate>` and `2 1 1 <root SPKI>`.
#[test]
fn smtp_mode_takes_no_intermediate_from_a_pkix_ta_record() {
    let p = current();
    let chain = vec![p.leaf.clone(), p.root.clone()];
    let full_inter: TlsaRecord = format!("0 0 0 {}", hex::encode(&p.inter)).parse().unwrap();
    let root_spki: TlsaRecord = format!("2 1 1 {}", hex::encode(Sha256::digest(spki(&p.root))))
        .parse()
        .unwrap();
    assert_eq!(
        (&full_inter, &root_spki),
        (&record(0, 0, 0, &p.inter), &record(2, 1, 1, &p.root))
    );
    let records = [full_inter, root_spki.clone()];
    let generic = DaneMatcher::generic(["mx.example.net"], vec![], DaneEeNames::Check).unwrap();
    let v = generic.verify(&records, &chain, now());
    assert_eq!(
        (v.outcome, v.depth, v.matched.as_ref()),
        (DaneMatchOutcome::Verified, 2, Some(&root_spki)),
        "{:?}",
        v.reason
    );
    let v = smtp().verify(&records, &chain, now());
    assert_eq!(
        (v.outcome, v.depth, v.matched.as_ref()),
        (DaneMatchOutcome::ChainError, 1, Some(&root_spki)),
        "{:?}",
        v.reason
    );
    assert!(v.reason.unwrap().contains("UnknownIssuer"));
}
