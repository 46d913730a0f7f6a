//! The transport under a listener-side TLS session: it holds the handshake's last flight (the
//! TLS 1.3 session ticket) so that it goes out in one write with the first reply.
//!
//! tokio-rustls' `Accept` writes and flushes whatever the handshake leaves queued when it ends:
//! in TLS 1.3 the server's NewSessionTicket, sent on the client's Finished. A client that sends
//! its first command with its Finished (as most do) then receives two segments, the ticket and
//! the reply, one write and one segment (with its ACK) more than needed on both sides.
//!
//! [`HeldWrites`] holds, during the handshake, only a write that starts with an encrypted
//! record and comes alone (outer content type application_data, 23: in TLS 1.3 the ticket; the
//! server's flights start with a handshake record, 22, or a change_cipher_spec, 20, alerts with
//! 21, and go through at once, as before). Flush is a no-op while it holds, but what is held is
//! written as soon as a read waits for the peer: a client that waits for the ticket before its
//! first command gets it, and a flight written in pieces (a full socket buffer) never stays
//! held. After the handshake the
//! session releases the hold: what is held goes out with the next write, at the next flush, or
//! when a read waits, whichever comes first.
//!
//! "A read waits" is a read that finds nothing twice in a row: tokio-rustls tops up a read
//! that returned decrypted data (the client's pipelined EHLO) with one more read of the
//! transport, which finds nothing — that one must not write the ticket ahead of the reply. The
//! first empty read wakes the task, so a reader that really waits polls again at once and the
//! second empty read writes.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Most bytes held; a write that does not fit goes through, after what is held.
const MAX_HELD: usize = 16 * 1024;

/// The TLS record content type of encrypted records (RFC 8446 §5.2: `opaque_type`, 23).
const APPLICATION_DATA: u8 = 23;

/// The plain transport under [`super::SmtpStream::ServerTls`]: `S` with the bytes TLS wrote at
/// the end of the handshake held for the first reply (see the module documentation).
///
/// Once the session is past the handshake it behaves as `S` with a small write buffer: held
/// bytes are written before (and together with) the next write, at flush, at shutdown and
/// before a read waits. An application that takes the stream with
/// [`super::ServerSession::into_stream`] uses it through the TLS stream as before.
#[derive(Debug)]
pub struct HeldWrites<S> {
    inner: S,
    /// Bytes accepted from the writer and not yet written to `inner`; at most [`MAX_HELD`].
    held: Vec<u8>,
    /// While `true` (the handshake), flush does not write the held bytes.
    holding: bool,
    /// A read found nothing to read while bytes were held (and woke the task to try again).
    read_pending: bool,
}

impl<S> HeldWrites<S> {
    /// Wraps `inner`, holding writes until [`HeldWrites::release`].
    pub(crate) fn new(inner: S) -> Self {
        Self {
            inner,
            held: Vec::new(),
            holding: true,
            read_pending: false,
        }
    }

    /// Ends the hold: held bytes go out with the next write, flush, shutdown or waiting read.
    pub(crate) fn release(&mut self) {
        self.holding = false;
    }

    /// The underlying transport.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The underlying transport. Writing to it directly would put bytes before the held ones.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Number of bytes held (not yet written to the underlying transport).
    pub fn held_len(&self) -> usize {
        self.held.len()
    }
}

impl<S> HeldWrites<S> {
    /// Whether a write whose first byte is `first` starts a hold (nothing is held yet): only
    /// while holding, and only an encrypted record (the ticket), not a handshake flight.
    fn starts_held(&self, first: Option<u8>) -> bool {
        self.holding && first == Some(APPLICATION_DATA)
    }
}

impl<S: AsyncWrite + Unpin> HeldWrites<S> {
    /// Writes every held byte to `inner`.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.held.is_empty() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.held))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.held.drain(..n.min(self.held.len()));
        }
        self.read_pending = false;
        if !self.holding {
            // The buffer served the handshake; the session's replies are not held again.
            self.held = Vec::new();
        }
        Poll::Ready(Ok(()))
    }

    /// After `len` more bytes were appended: past the hold, try to write them now (a write that
    /// would block leaves them held for flush or the next read; an error is returned).
    fn poll_after_append(&mut self, cx: &mut Context<'_>, len: usize) -> Poll<io::Result<usize>> {
        if !self.holding {
            if let Poll::Ready(Err(e)) = self.poll_drain(cx) {
                return Poll::Ready(Err(e));
            }
        }
        Poll::Ready(Ok(len))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for HeldWrites<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_read(cx, buf);
        match r {
            Poll::Pending if !this.held.is_empty() => {
                if this.read_pending {
                    // The reader is waiting for the peer, which may be waiting for what is held.
                    if let Poll::Ready(Err(e)) = this.poll_drain(cx) {
                        return Poll::Ready(Err(e));
                    }
                } else {
                    // The first read with nothing to read may be an opportunistic one (a TLS
                    // stream tops up its caller's buffer after returning decrypted data): the
                    // task is polled again at once, and if it is still waiting for the peer,
                    // that read writes what is held.
                    this.read_pending = true;
                    cx.waker().wake_by_ref();
                }
            }
            Poll::Ready(_) => this.read_pending = false,
            Poll::Pending => {}
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for HeldWrites<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.held.is_empty() && !this.starts_held(buf.first().copied()) {
            return Pin::new(&mut this.inner).poll_write(cx, buf);
        }
        if buf.len() <= MAX_HELD - this.held.len() {
            this.held.extend_from_slice(buf);
            return this.poll_after_append(cx, buf.len());
        }
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let first = bufs.iter().find_map(|b| b.first().copied());
        if this.held.is_empty() && !this.starts_held(first) {
            return Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        }
        let len = bufs.iter().fold(0usize, |n, b| n.saturating_add(b.len()));
        if len <= MAX_HELD - this.held.len() {
            for b in bufs {
                this.held.extend_from_slice(b);
            }
            return this.poll_after_append(cx, len);
        }
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        // Vectored writes are gathered into the held buffer or passed through.
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.holding {
            return Poll::Ready(Ok(()));
        }
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt, duplex};

    use super::*;

    #[tokio::test]
    async fn held_bytes_go_out_when_a_read_waits_and_with_the_next_write() {
        let (a, mut b) = duplex(64 * 1024);
        let mut h = HeldWrites::new(a);
        // an encrypted record (the ticket) written alone during the handshake is held
        h.write_all(b"\x17record").await.unwrap();
        h.flush().await.unwrap();
        assert_eq!(h.held_len(), 7, "flush holds during the handshake");
        // A read that waits writes what is held first (the peer may be waiting for it).
        let mut one = [0u8; 1];
        let read = tokio::spawn(async move {
            let n = h.read(&mut one).await.unwrap();
            (h, n, one)
        });
        let mut got = [0u8; 7];
        b.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"\x17record");
        b.write_all(b"x").await.unwrap();
        let (mut h, n, one) = read.await.unwrap();
        assert_eq!((n, one), (1, *b"x"));
        assert_eq!(h.held_len(), 0);

        // After release, the held ticket goes out together with the next write.
        h.write_all(b"\x17ticket").await.unwrap();
        h.release();
        h.write_all(b"+reply").await.unwrap();
        assert_eq!(h.held_len(), 0);
        let mut got = [0u8; 13];
        b.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"\x17ticket+reply");
    }

    #[tokio::test]
    async fn the_buffer_is_bounded() {
        let (a, mut b) = duplex(64 * 1024);
        let mut h = HeldWrites::new(a);
        let mut big = vec![7u8; MAX_HELD - 10];
        big[0] = APPLICATION_DATA;
        h.write_all(&big).await.unwrap();
        assert_eq!(h.held_len(), MAX_HELD - 10);
        // Does not fit: what is held is written first, then this write goes through.
        h.write_all(&[8u8; 20]).await.unwrap();
        assert_eq!(h.held_len(), 0);
        let mut got = vec![0u8; MAX_HELD + 10];
        b.read_exact(&mut got).await.unwrap();
        assert_eq!(got[..MAX_HELD - 10], big[..]);
        assert!(got[MAX_HELD - 10..].iter().all(|x| *x == 8));
    }

    #[tokio::test]
    async fn shutdown_writes_what_is_held() {
        let (a, mut b) = duplex(1024);
        let mut h = HeldWrites::new(a);
        h.write_all(b"\x17close").await.unwrap();
        assert_eq!(h.held_len(), 6);
        h.shutdown().await.unwrap();
        let mut got = Vec::new();
        b.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"\x17close");
    }

    /// A handshake flight (handshake record first), a change_cipher_spec or an alert is never
    /// held: it goes out at once, with no heap buffer the size of a flight per connection.
    #[tokio::test]
    async fn flights_and_alerts_go_through_while_holding() {
        let (a, mut b) = duplex(64 * 1024);
        let mut h = HeldWrites::new(a);
        for record in [
            &b"\x16\x03\x03flight"[..],
            b"\x14\x03\x03\x00\x01\x01",
            b"\x15\x03\x03alert",
        ] {
            h.write_all(record).await.unwrap();
            assert_eq!(h.held_len(), 0, "{record:?} went through");
            let mut got = vec![0u8; record.len()];
            b.read_exact(&mut got).await.unwrap();
            assert_eq!(got, record);
        }
        // vectored: the first byte of the first non-empty slice decides
        let slices = [
            IoSlice::new(b""),
            IoSlice::new(b"\x16hello"),
            IoSlice::new(b"\x17rest"),
        ];
        let n = h.write_vectored(&slices).await.unwrap();
        assert_eq!(h.held_len(), 0);
        let mut got = vec![0u8; n];
        b.read_exact(&mut got).await.unwrap();
        assert_eq!(got[0], 0x16);
    }
}
