//! The `Received:` trace header the relay prepends to every accepted message
//! (RFC 5321 §4.4, RFC 5322 §3.6.7), with the TLS protocol and cipher when used
//! (RFC 3848 `ESMTPS`).

use std::net::IpAddr;
use std::time::SystemTime;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc2822;

/// Longest client-supplied name copied into the header.
const MAX_NAME: usize = 255;

/// What the trace header records about the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceInfo<'a> {
    /// The client's EHLO/HELO argument.
    pub helo: Option<&'a str>,
    /// Whether the client greeted with EHLO (ESMTP) rather than HELO.
    pub esmtp: bool,
    /// The client's forward-confirmed reverse (PTR) name, when it was looked up.
    pub ptr: Option<&'a str>,
    /// The client address.
    pub ip: IpAddr,
    /// Our host name.
    pub by: &'a str,
    /// The spool id.
    pub id: &'a str,
    /// TLS protocol version and cipher suite, when the session is encrypted.
    pub tls: Option<(&'a str, &'a str)>,
    /// The single recipient, when there is exactly one (RFC 5321 §4.4 "for" clause).
    pub for_recipient: Option<&'a str>,
    /// When the message was received.
    pub when: SystemTime,
}

/// Builds the header, folded, ending in CRLF: `Received: from NAME (PTR [IP])` (RFC 5321 §4.4
/// `From-domain` and `TCP-info`: the EHLO/HELO name, `unknown` without one; the PTR name only
/// when known). Client-supplied text is reduced to printable ASCII without spaces or
/// parentheses (no header injection, no comment breaking).
///
/// ```
/// use relay::inbound::{TraceInfo, received_header};
/// let h = received_header(&TraceInfo {
///     helo: Some("client.example\r\nX-Evil: 1"), esmtp: true, ptr: Some("host.example"),
///     ip: "127.0.0.1".parse()?,
///     by: "relay.example", id: "abc", tls: Some(("TLSv1_3", "TLS13_AES_256_GCM_SHA384")),
///     for_recipient: Some("user@example.org"), when: std::time::UNIX_EPOCH,
/// });
/// assert!(h.starts_with("Received: from client.exampleX-Evil:1 (host.example [127.0.0.1])\r\n"));
/// assert!(h.contains("with ESMTPS id abc"));
/// assert!(h.contains("(version=TLSv1_3 cipher=TLS13_AES_256_GCM_SHA384)"));
/// assert!(h.ends_with("Thu, 01 Jan 1970 00:00:00 +0000\r\n"));
/// # Ok::<(), std::net::AddrParseError>(())
/// ```
#[must_use]
pub fn received_header(t: &TraceInfo<'_>) -> String {
    let helo = t
        .helo
        .map(clean)
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown".to_owned());
    let with = match (t.tls.is_some(), t.esmtp) {
        (true, _) => "ESMTPS",
        (false, true) => "ESMTP",
        (false, false) => "SMTP",
    };
    let ptr = t
        .ptr
        .map(clean)
        .filter(|p| !p.is_empty())
        .map_or_else(String::new, |p| format!("{p} "));
    let mut h = format!(
        "Received: from {helo} ({ptr}[{}])\r\n\tby {} (relay) with {with} id {}",
        t.ip.to_canonical(),
        clean(t.by),
        clean(t.id)
    );
    if let Some((version, cipher)) = t.tls {
        h.push_str(&format!(
            "\r\n\t(version={} cipher={})",
            clean(version),
            clean(cipher)
        ));
    }
    if let Some(r) = t.for_recipient {
        h.push_str(&format!("\r\n\tfor <{}>", clean(r)));
    }
    let date = OffsetDateTime::from(t.when)
        .format(&Rfc2822)
        .unwrap_or_else(|_| "Thu, 01 Jan 1970 00:00:00 +0000".into());
    h.push_str(&format!(";\r\n\t{date}\r\n"));
    h
}

fn clean(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_graphic() && !matches!(c, '(' | ')' | '<' | '>' | ';'))
        .take(MAX_NAME)
        .collect()
}
