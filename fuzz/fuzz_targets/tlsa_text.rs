//! TLSA presentation-text parser: never panics; what parses prints and re-parses to itself.
#![no_main]

use dane_verify::TlsaRecord;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(record) = text.parse::<TlsaRecord>() {
        let printed = record.to_string();
        assert_eq!(printed.parse::<TlsaRecord>().as_ref(), Ok(&record));
        assert_eq!(
            TlsaRecord::from_wire(&record.to_wire()).as_ref(),
            Ok(&record)
        );
    }
});
