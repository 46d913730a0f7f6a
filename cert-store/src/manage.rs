//! Store operations from the seed's "Working with Certificates": create, upload the CA-signed
//! certificate, import and export, list, expiry, and assignment to listeners.

use rustls_pki_types::CertificateDer;
use time::OffsetDateTime;

use crate::error::{Error, Result};
use crate::import::{BadEntryPolicy, parse_bundle};
use crate::info::CertInfo;
use crate::key::PrivateKey;
use crate::pkcs12::{Identity, check_key_matches, export_pkcs12, import_pkcs12};
use crate::self_signed::{SelfSignedRequest, create_self_signed};
use crate::store::{CertStore, Origin, StoredCert};
use crate::subject::{FqdnCheck, check_fqdn_names};

/// One line of the certificate list.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ListedCert {
    /// The certificate's name.
    pub name: String,
    /// How it came here.
    pub origin: Origin,
    /// The leaf's details, days left included.
    pub info: CertInfo,
    /// Number of intermediates served after the leaf.
    pub intermediates: usize,
    /// Listeners it is assigned to.
    pub listeners: Vec<String>,
    /// HTTPS listeners (MTA-STS policy host) it is assigned to.
    pub https_listeners: Vec<String>,
    /// Assigned to all outgoing TLS connections.
    pub outgoing: bool,
}

impl CertStore {
    /// Creates a self-signed certificate and CSR under `name` (seed: "Creating a Self-Signed
    /// Certificate").
    pub fn create_self_signed(&mut self, name: &str, req: &SelfSignedRequest) -> Result<CertInfo> {
        self.ensure_new_name(name)?;
        let now = OffsetDateTime::now_utc();
        let made = create_self_signed(req, now)?;
        let leaf = CertificateDer::from(made.cert_der);
        let info = CertInfo::from_cert(&leaf, now)?;
        self.write_entry(StoredCert {
            name: name.into(),
            chain: vec![leaf],
            key: made.key,
            csr_pem: Some(made.csr_pem),
            origin: Origin::SelfSigned,
        })?;
        Ok(info)
    }

    /// The CSR (PEM) of a certificate created here.
    pub fn csr_pem(&self, name: &str) -> Result<String> {
        self.get(name)?
            .csr_pem
            .ok_or_else(|| Error::NoCsr { name: name.into() })
    }

    /// Replaces the certificate of `name` with the CA-signed one (seed: "Uploading a
    /// Certificate Signed by a Certificate Authority"). `cert` may hold the leaf followed by
    /// intermediates; `intermediates` are more files of intermediates. The leaf must belong to
    /// the stored key, else [`Error::KeyMismatch`] and nothing changes.
    pub fn upload_signed(
        &mut self,
        name: &str,
        cert: &[u8],
        intermediates: &[&[u8]],
    ) -> Result<CertInfo> {
        if name == crate::demo::DEMO_NAME {
            return Err(Error::DemoReadOnly {
                name: crate::demo::DEMO_NAME,
            });
        }
        let mut entry = self.get(name)?;
        let mut chain = parse_bundle(cert, BadEntryPolicy::Reject)?.certs;
        for file in intermediates {
            chain.extend(parse_bundle(file, BadEntryPolicy::Reject)?.certs);
        }
        check_key_matches(&entry.key, &chain[0], name)?;
        let info = CertInfo::from_cert(&chain[0], OffsetDateTime::now_utc())?;
        entry.chain = chain;
        entry.origin = Origin::CaSigned;
        self.write_entry(entry)?;
        Ok(info)
    }

    /// Imports a certificate chain (PEM or DER) and its key (PKCS#8, SEC1 or PKCS#1; PEM or
    /// DER) under `name`.
    pub fn import_pem(
        &mut self,
        name: &str,
        certs: &[u8],
        key: &[u8],
        fqdn: FqdnCheck,
    ) -> Result<CertInfo> {
        self.ensure_new_name(name)?;
        let chain = parse_bundle(certs, BadEntryPolicy::Reject)?.certs;
        let key = PrivateKey::from_pem_or_der(key)?;
        self.import_identity(
            name,
            Identity::new(key, chain, name)?,
            fqdn,
            Origin::Imported,
        )
    }

    /// Imports a PKCS#12 file under `name` (seed: "Importing a Certificate").
    pub fn import_pkcs12(
        &mut self,
        name: &str,
        data: &[u8],
        passphrase: &str,
        fqdn: FqdnCheck,
    ) -> Result<CertInfo> {
        self.ensure_new_name(name)?;
        let identity = import_pkcs12(data, passphrase, name)?;
        self.import_identity(name, identity, fqdn, Origin::Pkcs12)
    }

    fn import_identity(
        &mut self,
        name: &str,
        id: Identity,
        fqdn: FqdnCheck,
        origin: Origin,
    ) -> Result<CertInfo> {
        let info = CertInfo::from_cert(&id.chain[0], OffsetDateTime::now_utc())?;
        // Seed, "Importing a Certificate" step 7: the CN, the SAN DNS names, or both.
        let cn = info.common_names.first().map_or("", String::as_str);
        check_fqdn_names(cn, info.dns_names.iter().map(String::as_str), fqdn)?;
        self.write_entry(StoredCert {
            name: name.into(),
            chain: id.chain,
            key: id.key,
            csr_pem: None,
            origin,
        })?;
        Ok(info)
    }

    /// Exports `name` with its chain as a PKCS#12 file (seed: "Exporting a Certificate").
    pub fn export_pkcs12(&self, name: &str, passphrase: &str) -> Result<Vec<u8>> {
        let c = self.get(name)?;
        let id = Identity {
            key: c.key,
            chain: c.chain,
        };
        export_pkcs12(&id, passphrase, name)
    }

    /// Every certificate with days left at `now`, the demonstration certificate first.
    pub fn list(&self, now: OffsetDateTime) -> Result<Vec<ListedCert>> {
        let mut out = Vec::new();
        for name in self.names() {
            let c = if name == crate::demo::DEMO_NAME {
                crate::demo::demo_cert_quiet()?
            } else {
                self.get(&name)?
            };
            out.push(ListedCert {
                info: CertInfo::from_cert(&c.chain[0], now)?,
                intermediates: c.chain.len() - 1,
                listeners: self
                    .settings
                    .listeners
                    .iter()
                    .filter(|(_, n)| **n == name)
                    .map(|(l, _)| l.clone())
                    .collect(),
                https_listeners: self
                    .settings
                    .https_listeners
                    .iter()
                    .filter(|(_, n)| **n == name)
                    .map(|(l, _)| l.clone())
                    .collect(),
                outgoing: self.settings.outgoing.as_deref() == Some(name.as_str()),
                origin: c.origin,
                name,
            });
        }
        Ok(out)
    }

    /// Certificates that expire within `days` days of `now` (or have expired).
    pub fn expiring_within(&self, days: u32, now: OffsetDateTime) -> Result<Vec<ListedCert>> {
        Ok(self
            .list(now)?
            .into_iter()
            .filter(|c| c.info.expires_within(days))
            .collect())
    }

    /// Assigns certificate `name` to `listener` (seed: "use the certificate with a public or
    /// private listener").
    pub fn assign_listener(&mut self, listener: &str, name: &str) -> Result<()> {
        self.get_quiet(name)?;
        self.settings
            .listeners
            .insert(listener.to_string(), name.to_string());
        self.save_settings()
    }

    /// Assigns certificate `name` to the HTTPS listener `listener` (the relay's MTA-STS policy
    /// host; seed: "Enabling a Certificate for HTTPS").
    pub fn assign_https_listener(&mut self, listener: &str, name: &str) -> Result<()> {
        self.get_quiet(name)?;
        self.settings
            .https_listeners
            .insert(listener.to_string(), name.to_string());
        self.save_settings()
    }

    /// The certificate assigned to the HTTPS listener `listener`.
    pub fn https_listener_certificate(&self, listener: &str) -> Option<&str> {
        self.settings
            .https_listeners
            .get(listener)
            .map(String::as_str)
    }

    /// Assigns certificate `name` to "all outgoing TLS connections" (the client certificate
    /// presented when delivering), or clears it with `None`.
    pub fn assign_outgoing(&mut self, name: Option<&str>) -> Result<()> {
        if let Some(n) = name {
            self.get_quiet(n)?;
        }
        self.settings.outgoing = name.map(str::to_string);
        self.save_settings()
    }

    /// The certificate assigned to `listener`.
    pub fn listener_certificate(&self, listener: &str) -> Option<&str> {
        self.settings.listeners.get(listener).map(String::as_str)
    }

    /// The certificate for all outgoing TLS connections.
    pub fn outgoing_certificate(&self) -> Option<&str> {
        self.settings.outgoing.as_deref()
    }

    fn get_quiet(&self, name: &str) -> Result<()> {
        if name == crate::demo::DEMO_NAME || self.certs.contains_key(name) {
            Ok(())
        } else {
            Err(Error::UnknownCertificate { name: name.into() })
        }
    }
}
