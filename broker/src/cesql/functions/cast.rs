//! Explicit casts. Unlike implicit ones, a cast that fails fails the call (its value is the
//! target type's zero value), and `INT`/`BOOL` also convert booleans and integers.

use super::super::eval::{EvalError, Type, Value, as_str, cast};
use super::{Applied, Args};

/// Cast `v` to `to`, failing on the first error.
fn explicit(v: Value, to: Type, zero: Value) -> Applied {
    let mut err = None;
    let v = cast(v, to, &mut err);
    match err {
        Some(e) => Err((zero, e)),
        None => Ok(v),
    }
}

/// `INT(x)`: `TRUE` is 1, `FALSE` 0, a string must hold a 32-bit integer.
pub(super) fn int(mut args: Args, _: &mut Option<EvalError>) -> Applied {
    match args.value() {
        Value::Bool(b) => Ok(Value::Int(i32::from(b))),
        other => explicit(other, Type::Int, Value::Int(0)),
    }
}

/// `BOOL(x)`: an integer is true unless 0, a string must be `true` or `false` (any case).
pub(super) fn bool(mut args: Args, _: &mut Option<EvalError>) -> Applied {
    match args.value() {
        Value::Int(n) => Ok(Value::Bool(n != 0)),
        other => explicit(other, Type::Bool, Value::Bool(false)),
    }
}

/// `STRING(x)`: the decimal or `true`/`false` text.
pub(super) fn string(mut args: Args, errs: &mut Option<EvalError>) -> Applied {
    Ok(Value::Str(as_str(args.value(), errs)))
}
