//! The runner against injected faults: a delivery task that panics (also while it delivers
//! jobs handed to its cached connection).

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};

use super::super::OutboundHandle;
use super::super::config::OutboundConfig;
use super::super::deliver::PANIC_ONCE;
use super::*;
use crate::{MessageId, Spool, SpoolConfig};

/// A next hop that accepts connections and never greets; returns its port and the number of
/// connections it holds.
async fn tarpit() -> (u16, Arc<Mutex<Vec<TcpStream>>>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let held = Arc::new(Mutex::new(Vec::new()));
    let h = held.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = l.accept().await {
            h.lock().unwrap().push(tcp);
        }
    });
    (port, held)
}

/// Local domain `panic.test` (one connection at a time), `hang.test` routed to the tarpit at
/// `port`; retries after 1 s.
fn config(dir: &Path, port: u16) -> OutboundConfig {
    toml::from_str(&format!(
        "ehlo_name = \"relay.test\"\nlocal_domains = [\"panic.test\"]\nmaildir = \"{}\"\n\
         max_connections_per_destination = 1\n\
         [[route]]\ndomain = \"hang.test\"\nhosts = [\"127.0.0.1:{port}\"]\n\
         [resolver]\nmode = \"system\"\n\
         [retry]\ninitial_secs = 1\nmax_backoff_secs = 1\n",
        dir.join("maildir").display()
    ))
    .unwrap()
}

async fn wait_for(what: &str, limit: Duration, mut pred: impl FnMut() -> bool) {
    let end = tokio::time::Instant::now() + limit;
    while !pred() {
        assert!(tokio::time::Instant::now() < end, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Spools a small message to `to` and hands it to the runner (as the listener does); its id.
async fn submit(ctx: &Context, tx: &mpsc::UnboundedSender<Envelope>, to: &str) -> MessageId {
    let env = Envelope::new("alice@example.org", [to], SystemTime::now());
    let env = ctx
        .spool
        .accept(env, b"Subject: x\r\n\r\nhi\r\n".to_vec())
        .await
        .unwrap();
    tx.send(env.clone()).unwrap();
    env.id
}

/// A delivery task that panics must neither leave its jobs in flight (stuck until a restart)
/// nor keep its destination's slot. With a delivery to a tarpit in progress (so the runner
/// never sees "no task left"), the task for `panic.test` (one connection per destination)
/// panics: its message must be retried and delivered, and a later message to the same
/// destination must get a slot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_delivery_task_requeues_its_jobs_and_frees_its_slot() {
    let dir = tempfile::tempdir().unwrap();
    let (port, held) = tarpit().await;
    let (spool, _) = Spool::open(&dir.path().join("spool"), SpoolConfig::default())
        .await
        .unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    let handle = OutboundHandle { tx: tx.clone() };
    let ctx = Context::new(config(dir.path(), port), spool, None, handle)
        .await
        .unwrap();
    let ctx = Arc::new(ctx);
    let (_stop, shutdown) = watch::channel(false);
    tokio::spawn(run(ctx.clone(), rx, shutdown));
    let send = |to: &'static str| submit(&ctx, &tx, to);
    send("x@hang.test").await;
    wait_for("the tarpit connection", Duration::from_secs(10), || {
        !held.lock().unwrap().is_empty()
    })
    .await;
    PANIC_ONCE.lock().unwrap().push("panic.test".into());
    let first: MessageId = send("a@panic.test").await;
    wait_for("the injected panic", Duration::from_secs(10), || {
        !PANIC_ONCE.lock().unwrap().iter().any(|d| d == "panic.test")
    })
    .await;
    let second: MessageId = send("b@panic.test").await;
    let done = |id: &MessageId| ctx.lock_queue().envelope(id).is_none();
    wait_for(
        "both messages delivered after the panic",
        Duration::from_secs(15),
        || done(&first) && done(&second),
    )
    .await;
    for rcpt in ["a@panic.test", "b@panic.test"] {
        let new = dir.path().join("maildir").join(rcpt).join("new");
        assert_eq!(std::fs::read_dir(&new).unwrap().count(), 1, "{rcpt}");
    }
}

fn dest(active: usize, startable: usize) -> Destination {
    Destination { active, startable }
}

/// Fair share under the global cap: a destination over its share (here 1 of 2 slots) yields a
/// freed slot to a destination that waits, whichever of them the round starts at.
#[test]
fn a_destination_over_its_share_yields_to_a_waiting_one() {
    let limits = Limits {
        cap: 2,
        max_conn: 10,
    };
    // The tarpit holds 1 slot (its other task just ended) and has more jobs; `good` waits.
    let mut w = [dest(1, 5), dest(0, 1)];
    assert_eq!(plan(&mut w, 0, 1, limits), vec![1]);
    let mut w = [dest(0, 1), dest(1, 5)];
    assert_eq!(plan(&mut w, 0, 1, limits), vec![0]);
}

/// Nobody else waiting: one destination may use every slot (up to `max_conn`); the cap is never
/// left idle for fairness' sake.
#[test]
fn a_lone_destination_gets_every_slot() {
    let limits = Limits {
        cap: 4,
        max_conn: 10,
    };
    let mut w = [dest(0, 9)];
    assert_eq!(plan(&mut w, 0, 0, limits), vec![0; 4]);
    // Two waiting, one with a single job: the other takes the rest.
    let mut w = [dest(0, 1), dest(0, 9)];
    assert_eq!(plan(&mut w, 0, 0, limits), vec![0, 1, 1, 1]);
    // `max_conn` still holds.
    let limits = Limits {
        cap: 10,
        max_conn: 3,
    };
    let mut w = [dest(0, 9)];
    assert_eq!(plan(&mut w, 0, 0, limits), vec![0; 3]);
}

/// The starvation scenario of the security review: ten hostile domains hold all 100 slots
/// (10 each, with more jobs waiting); a good destination arrives with 20 messages. As the
/// hostile tasks end (each within `max_session_secs`; here one of each of nine domains), every
/// freed slot goes to the good destination until it holds its share, `100 / 11` = 9 — whichever
/// domain the round starts at.
#[test]
fn ten_hostile_domains_cannot_keep_the_slots_from_a_newcomer() {
    let limits = Limits {
        cap: 100,
        max_conn: 10,
    };
    let mut rng = fastrand::Rng::with_seed(7);
    let mut active = [10usize; 11];
    active[10] = 0; // the good destination
    let mut good_backlog = 20usize;
    let mut ending: Vec<usize> = (0..10).collect();
    rng.shuffle(&mut ending);
    for (freed, &ended) in ending.iter().take(9).enumerate() {
        active[ended] -= 1;
        let first = rng.usize(..11);
        let order: Vec<usize> = (0..11).map(|k| (first + k) % 11).collect();
        let mut w: Vec<Destination> = order
            .iter()
            .map(|&d| dest(active[d], if d == 10 { good_backlog } else { 50 }))
            .collect();
        let running: usize = active.iter().sum();
        let started = plan(&mut w, 0, running, limits);
        assert_eq!(started.len(), 1, "freed {freed}: {started:?}");
        let d = order[started[0]];
        assert_eq!(d, 10, "freed slot {freed} went to hostile domain {d}");
        active[d] += 1;
        good_backlog -= 1;
    }
    assert_eq!(active[10], 9);
}

/// The least served go first: a newcomer (0 tasks) before a destination that holds 2 of its
/// share of 5, and both before one at its share.
#[test]
fn the_least_served_destination_goes_first() {
    let limits = Limits {
        cap: 10,
        max_conn: 10,
    };
    let mut w = [dest(5, 3), dest(2, 3), dest(0, 3)];
    assert_eq!(plan(&mut w, 0, 9, limits), vec![2]);
    let mut w = [dest(5, 3), dest(2, 3), dest(0, 3)];
    // Share 3: the newcomer to 2, then level 3 starts with the one that holds 2.
    assert_eq!(plan(&mut w, 0, 7, limits), vec![2, 2, 1]);
}

/// A plain SMTP sink accepting every message; returns its port and the recipients delivered,
/// per connection.
async fn sink() -> (u16, Arc<Mutex<Vec<Vec<String>>>>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let conns: Arc<Mutex<Vec<Vec<String>>>> = Arc::default();
    let record = conns.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = l.accept().await {
            let i = {
                let mut c = record.lock().unwrap();
                c.push(Vec::new());
                c.len() - 1
            };
            let record = record.clone();
            tokio::spawn(async move {
                let (r, mut w) = tcp.into_split();
                let mut lines = BufReader::new(r).lines();
                w.write_all(b"220 sink.test\r\n").await.ok()?;
                let mut rcpt = Vec::new();
                while let Some(line) = lines.next_line().await.ok()? {
                    let upper = line.to_ascii_uppercase();
                    let reply: &[u8] = if upper.starts_with("RCPT TO:<") {
                        rcpt.push(line[9..].trim_end_matches('>').to_owned());
                        b"250 ok\r\n"
                    } else if upper == "DATA" {
                        w.write_all(b"354 go\r\n").await.ok()?;
                        while lines.next_line().await.ok()?? != "." {}
                        record.lock().unwrap()[i].append(&mut rcpt);
                        b"250 ok\r\n"
                    } else if upper == "QUIT" {
                        w.write_all(b"221 bye\r\n").await.ok()?;
                        return Some(());
                    } else {
                        b"250 ok\r\n"
                    };
                    w.write_all(reply).await.ok()?;
                }
                Some(())
            });
        }
    });
    (port, conns)
}

/// A task that panics while it delivers jobs handed to its lingering session: the handed job
/// must not stay in flight (stuck until a restart) — the supervisor defers it, it is retried
/// and delivered once; the slot is freed (one connection per destination).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_while_delivering_handed_jobs_defers_them() {
    let dir = tempfile::tempdir().unwrap();
    let (port, conns) = sink().await;
    let config: OutboundConfig = toml::from_str(&format!(
        "ehlo_name = \"relay.test\"\nlocal_domains = [\"localhost\"]\nmaildir = \"{}\"\n\
         max_connections_per_destination = 1\nconnection_cache_secs = 30\n\
         [[route]]\ndomain = \"cache.test\"\nhosts = [\"127.0.0.1:{port}\"]\n\
         [resolver]\nmode = \"system\"\n\
         [retry]\ninitial_secs = 1\nmax_backoff_secs = 1\n",
        dir.path().join("maildir").display()
    ))
    .unwrap();
    let (spool, _) = Spool::open(&dir.path().join("spool"), SpoolConfig::default())
        .await
        .unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    let handle = OutboundHandle { tx: tx.clone() };
    let ctx = Arc::new(Context::new(config, spool, None, handle).await.unwrap());
    let (_stop, shutdown) = watch::channel(false);
    tokio::spawn(run(ctx.clone(), rx, shutdown));
    let send = |to: &'static str| submit(&ctx, &tx, to);
    let delivered = || conns.lock().unwrap().concat();
    let first = send("a@cache.test").await;
    // (the runner queues a message when it reads the channel: the sink is waited for first)
    wait_for("the first message", Duration::from_secs(10), || {
        !delivered().is_empty() && ctx.lock_queue().envelope(&first).is_none()
    })
    .await;
    assert_eq!(delivered(), ["a@cache.test"]);
    PANIC_ONCE.lock().unwrap().push("handed:cache.test".into());
    let second = send("b@cache.test").await;
    wait_for("the injected panic", Duration::from_secs(10), || {
        !PANIC_ONCE
            .lock()
            .unwrap()
            .iter()
            .any(|d| d == "handed:cache.test")
    })
    .await;
    wait_for(
        "the handed message retried",
        Duration::from_secs(15),
        || delivered().len() == 2 && ctx.lock_queue().envelope(&second).is_none(),
    )
    .await;
    assert_eq!(delivered(), ["a@cache.test", "b@cache.test"]);
    // deferred once (the panic), then delivered on a new connection
    assert_eq!(conns.lock().unwrap().len(), 2);
}
