//! The MTA-STS options shared by the live subcommands that discover a domain's policy
//! (`mta-sts DOMAIN`, `policy DOMAIN`): `--ca FILE`..., `--system-cas`, `--policy-port N`, and
//! the fetch settings they give (trust anchors for the policy host, its HTTPS port). Discovery
//! itself is smtp-tls-policy's [`smtp_tls_policy::mta_sts::discover()`], through the
//! subcommand's `--resolver`.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use smtp_tls_policy::chain::TrustAnchors;
use smtp_tls_policy::mta_sts::{FetchSettings, client_config};

/// The MTA-STS fetch options.
#[derive(clap::Args)]
pub(crate) struct StsArgs {
    /// A CA list to trust for the policy host, PEM (repeatable). Without --ca and
    /// --system-cas: Mozilla's list.
    #[arg(long = "ca", value_name = "FILE")]
    ca: Vec<PathBuf>,
    /// Trust the system CA list (Mozilla's, via webpki-roots), in addition to --ca.
    #[arg(long)]
    system_cas: bool,
    /// HTTPS port of the policy host `mta-sts.DOMAIN`.
    #[arg(long, default_value_t = 443)]
    policy_port: u16,
}

impl StsArgs {
    /// The fetch settings: the trust anchors read from the files (bad input when unreadable),
    /// the policy port, default limits. Reads files, never the network.
    pub(crate) fn fetch_settings(&self) -> Result<FetchSettings, Box<dyn std::error::Error>> {
        let tls = client_config(&trust_anchors(&self.ca, self.system_cas)?)?;
        Ok(FetchSettings::new(tls).with_port(self.policy_port))
    }
}

/// Now, in unix seconds (the cache's clock).
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `--ca` files and `--system-cas`; neither: Mozilla's list.
fn trust_anchors(ca: &[PathBuf], system_cas: bool) -> Result<TrustAnchors, String> {
    if ca.is_empty() {
        return Ok(TrustAnchors::mozilla());
    }
    let mut anchors = TrustAnchors::empty();
    for path in ca {
        for cert in read_pem_certs(path)? {
            anchors
                .add_certificate(cert)
                .map_err(|e| format!("{}: {e}", path.display()))?;
        }
    }
    if system_cas {
        anchors.add_anchors(TrustAnchors::mozilla().anchors().iter().cloned());
    }
    Ok(anchors)
}

fn read_pem_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate", path.display()));
    }
    Ok(certs)
}
