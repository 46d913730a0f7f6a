//! The HTTPS fetch of a policy file (RFC 8461 §3.3), a thin adapter over hyper 1
//! (`client::conn::http1`) and tokio-rustls.
//!
//! `GET https://mta-sts.DOMAIN/.well-known/mta-sts.txt` to the addresses the caller resolved
//! (never the system resolver), SNI `mta-sts.DOMAIN`, PKIX by the given rustls configuration
//! (build one from [`TrustAnchors`] with [`client_config`]). Only `200` counts: redirects are
//! not followed (RFC 8461 §3.3). `Content-Type` must be `text/plain` (parameters and case
//! ignored); the body is read up to [`FetchLimits::max_body`] and the read stops past it. A
//! connect timeout bounds each connection (TCP and TLS handshake), a total timeout the whole
//! fetch. Each error says which RFC 8460 result type it maps to
//! ([`FetchError::failure_kind`]).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::cache::{FetchResult, PolicyDomain, PolicySource};
use super::policy::{MAX_POLICY_LEN, Policy};
use super::verdict::{StsFailure, StsFailureKind};
use crate::chain::TrustAnchors;
use crate::error::IoKind;

/// Limits of one fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct FetchLimits {
    /// Per address: TCP connect plus TLS handshake (default 10 s).
    pub connect_timeout: Duration,
    /// The whole fetch, every address tried included (default 60 s).
    pub total_timeout: Duration,
    /// Largest body read (default [`MAX_POLICY_LEN`], 64 KiB).
    pub max_body: usize,
}

impl Default for FetchLimits {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(10),
            total_timeout: Duration::from_secs(60),
            max_body: MAX_POLICY_LEN,
        }
    }
}

impl FetchLimits {
    /// Sets the connect timeout.
    #[must_use]
    pub fn with_connect_timeout(mut self, t: Duration) -> Self {
        self.connect_timeout = t;
        self
    }

    /// Sets the total timeout.
    #[must_use]
    pub fn with_total_timeout(mut self, t: Duration) -> Self {
        self.total_timeout = t;
        self
    }

    /// Sets the body limit.
    #[must_use]
    pub fn with_max_body(mut self, max: usize) -> Self {
        self.max_body = max;
        self
    }
}

/// A fetched policy body, not yet parsed (see [`super::Policy::parse`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FetchedPolicy {
    /// The body.
    pub body: Vec<u8>,
    /// The policy URL.
    pub url: String,
    /// The address it came from.
    pub address: SocketAddr,
}

/// Why a fetch failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// No address to connect to.
    #[error("no address given for the policy host")]
    NoAddresses,
    /// Every address refused or failed the TCP connection; the last error.
    #[error("cannot connect to {address}: {kind}")]
    Connect {
        /// The last address tried.
        address: SocketAddr,
        /// The I/O error.
        kind: IoKind,
    },
    /// The connect timeout expired on the last address tried.
    #[error("connecting to {address} timed out after {millis} ms")]
    ConnectTimeout {
        /// The address.
        address: SocketAddr,
        /// The timeout.
        millis: u128,
    },
    /// The policy host's certificate was refused (PKIX or name): `sts-webpki-invalid`.
    #[error("the policy host {address} presented a refused certificate: {detail}")]
    Certificate {
        /// The address.
        address: SocketAddr,
        /// rustls' description.
        detail: String,
    },
    /// The TLS handshake failed otherwise.
    #[error("TLS handshake with {address} failed: {detail}")]
    Tls {
        /// The address.
        address: SocketAddr,
        /// The description.
        detail: String,
    },
    /// The HTTP exchange failed.
    #[error("HTTP exchange failed: {detail}")]
    Http {
        /// hyper's description.
        detail: String,
    },
    /// A redirect: not followed (RFC 8461 §3.3).
    #[error("redirect ({status}) to {location:?} not followed")]
    Redirect {
        /// The status.
        status: u16,
        /// The `Location` header, if any (at most 200 characters).
        location: Option<String>,
    },
    /// A status other than 200.
    #[error("HTTP status {status}, not 200")]
    Status {
        /// The status.
        status: u16,
    },
    /// `Content-Type` missing or not `text/plain`.
    #[error("content type {found:?} is not text/plain")]
    ContentType {
        /// The header, if any (at most 200 characters).
        found: Option<String>,
    },
    /// The body is larger than the limit.
    #[error("policy body larger than {limit} octets")]
    TooLarge {
        /// The limit.
        limit: usize,
    },
    /// The total timeout expired.
    #[error("the policy fetch timed out after {millis} ms")]
    Timeout {
        /// The timeout.
        millis: u128,
    },
    /// The TLS configuration could not be built.
    #[error("TLS client configuration: {detail}")]
    Config {
        /// rustls' description.
        detail: String,
    },
}

impl FetchError {
    /// The RFC 8460 result type: `sts-webpki-invalid` for a refused certificate,
    /// `sts-policy-invalid` for a body over the size limit, else `sts-policy-fetch-error`.
    #[must_use]
    pub fn failure_kind(&self) -> StsFailureKind {
        match self {
            Self::Certificate { .. } => StsFailureKind::StsWebpkiInvalid,
            Self::TooLarge { .. } => StsFailureKind::StsPolicyInvalid,
            _ => StsFailureKind::StsPolicyFetchError,
        }
    }
}

impl From<&FetchError> for StsFailure {
    /// The failure as the cache and TLS-RPT keep it ([`FetchError::failure_kind`]).
    fn from(e: &FetchError) -> Self {
        Self::new(e.failure_kind(), e.to_string())
    }
}

/// A rustls client configuration trusting `anchors` (e.g. cert-store's CA lists), HTTP/1.1
/// over ALPN, rustls' aws-lc-rs provider.
pub fn client_config(anchors: &TrustAnchors) -> Result<Arc<rustls::ClientConfig>, FetchError> {
    let roots = rustls::RootCertStore {
        roots: anchors.anchors().to_vec(),
    };
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| FetchError::Config {
            detail: e.to_string(),
        })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Fetches the policy of `domain` from `addresses` (tried in order until one connects) on
/// `port` (443 in production).
pub async fn fetch_policy(
    domain: &PolicyDomain,
    addresses: &[IpAddr],
    port: u16,
    tls: Arc<rustls::ClientConfig>,
    limits: &FetchLimits,
) -> Result<FetchedPolicy, FetchError> {
    let total = limits.total_timeout;
    tokio::time::timeout(total, fetch_inner(domain, addresses, port, tls, limits))
        .await
        .unwrap_or(Err(FetchError::Timeout {
            millis: total.as_millis(),
        }))
}

async fn fetch_inner(
    domain: &PolicyDomain,
    addresses: &[IpAddr],
    port: u16,
    tls: Arc<rustls::ClientConfig>,
    limits: &FetchLimits,
) -> Result<FetchedPolicy, FetchError> {
    let host = domain.policy_host();
    let server_name = ServerName::try_from(host.clone()).map_err(|e| FetchError::Config {
        detail: e.to_string(),
    })?;
    let connector = TlsConnector::from(tls);
    let mut last = FetchError::NoAddresses;
    for ip in addresses {
        let address = SocketAddr::new(*ip, port);
        let connected = tokio::time::timeout(limits.connect_timeout, async {
            let tcp = TcpStream::connect(address)
                .await
                .map_err(|e| FetchError::Connect {
                    address,
                    kind: IoKind(e.kind()),
                })?;
            connector
                .connect(server_name.clone(), tcp)
                .await
                .map_err(|e| tls_error(address, &e))
        })
        .await
        .unwrap_or(Err(FetchError::ConnectTimeout {
            address,
            millis: limits.connect_timeout.as_millis(),
        }));
        match connected {
            Ok(stream) => {
                let body = exchange(stream, &host, port, limits).await?;
                return Ok(FetchedPolicy {
                    body,
                    url: domain.policy_url(),
                    address,
                });
            }
            // Only connection failures move on to the next address; a refused certificate
            // is an answer from the policy host.
            Err(e @ (FetchError::Connect { .. } | FetchError::ConnectTimeout { .. })) => last = e,
            Err(e) => return Err(e),
        }
    }
    Err(last)
}

/// [`fetch_policy`], then [`Policy::parse`]: the fetch as the cache machine takes it
/// ([`super::on_fetch`]), every failure with its RFC 8460 kind (`sts-policy-fetch-error`,
/// `sts-webpki-invalid`, `sts-policy-invalid`).
pub async fn fetch_and_parse(
    domain: &PolicyDomain,
    addresses: &[IpAddr],
    port: u16,
    tls: Arc<rustls::ClientConfig>,
    limits: &FetchLimits,
) -> FetchResult {
    match fetch_policy(domain, addresses, port, tls, limits).await {
        Ok(fetched) => match Policy::parse(&fetched.body) {
            Ok(policy) => FetchResult::Valid {
                policy,
                source: PolicySource::new(fetched.url, Some(fetched.address.to_string())),
            },
            Err(e) => FetchResult::Failed {
                failure: StsFailure::from(&e),
            },
        },
        Err(e) => FetchResult::Failed {
            failure: StsFailure::from(&e),
        },
    }
}

fn tls_error(address: SocketAddr, e: &std::io::Error) -> FetchError {
    let rustls_error = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    match rustls_error {
        Some(rustls::Error::InvalidCertificate(c)) => FetchError::Certificate {
            address,
            detail: format!("{c:?}"),
        },
        Some(other) => FetchError::Tls {
            address,
            detail: other.to_string(),
        },
        None => FetchError::Tls {
            address,
            detail: e.to_string(),
        },
    }
}

async fn exchange<S>(
    stream: S,
    host: &str,
    port: u16,
    limits: &FetchLimits,
) -> Result<Vec<u8>, FetchError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let http = |e: hyper::Error| FetchError::Http {
        detail: e.to_string(),
    };
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(http)?;
    let authority = if port == 443 {
        host.to_owned()
    } else {
        format!("{host}:{port}")
    };
    let request = http::Request::get("/.well-known/mta-sts.txt")
        .header(http::header::HOST, authority)
        .header(http::header::USER_AGENT, "smtp-tls-policy")
        .body(Empty::<Bytes>::new())
        .map_err(|e| FetchError::Http {
            detail: e.to_string(),
        })?;
    let exchange = async {
        let response = sender.send_request(request).await.map_err(http)?;
        check_head(&response, limits.max_body)?;
        let mut body = response.into_body();
        let mut out = Vec::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(http)?;
            if let Some(data) = frame.data_ref() {
                if out.len().saturating_add(data.len()) > limits.max_body {
                    return Err(FetchError::TooLarge {
                        limit: limits.max_body,
                    });
                }
                out.extend_from_slice(data);
            }
        }
        Ok(out)
    };
    tokio::pin!(connection);
    tokio::pin!(exchange);
    // Drive the connection and the exchange together, in this task; the exchange decides.
    tokio::select! {
        biased;
        result = &mut exchange => result,
        conn = &mut connection => {
            conn.map_err(http)?;
            // The connection ended cleanly: the exchange finishes (or fails) on its own.
            exchange.await
        }
    }
}

fn check_head<B>(response: &http::Response<B>, max_body: usize) -> Result<(), FetchError> {
    let status = response.status();
    let header_text = |name| {
        response.headers().get(name).map(|v| {
            String::from_utf8_lossy(v.as_bytes())
                .chars()
                .take(200)
                .collect()
        })
    };
    if status.is_redirection() {
        return Err(FetchError::Redirect {
            status: status.as_u16(),
            location: header_text(http::header::LOCATION),
        });
    }
    if status != http::StatusCode::OK {
        return Err(FetchError::Status {
            status: status.as_u16(),
        });
    }
    let content_type: Option<String> = header_text(http::header::CONTENT_TYPE);
    let plain = content_type.as_deref().is_some_and(|ct| {
        ct.split(';')
            .next()
            .is_some_and(|media| media.trim().eq_ignore_ascii_case("text/plain"))
    });
    if !plain {
        return Err(FetchError::ContentType {
            found: content_type,
        });
    }
    let declared = response
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > max_body as u64) {
        return Err(FetchError::TooLarge { limit: max_body });
    }
    Ok(())
}
