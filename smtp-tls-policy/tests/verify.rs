//! Whole verification (chain + identity) and the rustls delivery verifier (the hop plan's
//! `PlanVerifier`), over a CA and leaves made by rcgen in the test, with in-memory TLS
//! handshakes.

use std::sync::Arc;

use rustls::pki_types::{CertificateDer, UnixTime};
use smtp_tls_policy::chain::{CertPosition, TrustAnchors};
use smtp_tls_policy::identity::{IdentityAlgorithm, MxSecurity};
use smtp_tls_policy::{Error, VerificationPolicy, verify_server_certificate};

mod pki;
use pki::*;

#[test]
fn verify_and_hosted_verify_over_a_real_chain() {
    let p = pki(Some("mx1.example.net"), &["mx1.example.net"]);
    let t = target("example.com", &["mx1.example.net"], MxSecurity::Insecure);
    let now = UnixTime::now();
    let chain = [p.leaf.clone()];
    let v = verify_server_certificate(
        &VerificationPolicy::new(IdentityAlgorithm::Verify),
        &t,
        &chain,
        &anchors(&p),
        now,
    );
    assert!(v.is_verified(), "{v:?}");
    let m = v.matched.unwrap();
    assert_eq!(m.reference.to_string(), "mx1.example.net");
    // Verify lists the CN before the SAN entries.
    assert_eq!(m.presented.to_string(), "CN:mx1.example.net");
    assert_eq!(v.reference_ids.len(), 2);

    // Hosted-domain verification does not trust the unsigned MX answer...
    let hosted = VerificationPolicy::new(IdentityAlgorithm::HostedVerify);
    let v = verify_server_certificate(&hosted, &t, &chain, &anchors(&p), now);
    assert!(matches!(v.error, Some(Error::NameMismatch { .. })), "{v:?}");
    // ...but does a DNSSEC-secure one.
    let secure = target("example.com", &["mx1.example.net"], MxSecurity::Secure);
    assert!(verify_server_certificate(&hosted, &secure, &chain, &anchors(&p), now).is_verified());
}

#[test]
fn untrusted_or_expired_chains_fail_with_typed_errors() {
    let p = pki(None, &["mx.example.com"]);
    let t = target("mx.example.com", &[], MxSecurity::Insecure);
    let policy = VerificationPolicy::new(IdentityAlgorithm::Verify);
    let chain = [p.leaf.clone()];
    let v = verify_server_certificate(&policy, &t, &chain, &TrustAnchors::empty(), UnixTime::now());
    assert_eq!(v.error, Some(Error::NoTrustAnchors));
    assert!(
        v.matched.is_some(),
        "the identity is reported even when the chain fails"
    );
    let other = pki(None, &["mx.example.com"]);
    let v = verify_server_certificate(&policy, &t, &chain, &anchors(&other), UnixTime::now());
    // Same issuer name, different key: the signature does not verify.
    assert!(matches!(
        v.error,
        Some(Error::Chain(
            webpki::Error::UnknownIssuer | webpki::Error::InvalidSignatureForPublicKey
        ))
    ));
    // rcgen certificates are valid from 1975 to 4096: 1970 is before notBefore.
    let v = verify_server_certificate(
        &policy,
        &t,
        &chain,
        &anchors(&p),
        UnixTime::since_unix_epoch(std::time::Duration::ZERO),
    );
    assert!(
        matches!(
            v.error,
            Some(Error::Chain(webpki::Error::CertNotValidYet { .. }))
        ),
        "{v:?}"
    );
    let v = verify_server_certificate(&policy, &t, &[], &anchors(&p), UnixTime::now());
    assert_eq!(v.error, Some(Error::EmptyChain));
    let v = verify_server_certificate(
        &policy,
        &t,
        &[CertificateDer::from(vec![0x30, 0x03, 1, 2, 3])],
        &anchors(&p),
        UnixTime::now(),
    );
    assert!(
        matches!(v.error, Some(Error::MalformedCertificate { .. })),
        "{v:?}"
    );
}

#[test]
fn rustls_verifiers_reject_or_record() {
    let p = pki(None, &["mx.other.example"]);
    let anchors = Arc::new(anchors(&p));
    let mx = Some("mx.example.com");
    // Required (Verify): the name does not match, the handshake is aborted.
    let required = plan_verifier(
        "required-verify",
        "example.com",
        mx,
        MxSecurity::Insecure,
        anchors.clone(),
    );
    assert!(!handshake(&p, required.clone()));
    let verdict = last_pkix(&required);
    assert!(matches!(verdict.error, Some(Error::NameMismatch { .. })));
    // Preferred (Verify): the same failure is recorded and TLS goes on.
    let preferred = plan_verifier(
        "preferred-verify",
        "example.com",
        mx,
        MxSecurity::Insecure,
        anchors.clone(),
    );
    assert!(handshake(&p, preferred.clone()));
    assert!(!last_pkix(&preferred).is_verified());
    // A matching target verifies in the rejecting mode too.
    let hosted = plan_verifier(
        "required-verify-hosted-domains",
        "other.example",
        Some("mx.other.example"),
        MxSecurity::Secure,
        anchors,
    );
    assert!(handshake(&p, hosted.clone()));
    assert!(last_pkix(&hosted).is_verified());
}

/// A CA and one leaf made by the `openssl` tool (`None` when it is not installed): `extra` are
/// `openssl x509 -req` options (e.g. `-sha1`), `v3` whether the leaf gets extensions (without
/// them `openssl x509 -req` writes an X.509 version 1 certificate).
fn openssl_leaf(
    dir: &std::path::Path,
    extra: &[&str],
    v3: bool,
) -> Option<Vec<CertificateDer<'static>>> {
    use rustls::pki_types::pem::PemObject;
    let run = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .ok()?;
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Some(())
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "3650",
        "-subj",
        "/CN=Test CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
        "-addext",
        "subjectKeyIdentifier=hash",
    ])?;
    run(&[
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "leaf.key",
        "-out",
        "leaf.csr",
        "-subj",
        "/CN=mx.example.com",
    ])?;
    std::fs::write(
        dir.join("leaf.ext"),
        "basicConstraints=CA:FALSE\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n\
         extendedKeyUsage=serverAuth\nsubjectAltName=DNS:mx.example.com\n",
    )
    .unwrap();
    let mut args = vec![
        "x509",
        "-req",
        "-in",
        "leaf.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "365",
        "-out",
        "leaf.pem",
    ];
    if v3 {
        args.extend(["-extfile", "leaf.ext"]);
    }
    args.extend(extra);
    run(&args)?;
    let ca = CertificateDer::from_pem_file(dir.join("ca.pem")).unwrap();
    let leaf = CertificateDer::from_pem_file(dir.join("leaf.pem")).unwrap();
    Some(vec![leaf, ca])
}

/// Issue 11, finding 8: X.509 v1 and SHA-1 signed chains are always refused (rustls-webpki),
/// whatever the seed's optional X.509 validation switch says; the verdict says so.
#[test]
fn v1_and_sha1_chains_are_always_refused_and_say_why() {
    use smtp_tls_policy::identity::X509Validation;
    for (extra, v3, expected) in [
        (&[][..], false, "X.509 version 1"),
        (&["-sha1"][..], true, "SHA-1"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let Some(certs) = openssl_leaf(dir.path(), extra, v3) else {
            eprintln!("openssl not installed: skipped");
            return;
        };
        let anchors = TrustAnchors::from_certificates([certs[1].clone()]).unwrap();
        let chain = [certs[0].clone()];
        let t = target("mx.example.com", &[], MxSecurity::Insecure);
        for x509 in [X509Validation::Disabled, X509Validation::Enabled] {
            let policy =
                VerificationPolicy::new(IdentityAlgorithm::Verify).with_x509_validation(x509);
            let v = verify_server_certificate(&policy, &t, &chain, &anchors, UnixTime::now());
            assert!(!v.is_verified());
            let error = v.error.expect("an error");
            let text = error.to_string();
            assert!(
                text.contains(expected) && text.contains("always refused"),
                "{x509:?}: {text} ({error:?})"
            );
            assert!(
                matches!(
                    &error,
                    Error::NotVersion3 {
                        position: CertPosition::Leaf,
                        version: 1
                    }
                ) || matches!(
                    &error,
                    Error::LegacySignature { position: CertPosition::Leaf, algorithm }
                        if algorithm.starts_with("SHA-1")
                ),
                "{error:?}"
            );
            assert_eq!(error.kind(), "chain");
        }
    }
}

/// One leaf key-usage rule for PKIX and DANE (issue 11, finding 8; `dane_verify::
/// check_server_key_usage`): a leaf whose keyUsage is nonRepudiation only allows no TLS server
/// use and is refused under every profile, as `openssl verify -purpose sslserver` refuses it
/// (the OpenSSL comparison is skipped when `openssl` is absent).
#[test]
fn leaf_key_usage_non_repudiation_only_is_refused() {
    use smtp_tls_policy::chain::ChainProfile;
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let ca_params = ca_params("Test Root", None);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["mx.example.com".to_owned()]).unwrap();
    params.use_authority_key_identifier_extension = true;
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    params.key_usages = vec![rcgen::KeyUsagePurpose::ContentCommitment];
    let leaf = params.signed_by(&leaf_key, &issuer).unwrap();
    let anchors = TrustAnchors::from_certificates([ca.der().clone()]).unwrap();
    let chain = [leaf.der().clone()];
    let t = target("mx.example.com", &[], MxSecurity::Insecure);
    for profile in [
        ChainProfile::WebpkiOnly,
        ChainProfile::Rfc5280,
        ChainProfile::CabForum,
    ] {
        let policy = VerificationPolicy::new(IdentityAlgorithm::Verify).with_profile(profile);
        let v = verify_server_certificate(&policy, &t, &chain, &anchors, UnixTime::now());
        assert!(!v.is_verified(), "{profile:?}: {v:?}");
        let error = v.error.expect("an error");
        assert_eq!(
            error,
            Error::LeafKeyUsageNotForServer {
                found: "nonRepudiation".into()
            },
            "{profile:?}"
        );
        assert_eq!(error.kind(), "chain");
        assert!(error.to_string().contains("leaf"), "{error}");
    }
    // A usage TLS servers need is enough, as OpenSSL's purpose check allows.
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::ContentCommitment,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    let usable = params.signed_by(&leaf_key, &issuer).unwrap();
    let policy = VerificationPolicy::new(IdentityAlgorithm::Verify);
    let v = verify_server_certificate(
        &policy,
        &t,
        &[usable.der().clone()],
        &anchors,
        UnixTime::now(),
    );
    assert!(v.is_verified(), "{v:?}");
    // OpenSSL's ssl_server purpose refuses the same leaf.
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root.pem");
    let leaf_pem = dir.path().join("leaf.pem");
    std::fs::write(&root, ca.pem()).unwrap();
    std::fs::write(&leaf_pem, leaf.pem()).unwrap();
    let Ok(out) = std::process::Command::new("openssl")
        .arg("verify")
        .arg("-CAfile")
        .arg(&root)
        .args(["-purpose", "sslserver"])
        .arg(&leaf_pem)
        .output()
    else {
        eprintln!("openssl not installed: comparison skipped");
        return;
    };
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "openssl accepted it: {text}");
    assert!(text.contains("certificate purpose"), "{text}");
}
