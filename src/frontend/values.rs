//! Converting between SQLite values and PostgreSQL's text and binary wire formats, for the
//! type each column or parameter was declared with. Binary encodings match the reported type
//! exactly: an int4 column is always four bytes.

use bytes::{BufMut, BytesMut};
use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime};
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

fn numeric_from_binary(bytes: &[u8]) -> Option<String> {
    let read = |i: usize| -> Option<i16> {
        Some(i16::from_be_bytes([*bytes.get(i)?, *bytes.get(i + 1)?]))
    };
    let ndigits = read(0)? as usize;
    let weight = read(2)? as i32;
    let sign = read(4)? as u16;
    let dscale = read(6)? as usize;
    if sign == 0xC000 {
        return Some("NaN".into());
    }
    let digits: Vec<i16> = (0..ndigits)
        .map(|i| read(8 + i * 2))
        .collect::<Option<_>>()?;
    let mut int_part = String::new();
    for w in 0..=weight.max(-1) {
        let d = digits.get(w as usize).copied().unwrap_or(0);
        if int_part.is_empty() {
            if d != 0 {
                int_part.push_str(&d.to_string());
            }
        } else {
            int_part.push_str(&format!("{d:04}"));
        }
    }
    if int_part.is_empty() {
        int_part.push('0');
    }
    let mut frac = String::new();
    let mut idx = weight + 1;
    while frac.len() < dscale {
        let d = if idx < 0 {
            0
        } else {
            digits.get(idx as usize).copied().unwrap_or(0)
        };
        frac.push_str(&format!("{d:04}"));
        idx += 1;
    }
    frac.truncate(dscale);
    let sign = if sign == 0x4000 { "-" } else { "" };
    Some(if dscale > 0 {
        format!("{sign}{int_part}.{frac}")
    } else {
        format!("{sign}{int_part}")
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

/// Decodes a parameter sent in binary.
pub fn from_binary(bytes: &[u8], ty: PgType) -> Result<Value, SqlError> {
    let wrong = || {
        SqlError::InvalidParameter(format!(
            "incorrect binary data format in bind parameter of type {}",
            ty.wire_type().name()
        ))
    };
    let fixed = |n: usize| -> Result<&[u8], SqlError> {
        if bytes.len() == n {
            Ok(bytes)
        } else {
            Err(wrong())
        }
    };
    Ok(match ty {
        PgType::Bool => Value::Integer((fixed(1)?[0] != 0) as i64),
        PgType::Int2 => {
            Value::Integer(i16::from_be_bytes(fixed(2)?.try_into().map_err(|_| wrong())?) as i64)
        }
        PgType::Int4 => {
            Value::Integer(i32::from_be_bytes(fixed(4)?.try_into().map_err(|_| wrong())?) as i64)
        }
        PgType::Oid => {
            Value::Integer(u32::from_be_bytes(fixed(4)?.try_into().map_err(|_| wrong())?) as i64)
        }
        PgType::Int8 => Value::Integer(i64::from_be_bytes(
            fixed(8)?.try_into().map_err(|_| wrong())?,
        )),
        PgType::Float4 => {
            Value::Real(f32::from_be_bytes(fixed(4)?.try_into().map_err(|_| wrong())?) as f64)
        }
        PgType::Float8 => Value::Real(f64::from_be_bytes(
            fixed(8)?.try_into().map_err(|_| wrong())?,
        )),
        PgType::Numeric => from_text(&numeric_from_binary(bytes).ok_or_else(wrong)?, ty)?,
        PgType::Date => {
            let days = i32::from_be_bytes(fixed(4)?.try_into().map_err(|_| wrong())?);
            let date = pg_epoch_date() + chrono::Duration::days(days as i64);
            Value::Text(date.format("%Y-%m-%d").to_string())
        }
        PgType::Time => {
            let micros = i64::from_be_bytes(fixed(8)?.try_into().map_err(|_| wrong())?);
            let t = NaiveTime::MIN + chrono::Duration::microseconds(micros);
            Value::Text(t.format("%H:%M:%S%.f").to_string())
        }
        PgType::Timestamp | PgType::Timestamptz => {
            let micros = i64::from_be_bytes(fixed(8)?.try_into().map_err(|_| wrong())?);
            let dt = pg_epoch() + chrono::Duration::microseconds(micros);
            Value::Text(if ty == PgType::Timestamptz {
                datetime::stored(&dt)?
            } else {
                format_timestamp(&dt)
            })
        }
        PgType::Uuid => Value::Text(
            uuid::Uuid::from_slice(fixed(16)?)
                .map_err(|_| wrong())?
                .to_string(),
        ),
        PgType::Bytea => Value::Blob(bytes.to_vec()),
        PgType::Jsonb => Value::Text(
            String::from_utf8(bytes.get(1..).unwrap_or_default().to_vec()).map_err(|_| wrong())?,
        ),
        _ => Value::Text(String::from_utf8(bytes.to_vec()).map_err(|_| wrong())?),
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
