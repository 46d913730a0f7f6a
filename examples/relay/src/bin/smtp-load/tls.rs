//! TLS configuration for both sides of `smtp-load` (rustls, aws-lc-rs provider).

use std::path::Path;
use std::sync::Arc;

use rustls::crypto::{CryptoProvider, aws_lc_rs};
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use smtp_tls_policy::chain::TrustAnchors;
use smtp_tls_policy::destination::DestinationControls;
use smtp_tls_policy::plan::{HopPlan, HostSource, PlanOptions, PlanVerifier, facts_without_dnssec};

fn provider() -> Arc<CryptoProvider> {
    Arc::new(aws_lc_rs::default_provider())
}

/// How the client checks the server's certificate.
pub(crate) enum Trust<'a> {
    /// Mozilla's list (webpki-roots).
    System,
    /// The CA certificates of a PEM file.
    CaFile(&'a Path),
    /// No certificate check at all (`--insecure`); signatures are still verified.
    Insecure,
}

/// A client configuration for the chosen trust; `resumption`: TLS session resumption with
/// rustls' default in-memory cache (tickets from earlier connections of the run), else every
/// handshake is a full one.
pub(crate) fn client_config(
    trust: Trust<'_>,
    resumption: bool,
) -> Result<Arc<ClientConfig>, Box<dyn std::error::Error>> {
    let builder =
        ClientConfig::builder_with_provider(provider()).with_safe_default_protocol_versions()?;
    let mut config = match trust {
        Trust::Insecure => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(no_cert_check()?))
            .with_no_client_auth(),
        Trust::System => {
            let roots = RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        Trust::CaFile(path) => {
            let mut roots = RootCertStore::empty();
            for cert in CertificateDer::pem_file_iter(path)
                .map_err(|e| format!("{}: {e}", path.display()))?
            {
                roots.add(cert.map_err(|e| format!("{}: {e}", path.display()))?)?;
            }
            if roots.is_empty() {
                return Err(format!("{}: no certificate", path.display()).into());
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
    };
    if !resumption {
        config.resumption = rustls::client::Resumption::disabled();
    }
    Ok(Arc::new(config))
}

/// A server configuration from a PEM certificate chain and key.
pub(crate) fn server_config(
    cert: &Path,
    key: &Path,
) -> Result<Arc<ServerConfig>, Box<dyn std::error::Error>> {
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("{}: {e}", cert.display()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: {e}", cert.display()))?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| format!("{}: {e}", key.display()))?;
    let config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    Ok(Arc::new(config))
}

/// The host name of the `--insecure` plan: the check ignores names, any valid one will do.
const INSECURE_HOST: &str = "smtp-load.invalid";

/// `--insecure`: the delivery verifier of a hop plan with TLS `required` (encrypted, not
/// authenticated) for an SMTP route without DNSSEC facts, recording its verdict and continuing:
/// any certificate is accepted, the handshake signatures are still checked.
fn no_cert_check() -> Result<PlanVerifier, Box<dyn std::error::Error>> {
    let toml = "[default]\ntls = \"required\"\ndane = \"none\"\n";
    let controls = DestinationControls::from_toml("--insecure", toml)?;
    let policy = controls.lookup(INSECURE_HOST)?;
    let facts = facts_without_dnssec(INSECURE_HOST, INSECURE_HOST);
    let options = PlanOptions::new().with_host_source(HostSource::Route);
    let plan = HopPlan::new(&policy, &facts, options);
    if !plan.may_connect() {
        return Err(format!("--insecure: {:?}", plan.pre_connect()).into());
    }
    Ok(plan
        .verifier(Arc::new(TrustAnchors::empty()))
        .record_and_continue())
}
