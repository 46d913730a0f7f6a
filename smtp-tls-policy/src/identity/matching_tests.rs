use super::*;

/// `(presented, reference, expected)`, in the style of rustls-webpki's `dns_name.rs` table.
const DNS_CASES: &[(&str, &str, bool)] = &[
    // exact, case-insensitive, trailing dot (RFC 6125 §6.4.1)
    ("example.com", "example.com", true),
    ("EXAMPLE.com", "example.COM", true),
    ("example.com.", "example.com", true),
    ("example.com", "example.com.", true),
    ("example.com..", "example.com", false),
    ("example.com", "example.org", false),
    ("abc.example.com", "def.example.com", false),
    ("example.com", "abc.example.com", false),
    ("abc.example.com", "example.com", false),
    ("localhost", "localhost", true),
    // wildcard: whole left-most label only, exactly one label (RFC 6125 §6.4.3)
    ("*.example.com", "foo.example.com", true),
    ("*.example.com", "FOO.Example.Com.", true),
    ("*.example.com.", "foo.example.com", true),
    ("*.example.com", "example.com", false),
    ("*.example.com", "foo.bar.example.com", false),
    ("*.bar.example.com", "foo.bar.example.com", true),
    ("foo.*.example.com", "foo.bar.example.com", false),
    ("*.*.example.com", "a.b.example.com", false),
    ("ba*.example.com", "baz.example.com", false),
    ("*z.example.com", "baz.example.com", false),
    ("b*z.example.com", "baz.example.com", false),
    ("**.example.com", "a.example.com", false),
    ("*", "example", false),
    ("*.", "example", false),
    ("*.com", "example.com", false),
    ("*.local", "mail.local", false),
    ("example.*", "example.com", false),
    // wildcard over multi-label public suffixes (embedded PSL excerpt)
    ("*.co.uk", "example.co.uk", false),
    ("*.s3.amazonaws.com", "example.s3.amazonaws.com", false),
    ("*.github.io", "someone.github.io", false),
    ("*.example.co.uk", "www.example.co.uk", true),
    // A-labels (RFC 6125 §6.4.3: no wildcard embedded in an A-label)
    (
        "xn--*-1b3c148a.example.com",
        "xn--bliss-1b3c148a.example.com",
        false,
    ),
    ("*.xn--bcher-kva.example", "www.xn--bcher-kva.example", true),
    ("*.example.com", "xn--bcher-kva.example.com", true),
    ("xn--bcher-kva.example", "xn--bcher-kva.example", true),
    // presented names must be ASCII host names (RFC 5280 §4.2.1.6, §7.2)
    ("bücher.example", "xn--bcher-kva.example", false),
    ("\u{1f61c}.example.com", "xn--628h.example.com", false),
    ("foo_bar.example.com", "foobar.example.com", false),
    ("foo bar.example.com", "foobar.example.com", false),
    ("-foo.example.com", "foo.example.com", false),
    ("", "example.com", false),
    (".", "example.com", false),
    (".example.com", "example.com", false),
    ("a..example.com", "a.example.com", false),
    // an IP address in a dNSName is not an IP identity (and its numeric TLD is no host name)
    ("192.0.2.1", "192.0.2.1.example", false),
];

#[test]
fn dns_name_table() {
    for &(presented, reference, expected) in DNS_CASES {
        let reference = DnsName::parse(reference)
            .unwrap_or_else(|e| panic!("reference {reference:?} must parse: {e}"));
        assert_eq!(
            dns_name_matches(presented, &reference),
            expected,
            "presented {presented:?} vs reference {reference}"
        );
    }
}

#[test]
fn public_suffix_list_is_sorted_and_lowercase() {
    assert!(MULTI_LABEL_PUBLIC_SUFFIXES.windows(2).all(|w| w[0] < w[1]));
    for s in MULTI_LABEL_PUBLIC_SUFFIXES {
        assert_eq!(*s, s.to_ascii_lowercase());
        assert!(
            s.contains('.'),
            "{s} is single-label: already covered by the 2-label rule"
        );
    }
    assert!(is_public_suffix("com"));
    assert!(is_public_suffix("co.uk"));
    assert!(!is_public_suffix("example.com"));
}

#[test]
fn classify_shapes() {
    assert_eq!(
        classify_presented("a.example"),
        Some(PresentedShape::Exact("a.example"))
    );
    assert_eq!(
        classify_presented("*.a.example."),
        Some(PresentedShape::Wildcard {
            parent: "a.example"
        })
    );
    assert_eq!(classify_presented("*.co.uk"), None);
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    /// The plain reference: lowercase both, split into labels, compare label by label with
    /// `*` standing for any one label only in position 0, applying the same public-suffix rule.
    fn naive(presented: &str, reference: &str) -> bool {
        let p = presented
            .strip_suffix('.')
            .unwrap_or(presented)
            .to_ascii_lowercase();
        let r = reference.to_ascii_lowercase();
        if classify_presented(presented).is_none() {
            return false;
        }
        let pl: Vec<&str> = p.split('.').collect();
        let rl: Vec<&str> = r.split('.').collect();
        pl.len() == rl.len()
            && pl
                .iter()
                .zip(&rl)
                .enumerate()
                .all(|(i, (a, b))| (i == 0 && *a == "*") || a == b)
    }

    proptest! {
        #[test]
        fn matcher_agrees_with_naive(
            p in "(\\*|[a-cA-C]{1,3})(\\.[a-cA-C]{1,3}){0,3}\\.?",
            r in "[a-c]{1,3}(\\.[a-c]{1,3}){0,3}",
        ) {
            let reference = DnsName::parse(&r).unwrap();
            prop_assert_eq!(dns_name_matches(&p, &reference), naive(&p, &r));
        }

        #[test]
        fn never_panics_on_arbitrary_input(p in "\\PC{0,80}", r in "[a-z0-9.-]{1,40}") {
            if let Ok(reference) = DnsName::parse(&r) {
                let _ = dns_name_matches(&p, &reference);
            }
        }
    }
}
