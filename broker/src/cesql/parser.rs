//! CESQL grammar (CESQLParser.g4), as a Pratt parser. Binding, tightest first: function
//! calls and literals; `NOT` and unary `-`; `LIKE`; `IN`; `* / %`; `+ -`; comparisons;
//! `AND OR XOR` (one level, left-associative).

use super::lexer::{Tok, Token, lex};
use super::like::{self, Piece};

/// A syntax error with its position.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} at position {}", .position + 1)]
pub struct ParseError {
    /// Byte offset in the expression.
    pub position: usize,
    /// What is wrong.
    pub message: String,
}

impl ParseError {
    pub(crate) fn new(position: usize, message: impl Into<String>) -> Self {
        Self {
            position,
            message: message.into(),
        }
    }
}

/// Binary operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// AND
    And,
    /// OR
    Or,
    /// XOR
    Xor,
    /// =
    Eq,
    /// != and <>
    NotEq,
    /// <
    Lt,
    /// <=
    Le,
    /// >
    Gt,
    /// >=
    Ge,
    /// +
    Add,
    /// -
    Sub,
    /// *
    Mul,
    /// /
    Div,
    /// %
    Mod,
}

/// The syntax tree.
#[derive(Debug, Clone)]
pub enum Expr {
    /// Boolean literal.
    Bool(bool),
    /// Integer literal.
    Int(i32),
    /// String literal.
    Str(String),
    /// An attribute (lower-case name).
    Ident(String),
    /// `EXISTS attr`.
    Exists(String),
    /// `NOT x`.
    Not(Box<Expr>),
    /// `-x`.
    Neg(Box<Expr>),
    /// `x op y`.
    Binary(Op, Box<Expr>, Box<Expr>),
    /// `x [NOT] LIKE 'pattern'`.
    Like(Box<Expr>, Vec<Piece>, bool),
    /// `x [NOT] IN (a, b, ...)`.
    In(Box<Expr>, Vec<Expr>, bool),
    /// `NAME(args)` (upper-case name).
    Call(String, Vec<Expr>, usize),
}

const BP_LOGIC: u8 = 10;
const BP_CMP: u8 = 20;
const BP_ADD: u8 = 30;
const BP_MUL: u8 = 40;
const BP_IN: u8 = 50;
const BP_LIKE: u8 = 60;
const BP_PREFIX: u8 = 70;

/// Longest expression accepted, in bytes.
pub(crate) const MAX_LEN: usize = 64 * 1024;
/// Deepest syntax tree accepted (the longest path from the root to a leaf). A chain such as
/// `a OR b OR c ...` is parsed in a loop and evaluated without recursion, but builds one tree
/// level per operator, and checking, cloning and dropping a tree recurse once per level (with
/// small frames).
pub(crate) const MAX_DEPTH: usize = 1000;
/// Deepest nesting accepted: parentheses, prefix operators, function calls, the right operand
/// of an operator of lower precedence, and `LIKE`/`IN` applied one after another. Parsing and
/// evaluating recurse once per level with large frames (several KiB in debug builds), so this
/// keeps both well inside a 1 MiB stack (tokio's worker threads have 2 MiB).
pub(crate) const MAX_NESTING: usize = 64;

/// An expression and its height.
type Parsed = Result<(Expr, usize), ParseError>;

struct Parser {
    toks: Vec<Token>,
    i: usize,
    depth: usize,
}

fn keyword(t: &Tok, kw: &str) -> bool {
    matches!(t, Tok::Word(w) if w.eq_ignore_ascii_case(kw))
}

const KEYWORDS: &[&str] = &[
    "AND", "OR", "XOR", "NOT", "LIKE", "IN", "EXISTS", "TRUE", "FALSE",
];

/// Parse a whole expression.
pub(crate) fn parse(src: &str) -> Result<Expr, ParseError> {
    if src.len() > MAX_LEN {
        return Err(ParseError::new(
            0,
            format!("expression longer than {MAX_LEN} bytes"),
        ));
    }
    let toks = lex(src)?;
    let mut p = Parser {
        toks,
        i: 0,
        depth: 0,
    };
    let (e, _) = p.expr(0)?;
    match &p.peek().tok {
        Tok::Eof => Ok(e),
        _ => Err(p.unexpected()),
    }
}

impl Parser {
    fn peek(&self) -> &Token {
        &self.toks[self.i.min(self.toks.len() - 1)]
    }
    fn peek2(&self) -> &Tok {
        &self.toks[(self.i + 1).min(self.toks.len() - 1)].tok
    }
    fn bump(&mut self) -> Token {
        let t = self.peek().clone();
        if self.i < self.toks.len() - 1 {
            self.i += 1;
        }
        t
    }
    fn unexpected(&self) -> ParseError {
        let t = self.peek();
        let what = match &t.tok {
            Tok::Eof => "unexpected end of expression".to_string(),
            Tok::Word(w) => format!("unexpected {w:?}"),
            Tok::Str(s) => format!("unexpected string '{s}'"),
            Tok::Int(n) => format!("unexpected number {n}"),
            other => format!("unexpected {}", symbol(other)),
        };
        ParseError::new(t.pos, what)
    }
    fn expect(&mut self, tok: Tok) -> Result<(), ParseError> {
        if self.peek().tok == tok {
            self.bump();
            Ok(())
        } else {
            let mut e = self.unexpected();
            e.message = format!("{}, expected {}", e.message, symbol(&tok));
            Err(e)
        }
    }

    fn too_deep(&self) -> ParseError {
        ParseError::new(
            self.peek().pos,
            format!(
                "expression nested too deeply (more than {MAX_NESTING} nested or {MAX_DEPTH} \
                 chained operators)"
            ),
        )
    }

    fn expr(&mut self, min_bp: u8) -> Parsed {
        self.depth += 1;
        if self.depth > MAX_NESTING {
            return Err(self.too_deep());
        }
        let (mut lhs, mut height) = self.prefix()?;
        // `LIKE` and `IN` applied in a row nest like prefix operators do.
        let mut postfix = 0;
        loop {
            if height > MAX_DEPTH {
                return Err(self.too_deep());
            }
            let t = self.peek().tok.clone();
            let negated_postfix = keyword(&t, "NOT")
                && (keyword(self.peek2(), "LIKE") || keyword(self.peek2(), "IN"));
            if keyword(&t, "LIKE") || (negated_postfix && keyword(self.peek2(), "LIKE")) {
                if BP_LIKE < min_bp {
                    break;
                }
                postfix += 1;
                self.depth += 1;
                if self.depth > MAX_NESTING {
                    return Err(self.too_deep());
                }
                if negated_postfix {
                    self.bump();
                }
                self.bump();
                let pat = self.bump();
                let Tok::Str(p) = pat.tok else {
                    return Err(ParseError::new(
                        pat.pos,
                        "LIKE needs a string literal pattern",
                    ));
                };
                lhs = Expr::Like(Box::new(lhs), like::compile(&p), negated_postfix);
                height += 1;
                continue;
            }
            if keyword(&t, "IN") || negated_postfix {
                if BP_IN < min_bp {
                    break;
                }
                postfix += 1;
                self.depth += 1;
                if self.depth > MAX_NESTING {
                    return Err(self.too_deep());
                }
                if negated_postfix {
                    self.bump();
                }
                self.bump();
                self.expect(Tok::LParen)?;
                let mut set = Vec::new();
                loop {
                    let (item, h) = self.expr(0)?;
                    set.push(item);
                    height = height.max(h);
                    if self.peek().tok != Tok::Comma {
                        break;
                    }
                    self.bump();
                }
                self.expect(Tok::RParen)?;
                lhs = Expr::In(Box::new(lhs), set, negated_postfix);
                height += 1;
                continue;
            }
            let (op, bp) = match &t {
                w if keyword(w, "AND") => (Op::And, BP_LOGIC),
                w if keyword(w, "OR") => (Op::Or, BP_LOGIC),
                w if keyword(w, "XOR") => (Op::Xor, BP_LOGIC),
                Tok::Eq => (Op::Eq, BP_CMP),
                Tok::NotEq => (Op::NotEq, BP_CMP),
                Tok::Lt => (Op::Lt, BP_CMP),
                Tok::Le => (Op::Le, BP_CMP),
                Tok::Gt => (Op::Gt, BP_CMP),
                Tok::Ge => (Op::Ge, BP_CMP),
                Tok::Plus => (Op::Add, BP_ADD),
                Tok::Minus => (Op::Sub, BP_ADD),
                Tok::Star => (Op::Mul, BP_MUL),
                Tok::Slash => (Op::Div, BP_MUL),
                Tok::Percent => (Op::Mod, BP_MUL),
                _ => break,
            };
            if bp < min_bp {
                break;
            }
            self.bump();
            let (rhs, h) = self.expr(bp + 1)?;
            lhs = Expr::Binary(op, Box::new(lhs), Box::new(rhs));
            height = height.max(h) + 1;
        }
        if height > MAX_DEPTH {
            return Err(self.too_deep());
        }
        self.depth -= 1 + postfix;
        Ok((lhs, height))
    }

    fn int_literal(pos: usize, n: i64) -> Parsed {
        i32::try_from(n)
            .map(|n| (Expr::Int(n), 1))
            .map_err(|_| ParseError::new(pos, "integer literal out of the 32-bit range"))
    }

    fn prefix(&mut self) -> Parsed {
        let save = self.i;
        let t = self.bump();
        match t.tok {
            Tok::Int(n) => Self::int_literal(t.pos, n),
            Tok::Str(s) => Ok((Expr::Str(s), 1)),
            Tok::LParen => {
                let e = self.expr(0)?;
                self.expect(Tok::RParen)?;
                Ok(e)
            }
            Tok::Minus => {
                // `-2147483648` is a literal, not the negation of an out-of-range one.
                if let Tok::Int(n) = self.peek().tok {
                    let pos = self.bump().pos;
                    return Self::int_literal(pos, -n);
                }
                let (e, h) = self.expr(BP_PREFIX)?;
                Ok((Expr::Neg(Box::new(e)), h + 1))
            }
            Tok::Word(w) if w.eq_ignore_ascii_case("NOT") => {
                let (e, h) = self.expr(BP_PREFIX)?;
                Ok((Expr::Not(Box::new(e)), h + 1))
            }
            Tok::Word(w) if w.eq_ignore_ascii_case("TRUE") => Ok((Expr::Bool(true), 1)),
            Tok::Word(w) if w.eq_ignore_ascii_case("FALSE") => Ok((Expr::Bool(false), 1)),
            Tok::Word(w) if w.eq_ignore_ascii_case("EXISTS") => {
                let id = self.bump();
                match id.tok {
                    Tok::Word(name) if is_identifier(&name) => {
                        Ok((Expr::Exists(name.to_ascii_lowercase()), 1))
                    }
                    _ => Err(ParseError::new(id.pos, "EXISTS needs an attribute name")),
                }
            }
            Tok::Word(w) if self.peek().tok == Tok::LParen => {
                if !w.bytes().next().is_some_and(|b| b.is_ascii_alphabetic())
                    || !w.bytes().all(|b| b.is_ascii_alphabetic() || b == b'_')
                {
                    return Err(ParseError::new(
                        t.pos,
                        format!("invalid function name {w:?}"),
                    ));
                }
                self.bump();
                let mut args = Vec::new();
                let mut height = 0;
                if self.peek().tok != Tok::RParen {
                    loop {
                        let (arg, h) = self.expr(0)?;
                        args.push(arg);
                        height = height.max(h);
                        if self.peek().tok != Tok::Comma {
                            break;
                        }
                        self.bump();
                    }
                }
                self.expect(Tok::RParen)?;
                Ok((Expr::Call(w.to_ascii_uppercase(), args, t.pos), height + 1))
            }
            Tok::Word(w)
                if is_identifier(&w) && !KEYWORDS.iter().any(|k| w.eq_ignore_ascii_case(k)) =>
            {
                Ok((Expr::Ident(w.to_ascii_lowercase()), 1))
            }
            _ => {
                self.i = save;
                Err(self.unexpected())
            }
        }
    }
}

fn is_identifier(w: &str) -> bool {
    !w.is_empty() && w.bytes().all(|b| b.is_ascii_alphanumeric())
}

fn symbol(t: &Tok) -> String {
    match t {
        Tok::LParen => "'('".into(),
        Tok::RParen => "')'".into(),
        Tok::Comma => "','".into(),
        Tok::Plus => "'+'".into(),
        Tok::Minus => "'-'".into(),
        Tok::Star => "'*'".into(),
        Tok::Slash => "'/'".into(),
        Tok::Percent => "'%'".into(),
        Tok::Eq => "'='".into(),
        Tok::NotEq => "'!='".into(),
        Tok::Lt => "'<'".into(),
        Tok::Le => "'<='".into(),
        Tok::Gt => "'>'".into(),
        Tok::Ge => "'>='".into(),
        Tok::Int(n) => n.to_string(),
        Tok::Str(s) => format!("'{s}'"),
        Tok::Word(w) => w.clone(),
        Tok::Eof => "end of expression".into(),
    }
}
