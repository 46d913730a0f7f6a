//! Start-up of the policy host: the policies validated, each listener's certificate loaded from
//! the store, and the DNS records to publish logged.

use std::sync::Arc;

use cert_store::CertStore;

use super::config::{HttpsListenerConfig, MtaStsPolicyConfig};
use super::route::PolicyTable;
use super::serve::HttpsHost;
use super::{MtaStsHostError, certificate_name, publish_all};

/// One [`HttpsHost`] per listener, in order, each serving every policy. Logs, per policy, the
/// `_mta-sts` TXT record to publish and the host name that must point at the listeners.
pub fn prepare(
    listeners: &[HttpsListenerConfig],
    policies: &[MtaStsPolicyConfig],
    store: &CertStore,
) -> Result<Vec<HttpsHost>, MtaStsHostError> {
    let published = publish_all(policies).map_err(|(_, e)| e)?;
    let table = Arc::new(PolicyTable::new(&published));
    let mut hosts = Vec::with_capacity(listeners.len());
    for l in listeners {
        let certificate = certificate_name(l, Some(store))?;
        let tls =
            store
                .server_config(&certificate)
                .map_err(|source| MtaStsHostError::Certificate {
                    listener: l.name.clone(),
                    certificate: certificate.clone(),
                    source,
                })?;
        tracing::info!(listener = %l.name, address = %l.address, %certificate,
            "MTA-STS policy host: certificate loaded");
        hosts.push(HttpsHost::new(l, &tls, Arc::clone(&table)));
    }
    let addresses: Vec<String> = listeners.iter().map(|l| l.address.to_string()).collect();
    for p in &published {
        tracing::info!(
            domain = p.domain(),
            mode = p.mode().as_str(),
            id = p.id(),
            "MTA-STS policy: publish {}; {} must point at an HTTPS listener ({})",
            p.txt_record(),
            p.policy_host(),
            addresses.join(", ")
        );
    }
    Ok(hosts)
}
