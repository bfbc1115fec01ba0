//! Working days for service-level deadlines: Monday to Friday, less the
//! Republic of Korea's public holidays (the Regulations on Holidays of
//! Government Offices, with substitute holidays; lunar dates as announced).
//! Days are counted in UTC+9, the civil day in Korea.

const DAY_MS: i64 = 86_400_000;
/// Korea Standard Time, for the civil day a deadline falls on.
const KST_MS: i64 = 9 * 3_600_000;

/// Public holidays, `YYYY-MM-DD`, sorted. Extend a year ahead each autumn,
/// when the lunar holidays of the next year are announced.
pub const PUBLIC_HOLIDAYS: &[&str] = &[
    "2026-01-01",
    "2026-02-16",
    "2026-02-17",
    "2026-02-18",
    "2026-03-02",
    "2026-05-05",
    "2026-05-25",
    "2026-06-03",
    "2026-08-17",
    "2026-09-24",
    "2026-09-25",
    "2026-09-28",
    "2026-10-05",
    "2026-10-09",
    "2026-12-25",
    "2027-01-01",
    "2027-02-08",
    "2027-02-09",
    "2027-03-01",
    "2027-05-05",
    "2027-05-13",
    "2027-08-16",
    "2027-09-14",
    "2027-09-15",
    "2027-09-16",
    "2027-10-04",
    "2027-10-11",
    "2027-12-27",
];

/// Days since 1970-01-01 of a `YYYY-MM-DD` date (proleptic Gregorian).
fn day_number(date: &str) -> Option<i64> {
    let y: i64 = date.get(0..4)?.parse().ok()?;
    let m: i64 = date.get(5..7)?.parse().ok()?;
    let d: i64 = date.get(8..10)?.parse().ok()?;
    // Howard Hinnant's days_from_civil.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some(era * 146_097 + doe - 719_468)
}

/// Whether the civil day `day` (days since 1970-01-01) is a working day.
pub fn is_working_day(day: i64) -> bool {
    // 1970-01-01 was a Thursday: 2 = Saturday, 3 = Sunday.
    let weekday = day.rem_euclid(7);
    weekday != 2 && weekday != 3 && !PUBLIC_HOLIDAYS.iter().any(|h| day_number(h) == Some(day))
}

/// The same time of day `days` working days after `from_ms`.
pub fn add_working_days(from_ms: i64, days: u32) -> i64 {
    let mut t = from_ms;
    let mut left = days;
    while left > 0 {
        t += DAY_MS;
        if is_working_day((t + KST_MS).div_euclid(DAY_MS)) {
            left -= 1;
        }
    }
    t
}

/// Working days from `from` to `to` (negative when `to` is past).
pub fn working_days_between(from: i64, to: i64) -> i64 {
    let (a, b, sign) = if to >= from {
        (from, to, 1)
    } else {
        (to, from, -1)
    };
    let mut days = 0;
    let mut t = a;
    while t + DAY_MS <= b {
        t += DAY_MS;
        if is_working_day((t + KST_MS).div_euclid(DAY_MS)) {
            days += 1;
        }
    }
    sign * days
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOON_KST: i64 = 3 * 3_600_000; // 12:00 in Seoul is 03:00 UTC

    fn at(date: &str) -> i64 {
        day_number(date).unwrap() * DAY_MS + NOON_KST
    }

    #[test]
    fn civil_days() {
        assert_eq!(day_number("1970-01-01"), Some(0));
        assert_eq!(day_number("2026-11-27"), Some(20_784));
        assert!(PUBLIC_HOLIDAYS.windows(2).all(|w| w[0] < w[1]), "sorted");
        assert!(PUBLIC_HOLIDAYS.iter().all(|h| day_number(h).is_some()));
    }

    #[test]
    fn weekends_and_holidays_are_skipped() {
        // Friday 2026-11-27 + 1 → Monday 11-30.
        assert_eq!(add_working_days(at("2026-11-27"), 1), at("2026-11-30"));
        assert_eq!(add_working_days(at("2026-11-27"), 5), at("2026-12-04"));
        assert_eq!(add_working_days(at("2026-11-27"), 0), at("2026-11-27"));
        // Christmas (Friday) and the weekend: Thursday 12-24 + 1 → Monday 12-28.
        assert_eq!(add_working_days(at("2026-12-24"), 1), at("2026-12-28"));
        // Chuseok 2026: Wednesday 09-23 + 1 → Tuesday 09-29 (24, 25, weekend, 28 substitute).
        assert_eq!(add_working_days(at("2026-09-23"), 1), at("2026-09-29"));
        assert_eq!(working_days_between(at("2026-09-23"), at("2026-09-29")), 1);
        assert_eq!(working_days_between(at("2026-09-29"), at("2026-09-23")), -1);
    }
}
