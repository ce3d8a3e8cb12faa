//! The collection policy (how long after the notice data may be taken) and eligibility.

use chrono::{Datelike, Days, Months, NaiveDate};
use serde::Serialize;

/// How long a patient must have been notified before their data may be taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NotificationWait {
    /// Calendar months: data is taken from the day with the same number `n` months after the
    /// notice (notified 2026-03-10 → eligible 2026-04-10). When that month has no such day, from
    /// the first day of the month after it (notified 2026-01-31 → eligible 2026-03-01), so the
    /// wait is never shorter than the months named.
    Months(u32),
    /// A number of days: data is taken from `notified_on + n` days.
    Days(u32),
}

/// Rules of collection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CollectionPolicy {
    /// How long after the notice data may be taken. Default: one calendar month.
    pub notification_wait: NotificationWait,
}

impl Default for CollectionPolicy {
    fn default() -> Self {
        CollectionPolicy {
            notification_wait: NotificationWait::Months(1),
        }
    }
}

impl CollectionPolicy {
    /// The policy with the wait given in days instead of the default month.
    pub fn with_wait_days(days: u32) -> Self {
        CollectionPolicy {
            notification_wait: NotificationWait::Days(days),
        }
    }

    /// The first day on which data of a patient notified on `notified_on` may be taken.
    pub fn eligible_from(&self, notified_on: NaiveDate) -> NaiveDate {
        match self.notification_wait {
            NotificationWait::Days(days) => notified_on
                .checked_add_days(Days::new(u64::from(days)))
                .unwrap_or(NaiveDate::MAX),
            NotificationWait::Months(months) => {
                let Some(same_day) = notified_on.checked_add_months(Months::new(months)) else {
                    return NaiveDate::MAX;
                };
                if same_day.day() == notified_on.day() {
                    same_day
                } else {
                    // chrono clamped to the month's last day: the month has no such day.
                    same_day
                        .checked_add_days(Days::new(1))
                        .unwrap_or(NaiveDate::MAX)
                }
            }
        }
    }
}

/// Whether data of a patient may be taken today.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Eligibility {
    /// Notified long enough ago and not refused: data is taken.
    Eligible {
        /// Day of the first notice.
        notified_on: NaiveDate,
    },
    /// Data is held (not released, never dropped) until the wait is over.
    Held {
        /// First day data may be taken; `None` when the patient has not been notified yet.
        until: Option<NaiveDate>,
    },
    /// The patient refused: new data is refused and held data is excluded from releases.
    Refused {
        /// Receipt number of the refusal.
        receipt_number: String,
    },
}

impl Eligibility {
    /// Decides from the registers: a refusal wins over everything, then the notice's age.
    pub fn decide(
        policy: &CollectionPolicy,
        today: NaiveDate,
        notified_on: Option<NaiveDate>,
        refusal_receipt: Option<String>,
    ) -> Eligibility {
        if let Some(receipt_number) = refusal_receipt {
            return Eligibility::Refused { receipt_number };
        }
        match notified_on {
            None => Eligibility::Held { until: None },
            Some(notified_on) => {
                let from = policy.eligible_from(notified_on);
                if today >= from {
                    Eligibility::Eligible { notified_on }
                } else {
                    Eligibility::Held { until: Some(from) }
                }
            }
        }
    }

    /// True when data may be taken now.
    pub fn is_eligible(&self) -> bool {
        matches!(self, Eligibility::Eligible { .. })
    }

    /// True when the patient refused.
    pub fn is_refused(&self) -> bool {
        matches!(self, Eligibility::Refused { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn one_month_counts_by_the_calendar_and_never_short() {
        let p = CollectionPolicy::default();
        assert_eq!(p.eligible_from(d("2026-03-10")), d("2026-04-10"));
        assert_eq!(p.eligible_from(d("2026-01-31")), d("2026-03-01"));
        assert_eq!(p.eligible_from(d("2026-01-28")), d("2026-02-28"));
        assert_eq!(p.eligible_from(d("2028-01-29")), d("2028-02-29"));
        assert_eq!(p.eligible_from(d("2028-01-30")), d("2028-03-01"));
        assert_eq!(p.eligible_from(d("2026-03-31")), d("2026-05-01"));
        assert_eq!(p.eligible_from(d("2026-12-15")), d("2027-01-15"));
        // Never more than 31 days: a patient notified 10 days ago is eligible 21 days later.
        let mut day = d("2026-01-01");
        while day < d("2029-01-01") {
            let wait = (p.eligible_from(day) - day).num_days();
            assert!((28..=31).contains(&wait), "{day}: {wait}");
            day = day.succ_opt().unwrap();
        }
        assert_eq!(
            CollectionPolicy::with_wait_days(30).eligible_from(d("2026-01-31")),
            d("2026-03-02")
        );
        assert_eq!(
            CollectionPolicy::default().eligible_from(NaiveDate::MAX),
            NaiveDate::MAX
        );
    }

    #[test]
    fn refusal_wins_and_unnotified_patients_are_held() {
        let p = CollectionPolicy::default();
        let today = d("2026-05-01");
        assert_eq!(
            Eligibility::decide(&p, today, Some(d("2026-01-01")), Some("OPT-1".into())),
            Eligibility::Refused {
                receipt_number: "OPT-1".into()
            }
        );
        assert_eq!(
            Eligibility::decide(&p, today, None, None),
            Eligibility::Held { until: None }
        );
        assert_eq!(
            Eligibility::decide(&p, today, Some(d("2026-04-20")), None),
            Eligibility::Held {
                until: Some(d("2026-05-20"))
            }
        );
        assert!(Eligibility::decide(&p, today, Some(d("2026-04-01")), None).is_eligible());
    }
}
