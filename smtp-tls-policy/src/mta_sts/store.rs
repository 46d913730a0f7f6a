//! Where the policy cache lives between deliveries and restarts: the small [`PolicyStore`] trait
//! over [`CacheEntry`] (keyed by [`PolicyDomain`]), an in-memory store and [`FilePolicyStore`],
//! one JSON file per policy domain in a directory, written crash-safely (temporary file, fsync,
//! rename, fsync of the directory).
//!
//! A file that cannot be read back (truncated, edited by hand, too large, another domain's entry)
//! is a [`StoreError`]; [`PolicyStore::load`] logs it and treats the entry as absent, so a
//! damaged cache costs a fetch, never a panic or a wrong policy.
//!
//! ```
//! use smtp_tls_policy::mta_sts::{CacheEntry, FilePolicyStore, PolicyDomain, PolicyStore};
//! let dir = tempfile::tempdir()?;
//! let store = FilePolicyStore::open(dir.path())?;
//! let domain = PolicyDomain::parse("Example.COM.")?;
//! store.put(&CacheEntry::new(domain.clone()))?;
//! let again = PolicyDomain::parse("example.com")?;
//! assert_eq!(store.get(&again)?.map(|e| e.domain), Some(domain));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use super::cache::{CacheEntry, PolicyDomain};

/// The largest entry file read back (a policy is at most 64 KiB; JSON escaping may grow it).
pub const MAX_ENTRY_FILE: u64 = 1024 * 1024;

/// A store operation that failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The file system refused (open, read, write, rename, fsync...).
    #[error("policy store {op} {path}: {detail}")]
    Io {
        /// The operation.
        op: &'static str,
        /// The path involved.
        path: String,
        /// The I/O error.
        detail: String,
    },
    /// The stored entry cannot be used (not JSON of a cache entry, another domain's, too large).
    #[error("policy store entry {path} is corrupt: {detail}")]
    Corrupt {
        /// The file.
        path: String,
        /// What is wrong.
        detail: String,
    },
    /// The entry could not be serialised.
    #[error("policy store entry for {domain} cannot be encoded: {detail}")]
    Encode {
        /// The policy domain.
        domain: String,
        /// Why.
        detail: String,
    },
}

/// Keeps MTA-STS cache entries by policy domain. Synchronous and small, so that a shared store
/// (a database, Redis) can implement it too.
pub trait PolicyStore: Send + Sync {
    /// The entry of `domain`, if stored.
    fn get(&self, domain: &PolicyDomain) -> Result<Option<CacheEntry>, StoreError>;
    /// Stores `entry` under its domain, replacing any previous one.
    fn put(&self, entry: &CacheEntry) -> Result<(), StoreError>;
    /// Removes the entry of `domain`; returns it if one was stored and readable.
    fn remove(&self, domain: &PolicyDomain) -> Result<Option<CacheEntry>, StoreError>;
    /// Every readable entry, by domain. Unreadable ones are skipped (and logged).
    fn list(&self) -> Result<Vec<CacheEntry>, StoreError>;

    /// [`Self::get`] where an error (a corrupt file, an I/O failure) is logged and treated as
    /// "nothing stored": the cache machine then fetches anew.
    fn load(&self, domain: &PolicyDomain) -> Option<CacheEntry> {
        match self.get(domain) {
            Ok(entry) => entry,
            Err(e) => {
                tracing::warn!(domain = %domain, error = %e, "MTA-STS cache entry unusable; treated as absent");
                None
            }
        }
    }
}

/// A store in memory (tests, a relay without a data directory).
#[derive(Debug, Default)]
pub struct MemoryPolicyStore {
    entries: Mutex<BTreeMap<PolicyDomain, CacheEntry>>,
}

impl MemoryPolicyStore {
    /// An empty store.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<PolicyDomain, CacheEntry>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl PolicyStore for MemoryPolicyStore {
    fn get(&self, domain: &PolicyDomain) -> Result<Option<CacheEntry>, StoreError> {
        Ok(self.lock().get(domain).cloned())
    }
    fn put(&self, entry: &CacheEntry) -> Result<(), StoreError> {
        self.lock().insert(entry.domain.clone(), entry.clone());
        Ok(())
    }
    fn remove(&self, domain: &PolicyDomain) -> Result<Option<CacheEntry>, StoreError> {
        Ok(self.lock().remove(domain))
    }
    fn list(&self) -> Result<Vec<CacheEntry>, StoreError> {
        Ok(self.lock().values().cloned().collect())
    }
}

/// One JSON file per policy domain (`DOMAIN.json`) in a directory.
///
/// Writes go to a unique temporary file in the same directory, which is fsynced, renamed over
/// the entry and followed by an fsync of the directory: a crash leaves the old entry or the new
/// one, never a torn file. Writers of distinct domains never touch each other's files; writers
/// of one domain race to the last rename (each file whole).
#[derive(Debug)]
pub struct FilePolicyStore {
    dir: PathBuf,
}

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

fn io_error(op: &'static str, path: &Path, e: &std::io::Error) -> StoreError {
    StoreError::Io {
        op,
        path: path.display().to_string(),
        detail: e.to_string(),
    }
}

impl FilePolicyStore {
    /// Opens (creating it if needed) the store directory `dir`.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let dir = dir.into();
        fs::create_dir_all(&dir).map_err(|e| io_error("create", &dir, &e))?;
        Ok(Self { dir })
    }

    /// The directory.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file that holds `domain`'s entry.
    #[must_use]
    pub fn path_of(&self, domain: &PolicyDomain) -> PathBuf {
        self.dir.join(file_name(domain))
    }

    fn read(&self, path: &Path, domain: Option<&PolicyDomain>) -> Result<CacheEntry, StoreError> {
        let file = File::open(path).map_err(|e| io_error("open", path, &e))?;
        let mut bytes = Vec::new();
        file.take(MAX_ENTRY_FILE + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| io_error("read", path, &e))?;
        let corrupt = |detail: String| StoreError::Corrupt {
            path: path.display().to_string(),
            detail,
        };
        if bytes.len() as u64 > MAX_ENTRY_FILE {
            return Err(corrupt(format!("larger than {MAX_ENTRY_FILE} bytes")));
        }
        let entry: CacheEntry =
            serde_json::from_slice(&bytes).map_err(|e| corrupt(e.to_string()))?;
        if let Some(d) = domain
            && &entry.domain != d
        {
            return Err(corrupt(format!("holds the entry of {}", entry.domain)));
        }
        Ok(entry)
    }
}

/// `DOMAIN.json`: a normalised domain is lower-case letters, digits, `-`, `_` and dots, never
/// starting with a dot, so it is a safe file name.
fn file_name(domain: &PolicyDomain) -> String {
    let safe: String = domain
        .as_str()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{safe}.json")
}

impl PolicyStore for FilePolicyStore {
    fn get(&self, domain: &PolicyDomain) -> Result<Option<CacheEntry>, StoreError> {
        let path = self.path_of(domain);
        match self.read(&path, Some(domain)) {
            Ok(entry) => Ok(Some(entry)),
            Err(StoreError::Io { .. }) if !path.exists() => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn put(&self, entry: &CacheEntry) -> Result<(), StoreError> {
        let json = serde_json::to_vec_pretty(entry).map_err(|e| StoreError::Encode {
            domain: entry.domain.to_string(),
            detail: e.to_string(),
        })?;
        let path = self.path_of(&entry.domain);
        let tmp = self.dir.join(format!(
            ".{}.{}.{}.tmp",
            file_name(&entry.domain),
            std::process::id(),
            TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let written = (|| {
            let mut f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&tmp)
                .map_err(|e| io_error("create", &tmp, &e))?;
            f.write_all(&json)
                .map_err(|e| io_error("write", &tmp, &e))?;
            f.sync_all().map_err(|e| io_error("fsync", &tmp, &e))?;
            fs::rename(&tmp, &path).map_err(|e| io_error("rename", &path, &e))
        })();
        if written.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        written?;
        sync_dir(&self.dir)
    }

    fn remove(&self, domain: &PolicyDomain) -> Result<Option<CacheEntry>, StoreError> {
        let path = self.path_of(domain);
        if !path.exists() {
            return Ok(None);
        }
        let old = self.read(&path, Some(domain)).ok();
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_error("remove", &path, &e)),
        }
        sync_dir(&self.dir)?;
        Ok(old)
    }

    fn list(&self) -> Result<Vec<CacheEntry>, StoreError> {
        let rd = fs::read_dir(&self.dir).map_err(|e| io_error("list", &self.dir, &e))?;
        let mut out = Vec::new();
        for item in rd {
            let item = item.map_err(|e| io_error("list", &self.dir, &e))?;
            let name = item.file_name();
            let name = name.to_string_lossy();
            if name.starts_with('.') || !name.ends_with(".json") {
                continue;
            }
            match self.read(&item.path(), None) {
                Ok(entry) if self.path_of(&entry.domain) == item.path() => out.push(entry),
                Ok(entry) => {
                    tracing::warn!(file = %name, domain = %entry.domain, "MTA-STS cache file holds another domain's entry; skipped");
                }
                Err(e) => tracing::warn!(error = %e, "MTA-STS cache entry unusable; skipped"),
            }
        }
        out.sort_by(|a, b| a.domain.cmp(&b.domain));
        Ok(out)
    }
}

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_error("fsync", dir, &e))
}
