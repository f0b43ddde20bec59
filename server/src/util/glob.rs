//! Glob-style matching with Redis's rules (`KEYS`, `SCAN MATCH`, `CONFIG GET`):
//! `*`, `?`, `[abc]`, `[^a-z]` and `\` escapes.
//!
//! Matching is greedy with a single backtrack point for the last `*`, so it takes
//! O(pattern × text) time at worst; a hostile pattern cannot make it exponential.

fn fold(b: u8, nocase: bool) -> u8 {
    if nocase {
        b.to_ascii_lowercase()
    } else {
        b
    }
}

/// Matches the single-character token at `p` against `c`; returns whether it
/// matched and where the next token starts.
fn match_token(pat: &[u8], mut p: usize, c: u8, nocase: bool) -> (bool, usize) {
    let c = fold(c, nocase);
    match pat[p] {
        b'?' => (true, p + 1),
        b'\\' if p + 1 < pat.len() => (fold(pat[p + 1], nocase) == c, p + 2),
        b'[' => {
            p += 1;
            let negate = pat.get(p) == Some(&b'^');
            if negate {
                p += 1;
            }
            let mut matched = false;
            // An unterminated class runs to the end of the pattern, as in Redis.
            while p < pat.len() && pat[p] != b']' {
                if pat[p] == b'\\' && p + 1 < pat.len() {
                    matched |= fold(pat[p + 1], nocase) == c;
                    p += 2;
                } else if p + 2 < pat.len() && pat[p + 1] == b'-' {
                    let (mut lo, mut hi) = (fold(pat[p], nocase), fold(pat[p + 2], nocase));
                    if lo > hi {
                        std::mem::swap(&mut lo, &mut hi);
                    }
                    matched |= (lo..=hi).contains(&c);
                    p += 3;
                } else {
                    matched |= fold(pat[p], nocase) == c;
                    p += 1;
                }
            }
            (matched != negate, (p + 1).min(pat.len()))
        }
        other => (fold(other, nocase) == c, p + 1),
    }
}

/// True if `text` matches the glob `pattern`.
pub fn glob_match(pattern: &[u8], text: &[u8], nocase: bool) -> bool {
    let (mut p, mut s) = (0, 0);
    // Pattern position after the last `*`, and the text position it is tried at.
    let mut star: Option<(usize, usize)> = None;
    while s < text.len() {
        if p < pattern.len() && pattern[p] == b'*' {
            while p < pattern.len() && pattern[p] == b'*' {
                p += 1;
            }
            if p == pattern.len() {
                return true;
            }
            star = Some((p, s));
            continue;
        }
        if p < pattern.len() {
            let (matched, next) = match_token(pattern, p, text[s], nocase);
            if matched {
                p = next;
                s += 1;
                continue;
            }
        }
        match star {
            Some((after_star, tried)) => {
                p = after_star;
                s = tried + 1;
                star = Some((after_star, tried + 1));
            }
            None => return false,
        }
    }
    pattern[p..].iter().all(|&b| b == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, t: &str) -> bool {
        glob_match(p.as_bytes(), t.as_bytes(), false)
    }

    #[test]
    fn wildcards() {
        assert!(m("*", ""));
        assert!(m("h?llo", "hello"));
        assert!(m("h*llo", "heeeello"));
        assert!(m("h*llo", "hllo"));
        assert!(!m("h*llo", "hllox"));
        assert!(m("*a*b*c*", "xxaxxbxxcxx"));
        assert!(!m("a*b", "a"));
        assert!(m("key:*", "key:000000000012"));
    }

    #[test]
    fn classes_and_escapes() {
        assert!(m("h[ae]llo", "hallo"));
        assert!(!m("h[ae]llo", "hillo"));
        assert!(m("h[^e]llo", "hallo"));
        assert!(!m("h[^e]llo", "hello"));
        assert!(m("h[a-b]llo", "hbllo"));
        assert!(m("h[b-a]llo", "hallo"));
        assert!(m(r"h\*llo", "h*llo"));
        assert!(!m(r"h\*llo", "hello"));
        assert!(m("[abc", "b"));
    }

    #[test]
    fn nocase_matching() {
        assert!(glob_match(b"MAX*", b"maxclients", true));
        assert!(!glob_match(b"MAX*", b"maxclients", false));
    }

    #[test]
    fn pathological_patterns_finish_quickly() {
        let text = "a".repeat(10_000);
        let pattern = format!("{}b", "*a".repeat(50));
        assert!(!m(&pattern, &text));
    }
}
