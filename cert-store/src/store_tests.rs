use std::fs;
use std::os::unix::fs::PermissionsExt;

use super::*;
use crate::{BadEntryPolicy, CaList, FqdnCheck, KeySpec, SelfSignedRequest, Subject, parse_bundle};

fn store() -> (tempfile::TempDir, CertStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = CertStore::open(dir.path().join("s")).unwrap();
    (dir, store)
}

fn req(cn: &str) -> SelfSignedRequest {
    SelfSignedRequest::new(Subject::new(cn))
}

#[test]
fn create_persists_with_layout_and_key_mode() {
    let (_d, mut s) = store();
    s.create_self_signed("mx", &req("mx.example.com")).unwrap();
    let entry = s.dir().join("certs/mx");
    for f in ["cert.pem", "chain.pem", "key.pem", "csr.pem", "meta.toml"] {
        assert!(entry.join(f).is_file(), "{f}");
    }
    let mode = fs::metadata(entry.join("key.pem"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let again = CertStore::open(s.dir()).unwrap();
    assert_eq!(again.get("mx").unwrap().chain, s.get("mx").unwrap().chain);
    assert_eq!(again.names(), vec!["demo".to_string(), "mx".to_string()]);
    assert!(again.csr_pem("mx").unwrap().contains("CERTIFICATE REQUEST"));
}

#[test]
fn names_are_validated_and_unique() {
    let (_d, mut s) = store();
    for bad in ["", "../x", ".hidden", "a/b", "demo"] {
        assert!(
            s.create_self_signed(bad, &req("a.example.com")).is_err(),
            "{bad}"
        );
    }
    s.create_self_signed("a", &req("a.example.com")).unwrap();
    assert_eq!(
        s.create_self_signed("a", &req("a.example.com"))
            .unwrap_err(),
        Error::NameExists { name: "a".into() }
    );
}

#[test]
fn truncated_files_are_reported_by_name() {
    let (_d, mut s) = store();
    s.create_self_signed("mx", &req("mx.example.com")).unwrap();
    s.create_self_signed("other", &req("o.example.com"))
        .unwrap();
    for file in ["cert.pem", "key.pem", "meta.toml"] {
        let path = s.dir().join("certs/mx").join(file);
        let original = fs::read(&path).unwrap();
        fs::write(&path, &original[..original.len() / 2]).unwrap();
        let Err(Error::StoreCorrupt { problems }) = CertStore::open(s.dir()) else {
            panic!("truncated {file} not detected")
        };
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].path, path, "{problems:?}");
        let msg = Error::StoreCorrupt { problems }.to_string();
        assert!(msg.contains(file), "{msg}");
        fs::write(&path, &original).unwrap();
    }
    assert!(CertStore::open(s.dir()).is_ok());
}

#[test]
fn missing_meta_and_truncated_settings_are_reported() {
    let (_d, mut s) = store();
    s.create_self_signed("mx", &req("mx.example.com")).unwrap();
    fs::remove_file(s.dir().join("certs/mx/meta.toml")).unwrap();
    fs::write(s.dir().join("store.toml"), b"format = 1\nsystem_ca").unwrap();
    let Err(Error::StoreCorrupt { problems }) = CertStore::open(s.dir()) else {
        panic!("damage not detected")
    };
    let paths: Vec<_> = problems.iter().map(|p| p.path.clone()).collect();
    assert!(paths.contains(&s.dir().join("store.toml")), "{problems:?}");
    assert!(
        paths.contains(&s.dir().join("certs/mx/meta.toml")),
        "{problems:?}"
    );
}

#[test]
fn leftover_temp_files_are_ignored() {
    let (_d, mut s) = store();
    s.create_self_signed("mx", &req("mx.example.com")).unwrap();
    fs::write(s.dir().join("certs/mx/.cert.pem.tmp123"), b"half").unwrap();
    assert!(CertStore::open(s.dir()).is_ok());
}

#[test]
fn upload_of_foreign_cert_keeps_the_old_one() {
    let (_d, mut s) = store();
    s.create_self_signed("mx", &req("mx.example.com")).unwrap();
    s.create_self_signed("other", &req("o.example.com"))
        .unwrap();
    let before = s.get("mx").unwrap().chain;
    let foreign = crate::certs_to_pem(&s.get("other").unwrap().chain);
    assert_eq!(
        s.upload_signed("mx", foreign.as_bytes(), &[]).unwrap_err(),
        Error::KeyMismatch { name: "mx".into() }
    );
    assert_eq!(s.get("mx").unwrap().chain, before);
    assert_eq!(
        CertStore::open(s.dir()).unwrap().get("mx").unwrap().chain,
        before
    );
}

#[test]
fn pem_import_of_sec1_and_pkcs8_keys() {
    let (_d, mut s) = store();
    let made = crate::create_self_signed(&req("mail.example.com"), time::OffsetDateTime::now_utc())
        .unwrap();
    let cert_pem = crate::import::pem_encode("CERTIFICATE", &made.cert_der);
    s.import_pem(
        "pk8",
        cert_pem.as_bytes(),
        made.key.to_pem().as_bytes(),
        FqdnCheck::Required,
    )
    .unwrap();
    // DER certificate and DER PKCS#8 key.
    s.import_pem("der", &made.cert_der, made.key.pkcs8_der(), FqdnCheck::Off)
        .unwrap();
    let wrong = KeySpec::EcP256.generate().unwrap();
    assert!(matches!(
        s.import_pem(
            "bad",
            &made.cert_der,
            wrong.to_pem().as_bytes(),
            FqdnCheck::Off
        ),
        Err(Error::KeyMismatch { .. })
    ));
}

#[test]
fn ca_lists_enable_disable_and_at_least_one() {
    let (_d, mut s) = store();
    assert!(s.root_store().unwrap().len() > 100);
    assert_eq!(
        s.set_ca_enabled(CaList::System, false).unwrap_err(),
        Error::NoCaListEnabled
    );
    s.set_ca_enabled(CaList::Custom, true).unwrap();
    s.set_ca_enabled(CaList::System, false).unwrap();
    assert_eq!(s.root_store().unwrap_err(), Error::CustomCaListEmpty);
    s.create_self_signed("ca", &req("ca.example.com")).unwrap();
    let pem = crate::certs_to_pem(&s.get("ca").unwrap().chain);
    let skipped = s
        .import_custom_ca(pem.as_bytes(), BadEntryPolicy::Reject)
        .unwrap();
    assert!(skipped.is_empty());
    assert_eq!(s.root_store().unwrap().len(), 1);
    assert_eq!(s.export_ca(CaList::Custom), pem);
    let reopened = CertStore::open(s.dir()).unwrap();
    assert_eq!(reopened.custom_ca_certs(), s.custom_ca_certs());
    assert!(!reopened.ca_status().system_enabled);
    // A bad custom list is refused whole and the old one stays.
    let bad = format!("{pem}-----BEGIN CERTIFICATE-----\nAAAA\n");
    assert!(matches!(
        s.import_custom_ca(bad.as_bytes(), BadEntryPolicy::Reject),
        Err(Error::BadBundle { .. })
    ));
    assert_eq!(s.custom_ca_certs().len(), 1);
}

#[test]
fn system_export_matches_the_trust_anchors() {
    let (_d, s) = store();
    let pem = s.export_ca(CaList::System);
    let certs = parse_bundle(pem.as_bytes(), BadEntryPolicy::Reject)
        .unwrap()
        .certs;
    let anchors: Vec<_> = certs
        .iter()
        .map(|c| webpki::anchor_from_trusted_cert(c).unwrap().to_owned())
        .collect();
    let mut missing = 0;
    for a in webpki_roots::TLS_SERVER_ROOTS {
        if !anchors
            .iter()
            .any(|b| b.subject_public_key_info == a.subject_public_key_info)
        {
            missing += 1;
        }
    }
    println!(
        "system list: {} anchors, {} exported, {missing} missing",
        webpki_roots::TLS_SERVER_ROOTS.len(),
        certs.len()
    );
    assert_eq!(missing, 0);
}

#[test]
fn assignments_and_demo_certificate() {
    let (_d, mut s) = store();
    s.create_self_signed("mx", &req("mx.example.com")).unwrap();
    s.assign_listener("IncomingMail", "mx").unwrap();
    s.assign_listener("Test", "demo").unwrap();
    s.assign_outgoing(Some("mx")).unwrap();
    assert!(s.assign_listener("x", "nope").is_err());
    let s = CertStore::open(s.dir()).unwrap();
    assert_eq!(s.listener_certificate("IncomingMail"), Some("mx"));
    assert_eq!(s.outgoing_certificate(), Some("mx"));
    assert!(s.listener_server_config("IncomingMail").is_ok());
    assert!(s.listener_server_config("Test").is_ok());
    assert_eq!(
        s.listener_server_config("nope").unwrap_err(),
        Error::Unassigned {
            listener: "nope".into()
        }
    );
    assert!(s.client_config().is_ok());
    let list = s.list(time::OffsetDateTime::now_utc()).unwrap();
    assert_eq!(list[0].origin, Origin::Demo);
    assert!(list[1].outgoing && list[1].listeners == vec!["IncomingMail".to_string()]);
    let soon = s
        .expiring_within(400, time::OffsetDateTime::now_utc())
        .unwrap();
    assert_eq!(
        soon.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
        vec!["mx"]
    );
}

#[test]
fn https_listener_assignments_are_their_own_namespace() {
    let (_d, mut s) = store();
    s.create_self_signed("mx", &req("mx.example.com")).unwrap();
    s.create_self_signed("sts", &req("mta-sts.example.com"))
        .unwrap();
    s.assign_listener("public", "mx").unwrap();
    s.assign_https_listener("public", "sts").unwrap();
    assert_eq!(
        s.assign_https_listener("x", "nope").unwrap_err(),
        Error::UnknownCertificate {
            name: "nope".into()
        }
    );
    let mut s = CertStore::open(s.dir()).unwrap();
    assert_eq!(s.listener_certificate("public"), Some("mx"));
    assert_eq!(s.https_listener_certificate("public"), Some("sts"));
    let list = s.list(time::OffsetDateTime::now_utc()).unwrap();
    let sts = list.iter().find(|c| c.name == "sts").unwrap();
    assert_eq!(sts.https_listeners, vec!["public".to_string()]);
    assert!(sts.listeners.is_empty());
    s.remove("sts").unwrap();
    assert_eq!(s.https_listener_certificate("public"), None);
}
