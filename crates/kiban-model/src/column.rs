//! Mapping between Rust field types and Arrow columns.

use arrow_array::builder::{
    BooleanBuilder, Date32Builder, Float64Builder, Int32Builder, StringBuilder,
    TimestampMicrosecondBuilder,
};
use arrow_array::{
    Array, ArrayRef, BooleanArray, Date32Array, Float64Array, Int32Array, StringArray,
    TimestampMicrosecondArray,
};
use arrow_schema::{DataType, TimeUnit};
use chrono::{DateTime, NaiveDate, Utc};
use std::sync::Arc;

use crate::ModelError;

const UNIX_EPOCH_DAYS_FROM_CE: i32 = 719_163;

/// A Rust type that can be stored as one Arrow column.
pub trait ColumnValue: Sized {
    /// The Arrow type of the column.
    fn data_type() -> DataType;
    /// Whether the column may hold nulls.
    fn nullable() -> bool;
    /// Builds a column from values.
    fn build<'a>(values: impl Iterator<Item = &'a Self>) -> ArrayRef
    where
        Self: 'a;
    /// Reads all values of a column.
    fn read(
        array: &dyn Array,
        table: &'static str,
        column: &'static str,
    ) -> Result<Vec<Self>, ModelError>;
}

fn wrong_type(
    table: &'static str,
    column: &'static str,
    array: &dyn Array,
    expected: DataType,
) -> ModelError {
    ModelError::WrongType {
        table,
        column,
        found: array.data_type().to_string(),
        expected: expected.to_string(),
    }
}

fn date_to_days(d: &NaiveDate) -> i32 {
    use chrono::Datelike;
    d.num_days_from_ce() - UNIX_EPOCH_DAYS_FROM_CE
}

fn days_to_date(days: i32) -> NaiveDate {
    NaiveDate::from_num_days_from_ce_opt(days + UNIX_EPOCH_DAYS_FROM_CE).unwrap_or_default()
}

macro_rules! optional_column {
    ($ty:ty, $dt:expr, $builder:ty, $array:ty, |$b:ident, $v:ident| $append:expr, |$a:ident, $i:ident| $get:expr) => {
        impl ColumnValue for Option<$ty> {
            fn data_type() -> DataType {
                $dt
            }
            fn nullable() -> bool {
                true
            }
            fn build<'a>(values: impl Iterator<Item = &'a Self>) -> ArrayRef {
                let mut $b = <$builder>::new();
                for value in values {
                    match value {
                        Some($v) => $append,
                        None => $b.append_null(),
                    }
                }
                Arc::new($b.finish().with_data_type($dt))
            }
            fn read(
                array: &dyn Array,
                table: &'static str,
                column: &'static str,
            ) -> Result<Vec<Self>, ModelError> {
                let $a = array
                    .as_any()
                    .downcast_ref::<$array>()
                    .ok_or_else(|| wrong_type(table, column, array, $dt))?;
                Ok((0..$a.len())
                    .map(|$i| if $a.is_null($i) { None } else { Some($get) })
                    .collect())
            }
        }

        impl ColumnValue for $ty {
            fn data_type() -> DataType {
                $dt
            }
            fn nullable() -> bool {
                false
            }
            fn build<'a>(values: impl Iterator<Item = &'a Self>) -> ArrayRef {
                let mut $b = <$builder>::new();
                for $v in values {
                    $append
                }
                Arc::new($b.finish().with_data_type($dt))
            }
            fn read(
                array: &dyn Array,
                table: &'static str,
                column: &'static str,
            ) -> Result<Vec<Self>, ModelError> {
                let $a = array
                    .as_any()
                    .downcast_ref::<$array>()
                    .ok_or_else(|| wrong_type(table, column, array, $dt))?;
                (0..$a.len())
                    .map(|$i| {
                        if $a.is_null($i) {
                            Err(ModelError::UnexpectedNull {
                                table,
                                column,
                                row: $i,
                            })
                        } else {
                            Ok($get)
                        }
                    })
                    .collect()
            }
        }
    };
}

// `with_data_type` exists on primitive arrays only; strings and booleans get a no-op shim.
trait WithDataType: Sized {
    fn with_data_type(self, _dt: DataType) -> Self {
        self
    }
}
impl WithDataType for StringArray {}
impl WithDataType for BooleanArray {}

optional_column!(
    String,
    DataType::Utf8,
    StringBuilder,
    StringArray,
    |b, v| b.append_value(v),
    |a, i| a.value(i).to_owned()
);
optional_column!(
    bool,
    DataType::Boolean,
    BooleanBuilder,
    BooleanArray,
    |b, v| b.append_value(*v),
    |a, i| a.value(i)
);
optional_column!(
    f64,
    DataType::Float64,
    Float64Builder,
    Float64Array,
    |b, v| b.append_value(*v),
    |a, i| a.value(i)
);
optional_column!(
    i32,
    DataType::Int32,
    Int32Builder,
    Int32Array,
    |b, v| b.append_value(*v),
    |a, i| a.value(i)
);
optional_column!(
    NaiveDate,
    DataType::Date32,
    Date32Builder,
    Date32Array,
    |b, v| b.append_value(date_to_days(v)),
    |a, i| days_to_date(a.value(i))
);
optional_column!(
    DateTime<Utc>,
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
    TimestampMicrosecondBuilder,
    TimestampMicrosecondArray,
    |b, v| b.append_value(v.timestamp_micros()),
    |a, i| DateTime::<Utc>::from_timestamp_micros(a.value(i)).unwrap_or_default()
);
