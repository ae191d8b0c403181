//! SQL functions that give SQLite PostgreSQL's data exceptions.
//!
//! SQLite answers `1/0` with NULL, casts `'abc'` to the integer 0 and keeps an integer that
//! is too wide for the type it was cast to; PostgreSQL raises an error with a SQLSTATE. The
//! rewrite (`sql::rewrite`) sends divisors, integer arithmetic and casts through the
//! functions here, which return a good value unchanged (or converted as the cast asks) and
//! raise PostgreSQL's error otherwise. Column references are never wrapped: only the
//! operators and casts a statement spells out cost a call.
//!
//! The checks of input text (`integer_from_text`, `check_numeric_text`, `check_datetime_text`,
//! ...) are plain functions of the text, so other conversions can reuse them.

use rusqlite::Connection;
use rusqlite::functions::{Context, FunctionFlags};
use rusqlite::types::{Value, ValueRef};

use super::error::{StorageErrorKind as K, function_error};
use crate::sql::types::PgType;

/// `sg_nonzero(divisor)`: the divisor, or `22012` if it is zero.
pub(crate) const NONZERO: &str = "sg_nonzero";

/// `sg_mod(a, b)`: PostgreSQL's `%`. SQLite's truncates fractional operands to integers
/// (`-7 % 2.5` is -1, PostgreSQL's is -2.0) and answers NULL for a zero divisor.
pub(crate) const MODULO: &str = "sg_mod";

/// The function that checks the result of integer arithmetic of type `ty` fits it.
pub(crate) fn arithmetic_check(ty: PgType) -> Option<&'static str> {
    match ty {
        PgType::Int2 => Some("sg_int2"),
        PgType::Int4 => Some("sg_int4"),
        PgType::Int8 => Some("sg_int8"),
        _ => None,
    }
}

/// One float operation: its operator, the suffix of its function's name, what it computes.
type FloatOperation = (char, &'static str, fn(f64, f64) -> f64);

/// The operations of float arithmetic, by their operator.
const FLOAT_OPERATIONS: [FloatOperation; 4] = [
    ('+', "add", |a, b| a + b),
    ('-', "sub", |a, b| a - b),
    ('*', "mul", |a, b| a * b),
    ('/', "div", |a, b| a / b),
];

/// The function `a <operator> b` becomes when its result is a float of type `ty`: SQLite
/// overflows to Infinity, PostgreSQL raises `22003` (unless an operand was infinite).
pub(crate) fn float_arithmetic(ty: PgType, operator: char) -> Option<String> {
    let width = match ty {
        PgType::Float4 => "float4",
        PgType::Float8 => "float8",
        _ => return None,
    };
    FLOAT_OPERATIONS
        .iter()
        .find(|(op, _, _)| *op == operator)
        .map(|(_, name, _)| format!("sg_{width}_{name}"))
}

/// The function a cast to `ty` becomes, where SQLite's `CAST` would not raise PostgreSQL's
/// errors. An integer cast takes a second argument, `1`, when its operand is a float (which
/// rounds half to even, where numeric rounds half away from zero).
pub(crate) fn cast_function(ty: PgType) -> Option<&'static str> {
    Some(match ty {
        PgType::Int2 => "sg_cast_int2",
        PgType::Int4 => "sg_cast_int4",
        PgType::Int8 => "sg_cast_int8",
        PgType::Numeric => "sg_cast_numeric",
        PgType::Float4 => "sg_cast_float4",
        PgType::Float8 => "sg_cast_float8",
        PgType::Bool => "sg_cast_bool",
        PgType::Uuid => "sg_cast_uuid",
        PgType::Date => "sg_cast_date",
        PgType::Timestamp => "sg_cast_timestamp",
        PgType::Timestamptz => "sg_cast_timestamptz",
        PgType::Json | PgType::Jsonb => "sg_cast_json",
        _ => return None,
    })
}

/// The name PostgreSQL's messages give a type.
fn type_name(ty: PgType) -> &'static str {
    match ty {
        PgType::Int2 => "smallint",
        PgType::Int4 => "integer",
        PgType::Int8 => "bigint",
        PgType::Numeric => "numeric",
        PgType::Float4 => "real",
        PgType::Float8 => "double precision",
        PgType::Bool => "boolean",
        PgType::Uuid => "uuid",
        PgType::Date => "date",
        PgType::Timestamp => "timestamp",
        PgType::Timestamptz => "timestamp with time zone",
        PgType::Json => "json",
        PgType::Jsonb => "jsonb",
        _ => "text",
    }
}

/// A value that does not fit its type or is not valid input for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DataError {
    pub kind: K,
    pub message: String,
}

impl DataError {
    /// The data exception for a value the SQL layer refused.
    pub(crate) fn from_sql(error: &crate::sql::error::SqlError) -> Self {
        use crate::sql::error::SqlError;
        let kind = match error {
            SqlError::InvalidDatetime(_) => K::InvalidDatetimeFormat,
            SqlError::InvalidParameter(_) => K::InvalidTextRepresentation,
            SqlError::OutOfRange(_) => K::NumericOutOfRange,
            _ => K::FeatureNotSupported,
        };
        DataError::new(kind, error.to_string())
    }

    fn new(kind: K, message: impl Into<String>) -> Self {
        DataError {
            kind,
            message: message.into(),
        }
    }

    fn invalid_text(ty: PgType, text: &str) -> Self {
        DataError::new(
            K::InvalidTextRepresentation,
            format!(
                "invalid input syntax for type {}: \"{text}\"",
                type_name(ty)
            ),
        )
    }

    fn out_of_range(ty: PgType) -> Self {
        DataError::new(
            K::NumericOutOfRange,
            format!("{} out of range", type_name(ty)),
        )
    }
}

impl From<DataError> for rusqlite::Error {
    fn from(error: DataError) -> Self {
        function_error(error.kind, error.message)
    }
}

/// 2^63: the smallest float magnitude no bigint holds (i64::MIN aside).
const TWO_POW_63: f64 = 9_223_372_036_854_775_808.0;

fn bounds(ty: PgType) -> (i64, i64) {
    match ty {
        PgType::Int2 => (i16::MIN.into(), i16::MAX.into()),
        PgType::Int4 => (i32::MIN.into(), i32::MAX.into()),
        _ => (i64::MIN, i64::MAX),
    }
}

fn integer_in_range(value: i64, ty: PgType) -> Result<i64, DataError> {
    let (low, high) = bounds(ty);
    if (low..=high).contains(&value) {
        Ok(value)
    } else {
        Err(DataError::out_of_range(ty))
    }
}

/// A float that is already a whole number as an integer of type `ty`.
fn whole_float_in_range(value: f64, ty: PgType) -> Result<i64, DataError> {
    let (low, high) = bounds(ty);
    // `high + 1` as a float is exact for every type (2^63 for bigint, as i64::MAX rounds up),
    // so the comparison is exact too; NaN fails it.
    let fits = value >= low as f64 && value < high as f64 + 1.0;
    if fits {
        Ok(value as i64)
    } else {
        Err(DataError::out_of_range(ty))
    }
}

/// PostgreSQL 15's integer input: optional surrounding whitespace, an optional sign, digits.
pub(crate) fn integer_from_text(text: &str, ty: PgType) -> Result<i64, DataError> {
    let trimmed = text.trim();
    let digits = trimmed.strip_prefix(['+', '-']).unwrap_or(trimmed);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(DataError::invalid_text(ty, text));
    }
    let out_of_range = || {
        DataError::new(
            K::NumericOutOfRange,
            format!(
                "value \"{text}\" is out of range for type {}",
                type_name(ty)
            ),
        )
    };
    let value: i64 = trimmed.parse().map_err(|_| out_of_range())?;
    integer_in_range(value, ty).map_err(|_| out_of_range())
}

/// What a numeric input text holds, for the conversion to SQLite's storage.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum NumericText {
    Integer(i64),
    Float(f64),
    NaN,
}

/// PostgreSQL's numeric input: `[+-]digits[.digits][e[+-]digits]`, `NaN`, `[+-]Infinity`.
pub(crate) fn check_numeric_text(text: &str) -> Result<NumericText, DataError> {
    let trimmed = text.trim();
    let unsigned = trimmed.strip_prefix(['+', '-']).unwrap_or(trimmed);
    let special = unsigned.to_ascii_lowercase();
    if special == "nan" && unsigned.len() == trimmed.len() {
        return Ok(NumericText::NaN);
    }
    if special == "infinity" || special == "inf" {
        let negative = trimmed.starts_with('-');
        return Ok(NumericText::Float(if negative {
            f64::NEG_INFINITY
        } else {
            f64::INFINITY
        }));
    }
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(at) => (&unsigned[..at], Some(&unsigned[at + 1..])),
        None => (unsigned, None),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok =
        !(whole.is_empty() && fraction.is_empty()) && all_digits(whole) && all_digits(fraction);
    let exponent_ok = exponent.is_none_or(|e| {
        let digits = e.strip_prefix(['+', '-']).unwrap_or(e);
        !digits.is_empty() && all_digits(digits)
    });
    if !mantissa_ok || !exponent_ok {
        return Err(DataError::invalid_text(PgType::Numeric, text));
    }
    if !mantissa.contains('.')
        && exponent.is_none()
        && let Ok(integer) = trimmed.parse::<i64>()
    {
        return Ok(NumericText::Integer(integer));
    }
    trimmed
        .parse::<f64>()
        .map(NumericText::Float)
        .map_err(|_| DataError::invalid_text(PgType::Numeric, text))
}

/// PostgreSQL's float input: a decimal number, `NaN`, `[+-]Infinity` or `[+-]inf`.
pub(crate) fn float_from_text(text: &str, ty: PgType) -> Result<f64, DataError> {
    let trimmed = text.trim();
    let value: f64 = trimmed
        .parse()
        .map_err(|_| DataError::invalid_text(ty, text))?;
    let spelled_infinite = trimmed
        .trim_start_matches(['+', '-'])
        .to_ascii_lowercase()
        .starts_with("inf");
    let too_big = match ty {
        PgType::Float4 => value.is_finite() && value.abs() > f64::from(f32::MAX),
        _ => false,
    };
    if (value.is_infinite() && !spelled_infinite) || too_big {
        return Err(DataError::new(
            K::NumericOutOfRange,
            format!("\"{text}\" is out of range for type {}", type_name(ty)),
        ));
    }
    Ok(value)
}

fn not_a_number() -> DataError {
    DataError::new(
        K::FeatureNotSupported,
        "NaN is not supported: SQLite stores it as NULL",
    )
}

/// Rounds and checks a numeric for `numeric(precision, scale)`.
pub(crate) fn numeric_with_typmod(
    value: f64,
    precision: i64,
    scale: i64,
) -> Result<f64, DataError> {
    let factor = 10f64.powi(scale as i32);
    let rounded = if scale > 0 {
        (value * factor).round() / factor
    } else {
        value.round()
    };
    if !rounded.is_finite() || rounded.abs() >= 10f64.powi((precision - scale) as i32) {
        return Err(DataError::new(
            K::NumericOutOfRange,
            "numeric field overflow",
        ));
    }
    Ok(rounded)
}

/// The date and time input forms shardgate checks: ISO dates, optionally followed by a time
/// (`T` or a space) and a zone, and PostgreSQL's special words.
pub(crate) fn check_datetime_text(text: &str, ty: PgType) -> Result<(), DataError> {
    let trimmed = text.trim();
    let lower = trimmed.to_ascii_lowercase();
    let specials = [
        "infinity",
        "+infinity",
        "-infinity",
        "epoch",
        "now",
        "today",
        "tomorrow",
        "yesterday",
    ];
    if specials.contains(&lower.as_str()) {
        return Ok(());
    }
    let invalid = || {
        DataError::new(
            K::InvalidDatetimeFormat,
            format!(
                "invalid input syntax for type {}: \"{text}\"",
                type_name(ty)
            ),
        )
    };
    let overflow = || {
        DataError::new(
            K::DatetimeFieldOverflow,
            format!("date/time field value out of range: \"{text}\""),
        )
    };
    let mut rest = trimmed;
    let number = |rest: &mut &str, min_len: usize, max_len: usize| -> Option<u32> {
        let len = rest.bytes().take_while(u8::is_ascii_digit).count();
        if len < min_len || len > max_len {
            return None;
        }
        let (digits, tail) = rest.split_at(len);
        *rest = tail;
        digits.parse().ok()
    };
    let separator = |rest: &mut &str, c: char| -> Option<()> {
        *rest = rest.strip_prefix(c)?;
        Some(())
    };
    let year = number(&mut rest, 4, 7).ok_or_else(invalid)?;
    separator(&mut rest, '-').ok_or_else(invalid)?;
    let month = number(&mut rest, 1, 2).ok_or_else(invalid)?;
    separator(&mut rest, '-').ok_or_else(invalid)?;
    let day = number(&mut rest, 1, 2).ok_or_else(invalid)?;
    if year == 0 || !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return Err(overflow());
    }
    let max_year = if ty == PgType::Date {
        5_874_897
    } else {
        294_276
    };
    if year > max_year {
        return Err(DataError::new(
            K::DatetimeFieldOverflow,
            format!(
                "{} out of range: \"{text}\"",
                if ty == PgType::Date {
                    "date"
                } else {
                    "timestamp"
                }
            ),
        ));
    }
    if let Some(time) = rest.strip_prefix(['T', 't', ' ']) {
        let mut time = time.trim_start();
        let hour = number(&mut time, 1, 2).ok_or_else(invalid)?;
        separator(&mut time, ':').ok_or_else(invalid)?;
        let minute = number(&mut time, 2, 2).ok_or_else(invalid)?;
        let mut second = 0;
        let mut fraction = 0;
        if separator(&mut time, ':').is_some() {
            second = number(&mut time, 2, 2).ok_or_else(invalid)?;
            if separator(&mut time, '.').is_some() {
                fraction = number(&mut time, 1, 9).ok_or_else(invalid)?;
            }
        }
        let midnight_end = hour == 24 && minute == 0 && second == 0 && fraction == 0;
        if (hour > 23 && !midnight_end) || minute > 59 || second > 60 {
            return Err(overflow());
        }
        rest = time;
    }
    check_zone(rest.trim_start()).ok_or_else(invalid)
}

/// A zone after a time: nothing, `Z`, `UTC`/`GMT`, or `±HH[[:]MM[[:]SS]]`.
fn check_zone(zone: &str) -> Option<()> {
    let upper = zone.to_ascii_uppercase();
    if matches!(upper.as_str(), "" | "Z" | "UTC" | "GMT") {
        return Some(());
    }
    // A zone name (`Europe/Paris`, `PST`): which names exist is the zone database's business.
    if zone.starts_with(|c: char| c.is_ascii_alphabetic())
        && zone
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '_' | '+' | '-'))
    {
        return Some(());
    }
    let offset = zone.strip_prefix(['+', '-'])?;
    let digits: String = offset.chars().filter(|c| *c != ':').collect();
    let valid = !digits.is_empty()
        && digits.len() <= 6
        && digits.len().is_multiple_of(2)
        && digits.bytes().all(|b| b.is_ascii_digit())
        && offset.bytes().next().is_some_and(|b| b.is_ascii_digit());
    valid.then_some(())
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        4 | 6 | 9 | 11 => 30,
        2 if year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400)) => {
            29
        }
        2 => 28,
        _ => 31,
    }
}

/// The canonical text of a date input: `YYYY-MM-DD` without the time a timestamp text has.
fn date_text(text: &str) -> Result<String, DataError> {
    check_datetime_text(text, PgType::Date)?;
    let trimmed = text.trim();
    let mut parts = trimmed.splitn(3, '-');
    let (Some(year), Some(month), Some(rest)) = (parts.next(), parts.next(), parts.next()) else {
        // A special word (`infinity`, `epoch`, ...): kept as written.
        return Ok(trimmed.to_string());
    };
    let day: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let number = |s: &str| s.parse::<u32>().unwrap_or_default();
    Ok(format!(
        "{:04}-{:02}-{:02}",
        number(year),
        number(month),
        number(&day)
    ))
}

fn text_of<'a>(value: &'a ValueRef<'_>) -> Option<std::borrow::Cow<'a, str>> {
    match value {
        ValueRef::Text(t) => Some(String::from_utf8_lossy(t)),
        _ => None,
    }
}

fn owned(value: ValueRef<'_>) -> Value {
    match value {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::Integer(i),
        ValueRef::Real(f) => Value::Real(f),
        ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => Value::Blob(b.to_vec()),
    }
}

fn nonzero(ctx: &Context<'_>) -> rusqlite::Result<Value> {
    let divisor = ctx.get_raw(0);
    let zero = match divisor {
        ValueRef::Integer(i) => i == 0,
        ValueRef::Real(f) => f == 0.0,
        ValueRef::Text(_) => {
            text_of(&divisor).and_then(|t| t.trim().parse::<f64>().ok()) == Some(0.0)
        }
        _ => false,
    };
    if zero {
        return Err(DataError::new(K::DivisionByZero, "division by zero").into());
    }
    Ok(owned(divisor))
}

/// A number from an operand of arithmetic: integers stay integers, numeric text is read as
/// SQLite reads it, other text is invalid input.
fn operand(value: ValueRef<'_>) -> Result<Option<NumericText>, DataError> {
    Ok(match value {
        ValueRef::Null => None,
        ValueRef::Integer(i) => Some(NumericText::Integer(i)),
        ValueRef::Real(f) => Some(NumericText::Float(f)),
        other => Some(check_numeric_text(&text_of(&other).unwrap_or_default())?),
    })
}

fn modulo(ctx: &Context<'_>) -> rusqlite::Result<Value> {
    let (Some(dividend), Some(divisor)) = (operand(ctx.get_raw(0))?, operand(ctx.get_raw(1))?)
    else {
        return Ok(Value::Null);
    };
    let float = float_of;
    match (dividend, divisor) {
        (_, b) if float(b) == 0.0 => {
            Err(DataError::new(K::DivisionByZero, "division by zero").into())
        }
        // i64::MIN % -1 overflows in Rust; PostgreSQL answers 0.
        (NumericText::Integer(a), NumericText::Integer(b)) => {
            Ok(Value::Integer(a.checked_rem(b).unwrap_or(0)))
        }
        (a, b) => Ok(Value::Real(float(a) % float(b))),
    }
}

fn float_of(n: NumericText) -> f64 {
    match n {
        NumericText::Integer(i) => i as f64,
        NumericText::Float(f) => f,
        NumericText::NaN => f64::NAN,
    }
}

fn float_result(
    ctx: &Context<'_>,
    ty: PgType,
    operator: char,
    operation: fn(f64, f64) -> f64,
) -> rusqlite::Result<Value> {
    let (Some(a), Some(b)) = (operand(ctx.get_raw(0))?, operand(ctx.get_raw(1))?) else {
        return Ok(Value::Null);
    };
    let (a, b) = (float_of(a), float_of(b));
    let result = operation(a, b);
    let too_wide = ty == PgType::Float4 && result.is_finite() && result.abs() > f64::from(f32::MAX);
    if (result.is_infinite() && a.is_finite() && b.is_finite()) || too_wide {
        return Err(DataError::new(K::NumericOutOfRange, "value out of range: overflow").into());
    }
    // PostgreSQL's float8_mul and float8_div: a zero from nonzero operands underflowed.
    let underflow = result == 0.0
        && a != 0.0
        && match operator {
            '*' => b != 0.0,
            '/' => b.is_finite(),
            _ => false,
        };
    if underflow {
        return Err(DataError::new(K::NumericOutOfRange, "value out of range: underflow").into());
    }
    if result.is_nan() {
        return Err(not_a_number().into());
    }
    Ok(Value::Real(result))
}

/// The result of integer arithmetic: an integer in the type's range. SQLite turns a 64-bit
/// result that overflowed into a float of magnitude 2^63 or more (-2^63 too, which as an
/// integer would fit); a smaller float means the operands were not integers after all (the
/// rewrite types them from the schema), and it passes unchanged.
fn arithmetic_result(ctx: &Context<'_>, ty: PgType) -> rusqlite::Result<Value> {
    let value = ctx.get_raw(0);
    match value {
        ValueRef::Integer(i) => Ok(Value::Integer(integer_in_range(i, ty)?)),
        ValueRef::Real(f) if f.abs() >= TWO_POW_63 => Err(DataError::out_of_range(ty).into()),
        other => Ok(owned(other)),
    }
}

fn cast_integer(ctx: &Context<'_>, ty: PgType) -> rusqlite::Result<Value> {
    let value = ctx.get_raw(0);
    let from_float = ctx.len() > 1 && ctx.get_raw(1) == ValueRef::Integer(1);
    Ok(match value {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::Integer(integer_in_range(i, ty)?),
        ValueRef::Real(f) => {
            let rounded = if from_float {
                f.round_ties_even()
            } else {
                f.round()
            };
            Value::Integer(whole_float_in_range(rounded, ty)?)
        }
        ValueRef::Text(_) | ValueRef::Blob(_) => {
            let text = text_of(&value).unwrap_or_default();
            Value::Integer(integer_from_text(&text, ty)?)
        }
    })
}

fn cast_numeric(ctx: &Context<'_>) -> rusqlite::Result<Value> {
    let value = match ctx.get_raw(0) {
        ValueRef::Null => return Ok(Value::Null),
        ValueRef::Integer(i) => NumericText::Integer(i),
        ValueRef::Real(f) => NumericText::Float(f),
        text => check_numeric_text(&text_of(&text).unwrap_or_default())?,
    };
    let typmod = if ctx.len() == 3 {
        match (ctx.get_raw(1), ctx.get_raw(2)) {
            (ValueRef::Integer(precision), ValueRef::Integer(scale)) => Some((precision, scale)),
            _ => None,
        }
    } else {
        None
    };
    Ok(match (value, typmod) {
        (NumericText::NaN, _) => return Err(not_a_number().into()),
        (NumericText::Integer(i), None) => Value::Integer(i),
        (NumericText::Float(f), None) => Value::Real(f),
        (NumericText::Integer(i), Some((precision, scale))) => {
            let checked = numeric_with_typmod(i as f64, precision, scale)?;
            if scale > 0 {
                Value::Real(checked)
            } else {
                Value::Integer(i)
            }
        }
        (NumericText::Float(f), Some((precision, scale))) => {
            Value::Real(numeric_with_typmod(f, precision, scale)?)
        }
    })
}

fn cast_float(ctx: &Context<'_>, ty: PgType) -> rusqlite::Result<Value> {
    let value = ctx.get_raw(0);
    let float = match value {
        ValueRef::Null => return Ok(Value::Null),
        ValueRef::Integer(i) => i as f64,
        ValueRef::Real(f) => {
            if ty == PgType::Float4 && f.is_finite() && f.abs() > f64::from(f32::MAX) {
                return Err(
                    DataError::new(K::NumericOutOfRange, "value out of range: overflow").into(),
                );
            }
            f
        }
        _ => float_from_text(&text_of(&value).unwrap_or_default(), ty)?,
    };
    if float.is_nan() {
        return Err(not_a_number().into());
    }
    Ok(Value::Real(float))
}

fn cast_bool(ctx: &Context<'_>) -> rusqlite::Result<Value> {
    let value = ctx.get_raw(0);
    Ok(match value {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::Integer((i != 0).into()),
        ValueRef::Real(f) => Value::Integer((f != 0.0).into()),
        _ => {
            let text = text_of(&value).unwrap_or_default();
            match crate::sql::rewrite::parse_bool(&text) {
                Some(b) => Value::Integer(b.into()),
                None => return Err(DataError::invalid_text(PgType::Bool, &text).into()),
            }
        }
    })
}

fn cast_uuid(ctx: &Context<'_>) -> rusqlite::Result<Value> {
    let value = ctx.get_raw(0);
    let parsed = match value {
        ValueRef::Null => return Ok(Value::Null),
        ValueRef::Blob(bytes) => uuid::Uuid::from_slice(bytes).ok(),
        _ => text_of(&value).and_then(|t| uuid::Uuid::try_parse(t.trim()).ok()),
    };
    match parsed {
        Some(uuid) => Ok(Value::Text(uuid.hyphenated().to_string())),
        None => {
            let shown = match value {
                ValueRef::Integer(i) => i.to_string(),
                ValueRef::Real(f) => f.to_string(),
                other => text_of(&other).unwrap_or_default().into_owned(),
            };
            Err(DataError::invalid_text(PgType::Uuid, &shown).into())
        }
    }
}

/// Date and time casts check the text and keep it (a date gets its canonical text); how
/// the values are stored is the storage's business, not the check's.
fn cast_datetime(ctx: &Context<'_>, ty: PgType) -> rusqlite::Result<Value> {
    let value = ctx.get_raw(0);
    let Some(text) = text_of(&value) else {
        return Ok(owned(value));
    };
    if ty == PgType::Date {
        return Ok(Value::Text(date_text(&text)?));
    }
    check_datetime_text(&text, ty)?;
    if ty == PgType::Timestamptz {
        // One stored form for every instant (see `sql::datetime`).
        return crate::sql::datetime::to_stored(&text)
            .map(Value::Text)
            .map_err(|e| DataError::from_sql(&e).into());
    }
    Ok(owned(value))
}

fn cast_json(ctx: &Context<'_>) -> rusqlite::Result<Value> {
    let value = ctx.get_raw(0);
    if let Some(text) = text_of(&value)
        && serde_json::from_str::<serde::de::IgnoredAny>(&text).is_err()
    {
        return Err(DataError::invalid_text(PgType::Json, &text).into());
    }
    Ok(owned(value))
}

/// Registers every checking function on `conn`.
pub(crate) fn register(conn: &Connection) -> rusqlite::Result<()> {
    let flags = FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC;
    conn.create_scalar_function(NONZERO, 1, flags, nonzero)?;
    conn.create_scalar_function(MODULO, 2, flags, modulo)?;
    for ty in [PgType::Int2, PgType::Int4, PgType::Int8] {
        if let Some(name) = arithmetic_check(ty) {
            conn.create_scalar_function(name, 1, flags, move |ctx| arithmetic_result(ctx, ty))?;
        }
        if let Some(name) = cast_function(ty) {
            for arity in [1, 2] {
                conn.create_scalar_function(name, arity, flags, move |ctx| cast_integer(ctx, ty))?;
            }
        }
    }
    for ty in [PgType::Float4, PgType::Float8] {
        for (operator, _, operation) in FLOAT_OPERATIONS {
            if let Some(name) = float_arithmetic(ty, operator) {
                conn.create_scalar_function(name.as_str(), 2, flags, move |ctx| {
                    float_result(ctx, ty, operator, operation)
                })?;
            }
        }
    }
    let single =
        |ty: PgType, f: fn(&Context<'_>) -> rusqlite::Result<Value>| -> rusqlite::Result<()> {
            match cast_function(ty) {
                Some(name) => conn.create_scalar_function(name, 1, flags, f),
                None => Ok(()),
            }
        };
    for arity in [1, 3] {
        if let Some(name) = cast_function(PgType::Numeric) {
            conn.create_scalar_function(name, arity, flags, cast_numeric)?;
        }
    }
    single(PgType::Float4, |ctx| cast_float(ctx, PgType::Float4))?;
    single(PgType::Float8, |ctx| cast_float(ctx, PgType::Float8))?;
    single(PgType::Bool, cast_bool)?;
    single(PgType::Uuid, cast_uuid)?;
    single(PgType::Date, |ctx| cast_datetime(ctx, PgType::Date))?;
    single(PgType::Timestamp, |ctx| {
        cast_datetime(ctx, PgType::Timestamp)
    })?;
    single(PgType::Timestamptz, |ctx| {
        cast_datetime(ctx, PgType::Timestamptz)
    })?;
    single(PgType::Json, cast_json)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_text_follows_postgres_15() {
        assert_eq!(integer_from_text(" 42 ", PgType::Int4), Ok(42));
        assert_eq!(integer_from_text("-7", PgType::Int2), Ok(-7));
        for bad in ["abc", "", "1.5", "1_000", "0x10", "+"] {
            assert_eq!(
                integer_from_text(bad, PgType::Int4).map_err(|e| e.kind),
                Err(K::InvalidTextRepresentation),
                "{bad}"
            );
        }
        assert_eq!(
            integer_from_text("2147483648", PgType::Int4).map_err(|e| e.kind),
            Err(K::NumericOutOfRange)
        );
        assert_eq!(
            integer_from_text("99999999999999999999", PgType::Int8).map_err(|e| e.kind),
            Err(K::NumericOutOfRange)
        );
    }

    #[test]
    fn datetime_text_is_checked() {
        for good in [
            "2024-01-05",
            "2024-02-29 23:59:59.123456",
            "2024-01-05T10:00:00Z",
            "2024-01-05 10:00:00+02:00",
            "2024-01-05 24:00:00",
            "infinity",
        ] {
            assert_eq!(
                check_datetime_text(good, PgType::Timestamptz),
                Ok(()),
                "{good}"
            );
        }
        for (bad, kind) in [
            ("abc", K::InvalidDatetimeFormat),
            ("2024-01-05 10:00 +", K::InvalidDatetimeFormat),
            ("2024-01-05 10", K::InvalidDatetimeFormat),
            ("2023-02-29", K::DatetimeFieldOverflow),
            ("2024-13-01", K::DatetimeFieldOverflow),
            ("2024-01-01 25:00:00", K::DatetimeFieldOverflow),
            ("0000-01-01", K::DatetimeFieldOverflow),
        ] {
            assert_eq!(
                check_datetime_text(bad, PgType::Timestamp).map_err(|e| e.kind),
                Err(kind),
                "{bad}"
            );
        }
        assert_eq!(date_text("2024-1-5 10:00"), Ok("2024-01-05".to_string()));
    }

    #[test]
    fn numeric_text_is_checked() {
        assert_eq!(check_numeric_text("12"), Ok(NumericText::Integer(12)));
        assert_eq!(
            check_numeric_text(" -1.5e2 "),
            Ok(NumericText::Float(-150.0))
        );
        assert_eq!(check_numeric_text(".5"), Ok(NumericText::Float(0.5)));
        assert_eq!(check_numeric_text("NaN"), Ok(NumericText::NaN));
        for bad in ["abc", "1e", ".", "1.2.3", "--1", "inf1"] {
            assert!(check_numeric_text(bad).is_err(), "{bad}");
        }
        assert!(numeric_with_typmod(12345.678, 5, 2).is_err());
        assert_eq!(numeric_with_typmod(123.456, 5, 2), Ok(123.46));
    }
}
