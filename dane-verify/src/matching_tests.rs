//! What [`DaneMatcher::verify`] does, counted: path validations per verification.

use std::cell::Cell;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls_pki_types::{CertificateDer, UnixTime};

use super::DaneMatcher;
use crate::{DaneMatchOutcome, TlsaRecord, server_tlsa_records};

thread_local! {
    /// Path validations made on this thread ([`super::validate_path`] counts them).
    pub(super) static PATH_VALIDATIONS: Cell<usize> = const { Cell::new(0) };
}

/// A CA and a leaf for `mx.example.net` it signs, as DER.
fn ca_and_leaf() -> (CertificateDer<'static>, CertificateDer<'static>) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "Test CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["mx.example.net".to_string()])
        .unwrap()
        .signed_by(&leaf_key, &issuer)
        .unwrap();
    (ca.der().clone(), leaf.der().clone())
}

/// The verdict and the number of path validations it took.
fn counted(
    matcher: &DaneMatcher,
    records: &[TlsaRecord],
    chain: &[CertificateDer<'_>],
) -> ((DaneMatchOutcome, i32), usize) {
    PATH_VALIDATIONS.with(|n| n.set(0));
    let v = matcher.verify(records, chain, UnixTime::now());
    ((v.outcome, v.depth), PATH_VALIDATIONS.with(Cell::get))
}

/// Security review, finding 1: the matching CA sent 15 times, or a TLSA record repeated, is
/// validated once, also when the path does not verify (here: the name does not match), which
/// used to try every copy.
#[test]
fn a_repeated_ca_or_record_is_validated_once() {
    let (ca, leaf) = ca_and_leaf();
    let ta = server_tlsa_records(&leaf, Some(&ca)).unwrap()[1].clone();
    let once = [leaf.clone(), ca.clone()];
    let mut repeated = vec![leaf];
    repeated.extend(std::iter::repeat_n(ca, 15));
    let wrong_name = DaneMatcher::smtp(["mx.other.example"]).unwrap();
    let right_name = DaneMatcher::smtp(["mx.example.net"]).unwrap();
    for (matcher, outcome) in [
        (&wrong_name, DaneMatchOutcome::NameMismatch),
        (&right_name, DaneMatchOutcome::Verified),
    ] {
        let records = std::slice::from_ref(&ta);
        assert_eq!(counted(matcher, records, &once), ((outcome, 1), 1));
        assert_eq!(counted(matcher, records, &repeated), ((outcome, 1), 1));
        let rrset = vec![ta.clone(); 15];
        assert_eq!(counted(matcher, &rrset, &repeated), ((outcome, 1), 1));
    }
}
