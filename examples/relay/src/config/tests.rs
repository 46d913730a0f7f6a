//! Unit tests of the relay configuration (the `--check-config` CLI tests are in
//! `tests/relay_inbound.rs`).

use super::locate::key_at;
use super::*;

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn default_dir() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    write_default(d.path()).unwrap();
    d
}

#[test]
fn embedded_default_is_valid() {
    let d = default_dir();
    let c = RelayConfig::load(&d.path().join("relay.toml")).unwrap();
    assert_eq!(c.listeners.len(), 1);
    assert_eq!(c.listeners[0].address, "127.0.0.1:2525".parse().unwrap());
    assert_eq!(
        c.listeners[0].certificate.as_deref(),
        Some(cert_store::DEMO_NAME)
    );
    assert!(c.accepted_domains().unwrap().contains("localhost"));
    // The catch-all: every domain is local, nothing leaves the machine.
    assert!(c.delivery.delivers_everything_locally());
    assert!(c.delivery.is_local_domain("example.com"));
    assert!(c.accepted_domains().unwrap().contains("example.com"));
    let hat = c.hat(0).unwrap();
    let v = hat.matches(&hat_match::Facts::new("127.0.0.1".parse().unwrap()));
    assert_eq!(v.behavior(), hat_match::Behavior::Relay);
    assert_eq!(v.tls(), Some(hat_match::ListenerTls::Preferred));
    let v = hat.matches(&hat_match::Facts::new("192.0.2.1".parse().unwrap()));
    assert_eq!(v.behavior(), hat_match::Behavior::Reject);
    let v = hat.matches(&hat_match::Facts::new("::1".parse().unwrap()));
    assert_eq!(v.behavior(), hat_match::Behavior::Relay);
    // The effective configuration prints and parses back as TOML.
    let printed = c.effective().to_toml().unwrap();
    let back: toml::Table = toml::from_str(&printed).unwrap();
    assert_eq!(back["limits"]["max_line_length"].as_integer(), Some(1000));
}

fn replaced(from: &str, to: &str) -> (tempfile::TempDir, Result<RelayConfig, ConfigError>) {
    let d = default_dir();
    let text = DEFAULT_FILES[0].1.replace(from, to);
    assert_ne!(text, DEFAULT_FILES[0].1, "{from:?} not in the default");
    let p = write(d.path(), "relay.toml", &text);
    let r = RelayConfig::load(&p);
    (d, r)
}

fn line_of(from: &str) -> usize {
    DEFAULT_FILES[0]
        .1
        .lines()
        .position(|l| l.contains(from))
        .unwrap()
        + 1
}

#[test]
fn unknown_key_names_line_and_key() {
    let (_d, r) = replaced("commit = \"group\"", "commit = \"group\"\ncomit = 1");
    match r {
        Err(ConfigError::Syntax {
            line, key, message, ..
        }) => {
            assert_eq!(line, line_of("commit = \"group\"") + 1);
            assert_eq!(key, "spool.comit");
            assert!(message.contains("unknown field"), "{message}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn bad_address_names_line_and_key() {
    let (_d, r) = replaced(
        "address = \"127.0.0.1:2525\"",
        "address = \"127.0.0.1:99999\"",
    );
    match r {
        Err(ConfigError::Syntax { line, key, .. }) => {
            assert_eq!(line, line_of("address = "));
            assert_eq!(key, "listener.address");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn semantic_errors_name_line_and_key() {
    let cases = [
        (
            "[spool]",
            "[limits]\nmax_line_length = 5000\n\n[spool]",
            "limits.max_line_length",
        ),
        (
            "hat = \"hat.toml\"",
            "hat = \"missing.toml\"",
            "listener[0].hat",
        ),
        ("certificate = \"demo\"\n", "", "listener[0].certificate"),
        (
            "hostname = \"localhost\"",
            "hostname = \"bad name\"",
            "listener[0].hostname",
        ),
    ];
    for (from, to, want) in cases {
        let (_d, r) = replaced(from, to);
        let e = r.unwrap_err();
        let (key, line) = match &e {
            ConfigError::Invalid { key, line, .. } | ConfigError::Hat { key, line, .. } => {
                (key.clone(), *line)
            }
            other => panic!("{other:?}"),
        };
        assert_eq!(key, want, "{e}");
        assert!(line.is_some(), "{e}");
        assert!(e.to_string().contains("relay.toml:"), "{e}");
    }
}

#[test]
fn delivery_errors_are_reported_with_their_key() {
    let (_d, r) = replaced("maildir = ", "max_messages_per_connection = 0\nmaildir = ");
    let e = r.unwrap_err();
    assert!(
        matches!(e, ConfigError::Delivery { line: Some(_), .. }),
        "{e:?}"
    );
    assert!(
        e.to_string()
            .contains("delivery.max_messages_per_connection"),
        "{e}"
    );
}

#[test]
fn key_at_and_locate() {
    let text = "a = 1\n[[listener]]\nname = \"x\"\n[[listener]]\nname = \"y\"\nhat = \"h\"\n";
    assert_eq!(key_at(text, 0), "a");
    assert_eq!(key_at(text, text.find("hat").unwrap()), "listener.hat");
    assert_eq!(locate(text, "listener[1].hat"), Some(6));
    assert_eq!(locate(text, "listener[0].name"), Some(3));
    assert_eq!(locate(text, "listener[1].name"), Some(5));
    assert_eq!(locate(text, "listener[0].hat"), Some(2)); // absent: the table's header
    assert_eq!(locate(text, "nothing.here"), None);
}

/// Newcomer safety: the embedded default delivers mail for any domain (here `example.com`) to
/// the local maildir through the real delivery engine; nothing goes to the internet.
#[tokio::test]
async fn embedded_default_delivers_every_domain_to_the_maildir() {
    use std::time::{Duration, Instant, SystemTime};

    use crate::outbound::Outbound;
    use crate::{Envelope, Spool};

    let d = default_dir();
    let mut c = RelayConfig::load(&d.path().join("relay.toml")).unwrap();
    let work = tempfile::tempdir().unwrap();
    c.delivery.maildir = work.path().join("maildir");
    let (spool, recovery) = Spool::open(&work.path().join("spool"), c.spool_config())
        .await
        .unwrap();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let (handle, task) = Outbound::start(
        c.delivery.clone(),
        spool.clone(),
        recovery.messages,
        None,
        stopped,
    )
    .await
    .unwrap();
    let env = Envelope::new(
        "sender@example.org",
        ["user@example.com"],
        SystemTime::now(),
    );
    let env = spool
        .accept(env, b"Subject: catch-all\r\n\r\nhello\r\n".to_vec())
        .await
        .unwrap();
    handle.enqueue(env);
    let new = work.path().join("maildir/user@example.com/new");
    let deadline = Instant::now() + Duration::from_secs(20);
    let file = loop {
        let found = std::fs::read_dir(&new)
            .ok()
            .and_then(|mut r| r.next())
            .map(|e| e.unwrap().path());
        if let Some(f) = found {
            break f;
        }
        assert!(
            Instant::now() < deadline,
            "no maildir file in {}",
            new.display()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let text = std::fs::read_to_string(file).unwrap();
    assert!(text.contains("Subject: catch-all"), "{text}");
    assert!(text.contains("Delivered-To: user@example.com"), "{text}");
    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(20), task)
        .await
        .unwrap()
        .unwrap();
}

/// Issue 11: DNSSEC on by default. The embedded default (and any `[delivery]` without a
/// resolver mode) validates in-process from the built-in IANA root anchors, asking the system's
/// nameservers; `--check-config` shows it, with the probe.
#[test]
fn default_resolver_validates_in_process_with_the_root_anchors() {
    let d = default_dir();
    let c = RelayConfig::load(&d.path().join("relay.toml")).unwrap();
    let r = &c.delivery.resolver;
    assert_eq!(r.mode, crate::outbound::ResolverMode::Validating);
    assert_eq!((r.address, r.trust_anchor.as_ref()), (None, None));
    assert_eq!((r.probe_name.as_str(), r.probe_interval_secs), (".", 300));
    let printed = c.effective().to_toml().unwrap();
    let back: toml::Table = toml::from_str(&printed).unwrap();
    let v = &back["delivery"]["resolver"];
    assert_eq!(v["mode"].as_str(), Some("validating"), "{printed}");
    assert_eq!(v["dnssec"].as_str(), Some("validated in-process"));
    let anchor = v["trust_anchor_source"].as_str().unwrap();
    assert!(
        anchor.contains("20326") && anchor.contains("38696"),
        "{anchor}"
    );
    assert!(!v["upstream"].as_array().unwrap().is_empty(), "{printed}");
    assert!(
        v["upstream_source"]
            .as_str()
            .unwrap()
            .contains("/etc/resolv.conf"),
        "{printed}"
    );
    assert_eq!(v["probe_name"].as_str(), Some("."));
    // the same without any [delivery.resolver] table
    let (_d, c) = replaced("[delivery.resolver]\nmode = \"validating\"\n", "");
    assert_eq!(
        c.unwrap().delivery.resolver.mode,
        crate::outbound::ResolverMode::Validating
    );
}

#[test]
fn resolver_modes_print_what_they_do() {
    let (_d, c) = replaced(
        "mode = \"validating\"",
        "mode = \"system\"\naddress = \"127.0.0.1:53\"",
    );
    let c = c.unwrap();
    let printed = c.effective().to_toml().unwrap();
    let back: toml::Table = toml::from_str(&printed).unwrap();
    let v = &back["delivery"]["resolver"];
    assert_eq!(v["mode"].as_str(), Some("system"));
    assert!(
        v["dnssec"].as_str().unwrap().starts_with("off"),
        "{printed}"
    );
    assert!(v.get("probe_name").is_none(), "{printed}");
    let (_d, c) = replaced(
        "mode = \"validating\"",
        "mode = \"trust-ad\"\naddress = \"127.0.0.1:5353\"\nprobe_name = \"test.\"",
    );
    let c = c.unwrap();
    let printed = c.effective().to_json().unwrap();
    let j: serde_json::Value = serde_json::from_str(&printed).unwrap();
    let v = &j["delivery"]["resolver"];
    assert_eq!(v["mode"], "trust-ad");
    assert_eq!(v["upstream"][0], "127.0.0.1:5353");
    assert_eq!(v["probe_name"], "test.");
    assert!(v.get("trust_anchor_source").is_none(), "{printed}");
}

#[test]
fn bad_resolver_values_name_their_key() {
    for (to, key) in [
        (
            "mode = \"validating\"\nprobe_interval_secs = 0",
            "delivery.resolver.probe_interval_secs",
        ),
        (
            "mode = \"validating\"\nprobe_name = \"no spaces.\"",
            "delivery.resolver.probe_name",
        ),
        (
            "mode = \"validating\"\ntrust_anchor = \"/nonexistent/anchors\"",
            "delivery.resolver.trust_anchor",
        ),
    ] {
        let (_d, r) = replaced("mode = \"validating\"", to);
        let e = r.unwrap_err().to_string();
        assert!(e.contains(key), "{to}: {e}");
    }
}

/// `[state]`: the file backend by default (next to the spool), Redis when configured; a bad
/// value names its line and `state.` key; the effective configuration never shows the Redis
/// password, and the delivery engine gets the section.
#[test]
fn state_section_defaults_errors_and_redacted_url() {
    let d = default_dir();
    let c = RelayConfig::load(&d.path().join("relay.toml")).unwrap();
    assert_eq!(c.state.backend, crate::state::Backend::File);
    let j: serde_json::Value = serde_json::from_str(&c.effective().to_json().unwrap()).unwrap();
    assert_eq!(j["state"]["backend"], "file");
    assert_eq!(
        j["state"]["report_counters"],
        "journal in relay-data/state (one relay process)"
    );

    let redis = "[state]\nbackend = \"redis\"\nurl = \"redis://relay:s3cret@127.0.0.1:6379/2\"\nkey_prefix = \"mx:\"\n";
    let (_d, r) = replaced("[log]", &format!("{redis}\n[log]"));
    let c = r.unwrap();
    assert_eq!(c.state.backend, crate::state::Backend::Redis);
    assert_eq!(c.delivery.state, c.state, "handed to the delivery engine");
    for printed in [
        c.effective().to_toml().unwrap(),
        c.effective().to_json().unwrap(),
    ] {
        assert!(!printed.contains("s3cret"), "{printed}");
        assert!(
            printed.contains("redis://relay:***@127.0.0.1:6379/2"),
            "{printed}"
        );
    }
    assert!(!format!("{c:?}").contains("s3cret"));

    for (state, key) in [
        ("[state]\nbackend = \"redis\"\n", "state.url"),
        (
            "[state]\nbackend = \"redis\"\nurl = \"rediss://h:1/0\"\n",
            "state.url",
        ),
        (
            "[state]\nretry_interval_ms = 0\n",
            "state.retry_interval_ms",
        ),
        ("[state]\nurl = \"redis://h:1/0\"\n", "state.url"),
    ] {
        let (_d, r) = replaced("[log]", &format!("{state}\n[log]"));
        let e = r.unwrap_err();
        let ConfigError::Invalid { key: k, line, .. } = &e else {
            panic!("{e:?}")
        };
        assert_eq!(k, key, "{e}");
        assert!(line.is_some(), "{e}");
    }
    let (_d, r) = replaced("[log]", "[state]\nbackend = \"memcached\"\n\n[log]");
    let e = r.unwrap_err();
    assert!(matches!(e, ConfigError::Syntax { .. }), "{e:?}");
    assert!(e.to_string().contains("state.backend"), "{e}");
}
