//! Generates the embedded demonstration certificate: `demo/demo-cert.pem` and
//! `demo/demo-key.pem` (ECDSA P-256, CN `demo.smtp-tls-policy.invalid`, SANs `localhost`,
//! `127.0.0.1`, `::1`, valid 2025-01-01 to 2045-01-01).
//!
//! Run from the workspace root: `cargo run -p cert-store --example gen_demo_cert`.
//! The key is deliberately public: the certificate is for testing only.

use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, KeyPair,
    KeyUsagePurpose, date_time_ymd,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let mut params = CertificateParams::new(vec![
        "demo.smtp-tls-policy.invalid".to_string(),
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ])?;
    let mut dn = DistinguishedName::new();
    dn.push(
        DnType::OrganizationName,
        "smtp-tls-policy demonstration (NOT SECURE)",
    );
    dn.push(DnType::CommonName, "demo.smtp-tls-policy.invalid");
    params.distinguished_name = dn;
    params.not_before = date_time_ymd(2025, 1, 1);
    params.not_after = date_time_ymd(2045, 1, 1);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let cert = params.self_signed(&key)?;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("demo");
    std::fs::write(dir.join("demo-cert.pem"), cert.pem().replace("\r\n", "\n"))?;
    std::fs::write(
        dir.join("demo-key.pem"),
        key.serialize_pem().replace("\r\n", "\n"),
    )?;
    println!("wrote {}", dir.display());
    Ok(())
}
