//! Bounded line reading with its own buffer, so buffered bytes can be discarded at STARTTLS.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};

use super::timeouts::Deadline;
use crate::error::{Error, IoKind};
use crate::smtp::MAX_LINE_LEN;

/// Bytes asked of the stream per read (a pipelined command group or a stretch of message text
/// arrives in one read).
const READ_CHUNK: usize = 16 * 1024;

/// Reads LF-terminated lines from a stream, keeping the bytes read past the line in its own
/// buffer. At STARTTLS, [`LineReader::discard`] drops them (RFC 3207 §4.2 / CVE-2011-0411 on the
/// server, response injection on the client).
///
/// Lines are handed out from the buffer without copying ([`LineReader::read_line_ref`]); the
/// buffer is compacted only when more bytes must be read, and a timer is armed only then.
#[derive(Debug, Default)]
pub struct LineReader {
    buf: Vec<u8>,
    /// Bytes before `start` were already returned.
    start: usize,
}

impl LineReader {
    /// An empty reader.
    pub fn new() -> Self {
        Self::default()
    }

    /// Drops every buffered byte; returns how many there were.
    pub fn discard(&mut self) -> usize {
        let n = self.buffered();
        self.buf.clear();
        self.start = 0;
        n
    }

    /// Bytes buffered but not yet returned as a line.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }

    /// Whether a complete line is buffered (the next read needs no I/O). A server uses it to
    /// hold replies back while the client's pipelined commands are still being answered
    /// (RFC 2920 §3.2).
    pub fn has_line(&self) -> bool {
        self.buf[self.start..].contains(&b'\n')
    }

    /// Reads one line (with its LF), at most [`MAX_LINE_LEN`] octets, within `timeout`.
    pub async fn read_line<S: AsyncRead + Unpin>(
        &mut self,
        stream: &mut S,
        timeout: Duration,
        phase: &'static str,
    ) -> Result<Vec<u8>, Error> {
        self.read_line_ref(stream, timeout, phase)
            .await
            .map(<[u8]>::to_vec)
    }

    /// Like [`LineReader::read_line`], but borrows the line from the reader's buffer (valid
    /// until the next call).
    pub async fn read_line_ref<S: AsyncRead + Unpin>(
        &mut self,
        stream: &mut S,
        timeout: Duration,
        phase: &'static str,
    ) -> Result<&[u8], Error> {
        // The whole line must arrive within `timeout` of the call; the clock is read only
        // when the stream has to be waited for.
        self.read_line_by(stream, &mut Deadline::new(timeout), phase)
            .await
    }

    /// Reads one line (with its LF), at most [`MAX_LINE_LEN`] octets, before `deadline`,
    /// borrowed from the reader's buffer. Pass the same [`Deadline`] for every line of a
    /// multi-line reply so the timeout bounds the reply, not each line (RFC 5321 §4.5.3.2).
    pub async fn read_line_by<S: AsyncRead + Unpin>(
        &mut self,
        stream: &mut S,
        deadline: &mut Deadline,
        phase: &'static str,
    ) -> Result<&[u8], Error> {
        let mut scanned = 0;
        loop {
            let pending = &self.buf[self.start..];
            if let Some(pos) = pending[scanned..].iter().position(|&b| b == b'\n') {
                let end = scanned + pos + 1;
                if end > MAX_LINE_LEN {
                    return Err(Error::LineTooLong {
                        limit: MAX_LINE_LEN,
                    });
                }
                let from = self.start;
                self.start += end;
                return Ok(&self.buf[from..from + end]);
            }
            scanned = pending.len();
            if scanned > MAX_LINE_LEN {
                return Err(Error::LineTooLong {
                    limit: MAX_LINE_LEN,
                });
            }
            // Compact: keep only the partial line.
            if self.start > 0 {
                self.buf.drain(..self.start);
                self.start = 0;
            }
            self.buf.reserve(READ_CHUNK);
            let at = deadline.instant();
            let n = match tokio::time::timeout_at(at, stream.read_buf(&mut self.buf)).await {
                Ok(r) => r.map_err(|e| Error::Io {
                    phase,
                    kind: IoKind(e.kind()),
                })?,
                Err(_) => {
                    return Err(Error::Timeout {
                        phase,
                        seconds: deadline.budget().as_secs(),
                    });
                }
            };
            if n == 0 {
                return Err(Error::ConnectionClosed { phase });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lines_split_across_reads_and_pipelined_lines() {
        let (mut a, mut b) = tokio::io::duplex(64);
        let mut r = LineReader::new();
        tokio::io::AsyncWriteExt::write_all(&mut b, b"MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDA")
            .await
            .unwrap();
        let t = Duration::from_secs(5);
        assert_eq!(
            r.read_line_ref(&mut a, t, "x").await.unwrap(),
            b"MAIL FROM:<a@b>\r\n"
        );
        assert!(r.has_line());
        assert_eq!(
            r.read_line(&mut a, t, "x").await.unwrap(),
            b"RCPT TO:<c@d>\r\n"
        );
        assert!(!r.has_line());
        assert_eq!(r.buffered(), 2);
        tokio::io::AsyncWriteExt::write_all(&mut b, b"TA\r\nQUIT\r\n")
            .await
            .unwrap();
        assert_eq!(r.read_line_ref(&mut a, t, "x").await.unwrap(), b"DATA\r\n");
        assert_eq!(r.discard(), 6);
        assert_eq!(r.buffered(), 0);
        drop(b);
        assert!(matches!(
            r.read_line_ref(&mut a, t, "x").await,
            Err(Error::ConnectionClosed { .. })
        ));
    }

    #[tokio::test]
    async fn overlong_line_is_refused() {
        let (mut a, mut b) = tokio::io::duplex(4096);
        let long = vec![b'x'; MAX_LINE_LEN + 10];
        let w = tokio::spawn(async move {
            let _ = tokio::io::AsyncWriteExt::write_all(&mut b, &long).await;
            b
        });
        let mut r = LineReader::new();
        let e = r
            .read_line_ref(&mut a, Duration::from_secs(5), "x")
            .await
            .unwrap_err();
        assert!(matches!(e, Error::LineTooLong { .. }));
        drop(w.await);
    }
}
