//! Lists of certificate authorities (seed: "Managing Lists of Certificate Authorities").
//!
//! - The **system list** is Mozilla's, through `webpki-roots` (trust anchors, for verification)
//!   and `webpki-root-certs` (the same list as whole certificates, for export): deterministic,
//!   offline and identical on every machine, like the list an appliance ships. It cannot be
//!   removed, only disabled.
//! - The **custom list** is imported from a PEM file. Bad entries are reported with their
//!   position; by default ([`BadEntryPolicy::Reject`]) the import is refused whole and the
//!   previous custom list stays; with [`BadEntryPolicy::SkipBad`] the good entries load and the
//!   bad ones are returned.
//! - Each list can be enabled or disabled; verification needs at least one enabled
//!   ([`Error::NoCaListEnabled`]).

use std::fmt;
use std::str::FromStr;

use rustls_pki_types::CertificateDer;

use crate::error::{Error, Result};
use crate::import::{BadEntry, BadEntryPolicy, certs_to_pem, parse_bundle};
use crate::store::CertStore;

/// Which list of certificate authorities.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CaList {
    /// The pre-installed list (Mozilla's).
    System,
    /// The user-defined list.
    Custom,
}

impl fmt::Display for CaList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::System => "system",
            Self::Custom => "custom",
        })
    }
}

impl FromStr for CaList {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "system" => Ok(Self::System),
            "custom" => Ok(Self::Custom),
            _ => Err(Error::InvalidName {
                name: s.into(),
                reason: "a CA list is 'system' or 'custom'",
            }),
        }
    }
}

/// The state of both lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct CaStatus {
    /// The system list is used for verification.
    pub system_enabled: bool,
    /// The custom list is used for verification.
    pub custom_enabled: bool,
    /// Number of certificates in the system list.
    pub system_count: usize,
    /// Number of certificates in the custom list.
    pub custom_count: usize,
}

/// The system list as certificates.
pub fn system_ca_certs() -> &'static [CertificateDer<'static>] {
    webpki_root_certs::TLS_SERVER_ROOT_CERTS
}

impl CertStore {
    /// Both lists' switches and sizes.
    pub fn ca_status(&self) -> CaStatus {
        CaStatus {
            system_enabled: self.settings.system_ca_enabled,
            custom_enabled: self.settings.custom_ca_enabled,
            system_count: webpki_roots::TLS_SERVER_ROOTS.len(),
            custom_count: self.custom_ca.len(),
        }
    }

    /// Enables or disables a list (seed: "Disabling the System Certificate Authority List").
    /// Disabling the last enabled list is refused with [`Error::NoCaListEnabled`].
    pub fn set_ca_enabled(&mut self, list: CaList, enabled: bool) -> Result<()> {
        let other_enabled = match list {
            CaList::System => self.settings.custom_ca_enabled,
            CaList::Custom => self.settings.system_ca_enabled,
        };
        if !enabled && !other_enabled {
            return Err(Error::NoCaListEnabled);
        }
        match list {
            CaList::System => self.settings.system_ca_enabled = enabled,
            CaList::Custom => self.settings.custom_ca_enabled = enabled,
        }
        self.save_settings()
    }

    /// Replaces the custom list with the certificates of a PEM (or DER) file (seed: "Importing
    /// a Custom Certificate Authority List"). Returns the entries skipped under
    /// [`BadEntryPolicy::SkipBad`]; under `Reject` any bad entry refuses the whole file.
    pub fn import_custom_ca(
        &mut self,
        input: &[u8],
        policy: BadEntryPolicy,
    ) -> Result<Vec<BadEntry>> {
        let bundle = parse_bundle(input, policy)?;
        if bundle.certs.is_empty() {
            return Err(Error::NoCertificate);
        }
        self.write_custom_ca(&certs_to_pem(&bundle.certs))?;
        self.custom_ca = bundle.certs;
        Ok(bundle.skipped)
    }

    /// The certificates of the custom list.
    pub fn custom_ca_certs(&self) -> &[CertificateDer<'static>] {
        &self.custom_ca
    }

    /// PEM text of a list (seed: "Exporting a Certificate Authorities List"); it can be edited
    /// and imported back as the custom list.
    pub fn export_ca(&self, list: CaList) -> String {
        match list {
            CaList::System => certs_to_pem(system_ca_certs()),
            CaList::Custom => certs_to_pem(&self.custom_ca),
        }
    }
}
