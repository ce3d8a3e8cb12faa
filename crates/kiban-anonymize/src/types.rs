//! Attribute data types: validation of values at load and the order they define.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Values that mean "missing" in every type; they are kept as their own value.
pub const MISSING_VALUES: [&str; 3] = ["", "?", "NULL"];

/// Whether `value` is one of the [`MISSING_VALUES`].
pub fn is_missing(value: &str) -> bool {
    MISSING_VALUES.contains(&value)
}

/// Data type of a column. Declared per column (`"integer"`, `"ordinal:low|mid|high"`, ...);
/// the default is [`AttributeType::String`].
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum AttributeType {
    /// Free text, ordered lexicographically.
    #[default]
    String,
    /// A signed 64-bit integer (`-12`, `42`).
    Integer,
    /// A finite decimal number (`3.25`, `-1e3`).
    Decimal,
    /// An ISO date `YYYY-MM-DD` (or date-time `YYYY-MM-DDTHH:MM:SS[.f]`), ordered in time.
    Date,
    /// One of a declared list of labels, ordered as declared.
    Ordinal(Vec<String>),
    /// A classification code (ICD-10, postal code): non-empty, printable ASCII without spaces,
    /// ordered lexicographically.
    Code,
}

impl AttributeType {
    /// The rule a value of this type must follow, as shown in errors (never with the value).
    pub fn rule(&self) -> String {
        match self {
            AttributeType::String => "any text".into(),
            AttributeType::Integer => "an integer (optional sign, digits only)".into(),
            AttributeType::Decimal => "a finite decimal number".into(),
            AttributeType::Date => "a date YYYY-MM-DD or date-time YYYY-MM-DDTHH:MM:SS".into(),
            AttributeType::Ordinal(order) => {
                format!("one of the {} declared ordinal labels", order.len())
            }
            AttributeType::Code => "a code of printable ASCII characters without spaces".into(),
        }
    }

    /// Whether `value` is valid for this type (missing values always are).
    pub fn accepts(&self, value: &str) -> bool {
        if is_missing(value) {
            return true;
        }
        match self {
            AttributeType::String => true,
            AttributeType::Integer => value.parse::<i64>().is_ok(),
            AttributeType::Decimal => value.parse::<f64>().is_ok_and(f64::is_finite),
            AttributeType::Date => parse_date_key(value).is_some(),
            AttributeType::Ordinal(order) => order.iter().any(|o| o == value),
            AttributeType::Code => value.bytes().all(|b| b.is_ascii_graphic()),
        }
    }

    /// Whether the type has a meaningful numeric or declared order (for ordered-distance
    /// t-closeness).
    pub fn is_ordered(&self) -> bool {
        matches!(
            self,
            AttributeType::Integer
                | AttributeType::Decimal
                | AttributeType::Date
                | AttributeType::Ordinal(_)
        )
    }

    /// Compares two valid values in the type's order; missing values sort last.
    pub fn compare(&self, a: &str, b: &str) -> Ordering {
        match (is_missing(a), is_missing(b)) {
            (true, true) => return a.cmp(b),
            (true, false) => return Ordering::Greater,
            (false, true) => return Ordering::Less,
            (false, false) => {}
        }
        let by = |x: Option<f64>, y: Option<f64>| match (x, y) {
            (Some(x), Some(y)) => x.total_cmp(&y),
            _ => a.cmp(b),
        };
        match self {
            AttributeType::Integer | AttributeType::Decimal => {
                by(a.parse().ok(), b.parse().ok()).then_with(|| a.cmp(b))
            }
            AttributeType::Date => by(parse_date_key(a), parse_date_key(b)).then_with(|| a.cmp(b)),
            AttributeType::Ordinal(order) => {
                let rank = |v: &str| order.iter().position(|o| o == v);
                rank(a).cmp(&rank(b)).then_with(|| a.cmp(b))
            }
            AttributeType::String | AttributeType::Code => a.cmp(b),
        }
    }
}

/// Seconds since the epoch of a date or date-time, if it parses.
fn parse_date_key(value: &str) -> Option<f64> {
    if let Ok(date) = chrono::NaiveDate::parse_from_str(value, "%Y-%m-%d") {
        return date
            .and_hms_opt(0, 0, 0)
            .map(|t| t.and_utc().timestamp() as f64);
    }
    chrono::NaiveDateTime::parse_from_str(value, "%Y-%m-%dT%H:%M:%S%.f")
        .ok()
        .map(|t| t.and_utc().timestamp_micros() as f64 / 1e6)
}

/// An unknown type name or an empty ordinal declaration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown attribute type `{0}`: use string, integer, decimal, date, code or ordinal:a|b|c")]
pub struct UnknownAttributeType(pub String);

impl FromStr for AttributeType {
    type Err = UnknownAttributeType;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let trimmed = text.trim();
        if let Some(order) = trimmed.strip_prefix("ordinal:") {
            let labels: Vec<String> = order.split('|').map(|l| l.trim().to_string()).collect();
            let mut sorted = labels.clone();
            sorted.sort_unstable();
            sorted.dedup();
            if labels.iter().any(String::is_empty) || sorted.len() != labels.len() {
                return Err(UnknownAttributeType(
                    "ordinal (labels must be non-empty and distinct)".into(),
                ));
            }
            return Ok(AttributeType::Ordinal(labels));
        }
        Ok(match trimmed.to_ascii_lowercase().as_str() {
            "string" | "text" => AttributeType::String,
            "integer" | "int" => AttributeType::Integer,
            "decimal" | "float" | "number" => AttributeType::Decimal,
            "date" => AttributeType::Date,
            "code" => AttributeType::Code,
            other => return Err(UnknownAttributeType(other.to_string())),
        })
    }
}

impl TryFrom<String> for AttributeType {
    type Error = UnknownAttributeType;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse()
    }
}

impl From<AttributeType> for String {
    fn from(t: AttributeType) -> String {
        t.to_string()
    }
}

impl fmt::Display for AttributeType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AttributeType::String => f.write_str("string"),
            AttributeType::Integer => f.write_str("integer"),
            AttributeType::Decimal => f.write_str("decimal"),
            AttributeType::Date => f.write_str("date"),
            AttributeType::Code => f.write_str("code"),
            AttributeType::Ordinal(order) => write!(f, "ordinal:{}", order.join("|")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_validates() {
        let ordinal: AttributeType = "ordinal:low|mid|high".parse().unwrap();
        assert_eq!(ordinal.to_string(), "ordinal:low|mid|high");
        assert!(ordinal.accepts("mid") && ordinal.accepts("?") && !ordinal.accepts("max"));
        assert_eq!(ordinal.compare("high", "low"), Ordering::Greater);
        assert!("ordinal:a|a".parse::<AttributeType>().is_err());
        assert!("colour".parse::<AttributeType>().is_err());
        let int: AttributeType = "integer".parse().unwrap();
        assert!(int.accepts("-12") && int.accepts("NULL") && !int.accepts("1.5"));
        assert_eq!(int.compare("9", "10"), Ordering::Less);
        assert_eq!(int.compare("", "10"), Ordering::Greater);
        let dec = AttributeType::Decimal;
        assert!(dec.accepts("1.5e3") && !dec.accepts("inf") && !dec.accepts("x"));
        let date = AttributeType::Date;
        assert!(date.accepts("2024-02-29") && !date.accepts("2023-02-29"));
        assert!(date.accepts("2024-02-29T10:00:00"));
        assert_eq!(date.compare("2024-01-31", "2024-02-01"), Ordering::Less);
        assert!(AttributeType::Code.accepts("E11.9") && !AttributeType::Code.accepts("E1 1"));
    }
}
