//! `smtp-tls-check certs`: manage the certificate store (seed: "Working with Certificates" and
//! "Managing Lists of Certificate Authorities", Cisco's `certconfig`).
//!
//! ```text
//! smtp-tls-check certs --store DIR create-self-signed --name N --cn CN [--san NAME]... [--org O]
//!     [--org-unit OU] [--city L] [--state ST] [--country CC] [--key ec-p256|ec-p384|rsa-2048|...]
//!     [--signature default|rsa-sha256|rsa-sha384|rsa-sha512] [--days D] [--fqdn-check]
//! smtp-tls-check certs --store DIR csr --name N
//! smtp-tls-check certs --store DIR upload --name N --cert SIGNED.pem [--intermediate I.pem]...
//! smtp-tls-check certs --store DIR import --name N --cert C.pem --key K.pem [--fqdn-check]
//! smtp-tls-check certs --store DIR import-p12 --name N --file F.p12 --passphrase-file P [--fqdn-check]
//! smtp-tls-check certs --store DIR export-p12 --name N --file F.p12 --passphrase-file P
//! smtp-tls-check certs --store DIR list [--expiring-within DAYS] [--json]
//! smtp-tls-check certs --store DIR tlsa --name N --host HOST [--port 25]
//! smtp-tls-check certs --store DIR assign --name N (--listener L | --https-listener L | --outgoing)
//! smtp-tls-check certs --store DIR ca enable|disable system|custom
//! smtp-tls-check certs --store DIR ca import FILE [--skip-bad]
//! smtp-tls-check certs --store DIR ca export system|custom --file F
//! smtp-tls-check certs --store DIR ca status
//! ```
//! Passphrases are read from files (first line), never from the command line, never printed.
//! Exit status: 0 done; 1 `list --expiring-within` found certificates expiring; 2 on error.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use cert_store::{
    BadEntryPolicy, CaList, CertInfo, CertStore, FqdnCheck, KeySpec, SelfSignedRequest,
    SignatureAlgorithm, Subject,
};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Arguments of `smtp-tls-check certs`.
#[derive(clap::Args)]
pub(crate) struct Args {
    /// The store directory (created when missing).
    #[arg(long, value_name = "DIR", global = true)]
    store: Option<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(clap::Subcommand)]
enum Cmd {
    /// Create a self-signed certificate and its CSR.
    CreateSelfSigned(CreateArgs),
    /// Print the CSR (PEM) of a certificate created here.
    Csr {
        /// Certificate name.
        #[arg(long)]
        name: String,
    },
    /// Replace a certificate with the CA-signed one for its CSR.
    Upload {
        /// Certificate name.
        #[arg(long)]
        name: String,
        /// The signed certificate (PEM or DER; may be followed by intermediates).
        #[arg(long, value_name = "FILE")]
        cert: PathBuf,
        /// Intermediate certificates served after it.
        #[arg(long, value_name = "FILE")]
        intermediate: Vec<PathBuf>,
    },
    /// Import a certificate chain and its private key (PEM or DER).
    Import {
        /// Certificate name.
        #[arg(long)]
        name: String,
        /// Certificate chain, leaf first.
        #[arg(long, value_name = "FILE")]
        cert: PathBuf,
        /// Private key (PKCS#8, SEC1 or PKCS#1).
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        /// Require CN and DNS SANs to be fully qualified domain names.
        #[arg(long)]
        fqdn_check: bool,
    },
    /// Import a PKCS#12 file.
    ImportP12 {
        /// Certificate name.
        #[arg(long)]
        name: String,
        /// The PKCS#12 file.
        #[arg(long, value_name = "FILE")]
        file: PathBuf,
        /// File whose first line is the passphrase.
        #[arg(long, value_name = "FILE")]
        passphrase_file: PathBuf,
        /// Require CN and DNS SANs to be fully qualified domain names.
        #[arg(long)]
        fqdn_check: bool,
    },
    /// Export a certificate, its chain and key as a PKCS#12 file.
    ExportP12 {
        /// Certificate name.
        #[arg(long)]
        name: String,
        /// The PKCS#12 file to write.
        #[arg(long, value_name = "FILE")]
        file: PathBuf,
        /// File whose first line is the passphrase.
        #[arg(long, value_name = "FILE")]
        passphrase_file: PathBuf,
    },
    /// List certificates with days left.
    List {
        /// Only certificates expiring within DAYS days (exit 1 when there are any).
        #[arg(long, value_name = "DAYS")]
        expiring_within: Option<u32>,
    },
    /// Print the TLSA records to publish for a certificate.
    Tlsa {
        /// Certificate name.
        #[arg(long)]
        name: String,
        /// The MX host name.
        #[arg(long)]
        host: String,
        /// The port.
        #[arg(long, default_value_t = 25)]
        port: u16,
    },
    /// Assign a certificate to a listener, an HTTPS listener or all outgoing TLS connections.
    Assign {
        /// Certificate name.
        #[arg(long)]
        name: String,
        /// SMTP listener name.
        #[arg(long, required_unless_present_any = ["outgoing", "https_listener"])]
        listener: Option<String>,
        /// HTTPS listener name (the relay's MTA-STS policy host, `[[https_listener]]`).
        #[arg(long, value_name = "NAME", conflicts_with_all = ["listener", "outgoing"])]
        https_listener: Option<String>,
        /// All outgoing TLS connections.
        #[arg(long, conflicts_with = "listener")]
        outgoing: bool,
    },
    /// Manage the certificate authority lists.
    #[command(subcommand)]
    Ca(CaCmd),
}

#[derive(clap::Args)]
struct CreateArgs {
    /// Certificate name.
    #[arg(long)]
    name: String,
    /// Common name (the fully qualified domain name).
    #[arg(long)]
    cn: String,
    /// Subject alternative name (DNS name or IP address).
    #[arg(long)]
    san: Vec<String>,
    /// Organization.
    #[arg(long)]
    org: Option<String>,
    /// Organizational unit.
    #[arg(long)]
    org_unit: Option<String>,
    /// City (locality).
    #[arg(long)]
    city: Option<String>,
    /// State (province).
    #[arg(long)]
    state: Option<String>,
    /// Two-letter country code.
    #[arg(long)]
    country: Option<String>,
    /// Key type.
    #[arg(long, default_value = "ec-p256")]
    key: String,
    /// Signature algorithm (RSA keys may choose SHA-384 or SHA-512).
    #[arg(long, default_value = "default")]
    signature: String,
    /// Days before expiry.
    #[arg(long, default_value_t = 365)]
    days: u32,
    /// Require CN and DNS SANs to be fully qualified domain names.
    #[arg(long)]
    fqdn_check: bool,
}

#[derive(clap::Subcommand)]
enum CaCmd {
    /// Enable a list (system or custom).
    Enable {
        /// `system` or `custom`.
        list: String,
    },
    /// Disable a list (system or custom).
    Disable {
        /// `system` or `custom`.
        list: String,
    },
    /// Replace the custom list with a PEM file.
    Import {
        /// PEM file of CA certificates.
        file: PathBuf,
        /// Load the good entries even if some are bad (default: refuse the whole file).
        #[arg(long)]
        skip_bad: bool,
    },
    /// Export a list as PEM.
    Export {
        /// `system` or `custom`.
        list: String,
        /// The file to write.
        #[arg(long, value_name = "FILE")]
        file: PathBuf,
    },
    /// Show which lists are enabled.
    Status,
}

type BoxError = Box<dyn std::error::Error>;

fn read(path: &Path) -> Result<Vec<u8>, BoxError> {
    std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()).into())
}

fn passphrase(path: &Path) -> Result<String, BoxError> {
    let text = String::from_utf8(read(path)?)
        .map_err(|_| format!("{}: passphrase file is not UTF-8", path.display()))?;
    Ok(text.lines().next().unwrap_or("").to_string())
}

fn fqdn(on: bool) -> FqdnCheck {
    if on {
        FqdnCheck::Required
    } else {
        FqdnCheck::Off
    }
}

fn date(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

fn info_json(name: &str, i: &CertInfo) -> Value {
    json!({
        "name": name,
        "subject": i.subject,
        "issuer": i.issuer,
        "serial": i.serial,
        "not_before": date(i.not_before),
        "not_after": date(i.not_after),
        "days_left": i.days_left,
        "dns_names": i.dns_names,
        "ip_addresses": i.ip_addresses,
        "sha256": i.sha256,
    })
}

fn print(json_out: bool, value: &Value, text: &str) {
    if json_out {
        println!("{value}");
    } else {
        println!("{text}");
    }
}

/// Runs the subcommand.
pub(crate) fn run(args: Args) -> crate::CmdResult {
    let dir = args.store.ok_or("--store DIR is required")?;
    let mut store = CertStore::open(&dir)?;
    let json_out = args.json;
    match args.command {
        Cmd::CreateSelfSigned(a) => {
            let mut subject = Subject::new(a.cn);
            subject.organization = a.org;
            subject.organizational_unit = a.org_unit;
            subject.locality = a.city;
            subject.state = a.state;
            subject.country = a.country;
            subject.sans = a.san;
            let mut req = SelfSignedRequest::new(subject);
            req.key = a.key.parse::<KeySpec>()?;
            req.signature = match a.signature.as_str() {
                "default" => SignatureAlgorithm::Default,
                "rsa-sha256" => SignatureAlgorithm::RsaSha256,
                "rsa-sha384" => SignatureAlgorithm::RsaSha384,
                "rsa-sha512" => SignatureAlgorithm::RsaSha512,
                other => return Err(format!("unknown signature algorithm {other:?}").into()),
            };
            req.days = a.days;
            req.fqdn = fqdn(a.fqdn_check);
            let info = store.create_self_signed(&a.name, &req)?;
            let text = format!(
                "created {} ({}), {} days left",
                a.name, info.subject, info.days_left
            );
            print(json_out, &info_json(&a.name, &info), &text);
        }
        Cmd::Csr { name } => {
            let csr = store.csr_pem(&name)?;
            print(
                json_out,
                &json!({ "name": name, "csr": csr }),
                csr.trim_end(),
            );
        }
        Cmd::Upload {
            name,
            cert,
            intermediate,
        } => {
            let cert = read(&cert)?;
            let inters = intermediate
                .iter()
                .map(|p| read(p))
                .collect::<Result<Vec<_>, _>>()?;
            let refs: Vec<&[u8]> = inters.iter().map(Vec::as_slice).collect();
            let info = store.upload_signed(&name, &cert, &refs)?;
            print(
                json_out,
                &info_json(&name, &info),
                &format!("uploaded {name} (issuer {})", info.issuer),
            );
        }
        Cmd::Import {
            name,
            cert,
            key,
            fqdn_check,
        } => {
            let info = store.import_pem(&name, &read(&cert)?, &read(&key)?, fqdn(fqdn_check))?;
            print(
                json_out,
                &info_json(&name, &info),
                &format!("imported {name} ({})", info.subject),
            );
        }
        Cmd::ImportP12 {
            name,
            file,
            passphrase_file,
            fqdn_check,
        } => {
            let pass = passphrase(&passphrase_file)?;
            let info = store.import_pkcs12(&name, &read(&file)?, &pass, fqdn(fqdn_check))?;
            print(
                json_out,
                &info_json(&name, &info),
                &format!("imported {name} ({})", info.subject),
            );
        }
        Cmd::ExportP12 {
            name,
            file,
            passphrase_file,
        } => {
            let pass = passphrase(&passphrase_file)?;
            let data = store.export_pkcs12(&name, &pass)?;
            std::fs::write(&file, data).map_err(|e| format!("{}: {e}", file.display()))?;
            let value = json!({ "name": name, "file": file.display().to_string() });
            print(
                json_out,
                &value,
                &format!("exported {name} to {}", file.display()),
            );
        }
        Cmd::List { expiring_within } => {
            let now = OffsetDateTime::now_utc();
            let list = match expiring_within {
                Some(days) => store.expiring_within(days, now)?,
                None => store.list(now)?,
            };
            let items: Vec<Value> = list
                .iter()
                .map(|c| {
                    let mut v = info_json(&c.name, &c.info);
                    v["origin"] = json!(format!("{:?}", c.origin));
                    v["intermediates"] = json!(c.intermediates);
                    v["listeners"] = json!(c.listeners);
                    v["https_listeners"] = json!(c.https_listeners);
                    v["outgoing"] = json!(c.outgoing);
                    v
                })
                .collect();
            let text = list
                .iter()
                .map(|c| {
                    format!(
                        "{}\t{}\t{} days left",
                        c.name, c.info.subject, c.info.days_left
                    )
                })
                .collect::<Vec<_>>()
                .join("\n");
            print(json_out, &json!({ "certificates": items }), &text);
            if expiring_within.is_some() && !list.is_empty() {
                return Ok(ExitCode::from(1));
            }
        }
        Cmd::Tlsa { name, host, port } => {
            // RFC 7672 §3.1: `3 1 1` for the leaf key, `2 1 1` for its issuer when stored
            let stored = store.get(&name)?;
            let lines: Vec<String> =
                dane_verify::server_tlsa_records(&stored.chain[0], stored.chain.get(1))?
                    .iter()
                    .map(|r| r.to_rr_line(&host, port))
                    .collect();
            print(
                json_out,
                &json!({ "name": name, "records": lines }),
                &lines.join("\n"),
            );
        }
        Cmd::Assign {
            name,
            listener,
            https_listener,
            outgoing,
        } => {
            let target = match (&listener, &https_listener, outgoing) {
                (_, _, true) => {
                    store.assign_outgoing(Some(&name))?;
                    "all outgoing TLS connections".to_owned()
                }
                (_, Some(l), false) => {
                    store.assign_https_listener(l, &name)?;
                    format!("https listener {l}")
                }
                (Some(l), None, false) => {
                    store.assign_listener(l, &name)?;
                    l.clone()
                }
                (None, None, false) => {
                    return Err("--listener, --https-listener or --outgoing is required".into());
                }
            };
            print(
                json_out,
                &json!({ "name": name, "assigned_to": target }),
                &format!("{name} -> {target}"),
            );
        }
        Cmd::Ca(ca) => return run_ca(&mut store, ca, json_out),
    }
    Ok(ExitCode::SUCCESS)
}

fn run_ca(store: &mut CertStore, cmd: CaCmd, json_out: bool) -> crate::CmdResult {
    match cmd {
        CaCmd::Enable { list } => store.set_ca_enabled(list.parse::<CaList>()?, true)?,
        CaCmd::Disable { list } => store.set_ca_enabled(list.parse::<CaList>()?, false)?,
        CaCmd::Import { file, skip_bad } => {
            let policy = if skip_bad {
                BadEntryPolicy::SkipBad
            } else {
                BadEntryPolicy::Reject
            };
            let skipped = store.import_custom_ca(&read(&file)?, policy)?;
            for bad in &skipped {
                eprintln!("warning: skipped {bad}");
            }
        }
        CaCmd::Export { list, file } => {
            let text = store.export_ca(list.parse::<CaList>()?);
            std::fs::write(&file, text).map_err(|e| format!("{}: {e}", file.display()))?;
        }
        CaCmd::Status => {}
    }
    let s = store.ca_status();
    let value = json!({
        "system": { "enabled": s.system_enabled, "certificates": s.system_count },
        "custom": { "enabled": s.custom_enabled, "certificates": s.custom_count },
    });
    let text = format!(
        "system list: {} ({} certificates)\ncustom list: {} ({} certificates)",
        if s.system_enabled {
            "enabled"
        } else {
            "disabled"
        },
        s.system_count,
        if s.custom_enabled {
            "enabled"
        } else {
            "disabled"
        },
        s.custom_count
    );
    print(json_out, &value, &text);
    Ok(ExitCode::SUCCESS)
}
