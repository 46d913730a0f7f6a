//! The DNSSEC lab (`scripts/dnssec-lab.sh`: two knotd serving a signed parent `test.` and its
//! child zones, a validating and a non-validating unbound, all on loopback) with its own free
//! ports, stopped by PID in `Drop` (`scripts/dnssec-lab-stop.sh`), even when the test fails.
//! The records it serves are listed in the script's header.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;

use crate::{free_port, repo_root};

/// The MTA-STS (RFC 8461) and TLS-RPT (RFC 8460) domains of the lab. Each has
/// `mta-sts.DOMAIN A 127.0.0.1` (the tests' HTTPS policy server tells them apart by Host/SNI)
/// and an MX host with A 127.0.0.1 (`mx.unsigned.test`, or `mx.dane.test` for
/// [`SECURE`](sts::SECURE)).
pub mod sts {
    /// Insecure zone: `_mta-sts` TXT `"v=STSv1; id=20261204T1"`, `_smtp._tls` TXT
    /// `"v=TLSRPTv1; rua=mailto:tlsrpt@sts.unsigned.test"`.
    pub const INSECURE: &str = "sts.unsigned.test";
    /// The `id` of [`INSECURE`]'s `_mta-sts` record.
    pub const INSECURE_ID: &str = "20261204T1";
    /// Insecure zone, `_mta-sts` TXT `"v=STSv1; id=20261204T2"` (served a `testing` policy).
    pub const TESTING: &str = "sts-testing.unsigned.test";
    /// Insecure zone, `_mta-sts` TXT `"v=STSv1; id=20261204T3"` (served a policy whose `mx`
    /// patterns do not match its MX host).
    pub const NOMATCH: &str = "sts-nomatch.unsigned.test";
    /// Insecure zone, `_mta-sts` TXT `"v=STSv1; id=20261204T4"` (its policy fetch fails).
    pub const FETCHFAIL: &str = "sts-fetchfail.unsigned.test";
    /// Insecure zone, two `v=STSv1` TXT records (`id=multi1`, `id=multi2`): no policy.
    pub const MULTI: &str = "sts-multi.unsigned.test";
    /// Insecure zone, one TXT record of two character-strings `"v=STSv1; " "id=split1"`.
    pub const SPLIT: &str = "sts-split.unsigned.test";
    /// Secure zone, DANE MX `mx.dane.test` and `_mta-sts` TXT `"v=STSv1; id=20261204D1"`,
    /// `_smtp._tls` TXT `"v=TLSRPTv1; rua=mailto:tlsrpt@sts.dane.test"`.
    pub const SECURE: &str = "sts.dane.test";
    /// The `id` of [`SECURE`]'s `_mta-sts` record.
    pub const SECURE_ID: &str = "20261204D1";
    /// Bogus zone, no MX: its `_mta-sts` TXT was changed after signing (bogus); its
    /// `mta-sts` A record is secure.
    pub const BOGUS: &str = "sts.broken.test";
}

/// A running DNSSEC lab; its state file's variables (`UNBOUND_PORT`, `MX_CHAIN`,
/// `SPKI_SHA256`, `TRUST_ANCHOR_FILE`, ...) through [`Lab::var`].
pub struct Lab {
    // Removed after `drop` stopped the lab.
    _dir: tempfile::TempDir,
    state: PathBuf,
    vars: HashMap<String, String>,
}

impl Lab {
    /// Starts the lab.
    pub fn start() -> Self {
        Self::start_with(None, None)
    }

    /// The lab with TLSA records also published at `_PORT._tcp` for a test MX listening on
    /// 127.0.0.1:`smtp_port` (`SMTP_PORT` of `scripts/dnssec-lab.sh`): `present.dane.test`
    /// verifies against the lab MX certificate, `wrongkey.dane.test` names another key.
    pub fn start_with_smtp_port(smtp_port: u16) -> Self {
        Self::start_with(Some(smtp_port), None)
    }

    /// The lab with the TLS-RPT `https:` `rua` records too (`TLSRPT_HTTPS_PORT` of
    /// `scripts/dnssec-lab.sh`: `rpt-https`, `rpt-both`, `rpt-500` and `rpt-hang`
    /// `.unsigned.test`, `rua=https://tlsrpt.unsigned.test:PORT/tlsrpt/...`) for a report
    /// collector already listening on 127.0.0.1:`port`.
    pub fn start_with_tlsrpt_https_port(port: u16) -> Self {
        Self::start_with(None, Some(port))
    }

    /// A start that fails for another reason than missing tools (a port taken between choosing
    /// it and binding it) is retried with fresh ports, at most three times.
    fn start_with(smtp_port: Option<u16>, https_port: Option<u16>) -> Self {
        let mut failures = Vec::new();
        for _ in 0..3 {
            match Self::try_start(smtp_port, https_port) {
                Ok(lab) => return lab,
                Err(e) => failures.push(e),
            }
        }
        panic!(
            "DNSSEC lab failed to start three times:\n{}",
            failures.join("\n---\n")
        );
    }

    fn try_start(smtp_port: Option<u16>, https_port: Option<u16>) -> Result<Self, String> {
        let mut ports: Vec<u16> = smtp_port.into_iter().chain(https_port).collect();
        for _ in 0..4 {
            let p = free_port(&ports);
            ports.push(p);
        }
        let dir = tempfile::tempdir().expect("temporary directory");
        let state = dir.path().join("lab.env");
        let ports = &ports[ports.len() - 4..];
        let mut cmd = Command::new("bash");
        if let Some(p) = smtp_port {
            cmd.env("SMTP_PORT", p.to_string());
        }
        if let Some(p) = https_port {
            cmd.env("TLSRPT_HTTPS_PORT", p.to_string());
        }
        let out = cmd
            .arg(repo_root().join("scripts/dnssec-lab.sh"))
            .env("PARENT_PORT", ports[0].to_string())
            .env("CHILD_PORT", ports[1].to_string())
            .env("UNBOUND_PORT", ports[2].to_string())
            .env("NOVAL_PORT", ports[3].to_string())
            .env("STATE", &state)
            .env("LAB_TIMEOUT", "20")
            .output()
            .expect("run bash scripts/dnssec-lab.sh");
        let mut lab = Self {
            _dir: dir,
            state,
            vars: HashMap::new(),
        };
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            // `lab` is dropped on return: whatever started is stopped.
            assert_ne!(
                out.status.code(),
                Some(3),
                "DNSSEC lab tools missing (knotd/unbound/ldnsutils): run scripts/install-deps.sh\n{stderr}"
            );
            return Err(format!(
                "DNSSEC lab failed to start ({}): {stderr}",
                out.status
            ));
        }
        let text = std::fs::read_to_string(&lab.state).expect("lab state file");
        lab.vars = text
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.trim_matches('"').to_string()))
            .collect();
        Ok(lab)
    }

    /// A variable of the lab's state file; panics if it has none of that name.
    pub fn var(&self, k: &str) -> &str {
        self.vars
            .get(k)
            .unwrap_or_else(|| panic!("lab state has no {k}"))
    }

    /// `127.0.0.1:` the port in variable `port_var`.
    pub fn addr(&self, port_var: &str) -> SocketAddr {
        format!("127.0.0.1:{}", self.var(port_var))
            .parse()
            .expect("a port")
    }

    /// The validating unbound (sets the AD bit).
    pub fn validating(&self) -> SocketAddr {
        self.addr("UNBOUND_PORT")
    }

    /// The iterator-only unbound: never sets the AD bit (an upstream for in-process
    /// validation; a misconfigured `trust-ad` resolver).
    pub fn non_validating(&self) -> SocketAddr {
        self.addr("NOVAL_PORT")
    }

    /// The DNSKEY RRset of the lab's signed `test.` zone (a `trust_anchor` file).
    pub fn trust_anchor_file(&self) -> PathBuf {
        PathBuf::from(self.var("TRUST_ANCHOR_FILE"))
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(repo_root().join("scripts/dnssec-lab-stop.sh"))
            .env("STATE", &self.state)
            .output();
    }
}
