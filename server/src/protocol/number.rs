//! Number parsing and formatting with Redis's exact rules.
//!
//! Redis accepts an integer only in its canonical form (no `+`, no leading zeros, no
//! spaces, at most 20 characters); the same rule decides whether a string value can
//! be stored as an integer, so `GET` always returns exactly what was `SET`.

/// Parses a signed 64-bit integer in canonical decimal form, like Redis's `string2ll`.
pub fn parse_i64(s: &[u8]) -> Option<i64> {
    if s.is_empty() || s.len() > 20 {
        return None;
    }
    if s == b"0" {
        return Some(0);
    }
    let (negative, digits) = match s[0] {
        b'-' => (true, &s[1..]),
        _ => (false, s),
    };
    let (&first, rest) = digits.split_first()?;
    if !(b'1'..=b'9').contains(&first) {
        return None;
    }
    // Accumulate as a negative number so that i64::MIN parses without overflow.
    let mut value: i64 = -i64::from(first - b'0');
    for &b in rest {
        if !b.is_ascii_digit() {
            return None;
        }
        value = value.checked_mul(10)?.checked_sub(i64::from(b - b'0'))?;
    }
    if negative {
        Some(value)
    } else {
        value.checked_neg()
    }
}

/// Parses an unsigned integer in canonical form (used for cursors).
pub fn parse_u64(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 20 || (s.len() > 1 && s[0] == b'0') {
        return None;
    }
    let mut value: u64 = 0;
    for &b in s {
        if !b.is_ascii_digit() {
            return None;
        }
        value = value.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    Some(value)
}

/// Parses a floating point argument the way Redis's `string2ld` does: no surrounding
/// spaces, no NaN, and `inf`/`-inf` (any case) allowed. A number beyond a double's
/// range is refused, as C's `strtod` reports it out of range (Redis's long doubles
/// reach further, to about 1e4932, which a double cannot hold).
pub fn parse_f64(s: &[u8]) -> Option<f64> {
    let (value, spelled) = parse_float(s)?;
    (spelled || value.is_finite()).then_some(value)
}

/// Parses a score or weight the way Redis's `string2d` does: like [`parse_f64`],
/// and a non-zero number too small for a double (which would read as 0) is
/// refused as well.
pub fn parse_double(s: &[u8]) -> Option<f64> {
    let value = parse_f64(s)?;
    if value == 0.0 && nonzero_mantissa(s) {
        return None;
    }
    Some(value)
}

/// Parses a score range bound the way `strtod` alone does (Redis checks no
/// range there): a number beyond a double's range is infinity.
pub fn parse_f64_saturating(s: &[u8]) -> Option<f64> {
    parse_float(s).map(|(value, _)| value)
}

/// The value, and whether it was spelled as infinity (rather than written as a
/// number too large for a double).
fn parse_float(s: &[u8]) -> Option<(f64, bool)> {
    if s.is_empty() || s.len() > 5 * 1024 {
        return None;
    }
    if s[0].is_ascii_whitespace() || s[s.len() - 1].is_ascii_whitespace() {
        return None;
    }
    let text = std::str::from_utf8(s).ok()?;
    let lower = text.to_ascii_lowercase();
    match lower.as_str() {
        "inf" | "+inf" | "infinity" | "+infinity" => Some((f64::INFINITY, true)),
        "-inf" | "-infinity" => Some((f64::NEG_INFINITY, true)),
        // Rust's parser accepts "nan" and "infinity" spellings Redis refuses.
        other if other.contains("nan") || other.contains("inf") => None,
        // Rust accepts hex floats nowhere and C does; Redis clients never send them.
        _ => Some((text.parse::<f64>().ok()?, false)),
    }
}

/// True if the digits before the exponent are not all zeros.
fn nonzero_mantissa(s: &[u8]) -> bool {
    s.iter()
        .take_while(|&&b| b != b'e' && b != b'E')
        .any(|b| (b'1'..=b'9').contains(b))
}

/// Formats a double for `INCRBYFLOAT` results: plain decimal notation without an
/// exponent and without trailing zeros, the shortest text that reads back the same.
pub fn format_f64_human(value: f64, out: &mut Vec<u8>) {
    use std::io::Write;
    if value == 0.0 {
        // Redis never shows a negative zero for this format.
        out.push(b'0');
        return;
    }
    // Rust's Display is the shortest round-trip decimal and never uses an exponent.
    let _ = write!(out, "{value}");
}

/// Formats a double the way Redis 7.2 replies with scores (`ZSCORE`, `WITHSCORES`,
/// RESP3 doubles): the shortest digits that read back the same, laid out plainly
/// for moderate magnitudes and in exponent form (`1.5e+300`, `1e-7`) otherwise.
pub fn format_score(value: f64, out: &mut Vec<u8>) {
    use std::io::Write;
    if value.is_infinite() {
        out.extend_from_slice(if value > 0.0 { b"inf" } else { b"-inf" });
        return;
    }
    if value == 0.0 {
        out.extend_from_slice(if value.is_sign_negative() {
            b"-0"
        } else {
            b"0"
        });
        return;
    }
    // Rust's `{:e}` gives the shortest round-trip digits: "-1.2345e-7".
    let scientific = format!("{:e}", value.abs());
    let (mantissa, exp) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: Vec<u8> = mantissa.bytes().filter(u8::is_ascii_digit).collect();
    let ndigits = digits.len() as i32;
    // value = digits × 10^k
    let k = exp - (ndigits - 1);
    if value < 0.0 {
        out.push(b'-');
    }
    if k >= 0 && exp.abs() < ndigits + 7 {
        out.extend_from_slice(&digits);
        out.extend(std::iter::repeat_n(b'0', k as usize));
    } else if k < 0 && (k > -7 || exp.abs() < 4) {
        let point = ndigits + k;
        if point <= 0 {
            out.extend_from_slice(b"0.");
            out.extend(std::iter::repeat_n(b'0', (-point) as usize));
            out.extend_from_slice(&digits);
        } else {
            out.extend_from_slice(&digits[..point as usize]);
            out.push(b'.');
            out.extend_from_slice(&digits[point as usize..]);
        }
    } else {
        out.push(digits[0]);
        if digits.len() > 1 {
            out.push(b'.');
            out.extend_from_slice(&digits[1..]);
        }
        let _ = write!(out, "e{}{}", if exp < 0 { '-' } else { '+' }, exp.abs());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_i64_accepts_only_canonical_integers() {
        assert_eq!(parse_i64(b"0"), Some(0));
        assert_eq!(parse_i64(b"-1"), Some(-1));
        assert_eq!(parse_i64(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_i64(b"-9223372036854775808"), Some(i64::MIN));
        for bad in [
            &b""[..],
            b"-",
            b"-0",
            b"01",
            b"+1",
            b" 1",
            b"1 ",
            b"1a",
            b"9223372036854775808",
            b"-9223372036854775809",
            b"123456789012345678901",
        ] {
            assert_eq!(parse_i64(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn parse_u64_rejects_leading_zeros_and_signs() {
        assert_eq!(parse_u64(b"0"), Some(0));
        assert_eq!(parse_u64(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_u64(b"18446744073709551616"), None);
        assert_eq!(parse_u64(b"00"), None);
        assert_eq!(parse_u64(b"-1"), None);
    }

    #[test]
    fn parse_f64_follows_redis_rules() {
        assert_eq!(parse_f64(b"1.5"), Some(1.5));
        assert_eq!(parse_f64(b"5.0e3"), Some(5000.0));
        assert_eq!(parse_f64(b"-inf"), Some(f64::NEG_INFINITY));
        assert_eq!(parse_f64(b"+INF"), Some(f64::INFINITY));
        assert_eq!(parse_f64(b"nan"), None);
        assert_eq!(parse_f64(b" 1"), None);
        assert_eq!(parse_f64(b"1 "), None);
        assert_eq!(parse_f64(b""), None);
        assert_eq!(parse_f64(b"abc"), None);
        assert_eq!(parse_f64(b"1e400"), None, "out of a double's range");
        assert_eq!(parse_f64(b"-1e400"), None);
        assert_eq!(parse_f64(b"1e-400"), Some(0.0));
        assert_eq!(parse_f64(b"1e308"), Some(1e308));
    }

    #[test]
    fn scores_refuse_what_a_double_cannot_hold_and_bounds_saturate() {
        assert_eq!(parse_double(b"1e-400"), None);
        assert_eq!(parse_double(b"0.000e-400"), Some(0.0));
        assert_eq!(parse_double(b"-0"), Some(0.0));
        assert_eq!(parse_double(b"5e-324"), Some(5e-324));
        assert_eq!(parse_double(b"1e400"), None);
        assert_eq!(parse_double(b"inf"), Some(f64::INFINITY));
        assert_eq!(parse_f64_saturating(b"1e400"), Some(f64::INFINITY));
        assert_eq!(parse_f64_saturating(b"-1e400"), Some(f64::NEG_INFINITY));
        assert_eq!(parse_f64_saturating(b"nan"), None);
    }

    fn human(v: f64) -> String {
        let mut out = Vec::new();
        format_f64_human(v, &mut out);
        String::from_utf8(out).unwrap()
    }

    fn score(v: f64) -> String {
        let mut out = Vec::new();
        format_score(v, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn scores_format_like_redis_7_2() {
        for (value, text) in [
            (1.5, "1.5"),
            (0.1, "0.1"),
            (-2.0, "-2"),
            (123000.0, "123000"),
            (1e7, "10000000"),
            (1e8, "1e+8"),
            (1e21, "1e+21"),
            (1.5e300, "1.5e+300"),
            (0.0001, "0.0001"),
            (1e-7, "1e-7"),
            (123.456, "123.456"),
            (f64::INFINITY, "inf"),
            (f64::NEG_INFINITY, "-inf"),
            (0.0, "0"),
        ] {
            assert_eq!(score(value), text, "{value}");
        }
    }

    #[test]
    fn scores_read_back_exactly() {
        for v in [
            0.1,
            1.0 / 3.0,
            -1e-300,
            6.02214076e23,
            2.5e-5,
            12345.678901234,
        ] {
            assert_eq!(score(v).parse::<f64>().unwrap(), v);
        }
    }

    #[test]
    fn human_format_matches_redis_examples() {
        assert_eq!(human(10.5 + 0.1), "10.6");
        assert_eq!(human(5200.0), "5200");
        assert_eq!(human(-0.0), "0");
        assert_eq!(human(3.0e-5), "0.00003");
    }
}
