//! numeric values as SQLite holds them (8-byte floats), kept to PostgreSQL's decimal results.
//!
//! A double's shortest round-trip text is the decimal it was written as (for up to 15
//! significant digits), so rounding that text to a scale, half away from zero as PostgreSQL
//! rounds, and taking the double nearest to the result gives the double of the exact decimal
//! answer: the same double a literal of that value is. Stored `numeric(p, s)` values and the
//! results of `+`, `-` and `*` over numerics are rounded so (see `infer::round_numeric_arithmetic`).

use rust_decimal::prelude::{FromPrimitive, ToPrimitive};
use rust_decimal::{Decimal, RoundingStrategy};

use super::error::SqlError;

/// The SQL function (registered on every connection) that rounds a numeric to a scale.
pub const ROUND_FUNCTION: &str = "shardgate_numeric_round";

/// The most significant digits a numeric can have and still be held exactly by a double.
pub const EXACT_DIGITS: usize = 15;

/// `value` rounded to `scale` digits after the point, half away from zero.
pub fn round(value: f64, scale: u32) -> Result<f64, SqlError> {
    let beyond = || {
        SqlError::Unsupported(format!(
            "numeric value {value} has more than {EXACT_DIGITS} significant digits, which shardgate cannot compute exactly"
        ))
    };
    if !value.is_finite() {
        return Ok(value);
    }
    let decimal = Decimal::from_f64(value).ok_or_else(beyond)?;
    let rounded = decimal.round_dp_with_strategy(scale, RoundingStrategy::MidpointAwayFromZero);
    let integer_digits = rounded
        .trunc()
        .abs()
        .to_string()
        .trim_start_matches('0')
        .len();
    if integer_digits + scale as usize > EXACT_DIGITS {
        return Err(beyond());
    }
    rounded.to_f64().ok_or_else(beyond)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_is_decimal_and_half_away_from_zero() {
        assert_eq!(round(2.675, 2).unwrap(), 2.68);
        assert_eq!(round(-2.675, 2).unwrap(), -2.68);
        assert_eq!(round(1.005, 2).unwrap(), 1.01);
        assert_eq!(round(0.1 + 0.2, 2).unwrap(), 0.3);
        assert_eq!(round(0.125, 2).unwrap(), 0.13);
        assert_eq!(round(5.0, 0).unwrap(), 5.0);
        assert!(matches!(round(1e20, 2), Err(SqlError::Unsupported(_))));
        assert!(matches!(
            round(12345678901234.5, 2),
            Err(SqlError::Unsupported(_))
        ));
    }
}
