//! Destination-control TOML: any text yields a table or a located, typed error — never a panic —
//! and every lookup on a parsed table terminates with a resolved policy.
#![no_main]

use smtp_tls_policy::Error;
use smtp_tls_policy::destination::DestinationControls;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match DestinationControls::from_toml("fuzz.toml", text) {
        Ok(table) => {
            for domain in ["example.com", "a.b.example.com", "", ".", "xn--bcher-kva.example"] {
                let _ = table.lookup(domain);
            }
            for line in text.lines().take(8) {
                let _ = table.lookup(line);
            }
        }
        Err(Error::DestinationConfig { line, column, .. }) => {
            assert!(line >= 1 && column >= 1);
        }
        Err(other) => panic!("unexpected error kind: {other:?}"),
    }
});
