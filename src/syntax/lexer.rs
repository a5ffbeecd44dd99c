//! The token stream the grammar reads: logos tokens with byte offsets, plus the layout
//! rules of the language.
//!
//! - A newline inside `( )`, `[ ]` or `{ }` is not a statement end, so it is dropped.
//! - Runs of statement ends (`;`, newlines) collapse to one `Sep`; leading ones vanish.
//! - A declaration keyword can never stand inside brackets, so meeting one there means a
//!   bracket was left open: the depth is reset and a `Sep` inserted, which lets the parser
//!   report the unclosed bracket and carry on with the next statement.
//! - A character that is no token becomes a diagnostic and is skipped; the parser never
//!   sees an error token, so it never stops because of one.

use super::token::Token;
use crate::diag::Diagnostic;
use crate::span::Span;
use logos::Logos;

/// The grammar's error type for the token stream; the stream itself never fails.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct LexError;

pub type Spanned<'s> = (usize, Token<'s>, usize);

/// Splits `source` into tokens, reporting bad characters into `diags`.
pub fn tokens<'s>(source: &'s str, diags: &mut Vec<Diagnostic>) -> Vec<Spanned<'s>> {
    let mut out: Vec<Spanned<'s>> = Vec::new();
    let mut depth: usize = 0;
    let lex = Token::lexer(source).spanned();
    for (tok, range) in lex {
        let tok = match tok {
            Ok(t) => t,
            Err(()) => {
                diags.push(bad_char(source, range));
                continue;
            }
        };
        match tok {
            Token::Sep => {
                let is_newline = &source[range.clone()] == "\n";
                if depth > 0 && is_newline {
                    continue;
                }
                if matches!(out.last(), None | Some((_, Token::Sep, _))) {
                    continue;
                }
                out.push((range.start, tok, range.end));
            }
            Token::LParen | Token::LBracket | Token::LBrace => {
                depth += 1;
                out.push((range.start, tok, range.end));
            }
            Token::RParen | Token::RBracket | Token::RBrace => {
                depth = depth.saturating_sub(1);
                out.push((range.start, tok, range.end));
            }
            t if t.starts_declaration() && depth > 0 => {
                depth = 0;
                out.push((range.start, Token::Sep, range.start));
                out.push((range.start, t, range.end));
            }
            t => out.push((range.start, t, range.end)),
        }
    }
    out
}

fn bad_char(source: &str, range: std::ops::Range<usize>) -> Diagnostic {
    let text = &source[range.clone()];
    let span = Span::new(range.start, range.end);
    if text.starts_with('.') {
        return Diagnostic::error("E0002", span, "a lone `.` is not a token")
            .label("unexpected `.`")
            .hint(
                "write numbers with digits after the point (`3.0`, not `3.`); ranges are `a..b`",
            );
    }
    Diagnostic::error(
        "E0001",
        span,
        format!("unexpected character `{}`", text.escape_debug()),
    )
    .label("not part of the language")
    .hint("names are letters, digits and `_`; see docs/language.md for the operators")
}
