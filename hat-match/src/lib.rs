//! Host Access Table (HAT): ordered sender groups matched to mail flow policies, sans-IO.
//!
//! An administrator lists **sender groups**, each with an **order**, a list of **sender
//! entries** and the name of a **mail flow policy** (seed "Enabling TLS on a Listener's HAT").
//! A connecting client is matched against the groups in order; the first group with a matching
//! entry wins, unless its policy's behavior is `continue` (then the match is recorded and
//! evaluation goes on); a final `ALL` group catches the rest. If no group matches, the verdict
//! is [`HatOutcome::NoSenderGroupMatched`], which a server treats as `reject`.
//!
//! # Sender entry syntax (AsyncOS style)
//!
//! | Entry                          | Matches                                                  |
//! |--------------------------------|----------------------------------------------------------|
//! | `10.1.1.1`, `2001:db8::1`      | that address                                             |
//! | `208.90.57.0/26`, `2001:db8::/32` | the CIDR block (host bits must be zero)               |
//! | `10.1.1.10-20`                 | `10.1.1.10` to `10.1.1.20` (range in the last octet)     |
//! | `10.1.1.10-10.1.2.20`, `2001:db8::1-2001:db8::ff` | the inclusive range                   |
//! | `10.2.3.`, `10.2.`, `10.`      | every address starting with those octets                 |
//! | `mail.example.com`             | a forward-confirmed PTR name equal to it                 |
//! | `.example.com`                 | a forward-confirmed PTR name *below* `example.com` (not `example.com` itself) |
//! | `dnslist[zone.example]`        | the client's reversed-IP query in that zone answered     |
//! | `ALL`                          | every client                                             |
//!
//! Host names match **only forward-confirmed PTR names**: a PTR name counts only if one of the
//! addresses its forward A/AAAA lookup returned is the client's address (otherwise anyone who
//! controls their own PTR record could claim to be `mxnat3.res.cisco.com`). Names compare
//! case-insensitively, ignoring one trailing dot, as IDNA A-labels ([`normalize_name`]).
//! IPv4-mapped IPv6 clients (`::ffff:192.0.2.1`) are matched as IPv4.
//!
//! ```
//! use hat_match::{EntryKind, SenderEntry};
//! for (text, ok) in [
//!     ("10.1.1.1", true), ("2001:db8::1", true), ("208.90.57.0/26", true),
//!     ("10.1.1.10-20", true), ("10.1.1.10-10.1.2.20", true), ("2001:db8::1-2001:db8::ff", true),
//!     ("10.2.3.", true), ("10.2.", true), ("mail.example.com", true), (".example.com", true),
//!     ("dnslist[bl.example]", true), ("ALL", true),
//!     ("10.1.1.300", false), ("10.1.1.20-10", false), ("2001:db8::/129", false), ("a..b", false),
//! ] {
//!     assert_eq!(text.parse::<SenderEntry>().is_ok(), ok, "{text}");
//! }
//! ```
//!
//! # Matching the CRES scenario (CRES note, "Solution" step 4)
//!
//! ```
//! use hat_match::{Facts, HostAccessTable, ListenerTls};
//! let table = HostAccessTable::from_toml("hat.toml", r#"
//! [[mail_flow_policy]]
//! name = "TLS_REQUIRED"
//! behavior = "accept"
//! tls = "required"
//!
//! [[mail_flow_policy]]
//! name = "ACCEPTED"
//! behavior = "accept"
//! tls = "preferred"
//!
//! [[sender_group]]
//! name = "CRES"
//! order = 1
//! policy = "TLS_REQUIRED"
//! senders = [".res.cisco.com", ".cres.iphmx.com", "208.90.57.0/26", "204.15.81.0/26"]
//!
//! [[sender_group]]
//! name = "ALL"
//! order = 99
//! policy = "ACCEPTED"
//! senders = ["ALL"]
//! "#)?;
//!
//! // Before any lookup: the CIDR decides, no DNS work needed.
//! assert!(table.plan("208.90.57.32".parse()?).address_decides());
//! // Another address: a PTR name could still put it in CRES.
//! assert!(table.plan("184.94.241.96".parse()?).needs_ptr());
//!
//! let mut facts = Facts::new("184.94.241.96".parse()?);
//! facts.add_ptr("mxnat3.res.cisco.com", ["184.94.241.96".parse()?])?;
//! let verdict = table.matches(&facts);
//! assert_eq!(verdict.sender_group(), Some("CRES"));
//! assert_eq!(verdict.matched_entry().map(|e| e.as_str()), Some(".res.cisco.com"));
//! assert_eq!(verdict.tls(), Some(ListenerTls::Required));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The table is validated and indexed once ([`HostAccessTable::new`], [`HostAccessTable::from_file`]),
//! then immutable: share it behind an `Arc`. `reference` (feature `reference`) holds the
//! linear-scan matcher the index is tested against. Gathering [`Facts`] (PTR lookup, forward confirmation, DNS-list
//! queries) is the caller's I/O; [`HostAccessTable::plan`] says which lookups are worth doing.
//! The optional feature `resolver` adds `resolver::HatResolver`, a thin hickory-resolver
//! adapter that makes exactly those lookups (concurrently, bounded, under one deadline), runs
//! the matcher and reports every lookup made, skipped or failed.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod config;
mod entry;
mod error;
mod facts;
mod index;
mod name;
mod policy;
#[cfg(feature = "reference")]
pub mod reference;
#[cfg(feature = "resolver")]
pub mod resolver;
mod segments;
mod table;
mod verdict;

pub use config::MAX_CONFIG_BYTES;
pub use entry::{EntryKind, MAX_ENTRY_LEN, SenderEntry};
pub use error::{BannerProblem, Error, Location, NameProblem};
pub use facts::{Facts, MAX_DNSLIST_ZONES, MAX_FORWARD_ADDRESSES, MAX_PTR_NAMES, PtrName};
pub use name::normalize_name;
pub use policy::{Behavior, Limits, ListenerTls, MAX_BANNER_LEN, MAX_NAME_LEN, MailFlowPolicy};
pub use table::{HostAccessTable, MAX_ENTRIES, MAX_GROUPS, MAX_POLICIES, SenderGroup};
pub use verdict::{
    ContinuedIter, ContinuedMatches, Fact, GroupMatch, HatOutcome, HatVerdict, LookupPlan,
};
