//! A scripted SMTP peer for delivery tests: it plays one hostile (or good) STARTTLS behaviour and
//! records every byte it receives, split into before-TLS and inside-TLS, per connection.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

/// How the peer answers STARTTLS.
#[derive(Clone)]
pub enum Behaviour {
    /// EHLO without STARTTLS (a STARTTLS anyway gets `502`).
    NoStartTls,
    /// STARTTLS advertised, answered `454 4.7.0`.
    Refuse454,
    /// `220` to STARTTLS, then the connection is closed.
    HandshakeClose,
    /// `220` to STARTTLS, then bytes that are not TLS.
    HandshakeGarbage,
    /// `220` to STARTTLS, then a real TLS handshake with this configuration.
    Tls(Arc<rustls::ServerConfig>),
    /// As `Tls`, but a plaintext `250` reply is injected right after the `220` (in the same
    /// packet): a client that does not discard it reads it as part of the handshake or as its
    /// EHLO reply inside TLS (CVE-2011-0411, client side).
    TlsInjected(Arc<rustls::ServerConfig>),
}

/// What one connection carried.
#[derive(Debug, Default, Clone)]
pub struct Conn {
    /// Every byte received before TLS (the whole connection when there was no TLS).
    pub plain: Vec<u8>,
    /// Every byte received inside TLS (decrypted).
    pub tls: Vec<u8>,
    /// The TLS handshake completed.
    pub tls_up: bool,
    /// A message was accepted (`250` after DATA); `Some(true)` = inside TLS.
    pub delivered: Option<bool>,
}

impl Conn {
    pub fn plain_text(&self) -> String {
        String::from_utf8_lossy(&self.plain).into_owned()
    }
    pub fn tls_text(&self) -> String {
        String::from_utf8_lossy(&self.tls).into_owned()
    }
}

type Record = Arc<Mutex<Vec<Conn>>>;

/// A listening peer on 127.0.0.1; stops accepting on drop.
pub struct Peer {
    pub addr: SocketAddr,
    conns: Record,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Peer {
    pub fn start(behaviour: Behaviour) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let conns: Record = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (c, s) = (conns.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let idx = {
                    let mut v = c.lock().unwrap_or_else(PoisonError::into_inner);
                    v.push(Conn::default());
                    v.len() - 1
                };
                let (b, c) = (behaviour.clone(), c.clone());
                std::thread::spawn(move || {
                    let _ = handle(stream, &b, &c, idx);
                });
            }
        });
        Self {
            addr,
            conns,
            stop,
            thread: Some(thread),
        }
    }

    /// A snapshot of the connections so far.
    pub fn conns(&self) -> Vec<Conn> {
        self.conns
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn with<T>(rec: &Record, idx: usize, f: impl FnOnce(&mut Conn) -> T) -> T {
    let mut v = rec.lock().unwrap_or_else(PoisonError::into_inner);
    f(&mut v[idx])
}

/// What the plaintext phase ended with.
enum End {
    Closed,
    StartTls,
}

fn handle(stream: TcpStream, b: &Behaviour, rec: &Record, idx: usize) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(20)))?;
    stream.set_write_timeout(Some(Duration::from_secs(20)))?;
    let mut w = stream.try_clone()?;
    w.write_all(b"220 peer.test ESMTP scripted\r\n")?;
    let starttls = !matches!(b, Behaviour::NoStartTls);
    let mut r = BufReader::new(stream);
    let refuse = matches!(b, Behaviour::Refuse454);
    let inject = matches!(b, Behaviour::TlsInjected(_));
    let end = session(
        &mut r,
        &mut w,
        (starttls, refuse, inject),
        &mut |bytes, delivered| {
            with(rec, idx, |c| {
                c.plain.extend_from_slice(bytes);
                if delivered {
                    c.delivered = Some(false);
                }
            });
        },
    )?;
    if matches!(end, End::Closed) {
        return Ok(());
    }
    match b {
        // 454 / 502 keep the session in plaintext; HandshakeClose just drops the socket.
        Behaviour::NoStartTls | Behaviour::Refuse454 | Behaviour::HandshakeClose => Ok(()),
        Behaviour::HandshakeGarbage => {
            w.write_all(b"this is not a TLS record\r\n\x00\x01\x02garbage\r\n")?;
            let mut sink = [0u8; 4096];
            let mut s = r.into_inner();
            while matches!(s.read(&mut sink), Ok(n) if n > 0) {}
            Ok(())
        }
        Behaviour::Tls(cfg) | Behaviour::TlsInjected(cfg) => {
            // Anything the client pipelined after STARTTLS is discarded with the buffer.
            let s = r.into_inner();
            let conn = rustls::ServerConnection::new(cfg.clone()).map_err(std::io::Error::other)?;
            let mut tls = rustls::StreamOwned::new(conn, s);
            while tls.conn.is_handshaking() {
                tls.conn.complete_io(&mut tls.sock)?;
            }
            with(rec, idx, |c| c.tls_up = true);
            let mut r = BufReader::new(tls);
            tls_session(&mut r, &mut |bytes, delivered| {
                with(rec, idx, |c| {
                    c.tls.extend_from_slice(bytes);
                    if delivered {
                        c.delivered = Some(true);
                    }
                });
            })
        }
    }
}

/// The plaintext SMTP dialogue; `record(bytes, delivered)`.
fn session(
    r: &mut BufReader<TcpStream>,
    w: &mut TcpStream,
    (starttls, refuse, inject): (bool, bool, bool),
    record: &mut dyn FnMut(&[u8], bool),
) -> std::io::Result<End> {
    loop {
        let mut line = Vec::new();
        if r.by_ref().take(4096).read_until(b'\n', &mut line)? == 0 {
            return Ok(End::Closed);
        }
        record(&line, false);
        let verb = verb(&line);
        let reply: &[u8] = match verb.as_str() {
            "EHLO" if starttls => {
                b"250-peer.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 STARTTLS\r\n"
            }
            "EHLO" => b"250-peer.test\r\n250-PIPELINING\r\n250 8BITMIME\r\n",
            "STARTTLS" if !starttls => b"502 5.5.1 STARTTLS not offered\r\n",
            "STARTTLS" if refuse => b"454 4.7.0 TLS not available due to temporary reason\r\n",
            "STARTTLS" if inject => {
                w.write_all(b"220 2.0.0 Ready to start TLS\r\n250-injected\r\n250 STARTTLS\r\n")?;
                return Ok(End::StartTls);
            }
            "STARTTLS" => {
                w.write_all(b"220 2.0.0 Ready to start TLS\r\n")?;
                return Ok(End::StartTls);
            }
            "DATA" => {
                w.write_all(b"354 go ahead\r\n")?;
                data(r, record)?;
                record(b"", true);
                b"250 2.0.0 accepted\r\n"
            }
            "QUIT" => {
                w.write_all(b"221 2.0.0 bye\r\n")?;
                return Ok(End::Closed);
            }
            "HELO" | "MAIL" | "RCPT" | "RSET" | "NOOP" => b"250 2.0.0 ok\r\n",
            _ => b"502 5.5.2 unknown command\r\n",
        };
        w.write_all(reply)?;
    }
}

fn tls_session<S: Read + Write>(
    r: &mut BufReader<S>,
    record: &mut dyn FnMut(&[u8], bool),
) -> std::io::Result<()> {
    loop {
        let mut line = Vec::new();
        if r.by_ref().take(4096).read_until(b'\n', &mut line)? == 0 {
            return Ok(());
        }
        record(&line, false);
        let reply: &[u8] = match verb(&line).as_str() {
            "EHLO" => b"250-peer.test\r\n250-PIPELINING\r\n250 8BITMIME\r\n",
            "DATA" => {
                r.get_mut().write_all(b"354 go ahead\r\n")?;
                r.get_mut().flush()?;
                data(r, record)?;
                record(b"", true);
                b"250 2.0.0 accepted\r\n"
            }
            "QUIT" => {
                r.get_mut().write_all(b"221 2.0.0 bye\r\n")?;
                r.get_mut().flush()?;
                return Ok(());
            }
            "HELO" | "MAIL" | "RCPT" | "RSET" | "NOOP" => b"250 2.0.0 ok\r\n",
            _ => b"502 5.5.2 unknown command\r\n",
        };
        r.get_mut().write_all(reply)?;
        r.get_mut().flush()?;
    }
}

/// Reads the DATA lines up to the lone `.`.
fn data<R: BufRead>(r: &mut R, record: &mut dyn FnMut(&[u8], bool)) -> std::io::Result<()> {
    loop {
        let mut line = Vec::new();
        if r.by_ref().take(4096).read_until(b'\n', &mut line)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        record(&line, false);
        if line == b".\r\n" {
            return Ok(());
        }
    }
}

fn verb(line: &[u8]) -> String {
    String::from_utf8_lossy(line)
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_ascii_uppercase()
}
