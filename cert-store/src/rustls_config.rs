//! rustls configurations from the store: a listener's `ServerConfig` (its certificate and
//! chain) and, for delivery, the `RootCertStore` / `ClientConfig` of the enabled CA lists.
//! The crypto provider is aws-lc-rs, the only one in this project.

use std::sync::{Arc, LazyLock};

use rustls::crypto::hash::HashAlgorithm;
use rustls::crypto::hmac::{Hmac, Key as HmacKey, Tag};
use rustls::crypto::tls13::{Hkdf, HkdfUsingHmac};
use rustls::crypto::{CipherSuiteCommon, CryptoProvider};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, RootCertStore, ServerConfig, SupportedCipherSuite, Tls13CipherSuite};

use crate::error::{Error, Result};
use crate::store::CertStore;

/// aws-lc-rs' default provider with one change in how the TLS 1.3 key schedule is computed
/// (not in what it computes): the same cipher suites, groups and signature schemes, in the same
/// order. rustls' aws-lc-rs HKDF keeps a PRK from HKDF-Extract as "salt and secret" and runs
/// Extract again on every Expand, and sets the HMAC key up again for each Expand (four more
/// SHA-384 compressions per label; about 35 labels per handshake). HKDF from rustls'
/// `HkdfUsingHmac` over aws-lc-rs HMAC keys, whose inner and outer pads are hashed once per key,
/// gives the same bytes (RFC 5869; pinned by the tests below) at about half the hash work.
fn provider() -> Arc<CryptoProvider> {
    let mut provider = rustls::crypto::aws_lc_rs::default_provider();
    for suite in &mut provider.cipher_suites {
        if let SupportedCipherSuite::Tls13(s) = *suite {
            *suite = SupportedCipherSuite::Tls13(precomputed_hmac_hkdf(s));
        }
    }
    Arc::new(provider)
}

/// The aws-lc-rs TLS 1.3 suite `s` with HKDF over precomputed HMAC keys (see [`provider`]).
fn precomputed_hmac_hkdf(s: &'static Tls13CipherSuite) -> &'static Tls13CipherSuite {
    static SUITES: LazyLock<Vec<&'static Tls13CipherSuite>> = LazyLock::new(|| {
        rustls::crypto::aws_lc_rs::ALL_CIPHER_SUITES
            .iter()
            .filter_map(|suite| match suite {
                SupportedCipherSuite::Tls13(s) => Some(*s),
                SupportedCipherSuite::Tls12(_) => None,
            })
            .filter_map(|s| {
                let hkdf: &'static dyn Hkdf = match s.common.hash_provider.algorithm() {
                    HashAlgorithm::SHA256 => &HKDF_SHA256,
                    HashAlgorithm::SHA384 => &HKDF_SHA384,
                    _ => return None,
                };
                // once per process, one per suite (three): a 'static suite as rustls wants it
                let suite: &'static Tls13CipherSuite = Box::leak(Box::new(Tls13CipherSuite {
                    common: CipherSuiteCommon {
                        suite: s.common.suite,
                        hash_provider: s.common.hash_provider,
                        confidentiality_limit: s.common.confidentiality_limit,
                    },
                    hkdf_provider: hkdf,
                    aead_alg: s.aead_alg,
                    quic: s.quic,
                }));
                Some(suite)
            })
            .collect()
    });
    SUITES
        .iter()
        .copied()
        .find(|ours| ours.common.suite == s.common.suite)
        .unwrap_or(s)
}

static HKDF_SHA256: HkdfUsingHmac<'static> = HkdfUsingHmac(&HMAC_SHA256);
static HKDF_SHA384: HkdfUsingHmac<'static> = HkdfUsingHmac(&HMAC_SHA384);
static HMAC_SHA256: AwsLcHmac = AwsLcHmac(aws_lc_rs::hmac::HMAC_SHA256);
static HMAC_SHA384: AwsLcHmac = AwsLcHmac(aws_lc_rs::hmac::HMAC_SHA384);

/// HMAC for rustls from aws-lc-rs: a key is set up once (its pads hashed) and copied per tag.
struct AwsLcHmac(aws_lc_rs::hmac::Algorithm);

impl Hmac for AwsLcHmac {
    fn with_key(&self, key: &[u8]) -> Box<dyn HmacKey> {
        Box::new(AwsLcHmacKey(aws_lc_rs::hmac::Key::new(self.0, key)))
    }

    fn hash_output_len(&self) -> usize {
        self.0.digest_algorithm().output_len()
    }
}

struct AwsLcHmacKey(aws_lc_rs::hmac::Key);

impl HmacKey for AwsLcHmacKey {
    fn sign_concat(&self, first: &[u8], middle: &[&[u8]], last: &[u8]) -> Tag {
        let mut ctx = aws_lc_rs::hmac::Context::with_key(&self.0);
        ctx.update(first);
        for d in middle {
            ctx.update(d);
        }
        ctx.update(last);
        Tag::new(ctx.sign().as_ref())
    }

    fn tag_len(&self) -> usize {
        self.0.algorithm().digest_algorithm().output_len()
    }
}

/// TLS 1.3 session tickets a listener sends after each handshake (rustls' default is 2, as
/// OpenSSL's). One is enough for a sender to resume its next connection, and a resumed
/// handshake brings a fresh one; each ticket costs an HKDF label, a session-cache entry and
/// a record.
const TLS13_TICKETS_PER_HANDSHAKE: usize = 1;

fn tls(e: rustls::Error) -> Error {
    Error::Tls(e.to_string())
}

impl CertStore {
    /// The certificate, chain and signing key of `name`, ready for a certificate resolver.
    pub fn certified_key(&self, name: &str) -> Result<Arc<CertifiedKey>> {
        let c = self.get(name)?;
        let ck = CertifiedKey::from_der(c.chain, c.key.to_rustls(), &provider()).map_err(tls)?;
        Ok(Arc::new(ck))
    }

    /// A server configuration presenting certificate `name` and its intermediates.
    pub fn server_config(&self, name: &str) -> Result<Arc<ServerConfig>> {
        let c = self.get(name)?;
        let mut config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(tls)?
            .with_no_client_auth()
            .with_single_cert(c.chain, c.key.to_rustls())
            .map_err(tls)?;
        config.send_tls13_tickets = TLS13_TICKETS_PER_HANDSHAKE;
        Ok(Arc::new(config))
    }

    /// The server configuration of the certificate assigned to `listener`.
    pub fn listener_server_config(&self, listener: &str) -> Result<Arc<ServerConfig>> {
        let name = self
            .listener_certificate(listener)
            .ok_or_else(|| Error::Unassigned {
                listener: listener.into(),
            })?;
        self.server_config(name)
    }

    /// The trust anchors of the enabled lists (seed: "you can also use both lists").
    pub fn root_store(&self) -> Result<RootCertStore> {
        let s = &self.settings;
        if !s.system_ca_enabled && !s.custom_ca_enabled {
            return Err(Error::NoCaListEnabled);
        }
        let mut roots = RootCertStore::empty();
        if s.system_ca_enabled {
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        }
        if s.custom_ca_enabled {
            if self.custom_ca.is_empty() && !s.system_ca_enabled {
                return Err(Error::CustomCaListEmpty);
            }
            for cert in &self.custom_ca {
                roots
                    .add(cert.clone())
                    .map_err(|e| Error::InvalidCertificate {
                        reason: e.to_string(),
                    })?;
            }
        }
        Ok(roots)
    }

    /// A client configuration for delivery: the enabled CA lists as roots and, when a
    /// certificate is assigned to all outgoing TLS connections, that certificate as client
    /// certificate.
    pub fn client_config(&self) -> Result<Arc<ClientConfig>> {
        let builder = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(tls)?
            .with_root_certificates(self.root_store()?);
        let config = match self.outgoing_certificate() {
            Some(name) => {
                let c = self.get(name)?;
                builder
                    .with_client_auth_cert(c.chain, c.key.to_rustls())
                    .map_err(tls)?
            }
            None => builder.with_no_client_auth(),
        };
        Ok(Arc::new(config))
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use rustls::client::Resumption;
    use rustls::crypto::aws_lc_rs::default_provider;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
    use rustls::{ClientConnection, HandshakeKind, ServerConnection};

    use super::*;

    fn tls13_suites(p: &CryptoProvider) -> Vec<&'static Tls13CipherSuite> {
        p.cipher_suites
            .iter()
            .filter_map(|s| match s {
                SupportedCipherSuite::Tls13(s) => Some(*s),
                SupportedCipherSuite::Tls12(_) => None,
            })
            .collect()
    }

    #[test]
    fn same_suites_groups_and_schemes_in_the_same_order_as_aws_lc_rs() {
        let (ours, theirs) = (provider(), default_provider());
        let ids = |p: &CryptoProvider| {
            p.cipher_suites
                .iter()
                .map(|s| s.suite())
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(&ours), ids(&theirs));
        let groups = |p: &CryptoProvider| p.kx_groups.iter().map(|g| g.name()).collect::<Vec<_>>();
        assert_eq!(groups(&ours), groups(&theirs));
        let schemes = |p: &CryptoProvider| {
            let m = p.signature_verification_algorithms.mapping;
            m.iter().map(|(scheme, _)| *scheme).collect::<Vec<_>>()
        };
        assert_eq!(schemes(&ours), schemes(&theirs));
        // every TLS 1.3 suite uses the HKDF over precomputed HMAC keys, nothing else changed
        let (o, t) = (tls13_suites(&ours), tls13_suites(&theirs));
        assert_eq!(o.len(), 3);
        for (o, t) in o.iter().zip(&t) {
            assert!(
                !std::ptr::eq(*o, *t),
                "{:?} kept rustls' HKDF",
                o.common.suite
            );
            let hkdf_addr = |h: &dyn Hkdf| std::ptr::from_ref(h).cast::<u8>();
            let want = match o.common.hash_provider.algorithm() {
                HashAlgorithm::SHA256 => hkdf_addr(&HKDF_SHA256),
                _ => hkdf_addr(&HKDF_SHA384),
            };
            assert_eq!(hkdf_addr(o.hkdf_provider), want);
            assert_eq!(
                o.common.confidentiality_limit,
                t.common.confidentiality_limit
            );
            assert!(std::ptr::eq(o.common.hash_provider, t.common.hash_provider));
        }
    }

    #[test]
    fn hkdf_over_precomputed_hmac_gives_the_bytes_of_aws_lc_rs_hkdf() {
        let (ours, theirs) = (provider(), default_provider());
        let secret: Vec<u8> = (0u8..48).map(|b| b.wrapping_mul(37)).collect();
        let salt: Vec<u8> = (0u8..48).map(|b| b ^ 0xa5).collect();
        let info: [&[u8]; 3] = [b"\x00\x30", b"\x0dtls13 derived", b"\x20context bytes"];
        for (o, t) in tls13_suites(&ours).into_iter().zip(tls13_suites(&theirs)) {
            let (o, t) = (o.hkdf_provider, t.hkdf_provider);
            let pairs = [
                (
                    o.extract_from_secret(Some(&salt), &secret),
                    t.extract_from_secret(Some(&salt), &secret),
                ),
                (
                    o.extract_from_secret(None, &secret),
                    t.extract_from_secret(None, &secret),
                ),
                (
                    o.extract_from_zero_ikm(Some(&salt)),
                    t.extract_from_zero_ikm(Some(&salt)),
                ),
                (o.extract_from_zero_ikm(None), t.extract_from_zero_ikm(None)),
            ];
            for (eo, et) in pairs {
                let (bo, bt) = (eo.expand_block(&info), et.expand_block(&info));
                assert_eq!(bo.as_ref(), bt.as_ref());
                assert_eq!(
                    o.expander_for_okm(&bo).expand_block(&info[1..]).as_ref(),
                    t.expander_for_okm(&bt).expand_block(&info[1..]).as_ref()
                );
                assert_eq!(
                    o.hmac_sign(&bo, b"transcript").as_ref(),
                    t.hmac_sign(&bt, b"transcript").as_ref()
                );
                // lengths below, at and across the hash length (several HMAC blocks)
                for len in [1, 12, 16, 32, 48, 49, 100, 255] {
                    let (mut a, mut b) = (vec![0u8; len], vec![1u8; len]);
                    eo.expand_slice(&info, &mut a).unwrap();
                    et.expand_slice(&info, &mut b).unwrap();
                    assert_eq!(a, b, "length {len}");
                }
                let mut too_long = vec![0u8; 255 * eo.hash_len() + 1];
                assert!(eo.expand_slice(&info, &mut too_long).is_err());
            }
        }
    }

    #[test]
    fn hkdf_sha256_matches_rfc_5869_test_case_1() {
        let ikm = [0x0bu8; 22];
        let salt: Vec<u8> = (0x00u8..=0x0c).collect();
        let info: Vec<u8> = (0xf0u8..=0xf9).collect();
        let mut okm = [0u8; 42];
        HKDF_SHA256
            .extract_from_secret(Some(&salt), &ikm)
            .expand_slice(&[&info], &mut okm)
            .unwrap();
        assert_eq!(
            hex::encode(okm),
            "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"
        );
    }

    /// Moves the TLS bytes `from` has to send into `to` and lets `to` process them; how many
    /// bytes moved.
    fn pump<A, B>(
        from: &mut rustls::ConnectionCommon<A>,
        to: &mut rustls::ConnectionCommon<B>,
    ) -> usize {
        let mut buf = Vec::new();
        let mut moved = 0;
        while from.wants_write() {
            moved += from.write_tls(&mut buf).unwrap();
        }
        let mut rd = &buf[..];
        while !rd.is_empty() {
            to.read_tls(&mut rd).unwrap();
        }
        to.process_new_packets().unwrap();
        moved
    }

    /// Moves the TLS bytes each side has to send to the other until neither has more.
    fn exchange(client: &mut ClientConnection, server: &mut ServerConnection) {
        for _ in 0..20 {
            let moved = pump(client, server) + pump(server, client);
            if moved == 0 {
                return;
            }
        }
        panic!("the handshake did not settle in 20 rounds");
    }

    #[test]
    fn each_tls13_suite_handshakes_and_resumes_with_a_stock_aws_lc_rs_client() {
        let ck = rcgen::generate_simple_self_signed(vec!["mx.example".to_owned()]).unwrap();
        let cert = CertificateDer::from(ck.cert.der().to_vec());
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ck.signing_key.serialize_der()));
        let server = Arc::new(
            ServerConfig::builder_with_provider(provider())
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(vec![cert.clone()], key)
                .unwrap(),
        );
        let mut roots = RootCertStore::empty();
        roots.add(cert).unwrap();
        for suite in tls13_suites(&default_provider()) {
            let stock = CryptoProvider {
                cipher_suites: vec![SupportedCipherSuite::Tls13(suite)],
                ..default_provider()
            };
            let mut client = ClientConfig::builder_with_provider(Arc::new(stock))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots.clone())
                .with_no_client_auth();
            client.resumption = Resumption::in_memory_sessions(8);
            let client = Arc::new(client);
            for want in [HandshakeKind::Full, HandshakeKind::Resumed] {
                let name = ServerName::try_from("mx.example").unwrap();
                let mut c = ClientConnection::new(Arc::clone(&client), name).unwrap();
                let mut s = ServerConnection::new(Arc::clone(&server)).unwrap();
                c.writer().write_all(b"EHLO client.example\r\n").unwrap();
                exchange(&mut c, &mut s);
                assert_eq!(c.handshake_kind(), Some(want), "{:?}", suite.common.suite);
                assert!(!s.is_handshaking() && !c.is_handshaking());
                let mut got = [0u8; 21];
                s.reader().read_exact(&mut got).unwrap();
                assert_eq!(&got, b"EHLO client.example\r\n");
                s.writer().write_all(b"250 ok\r\n").unwrap();
                exchange(&mut c, &mut s);
                let mut got = [0u8; 8];
                c.reader().read_exact(&mut got).unwrap();
                assert_eq!(&got, b"250 ok\r\n");
                assert_eq!(
                    s.negotiated_cipher_suite().map(|s| s.suite()),
                    Some(suite.common.suite)
                );
            }
        }
    }

    #[test]
    fn a_listener_sends_one_ticket_and_each_resumption_brings_a_fresh_one() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = CertStore::open(dir.path().join("s")).unwrap();
        let req = crate::SelfSignedRequest::new(crate::Subject::new("mx.example.com"));
        store.create_self_signed("mx", &req).unwrap();
        let server = store.server_config("mx").unwrap();
        assert_eq!(server.send_tls13_tickets, 1);
        let mut roots = RootCertStore::empty();
        roots
            .add(store.get("mx").unwrap().chain[0].clone())
            .unwrap();
        let mut client = ClientConfig::builder_with_provider(Arc::new(default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        client.resumption = Resumption::in_memory_sessions(8);
        let client = Arc::new(client);
        // TLS 1.3 tickets are single-use in rustls' client: the third connection resumes only
        // because the second (resumed) one brought a new ticket
        let kinds = [
            HandshakeKind::Full,
            HandshakeKind::Resumed,
            HandshakeKind::Resumed,
        ];
        for (i, want) in kinds.into_iter().enumerate() {
            let name = ServerName::try_from("mx.example.com").unwrap();
            let mut c = ClientConnection::new(Arc::clone(&client), name).unwrap();
            let mut s = ServerConnection::new(Arc::clone(&server)).unwrap();
            exchange(&mut c, &mut s);
            assert_eq!(c.handshake_kind(), Some(want), "connection {i}");
            assert_eq!(c.tls13_tickets_received(), 1, "connection {i}");
        }
    }
}
