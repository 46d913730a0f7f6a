//! Private keys: the key types we generate and the formats we import.
//!
//! Seed, "Creating a Self-Signed Certificate": "Private Key Size ... Only 2048-bit and 1024-bit
//! are supported." We refuse RSA below 2048 bits (obsolete) and add RSA 3072/4096 and ECDSA
//! P-256/P-384. Every key is kept as PKCS#8 DER, whatever form it was imported in.

use std::fmt;
use std::str::FromStr;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_ASN1_SIGNING, ECDSA_P384_SHA384_ASN1_SIGNING, EcdsaKeyPair, RsaKeyPair,
};
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::error::{Error, Result};

/// Smallest RSA modulus we accept, in bits.
pub const MIN_RSA_BITS: usize = 2048;

/// Largest PEM or DER key input we read, in bytes.
pub const MAX_KEY_BYTES: usize = 64 * 1024;

/// Key type and size of a key to generate.
///
/// ```
/// use cert_store::KeySpec;
/// let spec: KeySpec = "rsa-3072".parse()?;
/// assert_eq!(spec, KeySpec::Rsa3072);
/// assert!(KeySpec::rsa(1024).is_err());
/// # Ok::<(), cert_store::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum KeySpec {
    /// ECDSA on NIST P-256, signed with SHA-256.
    #[default]
    EcP256,
    /// ECDSA on NIST P-384, signed with SHA-384.
    EcP384,
    /// RSA 2048 bits.
    Rsa2048,
    /// RSA 3072 bits.
    Rsa3072,
    /// RSA 4096 bits.
    Rsa4096,
}

impl KeySpec {
    /// Every key type, in the order of their names.
    pub const ALL: [Self; 5] = [
        Self::EcP256,
        Self::EcP384,
        Self::Rsa2048,
        Self::Rsa3072,
        Self::Rsa4096,
    ];

    /// The RSA key type of `bits` bits; below 2048 is refused with [`Error::RsaKeyTooSmall`].
    pub fn rsa(bits: usize) -> Result<Self> {
        match bits {
            2048 => Ok(Self::Rsa2048),
            3072 => Ok(Self::Rsa3072),
            4096 => Ok(Self::Rsa4096),
            b if b < MIN_RSA_BITS => Err(Error::RsaKeyTooSmall { bits: b }),
            b => Err(Error::UnknownKeyType {
                given: format!("rsa-{b}"),
            }),
        }
    }

    /// The name used on the command line and in `meta.toml`.
    pub fn name(self) -> &'static str {
        match self {
            Self::EcP256 => "ec-p256",
            Self::EcP384 => "ec-p384",
            Self::Rsa2048 => "rsa-2048",
            Self::Rsa3072 => "rsa-3072",
            Self::Rsa4096 => "rsa-4096",
        }
    }

    /// Generates a fresh key of this type.
    pub fn generate(self) -> Result<PrivateKey> {
        let gen_err = |_| Error::Generation(format!("{} key generation failed", self.name()));
        let pkcs8 = match self {
            Self::EcP256 | Self::EcP384 => {
                let alg = if self == Self::EcP256 {
                    &ECDSA_P256_SHA256_ASN1_SIGNING
                } else {
                    &ECDSA_P384_SHA384_ASN1_SIGNING
                };
                EcdsaKeyPair::generate(alg)
                    .and_then(|k| k.to_pkcs8v1())
                    .map_err(gen_err)?
                    .as_ref()
                    .to_vec()
            }
            Self::Rsa2048 | Self::Rsa3072 | Self::Rsa4096 => {
                let size = match self {
                    Self::Rsa2048 => KeySize::Rsa2048,
                    Self::Rsa3072 => KeySize::Rsa3072,
                    _ => KeySize::Rsa4096,
                };
                let kp = RsaKeyPair::generate(size).map_err(gen_err)?;
                AsDer::<aws_lc_rs::encoding::Pkcs8V1Der<'static>>::as_der(&kp)
                    .map_err(gen_err)?
                    .as_ref()
                    .to_vec()
            }
        };
        Ok(PrivateKey { pkcs8, kind: self })
    }
}

impl fmt::Display for KeySpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for KeySpec {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        if let Some(found) = Self::ALL.into_iter().find(|k| k.name() == s) {
            return Ok(found);
        }
        if let Some(bits) = s.strip_prefix("rsa-").and_then(|b| b.parse::<usize>().ok()) {
            return Self::rsa(bits);
        }
        Err(Error::UnknownKeyType { given: s.into() })
    }
}

/// A private key, held as PKCS#8 DER. `Debug` never shows the key material.
#[derive(Clone, PartialEq, Eq)]
pub struct PrivateKey {
    pkcs8: Vec<u8>,
    kind: KeySpec,
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrivateKey")
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

impl PrivateKey {
    /// Reads a key from PEM text (`PRIVATE KEY`, `EC PRIVATE KEY` or `RSA PRIVATE KEY`) or from
    /// DER bytes (PKCS#8, SEC1 or PKCS#1), and normalises it to PKCS#8.
    pub fn from_pem_or_der(input: &[u8]) -> Result<Self> {
        if input.len() > MAX_KEY_BYTES {
            return Err(Error::TooLarge {
                what: "private key",
                size: input.len(),
                limit: MAX_KEY_BYTES,
            });
        }
        let der = if looks_like_pem(input) {
            let mut found = None;
            for block in pem::parse_many(input).map_err(|_| Error::InvalidKey {
                reason: "malformed PEM",
            })? {
                let key = match block.tag() {
                    "PRIVATE KEY" => PrivateKeyDer::Pkcs8(block.into_contents().into()),
                    "EC PRIVATE KEY" => PrivateKeyDer::Sec1(block.into_contents().into()),
                    "RSA PRIVATE KEY" => PrivateKeyDer::Pkcs1(block.into_contents().into()),
                    "ENCRYPTED PRIVATE KEY" => {
                        return Err(Error::InvalidKey {
                            reason: "encrypted PEM keys are not supported; use PKCS#12",
                        });
                    }
                    _ => continue,
                };
                if found.replace(key).is_some() {
                    return Err(Error::InvalidKey {
                        reason: "more than one private key in the input",
                    });
                }
            }
            found.ok_or(Error::InvalidKey {
                reason: "no PRIVATE KEY block in the PEM text",
            })?
        } else {
            PrivateKeyDer::try_from(input).map_err(|_| Error::InvalidKey {
                reason: "not PKCS#8, SEC1 or PKCS#1 DER",
            })?
        };
        Self::from_der(&der)
    }

    /// Normalises a parsed key to PKCS#8, checking its type and size.
    pub fn from_der(der: &PrivateKeyDer<'_>) -> Result<Self> {
        let bad = |reason| Error::InvalidKey { reason };
        match der {
            PrivateKeyDer::Pkcs8(k) => Self::from_pkcs8(k.secret_pkcs8_der()),
            PrivateKeyDer::Pkcs1(k) => {
                let kp = RsaKeyPair::from_der(k.secret_pkcs1_der())
                    .map_err(|_| bad("PKCS#1 RSA key rejected"))?;
                let pkcs8 = AsDer::<aws_lc_rs::encoding::Pkcs8V1Der<'static>>::as_der(&kp)
                    .map_err(|_| bad("PKCS#1 RSA key rejected"))?;
                Self::from_pkcs8(pkcs8.as_ref())
            }
            PrivateKeyDer::Sec1(k) => {
                for alg in [
                    &ECDSA_P256_SHA256_ASN1_SIGNING,
                    &ECDSA_P384_SHA384_ASN1_SIGNING,
                ] {
                    if let Ok(kp) = EcdsaKeyPair::from_private_key_der(alg, k.secret_sec1_der()) {
                        let doc = kp.to_pkcs8v1().map_err(|_| bad("SEC1 key rejected"))?;
                        return Self::from_pkcs8(doc.as_ref());
                    }
                }
                Err(Error::UnsupportedKey {
                    detail: "SEC1 key on a curve other than P-256 or P-384",
                })
            }
            _ => Err(bad("unknown key encoding")),
        }
    }

    fn from_pkcs8(pkcs8: &[u8]) -> Result<Self> {
        if let Ok(kp) = RsaKeyPair::from_pkcs8(pkcs8) {
            let bits = kp.public_modulus_len() * 8;
            let kind = match bits {
                b if b < MIN_RSA_BITS => return Err(Error::RsaKeyTooSmall { bits: b }),
                2048 => KeySpec::Rsa2048,
                3072 => KeySpec::Rsa3072,
                4096 => KeySpec::Rsa4096,
                _ => {
                    return Err(Error::UnsupportedKey {
                        detail: "RSA modulus other than 2048, 3072 or 4096 bits",
                    });
                }
            };
            return Ok(Self {
                pkcs8: pkcs8.to_vec(),
                kind,
            });
        }
        if EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8).is_ok() {
            return Ok(Self {
                pkcs8: pkcs8.to_vec(),
                kind: KeySpec::EcP256,
            });
        }
        if EcdsaKeyPair::from_pkcs8(&ECDSA_P384_SHA384_ASN1_SIGNING, pkcs8).is_ok() {
            return Ok(Self {
                pkcs8: pkcs8.to_vec(),
                kind: KeySpec::EcP384,
            });
        }
        Err(Error::UnsupportedKey {
            detail: "PKCS#8 key that is neither RSA nor ECDSA P-256/P-384",
        })
    }

    /// The key type.
    pub fn kind(&self) -> KeySpec {
        self.kind
    }

    /// The PKCS#8 DER bytes (secret).
    pub fn pkcs8_der(&self) -> &[u8] {
        &self.pkcs8
    }

    /// The key as rustls takes it.
    pub fn to_rustls(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.pkcs8.clone()))
    }

    /// PEM text (`-----BEGIN PRIVATE KEY-----`).
    pub fn to_pem(&self) -> String {
        crate::import::pem_encode("PRIVATE KEY", &self.pkcs8)
    }

    /// The DER SubjectPublicKeyInfo of the public half, to match against a certificate.
    pub fn public_key_spki(&self) -> Result<Vec<u8>> {
        let provider = rustls::crypto::aws_lc_rs::default_provider();
        let signing = provider
            .key_provider
            .load_private_key(self.to_rustls())
            .map_err(|e| Error::Tls(e.to_string()))?;
        signing
            .public_key()
            .map(|spki| spki.as_ref().to_vec())
            .ok_or(Error::UnsupportedKey {
                detail: "public key not available",
            })
    }

    /// An rcgen key pair signing with `alg`.
    pub(crate) fn to_rcgen_with(
        &self,
        alg: &'static rcgen::SignatureAlgorithm,
    ) -> Result<rcgen::KeyPair> {
        rcgen::KeyPair::from_pkcs8_der_and_sign_algo(
            &PrivatePkcs8KeyDer::from(self.pkcs8.as_slice()),
            alg,
        )
        .map_err(|e| Error::Generation(e.to_string()))
    }
}

pub(crate) fn looks_like_pem(input: &[u8]) -> bool {
    input.windows(11).any(|w| w == b"-----BEGIN ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_small_rsa_is_refused() {
        for k in KeySpec::ALL {
            assert_eq!(k.name().parse::<KeySpec>(), Ok(k));
        }
        assert_eq!(
            "rsa-1024".parse::<KeySpec>(),
            Err(Error::RsaKeyTooSmall { bits: 1024 })
        );
        assert!(matches!(
            "dsa".parse::<KeySpec>(),
            Err(Error::UnknownKeyType { .. })
        ));
    }

    #[test]
    fn generated_keys_reload_from_pem() {
        for k in [KeySpec::EcP256, KeySpec::EcP384, KeySpec::Rsa2048] {
            let key = k.generate().unwrap();
            let back = PrivateKey::from_pem_or_der(key.to_pem().as_bytes()).unwrap();
            assert_eq!(back, key);
            assert_eq!(back.kind(), k);
            assert!(!key.public_key_spki().unwrap().is_empty());
            assert!(!format!("{key:?}").contains(&hex::encode(&key.pkcs8[..8])));
        }
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(PrivateKey::from_pem_or_der(b"hello").is_err());
        assert!(PrivateKey::from_pem_or_der(b"-----BEGIN PRIVATE KEY-----\nAAAA\n").is_err());
    }
}
