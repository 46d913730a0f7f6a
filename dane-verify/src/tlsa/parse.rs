//! Parsers: presentation text (RFC 6698 §2.2) and wire RDATA (RFC 6698 §2.1, via hickory-proto).

use std::str::FromStr;

use hickory_proto::rr::rdata::TLSA;
use hickory_proto::rr::{RData, RecordType};
use hickory_proto::serialize::binary::{BinDecoder, Restrict};

use super::record::TlsaRecord;
use crate::Error;

/// Longest presentation text accepted (RDATA is at most 65535 bytes: 3 fields + hex).
pub const MAX_TEXT_LEN: usize = 3 * 4 + 2 * 65532 + 4096;

impl FromStr for TlsaRecord {
    type Err = Error;

    /// Parses `U S M HEX` (RFC 6698 §2.2): three decimal octets, then hex in which whitespace is
    /// allowed, as in zone files. A parenthesised form `3 1 1 ( ab cd )` is accepted too.
    fn from_str(s: &str) -> Result<Self, Error> {
        if s.len() > MAX_TEXT_LEN {
            return Err(Error::Limit {
                what: "TLSA text length",
                max: MAX_TEXT_LEN,
                found: s.len(),
            });
        }
        let mut rest = s.trim_start();
        let mut field = |name: &'static str| -> Result<u8, Error> {
            let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            let (tok, tail) = rest.split_at(end);
            rest = tail.trim_start();
            if tok.is_empty() {
                return Err(Error::MissingField { field: name });
            }
            if !tok.bytes().all(|b| b.is_ascii_digit()) || tok.len() > 3 {
                return Err(bad_number(name, tok));
            }
            tok.parse::<u8>().map_err(|_| bad_number(name, tok))
        };
        let usage = field("usage")?;
        let selector = field("selector")?;
        let matching = field("matching type")?;
        let mut hex_text = rest.trim_end();
        if let Some(inner) = hex_text.strip_prefix('(') {
            hex_text = inner
                .strip_suffix(')')
                .ok_or(Error::BadHex { position: 0 })?;
        }
        let digits: Vec<u8> = hex_text
            .bytes()
            .filter(|b| !b.is_ascii_whitespace())
            .collect();
        if digits.is_empty() {
            return Err(Error::MissingField {
                field: "certificate association data",
            });
        }
        let data = decode_hex(&digits)?;
        Self::new(usage.into(), selector.into(), matching.into(), data)
    }
}

fn bad_number(field: &'static str, tok: &str) -> Error {
    Error::BadNumber {
        field,
        value: tok.chars().take(32).collect(),
    }
}

fn decode_hex(digits: &[u8]) -> Result<Vec<u8>, Error> {
    let nibble = |i: usize| -> Result<u8, Error> {
        let c = digits[i];
        (c as char)
            .to_digit(16)
            .map(|d| d as u8)
            .ok_or(Error::BadHex { position: i })
    };
    if digits.len() % 2 != 0 {
        // Report the first bad character if any, else the dangling digit.
        for i in 0..digits.len() {
            nibble(i)?;
        }
        return Err(Error::BadHex {
            position: digits.len() - 1,
        });
    }
    let mut out = Vec::with_capacity(digits.len() / 2);
    for i in (0..digits.len()).step_by(2) {
        out.push(nibble(i)? << 4 | nibble(i + 1)?);
    }
    Ok(out)
}

impl TlsaRecord {
    /// Parses TLSA RDATA in wire form (the whole slice is the RDATA) with hickory-proto's decoder.
    pub fn from_wire(rdata: &[u8]) -> Result<Self, Error> {
        let len = u16::try_from(rdata.len()).map_err(|_| Error::Limit {
            what: "TLSA RDATA length",
            max: usize::from(u16::MAX),
            found: rdata.len(),
        })?;
        Self::from_wire_with_len(rdata, len)
    }

    /// Parses TLSA RDATA of declared length `rdlength` (from the RR header) at the start of
    /// `buf`; bytes after it are [`Error::TrailingData`], a short buffer [`Error::Truncated`].
    pub fn from_wire_with_len(buf: &[u8], rdlength: u16) -> Result<Self, Error> {
        let len = usize::from(rdlength);
        if len < 3 || buf.len() < len {
            return Err(Error::Truncated {
                found: buf.len().min(len),
                needed: len.max(3),
            });
        }
        let mut decoder = BinDecoder::new(&buf[..len]);
        let rdata =
            RData::read(&mut decoder, RecordType::TLSA, Restrict::new(rdlength)).map_err(|_| {
                Error::Truncated {
                    found: buf.len(),
                    needed: len,
                }
            })?;
        let RData::TLSA(tlsa) = rdata else {
            return Err(Error::Truncated {
                found: buf.len(),
                needed: len,
            });
        };
        if buf.len() > len {
            return Err(Error::TrailingData {
                extra: buf.len() - len,
            });
        }
        Self::from_hickory(&tlsa)
    }

    /// Converts hickory-proto's TLSA RDATA, checking digest lengths.
    fn from_hickory(tlsa: &TLSA) -> Result<Self, Error> {
        Self::new(
            u8::from(tlsa.cert_usage).into(),
            u8::from(tlsa.selector).into(),
            u8::from(tlsa.matching).into(),
            tlsa.cert_data.clone(),
        )
    }
}

/// hickory-proto's TLSA RDATA (as a hickory resolver returns it), checking digest lengths; with
/// the `resolver` feature, so that hickory's types stay out of the default public API.
#[cfg(feature = "resolver")]
impl TryFrom<&TLSA> for TlsaRecord {
    type Error = Error;

    fn try_from(tlsa: &TLSA) -> Result<Self, Error> {
        Self::from_hickory(tlsa)
    }
}
