//! PEM/DER certificate-bundle import (`cert_store::parse_bundle`): never panics, and whatever
//! it accepts re-encodes to PEM that parses back to the same certificates.
#![no_main]

use cert_store::{BadEntryPolicy, certs_to_pem, parse_bundle};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = parse_bundle(data, BadEntryPolicy::Reject);
    if let Ok(bundle) = parse_bundle(data, BadEntryPolicy::SkipBad) {
        let pem = certs_to_pem(&bundle.certs);
        let again =
            parse_bundle(pem.as_bytes(), BadEntryPolicy::Reject).expect("re-encoded PEM parses");
        assert_eq!(again.certs, bundle.certs);
    }
    let _ = cert_store::PrivateKey::from_pem_or_der(data);
});
