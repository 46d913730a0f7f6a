//! A bounded memo of the structural outcome of intermediate certificates, shared by every
//! verification against one [`super::TrustAnchors`].
//!
//! The outcome of the structural rules on an intermediate is a function of its DER bytes and the
//! profile only (its place in the path only labels the error), and a mail server sees the same few
//! intermediates (its peers' CAs) on most connections: re-parsing them with x509-parser on every
//! handshake is most of the cost of the structural checks. Entries are keyed by the *whole* DER
//! encoding (never a hash prefix), so a hit is the very same certificate and no rule is skipped.
//! Only intermediates that rustls-webpki has already chained to a configured anchor (signatures
//! checked) reach the memo, so a peer cannot fill it with arbitrary certificates; at most
//! [`MEMO_CAPACITY`] entries are kept, the oldest replaced first.

use std::fmt;
use std::sync::{Mutex, PoisonError};

use super::ChainProfile;
use super::structure::Violation;

/// Most intermediates remembered per [`super::TrustAnchors`] (bounded memory: a few hundred KiB
/// at most for ordinary certificates).
pub(crate) const MEMO_CAPACITY: usize = 64;

/// The structural outcome of one intermediate, independent of its place in a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum IntermediateOutcome {
    /// Every rule of the profile holds.
    Conforms,
    /// x509-parser refused the certificate (its reason).
    Malformed(String),
    /// A rule is broken.
    Breaks(Violation),
}

struct Entry {
    profile: ChainProfile,
    der: Box<[u8]>,
    outcome: IntermediateOutcome,
}

#[derive(Default)]
struct Slots {
    entries: Vec<Entry>,
    /// Next entry to replace once full (oldest first).
    next: usize,
}

/// See the module documentation.
#[derive(Default)]
pub(crate) struct IntermediateMemo {
    slots: Mutex<Slots>,
}

impl IntermediateMemo {
    /// The remembered outcome for `der` under `profile`, or `compute()`'s, remembered.
    pub(crate) fn get_or_compute(
        &self,
        der: &[u8],
        profile: ChainProfile,
        compute: impl FnOnce() -> IntermediateOutcome,
    ) -> IntermediateOutcome {
        if let Some(known) = self.lookup(der, profile) {
            return known;
        }
        // Computed outside the lock: parsing must not serialise concurrent handshakes.
        let outcome = compute();
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        if !slots
            .entries
            .iter()
            .any(|e| e.profile == profile && *e.der == *der)
        {
            let entry = Entry {
                profile,
                der: der.into(),
                outcome: outcome.clone(),
            };
            if slots.entries.len() < MEMO_CAPACITY {
                slots.entries.push(entry);
            } else {
                let next = slots.next;
                slots.entries[next] = entry;
                slots.next = (next + 1) % MEMO_CAPACITY;
            }
        }
        outcome
    }

    fn lookup(&self, der: &[u8], profile: ChainProfile) -> Option<IntermediateOutcome> {
        let slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        slots
            .entries
            .iter()
            .find(|e| e.profile == profile && *e.der == *der)
            .map(|e| e.outcome.clone())
    }

    fn len(&self) -> usize {
        self.slots
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entries
            .len()
    }
}

impl Clone for IntermediateMemo {
    /// A fresh, empty memo: the outcomes are cheap to recompute and a clone may be configured
    /// differently afterwards.
    fn clone(&self) -> Self {
        Self::default()
    }
}

impl fmt::Debug for IntermediateMemo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IntermediateMemo")
            .field("entries", &self.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_by_whole_bytes_and_profile() {
        let memo = IntermediateMemo::default();
        let calls = std::cell::Cell::new(0);
        let compute = |o: IntermediateOutcome| {
            calls.set(calls.get() + 1);
            o
        };
        let a = memo.get_or_compute(b"cert-a", ChainProfile::Rfc5280, || {
            compute(IntermediateOutcome::Conforms)
        });
        assert_eq!(a, IntermediateOutcome::Conforms);
        // Same bytes and profile: remembered, not recomputed.
        let again = memo.get_or_compute(b"cert-a", ChainProfile::Rfc5280, || {
            compute(IntermediateOutcome::Breaks(Violation::SerialNotPositive))
        });
        assert_eq!(again, IntermediateOutcome::Conforms);
        assert_eq!(calls.get(), 1);
        // Another profile, or bytes sharing a prefix: computed.
        let other = memo.get_or_compute(b"cert-a", ChainProfile::CabForum, || {
            compute(IntermediateOutcome::Breaks(Violation::WeakKey))
        });
        assert_eq!(other, IntermediateOutcome::Breaks(Violation::WeakKey));
        let prefix = memo.get_or_compute(b"cert-", ChainProfile::Rfc5280, || {
            compute(IntermediateOutcome::Malformed("x".into()))
        });
        assert_eq!(prefix, IntermediateOutcome::Malformed("x".into()));
        assert_eq!(calls.get(), 3);
        assert_eq!(memo.len(), 3);
        assert_eq!(memo.clone().len(), 0);
    }

    #[test]
    fn stays_bounded() {
        let memo = IntermediateMemo::default();
        for i in 0..(3 * MEMO_CAPACITY) {
            let der = i.to_be_bytes();
            let _ = memo.get_or_compute(&der, ChainProfile::Rfc5280, || {
                IntermediateOutcome::Conforms
            });
        }
        assert_eq!(memo.len(), MEMO_CAPACITY);
        // The newest entries are the ones kept.
        let newest = (3 * MEMO_CAPACITY - 1).to_be_bytes();
        assert_eq!(
            memo.lookup(&newest, ChainProfile::Rfc5280),
            Some(IntermediateOutcome::Conforms)
        );
        assert_eq!(
            memo.lookup(&0usize.to_be_bytes(), ChainProfile::Rfc5280),
            None
        );
    }
}
