//! Reader for OpenSSL's `danetest.in` (see README.md beside this file), shared by
//! `dane-verify/tests/danetest.rs` and `examples/smtp-tls-check/tests/daneverify_cli.rs`
//! (`#[path]` include).
// Each includer uses part of this module.
#![allow(dead_code)]

/// One case of the file.
#[derive(Debug, Clone)]
pub(crate) struct Case {
    /// 1-based, as the file's `# N` comments.
    pub(crate) number: usize,
    /// `DANE_FLAG_NO_DANE_EE_NAMECHECKS`.
    pub(crate) no_name_checks: bool,
    /// OpenSSL's verify result: 0 OK, 65 no match, 62 hostname mismatch, 20 issuer missing.
    pub(crate) result: i32,
    /// `SSL_get0_dane_authority`'s depth, -1 for none.
    pub(crate) depth: i32,
    /// TLSA records, presentation form `U S M hex`.
    pub(crate) tlsa: Vec<String>,
    /// The chain, leaf first, each a PEM block.
    pub(crate) chain: Vec<String>,
}

impl Case {
    /// The CLI's / library's outcome for OpenSSL's verify result.
    pub(crate) fn outcome(&self) -> &'static str {
        match self.result {
            0 => "verified",
            65 => "no-match",
            62 => "name-mismatch",
            _ => "chain-error",
        }
    }

    /// Whether a result could hinge on the digest order (SHA-256 preferred over SHA-512 in
    /// OpenSSL's run, the reverse in dane-verify): SHA2-256 and SHA2-512 records for one
    /// (usage, selector).
    pub(crate) fn digest_order_matters(&self) -> bool {
        let key = |r: &String, m: &str| {
            let f: Vec<&str> = r.split_whitespace().collect();
            (f.get(2) == Some(&m)).then(|| (f[0].to_string(), f[1].to_string()))
        };
        self.tlsa
            .iter()
            .filter_map(|r| key(r, "1"))
            .any(|k| self.tlsa.iter().filter_map(|r| key(r, "2")).any(|j| j == k))
    }
}

/// Parses the file as `test/danetest.c` does: blank and `#` lines skipped between cases, a header
/// of five integers, the TLSA lines, then the certificates.
pub(crate) fn parse(text: &str) -> Vec<Case> {
    let mut lines = text.lines();
    let mut cases = Vec::new();
    while let Some(line) = lines.next() {
        let line = line.trim_end();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let n: Vec<i32> = line
            .split_whitespace()
            .map(|f| f.parse().expect("header field"))
            .collect();
        let [ntlsa, ncert, noncheck, result, depth] = n[..] else {
            panic!("malformed header {line:?}");
        };
        let tlsa = (0..ntlsa)
            .map(|_| lines.next().expect("TLSA line").trim_end().to_string())
            .collect();
        let mut chain = Vec::new();
        let mut pem: Option<String> = None;
        while chain.len() < usize::try_from(ncert).expect("cert count") {
            let l = lines.next().expect("certificate line");
            if l.starts_with("-----BEGIN CERTIFICATE-----") {
                pem = Some(String::new());
            }
            if let Some(p) = pem.as_mut() {
                p.push_str(l);
                p.push('\n');
            }
            if l.starts_with("-----END CERTIFICATE-----") {
                chain.push(pem.take().expect("END without BEGIN"));
            }
        }
        cases.push(Case {
            number: cases.len() + 1,
            no_name_checks: noncheck != 0,
            result,
            depth,
            tlsa,
            chain,
        });
    }
    cases
}

/// The case numbers listed in `divergences.txt`.
pub(crate) fn divergences(text: &str) -> Vec<usize> {
    text.lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .map(|l| l.parse().expect("case number"))
        .collect()
}

/// The PKIX trust store: the file's self-signed `Root CA` (OpenSSL's run uses danetest.pem).
pub(crate) fn root_ca(cases: &[Case]) -> String {
    cases
        .iter()
        .find(|c| c.number == 9)
        .and_then(|c| c.chain.last())
        .expect("case 9 ends with the Root CA")
        .clone()
}

/// The verification time passed: inside every chain's validity (2016 .. 2116).
pub(crate) const AT: &str = "2025-06-01T00:00:00Z";
/// Seconds since the epoch of [`AT`].
pub(crate) const AT_UNIX: u64 = 1_748_736_000;
/// The reference identity (OpenSSL's `basedomain`).
pub(crate) const BASE_DOMAIN: &str = "example.com";
