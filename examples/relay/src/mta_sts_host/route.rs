//! Which answer a request gets, sans-IO: the policy host is chosen by the TLS SNI and the HTTP
//! host (the request target's authority, else the `Host` header); when both are present they
//! must name the same host.
//!
//! | request | answer |
//! |---|---|
//! | host `mta-sts.<domain>` configured, `GET`/`HEAD /.well-known/mta-sts.txt` | 200, the policy |
//! | SNI and HTTP host name different hosts | 421 Misdirected Request (RFC 9110 §15.5.20) |
//! | several `Host` headers, or one that is not an authority | 400 |
//! | no host at all, or a host with no configured policy | 404 |
//! | any other path | 404 |
//! | the policy path with another method | 405, `Allow: GET, HEAD` |

use std::collections::HashMap;
use std::sync::Arc;

use http::uri::Authority;
use http::{HeaderMap, Method, Uri};

use super::policy::PublishedPolicy;

/// The one path served (RFC 8461 §3.3).
pub const POLICY_PATH: &str = "/.well-known/mta-sts.txt";

/// The policies served by a listener, by policy host (`mta-sts.<domain>`).
#[derive(Debug, Clone, Default)]
pub struct PolicyTable {
    by_host: HashMap<String, Arc<PublishedPolicy>>,
}

impl PolicyTable {
    /// A table of `policies` (their domains are unique: the configuration checks it).
    #[must_use]
    pub fn new(policies: &[PublishedPolicy]) -> Self {
        Self {
            by_host: policies
                .iter()
                .map(|p| (p.policy_host(), Arc::new(p.clone())))
                .collect(),
        }
    }

    /// The policy served at `host` (already normalised: lowercase, no trailing dot).
    #[must_use]
    pub fn get(&self, host: &str) -> Option<&Arc<PublishedPolicy>> {
        self.by_host.get(host)
    }
}

/// What to answer.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
#[non_exhaustive]
pub enum Answer {
    /// 200 with the policy text.
    Policy(Arc<PublishedPolicy>),
    /// 400: several `Host` headers, or one that is not an authority.
    BadRequest,
    /// 404: no such host or path.
    NotFound,
    /// 405: the policy path with a method other than `GET`/`HEAD`.
    MethodNotAllowed,
    /// 421: the TLS SNI and the HTTP host name different hosts.
    Misdirected,
}

/// Decides the answer to one request. `sni` is the server name the client sent in its TLS
/// ClientHello, if any.
pub fn decide(
    table: &PolicyTable,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    sni: Option<&str>,
) -> Answer {
    let Ok(http_host) = http_host(uri, headers) else {
        return Answer::BadRequest;
    };
    let sni = sni.map(normalise);
    let host = match (sni, http_host) {
        (Some(s), Some(h)) if s != h => return Answer::Misdirected,
        (Some(h), _) | (None, Some(h)) => h,
        (None, None) => return Answer::NotFound,
    };
    let Some(policy) = table.get(&host) else {
        return Answer::NotFound;
    };
    if uri.path() != POLICY_PATH {
        return Answer::NotFound;
    }
    if method != Method::GET && method != Method::HEAD {
        return Answer::MethodNotAllowed;
    }
    Answer::Policy(Arc::clone(policy))
}

/// The host the request names: the authority of an absolute-form target (RFC 9112 §3.2.2:
/// it takes precedence over `Host`), else the single `Host` header; normalised.
fn http_host(uri: &Uri, headers: &HeaderMap) -> Result<Option<String>, ()> {
    if let Some(a) = uri.authority() {
        return Ok(Some(normalise(a.host())));
    }
    let mut values = headers.get_all(http::header::HOST).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(());
    }
    let text = value.to_str().map_err(|_| ())?;
    let authority: Authority = text.parse().map_err(|_| ())?;
    Ok(Some(normalise(authority.host())))
}

fn normalise(host: &str) -> String {
    host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase()
}
