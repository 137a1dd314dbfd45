//! A syntax tree rendered back as CESQL, for explanations: keywords and function names in
//! upper case, attributes in lower case, strings in single quotes (double quotes when the text
//! holds `\'`), and parentheses where the grammar needs them — plus around an `AND`/`OR`/`XOR`
//! chain that is the left operand of a different one of the three, since they share one
//! precedence level and `a AND b OR c`, which is `(a AND b) OR c`, reads otherwise (and around
//! `NOT x` before `LIKE`/`IN`, which binds tighter). Parsing a rendering gives the same tree (a
//! test checks it on the TCK's expressions).

use std::fmt::{self, Write};

use super::like::Piece;
use super::parser::{Expr, Op};

// How tightly each kind of node binds, as the parser's binding powers (`LIKE` and `IN` differ
// there, but no operand position tells them apart).
const LOGIC: u8 = 10;
const COMPARISON: u8 = 20;
const SUM: u8 = 30;
const PRODUCT: u8 = 40;
const POSTFIX: u8 = 50;
const PREFIX: u8 = 70;
const ATOM: u8 = 80;

fn op_level(op: Op) -> u8 {
    match op {
        Op::And | Op::Or | Op::Xor => LOGIC,
        Op::Eq | Op::NotEq | Op::Lt | Op::Le | Op::Gt | Op::Ge => COMPARISON,
        Op::Add | Op::Sub => SUM,
        Op::Mul | Op::Div | Op::Mod => PRODUCT,
    }
}

fn op_text(op: Op) -> &'static str {
    match op {
        Op::And => "AND",
        Op::Or => "OR",
        Op::Xor => "XOR",
        Op::Eq => "=",
        Op::NotEq => "!=",
        Op::Lt => "<",
        Op::Le => "<=",
        Op::Gt => ">",
        Op::Ge => ">=",
        Op::Add => "+",
        Op::Sub => "-",
        Op::Mul => "*",
        Op::Div => "/",
        Op::Mod => "%",
    }
}

fn level(e: &Expr) -> u8 {
    match e {
        Expr::Binary(op, ..) => op_level(*op),
        Expr::Like(..) | Expr::In(..) => POSTFIX,
        Expr::Not(_) | Expr::Neg(_) => PREFIX,
        Expr::Bool(_)
        | Expr::Int(_)
        | Expr::Str(_)
        | Expr::Ident(_)
        | Expr::Exists(_)
        | Expr::Call(..) => ATOM,
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write(self, 0, f)
    }
}

/// `NOT e`, rendered.
pub(super) struct Not<'e>(pub(super) &'e Expr);

impl fmt::Display for Not<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NOT ")?;
        write(self.0, PREFIX, f)
    }
}

/// Write `e`, in parentheses if it binds less tightly than `min`.
fn write(e: &Expr, min: u8, out: &mut fmt::Formatter<'_>) -> fmt::Result {
    if level(e) >= min {
        return write_bare(e, out);
    }
    out.write_char('(')?;
    write_bare(e, out)?;
    out.write_char(')')
}

fn write_bare(e: &Expr, out: &mut fmt::Formatter<'_>) -> fmt::Result {
    match e {
        Expr::Bool(true) => out.write_str("TRUE"),
        Expr::Bool(false) => out.write_str("FALSE"),
        Expr::Int(n) => write!(out, "{n}"),
        Expr::Str(s) => string(s, out),
        Expr::Ident(name) => out.write_str(name),
        Expr::Exists(name) => write!(out, "EXISTS {name}"),
        Expr::Not(x) => write!(out, "{}", Not(x)),
        Expr::Neg(x) => {
            // `-5` would read as a literal, `--x` as two signs: only names go bare.
            out.write_char('-')?;
            let min = match x.as_ref() {
                Expr::Ident(_) | Expr::Call(..) => ATOM,
                _ => ATOM + 1,
            };
            write(x, min, out)
        }
        Expr::Like(x, pattern, negated) => {
            postfix_operand(x, out)?;
            out.write_str(if *negated { " NOT LIKE " } else { " LIKE " })?;
            string(&like_pattern(pattern), out)
        }
        Expr::In(x, set, negated) => {
            postfix_operand(x, out)?;
            out.write_str(if *negated { " NOT IN (" } else { " IN (" })?;
            list(set, out)?;
            out.write_char(')')
        }
        Expr::Call(name, args, _) => {
            write!(out, "{name}(")?;
            list(args, out)?;
            out.write_char(')')
        }
        Expr::Binary(..) => chain(e, out),
    }
}

/// The operand of `LIKE` or `IN`; `NOT x LIKE 'p'` is `(NOT x) LIKE 'p'`, so that is written.
fn postfix_operand(x: &Expr, out: &mut fmt::Formatter<'_>) -> fmt::Result {
    let min = match x {
        Expr::Not(_) => ATOM,
        _ => POSTFIX,
    };
    write(x, min, out)
}

fn list(items: &[Expr], out: &mut fmt::Formatter<'_>) -> fmt::Result {
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.write_str(", ")?;
        }
        write(item, 0, out)?;
    }
    Ok(())
}

/// A chain of operators of one level, `a op b op c ...` (a left-deep tree), written walking
/// its left spine rather than recursing once per operator.
fn chain(e: &Expr, out: &mut fmt::Formatter<'_>) -> fmt::Result {
    let level = level(e);
    let mut spine = Vec::new();
    let mut left = e;
    while let Expr::Binary(op, a, b) = left
        && op_level(*op) == level
    {
        spine.push((*op, b.as_ref()));
        left = a;
    }
    spine.reverse();
    let changes = |i: usize| level == LOGIC && i > 0 && spine[i - 1].0 != spine[i].0;
    for _ in (0..spine.len()).filter(|&i| changes(i)) {
        out.write_char('(')?;
    }
    write(left, level, out)?;
    for (i, (op, right)) in spine.iter().enumerate() {
        if changes(i) {
            out.write_char(')')?;
        }
        write!(out, " {} ", op_text(*op))?;
        write(right, level + 1, out)?;
    }
    Ok(())
}

/// A string literal, in single quotes unless the text holds `\'` (which single quotes cannot
/// express: `\'` reads as a quote).
fn string(s: &str, out: &mut fmt::Formatter<'_>) -> fmt::Result {
    let quote = if s.contains("\\'") { '"' } else { '\'' };
    out.write_char(quote)?;
    for c in s.chars() {
        if c == quote {
            out.write_char('\\')?;
        }
        out.write_char(c)?;
    }
    out.write_char(quote)
}

/// The text of a compiled `LIKE` pattern.
fn like_pattern(pattern: &[Piece]) -> String {
    let mut text = String::new();
    for piece in pattern {
        match piece {
            Piece::Many => text.push('%'),
            Piece::One => text.push('_'),
            Piece::Char(c @ ('%' | '_')) => {
                text.push('\\');
                text.push(*c);
            }
            Piece::Char(c) => text.push(*c),
        }
    }
    text
}
