//! RFC 5280 §4.2.1.10 dNSName constraints applied to a subject CN used as a DNS identity
//! (issue 11, finding 1), on the verification path and through the hop plan's verifier.

use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use smtp_tls_policy::chain::{CertPosition, TrustAnchors, Violation};
use smtp_tls_policy::identity::{IdentityAlgorithm, MxSecurity};
use smtp_tls_policy::{Error, VerificationPolicy, verify_server_certificate};

mod pki;
use pki::*;

// --- RFC 5280 §4.2.1.10 dNSName constraints applied to a CN used as a DNS identity (issue 11,
// finding 1). rustls-webpki applies name constraints to SANs only; OpenSSL also applies them to
// the CN ("permitted subtree violation").

/// Where the nameConstraints extension sits.
#[derive(Clone, Copy)]
enum ConstrainedCa {
    /// On the intermediate between the root (anchor) and the leaf.
    Intermediate,
    /// On the root itself (the trust anchor).
    Anchor,
}

/// A root, optionally an intermediate, and a leaf; PEMs kept for the `openssl` comparison.
struct ConstrainedPki {
    root_pem: String,
    intermediate_pem: Option<String>,
    leaf_pem: String,
    leaf_key: PrivateKeyDer<'static>,
    anchors: TrustAnchors,
    chain: Vec<CertificateDer<'static>>,
}

/// A chain whose `on` CA carries dNSName constraints `permitted` / `excluded`, with a leaf of
/// subject CN `cn` and SAN dNSNames `sans`.
fn constrained_pki(
    on: ConstrainedCa,
    permitted: &[&str],
    excluded: &[&str],
    cn: Option<&str>,
    sans: &[&str],
) -> ConstrainedPki {
    let subtrees = |names: &[&str]| {
        names
            .iter()
            .map(|n| rcgen::GeneralSubtree::DnsName((*n).to_owned()))
            .collect()
    };
    let constraints = rcgen::NameConstraints {
        permitted_subtrees: subtrees(permitted),
        excluded_subtrees: subtrees(excluded),
    };
    let (root_nc, intermediate_nc) = match on {
        ConstrainedCa::Anchor => (Some(constraints), None),
        ConstrainedCa::Intermediate => (None, Some(constraints)),
    };
    let root_key = rcgen::KeyPair::generate().unwrap();
    let root_params = ca_params("Test Root", root_nc);
    let root = root_params.self_signed(&root_key).unwrap();
    let root_issuer = rcgen::Issuer::new(root_params, root_key);
    let (issuer, intermediate) = match intermediate_nc {
        Some(nc) => {
            let key = rcgen::KeyPair::generate().unwrap();
            let params = ca_params("Constrained Intermediate", Some(nc));
            let cert = params.signed_by(&key, &root_issuer).unwrap();
            (rcgen::Issuer::new(params, key), Some(cert))
        }
        None => (root_issuer, None),
    };
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let mut params =
        rcgen::CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    if let Some(cn) = cn {
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
    }
    params.use_authority_key_identifier_extension = true;
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let leaf = params.signed_by(&leaf_key, &issuer).unwrap();
    let mut chain = vec![leaf.der().clone()];
    chain.extend(intermediate.iter().map(|c| c.der().clone()));
    ConstrainedPki {
        root_pem: root.pem(),
        intermediate_pem: intermediate.as_ref().map(rcgen::Certificate::pem),
        leaf_pem: leaf.pem(),
        leaf_key: PrivateKeyDer::try_from(leaf_key.serialize_der()).unwrap(),
        anchors: TrustAnchors::from_certificates([root.der().clone()]).unwrap(),
        chain,
    }
}

fn verify_constrained(
    p: &ConstrainedPki,
    algorithm: IdentityAlgorithm,
    domain: &str,
) -> smtp_tls_policy::PkixVerdict {
    let policy = VerificationPolicy::new(algorithm);
    let t = target(domain, &[], MxSecurity::Insecure);
    verify_server_certificate(&policy, &t, &p.chain, &p.anchors, UnixTime::now())
}

/// The verdict refuses the chain because the CN is outside the constraints.
fn assert_cn_constraint_refused(v: &smtp_tls_policy::PkixVerdict) {
    assert!(!v.is_verified(), "{v:?}");
    let error = v.error.as_ref().expect("an error");
    assert!(
        error.to_string().contains("nameConstraints"),
        "{error} ({error:?})"
    );
    assert!(
        matches!(error, Error::CommonNameOutsideNameConstraints { .. }),
        "{error:?}"
    );
    assert_eq!(error.kind(), "chain");
}

#[test]
fn cn_outside_permitted_subtree_is_refused() {
    for on in [ConstrainedCa::Intermediate, ConstrainedCa::Anchor] {
        let p = constrained_pki(
            on,
            &["allowed.example"],
            &[],
            Some("mx.victim.example"),
            &[],
        );
        // Both algorithms that use the CN as a DNS-ID refuse it.
        for algorithm in [IdentityAlgorithm::Verify, IdentityAlgorithm::HostedVerify] {
            assert_cn_constraint_refused(&verify_constrained(&p, algorithm, "mx.victim.example"));
        }
    }
    let p = constrained_pki(
        ConstrainedCa::Intermediate,
        &["allowed.example"],
        &[],
        Some("mx.victim.example"),
        &[],
    );
    let v = verify_constrained(&p, IdentityAlgorithm::Verify, "mx.victim.example");
    assert_eq!(
        v.error.unwrap().to_string(),
        "subject CN \"mx.victim.example\", used as a DNS identity, lies outside the permitted \
         dNSName subtrees [\"allowed.example\"] of the intermediate #1 certificate (RFC 5280 \
         4.2.1.10 nameConstraints)"
    );
    let p = constrained_pki(
        ConstrainedCa::Intermediate,
        &["allowed.example"],
        &[],
        Some("mx.victim.example"),
        &[],
    );
    let v = verify_constrained(&p, IdentityAlgorithm::Verify, "mx.victim.example");
    assert_eq!(
        v.error.unwrap().to_string(),
        "subject CN \"mx.victim.example\", used as a DNS identity, lies outside the permitted \
         dNSName subtrees [\"allowed.example\"] of the intermediate #1 certificate (RFC 5280 \
         4.2.1.10 nameConstraints)"
    );
}

/// The rustls verifier (what the relay uses) refuses the handshake in a Required mode.
#[test]
fn rustls_verifier_refuses_a_cn_outside_the_name_constraints() {
    for (cn, completes) in [("mx.victim.example", false), ("mx.allowed.example", true)] {
        let p = constrained_pki(
            ConstrainedCa::Intermediate,
            &["allowed.example"],
            &[],
            Some(cn),
            &[],
        );
        let verifier = plan_verifier(
            "required-verify",
            cn,
            None,
            MxSecurity::Insecure,
            Arc::new(p.anchors.clone()),
        );
        let done = handshake_with(p.chain.clone(), p.leaf_key.clone_key(), verifier.clone());
        assert_eq!(done, completes, "{cn}");
        let verdict = last_pkix(&verifier);
        assert_eq!(verdict.is_verified(), completes, "{cn}: {verdict:?}");
        if !completes {
            assert_cn_constraint_refused(&verdict);
        }
    }
}

#[test]
fn permitted_san_with_unpermitted_cn_is_refused_where_the_cn_counts() {
    let p = constrained_pki(
        ConstrainedCa::Intermediate,
        &["allowed.example"],
        &[],
        Some("mx.victim.example"),
        &["mx.allowed.example"],
    );
    // Verify uses the CN as a DNS-ID: the mis-issued CN refuses the chain, whatever name is
    // asked for (as OpenSSL refuses it when it considers the CN).
    for domain in ["mx.victim.example", "mx.allowed.example"] {
        assert_cn_constraint_refused(&verify_constrained(&p, IdentityAlgorithm::Verify, domain));
    }
    // Hosted-domain verification ignores the CN when a SAN dNSName exists (RFC 6125 §6.4.4):
    // the permitted SAN verifies, the CN never matches.
    let v = verify_constrained(&p, IdentityAlgorithm::HostedVerify, "mx.allowed.example");
    assert!(v.is_verified(), "{v:?}");
    let v = verify_constrained(&p, IdentityAlgorithm::HostedVerify, "mx.victim.example");
    assert!(matches!(v.error, Some(Error::NameMismatch { .. })), "{v:?}");
}

#[test]
fn cn_inside_permitted_subtree_is_accepted() {
    for on in [ConstrainedCa::Intermediate, ConstrainedCa::Anchor] {
        for cn in [
            "mx.allowed.example",
            "allowed.example",
            "MX.Allowed.Example",
            "*.allowed.example",
        ] {
            let p = constrained_pki(on, &["allowed.example"], &[], Some(cn), &[]);
            let domain = cn.replace('*', "mx").to_ascii_lowercase();
            for algorithm in [IdentityAlgorithm::Verify, IdentityAlgorithm::HostedVerify] {
                let v = verify_constrained(&p, algorithm, &domain);
                assert!(v.is_verified(), "{cn} {algorithm:?}: {v:?}");
            }
        }
    }
    // A CN that is no DNS name at all cannot be a DNS-ID: not constrained, matches nothing.
    let p = constrained_pki(
        ConstrainedCa::Intermediate,
        &["allowed.example"],
        &[],
        Some("Example Mail Server"),
        &["mx.allowed.example"],
    );
    assert!(verify_constrained(&p, IdentityAlgorithm::Verify, "mx.allowed.example").is_verified());
}

#[test]
fn cn_in_excluded_subtree_is_refused() {
    for on in [ConstrainedCa::Intermediate, ConstrainedCa::Anchor] {
        for cn in ["mx.victim.example", "victim.example", "*.victim.example"] {
            let p = constrained_pki(on, &[], &["victim.example"], Some(cn), &[]);
            let domain = cn.replace('*', "mx");
            assert_cn_constraint_refused(&verify_constrained(
                &p,
                IdentityAlgorithm::Verify,
                &domain,
            ));
        }
        // A wildcard one of whose expansions is excluded is refused, whatever name is asked.
        let p = constrained_pki(
            on,
            &[],
            &["mx.victim.example"],
            Some("*.victim.example"),
            &[],
        );
        assert_cn_constraint_refused(&verify_constrained(
            &p,
            IdentityAlgorithm::Verify,
            "www.victim.example",
        ));
        // Outside the excluded subtree: fine.
        let p = constrained_pki(on, &[], &["victim.example"], Some("mx.other.example"), &[]);
        let v = verify_constrained(&p, IdentityAlgorithm::Verify, "mx.other.example");
        assert!(v.is_verified(), "{v:?}");
    }
}

#[test]
fn wildcard_cn_reaching_outside_the_permitted_subtree_is_refused() {
    let p = constrained_pki(
        ConstrainedCa::Intermediate,
        &["mx.allowed.example"],
        &[],
        Some("*.allowed.example"),
        &[],
    );
    assert_cn_constraint_refused(&verify_constrained(
        &p,
        IdentityAlgorithm::Verify,
        "mx.allowed.example",
    ));
}

/// OpenSSL on the same chain: `openssl verify -verify_hostname` refuses a CN-only leaf outside
/// the intermediate's permitted subtree and accepts one inside (skipped when `openssl` is
/// absent).
#[test]
fn openssl_agrees_on_cn_name_constraints() {
    let Ok(version) = std::process::Command::new("openssl")
        .arg("version")
        .output()
    else {
        eprintln!("openssl not installed: comparison skipped");
        return;
    };
    assert!(version.status.success());
    let dir = tempfile::tempdir().unwrap();
    let cases = [("mx.victim.example", false), ("mx.allowed.example", true)];
    for (cn, expected) in cases {
        let p = constrained_pki(
            ConstrainedCa::Intermediate,
            &["allowed.example"],
            &[],
            Some(cn),
            &[],
        );
        let path = |name: &str, pem: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, pem).unwrap();
            path
        };
        let root = path("root.pem", &p.root_pem);
        let intermediate = path("intermediate.pem", p.intermediate_pem.as_deref().unwrap());
        let leaf = path("leaf.pem", &p.leaf_pem);
        let out = std::process::Command::new("openssl")
            .arg("verify")
            .arg("-CAfile")
            .arg(&root)
            .arg("-untrusted")
            .arg(&intermediate)
            .args(["-verify_hostname", cn])
            .arg(&leaf)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.success(), expected, "openssl on CN={cn}: {text}");
        if !expected {
            assert!(text.contains("permitted subtree violation"), "{text}");
        }
        let ours = verify_constrained(&p, IdentityAlgorithm::Verify, cn);
        assert_eq!(ours.is_verified(), expected, "ours on CN={cn}: {ours:?}");
    }
}

/// Issue 11, finding 8: a dNSName constraint written with a leading period (`.allowed.example`)
/// is refused by the RFC 5280 profile (RFC 5280 §4.2.1.10: a host name), and the verdict names
/// that cause — not "non-CA certificate, or no subtrees".
#[test]
fn leading_period_dns_constraint_reports_its_own_cause() {
    for on in [ConstrainedCa::Intermediate, ConstrainedCa::Anchor] {
        let p = constrained_pki(
            on,
            &[".allowed.example"],
            &[],
            Some("mx.allowed.example"),
            &["mx.allowed.example"],
        );
        let v = verify_constrained(&p, IdentityAlgorithm::HostedVerify, "mx.allowed.example");
        assert!(!v.is_verified(), "{v:?}");
        let text = v
            .error
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default();
        assert!(
            text.contains("\".allowed.example\"") && text.contains("leading period"),
            "{text}"
        );
        assert!(!text.contains("non-CA"), "{text}");
        assert!(
            matches!(
                &v.error,
                Some(Error::Structure {
                    violation: Violation::DnsConstraintNotHostName { constraint },
                    ..
                }) if constraint == ".allowed.example"
            ),
            "{v:?}"
        );
    }
}

/// With rustls-webpki alone, a leading-period dNSName constraint means "proper subdomains only"
/// (as in NSS and rustls-webpki); the CN used as a DNS-ID gets the same reading.
#[test]
fn leading_period_dns_constraint_on_the_cn_under_webpki_only() {
    let policy = |algorithm| {
        VerificationPolicy::new(algorithm)
            .with_profile(smtp_tls_policy::chain::ChainProfile::WebpkiOnly)
    };
    for (cn, verified) in [
        ("mx.allowed.example", true),
        ("allowed.example", false),
        ("mx.victim.example", false),
        ("xallowed.example", false),
    ] {
        let p = constrained_pki(
            ConstrainedCa::Intermediate,
            &[".allowed.example"],
            &[],
            Some(cn),
            &[],
        );
        let t = target(cn, &[], MxSecurity::Insecure);
        let v = verify_server_certificate(
            &policy(IdentityAlgorithm::Verify),
            &t,
            &p.chain,
            &p.anchors,
            UnixTime::now(),
        );
        assert_eq!(v.is_verified(), verified, "{cn}: {v:?}");
        if !verified {
            assert_cn_constraint_refused(&v);
        }
    }
}

/// Many CNs against many dNSName constraints: the work is bounded by the budget rustls-webpki
/// gives SAN checks (250 000 comparisons), not quadratic in what the peer sends. The chain is
/// made with `openssl` (rcgen writes one CN at most); skipped when it is not installed.
#[test]
fn cn_name_constraint_work_is_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let run = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(d)
            .output()
            .ok()?;
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Some(())
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    let Some(()) = run(&[
        &["req", "-x509"][..],
        &ec,
        &[
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
        ],
    ]
    .concat()) else {
        eprintln!("openssl not installed: skipped");
        return;
    };
    // 600 permitted subtrees, the only one the CNs are in last; 600 CNs: 360 000 comparisons.
    let mut permitted: Vec<String> = (0..599)
        .map(|i| format!("permitted;DNS:t{i}.test"))
        .collect();
    permitted.push("permitted;DNS:z.test".into());
    std::fs::write(
        d.join("inter.ext"),
        format!(
            "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n\
             subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n\
             nameConstraints=critical,{}\n",
            permitted.join(",")
        ),
    )
    .unwrap();
    run(&[
        &["req"][..],
        &ec,
        &[
            "-keyout",
            "inter.key",
            "-out",
            "inter.csr",
            "-subj",
            "/CN=Inter",
        ],
    ]
    .concat());
    run(&[
        "x509",
        "-req",
        "-in",
        "inter.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "365",
        "-out",
        "inter.pem",
        "-extfile",
        "inter.ext",
    ]);
    std::fs::write(
        d.join("leaf.ext"),
        "basicConstraints=CA:FALSE\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n\
         extendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    let leaf_pem = |cns: usize, name: &str| {
        let subject: String = (0..cns).map(|i| format!("/CN=h{i}.z.test")).collect();
        run(&[
            &["req"][..],
            &ec,
            &["-keyout", "leaf.key", "-out", "leaf.csr", "-subj", &subject],
        ]
        .concat());
        let out = format!("{name}.pem");
        run(&[
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "inter.pem",
            "-CAkey",
            "inter.key",
            "-CAcreateserial",
            "-days",
            "365",
            "-out",
            &out,
            "-extfile",
            "leaf.ext",
        ]);
        out
    };
    use rustls::pki_types::pem::PemObject;
    let ca = CertificateDer::from_pem_file(d.join("ca.pem")).unwrap();
    let inter = CertificateDer::from_pem_file(d.join("inter.pem")).unwrap();
    let anchors = TrustAnchors::from_certificates([ca]).unwrap();
    let policy = VerificationPolicy::new(IdentityAlgorithm::Verify);
    let t = target("h0.z.test", &[], MxSecurity::Insecure);
    // Three CNs in the permitted subtree: verified.
    let few = CertificateDer::from_pem_file(d.join(leaf_pem(3, "few"))).unwrap();
    let v = verify_server_certificate(
        &policy,
        &t,
        &[few, inter.clone()],
        &anchors,
        UnixTime::now(),
    );
    assert!(v.is_verified(), "{v:?}");
    // 600 of them: over budget, refused with rustls-webpki's own error for that limit.
    let many = CertificateDer::from_pem_file(d.join(leaf_pem(600, "many"))).unwrap();
    let started = std::time::Instant::now();
    let v = verify_server_certificate(&policy, &t, &[many, inter], &anchors, UnixTime::now());
    println!("600 CNs x 600 constraints: {:?}", started.elapsed());
    assert_eq!(
        v.error,
        Some(Error::Chain(
            webpki::Error::MaximumNameConstraintComparisonsExceeded
        )),
        "{v:?}"
    );
}

/// A bare trust anchor (no certificate, as `webpki-roots` ships them) whose nameConstraints are
/// exactly those of the one name-constrained root in Mozilla's list (`permitted: .tr`, bytes
/// copied from webpki-roots 1.0): a CN outside `.tr` issued under it is refused, one inside is
/// accepted.
#[test]
fn bare_anchor_name_constraints_apply_to_the_cn() {
    for (cn, verified) in [("mx.victim.example", false), ("mail.example.com.tr", true)] {
        let p = constrained_pki(
            ConstrainedCa::Anchor,
            &["placeholder.example"],
            &[],
            Some(cn),
            &[],
        );
        // The same root key and subject, but the constraints Mozilla's list gives.
        let mut anchor = p.anchors.anchors()[0].clone();
        anchor.name_constraints = Some(rustls::pki_types::Der::from_slice(
            b"\xa0\x070\x05\x82\x03.tr",
        ));
        let mut anchors = TrustAnchors::empty();
        anchors.add_anchors([anchor]);
        let policy = VerificationPolicy::new(IdentityAlgorithm::Verify);
        let t = target(cn, &[], MxSecurity::Insecure);
        let v = verify_server_certificate(&policy, &t, &p.chain, &anchors, UnixTime::now());
        assert_eq!(v.is_verified(), verified, "{cn}: {v:?}");
        if !verified {
            assert_cn_constraint_refused(&v);
            assert!(
                matches!(
                    &v.error,
                    Some(Error::CommonNameOutsideNameConstraints {
                        constrained_by: CertPosition::Anchor,
                        ..
                    })
                ),
                "{v:?}"
            );
        }
    }
}
