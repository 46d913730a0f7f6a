//! The two ways of getting DNSSEC-validated answers: hickory's in-process validator, or the AD
//! bit of a validating resolver on loopback (raw exchange with DO set).

use std::net::SocketAddr;
use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::dnssec::Proof;
use hickory_resolver::proto::op::{Edns, Message, Query, ResponseCode};
use hickory_resolver::proto::rr::{Name, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

use crate::DnssecStatus;
use crate::policy::LookupFailure;

/// One answer, reduced to what DANE needs.
#[derive(Debug, Clone)]
pub(crate) enum Answer {
    /// Records of the answer section (CNAMEs included), with the RRsets' combined status.
    Records {
        records: Vec<Record>,
        status: DnssecStatus,
        ttl: u32,
    },
    /// NXDOMAIN (`nxdomain`) or NODATA, with the status of the denial (and of the CNAME chain
    /// that led to it, `cnames`, when the backend keeps it: the AD-bit backend does, hickory
    /// drops it).
    NoRecords {
        nxdomain: bool,
        status: DnssecStatus,
        ttl: u32,
        cnames: Vec<Record>,
    },
    /// No usable answer; `status` is Bogus when validation failed.
    Failed {
        failure: LookupFailure,
        status: DnssecStatus,
    },
}

impl Answer {
    /// The CNAME records of the answer (a chain to follow from the query name).
    pub(crate) fn cnames(&self) -> &[Record] {
        match self {
            Self::Records { records, .. } => records,
            Self::NoRecords { cnames, .. } => cnames,
            Self::Failed { .. } => &[],
        }
    }

    /// The answer as reported while validation is not proven: `Secure` and `Insecure` become
    /// `Indeterminate` (an unproven resolver's word on either means nothing); `Bogus` stays.
    pub(crate) fn unproven(mut self) -> Self {
        let mask = |s: &mut DnssecStatus| {
            if *s != DnssecStatus::Bogus {
                *s = DnssecStatus::Indeterminate;
            }
        };
        match &mut self {
            Self::Records { status, .. }
            | Self::NoRecords { status, .. }
            | Self::Failed { status, .. } => mask(status),
        }
        self
    }
}

pub(crate) enum Backend {
    InProcess(Box<TokioResolver>),
    TrustAd { server: SocketAddr },
}

pub(crate) fn proof_status(p: Proof) -> DnssecStatus {
    match p {
        Proof::Secure => DnssecStatus::Secure,
        Proof::Insecure => DnssecStatus::Insecure,
        Proof::Bogus => DnssecStatus::Bogus,
        _ => DnssecStatus::Indeterminate,
    }
}

impl Backend {
    pub(crate) async fn query(&self, name: &Name, rtype: RecordType, timeout: Duration) -> Answer {
        let fut = async {
            match self {
                Self::InProcess(r) => in_process(r, name, rtype).await,
                Self::TrustAd { server } => trust_ad(*server, name, rtype, timeout).await,
            }
        };
        match tokio::time::timeout(timeout, fut).await {
            Ok(a) => a,
            Err(_) => Answer::Failed {
                failure: LookupFailure::Timeout,
                status: DnssecStatus::Indeterminate,
            },
        }
    }
}

async fn in_process(r: &TokioResolver, name: &Name, rtype: RecordType) -> Answer {
    match r.lookup(name.clone(), rtype).await {
        Ok(lookup) => {
            let records: Vec<Record> = lookup.answers().to_vec();
            let status = records
                .iter()
                .map(|r| proof_status(r.proof))
                .reduce(DnssecStatus::combine)
                .unwrap_or_default();
            let ttl = records.iter().map(|r| r.ttl).min().unwrap_or(0);
            Answer::Records {
                records,
                status,
                ttl,
            }
        }
        Err(NetError::Dns(DnsError::NoRecordsFound(nr))) => {
            // A validated denial carries a validated SOA (hickory checks NSEC/NSEC3 first and
            // fails the lookup when the denial does not validate).
            let status = nr
                .soa
                .as_ref()
                .map(|soa| proof_status(soa.proof))
                .unwrap_or_default();
            Answer::NoRecords {
                nxdomain: nr.response_code == ResponseCode::NXDomain,
                status,
                ttl: nr.negative_ttl.unwrap_or(0),
                cnames: Vec::new(),
            }
        }
        Err(NetError::Dns(DnsError::DnssecBogus)) => Answer::Failed {
            failure: LookupFailure::ServFail,
            status: DnssecStatus::Bogus,
        },
        Err(NetError::Dns(DnsError::Nsec { proof, .. })) => Answer::Failed {
            failure: LookupFailure::Other,
            status: proof_status(proof).combine(DnssecStatus::Indeterminate),
        },
        Err(NetError::Dns(DnsError::ResponseCode(ResponseCode::ServFail))) => Answer::Failed {
            failure: LookupFailure::ServFail,
            status: DnssecStatus::Indeterminate,
        },
        Err(NetError::Timeout) => Answer::Failed {
            failure: LookupFailure::Timeout,
            status: DnssecStatus::Indeterminate,
        },
        Err(e) => {
            tracing::debug!(%name, ?rtype, error = %e, "lookup failed");
            let failure =
                if e.to_string().contains("SERVFAIL") || e.to_string().contains("ServFail") {
                    LookupFailure::ServFail
                } else {
                    LookupFailure::Other
                };
            Answer::Failed {
                failure,
                status: DnssecStatus::Indeterminate,
            }
        }
    }
}

/// Largest UDP answer we accept before retrying over TCP.
const UDP_PAYLOAD: u16 = 1232;
/// Largest TCP answer we read.
const MAX_TCP_ANSWER: usize = 65535;

fn other() -> Answer {
    Answer::Failed {
        failure: LookupFailure::Other,
        status: DnssecStatus::Indeterminate,
    }
}

/// A raw query with RD and DO set; the validating resolver's AD bit is the status.
async fn trust_ad(server: SocketAddr, name: &Name, rtype: RecordType, _t: Duration) -> Answer {
    let id: u16 = rand_id();
    let mut msg = Message::query();
    msg.metadata.id = id;
    msg.metadata.recursion_desired = true;
    msg.add_query(Query::query(name.clone(), rtype));
    let mut edns = Edns::new();
    edns.set_max_payload(UDP_PAYLOAD);
    edns.set_dnssec_ok(true);
    msg.set_edns(edns);
    let Ok(bytes) = msg.to_vec() else {
        return other();
    };
    let Ok(mut response) = udp_exchange(server, &bytes, id).await else {
        return other();
    };
    if response.metadata.truncation {
        let Ok(r) = tcp_exchange(server, &bytes, id).await else {
            return other();
        };
        response = r;
    }
    if response.queries.first().map(|q| (&q.name, q.query_type)) != Some((name, rtype)) {
        return other();
    }
    let status = if response.metadata.authentic_data {
        DnssecStatus::Secure
    } else {
        DnssecStatus::Insecure
    };
    let neg_ttl = response
        .authorities
        .iter()
        .find(|r| r.record_type() == RecordType::SOA)
        .map_or(0, |r| r.ttl);
    match response.metadata.response_code {
        ResponseCode::NoError => {
            let records: Vec<Record> = response
                .answers
                .into_iter()
                .filter(|r| matches!(r.record_type(), t if t == rtype || t == RecordType::CNAME))
                .collect();
            if records.iter().any(|r| r.record_type() == rtype) {
                let ttl = records.iter().map(|r| r.ttl).min().unwrap_or(0);
                Answer::Records {
                    records,
                    status,
                    ttl,
                }
            } else {
                // NODATA, possibly at the end of a CNAME chain: keep the chain (RFC 7672
                // §2.2.2 needs the expanded name even when this family has no records there)
                let ttl = records.iter().map(|r| r.ttl).fold(neg_ttl, u32::min);
                Answer::NoRecords {
                    nxdomain: false,
                    status,
                    ttl,
                    cnames: records,
                }
            }
        }
        ResponseCode::NXDomain => Answer::NoRecords {
            nxdomain: true,
            status,
            ttl: neg_ttl,
            cnames: Vec::new(),
        },
        ResponseCode::ServFail => Answer::Failed {
            failure: LookupFailure::ServFail,
            status: DnssecStatus::Indeterminate,
        },
        _ => other(),
    }
}

fn rand_id() -> u16 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish() as u16
}

async fn udp_exchange(server: SocketAddr, bytes: &[u8], id: u16) -> Result<Message, ()> {
    let bind: SocketAddr = if server.is_ipv4() {
        ([127, 0, 0, 1], 0).into()
    } else {
        (std::net::Ipv6Addr::LOCALHOST, 0).into()
    };
    let sock = UdpSocket::bind(bind).await.map_err(|_| ())?;
    sock.connect(server).await.map_err(|_| ())?;
    sock.send(bytes).await.map_err(|_| ())?;
    let mut buf = vec![0u8; usize::from(UDP_PAYLOAD) + 512];
    // Bounded: ignore at most a few stray datagrams with the wrong id.
    for _ in 0..4 {
        let n = sock.recv(&mut buf).await.map_err(|_| ())?;
        if let Ok(m) = Message::from_vec(&buf[..n]) {
            if m.metadata.id == id {
                return Ok(m);
            }
        }
    }
    Err(())
}

async fn tcp_exchange(server: SocketAddr, bytes: &[u8], id: u16) -> Result<Message, ()> {
    let mut s = TcpStream::connect(server).await.map_err(|_| ())?;
    let len = u16::try_from(bytes.len()).map_err(|_| ())?;
    let mut out = len.to_be_bytes().to_vec();
    out.extend_from_slice(bytes);
    s.write_all(&out).await.map_err(|_| ())?;
    let mut lb = [0u8; 2];
    s.read_exact(&mut lb).await.map_err(|_| ())?;
    let n = usize::from(u16::from_be_bytes(lb)).min(MAX_TCP_ANSWER);
    let mut buf = vec![0u8; n];
    s.read_exact(&mut buf).await.map_err(|_| ())?;
    let m = Message::from_vec(&buf).map_err(|_| ())?;
    if m.metadata.id == id { Ok(m) } else { Err(()) }
}

pub(crate) fn in_process_resolver(
    upstreams: &[SocketAddr],
    anchors: std::sync::Arc<hickory_resolver::proto::dnssec::TrustAnchors>,
    timeout: Duration,
) -> Result<TokioResolver, crate::Error> {
    use hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
    let servers = upstreams
        .iter()
        .map(|upstream| {
            let mut ns = NameServerConfig::udp_and_tcp(upstream.ip());
            for c in &mut ns.connections {
                c.port = upstream.port();
            }
            ns
        })
        .collect();
    let config = ResolverConfig::from_name_servers(servers);
    let mut opts = ResolverOpts::default();
    opts.timeout = timeout;
    opts.attempts = 1;
    opts.preserve_intermediates = true;
    opts.use_hosts_file = hickory_resolver::config::ResolveHosts::Never;
    opts.ndots = 0;
    let builder = TokioResolver::builder_with_config(config, TokioRuntimeProvider::default())
        .with_options(opts)
        .with_trust_anchor(anchors);
    builder.build().map_err(|e| crate::Error::Config {
        reason: e.to_string(),
    })
}
