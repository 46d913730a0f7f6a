//! TXT lookups with their DNSSEC status: `_mta-sts.DOMAIN` (MTA-STS, RFC 8461 §3.1) and
//! `_smtp._tls.DOMAIN` (TLS-RPT, RFC 8460 §3), through the same backends, cache and
//! [`ValidationState`](super::ValidationState) masking as the TLSA lookups.

use hickory_resolver::proto::rr::{RData, RecordType};

use super::backend::Answer;
use super::{DaneResolver, parse_name};
use crate::policy::{TxtLookup, TxtRecord};
use crate::{DnssecStatus, Error};

impl DaneResolver {
    /// The TXT RRset at `name`, each record's character-strings kept apart.
    ///
    /// Statuses follow the other lookups: `Indeterminate` (never `Insecure`) until a probe has
    /// proven validation; bogus data is [`TxtLookup::Bogus`] (in-process validation) or
    /// [`TxtLookup::Failed`] with `ServFail` (a validating resolver trusted for its AD bit
    /// answers SERVFAIL), never "no record". Bounded: more than [`Limits::max_txt_records`]
    /// records, or more than [`Limits::max_txt_bytes`] octets of character-strings over the
    /// RRset, are [`TxtLookup::TooLarge`] (an answer: not exactly one record), never truncated
    /// and never a failed lookup.
    ///
    /// [`Limits::max_txt_records`]: super::Limits::max_txt_records
    /// [`Limits::max_txt_bytes`]: super::Limits::max_txt_bytes
    pub async fn txt(&self, name: &str) -> Result<TxtLookup, Error> {
        let qname = parse_name(name)?;
        Ok(match self.query(&qname, RecordType::TXT).await {
            Answer::Records {
                status: DnssecStatus::Bogus,
                ..
            }
            | Answer::NoRecords {
                status: DnssecStatus::Bogus,
                ..
            }
            | Answer::Failed {
                status: DnssecStatus::Bogus,
                ..
            } => TxtLookup::Bogus,
            Answer::Records {
                records, status, ..
            } => {
                // only the RRset at the end of a CNAME chain: the chain's own records are not TXT
                let txt: Vec<_> = records
                    .iter()
                    .filter_map(|r| match &r.data {
                        RData::TXT(t) => Some(t),
                        _ => None,
                    })
                    .collect();
                let bytes: usize = txt
                    .iter()
                    .flat_map(|t| t.txt_data.iter())
                    .map(|s| s.len())
                    .sum();
                if txt.len() > self.limits.max_txt_records || bytes > self.limits.max_txt_bytes {
                    tracing::warn!(%qname, count = txt.len(), bytes, "TXT RRset over the limits");
                    return Ok(TxtLookup::TooLarge {
                        records: txt.len(),
                        bytes,
                        status,
                    });
                }
                let records = txt
                    .into_iter()
                    .map(|t| TxtRecord::new(t.txt_data.iter().map(|s| s.to_vec()).collect()))
                    .collect();
                TxtLookup::Found { records, status }
            }
            Answer::NoRecords { status, .. } => TxtLookup::NotFound { status },
            Answer::Failed { failure, .. } => TxtLookup::Failed(failure),
        })
    }
}
