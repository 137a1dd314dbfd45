//! Why an expression yields what it yields on one event: the sub-expression that decided,
//! with the values of the attributes it reads. For `knit filter test` only — filters deliver
//! with [`super::Expression::matches`] alone; this separate pass walks the tree again and
//! evaluates operands one by one, so it costs the delivery path nothing.
//!
//! The clause that decided:
//! - in a chain of `AND`, `OR` and `XOR` (one precedence level, evaluated left to right with
//!   the evaluator's short-circuits): `AND` false — the first operand that was false; `OR`
//!   true — the first operand that was true; `AND` true, `OR` false (every operand false) and
//!   `XOR` — the chain itself, up to that operator;
//! - `NOT x`: the clause that decided `x`, negated (`NOT (source = '/a') is true`); when `x`
//!   decided as a whole, `NOT x` itself. By De Morgan this is what the rules above say of the
//!   equivalent `NOT a OR NOT b` / `NOT a AND NOT b`;
//! - parentheses are not nodes; everything else (comparison, `LIKE`, `IN`, function call,
//!   `EXISTS`, attribute, literal, arithmetic) is a leaf and decides as a whole.
//!
//! The clause that decided always has the whole expression's truth value, so the explanation
//! gives it that value: `source = '/bar' is false (source is "/elsewhere")`.
//!
//! Errors: the value and the error are [`super::Expression::evaluate`]'s. The clause named is
//! the operand of the `AND`/`OR`/`XOR`/`NOT` structure whose evaluation, or implicit cast to a
//! boolean, first raised that error (the leaf as a whole: `LENGTH(x) > 2`, not `x` inside it);
//! should the walk not meet that error, the whole expression.

use std::fmt;

use super::eval::{self, Attributes, EvalError, Value};
use super::parser::{Expr, Op};
use super::render;

/// Why an expression yields what it does on one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation {
    /// The expression's value, as [`super::Expression::evaluate`] gives it. Without an error
    /// it is also the clause's value.
    pub value: Value,
    /// The first error, as [`super::Expression::evaluate`] gives it.
    pub error: Option<EvalError>,
    /// The sub-expression that decided, or that raised `error`, rendered as CESQL.
    pub clause: String,
    /// The attributes `clause` reads, in order of appearance, with their values on the event
    /// (`None`: absent).
    pub attributes: Vec<(String, Option<Value>)>,
}

impl Explanation {
    /// Whether the expression takes the event as a filter: `true` without error.
    pub fn matched(&self) -> bool {
        self.error.is_none() && self.value == Value::Bool(true)
    }
}

/// `source = '/bar' is false (source is "/elsewhere")`, `LENGTH(x) > 2 failed: ...`.
impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.error {
            Some(e) => write!(f, "{} failed: {e}", self.clause)?,
            None => write!(f, "{} is {}", self.clause, Shown(&self.value))?,
        }
        for (i, (name, value)) in self.attributes.iter().enumerate() {
            f.write_str(if i == 0 { " (" } else { ", " })?;
            match value {
                Some(v) => write!(f, "{name} is {}", Shown(v))?,
                None => write!(f, "{name} is absent")?,
            }
        }
        if !self.attributes.is_empty() {
            f.write_str(")")?;
        }
        Ok(())
    }
}

/// A value in an explanation: strings in double quotes, escaped as Rust's `{:?}` does.
struct Shown<'v>(&'v Value);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(n) => write!(f, "{n}"),
            Value::Str(s) => write!(f, "{s:?}"),
        }
    }
}

/// Explain `root` on `event`.
pub(super) fn explain(root: &Expr, event: &dyn Attributes) -> Explanation {
    let (value, error) = eval::evaluate(root, event);
    let clause = if is_logic(root) {
        let mut walk = Walk {
            event,
            errors: Vec::new(),
        };
        let decided = walk.operand(root).decided;
        match &error {
            None => decided,
            Some(error) => walk
                .errors
                .iter()
                .find(|(_, e)| e == error)
                .map_or(Clause::whole(root), |(node, _)| Clause::whole(node)),
        }
    } else {
        Clause::whole(root)
    };
    Explanation {
        value,
        error,
        clause: clause.to_string(),
        attributes: attributes(clause.node, event),
    }
}

/// Whether `e` is a node the walk looks into.
fn is_logic(e: &Expr) -> bool {
    matches!(e, Expr::Not(_)) || matches!(e, Expr::Binary(op, ..) if is_logic_op(*op))
}

fn is_logic_op(op: Op) -> bool {
    matches!(op, Op::And | Op::Or | Op::Xor)
}

/// A sub-expression, possibly negated.
#[derive(Clone, Copy)]
struct Clause<'e> {
    node: &'e Expr,
    negated: bool,
}

impl<'e> Clause<'e> {
    fn whole(node: &'e Expr) -> Self {
        Self {
            node,
            negated: false,
        }
    }

    /// `NOT` this clause; two negations cancel out.
    fn negated(self) -> Self {
        match self.node {
            Expr::Not(x) if !self.negated => Clause::whole(x),
            _ => Clause {
                negated: !self.negated,
                ..self
            },
        }
    }
}

impl fmt::Display for Clause<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.negated {
            write!(f, "{}", render::Not(self.node))
        } else {
            write!(f, "{}", self.node)
        }
    }
}

/// An operand of `AND`/`OR`/`XOR`/`NOT`, as the evaluator sees it.
struct Operand<'e> {
    /// The boolean the operator uses (after the implicit cast; `false` when that failed).
    truth: bool,
    /// Evaluating it failed: the evaluator abandons every operator above it.
    failed: bool,
    /// The clause that decided `truth`.
    decided: Clause<'e>,
}

struct Walk<'e, 'a> {
    event: &'a dyn Attributes,
    /// Every error met, in evaluation order, with the operand that raised it.
    errors: Vec<(&'e Expr, EvalError)>,
}

impl<'e> Walk<'e, '_> {
    fn operand(&mut self, e: &'e Expr) -> Operand<'e> {
        match e {
            Expr::Not(x) => self.not(e, x),
            Expr::Binary(op, ..) if is_logic_op(*op) => self.chain(e),
            _ => self.leaf(e),
        }
    }

    /// A leaf decides as a whole.
    fn leaf(&mut self, e: &'e Expr) -> Operand<'e> {
        let decided = Clause::whole(e);
        let value = match eval::eval(e, self.event) {
            Ok((value, error)) => {
                self.errors.extend(error.map(|err| (e, err)));
                value
            }
            Err((_, err)) => {
                self.errors.push((e, err));
                return Operand {
                    truth: false,
                    failed: true,
                    decided,
                };
            }
        };
        let mut cast_error = None;
        let truth = eval::as_bool(value, &mut cast_error);
        self.errors.extend(cast_error.map(|err| (e, err)));
        Operand {
            truth,
            failed: false,
            decided,
        }
    }

    fn not(&mut self, e: &'e Expr, x: &'e Expr) -> Operand<'e> {
        let inner = self.operand(x);
        if inner.failed {
            return inner;
        }
        let decided = if std::ptr::eq(inner.decided.node, x) && !inner.decided.negated {
            Clause::whole(e)
        } else {
            inner.decided.negated()
        };
        Operand {
            truth: !inner.truth,
            failed: false,
            decided,
        }
    }

    /// `a op1 b op2 c ...` (a left-deep tree) walked down its left spine, then folded left to
    /// right as the evaluator does, without recursing once per operator.
    fn chain(&mut self, e: &'e Expr) -> Operand<'e> {
        let mut levels = Vec::new();
        let mut left = e;
        while let Expr::Binary(op, a, b) = left
            && is_logic_op(*op)
        {
            levels.push((left, *op, b.as_ref()));
            left = a;
        }
        let mut acc = self.operand(left);
        for (node, op, right) in levels.into_iter().rev() {
            if acc.failed {
                break;
            }
            // Short-circuits keep the operand that decided.
            if (op == Op::And && !acc.truth) || (op == Op::Or && acc.truth) {
                continue;
            }
            let r = self.operand(right);
            let decides = match op {
                Op::And => !r.truth,
                Op::Or => r.truth,
                _ => false,
            };
            acc = if r.failed || decides {
                r
            } else {
                Operand {
                    truth: if op == Op::Xor {
                        acc.truth != r.truth
                    } else {
                        r.truth
                    },
                    failed: false,
                    decided: Clause::whole(node),
                }
            };
        }
        acc
    }
}

/// The attributes `e` reads (`EXISTS` included), each once, in order of appearance, with their
/// values on `event`.
fn attributes(e: &Expr, event: &dyn Attributes) -> Vec<(String, Option<Value>)> {
    let mut names: Vec<&str> = Vec::new();
    let mut stack = vec![e];
    while let Some(e) = stack.pop() {
        match e {
            Expr::Ident(name) | Expr::Exists(name) => {
                if !names.contains(&name.as_str()) {
                    names.push(name);
                }
            }
            Expr::Not(x) | Expr::Neg(x) | Expr::Like(x, ..) => stack.push(x),
            Expr::Binary(_, a, b) => {
                stack.push(b);
                stack.push(a);
            }
            Expr::In(x, set, _) => {
                stack.extend(set.iter().rev());
                stack.push(x);
            }
            Expr::Call(_, args, _) => stack.extend(args.iter().rev()),
            Expr::Bool(_) | Expr::Int(_) | Expr::Str(_) => {}
        }
    }
    names
        .into_iter()
        .map(|name| (name.to_string(), event.attribute(name)))
        .collect()
}

#[cfg(test)]
mod tests;
