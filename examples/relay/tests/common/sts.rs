//! Shared setup of the MTA-STS delivery tests (`relay_mta_sts*`): Postfix with a certificate
//! from a test CA, a relay site delivering MX mail through the DNSSEC lab's validating resolver
//! and fetching policies from a loopback policy server, and the matrix rows (send, wait until
//! each row settled, check the outcome and the attempt records).

use std::time::Duration;

use test_support::dnssec_lab::Lab;
use test_support::pki::TestCa;
use test_support::policy_server::PolicyServer;
use test_support::postfix::Postfix;

use super::{Client, Relay, Site, wait_until};

/// The lab's MX host of the `*.unsigned.test` MTA-STS domains.
pub const MX: &str = "mx.unsigned.test";

/// A relay site delivering MX mail to `postfix`'s port through the lab's validating resolver,
/// fetching policies from `server`; trusts only `ca`.
pub fn site(
    lab: &Lab,
    postfix: &Postfix,
    server: &PolicyServer,
    ca: &TestCa,
    controls: &str,
) -> Site {
    Site::new(
        &delivery(lab, postfix.port(), server, ""),
        controls,
        Some(&ca.pem),
    )
}

/// The `[delivery]` lines of [`site`]: MX mail to 127.0.0.1:`mx_port`, DNS from the lab's
/// validating resolver, policies from `server`; `extra` = further tables (e.g. `[tlsrpt]`).
pub fn delivery(lab: &Lab, mx_port: u16, server: &PolicyServer, extra: &str) -> String {
    format!(
        "mx_port = {mx_port}\n[delivery.resolver]\nmode = \"trust-ad\"\naddress = \"{}\"\n\
         probe_name = \"test.\"\n[delivery.retry]\ninitial_secs = 3600\n\
         [delivery.mta_sts]\npolicy_port = {}\n{extra}",
        lab.validating(),
        server.port()
    )
}

/// Opportunistic TLS by default: every requirement beyond it comes from MTA-STS.
pub const OPPORTUNISTIC: &str = "[default]\ntls = \"preferred\"\ndane = \"none\"\n";

/// One row of the matrix.
pub struct Row {
    pub case: &'static str,
    pub rcpt: String,
    /// Whether the policy allows delivery to this Postfix.
    pub delivered: bool,
    /// Whether an `enforce` policy forbids plaintext or unauthenticated delivery here.
    pub enforce: bool,
}

/// `to=<rcpt>` ... `status=sent` lines of Postfix's log.
pub fn sent(postfix: &Postfix, rcpt: &str) -> usize {
    postfix
        .maillog()
        .lines()
        .filter(|l| l.contains(&format!("to=<{rcpt}>")) && l.contains("status=sent"))
        .count()
}

/// Sends `rows` through `site`'s relay; waits until each delivered row reached `postfix` and
/// each other row was attempted (deferred, still spooled). Returns the spool ids.
pub fn run_rows(site: &Site, relay: &Relay, postfix: &Postfix, rows: &[Row]) -> Vec<String> {
    let mut client = Client::connect(site.listen).unwrap();
    let ids: Vec<String> = rows
        .iter()
        .map(|r| {
            // A row named "TLS-Required: No..." sends that header (RFC 8689 §3).
            let relax = if r.case.starts_with("TLS-Required: No") {
                "TLS-Required: No\r\n"
            } else {
                ""
            };
            let body = format!(
                "Subject: {}\r\n{relax}\r\nMTA-STS row {}\r\n",
                r.case, r.case
            );
            client
                .send("sender@client.test", &r.rcpt, &body)
                .unwrap()
                .unwrap_or_else(|| panic!("relay refused {}: {}", r.rcpt, relay.log()))
        })
        .collect();
    client.quit();
    for (row, id) in rows.iter().zip(&ids) {
        wait_until(
            Duration::from_secs(60),
            || {
                format!(
                    "row {:?} not settled\n--- maillog ---\n{}\n--- relay ---\n{}",
                    row.case,
                    postfix.maillog(),
                    relay.log()
                )
            },
            || {
                if row.delivered {
                    sent(postfix, &row.rcpt) >= 1
                } else {
                    site.spooled_envelope(id)
                        .is_some_and(|e| e.recipients.iter().all(|r| r.attempts >= 1))
                }
            },
        );
    }
    ids
}

/// The relay's `delivery attempt` lines for `domain`.
pub fn attempts(log: &str, domain: &str) -> Vec<String> {
    log.lines()
        .filter(|l| l.contains("delivery attempt") && l.contains(&format!("domain={domain} ")))
        .map(String::from)
        .collect()
}

/// Checks one row; returns the summary line.
pub fn check_row(row: &Row, site: &Site, id: &str, postfix: &Postfix, log: &str) -> String {
    let domain = row.rcpt.split_once('@').map_or("", |(_, d)| d);
    let n = sent(postfix, &row.rcpt);
    let lines = attempts(log, domain);
    let plaintext = lines
        .iter()
        .filter(|l| {
            l.contains("action=\"continue-plaintext\"") || l.contains("action=\"retry-plaintext\"")
        })
        .count();
    // Authenticated: PKIX-verified, or DANE-verified (DANE decides where it applies).
    let unverified = lines
        .iter()
        .filter(|l| {
            l.contains("action=\"continue-tls\"")
                && !l.contains("pkix=Some(Verified)")
                && !l.contains("dane_verdict=Some(Verified")
        })
        .count();
    if row.delivered {
        assert_eq!(n, 1, "{}: not delivered once: {lines:?}\n{log}", row.case);
        assert!(
            site.spooled_envelope(id).is_none(),
            "{}: still spooled",
            row.case
        );
    } else {
        assert_eq!(
            n, 0,
            "{}: delivered despite the policy: {lines:?}\n{log}",
            row.case
        );
        let env = site.spooled_envelope(id).expect("deferred, still spooled");
        assert!(
            env.recipients
                .iter()
                .all(|r| r.state == relay::RecipientState::Pending),
            "{}: {env:?}",
            row.case
        );
    }
    if row.enforce {
        assert_eq!(
            plaintext, 0,
            "{}: plaintext under enforce: {lines:?}",
            row.case
        );
        if row.delivered {
            assert_eq!(
                unverified, 0,
                "{}: unauthenticated under enforce: {lines:?}",
                row.case
            );
        }
    }
    format!(
        "| {:<58} | {:<9} | {} | {} | {} |",
        row.case,
        if row.delivered {
            "delivered"
        } else {
            "deferred"
        },
        n,
        if row.enforce {
            plaintext.to_string()
        } else {
            "-".into()
        },
        if row.enforce && n > 0 {
            unverified.to_string()
        } else {
            "-".into()
        },
    )
}
