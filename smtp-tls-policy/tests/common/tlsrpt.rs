//! Shared setup of the `tlsrpt_send_*.rs` tests (the sending side of TLS-RPT, RFC 8460): TLSA and
//! MTA-STS policy texts, a failed session. Included as `mod common { pub mod tlsrpt; }`, apart from
//! `common/mod.rs` (the PKI and Postfix fixtures).
#![allow(dead_code, unreachable_pub)]

use smtp_tls_policy::tlsrpt::{Endpoints, ResultType, SessionResult, TlsOutcome};

pub const USABLE: &str = "3 1 1 0000000000000000000000000000000000000000000000000000000000000000";
pub const STS_ENFORCE: &[u8] =
    b"version: STSv1\r\nmode: enforce\r\nmx: *.example.net\r\nmax_age: 86400\r\n";

/// A failed session of result type `rt` (STARTTLS not supported, else an expired certificate)
/// with MX `mx`, fixed IPs and HELO, and `info` as its additional information.
pub fn failure(rt: ResultType, mx: &str, info: Option<&str>) -> SessionResult {
    let endpoints = Endpoints::new(
        Some("192.0.2.1".parse().unwrap()),
        Some("2001:db8::25".parse().unwrap()),
        Some(mx),
    )
    .with_helo("Helo-1.Example.NET.");
    let outcome = match rt {
        ResultType::StarttlsNotSupported => TlsOutcome::StarttlsNotSupported,
        _ => TlsOutcome::CertificateExpired,
    };
    let r = SessionResult::new(outcome, endpoints);
    match info {
        Some(i) => r.with_additional_information(i),
        None => r,
    }
}
