//! PKCS#12 import and export (seed: "Importing a Certificate", "Exporting a Certificate").
//!
//! Import reads what `openssl pkcs12 -export` writes, with OpenSSL 3's defaults (PBES2,
//! AES-256-CBC, PBKDF2 and an HMAC-SHA256 MAC) and with `-legacy` (3DES/RC2 with an SHA-1 MAC).
//! Export writes PBES2/AES-256-CBC with an HMAC-SHA256 MAC, which OpenSSL 3 reads by default.

use p12_keystore::{KeyStore, KeyStoreEntry, Pkcs12ImportPolicy, PrivateKeyChain};
use rustls_pki_types::CertificateDer;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::key::PrivateKey;

/// Largest PKCS#12 file read, in bytes.
pub const MAX_PKCS12_BYTES: usize = 1024 * 1024;

/// A private key with its certificate chain, leaf first.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Identity {
    /// The private key.
    pub key: PrivateKey,
    /// The leaf certificate followed by any intermediates.
    pub chain: Vec<CertificateDer<'static>>,
}

impl Identity {
    /// Pairs a key with its chain, checking that the leaf belongs to the key.
    pub fn new(key: PrivateKey, chain: Vec<CertificateDer<'static>>, name: &str) -> Result<Self> {
        let leaf = chain.first().ok_or(Error::NoCertificate)?;
        check_key_matches(&key, leaf, name)?;
        Ok(Self { key, chain })
    }
}

/// Fails with [`Error::KeyMismatch`] unless `cert`'s public key is `key`'s.
pub fn check_key_matches(key: &PrivateKey, cert: &CertificateDer<'_>, name: &str) -> Result<()> {
    let (_, parsed) =
        x509_parser::parse_x509_certificate(cert).map_err(|e| Error::InvalidCertificate {
            reason: e.to_string(),
        })?;
    if parsed.public_key().raw != key.public_key_spki()?.as_slice() {
        return Err(Error::KeyMismatch { name: name.into() });
    }
    Ok(())
}

/// Reads a PKCS#12 file protected by `passphrase`.
///
/// Errors: [`Error::Pkcs12WrongPassphrase`], [`Error::Pkcs12Corrupt`], [`Error::Pkcs12NoKey`],
/// and [`Error::KeyMismatch`] when the certificate does not belong to the key.
pub fn import_pkcs12(data: &[u8], passphrase: &str, name: &str) -> Result<Identity> {
    if data.len() > MAX_PKCS12_BYTES {
        return Err(Error::TooLarge {
            what: "PKCS#12 file",
            size: data.len(),
            limit: MAX_PKCS12_BYTES,
        });
    }
    let store =
        KeyStore::from_pkcs12(data, passphrase, Pkcs12ImportPolicy::Strict).map_err(map_err)?;
    let (_, chain) = store.private_key_chain().ok_or(Error::Pkcs12NoKey)?;
    let key = PrivateKey::from_pem_or_der(chain.key().as_der())?;
    let certs: Vec<CertificateDer<'static>> = chain
        .certs()
        .iter()
        .map(|c| CertificateDer::from(c.as_der().to_vec()))
        .collect();
    if certs.is_empty() {
        return Err(Error::Pkcs12NoKey);
    }
    Identity::new(key, certs, name)
}

fn map_err(e: p12_keystore::error::Error) -> Error {
    use p12_keystore::error::Error as P;
    match e {
        // The MAC is keyed by the passphrase; without a MAC, a wrong passphrase shows up as
        // bad padding after decryption.
        P::MacError(_) | P::UnpadError => Error::Pkcs12WrongPassphrase,
        other => Error::Pkcs12Corrupt {
            reason: other.to_string(),
        },
    }
}

/// Writes `identity` as a PKCS#12 file protected by `passphrase`, under `alias`.
pub fn export_pkcs12(identity: &Identity, passphrase: &str, alias: &str) -> Result<Vec<u8>> {
    let corrupt = |e: p12_keystore::error::Error| Error::Pkcs12Corrupt {
        reason: e.to_string(),
    };
    let key = p12_keystore::PrivateKey::from_der(identity.key.pkcs8_der()).map_err(corrupt)?;
    let certs = identity
        .chain
        .iter()
        .map(|c| p12_keystore::Certificate::from_der(c.as_ref()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(corrupt)?;
    let leaf = identity.chain.first().ok_or(Error::NoCertificate)?;
    let local_key_id = Sha256::digest(leaf.as_ref())[..20].to_vec();
    let mut store = KeyStore::new();
    store.add_entry(
        alias,
        KeyStoreEntry::PrivateKeyChain(PrivateKeyChain::new(local_key_id, key, certs)),
    );
    store.writer(passphrase).write().map_err(corrupt)
}
