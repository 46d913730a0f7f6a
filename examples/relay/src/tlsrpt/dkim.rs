//! DKIM signatures (RFC 6376) of report messages (RFC 8460 §5.3 recommends them), with
//! mail-auth's signer: `rsa-sha256`, relaxed/relaxed, over the report's identifying headers.
//!
//! ```toml
//! [tlsrpt.dkim]
//! selector = "tlsrpt"
//! domain = "relay.example.test"
//! key_file = "/etc/relay/dkim-tlsrpt.pem"   # RSA private key, PKCS#1 or PKCS#8 PEM
//! ```

use std::path::PathBuf;

use mail_auth::common::crypto::{RsaKey, Sha256};
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::{DkimSigner, Done};
use rustls::pki_types::PrivateKeyDer;
use rustls::pki_types::pem::PemObject;
use serde::Deserialize;

/// The signed header fields (From first, as RFC 6376 §5.4 requires).
pub const SIGNED_HEADERS: [&str; 9] = [
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "MIME-Version",
    "Content-Type",
    "TLS-Report-Domain",
    "TLS-Report-Submitter",
];

/// `[tlsrpt.dkim]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct DkimConfig {
    /// The selector (`s=`).
    pub selector: String,
    /// The signing domain (`d=`).
    pub domain: String,
    /// The RSA private key, PEM (PKCS#1 or PKCS#8); a relative path is relative to the
    /// relay's working directory.
    pub key_file: PathBuf,
}

/// Why the signing key could not be loaded or a message signed (the key itself is never
/// shown).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DkimError {
    /// The key file could not be read.
    #[error("DKIM key file {path}: {kind}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        kind: std::io::ErrorKind,
    },
    /// The file holds no usable RSA private key.
    #[error("DKIM key file {path}: no RSA private key (PKCS#1 or PKCS#8 PEM)")]
    Key {
        /// The file.
        path: PathBuf,
    },
    /// Signing failed.
    #[error("DKIM signing: {0}")]
    Sign(String),
}

/// A loaded signer.
pub struct Dkim {
    signer: DkimSigner<RsaKey<Sha256>, Done>,
}

impl std::fmt::Debug for Dkim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dkim").finish_non_exhaustive()
    }
}

impl Dkim {
    /// Loads the key of `config`.
    ///
    /// # Errors
    /// [`DkimError::Read`] or [`DkimError::Key`].
    pub fn load(config: &DkimConfig) -> Result<Self, DkimError> {
        let path = config.key_file.clone();
        let pem = std::fs::read(&path).map_err(|e| DkimError::Read {
            path: path.clone(),
            kind: e.kind(),
        })?;
        let der = PrivateKeyDer::from_pem_slice(&pem)
            .map_err(|_| DkimError::Key { path: path.clone() })?;
        let key = RsaKey::<Sha256>::from_key_der(der).map_err(|_| DkimError::Key { path })?;
        let signer = DkimSigner::from_key(key)
            .domain(config.domain.clone())
            .selector(config.selector.clone())
            .headers(SIGNED_HEADERS);
        Ok(Self { signer })
    }

    /// `message` with its `DKIM-Signature` header field in front.
    ///
    /// # Errors
    /// [`DkimError::Sign`].
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, DkimError> {
        let signature = self
            .signer
            .sign(message)
            .map_err(|e| DkimError::Sign(e.to_string()))?;
        let mut out = signature.to_header().into_bytes();
        out.extend_from_slice(message);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use smtp_tls_policy::tlsrpt::{Aggregate, Reporter, compose_message, read_report};
    use time::macros::{date, datetime};

    use super::{Dkim, DkimConfig, DkimError};

    fn config(dir: &std::path::Path, pem: &[u8]) -> DkimConfig {
        let key_file = dir.join("dkim.pem");
        std::fs::write(&key_file, pem).unwrap();
        DkimConfig {
            selector: "tlsrpt".into(),
            domain: "relay.example".into(),
            key_file,
        }
    }

    #[test]
    fn signs_a_report_message_and_refuses_bad_keys() {
        let dir = tempfile::tempdir().unwrap();
        test_support::openssl::rsa_key(dir.path(), "rsa.pem");
        let key = dir.path().join("rsa.pem");
        let dkim = Dkim::load(&config(dir.path(), &std::fs::read(&key).unwrap())).unwrap();

        let reporter = Reporter::new("Org", "c@relay.example", "relay.example", "r@relay.example");
        let mut counters = Aggregate::new();
        let policy = smtp_tls_policy::tlsrpt::ReportedPolicy::no_policy_found("x.example");
        let day = date!(2026 - 12 - 04);
        counters.record(
            day,
            &smtp_tls_policy::tlsrpt::Session::new(
                policy,
                smtp_tls_policy::tlsrpt::SessionResult::Success,
            ),
        );
        let report = &counters.reports(&reporter, day)[0];
        let message = compose_message(
            &reporter,
            report,
            "tlsrpt@x.example",
            datetime!(2026-12-05 00:10:00 UTC),
        )
        .unwrap();
        let signed = dkim.sign(&message).unwrap();
        let text = String::from_utf8_lossy(&signed);
        assert!(
            text.starts_with("DKIM-Signature: v=1; a=rsa-sha256; "),
            "{text}"
        );
        let head: String = text
            .split("\r\n")
            .take_while(|l| l.starts_with("DKIM-Signature:") || l.starts_with([' ', '\t']))
            .collect::<Vec<_>>()
            .join(" ");
        for part in ["s=tlsrpt", "d=relay.example", "bh=", "b="] {
            assert!(head.contains(part), "{part}: {head}");
        }
        let lower = head.to_ascii_lowercase();
        assert!(
            lower.contains("from") && lower.contains("tls-report-domain"),
            "{head}"
        );
        assert!(signed.ends_with(&message));
        assert_eq!(&read_report(&signed).unwrap(), report);

        let err = Dkim::load(&config(dir.path(), b"-----BEGIN NOTHING-----\n")).unwrap_err();
        assert!(matches!(err, DkimError::Key { .. }), "{err}");
        let mut missing = config(dir.path(), b"");
        missing.key_file = dir.path().join("absent.pem");
        assert!(matches!(
            Dkim::load(&missing).unwrap_err(),
            DkimError::Read { .. }
        ));
    }
}
