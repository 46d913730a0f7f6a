//! MTA-STS policy fetch against a loopback HTTPS server (filled in below).
