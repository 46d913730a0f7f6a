//! `smtp-tls-check tlsverify`: verify a receiving MTA's certificate chain for a destination,
//! offline (`--chain CHAIN.pem`) or live (`--connect HOST:PORT`, see [`live`]), printing the
//! structured verdict as JSON.
//!
//! Offline: `--mode` is one of the three verifying modes; the JSON is exactly
//! `{"verified", "reference_ids", "matched", "error"}`; exit 0 when verified, 1 when not, 2 on bad
//! input. Exactly one of `--chain` / `--connect` is given.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, UnixTime};
use smtp_tls_policy::chain::TrustAnchors;
use smtp_tls_policy::destination::DeliveryTls;
use smtp_tls_policy::identity::{
    DeliveryTarget, FqdnValidation, IdentityAlgorithm, MxSecurity, X509Validation,
};
use smtp_tls_policy::{PkixVerdict, VerificationPolicy, verify_server_certificate};

#[path = "tlsverify_live.rs"]
mod live;

/// Arguments of `smtp-tls-check tlsverify`.
#[derive(clap::Args)]
pub(crate) struct Args {
    /// Mode. Offline (--chain): preferred-verify, required-verify, required-verify-hosted-domains.
    /// Live (--connect): also default, no, preferred, required (the delivery TLS modes).
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
    /// Offline: the server's certificate chain, PEM, leaf first.
    #[arg(long)]
    chain: Option<PathBuf>,
    /// Live: connect to HOST:PORT, EHLO, STARTTLS, verify, QUIT.
    #[arg(long, value_name = "HOST:PORT")]
    connect: Option<String>,
    /// Live: the name sent in EHLO.
    #[arg(long, default_value = "localhost")]
    ehlo: String,
    /// Live: seconds allowed for the connection and for each reply and the handshake (1-3600).
    #[arg(long, default_value_t = 30)]
    timeout: u64,
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
    /// X.509 validation: server name in CN or SAN. (X.509 v1 and MD5/SHA-1 signed chains are
    /// always refused, with or without this switch.)
    #[arg(long)]
    x509_check: bool,
    /// Print the verdict as JSON (the only output format).
    #[arg(long)]
    json: bool,
}

/// The identity algorithm of an offline `--mode`: one of the three verifying delivery TLS
/// settings (seed Table 2, settings 4–6).
fn parse_mode(mode: &str) -> Result<IdentityAlgorithm, String> {
    match DeliveryTls::from_name(mode) {
        Some(
            tls @ (DeliveryTls::PreferredVerify
            | DeliveryTls::RequiredVerify
            | DeliveryTls::RequiredVerifyHostedDomains),
        ) => Ok(IdentityAlgorithm::for_setting(tls)),
        _ => Err(format!(
            "unknown --mode {mode:?}: expected preferred-verify, required-verify or \
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
fn verdict_json(verdict: &PkixVerdict) -> serde_json::Value {
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

/// The trust anchors of `--ca` and `--system-cas` (none: nothing is trusted).
fn trust_anchors(args: &Args) -> Result<TrustAnchors, String> {
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
    Ok(anchors)
}

/// The delivery target of `--domain`, `--mx`, `--mx-secure`, `--route`.
fn delivery_target(args: &Args) -> Result<DeliveryTarget, smtp_tls_policy::Error> {
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
    builder.build()
}

/// The verification policy for `algorithm` with the `--fqdn-check` / `--x509-check` switches.
fn verification_policy(args: &Args, algorithm: IdentityAlgorithm) -> VerificationPolicy {
    VerificationPolicy::new(algorithm)
        .with_fqdn_validation(if args.fqdn_check {
            FqdnValidation::Enabled
        } else {
            FqdnValidation::Disabled
        })
        .with_x509_validation(if args.x509_check {
            X509Validation::Enabled
        } else {
            X509Validation::Disabled
        })
}

/// The usage error when not exactly one certificate source is given.
const ONE_SOURCE: &str =
    "exactly one of --chain CHAIN.pem (offline) or --connect HOST:PORT (live) is required";

/// Runs the subcommand.
pub(crate) fn run(args: Args) -> crate::CmdResult {
    if !args.json {
        return Err("--json is required (JSON is the only output format)".into());
    }
    match (&args.chain, &args.connect) {
        (Some(chain), None) => offline(&args, chain),
        (None, Some(_)) => live::run(&args),
        _ => Err(ONE_SOURCE.into()),
    }
}

/// The offline check of a PEM chain.
fn offline(args: &Args, chain_path: &Path) -> crate::CmdResult {
    let algorithm = parse_mode(&args.mode)?;
    let chain = read_pem_certs(chain_path)?;
    let anchors = trust_anchors(args)?;
    let target = delivery_target(args)?;
    let time = match &args.at {
        Some(text) => parse_time(text)?,
        None => UnixTime::now(),
    };
    let policy = verification_policy(args, algorithm);
    let verdict = verify_server_certificate(&policy, &target, &chain, &anchors, time);
    println!("{}", verdict_json(&verdict));
    Ok(if verdict.is_verified() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
