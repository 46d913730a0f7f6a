//! The TLSA records to publish for a stored certificate (RFC 7672 section 3.1): `3 1 1` for the
//! certificate's own key and, when the chain holds its issuing CA, `2 1 1` for the CA's key.
//! The digests come from dane-verify, the crate that also checks them.

pub use dane_verify::TlsaRecord;

use crate::error::{Error, Result};
use crate::store::CertStore;

impl CertStore {
    /// TLSA records for certificate `name`: `3 1 1 SHA-256(leaf SPKI)` and, when an
    /// intermediate is stored with it, `2 1 1 SHA-256(issuer SPKI)`.
    /// Render them with [`TlsaRecord::to_rr_line`], e.g. `_25._tcp.mx.example.com. IN TLSA 3 1 1 ...`.
    pub fn tlsa_records(&self, name: &str) -> Result<Vec<TlsaRecord>> {
        let c = self.get(name)?;
        dane_verify::server_tlsa_records(&c.chain[0], c.chain.get(1)).map_err(|e| Error::Tlsa {
            reason: e.to_string(),
        })
    }
}
