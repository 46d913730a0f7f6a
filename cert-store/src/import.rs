//! Importing certificate bundles: PEM (any number of `CERTIFICATE` blocks, text between blocks
//! ignored, as OpenSSL writes them) or DER (one or more concatenated certificates).
//!
//! Every bad entry is reported with its position (entry number and line or byte offset).
//! Whether the good entries still load is the caller's explicit choice, [`BadEntryPolicy`]; the
//! default is [`BadEntryPolicy::Reject`]: a trust list with a bad entry is refused whole, so an
//! administrator never believes a CA is trusted when it silently was not loaded.

use std::fmt;

use rustls_pki_types::CertificateDer;

use crate::error::{Error, Result};

/// Largest bundle read, in bytes (Mozilla's whole list is about 200 KiB of PEM).
pub const MAX_BUNDLE_BYTES: usize = 4 * 1024 * 1024;
/// Most certificates in one bundle.
pub const MAX_BUNDLE_CERTS: usize = 1000;

/// What to do with the good entries of a bundle that also holds bad ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum BadEntryPolicy {
    /// Refuse the whole bundle with [`Error::BadBundle`] listing every bad entry (default).
    #[default]
    Reject,
    /// Keep the good entries; the bad ones are listed in [`CertBundle::skipped`].
    SkipBad,
}

/// Where an entry sits in its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Location {
    /// 1-based line of the `-----BEGIN` line (PEM).
    Line(usize),
    /// Byte offset (DER).
    Offset(usize),
}

/// Why an entry was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BadEntryReason {
    /// A `-----BEGIN` without its `-----END` (a truncated file).
    MissingEnd,
    /// The `-----END` label differs from the `-----BEGIN` one.
    MismatchedEnd,
    /// The base64 body does not decode.
    BadBase64,
    /// A PEM block that is not a certificate (its label).
    NotACertificate {
        /// The block's label, e.g. `X509 CRL`; private key labels are reported too, never
        /// their content.
        label: String,
    },
    /// DER that is not an X.509 certificate.
    MalformedCertificate {
        /// The parser's message.
        detail: String,
    },
    /// Bytes after the certificate inside one PEM block.
    TrailingData,
}

/// One refused entry of a bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BadEntry {
    /// 1-based entry number among the blocks (PEM) or certificates (DER) of the input.
    pub entry: usize,
    /// Where it starts.
    pub at: Location,
    /// What is wrong with it.
    pub reason: BadEntryReason,
}

impl fmt::Display for BadEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "entry {} ", self.entry)?;
        match self.at {
            Location::Line(l) => write!(f, "(line {l}): ")?,
            Location::Offset(o) => write!(f, "(byte {o}): ")?,
        }
        match &self.reason {
            BadEntryReason::MissingEnd => f.write_str("no -----END line (truncated?)"),
            BadEntryReason::MismatchedEnd => f.write_str("-----END label differs from BEGIN"),
            BadEntryReason::BadBase64 => f.write_str("invalid base64"),
            BadEntryReason::NotACertificate { label } => write!(f, "{label} is not a certificate"),
            BadEntryReason::MalformedCertificate { detail } => {
                write!(f, "not a valid X.509 certificate ({detail})")
            }
            BadEntryReason::TrailingData => f.write_str("data after the certificate"),
        }
    }
}

pub(crate) fn describe(bad: &[BadEntry]) -> String {
    bad.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// The certificates of a bundle, in input order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct CertBundle {
    /// Certificates that parsed.
    pub certs: Vec<CertificateDer<'static>>,
    /// Entries skipped under [`BadEntryPolicy::SkipBad`].
    pub skipped: Vec<BadEntry>,
}

/// Parses a PEM or DER certificate bundle.
///
/// ```
/// use cert_store::{parse_bundle, BadEntryPolicy, Error};
/// let err = parse_bundle(b"-----BEGIN CERTIFICATE-----\nAAAA\n", BadEntryPolicy::Reject);
/// assert!(matches!(err, Err(Error::BadBundle { .. })));
/// ```
pub fn parse_bundle(input: &[u8], policy: BadEntryPolicy) -> Result<CertBundle> {
    if input.len() > MAX_BUNDLE_BYTES {
        return Err(Error::TooLarge {
            what: "certificate bundle",
            size: input.len(),
            limit: MAX_BUNDLE_BYTES,
        });
    }
    let (certs, bad) = if crate::key::looks_like_pem(input) {
        parse_pem(input)?
    } else {
        parse_der(input)?
    };
    // Nothing usable is never a success, whatever the policy.
    if !bad.is_empty() && (policy == BadEntryPolicy::Reject || certs.is_empty()) {
        return Err(Error::BadBundle { bad });
    }
    if certs.is_empty() {
        return Err(Error::NoCertificate);
    }
    Ok(CertBundle {
        certs,
        skipped: bad,
    })
}

type Parsed = (Vec<CertificateDer<'static>>, Vec<BadEntry>);

fn push_cert(certs: &mut Vec<CertificateDer<'static>>, der: Vec<u8>) -> Result<()> {
    if certs.len() >= MAX_BUNDLE_CERTS {
        return Err(Error::TooManyCertificates {
            limit: MAX_BUNDLE_CERTS,
        });
    }
    certs.push(CertificateDer::from(der));
    Ok(())
}

fn parse_pem(input: &[u8]) -> Result<Parsed> {
    let mut certs = Vec::new();
    let mut bad = Vec::new();
    let mut entry = 0;
    // (label, first line number, text of the block so far)
    let mut open: Option<(String, usize, String)> = None;
    let text = String::from_utf8_lossy(input);
    for (i, line) in text.lines().enumerate() {
        let lineno = i + 1;
        let trimmed = line.trim();
        if let Some(label) = marker(trimmed, "-----BEGIN ") {
            if let Some((_, start, _)) = open.take() {
                bad.push(BadEntry {
                    entry,
                    at: Location::Line(start),
                    reason: BadEntryReason::MissingEnd,
                });
            }
            entry += 1;
            open = Some((label.to_string(), lineno, format!("{trimmed}\n")));
        } else if let Some(end_label) = marker(trimmed, "-----END ") {
            let Some((label, start, mut block)) = open.take() else {
                continue;
            };
            let at = Location::Line(start);
            if end_label != label {
                bad.push(BadEntry {
                    entry,
                    at,
                    reason: BadEntryReason::MismatchedEnd,
                });
                continue;
            }
            block.push_str(trimmed);
            block.push('\n');
            match check_block(&label, &block) {
                Ok(der) => push_cert(&mut certs, der)?,
                Err(reason) => bad.push(BadEntry { entry, at, reason }),
            }
        } else if let Some((_, _, block)) = open.as_mut() {
            block.push_str(trimmed);
            block.push('\n');
        }
    }
    if let Some((_, start, _)) = open {
        bad.push(BadEntry {
            entry,
            at: Location::Line(start),
            reason: BadEntryReason::MissingEnd,
        });
    }
    Ok((certs, bad))
}

fn marker<'a>(line: &'a str, prefix: &str) -> Option<&'a str> {
    line.strip_prefix(prefix)?.strip_suffix("-----")
}

fn check_block(label: &str, block: &str) -> Result<Vec<u8>, BadEntryReason> {
    if label != "CERTIFICATE" && label != "X509 CERTIFICATE" {
        return Err(BadEntryReason::NotACertificate {
            label: label.to_string(),
        });
    }
    let der = pem::parse(block)
        .map_err(|_| BadEntryReason::BadBase64)?
        .into_contents();
    match x509_parser::parse_x509_certificate(&der) {
        Ok(([], _)) => Ok(der),
        Ok(_) => Err(BadEntryReason::TrailingData),
        Err(e) => Err(BadEntryReason::MalformedCertificate {
            detail: e.to_string(),
        }),
    }
}

fn parse_der(input: &[u8]) -> Result<Parsed> {
    let mut certs = Vec::new();
    let mut bad = Vec::new();
    let mut rest = input;
    let mut entry = 0;
    while !rest.is_empty() {
        entry += 1;
        let offset = input.len() - rest.len();
        match x509_parser::parse_x509_certificate(rest) {
            Ok((after, _)) => {
                let used = rest.len() - after.len();
                push_cert(&mut certs, rest[..used].to_vec())?;
                rest = after;
            }
            Err(e) => {
                // Without a parseable certificate the next boundary is unknown: stop here.
                bad.push(BadEntry {
                    entry,
                    at: Location::Offset(offset),
                    reason: BadEntryReason::MalformedCertificate {
                        detail: e.to_string(),
                    },
                });
                break;
            }
        }
    }
    Ok((certs, bad))
}

/// PEM text of certificates, one `CERTIFICATE` block each.
pub fn certs_to_pem<'a>(certs: impl IntoIterator<Item = &'a CertificateDer<'a>>) -> String {
    certs
        .into_iter()
        .map(|c| pem_encode("CERTIFICATE", c.as_ref()))
        .collect()
}

/// One PEM block with `\n` line endings (the `pem` crate defaults to CRLF).
pub(crate) fn pem_encode(label: &str, der: &[u8]) -> String {
    let config = pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF);
    pem::encode_config(&pem::Pem::new(label, der.to_vec()), config)
}

#[cfg(test)]
#[path = "import_tests.rs"]
mod tests;
