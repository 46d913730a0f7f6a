//! Spool recovery at start-up: rebuild the queue from the files, quarantine everything else.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use super::envelope::{Envelope, MessageId};
use super::error::{RelayError, SpoolDefect};
use super::spool_file::{self, ENV_EXT, MSG_EXT, TMP_EXT};

/// Name of the quarantine sub-directory of the spool.
pub const QUARANTINE_DIR: &str = "quarantine";

/// A file moved to the quarantine directory, and why. Nothing is ever deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quarantined {
    /// Where the file was in the spool.
    pub original: PathBuf,
    /// Where it is now.
    pub moved_to: PathBuf,
    /// Why it was quarantined (names the file).
    pub reason: RelayError,
}

/// What recovery found.
#[derive(Debug, Default)]
pub struct Recovery {
    /// Messages back in the queue (with their latest envelope), oldest first.
    pub messages: Vec<Envelope>,
    /// Files moved aside, each reported.
    pub quarantined: Vec<Quarantined>,
}

#[derive(Default)]
struct Pair {
    msg: Option<PathBuf>,
    env: Option<PathBuf>,
}

/// Scans `dir`, returning the recovered messages and quarantining bad files.
pub(crate) fn recover(dir: &Path) -> Result<Recovery, RelayError> {
    let qdir = dir.join(QUARANTINE_DIR);
    fs::create_dir_all(&qdir).map_err(|e| RelayError::io("mkdir", &qdir, &e))?;
    let mut out = Recovery::default();
    let mut pairs: BTreeMap<MessageId, Pair> = BTreeMap::new();
    let mut bad: Vec<(PathBuf, RelayError)> = Vec::new();
    let entries = fs::read_dir(dir).map_err(|e| RelayError::io("readdir", dir, &e))?;
    for entry in entries {
        let entry = entry.map_err(|e| RelayError::io("readdir", dir, &e))?;
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name == QUARANTINE_DIR {
            continue;
        }
        match classify(&name) {
            Some((id, MSG_EXT)) => pairs.entry(id).or_default().msg = Some(path),
            Some((id, ENV_EXT)) => pairs.entry(id).or_default().env = Some(path),
            _ if name.ends_with(&format!(".{TMP_EXT}")) => {
                bad.push((path.clone(), RelayError::Unfinished { path }));
            }
            _ => bad.push((path.clone(), RelayError::UnknownFile { path })),
        }
    }
    for (id, pair) in pairs {
        match load_pair(&id, &pair) {
            Ok(env) => out.messages.push(env),
            Err(reason) => {
                // Quarantine the whole message so a stale envelope can never cause a
                // re-delivery of a recipient already marked delivered.
                for p in [pair.msg, pair.env].into_iter().flatten() {
                    bad.push((p, reason.clone()));
                }
            }
        }
    }
    for (path, reason) in bad {
        let moved_to = quarantine(&path, &qdir)?;
        tracing::warn!(file = %path.display(), to = %moved_to.display(), %reason,
            "spool file quarantined");
        out.quarantined.push(Quarantined {
            original: path,
            moved_to,
            reason,
        });
    }
    if !out.quarantined.is_empty() {
        spool_file::fsync_dir(&qdir)?;
        spool_file::fsync_dir(dir)?;
    }
    out.messages
        .sort_by(|a, b| (a.arrival, &a.id).cmp(&(b.arrival, &b.id)));
    Ok(out)
}

/// `<id>.msg` / `<id>.env` → (id, extension).
fn classify(name: &str) -> Option<(MessageId, &str)> {
    let (stem, ext) = name.rsplit_once('.')?;
    let ext = [MSG_EXT, ENV_EXT].into_iter().find(|e| *e == ext)?;
    Some((MessageId::parse(stem)?, ext))
}

fn load_pair(id: &MessageId, pair: &Pair) -> Result<Envelope, RelayError> {
    let Some(msg) = &pair.msg else {
        let path = pair.env.clone().unwrap_or_default();
        return Err(RelayError::Orphan { path });
    };
    let parsed = spool_file::read_envelope(msg)?;
    check_id(msg, id, &parsed.envelope)?;
    if parsed.envelope.body_len != parsed.body_len {
        return Err(RelayError::Corrupt {
            path: msg.clone(),
            defect: SpoolDefect::LengthMismatch {
                expected: parsed.envelope.body_len,
                actual: parsed.body_len,
            },
        });
    }
    let Some(env_path) = &pair.env else {
        return Ok(parsed.envelope);
    };
    let overlay = spool_file::read_envelope(env_path)?;
    check_id(env_path, id, &overlay.envelope)?;
    Ok(overlay.envelope)
}

fn check_id(path: &Path, id: &MessageId, env: &Envelope) -> Result<(), RelayError> {
    if &env.id == id {
        Ok(())
    } else {
        Err(RelayError::Corrupt {
            path: path.to_owned(),
            defect: SpoolDefect::IdMismatch {
                found: env.id.to_string(),
            },
        })
    }
}

/// Moves `path` into `qdir`, never overwriting an earlier quarantined file.
fn quarantine(path: &Path, qdir: &Path) -> Result<PathBuf, RelayError> {
    let name = path
        .file_name()
        .map_or_else(|| "unnamed".into(), |n| n.to_string_lossy().into_owned());
    let mut target = qdir.join(&name);
    let mut n = 1u32;
    while target.exists() {
        target = qdir.join(format!("{name}.{n}"));
        n += 1;
    }
    fs::rename(path, &target).map_err(|e| RelayError::io("quarantine", path, &e))?;
    Ok(target)
}
