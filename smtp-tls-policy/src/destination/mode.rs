//! The TLS modes and DANE settings of a destination-control entry.

use dane_verify::DaneSetting;
use serde::Deserialize;

/// The TLS setting of a destination-control entry, exactly the seed's Table 2.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum TlsMode {
    /// "Default": inherit the default entry's setting.
    #[default]
    Default,
    /// 1. No: TLS is not negotiated.
    No,
    /// 2. Preferred: TLS is negotiated when offered; no certificate verification.
    Preferred,
    /// 3. Required: TLS must be negotiated; the certificate is not verified.
    Required,
    /// 4. Preferred (Verify): TLS when offered; the certificate is verified and a failure is
    ///    reported, but mail is still delivered over TLS.
    PreferredVerify,
    /// 5. Required (Verify): TLS and a verified certificate are required.
    RequiredVerify,
    /// 6. Required - Verify Hosted Domains: as Required (Verify), with the stricter identity
    ///    rules (subjectAltName dNSName first; CN only when no dNSName is present).
    RequiredVerifyHostedDomains,
}

impl TlsMode {
    /// The setting with `Default` resolved against `default`.
    pub fn resolve(self, default: DeliveryTls) -> DeliveryTls {
        match self {
            Self::Default => default,
            Self::No => DeliveryTls::No,
            Self::Preferred => DeliveryTls::Preferred,
            Self::Required => DeliveryTls::Required,
            Self::PreferredVerify => DeliveryTls::PreferredVerify,
            Self::RequiredVerify => DeliveryTls::RequiredVerify,
            Self::RequiredVerifyHostedDomains => DeliveryTls::RequiredVerifyHostedDomains,
        }
    }
}

/// An effective TLS setting (Table 2 without "Default").
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DeliveryTls {
    /// No TLS (the seed's default for the default entry).
    #[default]
    No,
    /// Preferred.
    Preferred,
    /// Required.
    Required,
    /// Preferred (Verify).
    PreferredVerify,
    /// Required (Verify).
    RequiredVerify,
    /// Required - Verify Hosted Domains.
    RequiredVerifyHostedDomains,
}

impl DeliveryTls {
    /// The name used in configuration files.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::No => "no",
            Self::Preferred => "preferred",
            Self::Required => "required",
            Self::PreferredVerify => "preferred-verify",
            Self::RequiredVerify => "required-verify",
            Self::RequiredVerifyHostedDomains => "required-verify-hosted-domains",
        }
    }

    /// Parses a configuration name (also accepted by the CLI's `--mode`).
    pub fn from_name(name: &str) -> Option<Self> {
        [
            Self::No,
            Self::Preferred,
            Self::Required,
            Self::PreferredVerify,
            Self::RequiredVerify,
            Self::RequiredVerifyHostedDomains,
        ]
        .into_iter()
        .find(|m| m.as_str() == name)
    }

    /// Whether TLS is mandatory: the message is never sent in plaintext.
    pub fn is_required(self) -> bool {
        matches!(
            self,
            Self::Required | Self::RequiredVerify | Self::RequiredVerifyHostedDomains
        )
    }

    /// Whether the certificate is verified (and the result acted on or reported).
    pub fn verifies(self) -> bool {
        matches!(
            self,
            Self::PreferredVerify | Self::RequiredVerify | Self::RequiredVerifyHostedDomains
        )
    }
}

/// The DANE setting as configured in a destination-control entry (seed "Enabling TLS for
/// Delivery with DANE Support"); [`ConfiguredDane::resolve`] gives the effective
/// [`DaneSetting`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum ConfiguredDane {
    /// Inherit the default entry's setting.
    #[default]
    Default,
    /// DANE is not used.
    None,
    /// DANE is used when the destination publishes usable TLSA records (RFC 7672 §2.2).
    Opportunistic,
    /// DANE is required: without usable TLSA records no connection is made.
    Mandatory,
}

impl ConfiguredDane {
    /// The setting with `Default` resolved against `default`.
    pub fn resolve(self, default: DaneSetting) -> DaneSetting {
        match self {
            Self::Default => default,
            Self::None => DaneSetting::None,
            Self::Opportunistic => DaneSetting::Opportunistic,
            Self::Mandatory => DaneSetting::Mandatory,
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Default => "default",
            Self::None => "none",
            Self::Opportunistic => "opportunistic",
            Self::Mandatory => "mandatory",
        }
    }
}

/// Whether remote MTA-STS policies (RFC 8461) apply to a destination: the TOML key `mta_sts`
/// of a destination-control entry (`"honor"`, the default, or `"ignore"`). `ignore` is for an
/// operator working around a receiver's broken policy: the hop plan then drops MTA-STS for the
/// domain and its explanation says so ("mta-sts ignored by destination control ENTRY").
///
/// ```
/// use smtp_tls_policy::destination::{DestinationControls, MtaStsSetting};
/// let toml = "[destinations.\"broken.example\"]\nmta_sts = \"ignore\"\n";
/// let controls = DestinationControls::from_toml("d.toml", toml)?;
/// assert_eq!(controls.lookup("broken.example")?.mta_sts, MtaStsSetting::Ignore);
/// assert_eq!(controls.lookup("other.example")?.mta_sts, MtaStsSetting::Honor);
/// let e = DestinationControls::from_toml("d.toml", "[default]\nmta_sts = \"maybe\"\n").unwrap_err();
/// assert!(e.to_string().starts_with("d.toml:2:"), "{e}");
/// # Ok::<(), smtp_tls_policy::Error>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum MtaStsSetting {
    /// Inherit the default entry's setting (`honor` when the default entry says nothing).
    #[default]
    Default,
    /// Apply the recipient domain's MTA-STS policy, combined with the local setting to the
    /// stricter requirement.
    Honor,
    /// Ignore the recipient domain's MTA-STS policy.
    Ignore,
}

impl MtaStsSetting {
    /// The setting with `Default` resolved against `default` (itself `Honor` when `Default`).
    pub fn resolve(self, default: Self) -> Self {
        match (self, default) {
            (Self::Default, Self::Default) => Self::Honor,
            (Self::Default, d) => d,
            (s, _) => s,
        }
    }

    /// `default`, `honor` or `ignore`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Default => "default",
            Self::Honor => "honor",
            Self::Ignore => "ignore",
        }
    }
}
