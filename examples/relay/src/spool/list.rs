//! A read-only listing of a spool directory (like `mailq`).

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File};
use std::io::BufReader;
use std::path::{Path, PathBuf};

use super::file::{self, ENV_EXT, InRecord, SegNo};
use super::index::{Found, Index};
use super::io;
use super::recover::as_found;
use crate::envelope::{Envelope, MessageId};
use crate::error::RelayError;

/// The messages in a spool directory with their latest envelopes, oldest first, read without
/// changing anything (like `mailq`): safe while a relay is using the spool. A batch still being
/// written is not listed; a damaged segment contributes the batches before its damage; an
/// overlay that cannot be read leaves the envelope of the segment.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use relay::{Envelope, Spool, SpoolConfig, list_spool};
/// let dir = tempfile::tempdir()?;
/// let (spool, _) = Spool::open(dir.path(), SpoolConfig::default()).await?;
/// let env = Envelope::new("a@example.org", ["b@example.net"], std::time::SystemTime::now());
/// let env = spool.accept(env, b"hello\r\n".to_vec()).await?;
/// assert_eq!(list_spool(dir.path())?, vec![env.clone()]);
/// spool.remove(&env.id).await?;
/// assert!(list_spool(dir.path())?.is_empty());
/// # Ok(()) }
/// ```
pub fn list_spool(dir: &Path) -> Result<Vec<Envelope>, RelayError> {
    let mut segs: BTreeMap<SegNo, PathBuf> = BTreeMap::new();
    let mut overlays: HashMap<MessageId, PathBuf> = HashMap::new();
    for entry in fs::read_dir(dir).map_err(|e| RelayError::io("readdir", dir, &e))? {
        let entry = entry.map_err(|e| RelayError::io("readdir", dir, &e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(no) = file::parse_segment_name(&name) {
            segs.insert(no, entry.path());
        } else if let Some(id) = name
            .strip_suffix(&format!(".{ENV_EXT}"))
            .and_then(MessageId::parse)
        {
            overlays.insert(id, entry.path());
        }
    }
    // Which copy of each message is live follows the spool's own rules (`Index::rebuild`).
    let mut found: BTreeMap<SegNo, Vec<Found>> = BTreeMap::new();
    let mut envelopes: HashMap<(SegNo, MessageId), Envelope> = HashMap::new();
    for (no, path) in segs {
        // A segment unlinked meanwhile is simply gone.
        let Ok(file) = File::open(&path) else {
            continue;
        };
        let scan = file::scan_segment(&mut BufReader::with_capacity(256 << 10, file));
        found.insert(no, scan.records.iter().map(|r| as_found(no, r)).collect());
        for r in scan.records {
            if let InRecord::Msg { envelope, .. } = r {
                envelopes.insert((no, envelope.id.clone()), *envelope);
            }
        }
    }
    let index = Index::rebuild(&found, &[]);
    let mut out: Vec<Envelope> = index
        .live()
        .filter_map(|(id, loc)| {
            let env = envelopes.remove(&(loc.seg, id.clone()))?;
            Some(
                overlays
                    .get(id)
                    .and_then(|p| io::read_overlay(p).ok())
                    .filter(|o| &o.id == id)
                    .unwrap_or(env),
            )
        })
        .collect();
    out.sort_by(|a, b| (a.arrival, &a.id).cmp(&(b.arrival, &b.id)));
    Ok(out)
}
