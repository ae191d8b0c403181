//! Timestamps as PostgreSQL accepts them, and timestamptz's one stored form.
//!
//! A timestamptz is stored as UTC text of fixed width, `YYYY-MM-DD HH:MM:SS.ffffff+00`, so that
//! SQLite's text comparison is the instant's order: equality, ranges, ORDER BY, indexes and
//! shard keys then agree with PostgreSQL whatever offset a value was written with. Every way a
//! value arrives goes through [`to_stored`]: parameters and COPY fields when they are decoded,
//! casts (the checked cast `sg_cast_timestamptz` of `storage::checked`), literals compared
//! with a timestamptz when the statement is planned, and anything else a write stores through
//! the triggers of [`super::types::store_triggers`].

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};

use super::error::SqlError;
use super::types::PgType;

/// The width of the stored form: `2024-07-01 16:34:56.789012+00`.
const STORED_LEN: usize = 29;

/// Parses a timestamp as PostgreSQL accepts it. An explicit UTC offset is applied for
/// `timestamptz` (the result is UTC); `timestamp` ignores it and keeps the wall-clock time, as
/// PostgreSQL does (`'2024-01-02 03:04:05+05:30'::timestamp` is `2024-01-02 03:04:05`). A
/// timestamptz without an offset is read in the session's TimeZone, which is always UTC.
pub fn parse(text: &str, ty: PgType) -> Option<NaiveDateTime> {
    // ISO 8601's `T` between the date and the time.
    let mut t = text.trim().to_string();
    if t.get(10..11).is_some_and(|c| c.eq_ignore_ascii_case("t")) {
        t.replace_range(10..11, " ");
    }
    let lower = t.to_ascii_lowercase();
    match lower.as_str() {
        "epoch" => return DateTime::UNIX_EPOCH.naive_utc().into(),
        "now" => return Some(Utc::now().naive_utc()),
        _ => {}
    }
    let t = ["utc", "gmt", "z"]
        .iter()
        .find_map(|zone| {
            lower
                .strip_suffix(zone)
                .map(|rest| t[..rest.len()].trim_end())
        })
        .unwrap_or(&t);
    let attached = offset_without_space(t);
    for format in ["%Y-%m-%d %H:%M:%S%.f%#z", "%Y-%m-%d %H:%M%#z"] {
        if let Ok(dt) = DateTime::parse_from_str(&attached, format) {
            return Some(if ty == PgType::Timestamptz {
                dt.with_timezone(&Utc).naive_utc()
            } else {
                dt.naive_local()
            });
        }
    }
    for format in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%d %H:%M"] {
        if let Ok(dt) = NaiveDateTime::parse_from_str(t, format) {
            return Some(dt);
        }
    }
    NaiveDate::parse_from_str(t, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
}

/// `2024-01-02 03:04:05 +05` is accepted by PostgreSQL; chrono wants the offset attached.
fn offset_without_space(text: &str) -> String {
    match text.rfind([' ']) {
        Some(space) if text[space + 1..].starts_with(['+', '-']) => {
            format!("{}{}", &text[..space], &text[space + 1..])
        }
        _ => text.to_string(),
    }
}

/// The stored form of a UTC instant. Years outside 1 to 9999 would not sort as text, so they
/// are refused rather than stored out of order.
pub fn stored(instant: &NaiveDateTime) -> Result<String, SqlError> {
    use chrono::Datelike;
    if !(1..=9999).contains(&instant.year()) {
        return Err(SqlError::Unsupported(format!(
            "timestamptz values outside the years 1 to 9999 are not supported by shardgate: {instant}"
        )));
    }
    Ok(instant.format("%Y-%m-%d %H:%M:%S%.6f+00").to_string())
}

/// Whether `text` is already in the stored form (the common case: every value a write
/// stores has been through [`to_stored`] once).
fn is_stored(text: &str) -> bool {
    let b = text.as_bytes();
    b.len() == STORED_LEN
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b' ',
            13 | 16 => *c == b':',
            19 => *c == b'.',
            26 => *c == b'+',
            _ => c.is_ascii_digit(),
        })
        && text.ends_with("+00")
        && parse(text, PgType::Timestamptz).is_some()
}

/// A timestamptz input text in its stored form.
pub fn to_stored(text: &str) -> Result<String, SqlError> {
    if is_stored(text) {
        return Ok(text.to_string());
    }
    if matches!(
        text.trim().to_ascii_lowercase().as_str(),
        "infinity" | "-infinity" | "+infinity"
    ) {
        return Err(SqlError::Unsupported(
            "timestamptz 'infinity' is not supported by shardgate".into(),
        ));
    }
    let instant = parse(text, PgType::Timestamptz).ok_or_else(|| {
        SqlError::InvalidDatetime(format!(
            "invalid input syntax for type timestamp with time zone: \"{text}\""
        ))
    })?;
    stored(&instant)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_offset_of_one_instant_has_one_stored_form() {
        for written in [
            "2024-07-01T12:34:56.789012-04:00",
            "2024-07-01 16:34:56.789012+00",
            "2024-07-01 16:34:56.789012Z",
            "2024-07-01 16:34:56.789012 UTC",
            "2024-07-01 18:34:56.789012 +02",
            "2024-07-01 22:04:56.789012+0530",
            "2024-07-01 16:34:56.789012",
        ] {
            assert_eq!(
                to_stored(written).unwrap(),
                "2024-07-01 16:34:56.789012+00",
                "{written}"
            );
        }
        assert_eq!(
            to_stored("2024-07-01").unwrap(),
            "2024-07-01 00:00:00.000000+00"
        );
        assert_eq!(
            to_stored("2024-07-01 10:00-02").unwrap(),
            "2024-07-01 12:00:00.000000+00"
        );
        assert!(matches!(
            to_stored("garbage"),
            Err(SqlError::InvalidDatetime(_))
        ));
        assert!(matches!(
            to_stored("infinity"),
            Err(SqlError::Unsupported(_))
        ));
        // Not the stored form although it has its width: a second offset digit pair.
        assert_eq!(
            to_stored("2024-07-01 16:34:56.7890+0000").unwrap(),
            "2024-07-01 16:34:56.789000+00"
        );
    }

    #[test]
    fn timestamp_input_offsets_apply_only_to_timestamptz() {
        let sent = "2024-06-01 12:30:00.25+05:30";
        let at = |h, m, s, micro| {
            NaiveDate::from_ymd_opt(2024, 6, 1)
                .and_then(|d| d.and_hms_micro_opt(h, m, s, micro))
                .unwrap()
        };
        assert_eq!(parse(sent, PgType::Timestamp), Some(at(12, 30, 0, 250_000)));
        assert_eq!(parse(sent, PgType::Timestamptz), Some(at(7, 0, 0, 250_000)));
        assert!(parse("2024-06-01 12:30:00+5:3x", PgType::Timestamp).is_none());
    }
}
