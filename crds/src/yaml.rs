//! Splitting manifest text into YAML documents and parsing each into JSON.
//!
//! Documents are split on `---` lines ourselves (rather than by the parser) so that every
//! document keeps its position in the file — including empty ones — and a syntax error in one
//! document does not hide the others.

use serde_json::Value;

/// One document of a manifest file.
#[derive(Debug, Clone)]
pub struct Document {
    /// Position in the file, counting from 0 (empty documents count too).
    pub index: usize,
    /// 1-based line where the document's text starts.
    pub line: usize,
    /// The parsed value; `None` for an empty document.
    pub value: Option<Value>,
}

/// A document that is not valid YAML.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct SyntaxError {
    /// Position of the document in the file.
    pub index: usize,
    /// What is wrong, with the file line where it is.
    pub message: String,
}

/// Upper bound on the size of one manifest file; larger files are refused, not parsed.
pub const MAX_MANIFEST_BYTES: usize = 16 * 1024 * 1024;

/// Split `text` into documents and parse each. Returns every document, good or bad, in order.
pub fn parse_documents(text: &str) -> Vec<Result<Document, SyntaxError>> {
    match split_documents(text) {
        Ok(docs) => docs.iter().map(RawDocument::parse).collect(),
        Err(e) => vec![Err(e)],
    }
}

/// One document's text, split from its file but not parsed yet.
#[derive(Debug, Clone, Copy)]
pub struct RawDocument<'a> {
    /// Position in the file, counting from 0 (empty documents count too).
    pub index: usize,
    /// 1-based line where the document's text starts.
    pub line: usize,
    /// The document's text.
    pub text: &'a str,
}

impl RawDocument<'_> {
    /// Parse the document.
    pub fn parse(&self) -> Result<Document, SyntaxError> {
        parse_chunk(
            self.index,
            Chunk {
                line: self.line,
                text: self.text,
            },
        )
    }
}

/// Split `text` into documents without parsing them (a caller may skip the ones it already
/// knows); a file larger than [`MAX_MANIFEST_BYTES`] is refused unread.
pub fn split_documents(text: &str) -> Result<Vec<RawDocument<'_>>, SyntaxError> {
    if text.len() > MAX_MANIFEST_BYTES {
        return Err(SyntaxError {
            index: 0,
            message: format!("file is larger than {MAX_MANIFEST_BYTES} bytes"),
        });
    }
    Ok(split(text)
        .into_iter()
        .enumerate()
        .map(|(index, c)| RawDocument {
            index,
            line: c.line,
            text: c.text,
        })
        .collect())
}

struct Chunk<'a> {
    line: usize,
    text: &'a str,
}

fn is_separator(line: &str) -> bool {
    let rest = line
        .strip_prefix("---")
        .or_else(|| line.strip_prefix("..."));
    match rest {
        Some(r) => r.is_empty() || r.starts_with([' ', '\t', '\r']),
        None => false,
    }
}

fn is_blank(text: &str) -> bool {
    text.lines().all(|l| {
        let t = l.trim();
        t.is_empty() || t.starts_with('#') || t.starts_with('%')
    })
}

fn split(text: &str) -> Vec<Chunk<'_>> {
    let mut chunks = Vec::new();
    let mut start = 0usize;
    let mut start_line = 1usize;
    let mut offset = 0usize;
    let mut seen_separator = false;
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let line_no = i + 1;
        if is_separator(line.trim_end_matches('\n')) {
            let body = &text[start..offset];
            // Text before the first separator is a document only if it holds content.
            if seen_separator || !is_blank(body) {
                chunks.push(Chunk {
                    line: start_line,
                    text: body,
                });
            }
            seen_separator = true;
            // Content after `--- ` on the same line belongs to the next document.
            let after = line.get(3..).unwrap_or_default();
            let keep = !after.trim().is_empty()
                && !after.trim_start().starts_with('#')
                && line.starts_with("---");
            start = if keep {
                offset + 3
            } else {
                offset + line.len()
            };
            start_line = if keep { line_no } else { line_no + 1 };
        }
        offset += line.len();
    }
    let body = &text[start..];
    if !is_blank(body) || (!seen_separator && chunks.is_empty() && !body.trim().is_empty()) {
        chunks.push(Chunk {
            line: start_line,
            text: body,
        });
    }
    chunks
}

fn parse_chunk(index: usize, chunk: Chunk<'_>) -> Result<Document, SyntaxError> {
    if is_blank(chunk.text) {
        return Ok(Document {
            index,
            line: chunk.line,
            value: None,
        });
    }
    let options = serde_saphyr::options! { with_snippet: false };
    match serde_saphyr::from_str_with_options::<Value>(chunk.text, options) {
        Ok(Value::Null) => Ok(Document {
            index,
            line: chunk.line,
            value: None,
        }),
        Ok(value) => Ok(Document {
            index,
            line: chunk.line,
            value: Some(value),
        }),
        Err(e) => {
            let at = e
                .location()
                .map(|l| {
                    format!(
                        " (line {}, column {})",
                        l.line() as usize + chunk.line - 1,
                        l.column()
                    )
                })
                .unwrap_or_default();
            let msg = e.to_string();
            let msg = msg.lines().next().unwrap_or("invalid YAML").trim();
            // The parser's own position is relative to the document; ours is the file's.
            let msg = msg.split(" at line ").next().unwrap_or(msg).to_string();
            Err(SyntaxError {
                index,
                message: format!("invalid YAML: {msg}{at}"),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(text: &str) -> Vec<Option<Value>> {
        parse_documents(text)
            .into_iter()
            .map(|d| {
                d.map(|d| d.value)
                    .unwrap_or(Some(Value::String("ERR".into())))
            })
            .collect()
    }

    #[test]
    fn splits_and_counts_empty_documents() {
        let v = values("a: 1\n---\n---\nb: 2\n---\n");
        // The empty document between two separators counts; a trailing separator adds nothing.
        assert_eq!(v.len(), 3);
        assert_eq!(v[0], Some(serde_json::json!({"a": 1})));
        assert_eq!(v[1], None);
        assert_eq!(v[2], Some(serde_json::json!({"b": 2})));
    }

    #[test]
    fn leading_separator_and_comments_are_not_a_document() {
        let v = values("# header\n---\na: 1\n");
        assert_eq!(v, vec![Some(serde_json::json!({"a": 1}))]);
    }

    #[test]
    fn syntax_error_names_the_file_line() {
        let docs = parse_documents("a: 1\n---\nb: [1, 2\nc: 3\n");
        assert!(docs[0].is_ok());
        let err = docs[1].as_ref().expect_err("second document is invalid");
        assert_eq!(err.index, 1);
        assert!(err.message.contains("line"), "{}", err.message);
    }

    #[test]
    fn anchors_and_aliases_resolve() {
        let v = values("x: &l {app: a}\ny: *l\n");
        assert_eq!(
            v[0],
            Some(serde_json::json!({"x": {"app": "a"}, "y": {"app": "a"}}))
        );
    }

    #[test]
    fn garbage_does_not_panic() {
        for text in [
            "\u{0}",
            ":",
            "- - -",
            "{",
            "a: b: c",
            "--- !!binary x",
            "&a [*a]",
        ] {
            let _ = parse_documents(text);
        }
    }
}
