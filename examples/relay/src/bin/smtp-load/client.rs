//! The SMTP client side of a load run: one session per connection.

use std::time::{Duration, Instant};

use smtp_proto::Response;
use smtp_proto::response::parser::ResponseReceiver;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Largest response (all lines) accepted from the server.
const MAX_RESPONSE: usize = 64 * 1024;

/// A client connection with its read buffer.
pub(crate) struct Conn<S> {
    pub(crate) stream: S,
    buf: Vec<u8>,
    timeout: Duration,
}

/// Why a session stopped.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SessionError {
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("timeout after {0:?}")]
    Timeout(Duration),
    #[error("connection closed by server")]
    Closed,
    #[error("unparsable response: {0}")]
    Syntax(String),
    #[error("response longer than {MAX_RESPONSE} bytes")]
    TooLong,
    #[error("unexpected reply to {command}: {code} {text}")]
    Unexpected {
        command: &'static str,
        code: u16,
        text: String,
    },
    #[error("server does not offer STARTTLS")]
    NoStartTls,
    #[error("TLS: {0}")]
    Tls(std::io::Error),
}

impl<S: AsyncRead + AsyncWrite + Unpin> Conn<S> {
    pub(crate) fn new(stream: S, timeout: Duration) -> Self {
        Self {
            stream,
            buf: Vec::with_capacity(1024),
            timeout,
        }
    }

    /// Sends bytes.
    pub(crate) async fn send(&mut self, bytes: &[u8]) -> Result<(), SessionError> {
        tokio::time::timeout(self.timeout, self.stream.write_all(bytes))
            .await
            .map_err(|_| SessionError::Timeout(self.timeout))??;
        Ok(())
    }

    /// Reads one (possibly multi-line) response.
    pub(crate) async fn response(&mut self) -> Result<Response<String>, SessionError> {
        let mut parser = ResponseReceiver::default();
        let mut chunk = [0u8; 4096];
        loop {
            if !self.buf.is_empty() {
                let mut iter = self.buf.iter();
                let result = parser.parse(&mut iter);
                let consumed = self.buf.len() - iter.len();
                self.buf.drain(..consumed);
                match result {
                    Ok(r) => return Ok(r),
                    Err(smtp_proto::Error::NeedsMoreData { .. }) => {}
                    Err(smtp_proto::Error::ResponseTooLong) => return Err(SessionError::TooLong),
                    Err(e) => return Err(SessionError::Syntax(format!("{e:?}"))),
                }
            }
            let n = tokio::time::timeout(self.timeout, self.stream.read(&mut chunk))
                .await
                .map_err(|_| SessionError::Timeout(self.timeout))??;
            if n == 0 {
                return Err(SessionError::Closed);
            }
            if self.buf.len() + n > MAX_RESPONSE {
                return Err(SessionError::TooLong);
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Sends a command and expects a reply of the given class (2 or 3).
    pub(crate) async fn command(
        &mut self,
        name: &'static str,
        line: &[u8],
        class: u16,
    ) -> Result<Response<String>, SessionError> {
        self.send(line).await?;
        expect(name, self.response().await?, class)
    }

    /// Gives the stream back for the TLS handshake, discarding anything the server sent after
    /// its `220` to STARTTLS (RFC 3207 §6: such bytes must not be trusted).
    pub(crate) fn into_stream(self) -> S {
        self.stream
    }
}

/// Checks a reply's class.
pub(crate) fn expect(
    command: &'static str,
    r: Response<String>,
    class: u16,
) -> Result<Response<String>, SessionError> {
    if r.code / 100 == class {
        Ok(r)
    } else {
        Err(SessionError::Unexpected {
            command,
            code: r.code,
            text: r.message.lines().next().unwrap_or("").to_owned(),
        })
    }
}

/// Whether an EHLO reply offers STARTTLS (RFC 3207 §4).
pub(crate) fn offers_starttls(ehlo: &Response<String>) -> bool {
    offers(ehlo, "STARTTLS")
}

/// Whether an EHLO reply offers the extension `keyword` (no parameters).
pub(crate) fn offers(ehlo: &Response<String>, keyword: &str) -> bool {
    ehlo.message
        .lines()
        .skip(1)
        .any(|l| l.trim().eq_ignore_ascii_case(keyword))
}

/// Counters of one session.
#[derive(Debug, Default)]
pub(crate) struct SessionStats {
    pub(crate) accepted: u64,
    pub(crate) rejected: u64,
    pub(crate) latencies: Vec<Duration>,
    pub(crate) handshakes: u64,
    pub(crate) handshake_times: Vec<Duration>,
    /// Handshakes that resumed an earlier session (no certificate, no signature).
    pub(crate) resumed: u64,
    /// The key exchange group of the last handshake (e.g. `X25519`).
    pub(crate) kx_group: Option<String>,
}

impl SessionStats {
    /// Records a finished client handshake: how long it took, whether it resumed, its group.
    pub(crate) fn handshake(&mut self, took: Duration, conn: &rustls::ClientConnection) {
        self.handshakes += 1;
        self.handshake_times.push(took);
        if conn.handshake_kind() == Some(rustls::HandshakeKind::Resumed) {
            self.resumed += 1;
        }
        self.kx_group = conn
            .negotiated_key_exchange_group()
            .map(|g| format!("{:?}", g.name()));
    }
}

/// What a transaction needs.
pub(crate) struct Transaction<'a> {
    pub(crate) from: &'a str,
    pub(crate) to: &'a str,
    /// The message, already dot-stuffed and terminated by `.\r\n`.
    pub(crate) data: &'a [u8],
}

/// Runs one mail transaction; `Ok(true)` if the server answered `250` to the data.
/// `pipelining`: MAIL, RCPT and DATA go out in one write (RFC 2920; the server offers it).
pub(crate) async fn transaction<S: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut Conn<S>,
    tx: &Transaction<'_>,
    pipelining: bool,
) -> Result<bool, SessionError> {
    if pipelining {
        let group = format!("MAIL FROM:<{}>\r\nRCPT TO:<{}>\r\nDATA\r\n", tx.from, tx.to);
        conn.send(group.as_bytes()).await?;
        let mail = conn.response().await?;
        let rcpt = conn.response().await?;
        let data = conn.response().await?;
        if data.code != 354 {
            conn.command("RSET", b"RSET\r\n", 2).await?;
            return Ok(false);
        }
        if mail.code / 100 != 2 || rcpt.code / 100 != 2 {
            // RFC 2920 §3.1: DATA should have been refused; end it with no text.
            conn.send(b".\r\n").await?;
            conn.response().await?;
            conn.command("RSET", b"RSET\r\n", 2).await?;
            return Ok(false);
        }
        conn.send(tx.data).await?;
        let r = conn.response().await?;
        return Ok(r.code / 100 == 2);
    }
    let mail = format!("MAIL FROM:<{}>\r\n", tx.from);
    let r = conn.command_any(mail.as_bytes()).await?;
    if r.code / 100 != 2 {
        conn.command("RSET", b"RSET\r\n", 2).await?;
        return Ok(false);
    }
    let rcpt = format!("RCPT TO:<{}>\r\n", tx.to);
    let r = conn.command_any(rcpt.as_bytes()).await?;
    if r.code / 100 != 2 {
        conn.command("RSET", b"RSET\r\n", 2).await?;
        return Ok(false);
    }
    let r = conn.command_any(b"DATA\r\n").await?;
    if r.code != 354 {
        conn.command("RSET", b"RSET\r\n", 2).await?;
        return Ok(false);
    }
    conn.send(tx.data).await?;
    let r = conn.response().await?;
    Ok(r.code / 100 == 2)
}

impl<S: AsyncRead + AsyncWrite + Unpin> Conn<S> {
    async fn command_any(&mut self, line: &[u8]) -> Result<Response<String>, SessionError> {
        self.send(line).await?;
        self.response().await
    }
}

/// Builds a test message of about `size` bytes, with lines that start with `.` to exercise
/// transparency, then dot-stuffs it (RFC 5321 §4.5.2) and appends the end-of-data line.
pub(crate) fn message(message_id: &str, from: &str, to: &str, size: usize) -> Vec<u8> {
    let mut m = format!(
        "From: <{from}>\r\nTo: <{to}>\r\nSubject: smtp-load test\r\nMessage-ID: {message_id}\r\n\r\n"
    )
    .into_bytes();
    let mut line_no = 0u32;
    while m.len() < size {
        let lead = if line_no % 10 == 3 { "." } else { "" };
        let line = format!(
            "{lead}line {line_no:06} abcdefghijklmnopqrstuvwxyz0123456789 ABCDEFGHIJKLMNOPQRSTUVWXYZ\r\n"
        );
        m.extend_from_slice(line.as_bytes());
        line_no += 1;
    }
    if m.ends_with(b"\r\n\r\n") {
        m.extend_from_slice(b"(empty)\r\n");
    }
    dot_stuff(&m)
}

/// [`message`] for many Message-IDs: the generated (and stuffed) text after the header depends
/// only on the header's length (and the size asked for), so it is built once per length.
#[derive(Default)]
pub(crate) struct MessageCache {
    tails: std::collections::HashMap<(usize, usize), Vec<u8>>,
}

impl MessageCache {
    /// The same bytes as `message(message_id, from, to, size)`.
    pub(crate) fn message(
        &mut self,
        message_id: &str,
        from: &str,
        to: &str,
        size: usize,
    ) -> Vec<u8> {
        let head = format!(
            "From: <{from}>\r\nTo: <{to}>\r\nSubject: smtp-load test\r\nMessage-ID: {message_id}\r\n\r\n"
        );
        if let Some(tail) = self.tails.get(&(head.len(), size)) {
            let mut m = Vec::with_capacity(head.len() + tail.len());
            m.extend_from_slice(head.as_bytes());
            m.extend_from_slice(tail);
            return m;
        }
        let full = message(message_id, from, to, size);
        // The header needs no stuffing unless an argument holds a line starting with `.`.
        if full.starts_with(head.as_bytes()) {
            self.tails
                .insert((head.len(), size), full[head.len()..].to_vec());
        }
        full
    }
}

/// RFC 5321 §4.5.2: double a leading `.` on every line; terminate with `.\r\n`.
/// A body not ending with CRLF gets one (the end-of-data line must start a line).
pub(crate) fn dot_stuff(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + body.len() / 64 + 8);
    let mut at_line_start = true;
    for &b in body {
        if at_line_start && b == b'.' {
            out.push(b'.');
        }
        out.push(b);
        at_line_start = b == b'\n';
    }
    if !out.is_empty() && !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

/// Times a future.
pub(crate) async fn timed<T>(f: impl Future<Output = T>) -> (T, Duration) {
    let t = Instant::now();
    let r = f.await;
    (r, t.elapsed())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_stuffing_round_trips_through_smtp_proto() {
        let body = b"a\r\n.b\r\n..c\r\n.\r\nend\r\n";
        let stuffed = dot_stuff(body);
        assert_eq!(&stuffed, b"a\r\n..b\r\n...c\r\n..\r\nend\r\n.\r\n");
        let mut rx = crate::sink::data_receiver();
        let mut out = Vec::new();
        assert!(rx.ingest(&mut stuffed.iter(), &mut out));
        assert_eq!(out, body);
    }

    proptest::proptest! {
        /// Stuffing then smtp-proto's un-stuffing gives the body back, for any CRLF lines
        /// (including ones that are just `.`), fed in arbitrary chunk sizes.
        #[test]
        fn dot_stuffing_round_trips(
            lines in proptest::collection::vec("[.a\\r]{0,6}", 0..20),
            chunk in 1usize..17,
        ) {
            let body: String = lines.iter().map(|l| format!("{}\r\n", l.replace('\r', ""))).collect();
            let stuffed = dot_stuff(body.as_bytes());
            let mut rx = crate::sink::data_receiver();
            let mut out = Vec::new();
            let mut done = false;
            for piece in stuffed.chunks(chunk) {
                proptest::prop_assert!(!done, "end of data seen before the last chunk");
                done = rx.ingest(&mut piece.iter(), &mut out);
            }
            proptest::prop_assert!(done);
            proptest::prop_assert_eq!(out, body.as_bytes());
        }
    }

    #[test]
    fn cached_messages_are_the_generated_ones() {
        let mut cache = MessageCache::default();
        for size in [0, 10, 100, 4096] {
            for id in [
                "<a@b>",
                "<load.1.2.3@x>",
                "<load.1.2.30@x>",
                "<a@b>",
                "<load.1.2.31@x>",
            ] {
                assert_eq!(
                    cache.message(id, "f@x", "t@y", size),
                    message(id, "f@x", "t@y", size)
                );
            }
        }
        let odd = "a\r\n.b@x";
        assert_eq!(
            cache.message("<i@d>", odd, "t@y", 500),
            message("<i@d>", odd, "t@y", 500)
        );
    }

    #[test]
    fn generated_message_has_size_and_stuffed_dots() {
        let m = message("<x@y>", "a@b", "c@d", 2000);
        assert!(m.len() >= 2000);
        assert!(m.ends_with(b"\r\n.\r\n"));
        let text = String::from_utf8(m).unwrap();
        assert!(text.contains("\r\n..line 000003"));
    }
}
