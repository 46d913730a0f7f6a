//! MTA-STS TXT record selection and parsing (`mta_sts::select_txt_record`): never panics; an
//! accepted id is 1–32 letters and digits and reads back from a record written with it.
//! Input: records separated by `\n`, each record's character-strings by `\0`.
#![no_main]

use smtp_tls_policy::mta_sts::{TxtOutcome, parse_txt_record, select_txt_record};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let records: Vec<Vec<&[u8]>> = data
        .split(|b| *b == b'\n')
        .map(|r| r.split(|b| *b == 0).collect())
        .collect();
    if let TxtOutcome::Record(record) = select_txt_record(&records) {
        let id = record.id.as_str();
        assert!((1..=32).contains(&id.len()));
        assert!(id.bytes().all(|b| b.is_ascii_alphanumeric()));
        let again = parse_txt_record(&format!("v=STSv1; id={id};")).expect("written record");
        assert_eq!(again, record);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = parse_txt_record(text);
    }
});
