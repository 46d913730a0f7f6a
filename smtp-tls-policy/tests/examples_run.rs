//! The public-API programs `hat_listener` and `starttls_delivery` run against each other on
//! loopback: the listener's HAT decides the client's TLS setting, the delivery's hop plan decides
//! whether the unauthenticated (self-signed) server may be used.
//!
//! The examples are built with the cargo that runs this test (same profile, same features), then
//! run from `target/<profile>/examples/`.

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};

/// Builds the two examples (a no-op when `cargo test` already did) and returns their directory.
fn examples_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    // target/<profile>/deps/examples_run-<hash> → target/<profile>
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps")
        .to_path_buf();
    let mut build = Command::new(env!("CARGO"));
    build.args([
        "build",
        "-p",
        "smtp-tls-policy",
        "--all-features",
        "--example",
        "hat_listener",
        "--example",
        "starttls_delivery",
    ]);
    if profile_dir.file_name().is_some_and(|n| n == "release") {
        build.arg("--release");
    }
    let status = build.status().expect("run cargo build");
    assert!(status.success(), "building the examples failed");
    profile_dir.join("examples")
}

/// A running `hat_listener`, killed (by its own PID) when dropped.
struct Listener {
    child: Child,
    addr: String,
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Listener {
    /// Starts the listener with `hat` and waits for its `listening on ADDR` line (readiness).
    fn start(dir: &std::path::Path, hat: &str) -> (Self, tempfile::TempDir) {
        let tmp = tempfile::tempdir().expect("tempdir");
        let path = tmp.path().join("hat.toml");
        std::fs::write(&path, hat).expect("write HAT");
        let mut child = Command::new(dir.join("hat_listener"))
            .arg(&path)
            .stdout(Stdio::piped())
            .spawn()
            .expect("start hat_listener");
        let mut first = String::new();
        let stdout = child.stdout.as_mut().expect("stdout");
        // One byte at a time so nothing after the first line is lost to a buffer.
        let mut byte = [0u8; 1];
        while !first.ends_with('\n') && first.len() < 200 {
            if stdout.read(&mut byte).expect("read listener stdout") == 0 {
                break;
            }
            first.push(char::from(byte[0]));
        }
        let addr = first
            .strip_prefix("listening on ")
            .map(|a| a.trim().to_owned())
            .unwrap_or_else(|| panic!("unexpected first line: {first:?}"));
        (Self { child, addr }, tmp)
    }

    /// Ends the listener's run and returns everything it printed after the first line.
    fn output(mut self) -> String {
        let mut rest = String::new();
        if let Some(out) = self.child.stdout.take() {
            for line in BufReader::new(out).lines().take(1000) {
                rest.push_str(&line.expect("listener output"));
                rest.push('\n');
            }
        }
        rest
    }
}

fn deliver(dir: &std::path::Path, addr: &str, tls: &str) -> Output {
    Command::new(dir.join("starttls_delivery"))
        .args([addr, tls])
        .output()
        .expect("run starttls_delivery")
}

fn hat(tls: &str) -> String {
    format!(
        r#"
[[mail_flow_policy]]
name = "LOOPBACK"
behavior = "accept"
tls = "{tls}"

[[sender_group]]
name = "LOCAL"
order = 1
policy = "LOOPBACK"
senders = ["127.0.0.0/8"]
"#
    )
}

#[test]
fn preferred_delivery_to_a_tls_required_listener_is_delivered_over_tls() {
    let dir = examples_dir();
    let (listener, _tmp) = Listener::start(&dir, &hat("required"));
    let addr = listener.addr.clone();
    let out = deliver(&dir, &addr, "preferred");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("decision: tls ContinueTls"), "{stdout}");
    assert!(stdout.contains("verdict: "), "{stdout}");
    assert!(stdout.contains("delivered over tls"), "{stdout}");
    // The listener exits after one message.
    let printed = listener.output();
    assert!(
        printed.contains("sender group LOCAL, tls Required"),
        "{printed}"
    );
    assert!(printed.contains("message over TLSv1_3:"), "{printed}");
    assert!(
        printed.contains("from <sender@client.example.test>"),
        "{printed}"
    );
    assert!(
        printed.contains("to <postmaster@example.test>"),
        "{printed}"
    );
    assert!(printed.contains("Hello over the hop plan."), "{printed}");
}

#[test]
fn required_verify_refuses_the_self_signed_listener() {
    let dir = examples_dir();
    let (listener, _tmp) = Listener::start(&dir, &hat("preferred"));
    let out = deliver(&dir, &listener.addr, "required-verify");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{stdout}");
    assert!(stdout.contains("verdict: "), "{stdout}");
    assert!(!stdout.contains("delivered over"), "{stdout}");
    assert!(!stdout.contains("decision: tls"), "{stdout}");
}
