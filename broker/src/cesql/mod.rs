//! CloudEvents SQL (CESQL) v1: parser and evaluator.
//!
//! Semantics follow the v1.0.0 specification and its TCK (`conformance/cesql-tck`):
//! - keywords, function names and attribute names are case-insensitive;
//! - integers are 32-bit; `/` and `%` truncate, division by zero gives 0 and a math error;
//! - `AND`, `OR`, `XOR` share one precedence level and associate left; `AND`/`OR`
//!   short-circuit;
//! - `=`/`!=`/`<>` cast the left operand to the right operand's type; `IN` casts the set
//!   elements to the left operand's type; `<`, `<=`, `>`, `>=` compare integers;
//! - evaluation is total: every expression yields a value, plus the first error met. A failed
//!   implicit cast continues with the zero value of the target type; an operand that failed
//!   makes its operator yield the zero value of the operator's own type.
//!
//! As a Trigger filter, an expression matches only when it yields `true` without error.

mod eval;
mod lexer;
pub mod like;
mod parser;

pub use eval::{Attributes, ErrorKind, EvalError, Value};
pub use parser::{Expr, ParseError};

/// A parsed, checked expression ready to evaluate.
#[derive(Debug, Clone)]
pub struct Expression {
    root: Expr,
}

impl Expression {
    /// Parse and check an expression (unknown functions and wrong arities are errors here).
    pub fn parse(text: &str) -> Result<Self, ParseError> {
        let root = parser::parse(text)?;
        eval::check_functions(&root)?;
        Ok(Self { root })
    }

    /// Evaluate against an event: the value and the first error, if any.
    pub fn evaluate(&self, event: &dyn Attributes) -> (Value, Option<EvalError>) {
        eval::evaluate(&self.root, event)
    }

    /// Whether the event passes this expression as a filter: `true` and no error.
    pub fn matches(&self, event: &dyn Attributes) -> bool {
        matches!(self.evaluate(event), (Value::Bool(true), None))
    }
}

/// Check an expression for admission: `Err` carries the parse error with its position.
pub fn check(text: &str) -> Result<(), String> {
    Expression::parse(text)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests;
