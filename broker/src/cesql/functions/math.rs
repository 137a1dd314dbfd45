//! Integer functions.

use super::super::eval::{ErrorKind, EvalError, Value, error};
use super::{Applied, Args};

/// `ABS(n)`; `ABS(-2147483648)` saturates to the maximum with a math error (TCK
/// integer_builtin_functions, "ABS overflow").
pub(super) fn abs(mut args: Args, errs: &mut Option<EvalError>) -> Applied {
    let n = args.int(errs);
    n.checked_abs()
        .map(Value::Int)
        .ok_or_else(|| (Value::Int(i32::MAX), error(ErrorKind::Math, "ABS overflow")))
}
