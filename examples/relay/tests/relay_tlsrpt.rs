//! TLS reporting (RFC 8460) end to end with the built `relay` binary: the DNSSEC lab serves
//! `_smtp._tls` TXT records (`sts.dane.test`: `rua=mailto:tlsrpt@sts.dane.test`,
//! `sts.unsigned.test`: `rua=mailto:tlsrpt@sts.unsigned.test`); SMTP routes send each domain
//! to a scripted loopback peer: `sts.dane.test` to a peer with STARTTLS and the lab's MX
//! certificate (`tls = "required-verify"`: a verified session), `sts.unsigned.test` to a
//! peer without STARTTLS (`tls = "preferred"`: delivered in plaintext, a
//! `starttls-not-supported` failure). With `report_interval_secs = 20` (the six sessions
//! sent at the start of one period) the reporter sends one report per policy domain to the
//! domain's own peer; the report is read back with
//! smtp-tls-policy's `read_report` and its counts compared with the connections the peer saw.
//! The report messages are DKIM-signed (`[tlsrpt.dkim]`), sent `TLS-Required: No` and not
//! counted themselves: no second report follows.

mod common;

use std::time::Duration;

use test_support::dnssec_lab::Lab;
use test_support::pki::{CertKey, server_config};

use common::peer::{Behaviour, Conn, Peer};
use common::tlsrpt::{at_period_start, conn_text, reports};
use common::{Client, Site, wait_until};

fn delivered_user_mail(conns: &[Conn]) -> usize {
    conns
        .iter()
        .filter(|c| c.delivered.is_some())
        .filter(|c| !conn_text(c).contains("TLS-Report-Domain:"))
        .count()
}

/// The connections whose `text` (what the peer read over TLS, or in plaintext) is not a
/// report's delivery: the sessions a report counts.
fn user_sessions(conns: &[Conn], text: fn(&Conn) -> String) -> u64 {
    conns
        .iter()
        .filter(|c| !text(c).contains("TLS-Report-Domain:"))
        .count() as u64
}

/// The destination controls of both tests: `sts.dane.test` verified, `sts.unsigned.test`
/// opportunistic.
const CONTROLS: &str = "[default]\ntls = \"no\"\ndane = \"none\"\n\
     [destinations.\"sts.dane.test\"]\ntls = \"required-verify\"\n\
     [destinations.\"sts.unsigned.test\"]\ntls = \"preferred\"\n";

/// The DNSSEC lab, a peer with STARTTLS and the lab's MX certificate, and one without STARTTLS.
fn lab_and_peers() -> (Lab, Peer, Peer) {
    let lab = Lab::start();
    let mx = CertKey {
        chain_pem: std::fs::read_to_string(lab.var("MX_CHAIN")).unwrap(),
        key_pem: std::fs::read_to_string(lab.var("MX_KEY")).unwrap(),
    };
    let good = Peer::start(Behaviour::Tls(server_config(&mx)));
    let plain = Peer::start(Behaviour::NoStartTls);
    (lab, good, plain)
}

/// The `[delivery]` and `[tlsrpt]` sections of both tests (routes to the two peers, reports
/// every `interval` seconds), followed by `extra`.
fn delivery_config(lab: &Lab, good: &Peer, plain: &Peer, interval: u64, extra: &str) -> String {
    // connection_cache_secs = 0: the tests count one peer connection (one TLS-RPT session) per
    // message; a cached connection would carry several
    format!(
        "connection_cache_secs = 0\n\
         [delivery.resolver]\nmode = \"trust-ad\"\naddress = \"{}\"\nprobe_name = \"test.\"\n\
         [delivery.retry]\ninitial_secs = 3600\n\
         [[delivery.route]]\ndomain = \"sts.dane.test\"\nhosts = [\"mx.dane.test:{}\"]\n\
         [[delivery.route]]\ndomain = \"sts.unsigned.test\"\nhosts = [\"mx.unsigned.test:{}\"]\n\
         [tlsrpt]\nenabled = true\norganization_name = \"Relay Test\"\n\
         contact_info = \"tlsrpt@relay.test\"\nreport_interval_secs = {interval}\n{extra}",
        lab.validating(),
        good.addr.port(),
        plain.addr.port(),
    )
}

#[test]
fn one_report_per_policy_domain_with_exact_counts_and_reports_not_counted() {
    const INTERVAL: u64 = 20;
    let (lab, good, plain) = lab_and_peers();
    // a DKIM key for the report messages
    let keys = tempfile::tempdir().unwrap();
    test_support::openssl::rsa_key(keys.path(), "dkim.pem");
    let key = keys.path().join("dkim.pem");
    let delivery = delivery_config(
        &lab,
        &good,
        &plain,
        INTERVAL,
        &format!(
            "[tlsrpt.dkim]\nselector = \"tlsrpt\"\ndomain = \"relay.test\"\nkey_file = \"{}\"\n",
            key.display()
        ),
    );
    let ca_pem = std::fs::read_to_string(lab.var("CA_CERT")).unwrap();
    let site = Site::new(&delivery, CONTROLS, Some(&ca_pem));
    let relay = site.start();

    // three messages to each domain, each in its own SMTP session to the relay, all in one
    // period (a period long enough for six sessions on a loaded CI machine)
    at_period_start(INTERVAL);
    for i in 0..3 {
        for domain in ["sts.dane.test", "sts.unsigned.test"] {
            let mut client = Client::connect(site.listen).unwrap();
            let body = format!("Subject: m{i}\r\n\r\nto {domain}\r\n");
            client
                .send("sender@client.test", &format!("user@{domain}"), &body)
                .unwrap()
                .unwrap_or_else(|| panic!("relay refused mail to {domain}: {}", relay.log()));
            client.quit();
        }
    }
    wait_until(
        Duration::from_secs(60),
        || format!("reports not received: {}", relay.log()),
        || reports(&good.conns()).len() + reports(&plain.conns()).len() >= 2,
    );
    let good_conns = good.conns();
    let plain_conns = plain.conns();
    assert_eq!(delivered_user_mail(&good_conns), 3, "{}", relay.log());
    assert_eq!(delivered_user_mail(&plain_conns), 3, "{}", relay.log());
    // user mail went over one connection per delivery attempt: the sessions reported
    let good_sessions = user_sessions(&good_conns, Conn::tls_text);
    let plain_sessions = user_sessions(&plain_conns, Conn::plain_text);

    let pass = reports(&good_conns);
    assert_eq!(pass.len(), 1, "{}", relay.log());
    let (message, report) = &pass[0];
    assert!(
        message.contains("TLS-Report-Domain: sts.dane.test\r\n"),
        "{message}"
    );
    assert!(
        message.contains("TLS-Report-Submitter: relay.test\r\n"),
        "{message}"
    );
    assert!(message.contains("TLS-Required: No\r\n"), "{message}");
    assert!(
        message.starts_with("DKIM-Signature: v=1; a=rsa-sha256; ")
            && message.contains("d=relay.test;"),
        "{message}"
    );
    assert_eq!(report.policies.len(), 1);
    let p = &report.policies[0];
    assert_eq!(p.policy.policy_domain.as_deref(), Some("sts.dane.test"));
    assert_eq!(p.policy.policy_type.as_str(), "no-policy-found");
    assert_eq!(p.summary.total_successful_session_count, good_sessions);
    assert_eq!(p.summary.total_failure_session_count, 0);
    assert!(
        good_conns.iter().all(|c| c.tls_up),
        "report sent over TLS when offered"
    );

    let fail = reports(&plain_conns);
    assert_eq!(fail.len(), 1, "{}", relay.log());
    let (message, report) = &fail[0];
    assert!(
        message.contains("TLS-Report-Domain: sts.unsigned.test\r\n"),
        "{message}"
    );
    let p = &report.policies[0];
    assert_eq!(p.policy.policy_domain.as_deref(), Some("sts.unsigned.test"));
    assert_eq!(p.summary.total_successful_session_count, 0);
    assert_eq!(p.summary.total_failure_session_count, plain_sessions);
    assert_eq!(p.failure_details.len(), 1);
    let d = &p.failure_details[0];
    assert_eq!(d.result_type.as_str(), "starttls-not-supported");
    assert_eq!(d.failed_session_count, plain_sessions);
    assert_eq!(d.receiving_mx_hostname.as_deref(), Some("mx.unsigned.test"));
    assert_eq!(d.sending_mta_ip, Some("127.0.0.1".parse().unwrap()));
    assert_eq!(d.receiving_ip, Some("127.0.0.1".parse().unwrap()));

    // the reports' own deliveries were not counted: two more periods pass without a report
    let log_mark = relay.log().matches("TLS-RPT: period reported").count();
    assert_eq!(log_mark, 1, "{}", relay.log());
    let until = std::time::Instant::now() + Duration::from_secs(2 * INTERVAL + 2);
    while std::time::Instant::now() < until {
        assert_eq!(reports(&good.conns()).len(), 1);
        assert_eq!(reports(&plain.conns()).len(), 1);
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        relay.log().matches("TLS-RPT: period reported").count(),
        1,
        "{}",
        relay.log()
    );
}

/// Two relay processes with `[state] backend = "redis"` deliver to the passing and the
/// failing destination; Redis is killed mid-run (by PID) and restarted: no mail is lost or
/// blocked (the counters are buffered), and exactly one aggregate report per policy domain
/// arrives with the sessions of both relays summed — the other relay logs that the period
/// was claimed or reported by another relay.
#[test]
fn two_relays_with_redis_send_one_aggregate_report_per_domain() {
    use test_support::redis::RedisServer;
    const INTERVAL: u64 = 60;

    let mut redis = RedisServer::start_persistent();
    let (lab, good, plain) = lab_and_peers();
    let delivery = delivery_config(
        &lab,
        &good,
        &plain,
        INTERVAL,
        &format!(
            "[state]\nbackend = \"redis\"\nurl = \"{}\"\nretry_interval_ms = 100\n",
            redis.url()
        ),
    );
    let ca_pem = std::fs::read_to_string(lab.var("CA_CERT")).unwrap();
    let sites = [
        Site::new(&delivery, CONTROLS, Some(&ca_pem)),
        Site::new(&delivery, CONTROLS, Some(&ca_pem)),
    ];
    let relays = [sites[0].start(), sites[1].start()];
    let logs = || format!("{}\n---\n{}", relays[0].log(), relays[1].log());
    let mut sent = 0usize;
    let mut deliver = |i: usize| {
        for domain in ["sts.dane.test", "sts.unsigned.test"] {
            let mut client = Client::connect(sites[i].listen).unwrap();
            client
                .send(
                    "sender@client.test",
                    &format!("user@{domain}"),
                    "Subject: shared\r\n\r\nshared counters\r\n",
                )
                .unwrap()
                .unwrap_or_else(|| panic!("relay {i} refused mail to {domain}"));
            client.quit();
        }
        sent += 1;
        let want = sent;
        wait_until(
            Duration::from_secs(30),
            || format!("not delivered: {}", logs()),
            || {
                delivered_user_mail(&good.conns()) >= want
                    && delivered_user_mail(&plain.conns()) >= want
            },
        );
    };
    at_period_start(INTERVAL);
    deliver(0);
    deliver(1);
    // Redis killed mid-run: delivery goes on (counters buffered), then Redis is back
    redis.kill();
    deliver(1);
    deliver(0);
    redis.restart();
    deliver(0);

    wait_until(
        Duration::from_secs(INTERVAL + 60),
        || format!("reports not received: {}", logs()),
        || reports(&good.conns()).len() + reports(&plain.conns()).len() >= 2,
    );
    // the other relay's reporter ran for the same period and stood back
    wait_until(
        Duration::from_secs(30),
        || format!("second reporter did not run: {}", logs()),
        || {
            relays.iter().any(|r| {
                // refused while the other holds the claim, or found done after it
                r.log().contains("TLS-RPT: period claimed by another relay")
                    || r.log().contains(
                        "TLS-RPT: period already reported (by another relay or an earlier run)",
                    )
            })
        },
    );
    let good_conns = good.conns();
    let plain_conns = plain.conns();
    assert_eq!(delivered_user_mail(&good_conns), 5, "{}", logs());
    assert_eq!(delivered_user_mail(&plain_conns), 5, "{}", logs());
    let good_sessions = user_sessions(&good_conns, Conn::tls_text);
    let plain_sessions = user_sessions(&plain_conns, Conn::plain_text);

    let pass = reports(&good_conns);
    assert_eq!(pass.len(), 1, "{}", logs());
    let p = &pass[0].1.policies[0];
    assert_eq!(p.policy.policy_domain.as_deref(), Some("sts.dane.test"));
    assert_eq!(p.summary.total_successful_session_count, good_sessions);
    assert_eq!(p.summary.total_failure_session_count, 0);

    let fail = reports(&plain_conns);
    assert_eq!(fail.len(), 1, "{}", logs());
    let p = &fail[0].1.policies[0];
    assert_eq!(p.policy.policy_domain.as_deref(), Some("sts.unsigned.test"));
    assert_eq!(p.summary.total_successful_session_count, 0);
    assert_eq!(p.summary.total_failure_session_count, plain_sessions);
    assert_eq!(
        p.failure_details[0].result_type.as_str(),
        "starttls-not-supported"
    );
}
