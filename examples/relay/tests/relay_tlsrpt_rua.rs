//! TLS reporting (RFC 8460) end to end with the built `relay` binary: the `rua` lists of the
//! DNSSEC lab's `rpt-*.unsigned.test` domains (`scripts/dnssec-lab.sh`), an HTTPS report
//! collector on loopback (test-support's policy server, a certificate from a test CA the relay
//! trusts) and a scripted SMTP peer without STARTTLS (`tls = "preferred"`: every session a
//! `starttls-not-supported` failure) that receives the mail and the `mailto:` reports.
//!
//! - `https:` only: exactly one POST, `application/tlsrpt+gzip`, the gunzipped JSON read with
//!   the library's tolerant reader with the domain's counts;
//! - `mailto:` + `https:`: the same report both ways;
//! - a bad URI before a good `mailto:`: skipped and logged, the `mailto:` gets the report;
//!   only bad URIs: no report, the skips logged;
//! - a collector answering 500, and one that never answers: the `mailto:` after it and the
//!   other domains get their reports while the POST is still waiting (POSTs never block);
//! - `delivery.resolver.mode = "system"` (pointed at the lab's non-validating resolver): the
//!   `_smtp._tls` record is looked up without DNSSEC (RFC 8460 §3 does not require it).

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use smtp_tls_policy::tlsrpt::{Container, Report, read_report};
use test_support::dnssec_lab::Lab;
use test_support::pki::TestCa;
use test_support::policy_server::{PolicyResponse, PolicyServer, SeenRequest};

use common::peer::{Behaviour, Conn, Peer};
use common::tlsrpt::at_period_start;
use common::{Client, Relay, Site, wait_until};

/// The collector's host name (A 127.0.0.1 in the lab).
const COLLECTOR: &str = "tlsrpt.unsigned.test";
const INTERVAL: u64 = 20;

const HTTPS: &str = "rpt-https.unsigned.test";
const BOTH: &str = "rpt-both.unsigned.test";
const E500: &str = "rpt-500.unsigned.test";
const HANG: &str = "rpt-hang.unsigned.test";
const BADRUA: &str = "rpt-badrua.unsigned.test";
const ALLBAD: &str = "rpt-allbad.unsigned.test";
const MAILTO: &str = "sts.unsigned.test";

/// The report messages the peer received: (`TLS-Report-Domain`, message, report).
fn mail_reports(conns: &[Conn]) -> Vec<(String, String, Report)> {
    conns
        .iter()
        .filter_map(|c| {
            let text = c.plain_text();
            let (_, data) = text.split_once("DATA\r\n")?;
            let data = data.split("\r\n.\r\n").next().unwrap_or(data);
            let domain = data
                .lines()
                .find_map(|l| l.strip_prefix("TLS-Report-Domain: "))?
                .trim()
                .to_owned();
            let report = read_report(data.as_bytes())
                .unwrap_or_else(|e| panic!("report message unreadable: {e}\n{data}"));
            Some((domain, data.to_owned(), report))
        })
        .collect()
}

fn mail_report_for(conns: &[Conn], domain: &str) -> Vec<(String, Report)> {
    mail_reports(conns)
        .into_iter()
        .filter(|(d, _, _)| d == domain)
        .map(|(_, m, r)| (m, r))
        .collect()
}

/// Delivery sessions of user mail to `domain` the peer saw.
fn sessions(conns: &[Conn], domain: &str) -> u64 {
    conns
        .iter()
        .filter(|c| {
            let t = c.plain_text();
            t.contains(&format!("<user@{domain}>")) && !t.contains("TLS-Report-Domain:")
        })
        .count() as u64
}

fn delivered_user_mail(conns: &[Conn], domain: &str) -> bool {
    conns
        .iter()
        .any(|c| c.delivered.is_some() && c.plain_text().contains(&format!("<user@{domain}>")))
}

/// `gzip -dc` (an independent gunzip).
fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut child = Command::new("gzip")
        .arg("-dc")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("gzip installed");
    child.stdin.take().unwrap().write_all(bytes).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "gzip -dc failed");
    out.stdout
}

fn posts(collector: &PolicyServer, path: &str) -> Vec<SeenRequest> {
    collector
        .requests()
        .into_iter()
        .filter(|r| r.path == path)
        .collect()
}

/// A POST body read back: `application/tlsrpt+gzip`, gzip, its JSON read by the tolerant
/// reader.
fn posted_report(r: &SeenRequest) -> Report {
    assert_eq!(r.method, "POST");
    assert_eq!(r.content_type.as_deref(), Some("application/tlsrpt+gzip"));
    assert_eq!(r.host.as_deref(), Some(COLLECTOR));
    assert_eq!(Container::detect(&r.body), Container::Gzip);
    let json = gunzip(&r.body);
    assert_eq!(Container::detect(&json), Container::Json);
    let report = read_report(&json).expect("posted JSON readable");
    assert_eq!(read_report(&r.body).expect("posted gzip readable"), report);
    report
}

/// One `starttls-not-supported` policy of `domain` with `n` failed sessions.
fn assert_counts(report: &Report, domain: &str, n: u64) {
    assert!(n > 0);
    assert_eq!(report.policies.len(), 1, "{report:?}");
    let p = &report.policies[0];
    assert_eq!(p.policy.policy_domain.as_deref(), Some(domain));
    assert_eq!(p.summary.total_successful_session_count, 0);
    assert_eq!(p.summary.total_failure_session_count, n, "{domain}");
    assert_eq!(p.failure_details.len(), 1);
    assert_eq!(
        p.failure_details[0].result_type.as_str(),
        "starttls-not-supported"
    );
    assert_eq!(p.failure_details[0].failed_session_count, n);
}

/// A collector whose certificate a test CA issued; the CA's PEM to trust.
fn collector() -> (PolicyServer, String) {
    let ca = TestCa::new("tlsrpt collector CA");
    let server = PolicyServer::start_with_cert(&ca.issue(&[COLLECTOR.to_owned()]));
    server.set_path(COLLECTOR, "/tlsrpt/https", PolicyResponse::status(200));
    server.set_path(COLLECTOR, "/tlsrpt/both", PolicyResponse::status(200));
    server.set_path(COLLECTOR, "/tlsrpt/500", PolicyResponse::status(500));
    server.set_path(COLLECTOR, "/tlsrpt/hang", PolicyResponse::never_answer());
    (server, ca.pem)
}

/// A relay delivering every domain of `domains` to `peer` (`tls = "preferred"`), reporting
/// every `INTERVAL` seconds, with `resolver` lines; trusting the lab's CA and `extra_ca`.
fn site(lab: &Lab, resolver: &str, peer: &Peer, domains: &[&str], extra_ca: &str) -> Site {
    let mut delivery = format!(
        "{resolver}[delivery.retry]\ninitial_secs = 3600\n\
         [tlsrpt]\nenabled = true\norganization_name = \"Relay Test\"\n\
         contact_info = \"tlsrpt@relay.test\"\nreport_interval_secs = {INTERVAL}\n"
    );
    let mut controls = "[default]\ntls = \"no\"\ndane = \"none\"\n".to_owned();
    for d in domains {
        delivery.push_str(&format!(
            "[[delivery.route]]\ndomain = \"{d}\"\nhosts = [\"mx.unsigned.test:{}\"]\n",
            peer.addr.port()
        ));
        controls.push_str(&format!("[destinations.\"{d}\"]\ntls = \"preferred\"\n"));
    }
    let ca_pem = std::fs::read_to_string(lab.var("CA_CERT")).unwrap() + extra_ca;
    Site::new(&delivery, &controls, Some(&ca_pem))
}

/// One message to `user@D` for each of `domains`, each in its own session, at the start of
/// one period; waits until the peer has them all.
fn send_all(site: &Site, relay: &Relay, peer: &Peer, domains: &[&str]) {
    at_period_start(INTERVAL);
    for d in domains {
        let mut client = Client::connect(site.listen).unwrap();
        client
            .send(
                "sender@client.test",
                &format!("user@{d}"),
                &format!("Subject: to {d}\r\n\r\nhello\r\n"),
            )
            .unwrap()
            .unwrap_or_else(|| panic!("relay refused mail to {d}: {}", relay.log()));
        client.quit();
    }
    wait_until(
        Duration::from_secs(30),
        || format!("not delivered: {}", relay.log()),
        || {
            domains
                .iter()
                .all(|d| delivered_user_mail(&peer.conns(), d))
        },
    );
}

/// Waits (bounded: two reporting intervals and a margin) until `peer` received a report
/// message for each of `mailed` and `collector` a POST on each of `paths`.
fn wait_for_reports(
    relay: &Relay,
    peer: &Peer,
    mailed: &[&str],
    collector: &PolicyServer,
    paths: &[&str],
) {
    wait_until(
        Duration::from_secs(2 * INTERVAL + 20),
        || format!("reports not received: {}", relay.log()),
        || {
            let conns = peer.conns();
            mailed
                .iter()
                .all(|d| !mail_report_for(&conns, d).is_empty())
                && paths.iter().all(|p| !posts(collector, p).is_empty())
        },
    );
}

#[test]
fn https_and_mailto_rua_lists_with_bad_and_failing_uris() {
    let (collector, collector_ca) = collector();
    let lab = Lab::start_with_tlsrpt_https_port(collector.port());
    let peer = Peer::start(Behaviour::NoStartTls);
    let domains = [HTTPS, BOTH, E500, HANG, BADRUA, ALLBAD, MAILTO];
    let resolver = format!(
        "[delivery.resolver]\nmode = \"trust-ad\"\naddress = \"{}\"\nprobe_name = \"test.\"\n",
        lab.validating()
    );
    let site = site(&lab, &resolver, &peer, &domains, &collector_ca);
    let relay = site.start();
    send_all(&site, &relay, &peer, &domains);

    // Every report that can arrive does so while the never-answering collector still holds
    // its POST (60 s limit): neither the mailto: after it nor the next domains wait for it.
    let mail_domains = [BOTH, E500, HANG, BADRUA, MAILTO];
    wait_for_reports(
        &relay,
        &peer,
        &mail_domains,
        &collector,
        &[
            "/tlsrpt/https",
            "/tlsrpt/both",
            "/tlsrpt/500",
            "/tlsrpt/hang",
        ],
    );
    let log = relay.log();
    assert!(
        !log.lines()
            .any(|l| l.contains("/tlsrpt/hang") && l.contains("report not sent")),
        "the hanging POST timed out before the other reports were sent: {log}"
    );
    let conns = peer.conns();

    // https: only: exactly one POST with the domain's counts
    let https = posts(&collector, "/tlsrpt/https");
    assert_eq!(https.len(), 1, "{log}");
    assert_counts(&posted_report(&https[0]), HTTPS, sessions(&conns, HTTPS));
    assert!(mail_report_for(&conns, HTTPS).is_empty());

    // mailto: + https: the same report both ways
    let both = posts(&collector, "/tlsrpt/both");
    assert_eq!(both.len(), 1, "{log}");
    let posted = posted_report(&both[0]);
    let mailed = mail_report_for(&conns, BOTH);
    assert_eq!(mailed.len(), 1, "{log}");
    assert_eq!(mailed[0].1, posted);
    assert_counts(&posted, BOTH, sessions(&conns, BOTH));
    assert!(
        mailed[0].0.contains("TLS-Required: No\r\n"),
        "{}",
        mailed[0].0
    );

    // a collector answering 500 and one never answering: the mailto: after each has the report
    for (domain, path) in [(E500, "/tlsrpt/500"), (HANG, "/tlsrpt/hang")] {
        let p = posts(&collector, path);
        assert_eq!(p.len(), 1, "{path}: {log}");
        let posted = posted_report(&p[0]);
        let mailed = mail_report_for(&conns, domain);
        assert_eq!(mailed.len(), 1, "{domain}: {log}");
        assert_eq!(mailed[0].1, posted);
        assert_counts(&posted, domain, sessions(&conns, domain));
    }
    assert!(
        log.lines()
            .any(|l| l.contains("report not sent to this rua")
                && l.contains("/tlsrpt/500")
                && l.contains("500")),
        "{log}"
    );

    // a bad URI before a good mailto: skipped and logged, the mailto: has the report
    let mailed = mail_report_for(&conns, BADRUA);
    assert_eq!(mailed.len(), 1, "{log}");
    assert_counts(&mailed[0].1, BADRUA, sessions(&conns, BADRUA));
    assert!(
        log.lines().any(|l| l.contains("rua skipped")
            && l.contains("postmaster@rpt-badrua.unsigned.test")),
        "{log}"
    );

    // only bad URIs: no report anywhere, every skip logged
    assert!(mail_report_for(&conns, ALLBAD).is_empty());
    for uri in [
        "postmaster@rpt-allbad.unsigned.test",
        "http://tlsrpt.unsigned.test/tlsrpt",
    ] {
        assert!(
            log.lines()
                .any(|l| l.contains("rua skipped") && l.contains(uri)),
            "{uri}: {log}"
        );
    }
    assert_eq!(collector.requests().len(), 4, "{:?}", collector.requests());

    // the domain with a plain mailto: unaffected
    let mailed = mail_report_for(&conns, MAILTO);
    assert_eq!(mailed.len(), 1, "{log}");
    assert_counts(&mailed[0].1, MAILTO, sessions(&conns, MAILTO));
    // one report message per domain with a usable mailto:, nothing else
    assert_eq!(mail_reports(&conns).len(), mail_domains.len(), "{log}");
}

/// `delivery.resolver.mode = "system"` asking the lab's non-validating resolver: the
/// `_smtp._tls` records are found (no DNSSEC needed), reports go out by mail and by POST.
#[test]
fn system_resolver_mode_looks_the_record_up() {
    let (collector, collector_ca) = collector();
    let lab = Lab::start_with_tlsrpt_https_port(collector.port());
    let peer = Peer::start(Behaviour::NoStartTls);
    let domains = [MAILTO, BOTH];
    let resolver = format!(
        "[delivery.resolver]\nmode = \"system\"\naddress = \"{}\"\n",
        lab.non_validating()
    );
    let site = site(&lab, &resolver, &peer, &domains, &collector_ca);
    let relay = site.start();
    send_all(&site, &relay, &peer, &domains);
    wait_for_reports(&relay, &peer, &domains, &collector, &["/tlsrpt/both"]);
    let log = relay.log();
    assert!(!log.contains("no _smtp._tls lookup"), "{log}");
    let conns = peer.conns();
    let mailed = mail_report_for(&conns, MAILTO);
    assert_eq!(mailed.len(), 1, "{log}");
    assert_counts(&mailed[0].1, MAILTO, sessions(&conns, MAILTO));
    let both = posts(&collector, "/tlsrpt/both");
    assert_eq!(both.len(), 1, "{log}");
    let posted = posted_report(&both[0]);
    assert_counts(&posted, BOTH, sessions(&conns, BOTH));
    assert_eq!(mail_report_for(&conns, BOTH)[0].1, posted);
}
