//! SMTP TLS policy: the listener STARTTLS gate (RFC 3207), delivery TLS modes per destination, and
//! certificate identity verification.
#![forbid(unsafe_code)]
