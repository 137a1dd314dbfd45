//! String functions. Lengths and positions count characters, not bytes; positions are
//! 1-based, negative ones count from the end.

use super::super::eval::{ErrorKind, EvalError, Value, error};
use super::{Applied, Args};

fn function_error(message: String) -> EvalError {
    error(ErrorKind::FunctionEvaluation, message)
}

/// `LENGTH(s)`: its number of characters.
pub(super) fn length(mut args: Args, errs: &mut Option<EvalError>) -> Applied {
    let n = args.str(errs).chars().count();
    Ok(Value::Int(i32::try_from(n).unwrap_or(i32::MAX)))
}

/// `CONCAT(s...)`.
pub(super) fn concat(mut args: Args, errs: &mut Option<EvalError>) -> Applied {
    let mut out = String::new();
    while args.remaining() > 0 {
        out.push_str(&args.str(errs));
    }
    Ok(Value::Str(out))
}

/// `CONCAT_WS(separator, s...)`.
pub(super) fn concat_ws(mut args: Args, errs: &mut Option<EvalError>) -> Applied {
    let sep = args.str(errs);
    let mut parts = Vec::with_capacity(args.remaining());
    while args.remaining() > 0 {
        parts.push(args.str(errs));
    }
    Ok(Value::Str(parts.join(&sep)))
}

/// `LOWER(s)`.
pub(super) fn lower(mut args: Args, errs: &mut Option<EvalError>) -> Applied {
    Ok(Value::Str(args.str(errs).to_lowercase()))
}

/// `UPPER(s)`.
pub(super) fn upper(mut args: Args, errs: &mut Option<EvalError>) -> Applied {
    Ok(Value::Str(args.str(errs).to_uppercase()))
}

/// `TRIM(s)`: without leading and trailing whitespace.
pub(super) fn trim(mut args: Args, errs: &mut Option<EvalError>) -> Applied {
    Ok(Value::Str(args.str(errs).trim().to_string()))
}

/// The string and length arguments of `LEFT`/`RIGHT`: a negative length is an error that
/// yields the string unchanged; a length past the end is the whole string.
fn string_and_length(
    name: &str,
    mut args: Args,
    errs: &mut Option<EvalError>,
) -> Result<(String, usize, usize), (Value, EvalError)> {
    let s = args.str(errs);
    let n = args.int(errs);
    let Ok(n) = usize::try_from(n) else {
        return Err((
            Value::Str(s),
            function_error(format!("{name} with a negative length {n}")),
        ));
    };
    let len = s.chars().count();
    Ok((s, n.min(len), len))
}

/// `LEFT(s, n)`: its first `n` characters.
pub(super) fn left(args: Args, errs: &mut Option<EvalError>) -> Applied {
    let (s, n, _) = string_and_length("LEFT", args, errs)?;
    Ok(Value::Str(s.chars().take(n).collect()))
}

/// `RIGHT(s, n)`: its last `n` characters.
pub(super) fn right(args: Args, errs: &mut Option<EvalError>) -> Applied {
    let (s, n, len) = string_and_length("RIGHT", args, errs)?;
    Ok(Value::Str(s.chars().skip(len - n).collect()))
}

/// `SUBSTRING(s, pos [, len])`: from the 1-based position `pos` (negative: from the end; 0:
/// the empty string), at most `len` characters. A position beyond either end or a negative
/// length is an error that yields the empty string.
pub(super) fn substring(mut args: Args, errs: &mut Option<EvalError>) -> Applied {
    let with_length = args.remaining() == 3;
    let s = args.str(errs);
    let pos = i64::from(args.int(errs));
    let len = with_length.then(|| i64::from(args.int(errs)));
    let total = s.chars().count() as i64;
    if pos > total || pos < -total || len.is_some_and(|l| l < 0) {
        return Err((
            Value::Str(String::new()),
            function_error(format!("SUBSTRING position {pos} out of range")),
        ));
    }
    if pos == 0 {
        return Ok(Value::Str(String::new()));
    }
    let start = if pos > 0 { pos - 1 } else { total + pos };
    let take = len.unwrap_or(total).min(total - start);
    Ok(Value::Str(
        s.chars()
            .skip(start as usize)
            .take(take.max(0) as usize)
            .collect(),
    ))
}
