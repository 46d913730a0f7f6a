//! TLS reporting (RFC 8460) of MTA-STS domains, end to end with the built `relay` binary.
//!
//! The DNSSEC lab's `sts.unsigned.test` has an `_mta-sts` TXT record and
//! `_smtp._tls` TXT `rua=mailto:tlsrpt@sts.unsigned.test`; its MX `mx.unsigned.test` is a
//! scripted peer on loopback (`mx_port`) with a certificate for the MX host from a test CA the
//! relays trust. Four relays, each with its own loopback policy server, deliver one message to
//! the domain in one 20 s reporting period and send their report to the peer:
//!
//! | relay | policy server | report for `sts.unsigned.test` |
//! |---|---|---|
//! | enforce | `enforce`, `mx: mx.unsigned.test` | `sts` with the policy lines and `mx-host`, 1 success |
//! | testing | `testing`, `mx: mx.elsewhere.test` | `sts` with the policy lines, 1 `validation-failure` at the MX (delivered) |
//! | fetch 404 | `404` | `sts` without policy lines, 1 `sts-policy-fetch-error`; `no-policy-found`, 1 success |
//! | self-signed | a self-signed certificate | `sts` without policy lines, 1 `sts-webpki-invalid`; `no-policy-found`, 1 success |
//!
//! The reports' own deliveries (`TLS-Required: No`, again a failed fetch for the last two)
//! are never counted: no relay sends a second report in the next period.

mod common;

use std::time::{Duration, Instant};

use common::peer::{Behaviour, Peer};
use common::sts::{MX, OPPORTUNISTIC, delivery};
use common::tlsrpt::{at_period_start, conn_text, reports};
use common::{Client, Site, wait_until};
use smtp_tls_policy::tlsrpt::{PolicyReport, Report};
use test_support::dnssec_lab::{Lab, sts};
use test_support::pki::{TestCa, self_signed, server_config};
use test_support::policy_server::{PolicyResponse, PolicyServer, policy_host, policy_text};

/// The reporting period (the four deliveries are sent at its start).
const INTERVAL: u64 = 20;

/// The relays, by `organization-name` and the local part of their recipient.
const RELAYS: [&str; 4] = ["enforce", "testing", "fetch-404", "self-signed"];

/// The policy entry of `report` of `policy_type`.
fn policy<'a>(report: &'a Report, policy_type: &str) -> &'a PolicyReport {
    report
        .policies
        .iter()
        .find(|p| p.policy.policy_type.as_str() == policy_type)
        .unwrap_or_else(|| panic!("no {policy_type} policy in {report:?}"))
}

/// The lines of a served policy text, as the report's `policy-string` holds them.
fn lines(text: &str) -> Vec<String> {
    text.lines().map(str::to_owned).collect()
}

#[test]
fn reports_of_sts_domains_carry_the_policy_and_the_fetch_failures() {
    let lab = Lab::start();
    let ca = TestCa::new("mta-sts tlsrpt test CA");
    let peer = Peer::start(Behaviour::Tls(server_config(&ca.issue(&[MX.to_owned()]))));
    let enforce_text = policy_text("enforce", &[MX], 86400);
    let testing_text = policy_text("testing", &["mx.elsewhere.test"], 86400);
    let servers = [
        PolicyServer::start(&ca, &[sts::INSECURE]),
        PolicyServer::start(&ca, &[sts::INSECURE]),
        PolicyServer::start(&ca, &[sts::INSECURE]),
        PolicyServer::start_with_cert(&self_signed(&[policy_host(sts::INSECURE)])),
    ];
    servers[0].set(sts::INSECURE, PolicyResponse::policy(&enforce_text));
    servers[1].set(sts::INSECURE, PolicyResponse::policy(&testing_text));
    servers[2].set(sts::INSECURE, PolicyResponse::status(404));
    servers[3].set(sts::INSECURE, PolicyResponse::policy(&enforce_text));
    let sites: Vec<Site> = RELAYS
        .iter()
        .zip(&servers)
        .map(|(name, server)| {
            let tlsrpt = format!(
                "[tlsrpt]\nenabled = true\norganization_name = \"{name}\"\n\
                 contact_info = \"tlsrpt@relay.test\"\nreport_interval_secs = {INTERVAL}\n"
            );
            let delivery = delivery(&lab, peer.addr.port(), server, &tlsrpt);
            Site::new(&delivery, OPPORTUNISTIC, Some(&ca.pem))
        })
        .collect();
    let relays: Vec<_> = sites.iter().map(Site::start).collect();
    let logs = || {
        relays
            .iter()
            .zip(RELAYS)
            .map(|(r, n)| format!("--- {n} ---\n{}", r.log()))
            .collect::<String>()
    };

    at_period_start(INTERVAL);
    for (site, name) in sites.iter().zip(RELAYS) {
        let mut client = Client::connect(site.listen).unwrap();
        client
            .send(
                "sender@client.test",
                &format!("{name}@{}", sts::INSECURE),
                "Subject: sts tlsrpt\r\n\r\nto an MTA-STS domain\r\n",
            )
            .unwrap()
            .unwrap_or_else(|| panic!("{name}: relay refused the message: {}", logs()));
        client.quit();
    }
    // every message delivered (each relay's one connection), then one report per relay
    let user_conns = |name: &str| {
        peer.conns()
            .iter()
            .filter(|c| {
                let t = conn_text(c);
                !t.contains("TLS-Report-Domain:") && t.contains(&format!("RCPT TO:<{name}@"))
            })
            .map(|c| c.delivered)
            .collect::<Vec<_>>()
    };
    wait_until(
        Duration::from_secs(60),
        || format!("reports not received: {}", logs()),
        || reports(&peer.conns()).len() >= RELAYS.len(),
    );
    for name in RELAYS {
        assert_eq!(
            user_conns(name),
            [Some(true)],
            "{name}: not one delivery over TLS: {}",
            logs()
        );
    }
    let received = reports(&peer.conns());
    assert_eq!(received.len(), RELAYS.len(), "{}", logs());
    let report = |name: &str| -> Report {
        let mut of: Vec<_> = received
            .iter()
            .filter(|(_, r)| r.organization_name == name)
            .collect();
        assert_eq!(of.len(), 1, "{name}: {received:?}");
        let (message, report) = of.remove(0);
        assert!(
            message.contains(&format!("TLS-Report-Domain: {}\r\n", sts::INSECURE)),
            "{message}"
        );
        report.clone()
    };

    // enforce: the policy's lines and mx patterns, one successful session
    let r = report("enforce");
    assert_eq!(r.policies.len(), 1, "{r:?}");
    let p = policy(&r, "sts");
    assert_eq!(p.policy.policy_domain.as_deref(), Some(sts::INSECURE));
    assert_eq!(p.policy.policy_string, lines(&enforce_text));
    assert_eq!(p.policy.mx_host, [MX]);
    assert_eq!(p.summary.total_successful_session_count, 1);
    assert_eq!(p.summary.total_failure_session_count, 0);
    // the JSON field names of RFC 8460 §4.4
    let json = serde_json::to_value(&r).unwrap();
    let policy_json = &json["policies"][0]["policy"];
    assert_eq!(policy_json["policy-type"], "sts", "{json}");
    assert_eq!(policy_json["mx-host"], serde_json::json!([MX]), "{json}");
    assert_eq!(
        policy_json["policy-string"],
        serde_json::json!(lines(&enforce_text)),
        "{json}"
    );

    // testing: delivered, the unlisted MX counted as a failure under the testing policy
    let r = report("testing");
    assert_eq!(r.policies.len(), 1, "{r:?}");
    let p = policy(&r, "sts");
    assert_eq!(p.policy.policy_string, lines(&testing_text));
    assert_eq!(p.policy.mx_host, ["mx.elsewhere.test"]);
    assert_eq!(p.summary.total_successful_session_count, 0);
    assert_eq!(p.summary.total_failure_session_count, 1);
    let d = &p.failure_details[0];
    assert_eq!(d.result_type.as_str(), "validation-failure");
    assert_eq!(d.receiving_mx_hostname.as_deref(), Some(MX));
    assert_eq!(d.failed_session_count, 1);

    // fetch failures: one failed `sts` session of the failure's type, no MX; the delivery
    // itself (as without a policy, RFC 8461 §5) under no-policy-found
    for (name, result_type) in [
        ("fetch-404", "sts-policy-fetch-error"),
        ("self-signed", "sts-webpki-invalid"),
    ] {
        let r = report(name);
        assert_eq!(r.policies.len(), 2, "{name}: {r:?}");
        let p = policy(&r, "sts");
        assert_eq!(p.policy.policy_domain.as_deref(), Some(sts::INSECURE));
        assert!(p.policy.policy_string.is_empty(), "{name}: {p:?}");
        assert!(p.policy.mx_host.is_empty(), "{name}: {p:?}");
        assert_eq!(p.summary.total_successful_session_count, 0, "{name}");
        assert_eq!(p.summary.total_failure_session_count, 1, "{name}");
        assert_eq!(p.failure_details.len(), 1, "{name}: {p:?}");
        let d = &p.failure_details[0];
        assert_eq!(d.result_type.as_str(), result_type, "{name}");
        assert_eq!(d.failed_session_count, 1, "{name}");
        assert_eq!(d.receiving_mx_hostname, None, "{name}");
        let p = policy(&r, "no-policy-found");
        assert_eq!(p.summary.total_successful_session_count, 1, "{name}");
        assert_eq!(p.summary.total_failure_session_count, 0, "{name}");
    }
    assert!(
        servers[2].hits(sts::INSECURE) >= 1,
        "no fetch at the 404 server"
    );

    // The reports' own deliveries (and their failed fetches) were not counted: no second
    // report through the end of the next period's reporting.
    let until = Instant::now() + Duration::from_secs(INTERVAL + 3);
    while Instant::now() < until {
        assert_eq!(
            reports(&peer.conns()).len(),
            RELAYS.len(),
            "a report was counted: {}",
            logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
