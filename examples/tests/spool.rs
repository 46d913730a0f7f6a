//! Durability tests of the relay spool: recovery, quarantine, group commit, delivered state.

use std::collections::HashSet;
use std::time::SystemTime;

use smtp_tls_examples::relay::{
    CommitMode, Envelope, QUARANTINE_DIR, RecipientState, RelayError, Spool, SpoolConfig,
    SpoolDefect,
};

fn body(i: usize) -> Vec<u8> {
    format!("Message-ID: <{i}@test>\r\nSubject: m{i}\r\n\r\n.leading dot\r\nline {i}\r\n")
        .into_bytes()
}

fn envelope(i: usize) -> Envelope {
    let mut env = Envelope::new(
        &format!("s{i}@a.example"),
        [format!("r{i}@b.example"), format!("q{i}@c.example")],
        SystemTime::now(),
    );
    env.source = Some("127.0.0.1:4000".parse().unwrap());
    env.helo = Some("client.example".into());
    env
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepted_messages_survive_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut accepted = Vec::new();
    {
        let (spool, rec) = Spool::open(dir.path(), SpoolConfig::default())
            .await
            .unwrap();
        assert!(rec.messages.is_empty() && rec.quarantined.is_empty());
        for i in 0..20 {
            accepted.push(spool.accept(envelope(i), body(i)).await.unwrap());
        }
        // Everything dropped here: handles, committer.
    }
    let (spool, rec) = Spool::open(dir.path(), SpoolConfig::default())
        .await
        .unwrap();
    assert!(rec.quarantined.is_empty(), "{:?}", rec.quarantined);
    assert_eq!(rec.messages.len(), 20);
    let mut want: Vec<_> = accepted.clone();
    want.sort_by(|a, b| (a.arrival, &a.id).cmp(&(b.arrival, &b.id)));
    assert_eq!(rec.messages, want);
    for env in &accepted {
        let i: usize = env.sender[1..env.sender.find('@').unwrap()]
            .parse()
            .unwrap();
        assert_eq!(spool.read_body(&env.id).await.unwrap(), body(i));
    }
}

#[tokio::test]
async fn truncated_and_unknown_files_are_quarantined_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, _) = Spool::open(dir.path(), SpoolConfig::default())
        .await
        .unwrap();
    let good = spool.accept(envelope(1), body(1)).await.unwrap();
    let bad = spool.accept(envelope(2), body(2)).await.unwrap();
    drop(spool);
    let dir_path = std::fs::canonicalize(dir.path()).unwrap();
    let bad_path = dir_path.join(format!("{}.msg", bad.id));
    let bytes = std::fs::read(&bad_path).unwrap();
    std::fs::write(&bad_path, &bytes[..bytes.len() / 3]).unwrap();
    std::fs::write(dir_path.join("stray.txt"), b"junk").unwrap();
    std::fs::write(dir_path.join("0abc.msg.tmp"), b"SPOOL1 3").unwrap();

    let (spool, rec) = Spool::open(dir.path(), SpoolConfig::default())
        .await
        .unwrap();
    assert_eq!(rec.messages.len(), 1);
    assert_eq!(rec.messages[0].id, good.id);
    assert_eq!(rec.quarantined.len(), 3, "{:?}", rec.quarantined);
    let q = rec
        .quarantined
        .iter()
        .find(|q| q.original == bad_path)
        .expect("truncated file reported by name");
    assert!(matches!(
        &q.reason,
        RelayError::Corrupt { path, defect: SpoolDefect::LengthMismatch { .. } } if *path == bad_path
    ));
    assert_eq!(q.reason.path(), Some(bad_path.as_path()));
    // Moved, not deleted: same bytes in quarantine.
    assert_eq!(
        q.moved_to.parent().unwrap().file_name().unwrap(),
        QUARANTINE_DIR
    );
    assert_eq!(
        std::fs::read(&q.moved_to).unwrap(),
        &bytes[..bytes.len() / 3]
    );
    assert!(!bad_path.exists());
    assert!(
        rec.quarantined
            .iter()
            .any(|q| matches!(q.reason, RelayError::UnknownFile { .. }))
    );
    assert!(
        rec.quarantined
            .iter()
            .any(|q| matches!(q.reason, RelayError::Unfinished { .. }))
    );
    // A second start finds a clean spool.
    drop(spool);
    let (_, rec) = Spool::open(dir.path(), SpoolConfig::default())
        .await
        .unwrap();
    assert_eq!(rec.messages.len(), 1);
    assert!(rec.quarantined.is_empty());
}

#[tokio::test]
async fn garbage_envelope_is_reported_with_position() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, _) = Spool::open(dir.path(), SpoolConfig::default())
        .await
        .unwrap();
    let env = spool.accept(envelope(1), body(1)).await.unwrap();
    drop(spool);
    let path = dir.path().join(format!("{}.msg", env.id));
    let mut bytes = std::fs::read(&path).unwrap();
    let brace = bytes.iter().position(|&b| b == b'{').unwrap();
    bytes[brace + 1] = b'#';
    std::fs::write(&path, &bytes).unwrap();
    let (_, rec) = Spool::open(dir.path(), SpoolConfig::default())
        .await
        .unwrap();
    assert!(rec.messages.is_empty());
    assert!(matches!(
        rec.quarantined[0].reason,
        RelayError::Corrupt {
            defect: SpoolDefect::Envelope { line: 1, .. },
            ..
        }
    ));
}

async fn concurrent_accepts(commit: CommitMode, n: usize) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = SpoolConfig::default().with_commit(commit);
    let (spool, _) = Spool::open(dir.path(), cfg).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..n {
        let spool = spool.clone();
        tasks.push(tokio::spawn(async move {
            let env = spool.accept(envelope(i), body(i)).await.unwrap();
            // When accept returns, the file must already be complete on disk.
            let on_disk = std::fs::read(spool.dir().join(format!("{}.msg", env.id))).unwrap();
            assert!(on_disk.ends_with(&body(i)));
            env.id
        }));
    }
    let mut ids = HashSet::new();
    for t in tasks {
        assert!(ids.insert(t.await.unwrap()), "duplicate id");
    }
    drop(spool);
    let (_, rec) = Spool::open(dir.path(), cfg).await.unwrap();
    assert!(rec.quarantined.is_empty());
    let got: HashSet<_> = rec.messages.into_iter().map(|e| e.id).collect();
    assert_eq!(got, ids);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_commit_is_correct_under_concurrency() {
    concurrent_accepts(CommitMode::Group { max_batch: 16 }, 200).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_message_commit_is_correct_under_concurrency() {
    concurrent_accepts(CommitMode::PerMessage, 50).await;
}

#[tokio::test]
async fn delivered_state_survives_restart_and_removal_is_durable() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, _) = Spool::open(dir.path(), SpoolConfig::default())
        .await
        .unwrap();
    let mut env = spool.accept(envelope(1), body(1)).await.unwrap();
    let gone = spool.accept(envelope(2), body(2)).await.unwrap();
    env.recipients[0].state = RecipientState::Delivered;
    env.recipients[0].attempts = 1;
    env.attempts = 1;
    spool.update(&env).await.unwrap();
    spool.remove(&gone.id).await.unwrap();
    drop(spool);
    let (spool, rec) = Spool::open(dir.path(), SpoolConfig::default())
        .await
        .unwrap();
    assert!(rec.quarantined.is_empty());
    assert_eq!(rec.messages, vec![env.clone()]);
    assert_eq!(
        rec.messages[0].recipients[0].state,
        RecipientState::Delivered
    );
    assert_eq!(rec.messages[0].recipients[1].state, RecipientState::Pending);
    // Body unchanged by the envelope rewrite.
    assert_eq!(spool.read_body(&env.id).await.unwrap(), body(1));
    assert!(matches!(
        spool.read_body(&gone.id).await,
        Err(RelayError::UnknownMessage { .. })
    ));
    assert!(matches!(
        spool.update(&gone).await,
        Err(RelayError::UnknownMessage { .. })
    ));
}

#[tokio::test]
async fn orphan_envelope_is_quarantined() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, _) = Spool::open(dir.path(), SpoolConfig::default())
        .await
        .unwrap();
    let env = spool.accept(envelope(1), body(1)).await.unwrap();
    spool.update(&env).await.unwrap();
    drop(spool);
    // Simulate a crash between the two unlinks of a removal.
    std::fs::remove_file(dir.path().join(format!("{}.msg", env.id))).unwrap();
    let (_, rec) = Spool::open(dir.path(), SpoolConfig::default())
        .await
        .unwrap();
    assert!(rec.messages.is_empty());
    assert!(matches!(
        rec.quarantined[0].reason,
        RelayError::Orphan { .. }
    ));
}

#[tokio::test]
async fn limits_are_enforced() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = SpoolConfig::default().with_max_body(10);
    let (spool, _) = Spool::open(dir.path(), cfg).await.unwrap();
    assert_eq!(
        spool.accept(envelope(1), vec![b'x'; 11]).await,
        Err(RelayError::LimitExceeded {
            what: "body bytes",
            actual: 11,
            limit: 10
        })
    );
    let none = Envelope::new("a@b", Vec::<String>::new(), SystemTime::now());
    assert_eq!(
        spool.accept(none, vec![]).await,
        Err(RelayError::NoRecipient)
    );
}
