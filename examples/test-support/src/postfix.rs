//! A private Postfix instance from `scripts/postfix-lab.sh` (server or client mode, chosen by the
//! environment handed in), stopped on drop — by the stop script, then its master by PID if it is
//! still alive — also when the test fails.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::pki::TestCa;
use crate::repo_root;

/// A running Postfix instance; its state file's variables through [`Postfix::var`].
pub struct Postfix {
    dir: TempDir,
    vars: HashMap<String, String>,
}

impl Postfix {
    /// A scratch directory for the instance (certificates may be written into it first); the
    /// lab itself lives in its `lab/` subdirectory.
    pub fn scratch() -> TempDir {
        // Under /tmp with a short name: Postfix limits socket path lengths.
        tempfile::Builder::new()
            .prefix("pflab")
            .tempdir_in("/tmp")
            .unwrap()
    }

    /// Runs `scripts/postfix-lab.sh` with `env` (`SMTPD_TLS`, `TLS_CERT`, `MODE`, ... — see the
    /// script's header) and reads its state file. The script waits (bounded) for a `220`.
    pub fn start(dir: TempDir, env: &[(&str, &OsStr)]) -> Self {
        let lab = dir.path().join("lab");
        let mut cmd = Command::new(repo_root().join("scripts/postfix-lab.sh"));
        cmd.env("LAB_DIR", &lab);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().expect("run scripts/postfix-lab.sh");
        // From here on `Drop` stops whatever started.
        let mut postfix = Self {
            dir,
            vars: HashMap::new(),
        };
        assert!(
            out.status.success(),
            "postfix-lab failed (scripts/install-deps.sh installs postfix): {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let state = std::fs::read_to_string(lab.join("state")).expect("postfix-lab state file");
        postfix.vars = state
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.trim_matches(['"', '\'']).to_owned()))
            .collect();
        postfix
    }

    /// An instance that accepts and discards mail and offers STARTTLS (`SMTPD_TLS=may`) with a
    /// certificate for `names` issued by `ca`.
    pub fn with_tls(ca: &TestCa, names: &[&str]) -> Self {
        let dir = Self::scratch();
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let cert = ca.issue(&names);
        let (cp, kp) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        std::fs::write(&cp, &cert.chain_pem).unwrap();
        std::fs::write(&kp, &cert.key_pem).unwrap();
        Self::start(
            dir,
            &[
                ("SMTPD_TLS", "may".as_ref()),
                ("TLS_CERT", cp.as_os_str()),
                ("TLS_KEY", kp.as_os_str()),
            ],
        )
    }

    /// A variable of the lab's state file; panics if it has none of that name.
    pub fn var(&self, k: &str) -> &str {
        self.vars
            .get(k)
            .unwrap_or_else(|| panic!("postfix-lab state has no {k}"))
    }

    /// The smtpd's loopback port.
    pub fn port(&self) -> u16 {
        self.var("SMTPD_PORT").parse().unwrap()
    }

    /// `127.0.0.1:PORT` of the smtpd.
    pub fn connect(&self) -> String {
        format!("127.0.0.1:{}", self.port())
    }

    /// The instance's configuration directory (`postconf -c`).
    pub fn config_dir(&self) -> &Path {
        Path::new(self.var("CONFIG_DIR"))
    }

    /// The instance's mail log so far (empty before it exists).
    pub fn maillog(&self) -> String {
        std::fs::read_to_string(self.var("MAILLOG")).unwrap_or_default()
    }

    /// Polls the mail log (bounded by `timeout`) until `pred` holds; returns the log either way.
    pub fn wait_log(&self, timeout: Duration, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let log = self.maillog();
            if pred(&log) || Instant::now() > deadline {
                return log;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        let _ = Command::new(repo_root().join("scripts/postfix-lab-stop.sh"))
            .arg(self.dir.path().join("lab"))
            .output();
        if let Some(pid) = self.vars.get("MASTER_PID") {
            let alive = Command::new("kill")
                .args(["-0", pid])
                .output()
                .is_ok_and(|o| o.status.success());
            if alive {
                let _ = Command::new("kill").args(["-9", pid]).output();
            }
        }
    }
}
