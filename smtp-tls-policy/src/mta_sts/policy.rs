//! The policy file `https://mta-sts.DOMAIN/.well-known/mta-sts.txt` (RFC 8461 §3.2).
//!
//! Rules:
//! * Lines end in LF or CRLF; each is `key: value` (`field-delim = ":" *WSP`), trailing
//!   whitespace ignored; blank lines are skipped.
//! * `version: STSv1` is required. RFC 8461 lists it first; a policy where it is present but not
//!   first is accepted with a [`PolicyNote::VersionNotFirst`] (policies in the wild do this).
//! * `mode`: `enforce`, `testing` or `none` (case-sensitive, `%s` in the ABNF).
//! * `max_age`: 1 to 10 digits (ABNF `1*10(DIGIT)`); the RFC's maximum is 31557600 s (one
//!   year): larger values are clamped to it ([`PolicyNote::MaxAgeClamped`]) rather than
//!   honoured or refused.
//! * `mx`: one per line, required unless the mode is `none`; IP addresses and empty values are
//!   dropped with a note. `enforce`/`testing` with zero valid `mx` lines is an invalid policy
//!   ([`PolicyError::NoMxPatterns`], `sts-policy-invalid` in TLS-RPT) — never an empty
//!   constraint that blocks every host.
//! * Unknown keys are ignored (noted, so a typo such as `nmx:` shows); a duplicate
//!   `version`/`mode`/`max_age` keeps the first value and says so.
//! * At most [`MAX_POLICY_LEN`] octets (64 KiB), checked here too, not only by the fetcher.
//!
//! The raw text is kept ([`Policy::text`]) for TLS-RPT's `policy-string`.

use serde::{Deserialize, Serialize};

use super::mx_pattern::{MxListMatch, MxPattern, MxPatternError, match_mx_host};

/// Largest policy file accepted, in octets (RFC 8461 §3.3 suggests 64 KiB).
pub const MAX_POLICY_LEN: usize = 64 * 1024;
/// The largest `max_age` (RFC 8461 §3.2: 31557600 s, one year).
pub const MAX_AGE_LIMIT: u64 = 31_557_600;
/// Most `mx` lines kept (bounded work); more make the policy invalid.
pub const MAX_MX_PATTERNS: usize = 128;
/// Most notes kept; later ones are counted only.
pub const MAX_NOTES: usize = 32;

/// The policy mode (RFC 8461 §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Deliver only to matching MX hosts with a PKIX-valid certificate.
    Enforce,
    /// Deliver as without a policy; report failures (TLS-RPT).
    Testing,
    /// No policy: ends a cached one.
    None,
}

impl Mode {
    /// The policy-file spelling.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Enforce => "enforce",
            Self::Testing => "testing",
            Self::None => "none",
        }
    }
}

/// Something a valid policy had that was tolerated, kept for the explanation.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "note", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum PolicyNote {
    /// A key given again; the first value was kept.
    DuplicateKey {
        /// The key.
        key: String,
        /// 1-based line of the ignored repetition.
        line: usize,
    },
    /// An unknown key, ignored (RFC 8461 §3.2 extensions).
    UnknownKey {
        /// The key.
        key: String,
        /// 1-based line.
        line: usize,
    },
    /// An `mx` value dropped.
    InvalidMx {
        /// The value as written (at most 80 characters).
        value: String,
        /// 1-based line.
        line: usize,
        /// Why.
        reason: MxPatternError,
    },
    /// `max_age` above [`MAX_AGE_LIMIT`], clamped to it.
    MaxAgeClamped {
        /// The value given.
        given: u64,
    },
    /// `version` present but not the first line.
    VersionNotFirst,
    /// More notes than [`MAX_NOTES`]: this many were not kept.
    MoreNotes {
        /// How many.
        count: usize,
    },
}

/// Why a policy file is invalid (`sts-policy-invalid` in TLS-RPT).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "reason", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum PolicyError {
    /// Larger than [`MAX_POLICY_LEN`].
    #[error("policy larger than {MAX_POLICY_LEN} octets ({len})")]
    TooLarge {
        /// Its size.
        len: usize,
    },
    /// Not UTF-8 text.
    #[error("policy is not UTF-8 text")]
    NotText,
    /// A line that is not `key: value`.
    #[error("line {line} is not `key: value`")]
    MalformedLine {
        /// 1-based line.
        line: usize,
    },
    /// No `version` line.
    #[error("no `version` line")]
    MissingVersion,
    /// `version` other than `STSv1`.
    #[error("version {value:?} is not STSv1")]
    UnsupportedVersion {
        /// The value (at most 80 characters).
        value: String,
    },
    /// No `mode` line.
    #[error("no `mode` line")]
    MissingMode,
    /// `mode` not one of `enforce`, `testing`, `none`.
    #[error("mode {value:?} is not enforce, testing or none")]
    InvalidMode {
        /// The value (at most 80 characters).
        value: String,
    },
    /// No `max_age` line.
    #[error("no `max_age` line")]
    MissingMaxAge,
    /// `max_age` not 1 to 10 digits.
    #[error("max_age {value:?} is not 1 to 10 digits")]
    InvalidMaxAge {
        /// The value (at most 80 characters).
        value: String,
    },
    /// `enforce` or `testing` with no valid `mx` line (a typo such as `nmx:` included).
    #[error("mode {mode} needs at least one valid `mx` line; found none")]
    NoMxPatterns {
        /// The mode.
        mode: Mode,
    },
    /// More than [`MAX_MX_PATTERNS`] `mx` lines.
    #[error("more than {MAX_MX_PATTERNS} `mx` lines")]
    TooManyMxPatterns,
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A valid MTA-STS policy.
///
/// ```
/// use smtp_tls_policy::mta_sts::{Mode, Policy};
/// let text = "version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.example.net\r\nmax_age: 604800\r\n";
/// let policy = Policy::parse(text.as_bytes()).unwrap();
/// assert_eq!(policy.mode, Mode::Enforce);
/// assert_eq!(policy.max_age, 604800);
/// assert!(policy.match_mx("a.example.net").is_match());
/// ```
///
/// Read back from serde (a policy store), a policy is parsed again from its [`Self::text`]:
/// stored data cannot carry a policy the parser would refuse, nor fields that disagree with the
/// text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "StoredPolicy")]
#[non_exhaustive]
pub struct Policy {
    /// The mode.
    pub mode: Mode,
    /// Lifetime in seconds, after clamping.
    pub max_age: u64,
    /// The valid `mx` patterns, in file order (empty only for `none`).
    pub mx: Vec<MxPattern>,
    /// What was tolerated.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<PolicyNote>,
    /// The policy file as fetched (for TLS-RPT `policy-string`).
    pub text: String,
}

impl Policy {
    /// Parses a policy file (see the module docs for the rules).
    pub fn parse(body: &[u8]) -> Result<Self, PolicyError> {
        if body.len() > MAX_POLICY_LEN {
            return Err(PolicyError::TooLarge { len: body.len() });
        }
        let text = std::str::from_utf8(body).map_err(|_| PolicyError::NotText)?;
        let mut version: Option<&str> = None;
        let mut mode: Option<&str> = None;
        let mut max_age: Option<&str> = None;
        let mut mx = Vec::new();
        let mut notes = Notes::default();
        let mut first_field = true;
        for (index, raw_line) in text.split('\n').enumerate() {
            let line = index + 1;
            let content = raw_line.strip_suffix('\r').unwrap_or(raw_line);
            let content = content.trim_end_matches([' ', '\t']);
            if content.is_empty() {
                continue;
            }
            let (key, value) = content
                .split_once(':')
                .ok_or(PolicyError::MalformedLine { line })?;
            if key.is_empty() || key.contains([' ', '\t']) {
                return Err(PolicyError::MalformedLine { line });
            }
            let value = value.trim_start_matches([' ', '\t']);
            let slot = match key {
                "version" => {
                    if !first_field && version.is_none() {
                        notes.push(PolicyNote::VersionNotFirst);
                    }
                    Some(&mut version)
                }
                "mode" => Some(&mut mode),
                "max_age" => Some(&mut max_age),
                "mx" => {
                    if mx.len() >= MAX_MX_PATTERNS {
                        return Err(PolicyError::TooManyMxPatterns);
                    }
                    match MxPattern::parse(value) {
                        Ok(pattern) => mx.push(pattern),
                        Err(reason) => notes.push(PolicyNote::InvalidMx {
                            value: clip(value),
                            line,
                            reason,
                        }),
                    }
                    None
                }
                other => {
                    notes.push(PolicyNote::UnknownKey {
                        key: clip(other),
                        line,
                    });
                    None
                }
            };
            if let Some(slot) = slot {
                if slot.is_some() {
                    notes.push(PolicyNote::DuplicateKey {
                        key: key.to_owned(),
                        line,
                    });
                } else {
                    *slot = Some(value);
                }
            }
            first_field = false;
        }
        match version {
            None => return Err(PolicyError::MissingVersion),
            Some("STSv1") => {}
            Some(other) => {
                return Err(PolicyError::UnsupportedVersion { value: clip(other) });
            }
        }
        let mode = match mode.ok_or(PolicyError::MissingMode)? {
            "enforce" => Mode::Enforce,
            "testing" => Mode::Testing,
            "none" => Mode::None,
            other => return Err(PolicyError::InvalidMode { value: clip(other) }),
        };
        let max_age_text = max_age.ok_or(PolicyError::MissingMaxAge)?;
        if max_age_text.is_empty()
            || max_age_text.len() > 10
            || !max_age_text.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(PolicyError::InvalidMaxAge {
                value: clip(max_age_text),
            });
        }
        let given: u64 = max_age_text
            .parse()
            .map_err(|_| PolicyError::InvalidMaxAge {
                value: clip(max_age_text),
            })?;
        let max_age = if given > MAX_AGE_LIMIT {
            notes.push(PolicyNote::MaxAgeClamped { given });
            MAX_AGE_LIMIT
        } else {
            given
        };
        if mode != Mode::None && mx.is_empty() {
            return Err(PolicyError::NoMxPatterns { mode });
        }
        Ok(Self {
            mode,
            max_age,
            mx,
            notes: notes.finish(),
            text: text.to_owned(),
        })
    }

    /// Checks an MX host against this policy's patterns.
    pub fn match_mx(&self, host: &str) -> MxListMatch {
        match_mx_host(&self.mx, host)
    }

    /// The policy text as TLS-RPT's `policy-string`: one entry per non-empty line, without the
    /// line ends.
    #[must_use]
    pub fn policy_strings(&self) -> Vec<&str> {
        self.text
            .split('\n')
            .map(|l| l.strip_suffix('\r').unwrap_or(l))
            .filter(|l| !l.trim().is_empty())
            .collect()
    }
}

/// What a store keeps of a policy that matters: its text.
#[derive(Deserialize)]
struct StoredPolicy {
    text: String,
}

impl TryFrom<StoredPolicy> for Policy {
    type Error = PolicyError;
    fn try_from(stored: StoredPolicy) -> Result<Self, PolicyError> {
        Self::parse(stored.text.as_bytes())
    }
}

#[derive(Default)]
struct Notes {
    kept: Vec<PolicyNote>,
    dropped: usize,
}

impl Notes {
    fn push(&mut self, note: PolicyNote) {
        if self.kept.len() < MAX_NOTES {
            self.kept.push(note);
        } else {
            self.dropped += 1;
        }
    }

    fn finish(mut self) -> Vec<PolicyNote> {
        if self.dropped > 0 {
            self.kept.push(PolicyNote::MoreNotes {
                count: self.dropped,
            });
        }
        self.kept
    }
}

/// At most 80 characters of peer text, cut on a character boundary.
fn clip(s: &str) -> String {
    s.chars().take(80).collect()
}
