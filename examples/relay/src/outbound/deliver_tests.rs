//! `deliver_batch` against a real next hop (the Postfix lab, 3.7: no REQUIRETLS) on loopback.

use std::time::{Duration, SystemTime};

use test_support::pki::TestCa;
use test_support::postfix::Postfix;
use tokio::sync::mpsc;

use super::super::OutboundHandle;
use super::super::config::OutboundConfig;
use super::*;
use crate::{RecipientState, Spool, SpoolConfig};

/// RFC 8689 §4.2.1: a REQUIRETLS message refused at the first host is set aside for the next
/// one; when the next host's session ends before it reaches that message (here: it carried
/// its `max_messages_per_connection`, 1), no further host refused it, so it must be deferred
/// (4.7.30, retried) — never bounced (5.7.30). Route `rt.example` = the same Postfix twice,
/// TLS `required-verify`; the batch is [flagged, plain 1, plain 2]: host 1 refuses the flagged
/// one and carries plain 1, host 2 carries plain 2 and ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_requiretls_message_the_next_session_never_reached_is_deferred_not_bounced() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("deliver test CA");
    let pf = Postfix::with_tls(&ca, &["rt.example"]);
    let mut store = cert_store::CertStore::open(dir.path().join("certs")).unwrap();
    store
        .import_custom_ca(ca.pem.as_bytes(), cert_store::BadEntryPolicy::Reject)
        .unwrap();
    store
        .set_ca_enabled(cert_store::CaList::Custom, true)
        .unwrap();
    store
        .set_ca_enabled(cert_store::CaList::System, false)
        .unwrap();
    let controls = dir.path().join("destinations.toml");
    std::fs::write(
        &controls,
        "[default]\ntls = \"required-verify\"\ndane = \"none\"\n",
    )
    .unwrap();
    let port = pf.port();
    let config: OutboundConfig = toml::from_str(&format!(
        "ehlo_name = \"relay.test\"\nlocal_domains = [\"localhost\"]\nmaildir = \"{}\"\n\
         destination_controls = \"{}\"\nmax_messages_per_connection = 1\n\
         connect_timeout_secs = 5\n\
         [[route]]\ndomain = \"rt.example\"\nhosts = [\"127.0.0.1:{port}\", \"127.0.0.1:{port}\"]\n\
         [resolver]\nmode = \"system\"\n[retry]\ninitial_secs = 3600\n",
        dir.path().join("maildir").display(),
        controls.display(),
    ))
    .unwrap();
    let (spool, _) = Spool::open(&dir.path().join("spool"), SpoolConfig::default())
        .await
        .unwrap();
    let (tx, _rx) = mpsc::unbounded_channel();
    let ctx = Context::new(config, spool, Some(&store), OutboundHandle { tx })
        .await
        .unwrap();
    let ctx = Arc::new(ctx);
    let mut ids = Vec::new();
    for (to, request) in [
        ("flagged@rt.example", TlsRequest::RequireTls),
        ("plain1@rt.example", TlsRequest::Default),
        ("plain2@rt.example", TlsRequest::Default),
    ] {
        let mut env = Envelope::new("s@localhost", [to], SystemTime::now());
        env.tls_request = request;
        let env = ctx
            .spool
            .accept(env, b"Subject: x\r\n\r\nhi\r\n".to_vec())
            .await
            .unwrap();
        ids.push(env.id.clone());
        ctx.lock_queue().insert(env);
    }
    let mut jobs = ctx.lock_queue().due(SystemTime::now(), 10);
    assert_eq!(jobs.len(), 3, "{jobs:?}");
    // The batch in submission order: the flagged message first.
    jobs.sort_by_key(|j| ids.iter().position(|id| *id == j.id));
    let (_stop, shutdown) = watch::channel(false);
    deliver_batch(ctx.clone(), "rt.example".into(), jobs, shutdown, None).await;

    let q = ctx.lock_queue();
    for id in &ids[1..] {
        assert!(q.envelope(id).is_none(), "{id}: not delivered");
    }
    let env = q
        .envelope(&ids[0])
        .expect("the flagged message was bounced, not deferred");
    let r = &env.recipients[0];
    assert_eq!(r.state, RecipientState::Pending, "{r:?}");
    let last = r.last.as_ref().expect("an attempt recorded");
    assert_eq!(last.status, Some((4, 7, 30)), "{last:?}");
    drop(q);
    // Postfix logs the (discard) delivery after its 250 reply: wait for both lines.
    let log = pf.wait_log(Duration::from_secs(20), |l| {
        l.matches("status=sent").count() >= 2
    });
    assert_eq!(log.matches("status=sent").count(), 2, "{log}");
    assert!(!log.contains("flagged@rt.example"), "{log}");
}
