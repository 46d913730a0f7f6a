//! The destination-control configuration file (TOML).
//!
//! ```toml
//! [global]
//! client-certificate = "outbound"        # name of the certificate for all outgoing TLS
//! alert-on-required-tls-failure = true   # seed "Sending Alerts When a Required TLS Connection Fails"
//!
//! [default]
//! tls = "preferred"
//! dane = "opportunistic"
//!
//! [destinations."example.com"]
//! tls = "required-verify"
//!
//! [destinations.".example.org"]
//! tls = "preferred"
//! dane = "none"
//!
//! [destinations."broken-sts.example"]
//! mta_sts = "ignore"                     # "honor" (default): MTA-STS combines to the stricter
//! ```

use std::collections::BTreeMap;
use std::ops::Range;

use serde::Deserialize;
use toml::Spanned;

use super::mode::{ConfiguredDane, MtaStsSetting, TlsMode};
use super::table::{DestinationControls, DestinationControlsBuilder, DestinationEntry};
use crate::delivery::RequiredTlsAlerts;
use crate::error::{DestinationConfigErrorKind, Error};

/// Largest configuration accepted, in bytes.
pub const MAX_CONFIG_BYTES: usize = 4 << 20;
/// Most domain entries accepted.
pub const MAX_ENTRIES: usize = 100_000;

/// Settings that apply to all destinations.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
#[non_exhaustive]
pub struct GlobalSettings {
    /// The certificate presented on all outgoing TLS connections (a global setting, not per
    /// domain), by name; the application resolves the name (e.g. in its certificate store).
    #[serde(default)]
    pub client_certificate: Option<String>,
    /// Send an alert when a required TLS connection fails (TOML
    /// `alert-on-required-tls-failure = true`); see [`GlobalSettings::required_tls_alerts`].
    #[serde(default)]
    pub alert_on_required_tls_failure: bool,
}

impl GlobalSettings {
    /// The delivery machine's alert setting for `alert-on-required-tls-failure`, for
    /// [`DeliveryOptions::new`](crate::delivery::DeliveryOptions::new).
    pub fn required_tls_alerts(&self) -> RequiredTlsAlerts {
        if self.alert_on_required_tls_failure {
            RequiredTlsAlerts::Send
        } else {
            RequiredTlsAlerts::DoNotSend
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    global: GlobalSettings,
    #[serde(default)]
    default: Option<Spanned<RawEntry>>,
    #[serde(default)]
    destinations: BTreeMap<Spanned<String>, Spanned<RawEntry>>,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    #[serde(default)]
    tls: TlsMode,
    #[serde(default)]
    dane: ConfiguredDane,
    #[serde(default, alias = "mta-sts")]
    mta_sts: MtaStsSetting,
}

impl DestinationControls {
    /// Parses a configuration file's text. `file` names it in errors.
    ///
    /// Errors are [`Error::DestinationConfig`] with the file, line, column and offending text.
    ///
    /// ```
    /// use smtp_tls_policy::destination::{DestinationControls, DeliveryTls};
    /// let c = DestinationControls::from_toml("d.toml", "[destinations.\"a.example\"]\ntls = \"required\"\n").unwrap();
    /// assert_eq!(c.lookup("a.example").unwrap().tls, DeliveryTls::Required);
    /// let e = DestinationControls::from_toml("d.toml", "[default]\ntls = \"sometimes\"\n").unwrap_err();
    /// assert!(e.to_string().starts_with("d.toml:2:"), "{e}");
    /// ```
    pub fn from_toml(file: &str, text: &str) -> Result<Self, Error> {
        let err = |span: Range<usize>, kind| located(file, text, span, kind);
        if text.len() > MAX_CONFIG_BYTES {
            return Err(err(
                0..0,
                DestinationConfigErrorKind::TooLarge {
                    limit: MAX_CONFIG_BYTES,
                },
            ));
        }
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            err(
                e.span().unwrap_or(0..0),
                DestinationConfigErrorKind::Toml {
                    message: e.message().trim().to_owned(),
                },
            )
        })?;
        let mut builder: DestinationControlsBuilder = Self::builder().global(raw.global);
        if let Some(d) = raw.default {
            let span = d.span();
            let e = d.into_inner();
            builder = builder
                .default_entry(DestinationEntry::new(e.tls, e.dane).with_mta_sts(e.mta_sts))
                .map_err(|e| match e {
                    Error::DestinationConfig { kind, .. } => err(span.clone(), kind),
                    other => other,
                })?;
        }
        if raw.destinations.len() > MAX_ENTRIES {
            return Err(err(
                0..0,
                DestinationConfigErrorKind::TooManyEntries { limit: MAX_ENTRIES },
            ));
        }
        for (key, entry) in &raw.destinations {
            let e = *entry.get_ref();
            builder
                .insert(
                    key.get_ref(),
                    DestinationEntry::new(e.tls, e.dane).with_mta_sts(e.mta_sts),
                )
                .map_err(|kind| {
                    let span = match kind {
                        DestinationConfigErrorKind::DaneWithoutTls { .. } => entry.span(),
                        _ => key.span(),
                    };
                    err(span, kind)
                })?;
        }
        Ok(builder.build())
    }

    /// Reads and parses a configuration file.
    pub fn from_file(path: &std::path::Path) -> Result<Self, Error> {
        let name = path.display().to_string();
        let meta = std::fs::metadata(path).map_err(|e| io_err(&name, e))?;
        if meta.len() > MAX_CONFIG_BYTES as u64 {
            return Err(located(
                &name,
                "",
                0..0,
                DestinationConfigErrorKind::TooLarge {
                    limit: MAX_CONFIG_BYTES,
                },
            ));
        }
        let text = std::fs::read_to_string(path).map_err(|e| io_err(&name, e))?;
        Self::from_toml(&name, &text)
    }
}

fn io_err(file: &str, e: std::io::Error) -> Error {
    let _ = file;
    Error::Io {
        phase: "reading destination config",
        kind: crate::error::IoKind(e.kind()),
    }
}

/// Builds a located error: 1-based line and column of `span.start`, and the offending text.
fn located(file: &str, text: &str, span: Range<usize>, kind: DestinationConfigErrorKind) -> Error {
    let start = span.start.min(text.len());
    let end = span.end.clamp(start, text.len());
    let before = text.get(..start).unwrap_or_default();
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    let offending = text.get(start..end).unwrap_or_default();
    let offending = offending
        .lines()
        .next()
        .unwrap_or_default()
        .chars()
        .take(80)
        .collect();
    Error::DestinationConfig {
        file: file.to_owned(),
        line,
        column,
        text: offending,
        kind,
    }
}
