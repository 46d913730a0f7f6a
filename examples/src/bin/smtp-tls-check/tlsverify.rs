//! `smtp-tls-check tlsverify`: verify a receiving MTA's certificate chain for a destination,
//! offline (`--chain CHAIN.pem`), printing the structured verdict as JSON.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, UnixTime};
use smtp_tls_policy::chain::TrustAnchors;
use smtp_tls_policy::identity::{DeliveryTarget, FqdnValidation, MxSecurity, X509Validation};
use smtp_tls_policy::verifier::VerificationMode;
use smtp_tls_policy::{Verdict, VerificationPolicy, verify_server_certificate};

/// Arguments of `smtp-tls-check tlsverify`.
#[derive(clap::Args)]
pub(crate) struct Args {
    /// Verification mode: preferred-verify, required-verify, required-verify-hosted-domains.
    #[arg(long)]
    mode: String,
    /// Destination (recipient) domain.
    #[arg(long)]
    domain: String,
    /// MX host name as resolved (repeatable, in preference order).
    #[arg(long = "mx")]
    mx: Vec<String>,
    /// The MX answer was DNSSEC-secure (hosted-domain verification then trusts MX host names).
    #[arg(long)]
    mx_secure: bool,
    /// Explicitly configured SMTP route host.
    #[arg(long)]
    route: Option<String>,
    /// The server's certificate chain, PEM, leaf first.
    #[arg(long)]
    chain: Option<PathBuf>,
    /// A CA list to trust, PEM (repeatable).
    #[arg(long = "ca")]
    ca: Vec<PathBuf>,
    /// Trust the system CA list (Mozilla's, via webpki-roots).
    #[arg(long)]
    system_cas: bool,
    /// Verification time, RFC 3339 (default: now).
    #[arg(long)]
    at: Option<String>,
    /// FQDN validation: CN and SAN dNSNames must be FQDNs.
    #[arg(long)]
    fqdn_check: bool,
    /// X.509 validation: no MD5/SHA-1 signature, version 3, server name in CN or SAN.
    #[arg(long)]
    x509_check: bool,
    /// Print the verdict as JSON (the only output format).
    #[arg(long)]
    json: bool,
}

fn parse_mode(mode: &str) -> Result<VerificationMode, String> {
    match mode {
        "preferred-verify" => Ok(VerificationMode::PreferredVerify),
        "required-verify" => Ok(VerificationMode::RequiredVerify),
        "required-verify-hosted-domains" => Ok(VerificationMode::RequiredVerifyHostedDomains),
        other => Err(format!(
            "unknown --mode {other:?}: expected preferred-verify, required-verify or \
             required-verify-hosted-domains"
        )),
    }
}

fn read_pem_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no CERTIFICATE block", path.display()));
    }
    Ok(certs)
}

fn parse_time(text: &str) -> Result<UnixTime, String> {
    let t = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map_err(|e| format!("--at {text:?}: {e}"))?;
    let secs =
        u64::try_from(t.unix_timestamp()).map_err(|_| format!("--at {text:?}: before 1970"))?;
    Ok(UnixTime::since_unix_epoch(Duration::from_secs(secs)))
}

/// The JSON verdict: `{"verified", "reference_ids", "matched", "error"}`.
fn verdict_json(verdict: &Verdict) -> serde_json::Value {
    serde_json::json!({
        "verified": verdict.is_verified(),
        "reference_ids": verdict.reference_ids.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "matched": verdict.matched.as_ref().map(|m| serde_json::json!({
            "reference": m.reference.to_string(),
            "presented": m.presented.to_string(),
        })),
        "error": verdict.error.as_ref().map(|e| format!("{}: {e}", e.kind())),
    })
}

/// Runs the subcommand.
pub(crate) fn run(args: Args) -> crate::CmdResult {
    let mode = parse_mode(&args.mode)?;
    if !args.json {
        return Err("--json is required (JSON is the only output format)".into());
    }
    // Exactly one certificate source; a later `--connect HOST:PORT` joins `--chain` here.
    let Some(chain_path) = &args.chain else {
        return Err("--chain CHAIN.pem is required".into());
    };
    let chain = read_pem_certs(chain_path)?;
    let mut anchors = TrustAnchors::empty();
    for path in &args.ca {
        for cert in read_pem_certs(path)? {
            anchors
                .add_certificate(cert)
                .map_err(|e| format!("{}: {e}", path.display()))?;
        }
    }
    if args.system_cas {
        anchors.add_anchors(TrustAnchors::mozilla().anchors().iter().cloned());
    }
    let mut builder = DeliveryTarget::builder(&args.domain).with_mx_security(if args.mx_secure {
        MxSecurity::Secure
    } else {
        MxSecurity::Insecure
    });
    for mx in &args.mx {
        builder = builder.with_mx_host(mx);
    }
    if let Some(route) = &args.route {
        builder = builder.with_route_host(route);
    }
    let target = builder.build()?;
    let time = match &args.at {
        Some(text) => parse_time(text)?,
        None => UnixTime::now(),
    };
    let policy = VerificationPolicy::new(mode.algorithm())
        .with_fqdn_validation(if args.fqdn_check {
            FqdnValidation::Enabled
        } else {
            FqdnValidation::Disabled
        })
        .with_x509_validation(if args.x509_check {
            X509Validation::Enabled
        } else {
            X509Validation::Disabled
        });
    let verdict = verify_server_certificate(&policy, &target, &chain, &anchors, time);
    println!("{}", verdict_json(&verdict));
    Ok(if verdict.is_verified() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
