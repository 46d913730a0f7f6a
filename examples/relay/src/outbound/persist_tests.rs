//! A DSN that cannot be spooled is never lost: the bounce stays pending (in the queue and on
//! disk) and the next attempt spools the DSN once the spool works again. The failures are real
//! spool failures: a spool limit the DSN exceeds, and the spool directory going away.
//!
//! A message whose recipients were all delivered is removed without rewriting its envelope;
//! the tests make the envelope write impossible (a directory where its temporary file goes) or
//! the removal impossible (a directory where the message file is) to tell the paths apart.

use std::path::Path;
use std::time::{Duration, SystemTime};

use tokio::sync::mpsc;

use super::super::OutboundHandle;
use super::super::config::OutboundConfig;
use super::*;
use crate::spool::Failing;
use crate::{Diagnostic, MessageId, Spool, SpoolConfig};

const BODY: &[u8] = b"Subject: hello\r\n\r\nhi\r\n";

fn config(maildir: &Path) -> OutboundConfig {
    toml::from_str(&format!(
        "ehlo_name = \"relay.test\"\nlocal_domains = [\"example.org\"]\nmaildir = \"{}\"\n",
        maildir.display()
    ))
    .unwrap()
}

fn rejected() -> AttemptOutcome {
    AttemptOutcome::Failed(Diagnostic {
        code: 550,
        status: Some((5, 1, 1)),
        text: "5.1.1 no such user".into(),
        remote_mta: Some("mx.bad.test".into()),
    })
}

/// A context over `spool`, the message from alice@example.org to bob@bad.test queued, and the
/// receiving end of the engine's queue (where a spooled DSN is handed).
async fn setup(
    spool: Spool,
    maildir: &Path,
) -> (Context, Envelope, mpsc::UnboundedReceiver<Envelope>) {
    setup_to(spool, maildir, &["bob@bad.test"]).await
}

/// As [`setup`], to these recipients (one destination domain, so one job).
async fn setup_to(
    spool: Spool,
    maildir: &Path,
    recipients: &[&str],
) -> (Context, Envelope, mpsc::UnboundedReceiver<Envelope>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let ctx = Context::new(config(maildir), spool, None, OutboundHandle { tx })
        .await
        .unwrap();
    let env = Envelope::new(
        "alice@example.org",
        recipients.iter().copied(),
        SystemTime::now(),
    );
    let env = ctx.spool.accept(env, BODY.to_vec()).await.unwrap();
    ctx.lock_queue().insert(env.clone());
    (ctx, env, rx)
}

fn take_job(ctx: &Context, at: SystemTime) -> Job {
    let mut jobs = ctx.lock_queue().due(at, 10);
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    jobs.remove(0)
}

/// The files of the spool directory (not its `quarantine/`).
fn spool_files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(Result::unwrap)
        .filter(|e| e.file_type().unwrap().is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn dsn_over_a_spool_limit_keeps_the_bounce_pending_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let spool_dir = dir.path().join("spool");
    // The original (22 octets) fits; any DSN (report parts + original header) does not.
    let (spool, _) = Spool::open(&spool_dir, SpoolConfig::default().with_max_body(200))
        .await
        .unwrap();
    let (ctx, env, mut rx) = setup(spool, &dir.path().join("maildir")).await;
    let job = take_job(&ctx, SystemTime::now());
    record(&ctx, &job, vec![(0, rejected())], Some(BODY)).await;

    assert!(rx.try_recv().is_err(), "no DSN can have been queued");
    let queued = ctx
        .lock_queue()
        .envelope(&env.id)
        .cloned()
        .expect("still queued");
    let r = &queued.recipients[0];
    assert_eq!(r.state, RecipientState::Pending);
    assert_eq!(r.attempts, 1);
    assert!(
        r.next_attempt > SystemTime::now(),
        "retried after the backoff"
    );
    assert_eq!(r.last.as_ref().map(|d| d.code), Some(550));

    // On disk: the message and its updated envelope, still pending (a restart retries too).
    let (_again, recovery) = Spool::open(&spool_dir, SpoolConfig::default())
        .await
        .unwrap();
    assert_eq!(recovery.messages.len(), 1, "only the original, no DSN");
    let disk = &recovery.messages[0];
    assert_eq!(disk.id, env.id);
    assert_eq!(disk.recipients[0].state, RecipientState::Pending);
    assert_eq!(disk.recipients[0].attempts, 1);
}

#[tokio::test]
async fn dsn_retried_on_the_next_pass_after_the_spool_comes_back() {
    let dir = tempfile::tempdir().unwrap();
    let spool_dir = dir.path().join("spool");
    let (spool, _) = Spool::open(&spool_dir, SpoolConfig::default())
        .await
        .unwrap();
    let (ctx, env, mut rx) = setup(spool, &dir.path().join("maildir")).await;
    let job = take_job(&ctx, SystemTime::now());

    // The disk fails (full): the DSN write and the update fail.
    ctx.spool.set_failing(Failing::Everything);
    record(&ctx, &job, vec![(0, rejected())], Some(BODY)).await;
    ctx.spool.set_failing(Failing::Nothing);
    assert!(rx.try_recv().is_err(), "no DSN could be spooled");
    let queued = ctx
        .lock_queue()
        .envelope(&env.id)
        .cloned()
        .expect("still queued");
    assert_eq!(queued.recipients[0].state, RecipientState::Pending);
    let seg = ctx.spool.segment_of(&env.id).expect("the original stays");
    assert!(seg.is_file(), "{}", seg.display());
    assert_eq!(ctx.spool.len(), 1);

    // The next pass (after the backoff) bounces again and spools the DSN.
    let later = SystemTime::now() + Duration::from_secs(2 * 86_400);
    let job = take_job(&ctx, later);
    assert_eq!(job.recipients, [0]);
    record(&ctx, &job, vec![(0, rejected())], None).await;
    let dsn = rx.try_recv().expect("the DSN is queued");
    assert_eq!(dsn.sender, "");
    assert_eq!(dsn.recipients[0].address, "alice@example.org");
    assert!(
        ctx.lock_queue().envelope(&env.id).is_none(),
        "original done"
    );
    assert_eq!(ctx.spool.len(), 1, "only the DSN");
    assert!(ctx.spool.segment_of(&dsn.id).is_some_and(|p| p.is_file()));
    // On disk too: a restart finds the DSN only.
    let (_again, recovery) = Spool::open(&spool_dir, SpoolConfig::default())
        .await
        .unwrap();
    let ids: Vec<_> = recovery.messages.iter().map(|e| &e.id).collect();
    assert_eq!(ids, [&dsn.id]);
    let text = String::from_utf8(ctx.spool.read_body(&dsn.id).await.unwrap()).unwrap();
    assert!(text.contains("bob@bad.test"), "{text}");
    assert!(text.contains("Action: failed"), "{text}");
    assert!(
        text.contains("Subject: hello"),
        "the original header: {text}"
    );
}

/// Makes every envelope write of message `id` fail: its temporary file's name is a directory.
fn block_envelope_writes(spool_dir: &Path, id: &MessageId) {
    std::fs::create_dir(spool_dir.join(format!("{id}.env.tmp"))).unwrap();
}

#[tokio::test]
async fn all_delivered_is_removed_without_an_envelope_write() {
    let dir = tempfile::tempdir().unwrap();
    let spool_dir = dir.path().join("spool");
    let (spool, _) = Spool::open(&spool_dir, SpoolConfig::default())
        .await
        .unwrap();
    let (ctx, env, mut rx) = setup_to(
        spool,
        &dir.path().join("maildir"),
        &["bob@bad.test", "carol@bad.test"],
    )
    .await;
    // Were the envelope written first, this write would fail and the message would stay.
    block_envelope_writes(&spool_dir, &env.id);
    let job = take_job(&ctx, SystemTime::now());
    assert_eq!(job.recipients, [0, 1]);
    let delivered = vec![
        (0, AttemptOutcome::Delivered),
        (1, AttemptOutcome::Delivered),
    ];
    record(&ctx, &job, delivered, Some(BODY)).await;

    assert!(rx.try_recv().is_err(), "no DSN for a delivery");
    assert!(
        ctx.lock_queue().envelope(&env.id).is_none(),
        "removed from the queue"
    );
    assert!(ctx.spool.is_empty());
    // On disk too: a restart finds nothing to deliver, and no envelope was written.
    let (_again, recovery) = Spool::open(&spool_dir, SpoolConfig::default())
        .await
        .unwrap();
    assert!(recovery.messages.is_empty(), "{:?}", recovery.messages);
    assert!(
        !spool_files(&spool_dir).iter().any(|f| f.ends_with(".env")),
        "{:?}",
        spool_files(&spool_dir)
    );
    assert!(
        ctx.lock_queue()
            .due(SystemTime::now() + Duration::from_secs(86_400), 10)
            .is_empty()
    );
}

#[tokio::test]
async fn a_failed_removal_falls_back_to_writing_the_envelope() {
    let dir = tempfile::tempdir().unwrap();
    let spool_dir = dir.path().join("spool");
    let (spool, _) = Spool::open(&spool_dir, SpoolConfig::default())
        .await
        .unwrap();
    let (ctx, env, mut rx) = setup(spool, &dir.path().join("maildir")).await;
    // Removals fail (envelope writes still work).
    ctx.spool.set_failing(Failing::Removals);
    let job = take_job(&ctx, SystemTime::now());
    record(&ctx, &job, vec![(0, AttemptOutcome::Delivered)], Some(BODY)).await;
    ctx.spool.set_failing(Failing::Nothing);

    assert!(rx.try_recv().is_err(), "no DSN for a delivery");
    // The delivery is on disk: a restart does not deliver it again.
    let text = std::fs::read_to_string(spool_dir.join(format!("{}.env", env.id))).unwrap();
    assert!(text.contains("\"delivered\""), "{text}");
    assert!(!text.contains("\"pending\""), "{text}");
    // The queue keeps the finished envelope (nothing scheduled) since the removal failed.
    let queued = ctx.lock_queue().envelope(&env.id).cloned().expect("kept");
    assert!(queued.is_done());
    assert!(
        ctx.lock_queue()
            .due(SystemTime::now() + Duration::from_secs(86_400), 10)
            .is_empty()
    );
}

#[tokio::test]
async fn a_dsn_owed_keeps_the_envelope_write_before_the_removal() {
    let dir = tempfile::tempdir().unwrap();
    let spool_dir = dir.path().join("spool");
    let (spool, _) = Spool::open(&spool_dir, SpoolConfig::default())
        .await
        .unwrap();
    let (ctx, env, mut rx) = setup_to(
        spool,
        &dir.path().join("maildir"),
        &["bob@bad.test", "carol@bad.test"],
    )
    .await;
    block_envelope_writes(&spool_dir, &env.id);
    let job = take_job(&ctx, SystemTime::now());
    let outcomes = vec![(0, AttemptOutcome::Delivered), (1, rejected())];
    record(&ctx, &job, outcomes, Some(BODY)).await;

    // The DSN is spooled first; the envelope write fails, so the original is not removed.
    let dsn = rx.try_recv().expect("the DSN is queued");
    assert_eq!(dsn.recipients[0].address, "alice@example.org");
    for id in [&env.id, &dsn.id] {
        let seg = ctx.spool.segment_of(id).expect("spooled");
        assert!(seg.is_file(), "{}", seg.display());
    }
    assert!(ctx.lock_queue().envelope(&env.id).is_some(), "still queued");
}
