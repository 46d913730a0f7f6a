//! The trust anchors of a [`cert_store::CertStore`] (feature `cert-store`): the CA lists the
//! store enables for verification (seed "Managing Lists of Certificate Authorities"), as the
//! [`TrustAnchors`] PKIX verification takes.

use ::cert_store::CertStore;

use super::TrustAnchors;
use crate::Error;

impl TrustAnchors {
    /// The anchors of the lists `store` enables: the custom list's certificates (kept whole, so
    /// the structural checks of the RFC 5280 / CA/B Forum profiles apply to them), then
    /// Mozilla's list (the store's "system" list) as bare anchors, exactly as
    /// [`TrustAnchors::mozilla`]. A disabled list contributes nothing; the store refuses to
    /// disable both.
    ///
    /// Errors: [`Error::InvalidTrustAnchor`] for a custom certificate that cannot be an anchor
    /// (`index` in the custom list).
    pub fn from_cert_store(store: &CertStore) -> Result<Self, Error> {
        let status = store.ca_status();
        let mut anchors = if status.custom_enabled {
            Self::from_certificates(store.custom_ca_certs().iter().cloned())?
        } else {
            Self::empty()
        };
        if status.system_enabled {
            anchors.add_anchors(Self::mozilla().anchors().iter().cloned());
        }
        Ok(anchors)
    }
}

#[cfg(test)]
mod tests {
    use ::cert_store::{BadEntryPolicy, CaList, CertStore};

    use super::TrustAnchors;

    fn ca_pem(name: &str) -> String {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.self_signed(&key).unwrap().pem()
    }

    #[test]
    fn the_enabled_lists_become_the_anchors() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = CertStore::open(dir.path().join("store")).unwrap();
        let mozilla = TrustAnchors::mozilla().len();
        assert!(mozilla > 100, "{mozilla}");
        // the store's defaults: system list on, custom list off
        assert_eq!(
            TrustAnchors::from_cert_store(&store).unwrap().len(),
            mozilla
        );

        let pem = ca_pem("Custom CA 1") + &ca_pem("Custom CA 2");
        store
            .import_custom_ca(pem.as_bytes(), BadEntryPolicy::Reject)
            .unwrap();
        assert_eq!(
            TrustAnchors::from_cert_store(&store).unwrap().len(),
            mozilla
        );
        store.set_ca_enabled(CaList::Custom, true).unwrap();
        let both = TrustAnchors::from_cert_store(&store).unwrap();
        assert_eq!(both.len(), mozilla + 2);
        // custom certificates first, whole (structural checks known), then the bare anchors
        let custom =
            TrustAnchors::from_certificates(store.custom_ca_certs().iter().cloned()).unwrap();
        assert_eq!(both.anchors()[..2], custom.anchors()[..]);
        assert!(both.certificates[..2].iter().all(Option::is_some));
        assert!(both.certificates[2..].iter().all(Option::is_none));

        store.set_ca_enabled(CaList::System, false).unwrap();
        let only_custom = TrustAnchors::from_cert_store(&store).unwrap();
        assert_eq!(only_custom.anchors(), custom.anchors());
    }
}
