//! TLS-RPT tolerant report reader (JSON, gzip, report message) with a small size bound: never
//! panics; what reads writes RFC 8460 JSON that reads back to itself, and summarises.
#![no_main]

use smtp_tls_policy::tlsrpt::{ReportReader, Summary, read_report};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    // A 1 MiB bound keeps gzip inputs from inflating past the fuzzer's memory limit.
    let Ok(report) = ReportReader::new().with_size_limit(1 << 20).read(data) else {
        return;
    };
    let json = report.to_json().expect("a read report serialises");
    assert_eq!(read_report(json.as_bytes()).as_ref(), Ok(&report));
    let summary = Summary::of([&report]);
    assert_eq!(summary.reports(), 1);
});
