//! The admin path over the relay's MTA-STS policy cache (`[state]`: files under
//! `delivery.mta_sts.cache_dir`, or Redis shared by several relays):
//! `relay --config FILE --mta-sts-show DOMAIN` prints the cached entry as JSON (with its age and
//! whether it is still fresh), `--mta-sts-purge DOMAIN` removes it, so an owner who changed a
//! policy without bumping its `id` can make the relay fetch it again. Safe while the relay
//! runs: the file store writes each entry crash-safely (temporary file, rename); Redis replaces
//! keys atomically. With Redis, the entry shown is Redis's (an unreachable Redis is an error,
//! not a silent look at the local copy), and a purge removes it from Redis (so from every
//! relay) and from this relay's local copy.

use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use relay::config::RelayConfig;
use relay::state::{Backend, RedisPolicyStore};
use smtp_tls_policy::mta_sts::{CacheEntry, FilePolicyStore, PolicyDomain, PolicyStore};

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
    let (entry, location) = match config.state.backend {
        Backend::Redis => match RedisPolicyStore::open(&config.state, dir) {
            Ok(store) => {
                let entry = match action {
                    Action::Show => store.get_shared(&domain),
                    Action::Purge => store.remove_shared(&domain),
                };
                let location = serde_json::json!({
                    "redis_key": store.key_of(&domain),
                    "local_copy": store.local().path_of(&domain),
                });
                (entry.map_err(|e| e.to_string()), location)
            }
            Err(e) => {
                eprintln!("error: MTA-STS cache in Redis: {e}");
                return ExitCode::from(2);
            }
        },
        _ => match FilePolicyStore::open(dir) {
            Ok(store) => {
                let entry = match action {
                    Action::Show => store.get(&domain),
                    Action::Purge => store.remove(&domain),
                };
                let location = serde_json::json!({ "file": store.path_of(&domain) });
                (entry.map_err(|e| e.to_string()), location)
            }
            Err(e) => {
                eprintln!("error: MTA-STS cache {}: {e}", dir.display());
                return ExitCode::from(2);
            }
        },
    };
    let where_ = match config.state.backend {
        Backend::Redis => "Redis".to_owned(),
        _ => dir.display().to_string(),
    };
    let entry: CacheEntry = match entry {
        Ok(Some(e)) => e,
        Ok(None) => {
            eprintln!("{domain}: no cached MTA-STS entry in {where_}");
            return ExitCode::from(1);
        }
        Err(e) => {
            eprintln!("error: MTA-STS cache in {where_}: {e}");
            return ExitCode::from(2);
        }
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut out = serde_json::json!({
        "domain": entry.domain.as_str(),
        "action": match action { Action::Show => "show", Action::Purge => "purged" },
        "backend": config.state.backend.as_str(),
        "age_secs": entry.policy.as_ref().map(|p| now.saturating_sub(p.fetched_at)),
        "fresh": entry.fresh_policy(now).is_some(),
        "entry": entry,
    });
    if let (Some(out), serde_json::Value::Object(location)) = (out.as_object_mut(), location) {
        out.extend(location);
    }
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
