//! Reporting periods: a UTC day (`2026-12-04`), or with a shorter `report_interval_secs` a
//! slice of one (`2026-12-04.17`). The name is the counter store's "day".

use std::time::Duration;

use time::{Date, OffsetDateTime};

use super::config::DEFAULT_REPORT_INTERVAL_SECS;

/// One reporting period.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Period {
    /// The UTC day it lies in (the report's date range).
    pub date: Date,
    /// Its name in the counter store.
    pub name: String,
    /// Seconds since midnight UTC at which it starts.
    pub start_secs: u64,
}

impl Period {
    /// The period of `interval_secs` (a divisor of a day) that holds `at`.
    #[must_use]
    pub fn of(at: OffsetDateTime, interval_secs: u64) -> Self {
        let at = at.to_offset(time::UtcOffset::UTC);
        let date = at.date();
        let interval = interval_secs.clamp(1, DEFAULT_REPORT_INTERVAL_SECS);
        let since_midnight =
            u64::from(at.hour()) * 3600 + u64::from(at.minute()) * 60 + u64::from(at.second());
        let day = format!(
            "{:04}-{:02}-{:02}",
            date.year(),
            u8::from(date.month()),
            date.day()
        );
        if interval >= DEFAULT_REPORT_INTERVAL_SECS {
            return Self {
                date,
                name: day,
                start_secs: 0,
            };
        }
        let index = since_midnight / interval;
        Self {
            date,
            name: format!("{day}.{index}"),
            start_secs: index * interval,
        }
    }

    /// The period before the one holding `at`.
    #[must_use]
    pub fn previous(at: OffsetDateTime, interval_secs: u64) -> Self {
        let current = Self::of(at, interval_secs);
        let start = current.start();
        Self::of(start - Duration::from_secs(1), interval_secs)
    }

    /// The period named `name` (as [`Self::of`] names them) with `interval_secs`; `None` for
    /// a name of another interval (the relay's `report_interval_secs` changed) or no period's.
    #[must_use]
    pub fn named(name: &str, interval_secs: u64) -> Option<Self> {
        let (day, index) = match name.split_once('.') {
            Some((day, index)) => (day, Some(index)),
            None => (name, None),
        };
        let format = time::macros::format_description!("[year]-[month]-[day]");
        let date = Date::parse(day, &format).ok()?;
        let interval = interval_secs.clamp(1, DEFAULT_REPORT_INTERVAL_SECS);
        let start_secs = match index {
            None if interval >= DEFAULT_REPORT_INTERVAL_SECS => 0,
            Some(i) if interval < DEFAULT_REPORT_INTERVAL_SECS && !i.starts_with('+') => {
                let i: u64 = i.parse().ok()?;
                let start = i.checked_mul(interval)?;
                (start < DEFAULT_REPORT_INTERVAL_SECS).then_some(start)?
            }
            _ => return None,
        };
        let period = Self::of(
            date.midnight().assume_utc() + Duration::from_secs(start_secs),
            interval,
        );
        (period.name == name).then_some(period)
    }

    /// The end of this period (the start of the next one).
    #[must_use]
    pub fn end(&self, interval_secs: u64) -> OffsetDateTime {
        let interval = interval_secs.clamp(1, DEFAULT_REPORT_INTERVAL_SECS);
        self.start() + Duration::from_secs(interval)
    }

    /// The start of this period.
    fn start(&self) -> OffsetDateTime {
        self.date.midnight().assume_utc() + Duration::from_secs(self.start_secs)
    }

    /// How long from `at` until the period after the one holding `at` begins.
    #[must_use]
    pub fn until_next(at: OffsetDateTime, interval_secs: u64) -> Duration {
        let current = Self::of(at, interval_secs);
        let interval = interval_secs.clamp(1, DEFAULT_REPORT_INTERVAL_SECS);
        let next = current.start() + Duration::from_secs(interval);
        let left = next - at;
        Duration::try_from(left).unwrap_or(Duration::ZERO)
    }

    /// The claim name of this period's reports (one relay sends them).
    #[must_use]
    pub fn claim_name(&self) -> String {
        format!("tlsrpt-{}", self.name)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use time::macros::datetime;

    use super::Period;

    #[test]
    fn days_and_slices() {
        let at = datetime!(2026-12-04 00:00:07 UTC);
        assert_eq!(Period::of(at, 86_400).name, "2026-12-04");
        assert_eq!(Period::previous(at, 86_400).name, "2026-12-03");
        assert_eq!(Period::of(at, 5).name, "2026-12-04.1");
        assert_eq!(Period::previous(at, 5).name, "2026-12-04.0");
        assert_eq!(
            Period::previous(datetime!(2026-12-04 00:00:03 UTC), 5).name,
            "2026-12-03.17279"
        );
        assert_eq!(Period::until_next(at, 5), Duration::from_secs(3));
        assert_eq!(
            Period::until_next(at, 86_400),
            Duration::from_secs(86_400 - 7)
        );
        assert_eq!(Period::of(at, 5).claim_name(), "tlsrpt-2026-12-04.1");
        // names read back (the store's days) with the interval that made them only
        assert_eq!(Period::named("2026-12-04.1", 5), Some(Period::of(at, 5)));
        assert_eq!(
            Period::named("2026-12-04", 86_400),
            Some(Period::of(at, 86_400))
        );
        assert_eq!(Period::named("2026-12-04", 5), None);
        assert_eq!(Period::named("2026-12-04.1", 86_400), None);
        assert_eq!(Period::named("2026-12-04.17280", 5), None);
        assert_eq!(Period::named("2026-12-04.01", 5), None);
        assert_eq!(Period::named("2026-02-30", 86_400), None);
        assert_eq!(Period::of(at, 5).end(5), datetime!(2026-12-04 00:00:10 UTC));
    }
}
