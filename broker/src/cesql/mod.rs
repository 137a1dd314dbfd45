//! CloudEvents SQL (CESQL) v1: parser, evaluator, and the explanation of a verdict.
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
//! [`Expression::explain`] says which sub-expression decided (the rules are in `explain.rs`);
//! it is a separate pass, never run when delivering.

mod eval;
mod explain;
mod functions;
mod lexer;
pub mod like;
mod parser;
mod render;

pub use eval::{Attributes, ErrorKind, EvalError, Value};
pub use explain::Explanation;
pub use parser::{Expr, ParseError};

/// Why an expression is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The text is not a CESQL expression (the TCK's `parse` errors), or is too long or too
    /// deeply nested.
    #[error(transparent)]
    Syntax(#[from] ParseError),
    /// A call names no built-in function taking that many arguments (the TCK's
    /// `missingFunction`, raised when parsing).
    #[error("missing function: no function {name} taking {arity} arguments at position {}", .position + 1)]
    MissingFunction {
        /// The function's name, upper case.
        name: String,
        /// How many arguments the call passes.
        arity: usize,
        /// Byte offset of the call in the expression.
        position: usize,
    },
}

/// The result of parsing.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A parsed, checked expression ready to evaluate.
#[derive(Debug, Clone)]
pub struct Expression {
    root: Expr,
}

impl Expression {
    /// Parse and check an expression (unknown functions and wrong arities are errors here).
    pub fn parse(text: &str) -> Result<Self> {
        let root = parser::parse(text)?;
        functions::check(&root)?;
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

    /// Evaluate against an event and say which sub-expression decided. Slower than
    /// [`Expression::evaluate`] (operands are evaluated again as the tree is walked): for
    /// `knit filter test`, not for delivering.
    pub fn explain(&self, event: &dyn Attributes) -> Explanation {
        explain::explain(&self.root, event)
    }
}

/// Check an expression for admission: the error says what is wrong and where.
pub fn check(text: &str) -> Result<()> {
    Expression::parse(text).map(|_| ())
}

#[cfg(test)]
mod tests;
