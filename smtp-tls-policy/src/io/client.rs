//! Delivery side: greeting, EHLO, STARTTLS, handshake and the second EHLO, driven by the
//! [`DeliveryAttempt`] machine.

use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio_rustls::TlsConnector;

use super::lines::LineReader;
use super::stream::SmtpStream;
use super::timeouts::{Deadline, Timeouts};
use crate::delivery::{
    DaneOutcome, Decision, DeliveryAction, DeliveryAttempt, DeliveryEvent, EhloOutcome,
    HandshakeOutcome, PkixOutcome, Step,
};
use crate::error::{Error, IoKind};
use crate::plan::PlanVerifier;
use crate::smtp::{EhloCapabilities, Reply, ReplyAccumulator};

/// Settings of the delivery-side driver.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ClientSettings {
    /// Our name in EHLO/HELO.
    pub ehlo_name: String,
    /// The name sent as SNI (the plan's [`crate::plan::HopPlan::server_name`]).
    pub server_name: ServerName<'static>,
    /// The hop plan's verifier, recording its verdict and letting the handshake go on
    /// ([`PlanVerifier::record_and_continue`]): PKIX and DANE run once per handshake and the
    /// machine decides on the [`crate::plan::PeerVerdict`].
    pub verifier: Arc<PlanVerifier>,
    /// The certificate presented on all outgoing TLS connections (global setting), if any.
    pub client_certificate: Option<(Vec<CertificateDer<'static>>, Arc<PrivateKeyDer<'static>>)>,
    /// Timeouts.
    pub timeouts: Timeouts,
}

impl ClientSettings {
    /// Settings with no client certificate and default timeouts; `verifier` (of the plan whose
    /// [`crate::plan::HopPlan::attempt`] is negotiated) is set to record and continue.
    /// [`crate::plan::HopPlan::client_settings`] builds them from the plan.
    pub fn new(
        ehlo_name: impl Into<String>,
        server_name: ServerName<'static>,
        verifier: PlanVerifier,
    ) -> Self {
        Self {
            ehlo_name: ehlo_name.into(),
            server_name,
            verifier: Arc::new(verifier.record_and_continue()),
            client_certificate: None,
            timeouts: Timeouts::default(),
        }
    }

    /// Sets the timeouts.
    pub fn with_timeouts(mut self, t: Timeouts) -> Self {
        self.timeouts = t;
        self
    }

    /// Sets the client certificate.
    pub fn with_client_certificate(
        mut self,
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Self {
        self.client_certificate = Some((chain, Arc::new(key)));
        self
    }
}

/// The TLS session's parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TlsSummary {
    /// e.g. `TLSv1_3`.
    pub protocol: String,
    /// e.g. `TLS13_AES_256_GCM_SHA384`.
    pub cipher_suite: String,
    /// Subject DN of each presented certificate, end entity first.
    pub peer_chain_subjects: Vec<String>,
    /// The PKIX verdict.
    pub pkix: PkixOutcome,
    /// The DANE verdict, when computed.
    pub dane: Option<DaneOutcome>,
}

/// What happened on the wire, for logs and `tlsverify`-style reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Transcript {
    /// The greeting's first line.
    pub greeting: String,
    /// Capabilities from the first EHLO (None when EHLO was refused).
    pub ehlo_before_tls: Option<EhloCapabilities>,
    /// EHLO was refused and HELO used.
    pub helo_fallback: bool,
    /// The STARTTLS reply code and first line, if STARTTLS was sent.
    pub starttls_reply: Option<(u16, String)>,
    /// Bytes the server sent after its STARTTLS reply and before the handshake, discarded
    /// (response injection).
    pub discarded_after_starttls: usize,
    /// The TLS session, if established.
    pub tls: Option<TlsSummary>,
    /// The handshake error, if it failed.
    pub handshake_error: Option<String>,
    /// Capabilities from the EHLO re-sent inside TLS (RFC 3207 §4.2).
    pub ehlo_after_tls: Option<EhloCapabilities>,
}

/// A connection ready for the mail transaction.
#[derive(Debug)]
#[non_exhaustive]
pub struct ClientConnection<S> {
    /// The transport (TLS or, where the policy allowed it, plaintext).
    pub stream: SmtpStream<S>,
    /// Bytes read past the last reply (a pipelining server's early bytes), kept for the caller.
    pub reader: LineReader,
    /// The capabilities in force (the post-TLS EHLO's when TLS is up).
    pub capabilities: Option<EhloCapabilities>,
}

/// The result of [`negotiate`].
#[derive(Debug)]
#[non_exhaustive]
pub struct ClientOutcome<S> {
    /// The machine's decision.
    pub decision: Decision,
    /// What happened.
    pub transcript: Transcript,
    /// The connection to deliver over, for [`DeliveryAction::ContinueTls`] and
    /// [`DeliveryAction::ContinuePlaintext`]; `None` otherwise (the connection was closed).
    pub connection: Option<ClientConnection<S>>,
}

struct Io<S> {
    stream: SmtpStream<S>,
    reader: LineReader,
    timeouts: Timeouts,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Io<S> {
    async fn send(&mut self, line: &str, phase: &'static str) -> Result<(), Error> {
        let t = self.timeouts.command;
        let fut = async {
            self.stream.write_all(line.as_bytes()).await?;
            self.stream.flush().await
        };
        match tokio::time::timeout(t, fut).await {
            Ok(r) => r.map_err(|e| Error::Io {
                phase,
                kind: IoKind(e.kind()),
            }),
            Err(_) => Err(Error::Timeout {
                phase,
                seconds: t.as_secs(),
            }),
        }
    }

    async fn reply(&mut self, phase: &'static str, greeting: bool) -> Result<Reply, Error> {
        let t = if greeting {
            self.timeouts.greeting
        } else {
            self.timeouts.command
        };
        // One deadline for the whole reply, however many lines it has (RFC 5321 §4.5.3.2
        // times the reply; a fresh timeout per line would let a tarpit hold the connection
        // for up to MAX_REPLY_LINES times as long).
        let mut deadline = Deadline::new(t);
        let mut acc = ReplyAccumulator::new();
        loop {
            let line = self
                .reader
                .read_line_by(&mut self.stream, &mut deadline, phase)
                .await?;
            if let Some(r) = acc.push_line(line)? {
                return Ok(r);
            }
        }
    }

    async fn quit(&mut self) {
        if self.send("QUIT\r\n", "QUIT").await.is_ok() {
            let _ = self.reply("QUIT", false).await;
        }
        let _ = self.stream.shutdown().await;
    }
}

/// Runs the TLS negotiation of one delivery connection on an already-connected `stream`.
///
/// Order: read the `220` greeting; EHLO (HELO on a `5yz` reply → no ESMTP); ask the machine; if
/// it says so, STARTTLS; on `220`, discard everything the server sent after that reply
/// (response injection), handshake (the plan verifier's verdict — PKIX, and DANE when
/// required — is recorded), ask the machine; on [`DeliveryAction::ContinueTls`] re-send EHLO inside TLS.
///
/// The decision's events are logged with `tracing`. When the decision is not to continue on
/// this connection, QUIT is sent (over TLS if established) and the connection is closed.
/// SMTP-level failures before any TLS decision (greeting not `220`, HELO refused, I/O errors,
/// timeouts, malformed replies) are errors: the caller treats them like a failed connection.
pub async fn negotiate<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    mut attempt: DeliveryAttempt,
    settings: &ClientSettings,
) -> Result<ClientOutcome<S>, Error> {
    let mut transcript = Transcript::default();
    let mut io = Io {
        stream: SmtpStream::Plain(stream),
        reader: LineReader::new(),
        timeouts: settings.timeouts,
    };
    if let Some(decision) = attempt.preflight() {
        io.quit().await;
        return Ok(finish(decision, transcript, None));
    }
    let greeting = io.reply("greeting", true).await?;
    transcript.greeting = greeting.first_line();
    if greeting.code != 220 {
        return Err(Error::SmtpReply {
            command: "greeting",
            code: greeting.code,
            text: greeting.first_line(),
        });
    }
    io.send(&format!("EHLO {}\r\n", settings.ehlo_name), "EHLO")
        .await?;
    let ehlo = io.reply("EHLO", false).await?;
    let (ehlo_outcome, caps) = if ehlo.code == 250 {
        let caps = EhloCapabilities::from_reply(&ehlo)?;
        (
            EhloOutcome::Esmtp {
                starttls: caps.starttls,
            },
            Some(caps),
        )
    } else if ehlo.is_permanent() {
        // RFC 5321 §3.2 / §4.1.4: a server that does not understand EHLO gets HELO.
        transcript.helo_fallback = true;
        io.send(&format!("HELO {}\r\n", settings.ehlo_name), "HELO")
            .await?;
        let helo = io.reply("HELO", false).await?;
        if helo.code != 250 {
            return Err(Error::SmtpReply {
                command: "HELO",
                code: helo.code,
                text: helo.first_line(),
            });
        }
        (EhloOutcome::NoEsmtp, None)
    } else {
        return Err(Error::SmtpReply {
            command: "EHLO",
            code: ehlo.code,
            text: ehlo.first_line(),
        });
    };
    transcript.ehlo_before_tls = caps.clone();

    match attempt.on_ehlo(ehlo_outcome) {
        Step::Done(d) => return Ok(conclude(io, d, transcript, caps).await),
        Step::SendStartTls => {}
        Step::StartHandshake => {
            return Err(Error::StateViolation {
                what: "handshake before STARTTLS",
            });
        }
    }
    io.send("STARTTLS\r\n", "STARTTLS").await?;
    let r = io.reply("STARTTLS", false).await?;
    transcript.starttls_reply = Some((r.code, r.first_line()));
    match attempt.on_starttls_reply(r.code) {
        Step::Done(d) => return Ok(conclude(io, d, transcript, caps).await),
        Step::StartHandshake => {}
        Step::SendStartTls => {
            return Err(Error::StateViolation {
                what: "STARTTLS twice",
            });
        }
    }
    // Response injection: nothing the server sent before the handshake may be read later.
    transcript.discarded_after_starttls = io.reader.discard();

    let config = client_config(settings)?;
    let Io {
        stream,
        reader,
        timeouts,
    } = io;
    let SmtpStream::Plain(plain) = stream else {
        return Err(Error::StateViolation {
            what: "STARTTLS inside TLS",
        });
    };
    let connector = TlsConnector::from(Arc::new(config));
    let handshake = tokio::time::timeout(
        timeouts.handshake,
        connector.connect(settings.server_name.clone(), plain),
    )
    .await;
    let tls = match handshake {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => return handshake_failed(&mut attempt, transcript, e.to_string()),
        Err(_) => return handshake_failed(&mut attempt, transcript, "timeout".into()),
    };
    let conn = tls.get_ref().1;
    let chain: Vec<CertificateDer<'static>> = conn
        .peer_certificates()
        .map(|c| c.iter().map(|c| c.clone().into_owned()).collect())
        .unwrap_or_default();
    // The verdict the verifier recorded for this chain in the handshake (PKIX and DANE once).
    let verdict = settings.verifier.verdict_for_chain(&chain);
    let (pkix, dane) = (verdict.pkix.clone(), verdict.dane.clone());
    transcript.tls = Some(TlsSummary {
        protocol: conn
            .protocol_version()
            .map(|v| format!("{v:?}"))
            .unwrap_or_default(),
        cipher_suite: conn
            .negotiated_cipher_suite()
            .map(|s| format!("{:?}", s.suite()))
            .unwrap_or_default(),
        peer_chain_subjects: chain.iter().map(|c| subject(c)).collect(),
        pkix,
        dane,
    });
    let Step::Done(decision) = attempt.on_handshake(verdict.handshake_outcome()) else {
        return Err(Error::StateViolation {
            what: "machine not done after handshake",
        });
    };
    let mut io = Io {
        stream: SmtpStream::ClientTls(Box::new(tls)),
        reader,
        timeouts,
    };
    if decision.action != DeliveryAction::ContinueTls {
        return Ok(conclude(io, decision, transcript, None).await);
    }
    // RFC 3207 §4.2: discard knowledge from before TLS; EHLO again.
    io.send(
        &format!("EHLO {}\r\n", settings.ehlo_name),
        "EHLO after TLS",
    )
    .await?;
    let ehlo = io.reply("EHLO after TLS", false).await?;
    let caps = EhloCapabilities::from_reply(&ehlo)?;
    transcript.ehlo_after_tls = Some(caps.clone());
    Ok(conclude(io, decision, transcript, Some(caps)).await)
}

/// After a failed handshake the connection is dead: it is dropped, never reused.
fn handshake_failed<S>(
    attempt: &mut DeliveryAttempt,
    mut transcript: Transcript,
    detail: String,
) -> Result<ClientOutcome<S>, Error> {
    transcript.handshake_error = Some(detail.clone());
    match attempt.on_handshake(HandshakeOutcome::Failed { detail }) {
        Step::Done(d) => Ok(finish(d, transcript, None)),
        _ => Err(Error::StateViolation {
            what: "machine not done after handshake",
        }),
    }
}

async fn conclude<S: AsyncRead + AsyncWrite + Unpin>(
    mut io: Io<S>,
    decision: Decision,
    transcript: Transcript,
    capabilities: Option<EhloCapabilities>,
) -> ClientOutcome<S> {
    match decision.action {
        DeliveryAction::ContinueTls | DeliveryAction::ContinuePlaintext(_) => {
            let conn = ClientConnection {
                stream: io.stream,
                reader: io.reader,
                capabilities,
            };
            finish(decision, transcript, Some(conn))
        }
        _ => {
            io.quit().await;
            finish(decision, transcript, None)
        }
    }
}

fn finish<S>(
    decision: Decision,
    transcript: Transcript,
    connection: Option<ClientConnection<S>>,
) -> ClientOutcome<S> {
    for e in &decision.events {
        match e {
            DeliveryEvent::TlsRequiredButUnavailable { domain, reason } => {
                tracing::warn!(%domain, %reason, "delivery: TLS required but could not be used")
            }
            DeliveryEvent::Alert(a) => tracing::warn!(alert = %a, "delivery: alert"),
            other => tracing::info!(event = ?other, "delivery"),
        }
    }
    tracing::debug!(action = decision.action.as_str(), reason = %decision.reason, "delivery decision");
    ClientOutcome {
        decision,
        transcript,
        connection,
    }
}

fn client_config(settings: &ClientSettings) -> Result<rustls::ClientConfig, Error> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::TlsHandshake {
            detail: e.to_string(),
        })?
        .dangerous()
        .with_custom_certificate_verifier(settings.verifier.clone());
    match &settings.client_certificate {
        Some((chain, key)) => builder
            .with_client_auth_cert(chain.clone(), key.clone_key())
            .map_err(|e| Error::TlsHandshake {
                detail: e.to_string(),
            }),
        None => Ok(builder.with_no_client_auth()),
    }
}

fn subject(der: &CertificateDer<'_>) -> String {
    match x509_parser::parse_x509_certificate(der.as_ref()) {
        Ok((_, c)) => c.subject().to_string(),
        Err(_) => "<unparsable certificate>".into(),
    }
}
