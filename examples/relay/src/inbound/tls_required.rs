//! The `TLS-Required` header field of a received message (RFC 8689 §3), found by a bounded
//! scan of the header section.
//!
//! RFC 8689 §3: `tls-required-field = "TLS-Required:" [FWS] "No" CRLF`. The field name is
//! case-insensitive (RFC 5322 §1.2.2), folding whitespace is allowed around the value, and
//! the value `No` is compared without case. The field relaxes the TLS requirements of the
//! onward relay, so the scan fails closed: a message whose header section is longer than
//! [`MAX_HEADER_SCAN`], or that carries a `TLS-Required` field with any other value, is
//! treated as not carrying the field.

/// Most octets of the header section examined; a longer header section does not count.
pub const MAX_HEADER_SCAN: usize = 64 * 1024;

/// Whether the message's header section carries `TLS-Required: No` (and no other
/// `TLS-Required` field).
///
/// ```
/// use relay::inbound::has_tls_required_no;
/// assert!(has_tls_required_no(b"Subject: x\r\ntls-required:\r\n  no\r\n\r\nbody"));
/// assert!(!has_tls_required_no(b"Subject: x\r\n\r\nTLS-Required: No\r\n"));
/// ```
#[must_use]
pub fn has_tls_required_no(message: &[u8]) -> bool {
    let mut found = false;
    let mut lines = message.split_inclusive(|&b| b == b'\n');
    let mut seen = 0usize;
    // The field being unfolded: its name and value so far.
    let mut field: Option<(Vec<u8>, Vec<u8>)> = None;
    loop {
        let line = lines.next();
        if let Some(l) = line {
            seen = seen.saturating_add(l.len());
            if seen > MAX_HEADER_SCAN {
                return false;
            }
        }
        let text = line.map(|l| l.strip_suffix(b"\n").unwrap_or(l));
        let text = text.map(|t| t.strip_suffix(b"\r").unwrap_or(t));
        // A continuation line (folding, RFC 5322 §2.2.3) extends the current field.
        if let Some(t) = text
            && matches!(t.first(), Some(b' ' | b'\t'))
        {
            if let Some((_, value)) = field.as_mut() {
                value.push(b' ');
                value.extend_from_slice(t);
            }
            continue;
        }
        // The field before this line is complete.
        if let Some((name, value)) = field.take()
            && name.trim_ascii().eq_ignore_ascii_case(b"TLS-Required")
        {
            if !value.trim_ascii().eq_ignore_ascii_case(b"No") {
                return false;
            }
            found = true;
        }
        match text {
            // End of the header section (an empty line) or of the message.
            None | Some([]) => return found,
            Some(t) => {
                field = t
                    .iter()
                    .position(|&b| b == b':')
                    .and_then(|i| Some((t.get(..i)?.to_vec(), t.get(i + 1..)?.to_vec())));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{MAX_HEADER_SCAN, has_tls_required_no};

    #[test]
    fn table() {
        for (message, expected) in [
            (&b"TLS-Required: No\r\n\r\nbody"[..], true),
            (b"From: a@b\r\nTLS-REQUIRED:no\r\nSubject: s\r\n\r\n", true),
            (b"Tls-Required:   No   \n\nbody", true),
            (b"TLS-Required:\r\n\tNo\r\n\r\n", true),
            (b"Subject: x\r\nTLS-Required: No", true),
            (b"TLS-Required: Yes\r\n\r\n", false),
            (b"TLS-Required: No thanks\r\n\r\n", false),
            (b"TLS-Required: No\r\nTLS-Required: maybe\r\n\r\n", false),
            (b"X-TLS-Required: No\r\n\r\n", false),
            (b"Subject: TLS-Required: No\r\n\r\n", false),
            (b"Subject: x\r\n\r\nTLS-Required: No\r\n", false),
            (b"", false),
            (b"\r\n", false),
        ] {
            assert_eq!(
                has_tls_required_no(message),
                expected,
                "{:?}",
                String::from_utf8_lossy(message)
            );
        }
    }

    #[test]
    fn a_header_section_past_the_bound_does_not_count() {
        let mut m = Vec::new();
        while m.len() <= MAX_HEADER_SCAN {
            m.extend_from_slice(b"X-Filler: 0123456789012345678901234567890123456789\r\n");
        }
        m.extend_from_slice(b"TLS-Required: No\r\n\r\n");
        assert!(!has_tls_required_no(&m));
        assert!(has_tls_required_no(
            b"X-Filler: a\r\nTLS-Required: No\r\n\r\n"
        ));
    }
}
