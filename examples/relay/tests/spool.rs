//! Durability tests of the relay spool: recovery, quarantine, group commit, delivered state.

use std::collections::HashSet;
use std::time::SystemTime;

use relay::{
    CommitMode, Envelope, QUARANTINE_DIR, RecipientState, RelayError, Spool, SpoolConfig,
    SpoolDefect,
};

/// Opens (recovers) the spool at `dir` with the default settings.
async fn open(dir: &std::path::Path) -> (Spool, relay::Recovery) {
    Spool::open(dir, SpoolConfig::default()).await.unwrap()
}

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
    let (spool, rec) = open(dir.path()).await;
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
    let (spool, _) = open(dir.path()).await;
    // The damaged message's segment is an older one (closed at the restart): damage there is
    // corruption, not a batch cut short by a crash.
    let bad = spool.accept(envelope(2), body(2)).await.unwrap();
    let bad_path = spool.segment_of(&bad.id).unwrap();
    drop(spool);
    let (spool, _) = open(dir.path()).await;
    let good = spool.accept(envelope(1), body(1)).await.unwrap();
    assert_ne!(
        spool.segment_of(&good.id),
        Some(bad_path.clone()),
        "one segment each"
    );
    drop(spool);
    let dir_path = std::fs::canonicalize(dir.path()).unwrap();
    let bytes = std::fs::read(&bad_path).unwrap();
    std::fs::write(&bad_path, &bytes[..bytes.len() / 3]).unwrap();
    std::fs::write(dir_path.join("stray.txt"), b"junk").unwrap();
    std::fs::write(dir_path.join("00000000000000ab.seg.tmp"), b"SPOOLSEG1\n").unwrap();

    let (spool, rec) = open(dir.path()).await;
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
        RelayError::Corrupt { path, defect: SpoolDefect::Truncated { .. } } if *path == bad_path
    ));
    assert_eq!(q.salvaged, 0, "the only record was cut");
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
    let (_, rec) = open(dir.path()).await;
    assert_eq!(rec.messages.len(), 1);
    assert!(rec.quarantined.is_empty());
}

#[tokio::test]
async fn a_damaged_record_is_reported_with_its_offset() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, _) = open(dir.path()).await;
    let env = spool.accept(envelope(1), body(1)).await.unwrap();
    let path = spool.segment_of(&env.id).unwrap();
    drop(spool);
    let mut bytes = std::fs::read(&path).unwrap();
    let brace = bytes.iter().position(|&b| b == b'{').unwrap();
    bytes[brace + 1] = b'#';
    std::fs::write(&path, &bytes).unwrap();
    let (_, rec) = open(dir.path()).await;
    assert!(rec.messages.is_empty());
    // The first record starts right after the 10-byte magic line.
    assert!(matches!(
        rec.quarantined[0].reason,
        RelayError::Corrupt {
            defect: SpoolDefect::Checksum { offset: 10 },
            ..
        }
    ));
}

/// Accepts messages `from..from + n` concurrently; returns their envelopes.
async fn accept_concurrently(spool: &Spool, from: usize, n: usize) -> Vec<Envelope> {
    let tasks: Vec<_> = (from..from + n)
        .map(|i| {
            let spool = spool.clone();
            tokio::spawn(async move { spool.accept(envelope(i), body(i)).await.unwrap() })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

/// Accepts batches until one segment holds at least `want` messages (bounded); returns every
/// envelope accepted and the messages of that segment.
async fn a_shared_segment(spool: &Spool, want: usize) -> (Vec<Envelope>, Vec<Envelope>) {
    let mut all = Vec::new();
    for round in 0..50 {
        let batch = accept_concurrently(spool, round * 100, 16).await;
        all.extend(batch);
        let mut by_seg: std::collections::BTreeMap<_, Vec<Envelope>> = Default::default();
        for e in &all {
            by_seg
                .entry(spool.segment_of(&e.id).unwrap())
                .or_default()
                .push(e.clone());
        }
        if let Some(shared) = by_seg.into_values().find(|v| v.len() >= want) {
            return (all, shared);
        }
    }
    panic!("group commit never put {want} messages into one segment");
}

#[tokio::test]
async fn a_damaged_segment_is_salvaged_up_to_the_damage() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, _) = open(dir.path()).await;
    // Three batches of one message each, appended to one segment.
    let mut first = Vec::new();
    for i in 0..3 {
        first.push(spool.accept(envelope(i), body(i)).await.unwrap());
    }
    let path = spool.segment_of(&first[0].id).unwrap();
    assert!(
        first
            .iter()
            .all(|e| spool.segment_of(&e.id) == Some(path.clone()))
    );
    drop(spool);
    // After a restart, a new segment: the first one is closed.
    let (spool, _) = open(dir.path()).await;
    let later = spool.accept(envelope(3), body(3)).await.unwrap();
    assert_ne!(spool.segment_of(&later.id), Some(path.clone()));
    drop(spool);
    // Damage the third message's body.
    let mut bytes = std::fs::read(&path).unwrap();
    let b2 = body(2);
    let at = bytes.windows(b2.len()).position(|w| w == b2).unwrap();
    bytes[at + 3] ^= 0x01;
    std::fs::write(&path, &bytes).unwrap();
    let (spool, rec) = open(dir.path()).await;
    assert_eq!(rec.quarantined.len(), 1, "{:?}", rec.quarantined);
    let q = &rec.quarantined[0];
    assert_eq!(q.original, path);
    assert!(matches!(
        q.reason,
        RelayError::Corrupt {
            defect: SpoolDefect::Checksum { .. },
            ..
        }
    ));
    assert_eq!(q.salvaged, 2, "the two batches before the damage");
    assert_eq!(
        std::fs::read(&q.moved_to).unwrap(),
        bytes,
        "moved, not deleted"
    );
    let got: Vec<_> = rec.messages.iter().map(|e| e.id.clone()).collect();
    let want: Vec<_> = [&first[0], &first[1], &later]
        .iter()
        .map(|e| e.id.clone())
        .collect();
    assert_eq!(got, want);
    for (i, id) in [0, 1, 3].into_iter().zip(&want) {
        assert_eq!(spool.read_body(id).await.unwrap(), body(i));
    }
    // A second start: the salvage is in a segment of its own, nothing more to quarantine.
    drop(spool);
    let (_, rec) = open(dir.path()).await;
    assert!(rec.quarantined.is_empty(), "{:?}", rec.quarantined);
    assert_eq!(rec.messages.len(), 3);
}

#[tokio::test]
async fn a_batch_cut_short_in_the_newest_segment_is_set_aside_as_unfinished() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, _) = open(dir.path()).await;
    let kept = spool.accept(envelope(1), body(1)).await.unwrap();
    let cut = spool.accept(envelope(2), body(2)).await.unwrap();
    let path = spool.segment_of(&cut.id).unwrap();
    drop(spool);
    // A crash in the middle of the second batch's write (its commit never returned).
    let bytes = std::fs::read(&path).unwrap();
    let at = bytes
        .windows(body(2).len())
        .position(|w| w == body(2))
        .unwrap();
    std::fs::write(&path, &bytes[..at + 5]).unwrap();
    let (_, rec) = open(dir.path()).await;
    assert_eq!(rec.messages.len(), 1);
    assert_eq!(rec.messages[0].id, kept.id);
    assert_eq!(rec.quarantined.len(), 1, "{:?}", rec.quarantined);
    let q = &rec.quarantined[0];
    assert!(matches!(q.reason, RelayError::Unfinished { .. }), "{q:?}");
    let tail = std::fs::read(&q.moved_to).unwrap();
    assert!(
        bytes[..at + 5].ends_with(&tail),
        "the cut batch's bytes are kept"
    );
    // The segment was cut back to its last whole batch: a second start is clean.
    let (_, rec) = open(dir.path()).await;
    assert!(rec.quarantined.is_empty(), "{:?}", rec.quarantined);
    assert_eq!(rec.messages.len(), 1);
}

fn segments_in(dir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".seg"))
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tombstones_survive_restart_and_finished_segments_are_collected() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, _) = open(dir.path()).await;
    let (all, shared) = a_shared_segment(&spool, 2).await;
    // Finish one message of the shared segment: the others keep it, so a tombstone is written.
    let done = &shared[0];
    let seg = spool.segment_of(&done.id).unwrap();
    spool.remove(&done.id).await.unwrap();
    assert!(seg.is_file(), "still holds live messages");
    assert_eq!(spool.len(), all.len() - 1);
    drop(spool);
    let (spool, rec) = open(dir.path()).await;
    assert!(rec.quarantined.is_empty());
    assert_eq!(rec.messages.len(), all.len() - 1);
    assert!(
        rec.messages.iter().all(|e| e.id != done.id),
        "no resurrection"
    );
    // Finish everything. The active segment stays while in use; after a restart, nothing in
    // the spool is needed any more and every segment is collected.
    for e in &rec.messages {
        spool.remove(&e.id).await.unwrap();
    }
    assert!(spool.is_empty());
    drop(spool);
    let (spool, rec) = open(dir.path()).await;
    assert!(rec.messages.is_empty(), "{:?}", rec.messages);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !segments_in(dir.path()).is_empty() && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(segments_in(dir.path()), Vec::<String>::new());
    drop(spool);
    let (_, rec) = open(dir.path()).await;
    assert!(rec.messages.is_empty() && rec.quarantined.is_empty());
}

/// Checks that segment bytes `seg` hold the record of message `id` whole (header, envelope,
/// `body`, crc32 over both) and, after it, the commit line of its batch (`C <n>\n`, after the
/// batch's other records, each whole). The layout is `spool/file.rs`'s:
/// `M <id> <envelope-len> <body-len> <crc32>\n<envelope><body>`, `D <seq> <id> <crc32>\n`.
fn committed_record(seg: &[u8], id: &str, body: &[u8]) -> Result<(), String> {
    let header = format!("M {id} ");
    let mut at = seg
        .windows(header.len())
        .position(|w| w == header.as_bytes())
        .ok_or("no record")?;
    let line = |at: usize| -> Result<(String, usize), String> {
        let end = seg[at..]
            .iter()
            .position(|b| *b == b'\n')
            .ok_or_else(|| format!("line at {at} cut short"))?;
        let text = String::from_utf8(seg[at..at + end].to_vec()).map_err(|e| e.to_string())?;
        Ok((text, at + end + 1))
    };
    let mut first = true;
    loop {
        let (text, next) = line(at)?;
        let fields: Vec<&str> = text.split(' ').collect();
        match fields.as_slice() {
            ["M", rid, env_len, body_len, crc] => {
                let (e, b): (usize, usize) = (
                    env_len
                        .parse()
                        .map_err(|_| format!("bad header {text:?}"))?,
                    body_len
                        .parse()
                        .map_err(|_| format!("bad header {text:?}"))?,
                );
                let data = seg
                    .get(next..next + e + b)
                    .ok_or_else(|| format!("record {rid} cut short"))?;
                if format!("{:08x}", crc32fast::hash(data)) != *crc {
                    return Err(format!("record {rid}: crc mismatch"));
                }
                if first && &data[e..] != body {
                    return Err("body differs".into());
                }
                first = false;
                at = next + e + b;
            }
            ["D", ..] => at = next,
            ["C", n] if n.parse::<usize>().is_ok() => return Ok(()),
            _ => return Err(format!("unexpected line {text:?}")),
        }
    }
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
            // When accept returns, its record and the commit line of its batch must be on
            // disk. Other accepts may be appending their batches behind it meanwhile, so the
            // file's end proves nothing: the check reads from this message's record on.
            let on_disk = std::fs::read(spool.segment_of(&env.id).unwrap()).unwrap();
            if let Err(e) = committed_record(&on_disk, &env.id.to_string(), &body(i)) {
                panic!("message {i} ({}): {e}", env.id);
            }
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
    let (spool, _) = open(dir.path()).await;
    let mut env = spool.accept(envelope(1), body(1)).await.unwrap();
    let gone = spool.accept(envelope(2), body(2)).await.unwrap();
    env.recipients[0].state = RecipientState::Delivered;
    env.recipients[0].attempts = 1;
    env.attempts = 1;
    spool.update(&env).await.unwrap();
    spool.remove(&gone.id).await.unwrap();
    drop(spool);
    let (spool, rec) = open(dir.path()).await;
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
    let (spool, _) = open(dir.path()).await;
    let env = spool.accept(envelope(1), body(1)).await.unwrap();
    spool.update(&env).await.unwrap();
    let seg = spool.segment_of(&env.id).unwrap();
    drop(spool);
    // Simulate a crash between the two unlinks of a removal.
    std::fs::remove_file(seg).unwrap();
    let (_, rec) = open(dir.path()).await;
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

/// Child half of `kill_9_loses_no_acknowledged_message`: accepts messages until killed,
/// printing `ACK <id>` only after `accept` returned.
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var("RELAY_SPOOL_CRASH_CHILD") else {
        return; // Only runs when started by the crash test.
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let (spool, _) = Spool::open(std::path::Path::new(&dir), SpoolConfig::default())
            .await
            .unwrap();
        let mut tasks = Vec::new();
        for w in 0..8 {
            let spool = spool.clone();
            tasks.push(tokio::spawn(async move {
                // Bounded: the parent kills us long before this ends.
                for i in 0..20_000 {
                    let env = spool
                        .accept(envelope(w * 100_000 + i), body(i))
                        .await
                        .unwrap();
                    use std::io::Write;
                    let mut out = std::io::stdout().lock();
                    writeln!(out, "ACK {}", env.id).unwrap();
                    out.flush().unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    });
}

#[test]
fn kill_9_loses_no_acknowledged_message() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "crash_child",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env("RELAY_SPOOL_CRASH_CHILD", dir.path())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let stdout = child.stdout.take().unwrap();
    let mut guard = Kill(child);
    let mut acked = HashSet::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    for line in std::io::BufReader::new(stdout).lines() {
        let line = line.unwrap();
        if let Some(id) = line.strip_prefix("ACK ") {
            acked.insert(id.to_owned());
        }
        if acked.len() >= 400 || std::time::Instant::now() > deadline {
            break;
        }
    }
    // SIGKILL while the writers are still busy.
    guard.0.kill().unwrap();
    guard.0.wait().unwrap();
    assert!(
        acked.len() >= 400,
        "child acknowledged only {}",
        acked.len()
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (_, rec) = rt
        .block_on(Spool::open(dir.path(), SpoolConfig::default()))
        .unwrap();
    let recovered: HashSet<String> = rec.messages.iter().map(|e| e.id.to_string()).collect();
    let lost: Vec<_> = acked.difference(&recovered).collect();
    assert!(lost.is_empty(), "acknowledged but lost: {lost:?}");
    // Only unfinished writes (never acknowledged) may be quarantined.
    for q in &rec.quarantined {
        assert!(matches!(q.reason, RelayError::Unfinished { .. }), "{q:?}");
    }
}

/// RFC 8689: the sender's TLS request (`REQUIRETLS` on MAIL FROM, or `TLS-Required: No`) is
/// stored with the message and survives a restart, in the segment record and in an envelope
/// overlay; a message without one is written exactly as before (no new key in its record),
/// so older records read back as `TlsRequest::Default`.
#[tokio::test]
async fn tls_request_survives_restart() {
    use relay::TlsRequest;
    let dir = tempfile::tempdir().unwrap();
    let (spool, _) = open(dir.path()).await;
    let mut flagged = envelope(1);
    flagged.tls_request = TlsRequest::RequireTls;
    let flagged = spool.accept(flagged, body(1)).await.unwrap();
    let mut relaxed = envelope(2);
    relaxed.tls_request = TlsRequest::TlsOptional;
    let mut relaxed = spool.accept(relaxed, body(2)).await.unwrap();
    let plain = spool.accept(envelope(3), body(3)).await.unwrap();
    let plain_segment = std::fs::read(spool.segment_of(&plain.id).unwrap()).unwrap();
    let text = String::from_utf8_lossy(&plain_segment);
    assert_eq!(
        text.matches("tls_request").count(),
        2,
        "only the two flagged records name it: {text}"
    );
    assert!(text.contains(r#""tls_request":"require-tls""#), "{text}");
    assert!(text.contains(r#""tls_request":"tls-optional""#), "{text}");
    // An overlay (later delivery state) keeps the flag.
    relaxed.recipients[0].state = RecipientState::Delivered;
    spool.update(&relaxed).await.unwrap();
    drop(spool);
    let (_spool, rec) = open(dir.path()).await;
    assert!(rec.quarantined.is_empty(), "{:?}", rec.quarantined);
    let read = |id: &relay::MessageId| rec.messages.iter().find(|e| &e.id == id).cloned().unwrap();
    assert_eq!(read(&flagged.id).tls_request, TlsRequest::RequireTls);
    assert!(read(&flagged.id).tls_request.requires_tls());
    assert_eq!(read(&relaxed.id).tls_request, TlsRequest::TlsOptional);
    assert_eq!(
        read(&relaxed.id).recipients[0].state,
        RecipientState::Delivered
    );
    assert_eq!(read(&plain.id).tls_request, TlsRequest::Default);
}
