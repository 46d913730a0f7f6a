//! Bounded line reading with its own buffer, so buffered bytes can be discarded at STARTTLS.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};

use crate::error::{Error, IoKind};
use crate::smtp::MAX_LINE_LEN;

/// Reads LF-terminated lines from a stream, keeping the bytes read past the line in its own
/// buffer. At STARTTLS, [`LineReader::discard`] drops them (RFC 3207 §4.2 / CVE-2011-0411 on the
/// server, response injection on the client).
#[derive(Debug, Default)]
pub struct LineReader {
    buf: Vec<u8>,
}

impl LineReader {
    /// An empty reader.
    pub fn new() -> Self {
        Self::default()
    }

    /// Drops every buffered byte; returns how many there were.
    pub fn discard(&mut self) -> usize {
        let n = self.buf.len();
        self.buf.clear();
        n
    }

    /// Bytes buffered but not yet returned as a line.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Reads one line (with its LF), at most [`MAX_LINE_LEN`] octets, within `timeout`.
    pub async fn read_line<S: AsyncRead + Unpin>(
        &mut self,
        stream: &mut S,
        timeout: Duration,
        phase: &'static str,
    ) -> Result<Vec<u8>, Error> {
        match tokio::time::timeout(timeout, self.read_line_inner(stream, phase)).await {
            Ok(r) => r,
            Err(_) => Err(Error::Timeout {
                phase,
                seconds: timeout.as_secs(),
            }),
        }
    }

    async fn read_line_inner<S: AsyncRead + Unpin>(
        &mut self,
        stream: &mut S,
        phase: &'static str,
    ) -> Result<Vec<u8>, Error> {
        let mut scanned = 0;
        loop {
            if let Some(pos) = self.buf[scanned..].iter().position(|&b| b == b'\n') {
                let end = scanned + pos + 1;
                if end > MAX_LINE_LEN {
                    return Err(Error::LineTooLong {
                        limit: MAX_LINE_LEN,
                    });
                }
                return Ok(self.buf.drain(..end).collect());
            }
            scanned = self.buf.len();
            if scanned > MAX_LINE_LEN {
                return Err(Error::LineTooLong {
                    limit: MAX_LINE_LEN,
                });
            }
            let mut chunk = [0u8; 4096];
            let n = stream.read(&mut chunk).await.map_err(|e| Error::Io {
                phase,
                kind: IoKind(e.kind()),
            })?;
            if n == 0 {
                return Err(Error::ConnectionClosed { phase });
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}
