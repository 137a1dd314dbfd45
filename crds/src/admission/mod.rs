//! Admission, as Knative's webhooks do it, before anything runs: every document is converted
//! from an older apiVersion if need be, checked structurally against its CRD schema, defaulted,
//! and checked against Knative's validation rules. Every error names its field path, and all
//! errors of a document are reported, not only the first.

mod convert;
mod defaults;
mod meta;
mod rules;
mod schema;
#[cfg(test)]
mod tests;

use std::fmt;

use serde_json::Value;

use crate::object::{Kind, Object};
use crate::yaml;

pub use defaults::default_channel_template;
pub use rules::sources::{GITHUB_EVENT_TYPES, parse_cron, split_schedule};
pub use rules::validate_update;

/// One problem with one field of a document.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, thiserror::Error)]
#[error("{}{}{}", .path, if .path.is_empty() { "" } else { ": " }, .message)]
pub struct FieldError {
    /// Dotted path of the field, e.g. `spec.filters[0].exact`; empty for the whole object.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl FieldError {
    /// A new error at `path`.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// Parses an expression; `Err` carries the parser's error (its message has the position),
/// wrapped with [`crate::Error::expression`].
pub type ExpressionCheck = fn(&str) -> crate::Result<()>;

/// Checks that live in other crates, injected by the binary (this crate must not depend on
/// the data plane).
#[derive(Clone, Copy, Default)]
pub struct Hooks {
    /// Parse a CloudEvents SQL expression.
    pub cesql: Option<ExpressionCheck>,
}

/// What admission made of one document.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// The document is a valid object of a kind Knit runs (converted and defaulted).
    Admitted(Box<Object>),
    /// The document is of a kind Knit does not run; it is skipped with a warning.
    Ignored(String),
}

/// The verdict on one document.
#[derive(Debug, Clone)]
pub struct Verdict {
    /// `Kind/name` of the document when it could be read, for messages.
    pub subject: Option<String>,
    /// The outcome, or every error found.
    pub result: Result<Outcome, Vec<FieldError>>,
    /// Warnings (conversions from older versions, ignored kinds).
    pub warnings: Vec<FieldError>,
}

/// Admit one document given as JSON.
pub fn admit_value(value: Value, hooks: &Hooks) -> Verdict {
    let subject = subject_of(&value);
    let mut warnings = Vec::new();
    let result = admit_inner(value, hooks, &mut warnings);
    Verdict {
        subject,
        result,
        warnings,
    }
}

fn subject_of(value: &Value) -> Option<String> {
    let kind = value.get("kind")?.as_str()?;
    let name = value
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("<no name>");
    Some(format!("{kind}/{name}"))
}

fn admit_inner(
    value: Value,
    hooks: &Hooks,
    warnings: &mut Vec<FieldError>,
) -> Result<Outcome, Vec<FieldError>> {
    let Value::Object(_) = value else {
        return Err(vec![FieldError::new(
            "",
            "a manifest must be a YAML mapping with apiVersion, kind and metadata",
        )]);
    };
    let api_version = value
        .get("apiVersion")
        .and_then(Value::as_str)
        .map(str::to_string);
    let kind_name = value
        .get("kind")
        .and_then(Value::as_str)
        .map(str::to_string);
    let (Some(api_version), Some(kind_name)) = (api_version, kind_name) else {
        let mut errs = Vec::new();
        if value.get("apiVersion").and_then(Value::as_str).is_none() {
            errs.push(FieldError::new("apiVersion", "Required value"));
        }
        if value.get("kind").and_then(Value::as_str).is_none() {
            errs.push(FieldError::new("kind", "Required value"));
        }
        return Err(errs);
    };

    let (kind, value) = match convert::resolve(&api_version, &kind_name, value) {
        convert::Resolution::Current(kind, value) => (kind, value),
        convert::Resolution::Converted { kind, value, note } => {
            warnings.push(FieldError::new("apiVersion", note));
            (kind, value)
        }
        convert::Resolution::Ignored(why) => {
            warnings.push(FieldError::new("", why.clone()));
            return Ok(Outcome::Ignored(why));
        }
        convert::Resolution::Rejected(error) => return Err(vec![error]),
    };

    let mut value = value;
    defaults::apply_raw(kind, &mut value);
    let mut errors = meta::check(kind, &value);
    errors.extend(schema::check(kind, &value));
    if !errors.is_empty() {
        return Err(errors);
    }
    let mut object = match kind.parse(value) {
        Ok(o) => o,
        Err(e) => {
            let path = e.path().to_string();
            let path = if path == "." { String::new() } else { path };
            return Err(vec![FieldError::new(path, e.into_inner().to_string())]);
        }
    };
    object.clear_status();
    defaults::apply(&mut object);
    let errors = rules::validate(&object, hooks);
    if errors.is_empty() {
        Ok(Outcome::Admitted(Box::new(object)))
    } else {
        Err(errors)
    }
}

/// How serious an [`Issue`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// The document is rejected.
    Error,
    /// The document is loaded (or skipped) and the user is told why.
    Warning,
}

/// One finding about one document of one file, printed as
/// `FILE:DOC_INDEX: KIND/NAME: field.path: message` (DOC_INDEX counts from 0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    /// The file as given by the user.
    pub file: String,
    /// Position of the document in the file, from 0.
    pub doc: usize,
    /// `Kind/name`, when known.
    pub subject: Option<String>,
    /// The field and what is wrong with it.
    pub error: FieldError,
    /// Error or warning.
    pub severity: Severity,
}

impl fmt::Display for Issue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: ", self.file, self.doc)?;
        if let Some(s) = &self.subject {
            write!(f, "{s}: ")?;
        }
        write!(f, "{}", self.error)
    }
}

/// The verdict on a whole file.
#[derive(Debug, Clone, Default)]
pub struct FileAdmission {
    /// Admitted objects with their document index, in file order.
    pub objects: Vec<(usize, Object)>,
    /// Errors: when non-empty, the file must not be applied.
    pub errors: Vec<Issue>,
    /// Warnings: ignored kinds, converted versions.
    pub warnings: Vec<Issue>,
}

/// Admit every document of a manifest file.
pub fn admit_file(file: &str, text: &str, hooks: &Hooks) -> FileAdmission {
    admit_file_skipping(file, text, hooks, |_| false)
}

/// Admit the documents of a manifest file for which `skip` says false; the others are neither
/// parsed nor admitted (a caller that loaded the same text before knows what they hold).
pub fn admit_file_skipping(
    file: &str,
    text: &str,
    hooks: &Hooks,
    mut skip: impl FnMut(&yaml::RawDocument<'_>) -> bool,
) -> FileAdmission {
    let mut out = FileAdmission::default();
    // A document that is not YAML: an error on the whole document, no object named.
    let syntax = |e: yaml::SyntaxError| Issue {
        file: file.to_string(),
        doc: e.index,
        subject: None,
        error: FieldError::new("", e.message),
        severity: Severity::Error,
    };
    let docs = match yaml::split_documents(text) {
        Ok(docs) => docs,
        Err(e) => {
            out.errors.push(syntax(e));
            return out;
        }
    };
    for raw in docs.iter().filter(|d| !skip(d)) {
        let doc = match raw.parse() {
            Ok(d) => d,
            Err(e) => {
                out.errors.push(syntax(e));
                continue;
            }
        };
        let Some(value) = doc.value else { continue };
        let verdict = admit_value(value, hooks);
        let issue = |error: FieldError, severity| Issue {
            file: file.to_string(),
            doc: doc.index,
            subject: verdict.subject.clone(),
            error,
            severity,
        };
        out.warnings.extend(
            verdict
                .warnings
                .iter()
                .cloned()
                .map(|w| issue(w, Severity::Warning)),
        );
        match verdict.result {
            Ok(Outcome::Admitted(object)) => out.objects.push((doc.index, *object)),
            Ok(Outcome::Ignored(_)) => {}
            Err(errors) => out
                .errors
                .extend(errors.into_iter().map(|e| issue(e, Severity::Error))),
        }
    }
    out
}

/// Admit a document already known to be of `kind` (used for objects Knit derives itself).
pub fn admit_kind(kind: Kind, value: Value, hooks: &Hooks) -> Result<Object, Vec<FieldError>> {
    let mut value = value;
    if let Some(map) = value.as_object_mut() {
        map.insert("apiVersion".into(), Value::String(kind.api_version()));
        map.insert("kind".into(), Value::String(kind.name().into()));
    }
    match admit_value(value, hooks).result {
        Ok(Outcome::Admitted(o)) => Ok(*o),
        Ok(Outcome::Ignored(why)) => Err(vec![FieldError::new("", why)]),
        Err(e) => Err(e),
    }
}
