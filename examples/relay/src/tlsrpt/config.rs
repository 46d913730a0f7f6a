//! The `[tlsrpt]` section of the relay configuration.
//!
//! ```toml
//! [tlsrpt]
//! enabled = true
//! organization_name = "Example Relay Operator"
//! contact_info = "tlsrpt@example.test"
//! submitter = "relay.example.test"      # default: delivery.ehlo_name
//! report_interval_secs = 86400          # default: one UTC day
//! [tlsrpt.dkim]                         # optional: DKIM-sign report messages
//! selector = "tlsrpt"
//! domain = "relay.example.test"
//! key_file = "/etc/relay/dkim-tlsrpt.pem"
//! ```
//!
//! Receiving: `mailboxes = ["tlsrpt@example.test"]` (independent of `enabled`) lists the
//! addresses this relay's own `rua=mailto:` points at. Every listener accepts mail for them also
//! over plaintext when its mail flow policy requires TLS (RFC 8460 §3: reports may arrive
//! without TLS); every other recipient still gets `530 5.7.0` before STARTTLS.

use serde::Deserialize;
use smtp_tls_policy::listener::PlaintextRecipients;

/// One UTC day.
pub const DEFAULT_REPORT_INTERVAL_SECS: u64 = 86_400;

/// `[tlsrpt]`: TLS reporting (RFC 8460).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct TlsRptConfig {
    /// Count outbound sessions and send reports (default `false`).
    pub enabled: bool,
    /// The report's `organization-name`.
    pub organization_name: String,
    /// The report's `contact-info`.
    pub contact_info: String,
    /// The submitting host (`TLS-Report-Submitter`, report ids); default: the relay's
    /// `delivery.ehlo_name`.
    pub submitter: Option<String>,
    /// The `From:` of report messages; default `noreply-tlsrpt@<submitter>`.
    pub from: Option<String>,
    /// The reporting period in seconds: a UTC day, or a divisor of one (shorter periods are
    /// for tests; a period never crosses midnight UTC).
    pub report_interval_secs: u64,
    /// DKIM-sign report messages (`[tlsrpt.dkim]`: selector, domain, key file).
    pub dkim: Option<super::dkim::DkimConfig>,
    /// The TLS-RPT mailboxes this relay receives reports at: accepted over plaintext on a
    /// TLS-required listener. Each one bare addr-spec (`local@domain`, dot-atom local part, LDH
    /// domain); the local part is compared exactly, the domain in any case.
    pub mailboxes: Vec<String>,
}

impl Default for TlsRptConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            organization_name: String::new(),
            contact_info: String::new(),
            submitter: None,
            from: None,
            report_interval_secs: DEFAULT_REPORT_INTERVAL_SECS,
            dkim: None,
            mailboxes: Vec::new(),
        }
    }
}

impl TlsRptConfig {
    /// The invalid key and why.
    ///
    /// # Errors
    /// `(key, reason)` of the first invalid setting.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        let i = self.report_interval_secs;
        if i == 0 || i > DEFAULT_REPORT_INTERVAL_SECS || DEFAULT_REPORT_INTERVAL_SECS % i != 0 {
            return Err((
                "report_interval_secs",
                format!("{i}: must divide 86400 (one day)"),
            ));
        }
        if self.enabled && self.organization_name.trim().is_empty() {
            return Err(("organization_name", "required when enabled".into()));
        }
        if self.enabled && self.contact_info.trim().is_empty() {
            return Err(("contact_info", "required when enabled".into()));
        }
        if let Err(e) = PlaintextRecipients::new(&self.mailboxes) {
            let m = self.mailboxes.get(e.index).map_or("", String::as_str);
            return Err(("mailboxes", format!("{m:?}: {}", e.reason)));
        }
        Ok(())
    }

    /// The [`mailboxes`](Self::mailboxes) for the listeners' STARTTLS gate (empty when none
    /// is configured or, which [`validate`](Self::validate) refuses, one is invalid).
    pub fn plaintext_recipients(&self) -> PlaintextRecipients {
        PlaintextRecipients::new(&self.mailboxes).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::TlsRptConfig;

    #[test]
    fn defaults_and_validation() {
        let c = TlsRptConfig::default();
        assert!(!c.enabled);
        assert_eq!(c.report_interval_secs, 86_400);
        assert!(c.validate().is_ok());
        let mut c = TlsRptConfig {
            report_interval_secs: 7,
            ..TlsRptConfig::default()
        };
        assert_eq!(c.validate().unwrap_err().0, "report_interval_secs");
        c.report_interval_secs = 5;
        c.enabled = true;
        assert_eq!(c.validate().unwrap_err().0, "organization_name");
        c.organization_name = "Org".into();
        c.contact_info = "x@example.test".into();
        assert!(c.validate().is_ok());
    }

    #[test]
    fn the_section_as_written() {
        let c: TlsRptConfig = toml::from_str(
            "enabled = true\norganization_name = \"O\"\ncontact_info = \"c@o.example\"\n\
             report_interval_secs = 3600\n[dkim]\nselector = \"s\"\ndomain = \"o.example\"\n\
             key_file = \"k.pem\"\n",
        )
        .unwrap();
        assert!(c.validate().is_ok());
        assert_eq!(c.dkim.unwrap().selector, "s");
        assert!(toml::from_str::<TlsRptConfig>("unknown = 1").is_err());
    }

    #[test]
    fn mailboxes_are_single_addr_specs() {
        let c: TlsRptConfig =
            toml::from_str("mailboxes = [\"tlsrpt@example.org\", \"r@Mail.Example.net\"]").unwrap();
        assert!(c.validate().is_ok());
        assert!(c.plaintext_recipients().contains("r@mail.example.net"));
        for bad in [
            "Reports <tlsrpt@example.org>",
            "tlsrpt@example.org, x@example.org",
            "tlsrpt",
            "\"a b\"@example.org",
        ] {
            let c = TlsRptConfig {
                mailboxes: vec!["ok@example.org".into(), bad.into()],
                ..TlsRptConfig::default()
            };
            let (key, reason) = c.validate().unwrap_err();
            assert_eq!(key, "mailboxes", "{bad}");
            assert!(reason.contains(&format!("{bad:?}")), "{reason}");
            assert!(c.plaintext_recipients().is_empty());
        }
        assert!(TlsRptConfig::default().plaintext_recipients().is_empty());
    }
}
