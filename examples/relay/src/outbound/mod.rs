//! The outbound half of the relay: the delivery engine.
//!
//! A queue runner owns the retry [`Queue`](crate::Queue): it takes the due jobs (one
//! message's pending recipients at one destination domain), groups them by destination and
//! starts at most `max_connections_per_destination` delivery tasks per destination and at most
//! `max_concurrent_deliveries` over all destinations (while others wait, no destination beyond
//! its fair share of the cap; see `runner`), each delivering up to
//! `max_messages_per_connection` messages over one connection (RSET between them) within one
//! wall-clock limit, `max_session_secs`.
//!
//! Per destination: a local domain goes to the maildir ([`crate::local`]); a domain with an
//! SMTP route goes to the route's hosts in order; any other domain to its MX hosts (RFC 5321
//! §5.1: no MX → the domain's own address records; RFC 7505 null MX → bounce). Per connection
//! attempt, smtp-tls-policy's delivery machine decides STARTTLS, verification, plaintext retry,
//! defer and bounce from the destination control's TLS mode and DANE setting and dane-verify's
//! RFC 7672 decision for the host.
//!
//! After each attempt the per-recipient state is written to the spool (fsynced) before the next
//! message; bounced or expired recipients get a DSN (RFC 3464) spooled to the sender, a failed
//! required-TLS connection an alert.

mod alert;
mod config;
mod connect;
pub(crate) mod context;
mod deliver;
mod dns;
mod error;
mod persist;
mod runner;
mod sts;
mod sts_config;
mod transaction;

use std::sync::Arc;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

pub(crate) use config::upstream_source_text;
pub use config::{
    AlertConfig, DEFAULT_MAX_CONCURRENT_DELIVERIES, DEFAULT_MAX_SESSION_SECS, MAX_ROUTE_HOSTS,
    MAX_ROUTES, OutboundConfig, ResolverConfig, ResolverMode, RetryConfig, RouteConfig, RouteHop,
    SMTP_PORT,
};
pub use error::OutboundError;
pub use sts_config::{DEFAULT_MTA_STS_CACHE_DIR, DEFAULT_POLICY_PORT, MtaStsConfig};

use crate::{Envelope, Spool};

/// The running delivery engine (see the module documentation). Created by
/// [`Outbound::start`]; it runs until the shutdown signal.
#[derive(Debug)]
#[non_exhaustive]
pub struct Outbound;

/// Hands accepted messages to the delivery engine. Cheap to clone.
#[derive(Debug, Clone)]
pub struct OutboundHandle {
    tx: mpsc::UnboundedSender<Envelope>,
}

impl Outbound {
    /// Starts the queue runner. `recovered` = the envelopes of `Spool::open`'s `Recovery`;
    /// `certs` = the certificate store (trust anchors of its enabled CA lists, the outgoing
    /// client certificate); without it Mozilla's list is trusted.
    ///
    /// When `shutdown` becomes `true` the runner takes no new job, lets the deliveries in
    /// flight finish (each stops after its current message) and returns; the spool stays.
    pub async fn start(
        config: OutboundConfig,
        spool: Spool,
        recovered: Vec<Envelope>,
        certs: Option<Arc<cert_store::CertStore>>,
        shutdown: watch::Receiver<bool>,
    ) -> Result<(OutboundHandle, JoinHandle<()>), OutboundError> {
        config.validate()?;
        let (tx, rx) = mpsc::unbounded_channel();
        let handle = OutboundHandle { tx };
        let ctx = context::Context::new(config, spool, certs.as_deref(), handle.clone()).await?;
        let ctx = Arc::new(ctx);
        let mut done = Vec::new();
        {
            let mut queue = ctx.lock_queue();
            for env in recovered {
                // Every recipient already final (a crash between the envelope update and the
                // removal): only the removal is left; no job would ever remove it.
                if env.is_done() {
                    done.push(env.id);
                } else {
                    queue.insert(env);
                }
            }
        }
        for id in done {
            if let Err(e) = ctx.spool.remove(&id).await {
                tracing::error!(%id, error = %e, "spool remove of a finished message failed");
            }
        }
        crate::tlsrpt::spawn_reporter(Arc::clone(&ctx), shutdown.clone());
        let task = tokio::spawn(runner::run(ctx, rx, shutdown));
        Ok((handle, task))
    }
}

impl OutboundHandle {
    /// Hands a message that was just accepted into the spool (fsynced) to delivery. If the
    /// engine has stopped, the message stays in the spool and is recovered at the next start.
    pub fn enqueue(&self, envelope: Envelope) {
        if self.tx.send(envelope).is_err() {
            tracing::debug!("delivery engine stopped; message stays in the spool");
        }
    }
}
