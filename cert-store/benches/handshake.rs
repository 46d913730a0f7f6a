//! Server-side CPU of one TLS 1.3 STARTTLS handshake, in memory: no sockets, no runtime, no
//! SMTP. cert-store's listener configuration (ECDSA P-256 certificate) against a stock rustls
//! client (aws-lc-rs provider, its default order: X25519, `TLS_AES_256_GCM_SHA384`), timing only
//! the server's calls (`read_tls`, `process_new_packets`, `write_tls`). Beside it, the floor: the
//! server's public-key operations alone (an X25519 key share and agreement, an ECDSA P-256
//! signature). What a relay spends per connection above the first figure is sockets, kernel,
//! runtime and the SMTP session (issue 15).
//!
//! `cargo bench -p cert-store --bench handshake -- --warm-up-time 1 --measurement-time 3`
// criterion_group! generates undocumented items
#![allow(missing_docs)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lc_rs::agreement::{self, EphemeralPrivateKey, UnparsedPublicKey};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};
use cert_store::{CertStore, SelfSignedRequest, Subject};
use criterion::{Criterion, criterion_group, criterion_main};
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, ServerConfig, ServerConnection};

/// Moves what `from` has to send into `to`; the time spent in the server's calls is added to
/// `server` (the server is `from` when `from_is_server`).
fn pump<A, B>(
    from: &mut rustls::ConnectionCommon<A>,
    to: &mut rustls::ConnectionCommon<B>,
    from_is_server: bool,
    server: &mut Duration,
) -> usize {
    let mut buf = Vec::with_capacity(4096);
    let t = Instant::now();
    while from.wants_write() {
        from.write_tls(&mut buf).expect("write_tls to a Vec");
    }
    if from_is_server {
        *server += t.elapsed();
    }
    let t = Instant::now();
    let mut rd = &buf[..];
    while !rd.is_empty() {
        to.read_tls(&mut rd).expect("read_tls from a slice");
    }
    to.process_new_packets().expect("handshake messages");
    if !from_is_server {
        *server += t.elapsed();
    }
    buf.len()
}

/// One handshake (and the ticket the server sends after it); the server's share of the time.
fn handshake(server_config: &Arc<ServerConfig>, client_config: &Arc<ClientConfig>) -> Duration {
    let mut server_time = Duration::ZERO;
    let name = ServerName::try_from("mx.bench.example").expect("a DNS name");
    let mut client = ClientConnection::new(Arc::clone(client_config), name).expect("client");
    let t = Instant::now();
    let mut server = ServerConnection::new(Arc::clone(server_config)).expect("server");
    server_time += t.elapsed();
    for _ in 0..10 {
        let moved = pump(&mut client, &mut server, false, &mut server_time)
            + pump(&mut server, &mut client, true, &mut server_time);
        if moved == 0 {
            break;
        }
    }
    assert!(!server.is_handshaking() && !client.is_handshaking());
    server_time
}

fn configs(resume: bool, sha256_suite: bool) -> (Arc<ServerConfig>, Arc<ClientConfig>) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut store = CertStore::open(dir.path()).expect("empty store");
    store
        .create_self_signed(
            "bench",
            &SelfSignedRequest::new(Subject::new("mx.bench.example")),
        )
        .expect("ECDSA P-256 certificate");
    let server = store.server_config("bench").expect("server configuration");
    let mut roots = RootCertStore::empty();
    let cert: CertificateDer<'static> = store
        .certified_key("bench")
        .expect("stored key")
        .cert
        .first()
        .cloned()
        .expect("a certificate");
    roots.add(cert).expect("anchor");
    let mut provider = rustls::crypto::aws_lc_rs::default_provider();
    if sha256_suite {
        provider.cipher_suites =
            vec![rustls::crypto::aws_lc_rs::cipher_suite::TLS13_AES_128_GCM_SHA256];
    }
    let mut client = ClientConfig::builder_with_provider(Arc::new(provider))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    if !resume {
        client.resumption = rustls::client::Resumption::disabled();
    }
    (server, Arc::new(client))
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("tls13_server_handshake");
    let (server, client) = configs(false, false);
    g.bench_function("full, server calls only", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| handshake(&server, &client)).sum())
    });
    let (server_r, client_r) = configs(true, false);
    let _ = handshake(&server_r, &client_r); // a first ticket
    g.bench_function("resumed, server calls only", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| handshake(&server_r, &client_r)).sum())
    });
    // for comparison only: the suite a server preference for TLS_AES_128_GCM_SHA256 would pick
    // (SHA-256 has CPU instructions on many x86 machines; SHA-384 runs aws-lc's generic code on AMD)
    let (server_s, client_s) = configs(false, true);
    g.bench_function("full, TLS_AES_128_GCM_SHA256, server calls only", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| handshake(&server_s, &client_s)).sum())
    });
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).expect("key");
    let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref())
        .expect("key pair");
    let peer = EphemeralPrivateKey::generate(&agreement::X25519, &rng).expect("peer key");
    let peer_public = peer.compute_public_key().expect("peer public key");
    let transcript = [0x5a_u8; 130];
    g.bench_function(
        "floor: X25519 share + agreement + ECDSA P-256 signature",
        |b| {
            b.iter(|| {
                let ours = EphemeralPrivateKey::generate(&agreement::X25519, &rng).expect("key");
                let public = ours.compute_public_key().expect("public key");
                let shared = agreement::agree_ephemeral(
                    ours,
                    UnparsedPublicKey::new(&agreement::X25519, peer_public.as_ref()),
                    (),
                    |s| Ok(s[0]),
                )
                .expect("agreement");
                let sig = key.sign(&rng, &transcript).expect("signature");
                (
                    public.as_ref()[0],
                    shared,
                    sig.as_ref()[0],
                    key.public_key().as_ref()[0],
                )
            })
        },
    );
    g.bench_function("full, both sides", |b| {
        b.iter(|| handshake(&server, &client))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
