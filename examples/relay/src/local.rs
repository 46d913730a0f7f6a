//! Local delivery into Maildir folders (one per recipient address), as in the Maildir
//! specification (D. J. Bernstein, "Using maildir format"): the message is written and fsynced
//! under `tmp/` with a unique name, then renamed into `new/` and the directory fsynced, so a
//! reader never sees a partial file and a delivered message survives a crash.
//!
//! A `Return-Path:` (RFC 5321 §4.4) and a `Delivered-To:` header are prepended; line endings are
//! stored as LF, as mail readers expect in a maildir.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Longest recipient address accepted as a folder name.
pub const MAX_FOLDER_NAME: usize = 254;

static DELIVERIES: AtomicU64 = AtomicU64::new(0);

/// A maildir root: `ROOT/<recipient>/{tmp,new,cur}`.
///
/// ```
/// use relay::local::Maildir;
/// let dir = tempfile::tempdir().unwrap();
/// let md = Maildir::new(dir.path());
/// let path = md.deliver("a@example.org", "b@localhost", b"Subject: hi\r\n\r\nhello\r\n").unwrap();
/// let text = std::fs::read_to_string(&path).unwrap();
/// assert!(text.starts_with("Return-Path: <a@example.org>\nDelivered-To: b@localhost\n"));
/// assert!(path.parent().unwrap().ends_with("b@localhost/new"));
/// ```
#[derive(Debug, Clone)]
pub struct Maildir {
    root: PathBuf,
}

impl Maildir {
    /// A maildir root (created on first delivery).
    #[must_use]
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The root directory.
    #[must_use]
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The folder of a recipient (`ROOT/<address>`), or an error for an address that cannot be
    /// a file name.
    pub fn folder(&self, recipient: &str) -> io::Result<PathBuf> {
        let name = recipient.to_ascii_lowercase();
        let ok = !name.is_empty()
            && name.len() <= MAX_FOLDER_NAME
            && !name.starts_with('.')
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"@.-_+=".contains(&b));
        if !ok {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("recipient {recipient:?} cannot be a maildir folder name"),
            ));
        }
        Ok(self.root.join(name))
    }

    /// Delivers one message (blocking; call from `spawn_blocking`). Returns the file in `new/`.
    pub fn deliver(&self, sender: &str, recipient: &str, body: &[u8]) -> io::Result<PathBuf> {
        let folder = self.folder(recipient)?;
        for sub in ["tmp", "new", "cur"] {
            fs::create_dir_all(folder.join(sub))?;
        }
        let name = unique_name();
        let tmp = folder.join("tmp").join(&name);
        let new = folder.join("new").join(&name);
        let mut f = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        let result = (|| {
            let mut out = Vec::with_capacity(body.len() + 128);
            write!(
                out,
                "Return-Path: <{}>\nDelivered-To: {}\n",
                clean(sender),
                clean(recipient)
            )?;
            out.extend(crlf_to_lf(body));
            f.write_all(&out)?;
            f.sync_all()?;
            fs::rename(&tmp, &new)?;
            File::open(folder.join("new"))?.sync_all()
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result.map(|()| new)
    }
}

/// `time.M<micros>P<pid>Q<n>R<random>.host` (unique per delivery, per the maildir spec).
fn unique_name() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let n = DELIVERIES.fetch_add(1, Ordering::Relaxed);
    let host = fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().replace(['/', ':'], "_"))
        .unwrap_or_else(|_| "localhost".into());
    format!(
        "{}.M{}P{}Q{n}R{:08x}.{host}",
        now.as_secs(),
        now.subsec_micros(),
        std::process::id(),
        fastrand::u32(..)
    )
}

/// Header values from the envelope: printable ASCII only (no header injection).
fn clean(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_graphic() || *c == ' ')
        .collect()
}

fn crlf_to_lf(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len());
    let mut i = 0;
    while i < body.len() {
        if body[i] == b'\r' && body.get(i + 1) == Some(&b'\n') {
            i += 1;
            continue;
        }
        out.push(body[i]);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_folders_safe() {
        let dir = tempfile::tempdir().unwrap();
        let md = Maildir::new(dir.path());
        let a = md.deliver("", "x@localhost", b"a\r\n").unwrap();
        let b = md.deliver("", "x@localhost", b"b\r\n").unwrap();
        assert_ne!(a, b);
        assert_eq!(
            fs::read_dir(dir.path().join("x@localhost/tmp"))
                .unwrap()
                .count(),
            0
        );
        assert!(
            fs::read_to_string(&a)
                .unwrap()
                .starts_with("Return-Path: <>\n")
        );
        for bad in ["../etc@x", ".hidden", "a/b@x", "", "a b@x"] {
            assert!(md.deliver("", bad, b"x").is_err(), "{bad}");
        }
    }

    #[test]
    fn crlf_becomes_lf() {
        assert_eq!(crlf_to_lf(b"a\r\nb\rc\r\n"), b"a\nb\rc\n");
    }
}
