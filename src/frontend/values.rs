//! Converting between SQLite values and PostgreSQL's text and binary wire formats, for the
//! type each column or parameter was declared with. Binary encodings match the reported type
//! exactly: an int4 column is always four bytes.

use bytes::{BufMut, BytesMut};
use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, NaiveTime};
use rusqlite::types::Value;

use crate::sql::datetime;
use crate::sql::error::SqlError;
use crate::sql::rewrite::parse_bool;
use crate::sql::types::{PgType, TypeWithMod};

fn pg_epoch_date() -> NaiveDate {
    NaiveDate::from_ymd_opt(2000, 1, 1).unwrap_or_default()
}

fn pg_epoch() -> NaiveDateTime {
    pg_epoch_date().and_hms_opt(0, 0, 0).unwrap_or_default()
}

fn invalid(ty: PgType, text: &str) -> SqlError {
    SqlError::InvalidParameter(format!(
        "invalid input syntax for type {}: \"{text}\"",
        ty.wire_type().name()
    ))
}

/// The text of a stored value, before type-specific formatting.
fn raw_text(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::Integer(i) => i.to_string(),
        Value::Real(f) => format_float(*f),
        Value::Text(s) => s.clone(),
        Value::Blob(b) => String::from_utf8_lossy(b).into_owned(),
    }
}

fn format_float(f: f64) -> String {
    if f.is_nan() {
        "NaN".into()
    } else if f.is_infinite() {
        if f > 0.0 { "Infinity" } else { "-Infinity" }.into()
    } else {
        // Rust's shortest round-trip form, as PostgreSQL 12+ prints with extra_float_digits.
        let s = format!("{f}");
        s
    }
}

fn as_i64(value: &Value, ty: PgType) -> Result<i64, SqlError> {
    match value {
        Value::Integer(i) => Ok(*i),
        Value::Real(f) if f.fract() == 0.0 => Ok(*f as i64),
        other => {
            let text = raw_text(other);
            text.trim().parse().map_err(|_| invalid(ty, &text))
        }
    }
}

fn as_f64(value: &Value, ty: PgType) -> Result<f64, SqlError> {
    match value {
        Value::Integer(i) => Ok(*i as f64),
        Value::Real(f) => Ok(*f),
        other => {
            let text = raw_text(other);
            parse_float(&text).ok_or_else(|| invalid(ty, &text))
        }
    }
}

fn parse_float(text: &str) -> Option<f64> {
    match text.trim().to_ascii_lowercase().as_str() {
        "nan" => Some(f64::NAN),
        "infinity" | "inf" => Some(f64::INFINITY),
        "-infinity" | "-inf" => Some(f64::NEG_INFINITY),
        t => t.parse().ok(),
    }
}

fn as_bool(value: &Value) -> Result<bool, SqlError> {
    match value {
        Value::Integer(i) => Ok(*i != 0),
        Value::Real(f) => Ok(*f != 0.0),
        other => {
            let text = raw_text(other);
            parse_bool(&text).ok_or_else(|| invalid(PgType::Bool, &text))
        }
    }
}

fn as_timestamp(value: &Value, ty: PgType) -> Result<NaiveDateTime, SqlError> {
    match value {
        Value::Integer(secs) => DateTime::from_timestamp(*secs, 0)
            .map(|d| d.naive_utc())
            .ok_or_else(|| invalid(ty, &secs.to_string())),
        other => {
            let text = raw_text(other);
            datetime::parse(&text, ty).ok_or_else(|| invalid(ty, &text))
        }
    }
}

fn format_timestamp(dt: &NaiveDateTime) -> String {
    let base = dt.format("%Y-%m-%d %H:%M:%S").to_string();
    let micros = dt.and_utc().timestamp_subsec_micros();
    if micros == 0 {
        base
    } else {
        let frac = format!("{micros:06}");
        format!("{base}.{}", frac.trim_end_matches('0'))
    }
}

fn as_date(value: &Value) -> Result<NaiveDate, SqlError> {
    let text = raw_text(value);
    NaiveDate::parse_from_str(text.trim().get(..10).unwrap_or(""), "%Y-%m-%d")
        .map_err(|_| invalid(PgType::Date, &text))
}

fn as_time(value: &Value) -> Result<NaiveTime, SqlError> {
    let text = raw_text(value);
    NaiveTime::parse_from_str(text.trim(), "%H:%M:%S%.f")
        .or_else(|_| NaiveTime::parse_from_str(text.trim(), "%H:%M"))
        .map_err(|_| invalid(PgType::Time, &text))
}

fn bytea_bytes(value: &Value) -> Vec<u8> {
    match value {
        Value::Blob(b) => b.clone(),
        other => raw_text(other).into_bytes(),
    }
}

fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(2 + bytes.len() * 2);
    out.push_str("\\x");
    for b in bytes {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

fn check_range(v: i64, ty: PgType) -> Result<i64, SqlError> {
    match ty.integer_range() {
        Some((low, high)) if v < low || v > high => Err(SqlError::OutOfRange(format!(
            "value {v} is out of range for type {}",
            ty.wire_type().name()
        ))),
        _ => Ok(v),
    }
}

/// A numeric's text: padded or rounded to the declared scale, as PostgreSQL stores it. SQLite
/// keeps numerics as 8-byte floats, so without a declared scale 15 significant digits are
/// printed, which hides binary noise such as 0.1 + 0.2 = 0.30000000000000004.
fn numeric_text(value: &Value, scale: Option<usize>) -> String {
    let float = match value {
        Value::Real(f) => Some(*f),
        Value::Integer(i) if scale.is_some() => Some(*i as f64),
        Value::Text(t) if scale.is_some() => t.trim().parse::<f64>().ok(),
        _ => None,
    };
    match (float, scale) {
        (Some(f), _) if !f.is_finite() => format_float(f),
        (Some(f), Some(scale)) => format!("{f:.scale$}"),
        (Some(f), None) => {
            let digits = 15 - (f.abs().log10().floor() as i32 + 1).clamp(-300, 15);
            let rounded = format!("{f:.prec$}", prec = digits.max(0) as usize);
            if rounded.contains('.') {
                rounded
                    .trim_end_matches('0')
                    .trim_end_matches('.')
                    .to_string()
            } else {
                rounded
            }
        }
        (None, _) => raw_text(value),
    }
}

/// The text form PostgreSQL prints for `value` as type `ty` (with its modifier: a numeric's
/// declared scale).
pub fn to_text(value: &Value, ty: TypeWithMod) -> Result<String, SqlError> {
    Ok(match ty.pg {
        PgType::Bool => if as_bool(value)? { "t" } else { "f" }.to_string(),
        PgType::Int2 | PgType::Int4 | PgType::Int8 | PgType::Oid => {
            as_i64(value, ty.pg)?.to_string()
        }
        PgType::Float4 | PgType::Float8 => format_float(as_f64(value, ty.pg)?),
        PgType::Numeric => numeric_text(value, ty.numeric_scale()),
        PgType::Bytea => hex(&bytea_bytes(value)),
        PgType::Date => as_date(value)?.format("%Y-%m-%d").to_string(),
        PgType::Time => as_time(value)?.format("%H:%M:%S%.f").to_string(),
        PgType::Timestamp => format_timestamp(&as_timestamp(value, ty.pg)?),
        PgType::Timestamptz => format!("{}+00", format_timestamp(&as_timestamp(value, ty.pg)?)),
        _ => raw_text(value),
    })
}

/// Appends `value` as one DataRow field (length prefix included).
pub fn encode_field(
    buf: &mut BytesMut,
    value: &Value,
    declared: TypeWithMod,
    binary: bool,
) -> Result<(), SqlError> {
    if matches!(value, Value::Null) {
        buf.put_i32(-1);
        return Ok(());
    }
    if !binary {
        let text = to_text(value, declared)?;
        buf.put_i32(text.len() as i32);
        buf.put_slice(text.as_bytes());
        return Ok(());
    }
    let ty = declared.pg;
    match ty {
        PgType::Bool => {
            buf.put_i32(1);
            buf.put_u8(as_bool(value)? as u8);
        }
        PgType::Int2 => {
            buf.put_i32(2);
            buf.put_i16(check_range(as_i64(value, ty)?, ty)? as i16);
        }
        PgType::Int4 => {
            buf.put_i32(4);
            buf.put_i32(check_range(as_i64(value, ty)?, ty)? as i32);
        }
        PgType::Oid => {
            buf.put_i32(4);
            buf.put_u32(as_i64(value, ty)? as u32);
        }
        PgType::Int8 => {
            buf.put_i32(8);
            buf.put_i64(as_i64(value, ty)?);
        }
        PgType::Float4 => {
            buf.put_i32(4);
            buf.put_f32(as_f64(value, ty)? as f32);
        }
        PgType::Float8 => {
            buf.put_i32(8);
            buf.put_f64(as_f64(value, ty)?);
        }
        PgType::Numeric => {
            let text = to_text(value, declared)?;
            let encoded = numeric_binary(&text).ok_or_else(|| invalid(ty, &text))?;
            buf.put_i32(encoded.len() as i32);
            buf.put_slice(&encoded);
        }
        PgType::Date => {
            let days = (as_date(value)? - pg_epoch_date()).num_days();
            buf.put_i32(4);
            buf.put_i32(days as i32);
        }
        PgType::Time => {
            let t = as_time(value)?;
            let micros = (t - NaiveTime::MIN).num_microseconds().unwrap_or(0);
            buf.put_i32(8);
            buf.put_i64(micros);
        }
        PgType::Timestamp | PgType::Timestamptz => {
            let dt = as_timestamp(value, ty)?;
            let micros = (dt - pg_epoch()).num_microseconds().unwrap_or(i64::MAX);
            buf.put_i32(8);
            buf.put_i64(micros);
        }
        PgType::Uuid => {
            let text = raw_text(value);
            let uuid = uuid::Uuid::parse_str(text.trim()).map_err(|_| invalid(ty, &text))?;
            buf.put_i32(16);
            buf.put_slice(uuid.as_bytes());
        }
        PgType::Jsonb => {
            let text = raw_text(value);
            buf.put_i32(text.len() as i32 + 1);
            buf.put_u8(1);
            buf.put_slice(text.as_bytes());
        }
        PgType::Bytea => {
            let bytes = bytea_bytes(value);
            buf.put_i32(bytes.len() as i32);
            buf.put_slice(&bytes);
        }
        _ => {
            let text = raw_text(value);
            buf.put_i32(text.len() as i32);
            buf.put_slice(text.as_bytes());
        }
    }
    Ok(())
}

/// PostgreSQL's binary numeric: base-10000 digits with weight, sign and display scale.
fn numeric_binary(text: &str) -> Option<Vec<u8>> {
    let text = text.trim();
    let mut out = Vec::new();
    if text.eq_ignore_ascii_case("nan") {
        for v in [0i16, 0, 0xC000u16 as i16, 0] {
            out.extend_from_slice(&v.to_be_bytes());
        }
        return Some(out);
    }
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    // Expand exponent notation (from REAL values) into plain decimal.
    let plain = if digits.contains(['e', 'E']) {
        let value: f64 = digits.parse().ok()?;
        format!("{value:.15}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
    } else {
        digits.to_string()
    };
    let (int_part, frac_part) = plain.split_once('.').unwrap_or((&plain, ""));
    if !int_part.chars().all(|c| c.is_ascii_digit())
        || !frac_part.chars().all(|c| c.is_ascii_digit())
    {
        return None;
    }
    let dscale = frac_part.len();
    let int_part = int_part.trim_start_matches('0');
    // Pad the integer part on the left and the fraction on the right to groups of 4.
    let int_pad = (4 - int_part.len() % 4) % 4;
    let frac_pad = (4 - frac_part.len() % 4) % 4;
    let int_digits = format!("{}{}", "0".repeat(int_pad), int_part);
    let frac_digits = format!("{}{}", frac_part, "0".repeat(frac_pad));
    let mut groups: Vec<i16> = Vec::new();
    for chunk in int_digits
        .as_bytes()
        .chunks(4)
        .chain(frac_digits.as_bytes().chunks(4))
    {
        let s = std::str::from_utf8(chunk).ok()?;
        groups.push(s.parse().ok()?);
    }
    let mut weight = (int_digits.len() / 4) as i16 - 1;
    while groups.first() == Some(&0) {
        groups.remove(0);
        weight -= 1;
    }
    while groups.last() == Some(&0) {
        groups.pop();
    }
    if groups.is_empty() {
        weight = 0;
    }
    let sign: u16 = if negative && !groups.is_empty() {
        0x4000
    } else {
        0
    };
    out.extend_from_slice(&(groups.len() as i16).to_be_bytes());
    out.extend_from_slice(&weight.to_be_bytes());
    out.extend_from_slice(&sign.to_be_bytes());
    out.extend_from_slice(&(dscale as u16).to_be_bytes());
    for g in groups {
        out.extend_from_slice(&g.to_be_bytes());
    }
    Some(out)
}

/// `numeric_recv`'s limits: at most NUMERIC_MAX_PRECISION + NUMERIC_MAX_RESULT_SCALE digits
/// of base 10000, a display scale within NUMERIC_DSCALE_MASK.
const NUMERIC_MAX_DIGITS: u16 = 1000 + 2000;
const NUMERIC_DSCALE_MASK: u16 = 0x3FFF;
const NUMERIC_POS: u16 = 0x0000;
const NUMERIC_NEG: u16 = 0x4000;
const NUMERIC_NAN: u16 = 0xC000;
const NUMERIC_PINF: u16 = 0xD000;
const NUMERIC_NINF: u16 = 0xF000;

/// The decimal text of a binary numeric, validated as PostgreSQL's `numeric_recv` does. Every
/// count in the header is checked before it is used, so no input makes the output longer than
/// the digits the header may describe (a few hundred kilobytes at most).
fn numeric_from_binary(bytes: &[u8]) -> Result<String, SqlError> {
    let invalid_field = |what: &str| {
        SqlError::InvalidBinary(format!("invalid {what} in external \"numeric\" value"))
    };
    if bytes.len() < 8 || !bytes.len().is_multiple_of(2) {
        return Err(incorrect_binary(PgType::Numeric));
    }
    let words: Vec<u16> = bytes
        .chunks_exact(2)
        .map(|pair| u16::from_be_bytes([pair[0], pair[1]]))
        .collect();
    let [ndigits, weight, sign, dscale, digits @ ..] = words.as_slice() else {
        return Err(incorrect_binary(PgType::Numeric));
    };
    if *ndigits > NUMERIC_MAX_DIGITS {
        return Err(invalid_field("length"));
    }
    if digits.len() != usize::from(*ndigits) {
        return Err(incorrect_binary(PgType::Numeric));
    }
    if digits.iter().any(|d| *d > 9999) {
        return Err(invalid_field("digit"));
    }
    if ![
        NUMERIC_POS,
        NUMERIC_NEG,
        NUMERIC_NAN,
        NUMERIC_PINF,
        NUMERIC_NINF,
    ]
    .contains(sign)
    {
        return Err(invalid_field("sign"));
    }
    if *dscale & !NUMERIC_DSCALE_MASK != 0 {
        return Err(invalid_field("scale"));
    }
    let negative = match *sign {
        NUMERIC_NAN => return Ok("NaN".into()),
        NUMERIC_PINF => return Ok("Infinity".into()),
        NUMERIC_NINF => return Ok("-Infinity".into()),
        sign => sign == NUMERIC_NEG,
    };
    let weight = i32::from(*weight as i16);
    let dscale = usize::from(*dscale);
    let digit_at = |position: i32| -> u16 {
        usize::try_from(position)
            .ok()
            .and_then(|i| digits.get(i))
            .copied()
            .unwrap_or(0)
    };
    let mut text = String::new();
    for position in 0..=weight {
        text.push_str(&format!("{:04}", digit_at(position)));
    }
    let int_part = text.trim_start_matches('0');
    let mut text = if int_part.is_empty() {
        "0".to_string()
    } else {
        int_part.to_string()
    };
    if dscale > 0 {
        // Digits beyond the display scale are cut off, as numeric_recv does.
        let mut frac = String::with_capacity(dscale + 4);
        let mut position = weight + 1;
        while frac.len() < dscale {
            frac.push_str(&format!("{:04}", digit_at(position)));
            position += 1;
        }
        frac.truncate(dscale);
        text.push('.');
        text.push_str(&frac);
    }
    let is_zero = text.bytes().all(|b| b == b'0' || b == b'.');
    Ok(if negative && !is_zero {
        format!("-{text}")
    } else {
        text
    })
}

/// Decodes a parameter (or COPY field) sent as text.
pub fn from_text(text: &str, ty: PgType) -> Result<Value, SqlError> {
    Ok(match ty {
        PgType::Bool => Value::Integer(parse_bool(text).ok_or_else(|| invalid(ty, text))? as i64),
        PgType::Int2 | PgType::Int4 | PgType::Int8 | PgType::Oid => {
            let v: i64 = text.trim().parse().map_err(|_| invalid(ty, text))?;
            Value::Integer(check_range(v, ty)?)
        }
        PgType::Float4 | PgType::Float8 => {
            Value::Real(parse_float(text).ok_or_else(|| invalid(ty, text))?)
        }
        PgType::Numeric => {
            let t = text.trim();
            if let Ok(i) = t.parse::<i64>() {
                Value::Integer(i)
            } else if t.parse::<f64>().is_ok() {
                Value::Text(t.to_string())
            } else {
                return Err(invalid(ty, text));
            }
        }
        PgType::Bytea => match text.strip_prefix("\\x") {
            Some(hexdigits) => Value::Blob(decode_hex(hexdigits).ok_or_else(|| invalid(ty, text))?),
            None => Value::Blob(text.as_bytes().to_vec()),
        },
        PgType::Timestamp => {
            let dt = datetime::parse(text, ty).ok_or_else(|| invalid(ty, text))?;
            Value::Text(format_timestamp(&dt))
        }
        PgType::Timestamptz => Value::Text(datetime::to_stored(text)?),
        PgType::Date => Value::Text(
            as_date(&Value::Text(text.to_string()))?
                .format("%Y-%m-%d")
                .to_string(),
        ),
        PgType::Uuid => Value::Text(
            uuid::Uuid::parse_str(text.trim())
                .map_err(|_| invalid(ty, text))?
                .to_string(),
        ),
        _ => Value::Text(text.to_string()),
    })
}

fn decode_hex(digits: &str) -> Option<Vec<u8>> {
    if !digits.len().is_multiple_of(2) {
        return None;
    }
    (0..digits.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(digits.get(i..i + 2)?, 16).ok())
        .collect()
}

fn incorrect_binary(ty: PgType) -> SqlError {
    SqlError::InvalidBinary(format!(
        "incorrect binary data format in bind parameter of type {}",
        ty.wire_type().name()
    ))
}

/// PostgreSQL's special binary values for `-infinity` and `infinity` (DT_NOBEGIN/DT_NOEND and
/// DATEVAL_NOBEGIN/DATEVAL_NOEND).
fn infinite(ty: PgType) -> SqlError {
    SqlError::Unsupported(format!(
        "infinite {} values are not supported",
        ty.wire_type().name()
    ))
}

/// `IS_VALID_DATE`: days since 2000-01-01 from 4714-11-24 BC to 5874897-12-31.
const DATE_DAYS: std::ops::Range<i64> = -2_451_545..2_145_031_949;
/// `IS_VALID_TIMESTAMP`: microseconds since 2000-01-01 from 4714-11-24 BC to 294276-12-31.
const TIMESTAMP_MICROS: std::ops::Range<i64> = -211_813_488_000_000_000..9_223_371_331_200_000_000;
const MICROS_PER_DAY: i64 = 86_400_000_000;

/// Stored dates and timestamps are ISO text, which has no BC years and sorts wrongly past year
/// 9999: PostgreSQL values outside years 1 to 9999 are refused rather than misstored.
fn unrepresentable(ty: PgType) -> SqlError {
    SqlError::Unsupported(format!(
        "{} values outside the years 1 to 9999 are not supported",
        ty.wire_type().name()
    ))
}

fn representable(date: NaiveDate, ty: PgType) -> Result<NaiveDate, SqlError> {
    if (1..=9999).contains(&date.year()) {
        Ok(date)
    } else {
        Err(unrepresentable(ty))
    }
}

fn out_of_range(ty: PgType) -> SqlError {
    SqlError::DatetimeOutOfRange(format!("{} out of range", ty.wire_type().name()))
}

fn date_from_binary(days: i32) -> Result<NaiveDate, SqlError> {
    if days == i32::MIN || days == i32::MAX {
        return Err(infinite(PgType::Date));
    }
    let days = i64::from(days);
    if !DATE_DAYS.contains(&days) {
        return Err(out_of_range(PgType::Date));
    }
    let date = chrono::TimeDelta::try_days(days)
        .and_then(|delta| pg_epoch_date().checked_add_signed(delta))
        .ok_or_else(|| unrepresentable(PgType::Date))?;
    representable(date, PgType::Date)
}

fn timestamp_from_binary(micros: i64, ty: PgType) -> Result<NaiveDateTime, SqlError> {
    if micros == i64::MIN || micros == i64::MAX {
        return Err(infinite(ty));
    }
    if !TIMESTAMP_MICROS.contains(&micros) {
        return Err(out_of_range(ty));
    }
    let dt = pg_epoch()
        .checked_add_signed(chrono::TimeDelta::microseconds(micros))
        .ok_or_else(|| unrepresentable(ty))?;
    representable(dt.date(), ty).map(|_| dt)
}

/// A fixed-width binary value: exactly `N` bytes.
fn exact_width<const N: usize>(bytes: &[u8], ty: PgType) -> Result<[u8; N], SqlError> {
    bytes.try_into().map_err(|_| incorrect_binary(ty))
}

/// Decodes a parameter sent in binary.
pub fn from_binary(bytes: &[u8], ty: PgType) -> Result<Value, SqlError> {
    Ok(match ty {
        PgType::Bool => Value::Integer((u8::from_be_bytes(exact_width(bytes, ty)?) != 0) as i64),
        PgType::Int2 => Value::Integer(i16::from_be_bytes(exact_width(bytes, ty)?) as i64),
        PgType::Int4 => Value::Integer(i32::from_be_bytes(exact_width(bytes, ty)?) as i64),
        PgType::Oid => Value::Integer(u32::from_be_bytes(exact_width(bytes, ty)?) as i64),
        PgType::Int8 => Value::Integer(i64::from_be_bytes(exact_width(bytes, ty)?)),
        PgType::Float4 => Value::Real(f32::from_be_bytes(exact_width(bytes, ty)?) as f64),
        PgType::Float8 => Value::Real(f64::from_be_bytes(exact_width(bytes, ty)?)),
        PgType::Numeric => from_text(&numeric_from_binary(bytes)?, ty)?,
        PgType::Date => {
            let date = date_from_binary(i32::from_be_bytes(exact_width(bytes, ty)?))?;
            Value::Text(date.format("%Y-%m-%d").to_string())
        }
        PgType::Time => {
            let micros = i64::from_be_bytes(exact_width(bytes, ty)?);
            // PostgreSQL's time range includes 24:00:00, which chrono cannot hold.
            if micros == MICROS_PER_DAY {
                return Err(SqlError::Unsupported(
                    "the time 24:00:00 is not supported".into(),
                ));
            }
            if !(0..MICROS_PER_DAY).contains(&micros) {
                return Err(out_of_range(ty));
            }
            let t = NaiveTime::MIN + chrono::TimeDelta::microseconds(micros);
            Value::Text(t.format("%H:%M:%S%.f").to_string())
        }
        PgType::Timestamp | PgType::Timestamptz => {
            let dt = timestamp_from_binary(i64::from_be_bytes(exact_width(bytes, ty)?), ty)?;
            Value::Text(if ty == PgType::Timestamptz {
                datetime::stored(&dt)?
            } else {
                format_timestamp(&dt)
            })
        }
        PgType::Uuid => Value::Text(uuid::Uuid::from_bytes(exact_width(bytes, ty)?).to_string()),
        PgType::Bytea => Value::Blob(bytes.to_vec()),
        PgType::Jsonb => match bytes.split_first() {
            Some((1, json)) => {
                Value::Text(String::from_utf8(json.to_vec()).map_err(|_| incorrect_binary(ty))?)
            }
            Some((version, _)) => {
                return Err(SqlError::InvalidBinary(format!(
                    "unsupported jsonb version number {version}"
                )));
            }
            None => return Err(incorrect_binary(ty)),
        },
        _ => Value::Text(String::from_utf8(bytes.to_vec()).map_err(|_| incorrect_binary(ty))?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_binary_round_trips() {
        for text in [
            "0",
            "1",
            "-1",
            "12345.678",
            "0.0001",
            "100000000",
            "-0.5",
            "3.14159",
        ] {
            let encoded = numeric_binary(text).unwrap();
            assert_eq!(numeric_from_binary(&encoded).unwrap(), text, "{text}");
        }
    }

    #[test]
    fn timestamp_input_offsets_apply_only_to_timestamptz() {
        // pgjdbc's setTimestamp sends the JVM's local time with its UTC offset.
        let sent = "2024-06-01 12:30:00.25+05:30";
        assert_eq!(
            from_text(sent, PgType::Timestamp).unwrap(),
            Value::Text("2024-06-01 12:30:00.25".into())
        );
        assert_eq!(
            from_text(sent, PgType::Timestamptz).unwrap(),
            Value::Text("2024-06-01 07:00:00.250000+00".into())
        );
        assert_eq!(
            from_text("2024-06-01 12:30:00-03", PgType::Timestamp).unwrap(),
            Value::Text("2024-06-01 12:30:00".into())
        );
        // Stored text with an offset reads back the same way.
        let stored = Value::Text(sent.into());
        let text = |ty| to_text(&stored, TypeWithMod::plain(ty)).unwrap();
        assert_eq!(text(PgType::Timestamp), "2024-06-01 12:30:00.25");
        assert_eq!(text(PgType::Timestamptz), "2024-06-01 07:00:00.25+00");
        assert_eq!(
            from_text("2024-06-01 12:30:00", PgType::Timestamptz).unwrap(),
            Value::Text("2024-06-01 12:30:00.000000+00".into())
        );
        assert!(from_text("2024-06-01 12:30:00+5:3x", PgType::Timestamp).is_err());
    }

    #[test]
    fn text_forms_match_postgres() {
        let text = |v: Value, ty| to_text(&v, TypeWithMod::plain(ty)).unwrap();
        assert_eq!(text(Value::Integer(1), PgType::Bool), "t");
        assert_eq!(text(Value::Blob(vec![1, 255]), PgType::Bytea), "\\x01ff");
        assert_eq!(
            text(
                Value::Text("2024-01-02 03:04:05.500".into()),
                PgType::Timestamptz
            ),
            "2024-01-02 03:04:05.5+00"
        );
        assert_eq!(text(Value::Real(1.5), PgType::Float8), "1.5");
    }

    #[test]
    fn numerics_print_their_declared_scale() {
        let numeric_10_2 = crate::sql::types::declared_type("NUMERIC(10,2)").ty;
        let text = |v: Value, ty| to_text(&v, ty).unwrap();
        assert_eq!(text(Value::Real(1.5), numeric_10_2), "1.50");
        assert_eq!(text(Value::Integer(3), numeric_10_2), "3.00");
        assert_eq!(text(Value::Real(-2.499), numeric_10_2), "-2.50");
        let unscaled = TypeWithMod::plain(PgType::Numeric);
        assert_eq!(text(Value::Real(0.1 + 0.2), unscaled), "0.3");
        assert_eq!(text(Value::Real(1234.5), unscaled), "1234.5");
        assert_eq!(text(Value::Real(1e20), unscaled), "100000000000000000000");
        assert_eq!(text(Value::Real(0.000123), unscaled), "0.000123");
        assert_eq!(text(Value::Integer(7), unscaled), "7");
        let mut buf = BytesMut::new();
        encode_field(&mut buf, &Value::Real(1.5), numeric_10_2, true).unwrap();
        assert_eq!(numeric_from_binary(&buf[4..]).unwrap(), "1.50");
    }

    #[test]
    fn parameters_decode_and_check_range() {
        assert_eq!(from_text("42", PgType::Int4).unwrap(), Value::Integer(42));
        assert!(matches!(
            from_text("3000000000", PgType::Int4),
            Err(SqlError::OutOfRange(_))
        ));
        assert_eq!(from_text("true", PgType::Bool).unwrap(), Value::Integer(1));
        assert_eq!(
            from_binary(&7i32.to_be_bytes(), PgType::Int4).unwrap(),
            Value::Integer(7)
        );
        assert!(from_binary(&[0, 1], PgType::Int4).is_err());
        assert_eq!(
            from_text("\\x0aff", PgType::Bytea).unwrap(),
            Value::Blob(vec![10, 255])
        );
    }

    #[test]
    fn binary_encoding_has_the_declared_width() {
        let mut buf = BytesMut::new();
        encode_field(
            &mut buf,
            &Value::Integer(5),
            TypeWithMod::plain(PgType::Int4),
            true,
        )
        .unwrap();
        assert_eq!(&buf[..], &[0, 0, 0, 4, 0, 0, 0, 5]);
        let mut buf = BytesMut::new();
        encode_field(
            &mut buf,
            &Value::Integer(5),
            TypeWithMod::plain(PgType::Int8),
            true,
        )
        .unwrap();
        assert_eq!(buf.len(), 12);
    }
}

/// Every decoder of client bytes, fed random and hostile input: each returns a value or an
/// error, promptly, and never panics.
#[cfg(test)]
mod fuzz {
    use proptest::prelude::*;

    use super::*;

    fn numeric_bytes(ndigits: u16, weight: i16, sign: u16, dscale: u16, digits: &[u16]) -> Vec<u8> {
        let mut out = Vec::new();
        for word in [ndigits, weight as u16, sign, dscale].iter().chain(digits) {
            out.extend_from_slice(&word.to_be_bytes());
        }
        out
    }

    fn any_sign() -> impl Strategy<Value = u16> {
        prop_oneof![
            Just(NUMERIC_POS),
            Just(NUMERIC_NEG),
            Just(NUMERIC_NAN),
            Just(NUMERIC_PINF),
            Just(NUMERIC_NINF),
            any::<u16>(),
        ]
    }

    fn extreme_i16() -> impl Strategy<Value = i16> {
        prop_oneof![
            Just(i16::MIN),
            Just(i16::MAX),
            Just(-1i16),
            Just(0i16),
            any::<i16>()
        ]
    }

    fn extreme_u16() -> impl Strategy<Value = u16> {
        prop_oneof![
            Just(0u16),
            Just(u16::MAX),
            Just(NUMERIC_DSCALE_MASK),
            Just(NUMERIC_DSCALE_MASK + 1),
            Just(NUMERIC_MAX_DIGITS),
            Just(NUMERIC_MAX_DIGITS + 1),
            any::<u16>(),
        ]
    }

    /// The longest text a valid header can describe: the integer digits of the largest weight
    /// and the largest display scale.
    const LONGEST_NUMERIC_TEXT: usize = 4 * 32768 + 1 + NUMERIC_DSCALE_MASK as usize + 1;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn random_binary_parameters_decode_or_fail(
            bytes in prop::collection::vec(any::<u8>(), 0..64),
            type_index in 0..PgType::ALL.len(),
        ) {
            let ty = PgType::ALL[type_index];
            let _ = from_binary(&bytes, ty);
        }

        #[test]
        fn random_text_parameters_decode_or_fail(
            text in any::<String>(),
            type_index in 0..PgType::ALL.len(),
        ) {
            let _ = from_text(&text, PgType::ALL[type_index]);
        }

        #[test]
        fn hostile_numeric_headers_are_refused_or_bounded(
            ndigits in extreme_u16(),
            weight in extreme_i16(),
            sign in any_sign(),
            dscale in extreme_u16(),
            digits in prop::collection::vec(prop_oneof![0u16..=9999, any::<u16>()], 0..12),
            claim_the_real_count in any::<bool>(),
        ) {
            let ndigits = if claim_the_real_count { digits.len() as u16 } else { ndigits };
            let bytes = numeric_bytes(ndigits, weight, sign, dscale, &digits);
            match numeric_from_binary(&bytes) {
                Ok(text) => {
                    prop_assert!(text.len() <= LONGEST_NUMERIC_TEXT, "{} chars", text.len());
                    prop_assert!(dscale <= NUMERIC_DSCALE_MASK);
                    prop_assert!(from_binary(&bytes, PgType::Numeric).is_ok(), "{text}");
                }
                Err(e) => prop_assert!(matches!(e, SqlError::InvalidBinary(_)), "{e:?}"),
            }
        }

        #[test]
        fn binary_numerics_round_trip(int_part in 0u64..u64::MAX, frac in "[0-9]{0,12}", negative in any::<bool>()) {
            let sign = if negative && (int_part != 0 || frac.bytes().any(|b| b != b'0')) { "-" } else { "" };
            let text = if frac.is_empty() { format!("{sign}{int_part}") } else { format!("{sign}{int_part}.{frac}") };
            let encoded = numeric_binary(&text).ok_or_else(|| TestCaseError::fail("encodes"))?;
            prop_assert_eq!(numeric_from_binary(&encoded)?, text);
        }

        #[test]
        fn any_binary_date_is_a_date_or_an_error(days in prop_oneof![Just(i32::MIN), Just(i32::MAX), Just(i32::MIN + 1), Just(i32::MAX - 1), any::<i32>()]) {
            match from_binary(&days.to_be_bytes(), PgType::Date) {
                Ok(Value::Text(text)) => {
                    // What was stored reads back as the same day.
                    let mut buf = BytesMut::new();
                    encode_field(&mut buf, &Value::Text(text), TypeWithMod::plain(PgType::Date), true)?;
                    prop_assert_eq!(&buf[4..], &days.to_be_bytes()[..]);
                }
                Ok(other) => prop_assert!(false, "{other:?}"),
                Err(e) => prop_assert!(matches!(e, SqlError::Unsupported(_) | SqlError::DatetimeOutOfRange(_)), "{e:?}"),
            }
        }

        #[test]
        fn any_binary_timestamp_is_a_timestamp_or_an_error(
            micros in prop_oneof![Just(i64::MIN), Just(i64::MAX), Just(i64::MIN + 1), Just(i64::MAX - 1), Just(TIMESTAMP_MICROS.start - 1), Just(TIMESTAMP_MICROS.end), any::<i64>(), -400_000_000_000_000_000i64..400_000_000_000_000_000],
            with_time_zone in any::<bool>(),
        ) {
            let ty = if with_time_zone { PgType::Timestamptz } else { PgType::Timestamp };
            match from_binary(&micros.to_be_bytes(), ty) {
                Ok(Value::Text(text)) => {
                    let mut buf = BytesMut::new();
                    encode_field(&mut buf, &Value::Text(text), TypeWithMod::plain(ty), true)?;
                    prop_assert_eq!(&buf[4..], &micros.to_be_bytes()[..]);
                }
                Ok(other) => prop_assert!(false, "{other:?}"),
                Err(e) => prop_assert!(matches!(e, SqlError::Unsupported(_) | SqlError::DatetimeOutOfRange(_)), "{e:?}"),
            }
        }

        #[test]
        fn any_binary_time_is_a_time_or_an_error(micros in prop_oneof![Just(i64::MIN), Just(i64::MAX), Just(-1i64), Just(MICROS_PER_DAY), Just(MICROS_PER_DAY - 1), any::<i64>(), 0..MICROS_PER_DAY]) {
            match from_binary(&micros.to_be_bytes(), PgType::Time) {
                Ok(Value::Text(text)) => {
                    let mut buf = BytesMut::new();
                    encode_field(&mut buf, &Value::Text(text), TypeWithMod::plain(PgType::Time), true)?;
                    prop_assert_eq!(&buf[4..], &micros.to_be_bytes()[..]);
                }
                Ok(other) => prop_assert!(false, "{other:?}"),
                Err(e) => prop_assert!(matches!(e, SqlError::Unsupported(_) | SqlError::DatetimeOutOfRange(_)), "{e:?}"),
            }
        }
    }

    #[test]
    fn the_edge_cases_get_postgres_errors() {
        let numeric = |ndigits, weight, sign, dscale, digits: &[u16]| {
            from_binary(
                &numeric_bytes(ndigits, weight, sign, dscale, digits),
                PgType::Numeric,
            )
        };
        let binary_error =
            |result: Result<Value, SqlError>| matches!(result, Err(SqlError::InvalidBinary(_)));
        // dscale -1 looped forever and grew without bound.
        assert!(binary_error(numeric(1, 0, NUMERIC_POS, u16::MAX, &[1])));
        assert!(binary_error(numeric(1, 0, 0x1234, 0, &[1])));
        assert!(binary_error(numeric(1, 0, NUMERIC_POS, 0, &[10000])));
        assert!(binary_error(numeric(u16::MAX, 0, NUMERIC_POS, 0, &[])));
        assert!(binary_error(numeric(3, 0, NUMERIC_POS, 0, &[1])));
        assert!(binary_error(from_binary(&[0, 0, 0], PgType::Numeric)));
        assert_eq!(
            numeric(0, 0, NUMERIC_NAN, 0, &[]).unwrap(),
            Value::Text("NaN".into())
        );
        assert_eq!(
            numeric(0, 0, NUMERIC_PINF, 0, &[]).unwrap(),
            Value::Text("Infinity".into())
        );
        assert_eq!(
            numeric(0, 0, NUMERIC_NINF, 0, &[]).unwrap(),
            Value::Text("-Infinity".into())
        );
        assert_eq!(
            numeric(2, 0, NUMERIC_NEG, 6, &[12, 3400]).unwrap(),
            Value::Text("-12.340000".into())
        );
        assert_eq!(
            numeric(1, -2, NUMERIC_POS, 8, &[5]).unwrap(),
            Value::Text("0.00000005".into())
        );
        assert!(numeric(1, i16::MAX, NUMERIC_POS, NUMERIC_DSCALE_MASK, &[9999]).is_ok());
        assert!(numeric(1, i16::MIN, NUMERIC_NEG, NUMERIC_DSCALE_MASK, &[9999]).is_ok());

        let date = |days: i32| from_binary(&days.to_be_bytes(), PgType::Date);
        assert!(matches!(date(i32::MAX), Err(SqlError::Unsupported(_))));
        assert!(matches!(date(i32::MIN), Err(SqlError::Unsupported(_))));
        assert!(matches!(
            date(DATE_DAYS.start as i32 - 1),
            Err(SqlError::DatetimeOutOfRange(_))
        ));
        assert!(matches!(date(-800_000), Err(SqlError::Unsupported(_))));
        assert_eq!(date(-1).unwrap(), Value::Text("1999-12-31".into()));

        let timestamp = |micros: i64| from_binary(&micros.to_be_bytes(), PgType::Timestamptz);
        assert!(matches!(timestamp(i64::MAX), Err(SqlError::Unsupported(_))));
        assert!(matches!(timestamp(i64::MIN), Err(SqlError::Unsupported(_))));
        assert!(matches!(
            timestamp(i64::MAX - 1),
            Err(SqlError::DatetimeOutOfRange(_))
        ));
        assert!(matches!(
            timestamp(i64::MIN + 1),
            Err(SqlError::DatetimeOutOfRange(_))
        ));
        assert_eq!(
            timestamp(1_500_000).unwrap(),
            // timestamptz is stored in its fixed-width UTC form (sql::datetime::stored).
            Value::Text("2000-01-01 00:00:01.500000+00".into())
        );

        assert!(binary_error(from_binary(&[2, b'{', b'}'], PgType::Jsonb)));
        assert!(binary_error(from_binary(&[], PgType::Jsonb)));
        assert!(binary_error(from_binary(&[0xff], PgType::Text)));
    }
}
