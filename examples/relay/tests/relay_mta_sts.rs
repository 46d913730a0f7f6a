//! MTA-STS (RFC 8461) at delivery (issue 13), through the built `relay` binary.
//!
//! - Domains that share a next hop never share a connection (KumoMTA #484): the MX list and
//!   the policy are per recipient domain, decided before any connection reuse.
//! - The fault matrix against Postfix behind the DNSSEC lab's MTA-STS domains and a loopback
//!   policy server: enforce/testing/no match/ignore, DANE precedence, a fetch failure without a
//!   cache, a restart with the cached policy. Every row asserts the outcome and 0 plaintext or
//!   unauthenticated deliveries where an `enforce` policy forbids them.
//!
//! The other MTA-STS delivery tests: `relay_mta_sts_fetch` (fetch faults with and without a
//! cached policy, the TXT id change, DNS down), `relay_mta_sts_tlsrpt` (the TLS-RPT reports of
//! MTA-STS domains); shared setup in `common::sts`.

mod common;

use std::time::Duration;

use common::peer::{Behaviour, Peer};
use common::sts::{MX, OPPORTUNISTIC, Row, attempts, check_row, run_rows, site};
use common::{Client, Site, wait_until};
use test_support::dnssec_lab::{Lab, sts};
use test_support::pki::TestCa;
use test_support::policy_server::{PolicyResponse, PolicyServer, policy_text};
use test_support::postfix::Postfix;

/// Two destination domains behind one next hop (both routed to the same peer): `strict.test`
/// whose policy forbids plaintext (TLS `required`), `open.test` allowed plaintext (`no`). The
/// peer offers no STARTTLS. Whatever order the queue takes them in and however many messages a
/// connection may carry, the connection opened for `open.test` must never carry a message of
/// `strict.test`: every connection carries the recipients of one domain only, and no byte of
/// `strict.test`'s message reaches the peer, while `open.test`'s is delivered.
#[test]
fn domains_sharing_a_next_hop_never_share_a_connection() {
    let peer = Peer::start(Behaviour::NoStartTls);
    let port = peer.addr.port();
    let delivery = format!(
        "max_messages_per_connection = 100\n\
         [delivery.retry]\ninitial_secs = 3600\n\
         [[delivery.route]]\ndomain = \"strict.test\"\nhosts = [\"127.0.0.1:{port}\"]\n\
         [[delivery.route]]\ndomain = \"open.test\"\nhosts = [\"127.0.0.1:{port}\"]\n"
    );
    let controls = "[default]\ntls = \"no\"\ndane = \"none\"\n\
                    [destinations.\"strict.test\"]\ntls = \"required\"\n";
    let site = Site::new(&delivery, controls, None);
    let relay = site.start();
    let strict = format!("STRICT-MARKER-{}", std::process::id());
    let open = format!("OPEN-MARKER-{}", std::process::id());
    let mut client = Client::connect(site.listen).unwrap();
    let mut ids = Vec::new();
    for (rcpt, marker) in [
        ("a@strict.test", &strict),
        ("b@open.test", &open),
        ("c@strict.test", &strict),
        ("d@open.test", &open),
    ] {
        let body = format!("Subject: shared hop\r\n\r\n{marker}\r\n");
        ids.push(
            client
                .send("sender@client.test", rcpt, &body)
                .unwrap()
                .expect("accepted"),
        );
    }
    client.quit();
    wait_until(
        Duration::from_secs(30),
        || format!("not settled\n{}", relay.log()),
        // open.test's messages gone (delivered); strict.test attempted (then held back).
        || {
            site.spooled_envelope(&ids[1]).is_none()
                && site.spooled_envelope(&ids[3]).is_none()
                && site
                    .spooled_envelope(&ids[0])
                    .is_some_and(|e| e.attempts >= 1)
        },
    );
    let conns = peer.conns();
    let mut delivered = 0;
    for (i, c) in conns.iter().enumerate() {
        let text = c.plain_text();
        let domains = ["@strict.test", "@open.test"]
            .iter()
            .filter(|d| text.contains(*d))
            .count();
        assert!(domains <= 1, "connection {i} carries two domains: {text:?}");
        assert!(
            !text.contains(&strict) && !text.contains("@strict.test"),
            "connection {i}: strict.test's message sent in plaintext: {text:?}"
        );
        delivered += text.matches(&open).count();
    }
    assert_eq!(delivered, 2, "open.test: {conns:?}\n{}", relay.log());
    for id in [&ids[0], &ids[2]] {
        let env = site
            .spooled_envelope(id)
            .expect("strict.test stays spooled");
        assert!(
            env.recipients
                .iter()
                .all(|r| r.state == relay::RecipientState::Pending),
            "{env:?}"
        );
    }
}

// ------------------------------------------------------------- the fault matrix, lab

/// Issue 13 "Done when": the relay delivering to Postfix behind the lab's MTA-STS domains and a
/// loopback policy server, one row per case; 0 plaintext or unauthenticated deliveries where an
/// `enforce` policy forbids them. Relay 1's Postfix has a certificate for the MX host; relay 2's
/// one for another name. Relay 2 is restarted with its policy server answering 500: its cached
/// `enforce` policy (file cache) still holds.
#[test]
fn mta_sts_fault_matrix_against_postfix() {
    let lab = Lab::start();
    let ca = TestCa::new("mta-sts test CA");
    let server = PolicyServer::start(
        &ca,
        &[sts::INSECURE, sts::TESTING, sts::NOMATCH, sts::FETCHFAIL],
    );
    server.set(sts::INSECURE, PolicyResponse::enforce(&[MX], 86400));
    server.set(
        sts::TESTING,
        PolicyResponse::policy(&policy_text("testing", &[MX], 86400)),
    );
    server.set(
        sts::NOMATCH,
        PolicyResponse::enforce(&["mx.elsewhere.test"], 86400),
    );
    server.set(sts::FETCHFAIL, PolicyResponse::status(404));
    let good = Postfix::with_tls(&ca, &[MX]);
    let bad = Postfix::with_tls(&ca, &["other-name.test"]);
    let mut table = vec![
        "| case | outcome | sent | plaintext (enforce) | unverified (enforce) |".to_owned(),
        "|---|---|---|---|---|".to_owned(),
    ];
    let row = |case, local: &str, domain: &str, delivered, enforce| Row {
        case,
        rcpt: format!("{local}@{domain}"),
        delivered,
        enforce,
    };

    // Relay 1: the MX host's certificate is right.
    let site1 = site(&lab, &good, &server, &ca, OPPORTUNISTIC);
    let relay1 = site1.start();
    let rows1 = [
        row(
            "enforce, MX listed, good certificate",
            "r1",
            sts::INSECURE,
            true,
            true,
        ),
        row("enforce, MX not listed", "r2", sts::NOMATCH, false, true),
        row(
            "policy fetch 404, nothing cached: as no policy",
            "r3",
            sts::FETCHFAIL,
            true,
            false,
        ),
    ];
    let ids = run_rows(&site1, &relay1, &good, &rows1);
    let log1 = relay1.log();
    for (r, id) in rows1.iter().zip(&ids) {
        table.push(check_row(r, &site1, id, &good, &log1));
    }
    assert!(
        log1.lines().any(|l| l.contains("MTA-STS: policy applies")
            && l.contains(&format!("domain={}", sts::INSECURE))
            && l.contains("mode=\"enforce\"")),
        "no INFO line for the enforce policy: {log1}"
    );
    assert!(
        log1.lines()
            .any(|l| l.contains("policy fetch failed and nothing is cached")
                && l.contains(sts::FETCHFAIL)),
        "fetch failure not logged: {log1}"
    );

    // Relay 2: the certificate names another host.
    server.set(
        sts::FETCHFAIL,
        PolicyResponse::policy(&policy_text("enforce", &["mx.elsewhere.test"], 86400))
            .with_content_type(Some("text/html")),
    );
    let controls2 = format!(
        "{OPPORTUNISTIC}[destinations.\"{}\"]\nmta_sts = \"ignore\"\n",
        sts::NOMATCH
    );
    let site2 = site(&lab, &bad, &server, &ca, &controls2);
    let mut relay2 = site2.start();
    let rows2 = [
        row(
            "enforce, certificate for another name",
            "r4",
            sts::INSECURE,
            false,
            true,
        ),
        row(
            "testing, certificate for another name",
            "r5",
            sts::TESTING,
            true,
            false,
        ),
        row(
            "enforce policy, mta_sts = \"ignore\" control",
            "r6",
            sts::NOMATCH,
            true,
            false,
        ),
        row(
            "policy fetch wrong content type, nothing cached",
            "r7",
            sts::FETCHFAIL,
            true,
            false,
        ),
        row(
            "TLS-Required: No, enforce, certificate for another name",
            "r10",
            sts::INSECURE,
            true,
            false,
        ),
    ];
    let ids2 = run_rows(&site2, &relay2, &bad, &rows2);
    let log2 = relay2.log();
    for (r, id) in rows2.iter().zip(&ids2) {
        table.push(check_row(r, &site2, id, &bad, &log2));
    }
    assert!(
        log2.lines()
            .any(|l| l.contains("MTA-STS: ignored") && l.contains(sts::NOMATCH)),
        "ignore not logged: {log2}"
    );
    // `testing`: delivered, and the failed certificate check is in the attempt's record.
    let testing = attempts(&log2, sts::TESTING);
    assert!(
        testing.iter().any(|l| l.contains("\"mode\":\"testing\"")
            && l.contains("action=\"continue-tls\"")
            && !l.contains("pkix=Some(Verified)")),
        "testing: the certificate failure is not recorded: {testing:?}"
    );

    // Relay 2 again, policy server failing: the cached enforce policy (file) still applies.
    server.set(sts::INSECURE, PolicyResponse::status(500));
    let status = relay2.terminate();
    assert!(status.success(), "{status}");
    let cache = site2.dir.path().join("relay-data/mta-sts");
    assert!(
        std::fs::read_dir(&cache).is_ok_and(|d| d.count() > 0),
        "no cache file in {}",
        cache.display()
    );
    let relay2b = site2.restart(2);
    let rows3 = [row(
        "restart, policy server 500, cached enforce, bad certificate",
        "r8",
        sts::INSECURE,
        false,
        true,
    )];
    let ids3 = run_rows(&site2, &relay2b, &bad, &rows3);
    let log3 = relay2b.log();
    table.push(check_row(&rows3[0], &site2, &ids3[0], &bad, &log3));
    assert!(
        log3.lines().any(|l| l.contains("MTA-STS: policy applies")
            && l.contains(&format!("domain={}", sts::INSECURE))
            && l.contains("source=\"cache\"")),
        "the cached policy was not used after the restart: {log3}"
    );
    // The admin path: show the cached entry, purge it, and it is gone.
    let admin = |flag: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_relay"))
            .arg("--config")
            .arg(site2.config())
            .args([flag, "STS.unsigned.test."])
            .current_dir(site2.dir.path())
            .output()
            .unwrap()
    };
    let shown = admin("--mta-sts-show");
    let text = String::from_utf8_lossy(&shown.stdout);
    assert!(
        shown.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&shown.stderr)
    );
    let j: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(j["domain"], sts::INSECURE, "{j}");
    assert_eq!(j["fresh"], true, "{j}");
    assert_eq!(j["entry"]["policy"]["id"], sts::INSECURE_ID, "{j}");
    assert!(j["age_secs"].as_u64().is_some(), "{j}");
    let purged = admin("--mta-sts-purge");
    assert!(
        purged.status.success(),
        "{}",
        String::from_utf8_lossy(&purged.stderr)
    );
    assert_eq!(admin("--mta-sts-show").status.code(), Some(1));
    assert_eq!(admin("--mta-sts-purge").status.code(), Some(1));
    println!("\nMTA-STS fault matrix (relay -> Postfix, lab DNS, loopback policy server)");
    for l in &table {
        println!("{l}");
    }
}

/// DANE and MTA-STS on one domain (`sts.dane.test`: signed zone, TLSA for its MX host,
/// `enforce` policy listing it): DANE decides for the host (RFC 8461 §2). The relay trusts only
/// the test CA, which did not issue Postfix's certificate (the lab's): PKIX alone would fail, so
/// the delivery shows DANE decided, and the plan says `dane-precedence`.
#[test]
fn dane_decides_when_a_domain_has_both() {
    let port = test_support::free_port(&[]);
    let lab = Lab::start_with_smtp_port(port);
    let port_text = port.to_string();
    let postfix = Postfix::start(
        Postfix::scratch(),
        &[
            ("SMTPD_PORT", port_text.as_ref()),
            ("SMTPD_TLS", "may".as_ref()),
            ("TLS_CERT", lab.var("MX_CHAIN").as_ref()),
            ("TLS_KEY", lab.var("MX_KEY").as_ref()),
        ],
    );
    let ca = TestCa::new("mta-sts test CA");
    let server = PolicyServer::start(&ca, &[sts::SECURE]);
    server.set(
        sts::SECURE,
        PolicyResponse::enforce(&["mx.dane.test"], 86400),
    );
    let controls = format!(
        "{OPPORTUNISTIC}[destinations.\"{}\"]\ndane = \"opportunistic\"\n",
        sts::SECURE
    );
    let site = site(&lab, &postfix, &server, &ca, &controls);
    let relay = site.start();
    let rows = [Row {
        case: "DANE and MTA-STS enforce on one domain: DANE decides",
        rcpt: format!("r9@{}", sts::SECURE),
        delivered: true,
        enforce: true,
    }];
    let ids = run_rows(&site, &relay, &postfix, &rows);
    let log = relay.log();
    let line = check_row(&rows[0], &site, &ids[0], &postfix, &log);
    let lines = attempts(&log, sts::SECURE);
    assert!(
        lines
            .iter()
            .any(|l| l.contains("dane_verdict=Some(Verified")
                && l.contains("dane-precedence")
                && l.contains(sts::SECURE_ID)),
        "DANE did not decide: {lines:?}\n{log}"
    );
    println!("{line}");
}
