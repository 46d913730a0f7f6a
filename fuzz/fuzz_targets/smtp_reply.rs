//! SMTP reply / EHLO parsing on the delivery (client) path: bounded framing, reply parsing by
//! smtp-proto, EHLO capabilities, and the incremental accumulator fed line by line.
#![no_main]

use smtp_tls_policy::smtp::{EhloCapabilities, ReplyAccumulator, parse_command, parse_reply};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    // Whole-buffer parse: a reply, then whatever follows.
    let mut rest = data;
    for _ in 0..16 {
        match parse_reply(rest) {
            Ok((reply, used)) => {
                assert!(used > 0 && used <= rest.len());
                assert!((200..600).contains(&reply.code));
                let _ = EhloCapabilities::from_reply(&reply);
                rest = &rest[used..];
            }
            Err(_) => break,
        }
    }
    // Line by line, as the driver feeds it.
    let mut acc = ReplyAccumulator::new();
    for line in data.split_inclusive(|&b| b == b'\n') {
        match acc.push_line(line) {
            Ok(Some(r)) => {
                let _ = EhloCapabilities::from_reply(&r);
            }
            Ok(None) => {}
            Err(_) => acc = ReplyAccumulator::new(),
        }
    }
    // The listener path's command parser on the same bytes (first line).
    if let Some(end) = data.iter().position(|&b| b == b'\n') {
        let _ = parse_command(&data[..=end]);
    }
});
