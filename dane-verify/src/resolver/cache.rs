//! A small TTL-bounded answer cache (entries expire at min(record TTL, configured maximum)).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hickory_resolver::proto::rr::{Name, RecordType};

use super::backend::Answer;

pub(crate) struct Cache {
    entries: Mutex<HashMap<(Name, RecordType), (Instant, Answer)>>,
    max_entries: usize,
    max_ttl: Duration,
}

impl Cache {
    pub(crate) fn new(max_entries: usize, max_ttl: Duration) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            max_entries,
            max_ttl,
        }
    }

    pub(crate) fn get(&self, name: &Name, rtype: RecordType) -> Option<Answer> {
        let mut map = self.entries.lock().ok()?;
        let key = (name.clone(), rtype);
        match map.get(&key) {
            Some((expires, a)) if *expires > Instant::now() => Some(a.clone()),
            Some(_) => {
                map.remove(&key);
                None
            }
            None => None,
        }
    }

    /// Stores `answer`; failures are never cached (a retry may succeed).
    pub(crate) fn put(&self, name: &Name, rtype: RecordType, answer: &Answer) {
        let ttl = match answer {
            Answer::Records { ttl, .. } | Answer::NoRecords { ttl, .. } => *ttl,
            Answer::Failed { .. } => return,
        };
        let life = Duration::from_secs(u64::from(ttl)).min(self.max_ttl);
        if life.is_zero() || self.max_entries == 0 {
            return;
        }
        let Ok(mut map) = self.entries.lock() else {
            return;
        };
        if map.len() >= self.max_entries {
            let now = Instant::now();
            map.retain(|_, (exp, _)| *exp > now);
            if map.len() >= self.max_entries {
                // still full: drop the entry closest to expiry
                if let Some(k) = map
                    .iter()
                    .min_by_key(|(_, (e, _))| *e)
                    .map(|(k, _)| k.clone())
                {
                    map.remove(&k);
                }
            }
        }
        map.insert(
            (name.clone(), rtype),
            (Instant::now() + life, answer.clone()),
        );
    }

    pub(crate) fn clear(&self) {
        if let Ok(mut m) = self.entries.lock() {
            m.clear();
        }
    }
}
