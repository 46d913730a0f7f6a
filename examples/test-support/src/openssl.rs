//! The `openssl` command line tool as an independent certificate issuer and checker.

use std::path::Path;
use std::process::{Command, Stdio};

/// Runs `openssl ARGS` in `dir` and returns its standard output; panics with its standard
/// error unless it succeeds.
pub fn run(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("openssl is installed (scripts/install-deps.sh)");
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `openssl req -x509`: a self-signed P-256 CA, its key in `dir/key` and certificate in
/// `dir/cert`, subject `subj` (e.g. `/CN=Test CA`), valid for `days`, with critical
/// basicConstraints `CA:TRUE` and keyUsage `keyCertSign, cRLSign`.
pub fn self_signed_ca(dir: &Path, key: &str, cert: &str, subj: &str, days: u32) {
    let days = days.to_string();
    run(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            key,
            "-out",
            cert,
            "-days",
            &days,
            "-subj",
            subj,
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
}

/// `openssl genpkey`: a new 2048-bit RSA private key (PKCS#8 PEM) in `dir/key`, e.g. for DKIM
/// signing.
pub fn rsa_key(dir: &Path, key: &str) {
    run(
        dir,
        &[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
            key,
        ],
    );
}
