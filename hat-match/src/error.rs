//! The crate's one error type.

use std::path::PathBuf;

/// Why a host name (an entry, a DNS-list zone or a PTR name) was refused.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameProblem {
    /// The name is empty (or only a dot).
    Empty,
    /// IDNA (UTS #46) processing refused the name.
    Idna,
    /// A label is empty (two dots in a row, or a leading dot where none is allowed).
    EmptyLabel,
    /// A label is longer than 63 octets (RFC 1035 §2.3.4).
    LabelTooLong,
    /// The whole name is longer than 253 octets (RFC 1035 §2.3.4).
    NameTooLong,
    /// A character other than a letter, digit, hyphen or underscore (RFC 1123 §2.1).
    BadCharacter,
    /// A label starts or ends with a hyphen (RFC 1123 §2.1).
    HyphenAtLabelEdge,
}

impl std::fmt::Display for NameProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Empty => "the name is empty",
            Self::Idna => "IDNA processing refused it",
            Self::EmptyLabel => "it has an empty label",
            Self::LabelTooLong => "a label is longer than 63 octets",
            Self::NameTooLong => "the name is longer than 253 octets",
            Self::BadCharacter => "it holds a character other than letters, digits, '-' or '_'",
            Self::HyphenAtLabelEdge => "a label starts or ends with '-'",
        })
    }
}

/// Why a banner text was refused.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BannerProblem {
    /// CR, LF or another control character: it would inject SMTP reply lines (RFC 5321 §4.2).
    ControlCharacter,
    /// Longer than [`crate::MAX_BANNER_LEN`] octets (RFC 5321 §4.5.3.1.5 allows 512 per reply line).
    TooLong,
}

impl std::fmt::Display for BannerProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::ControlCharacter => "it holds a control character (CR, LF, ...)",
            Self::TooLong => "it is too long for an SMTP reply line",
        })
    }
}

/// Where in a configuration file an error was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The configuration file (as given to the loader).
    pub file: PathBuf,
    /// 1-based line number.
    pub line: usize,
    /// 1-based column (in characters).
    pub column: usize,
    /// The offending text, as written in the file (shortened when very long).
    pub text: String,
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)
    }
}

/// Everything that can go wrong in this crate.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A sender entry is empty.
    #[error("empty sender entry")]
    EmptyEntry,
    /// A sender entry is longer than [`crate::MAX_ENTRY_LEN`].
    #[error("sender entry is {len} octets long, the limit is {max}")]
    EntryTooLong {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A malformed IPv4 address, prefix or range (e.g. `10.1.1.300`).
    #[error("`{text}` is not a valid IPv4 address, prefix or range")]
    InvalidIpv4 {
        /// The entry.
        text: String,
    },
    /// A malformed IPv6 address, CIDR or range.
    #[error("`{text}` is not a valid IPv6 address, CIDR or range")]
    InvalidIpv6 {
        /// The entry.
        text: String,
    },
    /// A CIDR prefix length out of range for its family (e.g. `2001:db8::/129`).
    #[error("`{text}`: prefix length {len} is out of range (at most {max})")]
    PrefixLength {
        /// The entry.
        text: String,
        /// The prefix length written.
        len: u32,
        /// The family's maximum (32 or 128).
        max: u8,
    },
    /// A CIDR with bits set after the prefix (`10.1.1.5/24`): ambiguous, write the network.
    #[error("`{text}` has host bits set; did you mean `{network}`?")]
    CidrHostBits {
        /// The entry.
        text: String,
        /// The network it probably meant.
        network: String,
    },
    /// A range whose end is below its start (e.g. `10.1.1.20-10`).
    #[error("`{text}`: the range ends before it starts")]
    ReversedRange {
        /// The entry.
        text: String,
    },
    /// An IPv4-mapped IPv6 entry (`::ffff:10.0.0.1`): clients are matched as IPv4, write that.
    #[error("`{text}` is an IPv4-mapped IPv6 address; write the IPv4 form")]
    Ipv4Mapped {
        /// The entry.
        text: String,
    },
    /// A host name, suffix, DNS-list zone or PTR name that is not a valid DNS name.
    #[error("`{text}` is not a valid host name: {problem}")]
    InvalidName {
        /// The name as written.
        text: String,
        /// What is wrong with it.
        problem: NameProblem,
    },
    /// A `dnslist[...]` entry that is not closed or has trailing text.
    #[error("`{text}` is not a valid `dnslist[zone]` entry")]
    InvalidDnsList {
        /// The entry.
        text: String,
    },
    /// A banner text that cannot be sent safely.
    #[error("banner of mail flow policy `{policy}` refused: {problem}")]
    InvalidBanner {
        /// The policy.
        policy: String,
        /// What is wrong with it.
        problem: BannerProblem,
    },
    /// A mail flow policy or sender group name is empty, too long or holds control characters.
    #[error("`{name}` is not a valid name (1 to 128 characters, no control characters)")]
    InvalidIdentifier {
        /// The name as written.
        name: String,
    },
    /// A sender group names a mail flow policy that is not defined.
    #[error("sender group `{group}` uses mail flow policy `{policy}`, which is not defined")]
    UnknownPolicy {
        /// The group.
        group: String,
        /// The policy name it gave.
        policy: String,
    },
    /// Two mail flow policies with the same name.
    #[error("mail flow policy `{name}` is defined twice")]
    DuplicatePolicy {
        /// The name.
        name: String,
    },
    /// Two sender groups with the same name.
    #[error("sender group `{name}` is defined twice")]
    DuplicateGroup {
        /// The name.
        name: String,
    },
    /// Two sender groups with the same order.
    #[error("sender groups `{first}` and `{second}` both have order {order}")]
    DuplicateOrder {
        /// The order.
        order: u32,
        /// The group defined first.
        first: String,
        /// The group defined second.
        second: String,
    },
    /// A sender group without sender entries.
    #[error("sender group `{group}` has no sender entries")]
    EmptyGroup {
        /// The group.
        group: String,
    },
    /// More sender groups than [`crate::MAX_GROUPS`].
    #[error("more than {max} sender groups")]
    TooManyGroups {
        /// The limit.
        max: usize,
    },
    /// More sender entries (in all groups) than [`crate::MAX_ENTRIES`].
    #[error("more than {max} sender entries")]
    TooManyEntries {
        /// The limit.
        max: usize,
    },
    /// More mail flow policies than [`crate::MAX_POLICIES`].
    #[error("more than {max} mail flow policies")]
    TooManyPolicies {
        /// The limit.
        max: usize,
    },
    /// A configuration text larger than [`crate::MAX_CONFIG_BYTES`].
    #[error("configuration is {bytes} bytes, the limit is {max}")]
    ConfigTooLarge {
        /// Its size.
        bytes: u64,
        /// The limit.
        max: u64,
    },
    /// TOML syntax or shape error (unknown key, wrong type, unknown behavior...), as the TOML
    /// parser words it.
    #[error("{message}")]
    Toml {
        /// The parser's message.
        message: String,
    },
    /// The configuration file could not be read.
    #[error("cannot read {}: {kind}", file.display())]
    Io {
        /// The file.
        file: PathBuf,
        /// What went wrong.
        kind: std::io::ErrorKind,
    },
    /// An error found in a configuration file, with its place.
    #[error("{location}: {source} (at `{}`)", location.text)]
    Config {
        /// Where.
        location: Location,
        /// What.
        source: Box<Self>,
    },
    /// More PTR names than [`crate::MAX_PTR_NAMES`] handed in as facts.
    #[error("more than {max} PTR names")]
    TooManyPtrNames {
        /// The limit.
        max: usize,
    },
    /// More forward addresses for one PTR name than [`crate::MAX_FORWARD_ADDRESSES`].
    #[error("PTR name `{name}` has more than {max} forward addresses")]
    TooManyForwardAddresses {
        /// The PTR name.
        name: String,
        /// The limit.
        max: usize,
    },
    /// More answered DNS-list zones than [`crate::MAX_DNSLIST_ZONES`].
    #[error("more than {max} DNS-list zones")]
    TooManyDnsLists {
        /// The limit.
        max: usize,
    },
    /// A `resolver` adapter limit out of its allowed range.
    #[error("resolver limit `{limit}` out of range: allowed {allowed}")]
    InvalidResolverLimit {
        /// The limit's field name.
        limit: &'static str,
        /// The allowed values.
        allowed: &'static str,
    },
    /// The hickory resolver for a name server could not be built.
    #[error("cannot set up a DNS resolver for {nameserver}: {reason}")]
    ResolverSetup {
        /// The name server asked for.
        nameserver: std::net::SocketAddr,
        /// hickory-resolver's message.
        reason: String,
    },
}

impl Error {
    /// The error without its configuration location (the error itself for other errors).
    pub fn kind(&self) -> &Self {
        match self {
            Self::Config { source, .. } => source.kind(),
            other => other,
        }
    }

    /// The configuration location, when the error came from a file.
    pub fn location(&self) -> Option<&Location> {
        match self {
            Self::Config { location, .. } => Some(location),
            _ => None,
        }
    }
}
