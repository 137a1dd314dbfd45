//! Tokens of CESQL.

use super::parser::ParseError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Tok {
    LParen,
    RParen,
    Comma,
    Plus,
    Minus,
    Star,
    Slash,
    Percent,
    Eq,
    NotEq,
    Lt,
    Le,
    Gt,
    Ge,
    Int(i64),
    Str(String),
    /// A word: identifier, keyword or function name (original text).
    Word(String),
    Eof,
}

#[derive(Debug, Clone)]
pub(crate) struct Token {
    pub(crate) tok: Tok,
    /// Byte offset of the token's start.
    pub(crate) pos: usize,
}

pub(crate) fn lex(src: &str) -> Result<Vec<Token>, ParseError> {
    let bytes = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let start = i;
        let single = |t: Tok| Token { tok: t, pos: start };
        match c {
            b' ' | b'\t' | b'\n' | b'\r' => {
                i += 1;
                continue;
            }
            b'(' => out.push(single(Tok::LParen)),
            b')' => out.push(single(Tok::RParen)),
            b',' => out.push(single(Tok::Comma)),
            b'+' => out.push(single(Tok::Plus)),
            b'-' => out.push(single(Tok::Minus)),
            b'*' => out.push(single(Tok::Star)),
            b'/' => out.push(single(Tok::Slash)),
            b'%' => out.push(single(Tok::Percent)),
            b'=' => out.push(single(Tok::Eq)),
            b'!' if bytes.get(i + 1) == Some(&b'=') => {
                out.push(single(Tok::NotEq));
                i += 1;
            }
            b'<' => match bytes.get(i + 1) {
                Some(b'>') => {
                    out.push(single(Tok::NotEq));
                    i += 1;
                }
                Some(b'=') => {
                    out.push(single(Tok::Le));
                    i += 1;
                }
                _ => out.push(single(Tok::Lt)),
            },
            b'>' => {
                if bytes.get(i + 1) == Some(&b'=') {
                    out.push(single(Tok::Ge));
                    i += 1;
                } else {
                    out.push(single(Tok::Gt));
                }
            }
            b'\'' | b'"' => {
                let quote = c;
                let mut j = i + 1;
                let mut s = Vec::new();
                loop {
                    match bytes.get(j) {
                        None => return Err(ParseError::new(start, "unterminated string literal")),
                        Some(b'\\') if bytes.get(j + 1) == Some(&quote) => {
                            s.push(quote);
                            j += 2;
                        }
                        Some(b'\\') if bytes.get(j + 1).is_some() => {
                            // Other escapes are kept as written (LIKE reads `\%` and `\_`).
                            s.push(b'\\');
                            s.push(bytes[j + 1]);
                            j += 2;
                        }
                        Some(&b) if b == quote => break,
                        Some(&b) => {
                            s.push(b);
                            j += 1;
                        }
                    }
                }
                let text = String::from_utf8(s)
                    .map_err(|_| ParseError::new(start, "string literal is not UTF-8"))?;
                out.push(Token {
                    tok: Tok::Str(text),
                    pos: start,
                });
                i = j;
            }
            b'0'..=b'9' => {
                let mut j = i;
                while j < bytes.len() && bytes[j].is_ascii_digit() {
                    j += 1;
                }
                if j < bytes.len() && (bytes[j].is_ascii_alphabetic() || bytes[j] == b'_') {
                    // `1abc` is an identifier (attribute names may start with a digit).
                    while j < bytes.len() && (bytes[j].is_ascii_alphanumeric() || bytes[j] == b'_')
                    {
                        j += 1;
                    }
                    out.push(Token {
                        tok: Tok::Word(src[i..j].to_string()),
                        pos: start,
                    });
                } else {
                    let n: i64 = src[i..j]
                        .parse()
                        .map_err(|_| ParseError::new(start, "integer literal out of range"))?;
                    out.push(Token {
                        tok: Tok::Int(n),
                        pos: start,
                    });
                }
                i = j;
                continue;
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let mut j = i;
                while j < bytes.len() && (bytes[j].is_ascii_alphanumeric() || bytes[j] == b'_') {
                    j += 1;
                }
                out.push(Token {
                    tok: Tok::Word(src[i..j].to_string()),
                    pos: start,
                });
                i = j;
                continue;
            }
            _ => {
                let ch = src[i..].chars().next().unwrap_or('?');
                return Err(ParseError::new(
                    start,
                    format!("unexpected character {ch:?}"),
                ));
            }
        }
        i += 1;
    }
    out.push(Token {
        tok: Tok::Eof,
        pos: src.len(),
    });
    Ok(out)
}
