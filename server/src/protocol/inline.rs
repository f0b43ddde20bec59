//! Splitting an inline command line (`SET a "b c"` typed into telnet) into arguments,
//! with the quoting rules of Redis's `sdssplitargs`.

/// The line has an unterminated quote, or a closing quote followed by a non-space.
#[derive(Debug, PartialEq, Eq)]
pub struct Unbalanced;

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\n' | b'\r' | b'\t' | 0x0b | 0x0c)
}

fn hex_value(b: u8) -> Option<u8> {
    char::from(b).to_digit(16).map(|d| d as u8)
}

/// Appends the unescaped arguments of `line` to `out`, recording each as a span.
pub fn split_args(
    line: &[u8],
    out: &mut Vec<u8>,
    spans: &mut Vec<(usize, usize)>,
) -> Result<(), Unbalanced> {
    // C strings end at NUL, and so does Redis's parse of an inline line.
    let line = match line.iter().position(|&b| b == 0) {
        Some(nul) => &line[..nul],
        None => line,
    };
    let mut i = 0;
    loop {
        while i < line.len() && is_space(line[i]) {
            i += 1;
        }
        if i == line.len() {
            return Ok(());
        }
        let start = out.len();
        i = read_token(line, i, out)?;
        spans.push((start, out.len()));
    }
}

/// Reads one token starting at `i`; returns the offset after it.
fn read_token(line: &[u8], mut i: usize, out: &mut Vec<u8>) -> Result<usize, Unbalanced> {
    #[derive(PartialEq)]
    enum Mode {
        Plain,
        Double,
        Single,
    }
    let mut mode = Mode::Plain;
    loop {
        let Some(&c) = line.get(i) else {
            return if mode == Mode::Plain {
                Ok(i)
            } else {
                Err(Unbalanced)
            };
        };
        let next = line.get(i + 1).copied();
        match mode {
            Mode::Double => match (c, next) {
                (b'\\', Some(b'x')) => {
                    let hi = line.get(i + 2).and_then(|&b| hex_value(b));
                    let lo = line.get(i + 3).and_then(|&b| hex_value(b));
                    if let (Some(hi), Some(lo)) = (hi, lo) {
                        out.push(hi * 16 + lo);
                        i += 3;
                    } else {
                        out.push(b'x');
                        i += 1;
                    }
                }
                (b'\\', Some(e)) => {
                    out.push(match e {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 0x08,
                        b'a' => 0x07,
                        other => other,
                    });
                    i += 1;
                }
                (b'"', next) => {
                    // A closing quote must end the token.
                    if next.is_some_and(|n| !is_space(n)) {
                        return Err(Unbalanced);
                    }
                    return Ok(i + 1);
                }
                _ => out.push(c),
            },
            Mode::Single => match (c, next) {
                (b'\\', Some(b'\'')) => {
                    out.push(b'\'');
                    i += 1;
                }
                (b'\'', next) => {
                    if next.is_some_and(|n| !is_space(n)) {
                        return Err(Unbalanced);
                    }
                    return Ok(i + 1);
                }
                _ => out.push(c),
            },
            Mode::Plain => match c {
                c if is_space(c) => return Ok(i),
                b'"' => mode = Mode::Double,
                b'\'' => mode = Mode::Single,
                _ => out.push(c),
            },
        }
        i += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(line: &str) -> Result<Vec<String>, Unbalanced> {
        let mut out = Vec::new();
        let mut spans = Vec::new();
        split_args(line.as_bytes(), &mut out, &mut spans)?;
        Ok(spans
            .iter()
            .map(|&(s, e)| String::from_utf8_lossy(&out[s..e]).into_owned())
            .collect())
    }

    #[test]
    fn splits_on_whitespace() {
        assert_eq!(split("  SET\ta   b ").unwrap(), ["SET", "a", "b"]);
        assert!(split("   ").unwrap().is_empty());
    }

    #[test]
    fn double_quotes_support_escapes() {
        assert_eq!(
            split(r#"SET k "a b\n\x41\"""#).unwrap(),
            ["SET", "k", "a b\nA\""]
        );
        assert_eq!(split(r#""""#).unwrap(), [""]);
    }

    #[test]
    fn single_quotes_are_literal_except_escaped_quote() {
        assert_eq!(split(r"'a\nb' 'it\'s'").unwrap(), ["a\\nb", "it's"]);
    }

    #[test]
    fn unbalanced_quotes_are_errors() {
        assert_eq!(split("\"abc"), Err(Unbalanced));
        assert_eq!(split("'abc"), Err(Unbalanced));
        assert_eq!(split("\"abc\"def"), Err(Unbalanced));
    }

    #[test]
    fn quote_inside_plain_token_starts_quoting() {
        assert_eq!(split("foo\"bar baz\"").unwrap(), ["foobar baz"]);
    }
}
