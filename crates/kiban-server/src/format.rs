//! Display formats of numbers, sizes and times on the pages.

use chrono::{DateTime, FixedOffset};

/// A count with thousands separators (`12,345`), as written in both Japanese and English.
pub fn count(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if n < 0 {
        out.push('-');
    }
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A size in bytes with binary units (`1.5 MiB`).
pub fn bytes(n: i64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{} B", count(n));
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// Japan Standard Time, UTC+9 (no daylight saving).
fn jst() -> Option<FixedOffset> {
    FixedOffset::east_opt(9 * 3600)
}

/// An RFC 3339 time of the metadata store in Japan Standard Time (`2025-04-01 09:30:00 JST`):
/// the operator works in Japan. A value that is not RFC 3339 is shown as stored.
pub fn time(rfc3339: &str) -> String {
    match (DateTime::parse_from_rfc3339(rfc3339), jst()) {
        (Ok(t), Some(offset)) => t
            .with_timezone(&offset)
            .format("%Y-%m-%d %H:%M:%S JST")
            .to_string(),
        _ => rfc3339.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_have_separators() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1000), "1,000");
        assert_eq!(count(1234567), "1,234,567");
        assert_eq!(count(-12345), "-12,345");
    }

    #[test]
    fn sizes_use_binary_units() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(3 * 1024 * 1024), "3.0 MiB");
    }

    #[test]
    fn times_are_shown_in_jst() {
        assert_eq!(time("2025-04-01T00:30:00.000Z"), "2025-04-01 09:30:00 JST");
        assert_eq!(time("not a time"), "not a time");
    }
}
