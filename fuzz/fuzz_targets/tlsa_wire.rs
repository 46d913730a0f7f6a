//! TLSA wire RDATA parser (via hickory-proto): never panics; round-trips what it accepts.
//! The first two bytes are the RDLENGTH from the RR header, the rest the buffer.
#![no_main]

use dane_verify::TlsaRecord;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(record) = TlsaRecord::from_wire(data) {
        assert_eq!(record.to_wire(), data);
        assert_eq!(
            record.to_string().parse::<TlsaRecord>().as_ref(),
            Ok(&record)
        );
    }
    if data.len() >= 2 {
        let rdlength = u16::from_be_bytes([data[0], data[1]]);
        let _ = TlsaRecord::from_wire_with_len(&data[2..], rdlength);
    }
});
