//! The certificate store: a directory of named certificates, their keys, the CA list settings
//! and the assignment of certificates to listeners.
//!
//! # On-disk layout
//!
//! ```text
//! STORE/
//!   store.toml            format, CA list switches, assignments, SHA-256 of ca/custom.pem
//!   ca/custom.pem         the custom CA list (PEM)
//!   certs/NAME/cert.pem   the certificate (leaf)
//!   certs/NAME/chain.pem  intermediates served after it (may be empty)
//!   certs/NAME/key.pem    its private key, PKCS#8 PEM, mode 0600
//!   certs/NAME/csr.pem    the CSR, for certificates created here
//!   certs/NAME/meta.toml  origin, creation time and the SHA-256 of each file above
//! ```
//!
//! Every file is replaced atomically (temporary file, fsync, rename, fsync of the directory).
//! `meta.toml` is written last and records each file's digest, so an update interrupted
//! between two files, a truncated file or an entry whose `meta.toml` never got written is
//! detected on [`CertStore::open`] and reported with the file's name
//! ([`Error::StoreCorrupt`]); nothing is silently dropped. Names starting with `.` are
//! temporary files of interrupted writes and are ignored (the previous file is intact).

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use rustls_pki_types::CertificateDer;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::fsutil::{self, KEY_MODE, PUBLIC_MODE};
use crate::import::{BadEntryPolicy, parse_bundle};
use crate::key::PrivateKey;

/// Version of the on-disk format written by this crate.
pub(crate) const FORMAT: u32 = 1;
/// Most named certificates in one store.
pub const MAX_CERTIFICATES: usize = 1000;
/// Largest file of the store read, in bytes.
pub const MAX_FILE_BYTES: usize = 4 * 1024 * 1024;

/// A damaged file found while loading the store.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FileProblem {
    /// The file (or entry directory).
    pub path: PathBuf,
    /// What is wrong.
    pub reason: String,
}

impl fmt::Display for FileProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.reason)
    }
}

pub(crate) fn describe_problems(p: &[FileProblem]) -> String {
    p.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// How a named certificate came into the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Origin {
    /// Created here, self-signed.
    SelfSigned,
    /// Created here, then replaced by the CA-signed certificate for its CSR.
    CaSigned,
    /// Imported from PEM/DER files.
    Imported,
    /// Imported from a PKCS#12 file.
    Pkcs12,
    /// The built-in demonstration certificate (not secure).
    Demo,
}

/// One named certificate with its key.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct StoredCert {
    /// The name (also the directory name).
    pub name: String,
    /// Leaf first, then the intermediates served with it.
    pub chain: Vec<CertificateDer<'static>>,
    /// The private key.
    pub(crate) key: PrivateKey,
    /// The CSR (PEM), for certificates created here.
    pub csr_pem: Option<String>,
    /// How it came here.
    pub origin: Origin,
}

impl StoredCert {
    /// The private key (secret: never log it).
    pub fn key(&self) -> &PrivateKey {
        &self.key
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Settings {
    pub(crate) format: u32,
    pub(crate) system_ca_enabled: bool,
    pub(crate) custom_ca_enabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) custom_ca_sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) outgoing: Option<String>,
    #[serde(default)]
    pub(crate) listeners: BTreeMap<String, String>,
    /// HTTPS listeners (the relay's MTA-STS policy host) by name: their own namespace, so an
    /// SMTP and an HTTPS listener may share a name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) https_listeners: BTreeMap<String, String>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            format: FORMAT,
            system_ca_enabled: true,
            custom_ca_enabled: false,
            custom_ca_sha256: None,
            outgoing: None,
            listeners: BTreeMap::new(),
            https_listeners: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Meta {
    format: u32,
    origin: Origin,
    created: String,
    sha256: BTreeMap<String, String>,
}

/// The store: see the module documentation for its layout.
///
/// ```
/// use cert_store::{CertStore, SelfSignedRequest, Subject};
/// let dir = tempfile::tempdir()?;
/// let mut store = CertStore::open(dir.path())?;
/// store.create_self_signed("mx", &SelfSignedRequest::new(Subject::new("mx.example.com")))?;
/// let again = CertStore::open(dir.path())?;
/// assert!(again.get("mx").is_ok());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct CertStore {
    pub(crate) dir: PathBuf,
    pub(crate) certs: BTreeMap<String, StoredCert>,
    pub(crate) settings: Settings,
    pub(crate) custom_ca: Vec<CertificateDer<'static>>,
}

pub(crate) const CERT: &str = "cert.pem";
pub(crate) const CHAIN: &str = "chain.pem";
pub(crate) const KEY: &str = "key.pem";
pub(crate) const CSR: &str = "csr.pem";
const META: &str = "meta.toml";
const SETTINGS: &str = "store.toml";
const CUSTOM_CA: &str = "ca/custom.pem";

/// Checks a certificate name: 1..=64 of `A-Z a-z 0-9 . _ -`, not starting with `.` or `-`.
pub fn validate_name(name: &str) -> Result<()> {
    let bad = |reason| Error::InvalidName {
        name: name.into(),
        reason,
    };
    if name.is_empty() || name.len() > 64 {
        return Err(bad("must be 1 to 64 characters"));
    }
    if name.starts_with('.') || name.starts_with('-') {
        return Err(bad("must not start with '.' or '-'"));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err(bad("only letters, digits, '.', '_' and '-' are allowed"));
    }
    Ok(())
}

impl CertStore {
    /// Opens the store in `dir`, creating an empty one if `dir` does not exist or is empty.
    ///
    /// Every file is checked; all damaged files are reported together in
    /// [`Error::StoreCorrupt`].
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        let is_new = match fs::read_dir(&dir) {
            Ok(mut it) => it.next().is_none(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
            Err(e) => return Err(Error::io(&dir, &e)),
        };
        if is_new {
            fsutil::create_dir(&dir.join("certs"))?;
            fsutil::create_dir(&dir.join("ca"))?;
            let store = Self {
                dir,
                certs: BTreeMap::new(),
                settings: Settings::default(),
                custom_ca: Vec::new(),
            };
            store.save_settings()?;
            return Ok(store);
        }
        let mut problems = Vec::new();
        let settings = load_settings(&dir.join(SETTINGS)).unwrap_or_else(|p| {
            problems.push(p);
            Settings::default()
        });
        let mut custom_ca = Vec::new();
        if let Some(digest) = &settings.custom_ca_sha256 {
            match load_custom_ca(&dir.join(CUSTOM_CA), digest) {
                Ok(list) => custom_ca = list,
                Err(p) => problems.push(p),
            }
        }
        let mut certs = BTreeMap::new();
        let certs_dir = dir.join("certs");
        match fs::read_dir(&certs_dir) {
            Ok(it) => {
                for ent in it.flatten() {
                    let name = ent.file_name().to_string_lossy().into_owned();
                    if name.starts_with('.') {
                        continue;
                    }
                    if certs.len() >= MAX_CERTIFICATES {
                        problems.push(FileProblem {
                            path: certs_dir.clone(),
                            reason: format!("more than {MAX_CERTIFICATES} certificates"),
                        });
                        break;
                    }
                    match load_entry(&ent.path(), &name) {
                        Ok(c) => {
                            certs.insert(name, c);
                        }
                        Err(p) => problems.push(p),
                    }
                }
            }
            Err(e) => problems.push(FileProblem {
                path: certs_dir,
                reason: e.to_string(),
            }),
        }
        if !problems.is_empty() {
            return Err(Error::StoreCorrupt { problems });
        }
        Ok(Self {
            dir,
            certs,
            settings,
            custom_ca,
        })
    }

    /// The store's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Looks a certificate up by name (the demonstration certificate included; using it logs a
    /// warning, seed "Caution").
    pub fn get(&self, name: &str) -> Result<StoredCert> {
        if name == crate::demo::DEMO_NAME {
            return crate::demo::demo_cert();
        }
        self.certs
            .get(name)
            .cloned()
            .ok_or_else(|| Error::UnknownCertificate { name: name.into() })
    }

    /// Names of the stored certificates (the demonstration certificate first).
    pub fn names(&self) -> Vec<String> {
        std::iter::once(crate::demo::DEMO_NAME.to_string())
            .chain(self.certs.keys().cloned())
            .collect()
    }

    pub(crate) fn ensure_new_name(&self, name: &str) -> Result<()> {
        validate_name(name)?;
        if name == crate::demo::DEMO_NAME {
            return Err(Error::DemoReadOnly {
                name: crate::demo::DEMO_NAME,
            });
        }
        if self.certs.contains_key(name) {
            return Err(Error::NameExists { name: name.into() });
        }
        Ok(())
    }

    pub(crate) fn save_settings(&self) -> Result<()> {
        let text = toml::to_string(&self.settings).map_err(|e| Error::Io {
            path: self.dir.join(SETTINGS),
            reason: e.to_string(),
        })?;
        fsutil::write_atomic(&self.dir.join(SETTINGS), text.as_bytes(), PUBLIC_MODE)
    }

    pub(crate) fn write_custom_ca(&mut self, pem_text: &str) -> Result<()> {
        fsutil::create_dir(&self.dir.join("ca"))?;
        fsutil::write_atomic(&self.dir.join(CUSTOM_CA), pem_text.as_bytes(), PUBLIC_MODE)?;
        self.settings.custom_ca_sha256 = Some(hex::encode(Sha256::digest(pem_text)));
        self.save_settings()
    }

    /// Writes a whole entry; `meta.toml` last. Files not in `files` are removed first.
    pub(crate) fn write_entry(&mut self, cert: StoredCert) -> Result<()> {
        let dir = self.dir.join("certs").join(&cert.name);
        fsutil::create_dir(&dir)?;
        let leaf = cert.chain.first().ok_or(Error::NoCertificate)?;
        let mut files: Vec<(&str, String, u32)> = vec![
            (CERT, crate::import::certs_to_pem([leaf]), PUBLIC_MODE),
            (
                CHAIN,
                crate::import::certs_to_pem(&cert.chain[1..]),
                PUBLIC_MODE,
            ),
            (KEY, cert.key.to_pem(), KEY_MODE),
        ];
        if let Some(csr) = &cert.csr_pem {
            files.push((CSR, csr.clone(), PUBLIC_MODE));
        }
        let mut sha256 = BTreeMap::new();
        for (file, text, mode) in &files {
            let path = dir.join(file);
            let unchanged = fs::read(&path).is_ok_and(|old| old == text.as_bytes());
            if !unchanged {
                fsutil::write_atomic(&path, text.as_bytes(), *mode)?;
            }
            sha256.insert((*file).to_string(), hex::encode(Sha256::digest(text)));
        }
        let meta = Meta {
            format: FORMAT,
            origin: cert.origin,
            created: time::OffsetDateTime::now_utc()
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
            sha256,
        };
        let text = toml::to_string(&meta).map_err(|e| Error::Io {
            path: dir.join(META),
            reason: e.to_string(),
        })?;
        fsutil::write_atomic(&dir.join(META), text.as_bytes(), PUBLIC_MODE)?;
        self.certs.insert(cert.name.clone(), cert);
        Ok(())
    }

    /// Removes a named certificate and its assignments.
    pub fn remove(&mut self, name: &str) -> Result<()> {
        if name == crate::demo::DEMO_NAME {
            return Err(Error::DemoReadOnly {
                name: crate::demo::DEMO_NAME,
            });
        }
        if !self.certs.contains_key(name) {
            return Err(Error::UnknownCertificate { name: name.into() });
        }
        let dir = self.dir.join("certs").join(name);
        let trash = self.dir.join("certs").join(format!(".deleted-{name}"));
        let _ = fs::remove_dir_all(&trash);
        fs::rename(&dir, &trash).map_err(|e| Error::io(&dir, &e))?;
        let _ = fs::remove_dir_all(&trash);
        self.certs.remove(name);
        self.settings.listeners.retain(|_, c| c != name);
        self.settings.https_listeners.retain(|_, c| c != name);
        if self.settings.outgoing.as_deref() == Some(name) {
            self.settings.outgoing = None;
        }
        self.save_settings()
    }
}

fn problem(path: &Path, reason: impl Into<String>) -> FileProblem {
    FileProblem {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

fn read_limited(path: &Path) -> Result<Vec<u8>, FileProblem> {
    let bytes = fsutil::read(path).map_err(|e| problem(path, e.to_string()))?;
    if bytes.len() > MAX_FILE_BYTES {
        return Err(problem(path, format!("larger than {MAX_FILE_BYTES} bytes")));
    }
    Ok(bytes)
}

fn load_settings(path: &Path) -> Result<Settings, FileProblem> {
    let bytes = read_limited(path)?;
    let text = std::str::from_utf8(&bytes).map_err(|_| problem(path, "not UTF-8"))?;
    let s: Settings = toml::from_str(text).map_err(|e| problem(path, e.message().to_string()))?;
    if s.format != FORMAT {
        return Err(problem(path, format!("unknown format {}", s.format)));
    }
    Ok(s)
}

fn load_custom_ca(path: &Path, digest: &str) -> Result<Vec<CertificateDer<'static>>, FileProblem> {
    let bytes = read_limited(path)?;
    if hex::encode(Sha256::digest(&bytes)) != digest {
        return Err(problem(
            path,
            "does not match the digest in store.toml (truncated?)",
        ));
    }
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    parse_bundle(&bytes, BadEntryPolicy::Reject)
        .map(|b| b.certs)
        .map_err(|e| problem(path, e.to_string()))
}

fn load_entry(dir: &Path, name: &str) -> Result<StoredCert, FileProblem> {
    validate_name(name).map_err(|e| problem(dir, e.to_string()))?;
    let meta_path = dir.join(META);
    let meta_bytes = read_limited(&meta_path).map_err(|p| FileProblem {
        reason: format!("{} (entry creation interrupted?)", p.reason),
        ..p
    })?;
    let meta: Meta = std::str::from_utf8(&meta_bytes)
        .map_err(|_| problem(&meta_path, "not UTF-8"))
        .and_then(|t| toml::from_str(t).map_err(|e| problem(&meta_path, e.message().trim())))?;
    if meta.format != FORMAT {
        return Err(problem(
            &meta_path,
            format!("unknown format {}", meta.format),
        ));
    }
    let mut texts = BTreeMap::new();
    for file in [CERT, CHAIN, KEY, CSR] {
        let path = dir.join(file);
        let Some(digest) = meta.sha256.get(file) else {
            if file == CSR {
                continue;
            }
            return Err(problem(&meta_path, format!("no digest for {file}")));
        };
        let bytes = read_limited(&path)?;
        if hex::encode(Sha256::digest(&bytes)) != *digest {
            return Err(problem(
                &path,
                "does not match the digest in meta.toml (truncated or interrupted update?)",
            ));
        }
        texts.insert(file, bytes);
    }
    let cert_path = dir.join(CERT);
    let leaf = parse_bundle(&texts[CERT], BadEntryPolicy::Reject)
        .map_err(|e| problem(&cert_path, e.to_string()))?
        .certs;
    if leaf.len() != 1 {
        return Err(problem(&cert_path, "must hold exactly one certificate"));
    }
    let mut chain = leaf;
    if !texts[CHAIN].is_empty() {
        let extra = parse_bundle(&texts[CHAIN], BadEntryPolicy::Reject)
            .map_err(|e| problem(&dir.join(CHAIN), e.to_string()))?;
        chain.extend(extra.certs);
    }
    let key_path = dir.join(KEY);
    let key =
        PrivateKey::from_pem_or_der(&texts[KEY]).map_err(|e| problem(&key_path, e.to_string()))?;
    if let Ok(md) = fs::metadata(&key_path)
        && md.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(file = %key_path.display(), "private key file is readable by others");
    }
    crate::pkcs12::check_key_matches(&key, &chain[0], name)
        .map_err(|e| problem(&cert_path, e.to_string()))?;
    let csr_pem = match texts.get(CSR) {
        Some(b) => {
            Some(String::from_utf8(b.clone()).map_err(|_| problem(&dir.join(CSR), "not UTF-8"))?)
        }
        None => None,
    };
    Ok(StoredCert {
        name: name.into(),
        chain,
        key,
        csr_pem,
        origin: meta.origin,
    })
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
