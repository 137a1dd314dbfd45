//! Evaluation: values, implicit casts, operators and built-in functions.

use super::functions;
use super::like;
use super::parser::{Expr, Op};

/// A CESQL value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// Boolean.
    Bool(bool),
    /// 32-bit integer.
    Int(i32),
    /// String.
    Str(String),
}

/// The type of a value.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Type {
    Bool,
    Int,
    Str,
}

impl Value {
    fn ty(&self) -> Type {
        match self {
            Value::Bool(_) => Type::Bool,
            Value::Int(_) => Type::Int,
            Value::Str(_) => Type::Str,
        }
    }
}

fn zero(t: Type) -> Value {
    match t {
        Type::Bool => Value::Bool(false),
        Type::Int => Value::Int(0),
        Type::Str => Value::Str(String::new()),
    }
}

/// Kinds of evaluation errors, as the TCK names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Syntax error.
    Parse,
    /// Division by zero, overflow.
    Math,
    /// A value could not be cast.
    Cast,
    /// No function of that name and arity.
    MissingFunction,
    /// A function got arguments it cannot handle.
    FunctionEvaluation,
    /// The event lacks an attribute the expression reads.
    MissingAttribute,
    /// Anything else.
    Generic,
}

/// An evaluation error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind:?}: {message}")]
pub struct EvalError {
    /// Its kind.
    pub kind: ErrorKind,
    /// What happened.
    pub message: String,
}

pub(super) fn error(kind: ErrorKind, message: impl Into<String>) -> EvalError {
    EvalError {
        kind,
        message: message.into(),
    }
}

/// Read access to an event's attributes.
pub trait Attributes {
    /// The attribute's value (context attributes as strings, extensions typed), or `None`.
    fn attribute(&self, name: &str) -> Option<Value>;
}

impl Attributes for knit_channels::Event {
    fn attribute(&self, name: &str) -> Option<Value> {
        use knit_channels::ExtValue;
        match name {
            "specversion" | "id" | "source" | "type" | "datacontenttype" | "dataschema"
            | "subject" | "time" => {
                knit_channels::Event::attribute(self, name).map(|v| Value::Str(v.into_owned()))
            }
            _ => self.extension(name).map(|v| match v {
                ExtValue::String(s) => Value::Str(s.clone()),
                ExtValue::Integer(i) => i32::try_from(*i)
                    .map(Value::Int)
                    .unwrap_or_else(|_| Value::Str(i.to_string())),
                ExtValue::Boolean(b) => Value::Bool(*b),
            }),
        }
    }
}

/// Cast for implicit conversions: failures give the target's zero value and a cast error.
pub(super) fn cast(v: Value, to: Type, errs: &mut Option<EvalError>) -> Value {
    match (v, to) {
        (v, t) if v.ty() == t => v,
        (Value::Str(s), Type::Int) => match s.trim().parse::<i32>() {
            Ok(n) => Value::Int(n),
            Err(_) => {
                note(
                    errs,
                    error(ErrorKind::Cast, format!("cannot cast '{s}' to an integer")),
                );
                Value::Int(0)
            }
        },
        (Value::Str(s), Type::Bool) => {
            if s.eq_ignore_ascii_case("true") {
                Value::Bool(true)
            } else if s.eq_ignore_ascii_case("false") {
                Value::Bool(false)
            } else {
                note(
                    errs,
                    error(ErrorKind::Cast, format!("cannot cast '{s}' to a boolean")),
                );
                Value::Bool(false)
            }
        }
        (Value::Bool(b), Type::Int) => Value::Int(i32::from(b)),
        (Value::Int(n), Type::Bool) => {
            note(
                errs,
                error(ErrorKind::Cast, format!("cannot cast {n} to a boolean")),
            );
            Value::Bool(false)
        }
        (Value::Int(n), Type::Str) => Value::Str(n.to_string()),
        (Value::Bool(b), Type::Str) => Value::Str(b.to_string()),
        (v, _) => v,
    }
}

fn note(errs: &mut Option<EvalError>, e: EvalError) {
    if errs.is_none() {
        *errs = Some(e);
    }
}

/// Evaluate `e`: the value and the first error.
pub(super) fn evaluate(e: &Expr, ev: &dyn Attributes) -> (Value, Option<EvalError>) {
    match eval(e, ev) {
        Ok((v, err)) => (v, err),
        Err((v, err)) => (v, Some(err)),
    }
}

/// `Ok((value, cast error))` when the operands evaluated; `Err((zero, error))` when an operand
/// failed or the operator itself did.
pub(super) type Eval = Result<(Value, Option<EvalError>), (Value, EvalError)>;

/// Evaluate an operand; an operand error makes the enclosing operator return its zero value.
fn operand(
    e: &Expr,
    ev: &dyn Attributes,
    ret: Type,
    errs: &mut Option<EvalError>,
) -> Result<Value, (Value, EvalError)> {
    evaluated(eval(e, ev), ret, errs)
}

/// [`operand`] for an operand already evaluated.
fn evaluated(
    result: Eval,
    ret: Type,
    errs: &mut Option<EvalError>,
) -> Result<Value, (Value, EvalError)> {
    match result {
        Ok((v, err)) => {
            if let Some(err) = err {
                note(errs, err);
            }
            Ok(v)
        }
        Err((_, err)) => Err((zero(ret), err)),
    }
}

pub(super) fn eval(e: &Expr, ev: &dyn Attributes) -> Eval {
    let mut errs = None;
    let v = match e {
        Expr::Bool(b) => Value::Bool(*b),
        Expr::Int(n) => Value::Int(*n),
        Expr::Str(s) => Value::Str(s.clone()),
        Expr::Ident(name) => match ev.attribute(name) {
            Some(v) => v,
            None => {
                return Err((
                    Value::Bool(false),
                    error(
                        ErrorKind::MissingAttribute,
                        format!("missing attribute {name}"),
                    ),
                ));
            }
        },
        Expr::Exists(name) => Value::Bool(ev.attribute(name).is_some()),
        Expr::Not(x) => {
            let v = operand(x, ev, Type::Bool, &mut errs)?;
            Value::Bool(!as_bool(v, &mut errs))
        }
        Expr::Neg(x) => {
            let v = operand(x, ev, Type::Int, &mut errs)?;
            match as_int(v, &mut errs).checked_neg() {
                Some(m) => Value::Int(m),
                None => {
                    return Err((
                        Value::Int(i32::MAX),
                        error(ErrorKind::Math, "integer overflow"),
                    ));
                }
            }
        }
        Expr::Like(x, pattern, negated) => {
            let v = operand(x, ev, Type::Bool, &mut errs)?;
            Value::Bool(like::matches(pattern, &as_str(v, &mut errs)) != *negated)
        }
        Expr::In(x, set, negated) => {
            let v = operand(x, ev, Type::Bool, &mut errs)?;
            let target = v.ty();
            let mut found = false;
            for item in set {
                let iv = operand(item, ev, Type::Bool, &mut errs)?;
                if cast(iv, target, &mut errs) == v {
                    found = true;
                    break;
                }
            }
            Value::Bool(found != *negated)
        }
        Expr::Binary(..) => return binary_chain(e, ev),
        Expr::Call(name, args, _) => return call(name, args, ev),
    };
    Ok((v, errs))
}

pub(super) fn as_int(v: Value, errs: &mut Option<EvalError>) -> i32 {
    match cast(v, Type::Int, errs) {
        Value::Int(n) => n,
        _ => 0,
    }
}

pub(super) fn as_bool(v: Value, errs: &mut Option<EvalError>) -> bool {
    matches!(cast(v, Type::Bool, errs), Value::Bool(true))
}

pub(super) fn as_str(v: Value, errs: &mut Option<EvalError>) -> String {
    match cast(v, Type::Str, errs) {
        Value::Str(s) => s,
        _ => String::new(),
    }
}

/// A chain of binary operators of one precedence level, `a op1 b op2 c ...`, is a left-deep
/// tree `Binary(op2, Binary(op1, a, b), c)`; it is evaluated walking down its left spine (as
/// many levels as operators) and folding back up, so a long `x OR y OR z ...` does not recurse.
/// Operands are evaluated left to right, as the recursion would.
fn binary_chain(e: &Expr, ev: &dyn Attributes) -> Eval {
    let mut rights = Vec::new();
    let mut left = e;
    while let Expr::Binary(op, a, b) = left {
        rights.push((*op, b.as_ref()));
        left = a;
    }
    let mut acc = eval(left, ev);
    for (op, b) in rights.into_iter().rev() {
        acc = binary(op, acc, b, ev);
    }
    acc
}

/// `a op b` where `a` has been evaluated already.
fn binary(op: Op, a: Eval, b: &Expr, ev: &dyn Attributes) -> Eval {
    let mut errs = None;
    let v = match op {
        Op::And | Op::Or => {
            let l = as_bool(evaluated(a, Type::Bool, &mut errs)?, &mut errs);
            // Short-circuit: AND stops at false, OR at true.
            if (op == Op::And && !l) || (op == Op::Or && l) {
                return Ok((Value::Bool(l), errs));
            }
            let r = as_bool(operand(b, ev, Type::Bool, &mut errs)?, &mut errs);
            Value::Bool(r)
        }
        Op::Xor => {
            let l = as_bool(evaluated(a, Type::Bool, &mut errs)?, &mut errs);
            let r = as_bool(operand(b, ev, Type::Bool, &mut errs)?, &mut errs);
            Value::Bool(l != r)
        }
        Op::Eq | Op::NotEq => {
            let l = evaluated(a, Type::Bool, &mut errs)?;
            let r = operand(b, ev, Type::Bool, &mut errs)?;
            let l = cast(l, r.ty(), &mut errs);
            Value::Bool((l == r) == (op == Op::Eq))
        }
        Op::Lt | Op::Le | Op::Gt | Op::Ge => {
            let l = as_int(evaluated(a, Type::Bool, &mut errs)?, &mut errs);
            let r = as_int(operand(b, ev, Type::Bool, &mut errs)?, &mut errs);
            Value::Bool(match op {
                Op::Lt => l < r,
                Op::Le => l <= r,
                Op::Gt => l > r,
                _ => l >= r,
            })
        }
        Op::Add | Op::Sub | Op::Mul | Op::Div | Op::Mod => {
            let l = as_int(evaluated(a, Type::Int, &mut errs)?, &mut errs);
            let r = as_int(operand(b, ev, Type::Int, &mut errs)?, &mut errs);
            let res = match op {
                Op::Add => l.checked_add(r),
                Op::Sub => l.checked_sub(r),
                Op::Mul => l.checked_mul(r),
                Op::Div if r == 0 => {
                    return Err((Value::Int(0), error(ErrorKind::Math, "division by zero")));
                }
                Op::Mod if r == 0 => {
                    return Err((Value::Int(0), error(ErrorKind::Math, "modulo by zero")));
                }
                // `i32::MIN / -1` overflows; `i32::MIN % -1` is 0 (checked_rem calls it an
                // overflow because the hardware division behind it would trap).
                Op::Div => l.checked_div(r),
                _ => Some(l.wrapping_rem(r)),
            };
            match res {
                Some(n) => Value::Int(n),
                None => return Err((Value::Int(0), error(ErrorKind::Math, "integer overflow"))),
            }
        }
    };
    Ok((v, errs))
}

/// `NAME(args)`: its arguments left to right (one that fails fails the call with the zero
/// value of the function's type), then the function (see [`functions`]).
fn call(name: &str, args: &[Expr], ev: &dyn Attributes) -> Eval {
    let Some(f) = functions::lookup(name, args.len()) else {
        return Err((
            Value::Bool(false),
            error(ErrorKind::MissingFunction, format!("no function {name}")),
        ));
    };
    let mut errs = None;
    let mut values = Vec::with_capacity(args.len());
    for a in args {
        values.push(operand(a, ev, f.ret, &mut errs)?);
    }
    let v = (f.apply)(functions::Args::new(values), &mut errs)?;
    Ok((v, errs))
}
