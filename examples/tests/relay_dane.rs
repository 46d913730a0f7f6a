//! DANE at delivery through the DNSSEC lab (`scripts/dnssec-lab.sh`: knot-signed zones, a
//! validating unbound on loopback), with the built `relay` binary trusting the resolver's AD bit
//! (`[delivery.resolver] mode = "trust-ad"`) and DANE `mandatory` for every test destination.
//!
//! What is covered: the failures that must defer **without any connection** — a bogus MX RRset,
//! a bogus TLSA RRset, a TLSA lookup that SERVFAILs, and a routed destination (an SMTP route has
//! no DNSSEC facts, so mandatory DANE cannot be satisfied: the scripted peer behind the route sees
//! no connection at all). What is not: delivery to a DANE-verified MX and a TLSA mismatch at the
//! MX, because the relay connects to MX hosts on port 25 only (`dns::MX_PORT`, RFC 5321 §4.5.4.2)
//! and the lab's TLSA records are published for `_25._tcp`; tests never use port 25. The DANE
//! match itself (lab MX certificate against its `3 1 1` / `2 1 1` records, and mismatches) is
//! covered against the same lab by dane-verify's and smtp-tls-policy's tests.

mod common;

use std::time::Duration;

use common::dnssec_lab::Lab;
use common::peer::{Behaviour, Peer};
use common::{CertKey, Client, Site, server_config, wait_until};

/// One destination: the domain, what makes it fail, and whether the relay may even log a
/// delivery attempt (it does for per-host DANE decisions, not when the MX lookup itself fails).
struct Row {
    domain: &'static str,
    why: &'static str,
    attempt_logged: bool,
    /// Text the recorded diagnostic must contain.
    diagnostic: &'static str,
}

const ROWS: [Row; 4] = [
    Row {
        domain: "present.broken.test",
        why: "MX RRset bogus (tampered after signing)",
        attempt_logged: false,
        diagnostic: "MX lookup of present.broken.test failed",
    },
    Row {
        domain: "bogus.dane.test",
        why: "MX secure, TLSA RRset of mx.broken.test bogus",
        attempt_logged: true,
        diagnostic: "TLSA lookup failed",
    },
    Row {
        domain: "servfail.dane.test",
        why: "MX secure, TLSA lookup of mx-sf.dane.test SERVFAILs",
        attempt_logged: true,
        diagnostic: "TLSA lookup failed",
    },
    Row {
        domain: "routed.dane.test",
        why: "SMTP route: no DNSSEC facts for the next hop",
        attempt_logged: true,
        diagnostic: "DANE mandatory but no usable TLSA records",
    },
];

#[test]
fn dane_mandatory_failures_defer_without_connecting() {
    let lab = Lab::start();
    // The peer behind the route serves the lab's MX certificate and key (the one the TLSA
    // records of mx.dane.test name): even so, mandatory DANE cannot be met through a route.
    let mx = CertKey {
        chain_pem: std::fs::read_to_string(lab.var("MX_CHAIN")).unwrap(),
        key_pem: std::fs::read_to_string(lab.var("MX_KEY")).unwrap(),
    };
    let peer = Peer::start(Behaviour::Tls(server_config(&mx)));
    let delivery = format!(
        "[delivery.resolver]\nmode = \"trust-ad\"\naddress = \"{}\"\n\
         [delivery.retry]\ninitial_secs = 3600\n\
         [[delivery.route]]\ndomain = \"routed.dane.test\"\nhosts = [\"mx.dane.test:{}\"]\n",
        lab.validating(),
        peer.addr.port()
    );
    let mut controls = String::from("[default]\ntls = \"no\"\ndane = \"none\"\n");
    for r in &ROWS {
        // `preferred`: without DANE this mode would fall back to plaintext; mandatory DANE
        // must not.
        controls.push_str(&format!(
            "[destinations.\"{}\"]\ntls = \"preferred\"\ndane = \"mandatory\"\n",
            r.domain
        ));
    }
    let ca_pem = std::fs::read_to_string(lab.var("CA_CERT")).unwrap();
    let site = Site::new(&delivery, &controls, Some(&ca_pem));
    let relay = site.start();

    let mut client = Client::connect(site.listen).unwrap();
    let mut ids = Vec::new();
    for r in &ROWS {
        let marker = format!("DANE-MARKER-{}", r.domain);
        let body = format!("Subject: dane\r\n\r\n{marker}\r\n");
        let id = client
            .send("sender@client.test", &format!("rcpt@{}", r.domain), &body)
            .unwrap()
            .unwrap_or_else(|| panic!("relay refused {}: {}", r.domain, relay.log()));
        ids.push(id);
    }
    client.quit();

    // Each message's deferral is written to the spool (the pending envelope).
    wait_until(
        Duration::from_secs(30),
        || format!("deferrals not recorded: {}", relay.log()),
        || ids.iter().all(|id| site.spool_file(id, "env").exists()),
    );
    let log = relay.log();
    let mut failures = Vec::new();
    for (r, id) in ROWS.iter().zip(&ids) {
        let env = std::fs::read_to_string(site.spool_file(id, "env")).unwrap();
        let attempts: Vec<&str> = log
            .lines()
            .filter(|l| {
                l.contains("delivery attempt") && l.contains(&format!("domain={} ", r.domain))
            })
            .collect();
        let outcome = log
            .lines()
            .find(|l| l.contains("delivery outcome") && l.contains(id.as_str()))
            .and_then(|l| l.split_once("diagnostic="))
            .map_or("", |(_, d)| d);
        println!("{}: {} -> {outcome}", r.domain, r.why);
        let problem = if !site.spool_file(id, "msg").exists() || !env.contains("\"pending\"") {
            Some(format!("not deferred in the spool: {env}"))
        } else if !outcome.contains(r.diagnostic) {
            Some(format!("diagnostic {outcome:?}, want {:?}", r.diagnostic))
        } else if attempts.is_empty() == r.attempt_logged {
            Some(format!("delivery-attempt lines: {attempts:?}"))
        } else if attempts
            .iter()
            .any(|l| !l.contains("action=\"defer\"") || !l.contains("starttls_reply=None"))
        {
            // A preflight decision: no greeting was read, so no connection was used.
            Some(format!("not a preflight defer: {attempts:?}"))
        } else if log.lines().any(|l| {
            (l.contains("connect failed") || l.contains("session failed"))
                && (l.contains(r.domain) || l.contains(":25"))
        }) {
            Some("a connection was tried".into())
        } else {
            None
        };
        if let Some(p) = problem {
            failures.push(format!("{} ({}): {p}", r.domain, r.why));
        }
    }
    println!(
        "DANE mandatory: {} destinations, {} deferred without a connection",
        ROWS.len(),
        ROWS.len() - failures.len()
    );
    assert!(
        failures.is_empty(),
        "{}\n--- relay log ---\n{log}",
        failures.join("\n")
    );
    // The routed destination's peer never saw a connection.
    assert!(peer.conns().is_empty(), "the route's peer was contacted");
}
