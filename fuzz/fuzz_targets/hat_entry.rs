//! Fuzz the sender entry parser: any text gives an entry or a typed error, never a panic; a
//! parsed entry re-parses from its own spelling to the same meaning, and matching it is safe.
#![no_main]

use hat_match::{Facts, SenderEntry, reference};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(entry) = SenderEntry::parse(text) {
        let again = SenderEntry::parse(entry.as_str()).expect("an entry's spelling re-parses");
        assert_eq!(again.kind(), entry.kind());
        for ip in ["10.1.1.1", "2001:db8::1", "255.255.255.255"] {
            let facts = Facts::new(ip.parse().unwrap());
            let _ = reference::entry_matches(&entry, &facts);
        }
    }
});
