//! `LIKE` patterns: `%` any run of characters, `_` one character, `\%` and `\_` literal.

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    Char(char),
    One,
    Many,
}

/// Compile a LIKE pattern.
pub(crate) fn compile(pattern: &str) -> Vec<Piece> {
    let mut out = Vec::new();
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if matches!(chars.peek(), Some('%' | '_')) => {
                if let Some(n) = chars.next() {
                    out.push(Piece::Char(n));
                }
            }
            '%' => {
                if out.last() != Some(&Piece::Many) {
                    out.push(Piece::Many);
                }
            }
            '_' => out.push(Piece::One),
            c => out.push(Piece::Char(c)),
        }
    }
    out
}

/// Whether `text` matches `pattern` (linear backtracking on the last `%`, O(n·m) worst case).
pub(crate) fn matches(pattern: &[Piece], text: &str) -> bool {
    let t: Vec<char> = text.chars().collect();
    let (mut p, mut i) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while i < t.len() {
        match pattern.get(p) {
            Some(Piece::Char(c)) if *c == t[i] => {
                p += 1;
                i += 1;
            }
            Some(Piece::One) => {
                p += 1;
                i += 1;
            }
            Some(Piece::Many) => {
                star = Some((p, i));
                p += 1;
            }
            _ => match star {
                Some((sp, si)) => {
                    p = sp + 1;
                    i = si + 1;
                    star = Some((sp, si + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p.min(pattern.len())..]
        .iter()
        .all(|x| *x == Piece::Many)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, t: &str) -> bool {
        matches(&compile(p), t)
    }

    #[test]
    fn wildcards() {
        assert!(m("a%b%c", "azzzbzzzc"));
        assert!(!m("a_b_c", "abc"));
        assert!(m("a\\_b", "a_b"));
        assert!(!m("a\\_b", "azb"));
        assert!(m("ab\\c", "ab\\c"));
        assert!(m("%", ""));
        assert!(!m("_", ""));
        assert!(m("%a%a%a%a%a%b", &("a".repeat(30) + "b")));
        assert!(!m("%a%a%a%a%a%b", &"a".repeat(3000)));
    }
}
