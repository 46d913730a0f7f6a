//! rustls configurations from the store: a listener's `ServerConfig` (its certificate and
//! chain) and, for delivery, the `RootCertStore` / `ClientConfig` of the enabled CA lists.
//! The crypto provider is aws-lc-rs, the only one in this project.

use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, RootCertStore, ServerConfig};

use crate::error::{Error, Result};
use crate::store::CertStore;

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn tls(e: rustls::Error) -> Error {
    Error::Tls(e.to_string())
}

impl CertStore {
    /// The certificate, chain and signing key of `name`, ready for a certificate resolver.
    pub fn certified_key(&self, name: &str) -> Result<Arc<CertifiedKey>> {
        let c = self.get(name)?;
        let ck = CertifiedKey::from_der(c.chain, c.key.to_rustls(), &provider()).map_err(tls)?;
        Ok(Arc::new(ck))
    }

    /// A server configuration presenting certificate `name` and its intermediates.
    pub fn server_config(&self, name: &str) -> Result<Arc<ServerConfig>> {
        let c = self.get(name)?;
        let config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(tls)?
            .with_no_client_auth()
            .with_single_cert(c.chain, c.key.to_rustls())
            .map_err(tls)?;
        Ok(Arc::new(config))
    }

    /// The server configuration of the certificate assigned to `listener`.
    pub fn listener_server_config(&self, listener: &str) -> Result<Arc<ServerConfig>> {
        let name = self
            .listener_certificate(listener)
            .ok_or_else(|| Error::Unassigned {
                listener: listener.into(),
            })?;
        self.server_config(name)
    }

    /// The trust anchors of the enabled lists (seed: "you can also use both lists").
    pub fn root_store(&self) -> Result<RootCertStore> {
        let s = &self.settings;
        if !s.system_ca_enabled && !s.custom_ca_enabled {
            return Err(Error::NoCaListEnabled);
        }
        let mut roots = RootCertStore::empty();
        if s.system_ca_enabled {
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        }
        if s.custom_ca_enabled {
            if self.custom_ca.is_empty() && !s.system_ca_enabled {
                return Err(Error::CustomCaListEmpty);
            }
            for cert in &self.custom_ca {
                roots
                    .add(cert.clone())
                    .map_err(|e| Error::InvalidCertificate {
                        reason: e.to_string(),
                    })?;
            }
        }
        Ok(roots)
    }

    /// A client configuration for delivery: the enabled CA lists as roots and, when a
    /// certificate is assigned to all outgoing TLS connections, that certificate as client
    /// certificate.
    pub fn client_config(&self) -> Result<Arc<ClientConfig>> {
        let builder = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(tls)?
            .with_root_certificates(self.root_store()?);
        let config = match self.outgoing_certificate() {
            Some(name) => {
                let c = self.get(name)?;
                builder
                    .with_client_auth_cert(c.chain, c.key.to_rustls())
                    .map_err(tls)?
            }
            None => builder.with_no_client_auth(),
        };
        Ok(Arc::new(config))
    }
}
