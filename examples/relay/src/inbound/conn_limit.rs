//! Concurrent connections per client IP (mail flow policy "Max. Concurrent Connections From a
//! Single IP") and the listener-wide cap.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

/// Counts open connections per client address. [`ConnectionCounter::open`] returns a guard
/// that decrements when dropped, so every exit path of a connection task releases its slot.
///
/// ```
/// use relay::inbound::ConnectionCounter;
/// let c = ConnectionCounter::default();
/// let ip = "192.0.2.1".parse()?;
/// let a = c.open(ip);
/// let b = c.open(ip);
/// assert_eq!((a.count(), b.count()), (1, 2));
/// drop(a);
/// let d = c.open(ip);
/// assert_eq!((d.count(), d.total(), c.total()), (2, 2, 2));
/// drop((b, d));
/// assert_eq!(c.total(), 0);
/// # Ok::<(), std::net::AddrParseError>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct ConnectionCounter {
    inner: Arc<Mutex<Counts>>,
}

/// The counts behind the lock: per address, and their sum (kept, not summed per connection).
#[derive(Debug, Default)]
struct Counts {
    per_ip: HashMap<IpAddr, u32>,
    total: u32,
}

/// One open connection; releases its slot on drop.
#[derive(Debug)]
#[must_use]
pub struct ConnectionSlot {
    counter: ConnectionCounter,
    ip: IpAddr,
    count: u32,
    total: u32,
}

impl ConnectionSlot {
    /// Connections open from this IP, this one included, when it was opened.
    #[must_use]
    pub fn count(&self) -> u32 {
        self.count
    }

    /// Connections open over all addresses, this one included, when it was opened.
    #[must_use]
    pub fn total(&self) -> u32 {
        self.total
    }
}

impl ConnectionCounter {
    /// Registers a connection from `ip` (canonical form: IPv4-mapped IPv6 counts as IPv4).
    pub fn open(&self, ip: IpAddr) -> ConnectionSlot {
        let ip = ip.to_canonical();
        let mut counts = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        counts.total += 1;
        let total = counts.total;
        let n = counts.per_ip.entry(ip).or_insert(0);
        *n += 1;
        ConnectionSlot {
            counter: self.clone(),
            ip,
            count: *n,
            total,
        }
    }

    /// Open connections over all addresses.
    #[must_use]
    pub fn total(&self) -> u32 {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .total
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut guard = self
            .counter
            .inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let counts = &mut *guard;
        if let Some(n) = counts.per_ip.get_mut(&self.ip) {
            *n -= 1;
            counts.total -= 1;
            if *n == 0 {
                counts.per_ip.remove(&self.ip);
            }
        }
    }
}
