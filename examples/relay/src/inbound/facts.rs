//! Gathering HAT facts for a client: PTR names (forward-confirmed) and DNS-list answers, only
//! when [`hat_match::HostAccessTable::plan`] says they could change the verdict (hat-match's
//! `resolver` adapter makes exactly those lookups, bounded by one deadline).

use std::net::{IpAddr, SocketAddr};

use hat_match::Facts;

use super::ListenerContext;

/// The facts for one client.
#[derive(Debug, Clone)]
pub(crate) struct Gathered {
    /// What is known.
    pub(crate) facts: Facts,
    /// A lookup that could have changed the verdict failed: answer `421 4.4.3`, the client
    /// retries later (fail closed rather than guessing a sender group).
    pub(crate) tentative: bool,
}

/// The facts for `ip`: the address alone when it decides the verdict; otherwise the lookups
/// the plan names, through the listener's resolver.
pub(crate) async fn gather(ctx: &ListenerContext, ip: IpAddr) -> Gathered {
    let plan = ctx.hat.plan(ip);
    let Some(dns) = ctx.dns.as_ref().filter(|_| !plan.address_decides()) else {
        return Gathered {
            facts: Facts::new(ip),
            tentative: false,
        };
    };
    let resolved = dns.matches(&ctx.hat, ip).await;
    let lookups = resolved.lookups();
    tracing::debug!(
        needs_ptr = plan.needs_ptr(),
        dnslists = plan.dnslists().len(),
        queries = lookups.queries_sent(),
        failures = lookups.failures().count(),
        "HAT: DNS lookups"
    );
    Gathered {
        facts: resolved.facts().clone(),
        tentative: resolved.is_tentative(),
    }
}

/// The first `nameserver` of `/etc/resolv.conf` (the system resolver), or `127.0.0.1:53`.
#[must_use]
pub fn system_nameserver() -> SocketAddr {
    std::fs::read_to_string("/etc/resolv.conf")
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                let mut w = l.split_whitespace();
                (w.next() == Some("nameserver"))
                    .then(|| w.next()?.parse::<IpAddr>().ok())
                    .flatten()
            })
        })
        .map_or_else(
            || SocketAddr::from(([127, 0, 0, 1], 53)),
            |ip| SocketAddr::new(ip, 53),
        )
}
