//! The admin path over the relay's MTA-STS policy cache (`delivery.mta_sts.cache_dir`):
//! `relay --config FILE --mta-sts-show DOMAIN` prints the cached entry as JSON (with its age and
//! whether it is still fresh), `--mta-sts-purge DOMAIN` removes it, so an owner who changed a
//! policy without bumping its `id` can make the relay fetch it again. Safe while the relay
//! runs: the store writes each entry crash-safely (temporary file, rename).

use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use relay::config::RelayConfig;
use smtp_tls_policy::mta_sts::{FilePolicyStore, PolicyDomain, PolicyStore};

/// What to do with one domain's entry.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Action {
    /// Print it.
    Show,
    /// Remove it.
    Purge,
}

/// Runs `action` for `domain` on the cache of `config`. Exit 0 done (shown / purged), 1 no
/// entry, 2 bad input or an unreadable cache.
pub(crate) fn run(config: &RelayConfig, action: Action, domain: &str) -> ExitCode {
    let domain = match PolicyDomain::parse(domain) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: {domain:?} is not a domain name: {e}");
            return ExitCode::from(2);
        }
    };
    let dir = config.delivery.mta_sts.cache_dir();
    let store = match FilePolicyStore::open(dir) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: MTA-STS cache {}: {e}", dir.display());
            return ExitCode::from(2);
        }
    };
    let entry = match action {
        Action::Show => store.get(&domain),
        Action::Purge => store.remove(&domain),
    };
    let entry = match entry {
        Ok(Some(e)) => e,
        Ok(None) => {
            eprintln!("{domain}: no cached MTA-STS entry in {}", dir.display());
            return ExitCode::from(1);
        }
        Err(e) => {
            eprintln!("error: MTA-STS cache {}: {e}", dir.display());
            return ExitCode::from(2);
        }
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let out = serde_json::json!({
        "domain": entry.domain.as_str(),
        "action": match action { Action::Show => "show", Action::Purge => "purged" },
        "file": store.path_of(&entry.domain),
        "age_secs": entry.policy.as_ref().map(|p| now.saturating_sub(p.fetched_at)),
        "fresh": entry.fresh_policy(now).is_some(),
        "entry": entry,
    });
    match serde_json::to_string_pretty(&out) {
        Ok(text) => {
            println!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
