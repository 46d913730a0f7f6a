//! MTA-STS (RFC 8461) at delivery (issue 13), through the built `relay` binary.
//!
//! - Domains that share a next hop never share a connection (KumoMTA #484): the MX list and
//!   the policy are per recipient domain, decided before any connection reuse.

mod common;

use std::time::Duration;

use common::peer::{Behaviour, Peer};
use common::{Client, Site, wait_until};

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
