//! What a set of received reports says, per policy domain and UTC day: sessions that succeeded,
//! sessions that failed, failures by result type and by receiving MX host.

use std::collections::BTreeMap;

use time::Date;

use super::report::Report;

/// The key used in [`DomainDay::failures_by_mx`] for failure entries that name no receiving MX
/// host (Mail.ru, Microsoft's `sts-policy-fetch-error` entries).
pub const UNKNOWN_MX: &str = "(unknown)";

/// The counts of one policy domain on one day.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DomainDay {
    /// The policy domain, lower case without a trailing dot; `None` for policies that name none.
    pub policy_domain: Option<String>,
    /// The UTC day the report period starts on (a report covering several days counts on its
    /// first).
    pub day: Date,
    /// Sum of `total-successful-session-count`.
    pub successes: u64,
    /// Sum of `total-failure-session-count`.
    pub failures: u64,
    /// Sum of `failed-session-count` per result type. Failure entries may overlap (RFC 8460
    /// §4.4), so these need not add up to [`Self::failures`].
    pub failures_by_type: BTreeMap<String, u64>,
    /// Sum of `failed-session-count` per receiving MX host (lower case), [`UNKNOWN_MX`] for
    /// entries without one.
    pub failures_by_mx: BTreeMap<String, u64>,
}

impl DomainDay {
    /// Whether any failure is counted here (a summary count or a failure entry).
    #[must_use]
    pub fn has_failures(&self) -> bool {
        self.failures > 0 || self.failures_by_type.values().any(|&n| n > 0)
    }
}

/// Reports summed per policy domain and day.
///
/// Counts saturate at `u64::MAX` rather than wrap.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[must_use]
pub struct Summary {
    reports: usize,
    days: BTreeMap<(Option<String>, Date), DomainDay>,
}

impl Summary {
    /// An empty summary.
    pub fn new() -> Self {
        Self::default()
    }

    /// The summary of `reports`.
    pub fn of<'a>(reports: impl IntoIterator<Item = &'a Report>) -> Self {
        let mut summary = Self::new();
        for report in reports {
            summary.add(report);
        }
        summary
    }

    /// Adds one report.
    pub fn add(&mut self, report: &Report) {
        self.reports = self.reports.saturating_add(1);
        let day = report.date_range.start_datetime.date();
        for entry in &report.policies {
            let domain = entry.policy.policy_domain.as_deref().map(normalise_name);
            let counts = self
                .days
                .entry((domain.clone(), day))
                .or_insert_with(|| DomainDay {
                    policy_domain: domain,
                    day,
                    successes: 0,
                    failures: 0,
                    failures_by_type: BTreeMap::new(),
                    failures_by_mx: BTreeMap::new(),
                });
            counts.successes = counts
                .successes
                .saturating_add(entry.summary.total_successful_session_count);
            counts.failures = counts
                .failures
                .saturating_add(entry.summary.total_failure_session_count);
            for detail in &entry.failure_details {
                let n = detail.failed_session_count;
                let by_type = counts
                    .failures_by_type
                    .entry(detail.result_type.as_str().to_owned())
                    .or_default();
                *by_type = by_type.saturating_add(n);
                let mx = detail
                    .receiving_mx_hostname
                    .as_deref()
                    .map(normalise_name)
                    .filter(|mx| !mx.is_empty())
                    .unwrap_or_else(|| UNKNOWN_MX.to_owned());
                let by_mx = counts.failures_by_mx.entry(mx).or_default();
                *by_mx = by_mx.saturating_add(n);
            }
        }
    }

    /// How many reports were added.
    #[must_use]
    pub fn reports(&self) -> usize {
        self.reports
    }

    /// The per domain and day counts, ordered by domain (policies without one first), then day.
    pub fn domains(&self) -> impl Iterator<Item = &DomainDay> {
        self.days.values()
    }

    /// Whether any report counts a failure.
    #[must_use]
    pub fn has_failures(&self) -> bool {
        self.days.values().any(DomainDay::has_failures)
    }
}

fn normalise_name(name: &str) -> String {
    name.trim().trim_end_matches('.').to_ascii_lowercase()
}
