//! The one error type of this crate.

use std::path::PathBuf;

use crate::import::BadEntry;

/// Everything that can go wrong in the certificate store.
///
/// Variants carry the context an administrator needs: which name, which file, which entry.
/// Secrets (passphrases, key bytes) never appear in an error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An RSA key smaller than 2048 bits was asked for or imported (the seed's 1024 bits is
    /// obsolete: NIST SP 800-131A disallows it).
    #[error("RSA keys must be at least 2048 bits, got {bits}")]
    RsaKeyTooSmall {
        /// The size that was refused.
        bits: usize,
    },
    /// A key type name that is not one of `ec-p256`, `ec-p384`, `rsa-2048`, `rsa-3072`,
    /// `rsa-4096`.
    #[error(
        "unknown key type {given:?} (expected ec-p256, ec-p384, rsa-2048, rsa-3072 or rsa-4096)"
    )]
    UnknownKeyType {
        /// The text that was given.
        given: String,
    },
    /// A signature algorithm that does not fit the key type.
    #[error("signature algorithm {algorithm} cannot be used with a {key} key")]
    SignatureAlgorithmMismatch {
        /// The algorithm asked for.
        algorithm: &'static str,
        /// The key type.
        key: &'static str,
    },
    /// A key algorithm this store does not handle (only RSA and ECDSA P-256/P-384).
    #[error("unsupported private key algorithm ({detail})")]
    UnsupportedKey {
        /// What was found.
        detail: &'static str,
    },
    /// Bytes that are not a private key in PKCS#8, SEC1 or PKCS#1 form.
    #[error("not a usable private key ({reason})")]
    InvalidKey {
        /// Why it was refused.
        reason: &'static str,
    },
    /// Key generation or signing failed inside the crypto library.
    #[error("certificate generation failed: {0}")]
    Generation(String),
    /// A subject field is not acceptable.
    #[error("invalid {field}: {reason}")]
    InvalidSubject {
        /// Which field (common name, country, ...).
        field: &'static str,
        /// Why.
        reason: &'static str,
    },
    /// FQDN validation was asked for and a name is not a fully qualified domain name
    /// (seed: "FQDN Validation" check box).
    #[error("{field} {name:?} is not a fully qualified domain name")]
    NotFqdn {
        /// Which field (common name or SAN).
        field: &'static str,
        /// The name presented.
        name: String,
    },
    /// The validity period asked for is out of range.
    #[error("validity of {days} days is out of range (1..={max})")]
    ValidityOutOfRange {
        /// Days asked for.
        days: u32,
        /// The limit.
        max: u32,
    },
    /// A certificate that could not be parsed.
    #[error("invalid certificate: {reason}")]
    InvalidCertificate {
        /// Why.
        reason: String,
    },
    /// A certificate bundle (PEM or DER) with bad entries; each is listed with its position.
    #[error("certificate bundle has {} bad entr{}: {}", .bad.len(), if .bad.len() == 1 { "y" } else { "ies" }, crate::import::describe(.bad))]
    BadBundle {
        /// Every bad entry, in file order.
        bad: Vec<BadEntry>,
    },
    /// A bundle that holds no certificate at all.
    #[error("no certificate found in the input")]
    NoCertificate,
    /// An input larger than the limit for its kind.
    #[error("{what} is {size} bytes, more than the limit of {limit}")]
    TooLarge {
        /// What was read.
        what: &'static str,
        /// Its size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// More certificates in a bundle than the limit.
    #[error("bundle holds more than {limit} certificates")]
    TooManyCertificates {
        /// The limit.
        limit: usize,
    },
    /// The certificate does not belong to the stored private key (seed: "Uploading a Certificate
    /// Signed by a Certificate Authority"); the old certificate stays.
    #[error("certificate for {name:?} does not match its private key")]
    KeyMismatch {
        /// The named certificate.
        name: String,
    },
    /// A PKCS#12 file whose integrity check fails: almost always a wrong passphrase.
    #[error("PKCS#12 file: wrong passphrase (integrity check failed)")]
    Pkcs12WrongPassphrase,
    /// A PKCS#12 file that cannot be decoded.
    #[error("PKCS#12 file is corrupt or unsupported: {reason}")]
    Pkcs12Corrupt {
        /// What the decoder reported.
        reason: String,
    },
    /// A PKCS#12 file without a private key (or without the certificate for it).
    #[error("PKCS#12 file holds no private key with its certificate")]
    Pkcs12NoKey,
    /// A certificate name that cannot be used (also the directory name in the store).
    #[error("invalid certificate name {name:?}: {reason}")]
    InvalidName {
        /// The name.
        name: String,
        /// Why.
        reason: &'static str,
    },
    /// No certificate of that name.
    #[error("no certificate named {name:?}")]
    UnknownCertificate {
        /// The name.
        name: String,
    },
    /// A certificate of that name already exists.
    #[error("a certificate named {name:?} already exists")]
    NameExists {
        /// The name.
        name: String,
    },
    /// The demonstration certificate is built in and cannot be replaced, re-signed or exported.
    #[error("the demonstration certificate {name:?} is built in and cannot be changed")]
    DemoReadOnly {
        /// Its name.
        name: &'static str,
    },
    /// The named certificate has no CSR (it was imported, not created here).
    #[error("certificate {name:?} has no certificate signing request (it was not created here)")]
    NoCsr {
        /// The name.
        name: String,
    },
    /// Both CA lists are disabled: nothing to verify a peer against (seed: "you can also use
    /// both lists"; at least one must be enabled).
    #[error("no certificate authority list is enabled; enable the system or the custom list")]
    NoCaListEnabled,
    /// The custom CA list is enabled but empty.
    #[error("the custom certificate authority list is empty; import one first")]
    CustomCaListEmpty,
    /// A file of the store could not be read or written.
    #[error("{}: {reason}", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's message.
        reason: String,
    },
    /// Files of the store that are corrupt or half-written; every one is listed.
    #[error("certificate store is damaged: {}", crate::store::describe_problems(.problems))]
    StoreCorrupt {
        /// Each damaged file with what is wrong with it.
        problems: Vec<crate::store::FileProblem>,
    },
    /// No certificate is assigned to that listener.
    #[error("no certificate is assigned to listener {listener:?}")]
    Unassigned {
        /// The listener's name.
        listener: String,
    },
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Tls(String),
}

/// Result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, err: &std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            reason: err.to_string(),
        }
    }
}
