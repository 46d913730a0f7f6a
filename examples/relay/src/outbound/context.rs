//! Everything a delivery task shares: configuration, destination controls, resolver, trust
//! anchors, client certificate, spool and queue.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use smtp_tls_policy::chain::TrustAnchors;
use smtp_tls_policy::destination::DestinationControls;

use super::OutboundHandle;
use super::config::OutboundConfig;
use super::dns::Dns;
use super::error::OutboundError;
use super::sts::Sts;
use crate::local::Maildir;
use crate::state::{StateError, StateStore};
use crate::{MessageId, Queue, Spool};

/// The client certificate presented on outgoing TLS connections.
pub(crate) type ClientCert = (Vec<CertificateDer<'static>>, Arc<PrivateKeyDer<'static>>);

pub(crate) struct Context {
    pub(crate) config: OutboundConfig,
    pub(crate) controls: DestinationControls,
    pub(crate) dns: Dns,
    pub(crate) anchors: Arc<TrustAnchors>,
    /// MTA-STS discovery and its policy cache (`None`: `delivery.mta_sts.enabled = false`).
    pub(crate) sts: Option<Sts>,
    /// The state shared with other relays through `[state]`: the MTA-STS policy cache (in
    /// `sts`) and the TLS-RPT report counters.
    #[allow(dead_code, reason = "read by the TLS-RPT recorder (issue 14)")]
    pub(crate) state: Arc<StateStore>,
    /// TLS-RPT: counts each connection attempt's outcome (`[tlsrpt] enabled`).
    pub(crate) tlsrpt: Option<crate::tlsrpt::Recorder>,
    pub(crate) client_cert: Option<ClientCert>,
    pub(crate) spool: Spool,
    pub(crate) maildir: Maildir,
    pub(crate) handle: OutboundHandle,
    queue: Mutex<Queue>,
    /// Last alert message per destination domain (rate limit).
    pub(crate) alerts_sent: Mutex<HashMap<String, Instant>>,
    /// Serialises the spool updates of one message (jobs of several destinations may finish at
    /// once; the later snapshot must be written last).
    locks: Mutex<HashMap<MessageId, Arc<tokio::sync::Mutex<()>>>>,
}

impl Context {
    pub(crate) async fn new(
        config: OutboundConfig,
        spool: Spool,
        certs: Option<&cert_store::CertStore>,
        handle: OutboundHandle,
    ) -> Result<Self, OutboundError> {
        let controls = config.load_destination_controls()?;
        let anchors = Arc::new(trust_anchors(certs)?);
        let client_cert = client_certificate(&config, &controls, certs)?;
        // `state.dir` unset: `state` next to the spool directory
        let mut state_config = config.state.clone();
        state_config.dir = Some(state_config.dir_next_to(spool.dir()));
        let state =
            StateStore::open(&state_config, config.mta_sts.cache_dir()).map_err(|e| match e {
                StateError::Policy(e) => {
                    OutboundError::invalid("delivery.mta_sts.cache_dir", e.to_string())
                }
                e => OutboundError::invalid("state", e.to_string()),
            })?;
        let state = Arc::new(state);
        let sts = if config.delivers_everything_locally() {
            None
        } else {
            Sts::new(&config.mta_sts, &anchors, state.policies())?
        };
        let mut dns = Dns::new(&config.resolver)?.with_mx_port(config.mx_port);
        if config.delivers_everything_locally() {
            // the catch-all (the embedded default): DNS is never asked, so no probe either
            tracing::info!(
                resolver = config.resolver.mode.as_str(),
                "every domain is delivered locally: no DNS lookups, no validation probe"
            );
        } else {
            dns.spawn_probe(&config.resolver);
        }
        let tlsrpt = config.tlsrpt.enabled.then(|| {
            crate::tlsrpt::Recorder::start(
                state.counters().clone(),
                config.tlsrpt.report_interval_secs,
                crate::tlsrpt::DEFAULT_CAPACITY,
            )
        });
        let queue = Queue::new(config.retry.policy()?);
        let maildir = Maildir::new(&config.maildir);
        Ok(Self {
            config,
            controls,
            dns,
            anchors,
            sts,
            state,
            tlsrpt,
            client_cert,
            spool,
            maildir,
            handle,
            queue: Mutex::new(queue),
            alerts_sent: Mutex::new(HashMap::new()),
            locks: Mutex::new(HashMap::new()),
        })
    }

    /// The queue (never held across an `.await`).
    pub(crate) fn lock_queue(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The per-message lock for spool updates.
    pub(crate) fn message_lock(&self, id: &MessageId) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(PoisonError::into_inner);
        locks.retain(|_, l| Arc::strong_count(l) > 1);
        locks.entry(id.clone()).or_default().clone()
    }
}

/// The cert store's enabled CA lists (seed "Managing Lists of Certificate Authorities"), or
/// Mozilla's list without a store.
fn trust_anchors(certs: Option<&cert_store::CertStore>) -> Result<TrustAnchors, OutboundError> {
    let Some(store) = certs else {
        return Ok(TrustAnchors::mozilla());
    };
    TrustAnchors::from_cert_store(store)
        .map_err(|e| OutboundError::invalid("certificate store custom CA list", e.to_string()))
}

/// The outgoing certificate: `delivery.outgoing_certificate`, else the destination controls'
/// global `client-certificate`, else the store's assignment for all outgoing connections.
fn client_certificate(
    config: &OutboundConfig,
    controls: &DestinationControls,
    certs: Option<&cert_store::CertStore>,
) -> Result<Option<ClientCert>, OutboundError> {
    let name = config
        .outgoing_certificate
        .clone()
        .or_else(|| controls.global().client_certificate.clone())
        .or_else(|| certs.and_then(|s| s.outgoing_certificate().map(str::to_owned)));
    let Some(name) = name else {
        return Ok(None);
    };
    let Some(store) = certs else {
        return Err(OutboundError::Certificate {
            name,
            reason: "no certificate store configured".into(),
        });
    };
    let c = store.get(&name).map_err(|e| OutboundError::Certificate {
        name: name.clone(),
        reason: e.to_string(),
    })?;
    Ok(Some((c.chain.clone(), Arc::new(c.key().to_rustls()))))
}
