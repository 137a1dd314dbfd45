//! Built-in functions (CESQL v1 §3.5), one module per family: [`string`], [`math`] and
//! [`cast`]. The evaluator looks a call up once by name and arity, evaluates its arguments left
//! to right (an argument that fails makes the call fail with the zero value of its return type)
//! and hands the values to the function, which casts each one to its parameter's type.

mod cast;
mod math;
mod string;

use super::Error;
use super::eval::{EvalError, Type, Value, as_int, as_str};
use super::parser::Expr;

/// What a function yields: its value, or a value and the error that stopped it (the TCK's
/// `functionEvaluation`, `math` or `cast`).
pub(super) type Applied = Result<Value, (Value, EvalError)>;

/// A built-in function.
pub(super) struct Builtin {
    /// Upper-case name.
    name: &'static str,
    /// Fewest arguments.
    min: usize,
    /// Most arguments (`None`: any number).
    max: Option<usize>,
    /// The type of the result.
    pub(super) ret: Type,
    /// Compute the result from the evaluated arguments; implicit cast errors go to the second
    /// argument (the first is kept).
    pub(super) apply: fn(Args, &mut Option<EvalError>) -> Applied,
}

const fn builtin(
    name: &'static str,
    (min, max): (usize, Option<usize>),
    ret: Type,
    apply: fn(Args, &mut Option<EvalError>) -> Applied,
) -> Builtin {
    Builtin {
        name,
        min,
        max,
        ret,
        apply,
    }
}

const ONE: (usize, Option<usize>) = (1, Some(1));

const BUILTINS: &[Builtin] = &[
    builtin("LENGTH", ONE, Type::Int, string::length),
    builtin("CONCAT", (0, None), Type::Str, string::concat),
    builtin("CONCAT_WS", (1, None), Type::Str, string::concat_ws),
    builtin("LOWER", ONE, Type::Str, string::lower),
    builtin("UPPER", ONE, Type::Str, string::upper),
    builtin("TRIM", ONE, Type::Str, string::trim),
    builtin("LEFT", (2, Some(2)), Type::Str, string::left),
    builtin("RIGHT", (2, Some(2)), Type::Str, string::right),
    builtin("SUBSTRING", (2, Some(3)), Type::Str, string::substring),
    builtin("ABS", ONE, Type::Int, math::abs),
    builtin("INT", ONE, Type::Int, cast::int),
    builtin("BOOL", ONE, Type::Bool, cast::bool),
    builtin("STRING", ONE, Type::Str, cast::string),
];

/// The built-in called `name` (upper case) that takes `arity` arguments.
pub(super) fn lookup(name: &str, arity: usize) -> Option<&'static Builtin> {
    BUILTINS
        .iter()
        .find(|f| f.name == name && arity >= f.min && f.max.is_none_or(|m| arity <= m))
}

/// Every call in `e` must name a built-in taking that many arguments.
pub(super) fn check(e: &Expr) -> Result<(), Error> {
    match e {
        Expr::Call(name, args, position) => {
            if lookup(name, args.len()).is_none() {
                return Err(Error::MissingFunction {
                    name: name.clone(),
                    arity: args.len(),
                    position: *position,
                });
            }
            args.iter().try_for_each(check)
        }
        Expr::Not(x) | Expr::Neg(x) | Expr::Like(x, _, _) => check(x),
        Expr::Binary(_, a, b) => {
            check(a)?;
            check(b)
        }
        Expr::In(x, set, _) => {
            check(x)?;
            set.iter().try_for_each(check)
        }
        Expr::Bool(_) | Expr::Int(_) | Expr::Str(_) | Expr::Ident(_) | Expr::Exists(_) => Ok(()),
    }
}

/// A call's evaluated arguments, taken in order. The arity was checked when the expression
/// was parsed; should one be missing anyway, it reads as `false`.
pub(super) struct Args(std::vec::IntoIter<Value>);

impl Args {
    pub(super) fn new(values: Vec<Value>) -> Self {
        Self(values.into_iter())
    }

    /// How many arguments are left.
    fn remaining(&self) -> usize {
        self.0.len()
    }

    /// The next argument as it is.
    fn value(&mut self) -> Value {
        self.0.next().unwrap_or(Value::Bool(false))
    }

    /// The next argument cast to a string.
    fn str(&mut self, errs: &mut Option<EvalError>) -> String {
        as_str(self.value(), errs)
    }

    /// The next argument cast to an integer.
    fn int(&mut self, errs: &mut Option<EvalError>) -> i32 {
        as_int(self.value(), errs)
    }
}
