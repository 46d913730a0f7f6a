//! TLS-RPT helpers of the relay tests: the report messages a scripted peer received, and a
//! wait for the start of a reporting period.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use smtp_tls_policy::tlsrpt::{Report, read_report};

use super::peer::Conn;

/// The text a connection carried (inside TLS when TLS came up).
pub fn conn_text(c: &Conn) -> String {
    if c.tls_up {
        c.tls_text()
    } else {
        c.plain_text()
    }
}

/// The report messages `conns` carried (a message with `TLS-Report-Domain`): the message text
/// (after `DATA` up to the final dot) and the report read back with smtp-tls-policy's
/// `read_report`.
pub fn reports(conns: &[Conn]) -> Vec<(String, Report)> {
    conns
        .iter()
        .filter_map(|c| {
            let text = conn_text(c);
            if !text.contains("TLS-Report-Domain:") {
                return None;
            }
            let (_, data) = text.split_once("DATA\r\n")?;
            let data = data.split("\r\n.\r\n").next().unwrap_or(data);
            Some((data.to_owned(), read_report(data.as_bytes()).ok()?))
        })
        .collect()
}

/// Waits (at most one period) until a fresh period of `interval` seconds has just begun, so
/// the deliveries that follow fall into one period.
pub fn at_period_start(interval: u64) {
    let deadline = Instant::now() + Duration::from_secs(interval + 5);
    loop {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        if now % interval < 2 {
            return;
        }
        assert!(Instant::now() < deadline, "clock did not advance");
        std::thread::sleep(Duration::from_millis(200));
    }
}
