//! Glob-style pattern matching with Redis' syntax (`stringmatchlen`), for CONFIG GET, COMMAND
//! LIST FILTERBY PATTERN and the keyspace's KEYS and SCAN MATCH.
//!
//! * `*` any run of bytes, `?` any one byte;
//! * `[abc]`, `[a-z]`, `[^a-z]` a byte in (or not in) the class; a reversed range `[z-a]` is
//!   the same as `[a-z]`, and a class left open runs to the end of the pattern;
//! * `\x` the byte `x` itself, also inside a class.
//!
//! Matching backtracks only to the last `*`, so it takes O(pattern × subject) time at worst,
//! whatever the pattern: a hostile `*a*a*a*...` cannot blow up like a naive recursive matcher.

fn eq(a: u8, b: u8, nocase: bool) -> bool {
    a == b || (nocase && a.eq_ignore_ascii_case(&b))
}

/// Whether the single-byte token at `pattern[p]` (not `*`) matches `c`, and where the next
/// token starts.
fn token(pattern: &[u8], p: usize, c: u8, nocase: bool) -> (bool, usize) {
    match pattern[p] {
        b'?' => (true, p + 1),
        b'\\' if p + 1 < pattern.len() => (eq(pattern[p + 1], c, nocase), p + 2),
        b'[' => class(pattern, p + 1, c, nocase),
        literal => (eq(literal, c, nocase), p + 1),
    }
}

/// Matches `c` against the class starting after `[` at `p`.
fn class(pattern: &[u8], mut p: usize, c: u8, nocase: bool) -> (bool, usize) {
    let negate = pattern.get(p) == Some(&b'^');
    if negate {
        p += 1;
    }
    let mut found = false;
    while p < pattern.len() && pattern[p] != b']' {
        if pattern[p] == b'\\' && p + 1 < pattern.len() {
            found |= eq(pattern[p + 1], c, nocase);
            p += 2;
        } else if p + 2 < pattern.len() && pattern[p + 1] == b'-' {
            let (mut lo, mut hi) = (pattern[p], pattern[p + 2]);
            if lo > hi {
                std::mem::swap(&mut lo, &mut hi);
            }
            let (lc, uc) = (c.to_ascii_lowercase(), c.to_ascii_uppercase());
            found |= (lo..=hi).contains(&c)
                || (nocase && ((lo..=hi).contains(&lc) || (lo..=hi).contains(&uc)));
            p += 3;
        } else {
            found |= eq(pattern[p], c, nocase);
            p += 1;
        }
    }
    // Skip the closing bracket, if the class has one.
    let next = if p < pattern.len() { p + 1 } else { p };
    (found != negate, next)
}

/// Whether `subject` matches `pattern`; `nocase` compares ASCII letters case-insensitively.
pub fn glob_match(pattern: &[u8], subject: &[u8], nocase: bool) -> bool {
    let (mut p, mut i) = (0, 0);
    // Where to resume after the last `*`: the token after it, and the subject byte it would
    // swallow next.
    let mut star: Option<(usize, usize)> = None;
    while i < subject.len() {
        if p < pattern.len() && pattern[p] == b'*' {
            while p < pattern.len() && pattern[p] == b'*' {
                p += 1;
            }
            if p == pattern.len() {
                return true;
            }
            star = Some((p, i));
            continue;
        }
        if p < pattern.len() {
            let (matched, next) = token(pattern, p, subject[i], nocase);
            if matched {
                p = next;
                i += 1;
                continue;
            }
        }
        match star {
            Some((after, swallowed)) => {
                star = Some((after, swallowed + 1));
                p = after;
                i = swallowed + 1;
            }
            None => return false,
        }
    }
    while p < pattern.len() && pattern[p] == b'*' {
        p += 1;
    }
    p == pattern.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, s: &str) -> bool {
        glob_match(p.as_bytes(), s.as_bytes(), false)
    }

    #[test]
    fn redis_examples() {
        assert!(m("h?llo", "hello") && m("h?llo", "hallo") && !m("h?llo", "hllo"));
        assert!(m("h*llo", "hllo") && m("h*llo", "heeeello"));
        assert!(m("h[ae]llo", "hello") && !m("h[ae]llo", "hillo"));
        assert!(m("h[^e]llo", "hallo") && !m("h[^e]llo", "hello"));
        assert!(m("h[a-b]llo", "hbllo") && !m("h[a-b]llo", "hcllo"));
        assert!(m("h[b-a]llo", "hallo"));
        assert!(m("*", "") && m("*", "anything") && m("", "") && !m("", "x"));
        assert!(m("a\\*b", "a*b") && !m("a\\*b", "axb"));
        assert!(m("[\\]]", "]"));
        assert!(m("a[bc", "ab") && !m("a[bc", "ad"));
        assert!(m("*max*", "maxclients") && m("max*", "maxmemory") && !m("max?", "maxmemory"));
        assert!(m("*a*b*c", "xxaxxbxxc") && !m("*a*b*c", "xxaxxcxxb"));
        assert!(m("trailing\\", "trailing\\"));
    }

    #[test]
    fn nocase() {
        assert!(glob_match(b"MAX*", b"maxclients", true));
        assert!(!glob_match(b"MAX*", b"maxclients", false));
        assert!(glob_match(b"[A-C]x", b"bx", true));
    }

    #[test]
    fn pathological_patterns_are_fast() {
        let pattern = "*a".repeat(50) + "b";
        let subject = "a".repeat(5000);
        assert!(!m(&pattern, &subject));
    }
}
