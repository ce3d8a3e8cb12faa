//! Clocks: the system clock, and a settable one for tests and demonstrations.

use std::fmt;
use std::sync::Mutex;

use chrono::{DateTime, Duration, FixedOffset, NaiveDate, NaiveTime, TimeZone, Utc};

/// Japan Standard Time (UTC+9, no daylight saving): the calendar that notification dates,
/// refusal dates and ages are counted in.
pub fn japan_time() -> FixedOffset {
    JST
}

const JST: FixedOffset = match FixedOffset::east_opt(9 * 3600) {
    Some(offset) => offset,
    None => panic!("UTC+9 is a valid offset"),
};

/// The Japanese calendar date of an instant.
pub fn japan_date(at: DateTime<Utc>) -> NaiveDate {
    at.with_timezone(&japan_time()).date_naive()
}

/// Source of the current time. Everything in collection that depends on "today" (eligibility,
/// ages, dates that must not be in the future) asks the clock, so tests can move it.
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current instant.
    fn now(&self) -> DateTime<Utc>;

    /// Today's date in Japan.
    fn today(&self) -> NaiveDate {
        japan_date(self.now())
    }
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that stands still until it is set or advanced (interior mutability, so a shared
/// `Arc<FixedClock>` can be moved by a test while the collection holds it).
#[derive(Debug)]
pub struct FixedClock {
    now: Mutex<DateTime<Utc>>,
}

impl FixedClock {
    /// A clock standing at `now`.
    pub fn new(now: DateTime<Utc>) -> FixedClock {
        FixedClock {
            now: Mutex::new(now),
        }
    }

    /// A clock standing at noon (Japan time) of `date`.
    pub fn on_date(date: NaiveDate) -> FixedClock {
        FixedClock::new(noon_in_japan(date))
    }

    /// Sets the clock to `now`.
    pub fn set(&self, now: DateTime<Utc>) {
        *self.lock() = now;
    }

    /// Sets the clock to noon (Japan time) of `date`.
    pub fn set_date(&self, date: NaiveDate) {
        self.set(noon_in_japan(date));
    }

    /// Moves the clock by `by` (negative moves it back).
    pub fn advance(&self, by: Duration) {
        let mut now = self.lock();
        *now += by;
    }

    /// Moves the clock by whole days.
    pub fn advance_days(&self, days: i64) {
        self.advance(Duration::days(days));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, DateTime<Utc>> {
        // A panic while holding the lock cannot leave a DateTime half-written.
        self.now
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Clock for FixedClock {
    fn now(&self) -> DateTime<Utc> {
        *self.lock()
    }
}

fn noon_in_japan(date: NaiveDate) -> DateTime<Utc> {
    let local = date.and_time(NaiveTime::MIN) + Duration::hours(12);
    // A fixed offset has exactly one mapping for every local time.
    match japan_time().from_local_datetime(&local) {
        chrono::LocalResult::Single(t) => t.with_timezone(&Utc),
        _ => Utc.from_utc_datetime(&local),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_clock_moves_and_counts_days_in_japan() {
        let day = NaiveDate::from_ymd_opt(2026, 3, 10).unwrap();
        let clock = FixedClock::on_date(day);
        assert_eq!(clock.today(), day);
        clock.advance_days(21);
        assert_eq!(clock.today(), NaiveDate::from_ymd_opt(2026, 3, 31).unwrap());
        // 16:00 UTC is already the next day in Japan.
        clock.set("2026-04-01T16:00:00Z".parse().unwrap());
        assert_eq!(clock.today(), NaiveDate::from_ymd_opt(2026, 4, 2).unwrap());
        assert!(SystemClock.today() >= day);
    }
}
