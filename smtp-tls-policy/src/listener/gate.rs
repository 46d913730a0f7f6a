//! The per-connection gate state machine.

use smtp_proto::Request;

use super::events::{CloseReason, ListenerEvent};
use super::plaintext::PlaintextRecipients;
use crate::smtp::{CommandKind, ParsedCommand};
/// The listener TLS setting of the HAT's mail flow policy (seed Table 1): one type with
/// `hat_match`, so a HAT verdict feeds the gate as is.
pub use hat_match::ListenerTls;

/// A fixed reply the gate sends in place of the application.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct GateReply {
    /// Reply code.
    pub code: u16,
    /// Enhanced status code (RFC 3463) and text.
    pub text: &'static str,
}

impl GateReply {
    /// `220 2.0.0 Ready to start TLS` (RFC 3207 §4).
    pub const READY_TO_START_TLS: Self = Self {
        code: 220,
        text: "2.0.0 Ready to start TLS",
    };
    /// `530 5.7.0 Must issue a STARTTLS command first` (RFC 3207 §4).
    pub const MUST_ISSUE_STARTTLS: Self = Self {
        code: 530,
        text: "5.7.0 Must issue a STARTTLS command first",
    };
    /// `454 4.7.0 TLS not available due to temporary reason` (RFC 3207 §4).
    pub const TLS_NOT_AVAILABLE: Self = Self {
        code: 454,
        text: "4.7.0 TLS not available due to temporary reason",
    };
    /// `502 5.5.1 Command not implemented`: STARTTLS on a listener with TLS `no`, where it is
    /// not advertised (RFC 5321 §4.2.4).
    pub const NOT_IMPLEMENTED: Self = Self {
        code: 502,
        text: "5.5.1 Command not implemented",
    };
    /// `503 5.5.1 TLS already active`: a second STARTTLS inside TLS (RFC 3207 §4.2).
    pub const TLS_ALREADY_ACTIVE: Self = Self {
        code: 503,
        text: "5.5.1 TLS already active",
    };
    /// `503 5.5.1 Send EHLO first`: STARTTLS before EHLO, or a mail transaction command before
    /// HELO/EHLO (after STARTTLS the client must greet again, RFC 3207 §4.2).
    pub const SEND_EHLO_FIRST: Self = Self {
        code: 503,
        text: "5.5.1 Send EHLO first",
    };
    /// `501 5.5.4 Syntax error`: STARTTLS takes no parameters (RFC 3207 §4).
    pub const SYNTAX_ERROR: Self = Self {
        code: 501,
        text: "5.5.4 Syntax error",
    };

    /// The reply as sent on the wire.
    pub fn to_wire(self) -> String {
        format!("{} {}\r\n", self.code, self.text)
    }
}

/// What the server does with a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
#[non_exhaustive]
pub enum GateVerdict {
    /// The gate has no objection; the application handles the command. For `EHLO`,
    /// `advertise_starttls` says whether to list `STARTTLS` in the reply.
    Proceed {
        /// List `STARTTLS` among the EHLO extensions.
        advertise_starttls: bool,
    },
    /// Send this reply and do not execute the command.
    Refuse(GateReply),
    /// Send [`GateReply::READY_TO_START_TLS`], **discard every byte already buffered from the
    /// client**, then run the TLS handshake and report it with [`Gate::handshake_succeeded`] or
    /// [`Gate::handshake_failed`].
    StartTls,
}

/// Where the connection is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum GatePhase {
    /// Plaintext SMTP.
    Plaintext,
    /// `220` sent; the TLS handshake is running.
    Handshaking,
    /// TLS established.
    Tls,
    /// The connection is over.
    Closed,
}

/// Whether the listener has a certificate to offer. Without one, STARTTLS is neither advertised
/// nor accepted (`454 4.7.0`, RFC 3207 §4). The default is the least capable value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum ListenerCertificate {
    /// A certificate is configured: STARTTLS can be offered.
    Configured,
    /// No certificate is configured.
    #[default]
    Missing,
}

/// The per-connection STARTTLS gate.
///
/// ```
/// use smtp_tls_policy::listener::{Gate, GateReply, GateVerdict, ListenerCertificate, ListenerTls};
/// use smtp_tls_policy::smtp::CommandKind;
///
/// let mut gate = Gate::new(ListenerTls::Required, ListenerCertificate::Configured);
/// assert_eq!(gate.on_command(CommandKind::Ehlo), GateVerdict::Proceed { advertise_starttls: true });
/// assert_eq!(gate.on_command(CommandKind::Mail), GateVerdict::Refuse(GateReply::MUST_ISSUE_STARTTLS));
/// assert_eq!(gate.on_command(CommandKind::StartTls), GateVerdict::StartTls);
/// gate.handshake_succeeded();
/// // RFC 3207 §4.2: the SMTP state is reset; the client must EHLO again.
/// assert_eq!(gate.on_command(CommandKind::Mail), GateVerdict::Refuse(GateReply::SEND_EHLO_FIRST));
/// ```
#[derive(Debug, Clone)]
pub struct Gate {
    tls: ListenerTls,
    certificate_configured: bool,
    phase: GatePhase,
    greeted: bool,
    ehlo_seen: bool,
    must_issue_count: u32,
    recipients: u32,
    plaintext_recipients: PlaintextRecipients,
    /// Exempt recipients let through before TLS since the last MAIL, RSET or greeting.
    plaintext_rcpts: u32,
    events: Vec<ListenerEvent>,
}

impl Gate {
    /// A gate for a new connection whose mail flow policy says `tls`; `certificate` says whether
    /// the listener has a certificate (without one STARTTLS gets `454`, and is not advertised).
    pub fn new(tls: ListenerTls, certificate: ListenerCertificate) -> Self {
        let certificate_configured = certificate == ListenerCertificate::Configured;
        let mut events = Vec::new();
        if tls == ListenerTls::Required {
            events.push(ListenerEvent::TlsRequired);
        }
        Self {
            tls,
            certificate_configured,
            phase: GatePhase::Plaintext,
            greeted: false,
            ehlo_seen: false,
            must_issue_count: 0,
            recipients: 0,
            plaintext_recipients: PlaintextRecipients::default(),
            plaintext_rcpts: 0,
            events,
        }
    }

    /// Lets mail for `recipients` (the TLS-RPT mailboxes, RFC 8460 §3) through before STARTTLS
    /// on a listener with TLS `required`; no effect with `preferred` or `no`, nor once TLS is
    /// up. Before TLS, with a non-empty set:
    ///
    /// - `HELO`, `MAIL` and `RSET` proceed (`AUTH` and everything else still get `530`);
    /// - `RCPT` proceeds only for a recipient in the set, read by the gate itself from the parsed
    ///   command given to [`Gate::on_parsed_command`] (a bare [`Gate::on_command`] has no
    ///   address: `530`); any other recipient gets `530 5.7.0`;
    /// - `DATA`/`BDAT` proceed only after at least one exempt `RCPT` in the transaction — every
    ///   recipient the application can hold then is exempt, since the others never reached it.
    ///
    /// Each exempt recipient let through records
    /// [`ListenerEvent::PlaintextRecipientAllowed`]. An empty set changes nothing.
    ///
    /// ```
    /// use smtp_tls_policy::listener::{Gate, GateReply, GateVerdict, ListenerCertificate,
    ///     ListenerTls, PlaintextRecipients};
    /// use smtp_tls_policy::smtp::parse_command;
    ///
    /// let reports = PlaintextRecipients::new(["tlsrpt@example.org"]).unwrap();
    /// let mut gate = Gate::new(ListenerTls::Required, ListenerCertificate::Configured)
    ///     .with_plaintext_recipients(reports);
    /// let mut send = |line: &str| gate.on_parsed_command(&parse_command(line.as_bytes()).unwrap());
    /// let proceed = GateVerdict::Proceed { advertise_starttls: false };
    /// assert_eq!(send("EHLO client.example\r\n"), GateVerdict::Proceed { advertise_starttls: true });
    /// assert_eq!(send("MAIL FROM:<reporter@example.net>\r\n"), proceed);
    /// assert_eq!(send("RCPT TO:<tlsrpt@example.org>\r\n"), proceed);
    /// assert_eq!(send("RCPT TO:<user@example.org>\r\n"),
    ///     GateVerdict::Refuse(GateReply::MUST_ISSUE_STARTTLS));
    /// assert_eq!(send("DATA\r\n"), proceed);
    /// ```
    pub fn with_plaintext_recipients(mut self, recipients: PlaintextRecipients) -> Self {
        self.plaintext_recipients = recipients;
        self
    }

    /// The listener TLS setting.
    pub fn tls_setting(&self) -> ListenerTls {
        self.tls
    }

    /// The current phase.
    pub fn phase(&self) -> GatePhase {
        self.phase
    }

    /// Whether TLS is established.
    pub fn tls_active(&self) -> bool {
        self.phase == GatePhase::Tls
    }

    /// Whether the client has greeted (HELO/EHLO) since the connection or the last handshake.
    pub fn greeted(&self) -> bool {
        self.greeted
    }

    fn starttls_available(&self) -> bool {
        self.tls != ListenerTls::No && self.certificate_configured
    }

    /// Decides about one command (RFC 3207 §4, seed Table 1). Without its arguments, an `RCPT`
    /// is never one of the [plaintext recipients](Gate::with_plaintext_recipients): use
    /// [`Gate::on_parsed_command`] when they are configured.
    pub fn on_command(&mut self, command: CommandKind) -> GateVerdict {
        self.decide(command, None)
    }

    /// Like [`Gate::on_command`], with the parsed command: the `RCPT TO` address is checked
    /// against the [plaintext recipients](Gate::with_plaintext_recipients). A `STARTTLS` that
    /// carries parameters is the caller's to refuse ([`Gate::on_starttls_with_parameters`]).
    pub fn on_parsed_command(&mut self, command: &ParsedCommand) -> GateVerdict {
        let recipient = match &command.request {
            Ok(Request::Rcpt { to }) => Some(to.address.as_str()),
            _ => None,
        };
        self.decide(command.kind, recipient)
    }

    fn decide(&mut self, command: CommandKind, recipient: Option<&str>) -> GateVerdict {
        use CommandKind as C;
        match self.phase {
            GatePhase::Handshaking | GatePhase::Closed => {
                // The driver must not read commands here; anything that arrives is refused.
                return GateVerdict::Refuse(GateReply::SEND_EHLO_FIRST);
            }
            GatePhase::Plaintext | GatePhase::Tls => {}
        }
        let tls_missing = self.tls == ListenerTls::Required && !self.tls_active();
        match command {
            C::Ehlo | C::Lhlo => {
                self.greeted = true;
                self.ehlo_seen = true;
                self.plaintext_rcpts = 0;
                GateVerdict::Proceed {
                    advertise_starttls: self.starttls_available() && !self.tls_active(),
                }
            }
            C::Noop | C::Quit => GateVerdict::Proceed {
                advertise_starttls: false,
            },
            C::StartTls => self.on_starttls(),
            _ if tls_missing && !self.plaintext_recipients.is_empty() => {
                self.plaintext_exception(command, recipient)
            }
            _ if tls_missing => self.must_issue_starttls(command),
            C::Helo => {
                self.greeted = true;
                GateVerdict::Proceed {
                    advertise_starttls: false,
                }
            }
            C::Mail | C::Rcpt | C::Data | C::Bdat | C::Auth if !self.greeted => {
                GateVerdict::Refuse(GateReply::SEND_EHLO_FIRST)
            }
            _ => GateVerdict::Proceed {
                advertise_starttls: false,
            },
        }
    }

    /// RFC 3207 §4: "530 Must issue a STARTTLS command first" to every command other than NOOP,
    /// EHLO, STARTTLS or QUIT — HELO included.
    fn must_issue_starttls(&mut self, command: CommandKind) -> GateVerdict {
        self.must_issue_count += 1;
        self.events
            .push(ListenerEvent::MustIssueStartTlsSent { command });
        GateVerdict::Refuse(GateReply::MUST_ISSUE_STARTTLS)
    }

    /// TLS required, not active, plaintext recipients configured (see
    /// [`Gate::with_plaintext_recipients`]).
    fn plaintext_exception(
        &mut self,
        command: CommandKind,
        recipient: Option<&str>,
    ) -> GateVerdict {
        use CommandKind as C;
        const PROCEED: GateVerdict = GateVerdict::Proceed {
            advertise_starttls: false,
        };
        match command {
            C::Helo => {
                self.greeted = true;
                self.plaintext_rcpts = 0;
                PROCEED
            }
            C::Mail | C::Rcpt | C::Data | C::Bdat if !self.greeted => {
                GateVerdict::Refuse(GateReply::SEND_EHLO_FIRST)
            }
            C::Mail | C::Rset => {
                self.plaintext_rcpts = 0;
                PROCEED
            }
            C::Rcpt => match recipient.and_then(|r| self.plaintext_recipients.get(r)) {
                Some(mailbox) => {
                    self.plaintext_rcpts = self.plaintext_rcpts.saturating_add(1);
                    self.events.push(ListenerEvent::PlaintextRecipientAllowed {
                        recipient: mailbox.to_owned(),
                    });
                    PROCEED
                }
                None => self.must_issue_starttls(command),
            },
            C::Data | C::Bdat if self.plaintext_rcpts > 0 => PROCEED,
            _ => self.must_issue_starttls(command),
        }
    }

    /// Decides about a `STARTTLS` command that carried parameters (RFC 3207 §4: none allowed).
    pub fn on_starttls_with_parameters(&mut self) -> GateVerdict {
        GateVerdict::Refuse(GateReply::SYNTAX_ERROR)
    }

    fn on_starttls(&mut self) -> GateVerdict {
        if self.tls_active() {
            return GateVerdict::Refuse(GateReply::TLS_ALREADY_ACTIVE);
        }
        if self.tls == ListenerTls::No {
            return GateVerdict::Refuse(GateReply::NOT_IMPLEMENTED);
        }
        if !self.certificate_configured {
            self.events.push(ListenerEvent::TlsUnavailable);
            return GateVerdict::Refuse(GateReply::TLS_NOT_AVAILABLE);
        }
        if !self.ehlo_seen {
            // STARTTLS is an ESMTP extension: it exists only once EHLO has advertised it.
            return GateVerdict::Refuse(GateReply::SEND_EHLO_FIRST);
        }
        self.phase = GatePhase::Handshaking;
        GateVerdict::StartTls
    }

    /// The driver discarded `bytes` pipelined after `STARTTLS` (before the handshake).
    pub fn discarded_pipelined(&mut self, bytes: usize) {
        if bytes > 0 {
            self.events
                .push(ListenerEvent::PipelinedPlaintextDiscarded { bytes });
        }
    }

    /// The handshake succeeded: TLS is active and the SMTP state is reset (RFC 3207 §4.2): the
    /// client must greet again, and STARTTLS is no longer advertised.
    pub fn handshake_succeeded(&mut self) {
        if self.phase == GatePhase::Handshaking {
            self.phase = GatePhase::Tls;
            self.greeted = false;
            self.ehlo_seen = false;
            self.plaintext_rcpts = 0;
            self.events.push(ListenerEvent::TlsEstablished);
        }
    }

    /// The handshake failed: the connection cannot continue and is closed.
    pub fn handshake_failed(&mut self, detail: impl Into<String>) {
        let detail = detail.into();
        self.events.push(ListenerEvent::HandshakeFailed {
            detail: detail.clone(),
        });
        self.closed(CloseReason::HandshakeFailed { detail });
    }

    /// The application accepted a recipient (its `RCPT` reply was `250`/`251`).
    pub fn recipient_accepted(&mut self) {
        self.recipients = self.recipients.saturating_add(1);
    }

    /// The connection ended. Records [`ListenerEvent::ClosedWithoutRecipients`] when TLS was
    /// required and no recipient succeeded (seed "Logging", condition 3).
    pub fn closed(&mut self, reason: CloseReason) {
        if self.phase == GatePhase::Closed {
            return;
        }
        let tls_established = self.tls_active();
        self.phase = GatePhase::Closed;
        if self.tls == ListenerTls::Required && self.recipients == 0 {
            self.events.push(ListenerEvent::ClosedWithoutRecipients {
                reason,
                tls_established,
                must_issue_starttls_count: self.must_issue_count,
            });
        }
    }

    /// Takes the events recorded since the last call.
    pub fn take_events(&mut self) -> Vec<ListenerEvent> {
        std::mem::take(&mut self.events)
    }
}
