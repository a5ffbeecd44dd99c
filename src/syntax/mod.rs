//! Syntax: `.nde` text to an AST with spans (logos lexer, lalrpop grammar).
//!
//! Owns tokens, layout rules, the grammar and the AST printer. Parsing never fails: it
//! returns a (possibly partial) tree and diagnostics. It must never look at meaning
//! (names, shapes, values) — that belongs to `sema`.

pub mod ast;
pub mod lexer;
pub mod print;
pub mod token;

use crate::diag::Diagnostic;
use crate::span::Span;
use lalrpop_util::{ParseError, lalrpop_mod};
use token::Token;

lalrpop_mod!(
    #[allow(clippy::all, clippy::pedantic, unused_parens, dead_code)]
    grammar,
    "/nde.rs"
);

/// Parses a whole model. The tree is always returned; a statement that did not parse is
/// an `ItemKind::Error` and has a diagnostic.
///
/// The token stream is cut into statements at each `Sep` and each is parsed on its own,
/// so a broken statement costs its own length, however deeply it nests (linear in the
/// file; see the grammar's header).
pub fn parse(source: &str) -> (ast::Module, Vec<Diagnostic>) {
    let mut diags = Vec::new();
    let toks = lexer::tokens(source, &mut diags);
    let parser = grammar::StatementParser::new();
    let mut module = ast::Module::default();
    for stmt in toks.split_inclusive(|(_, t, _)| matches!(t, Token::Sep)) {
        match parser.parse(stmt.iter().cloned().map(Ok)) {
            Ok(item) => module.items.push(item),
            Err(e) => {
                diags.push(parse_error(source, e));
                let (l, r) = statement_span(stmt);
                module.items.push(ast::Item {
                    kind: ast::ItemKind::Error,
                    span: Span::new(l, r),
                });
            }
        }
    }
    diags.extend(too_deep(&module));
    diags.sort_by_key(|d| d.span.start);
    diags.dedup_by(|a, b| a.span == b.span && a.message == b.message);
    (module, diags)
}

/// From the first token to the end of the last one before the statement's `Sep`.
fn statement_span(stmt: &[lexer::Spanned<'_>]) -> (usize, usize) {
    let l = stmt.first().map_or(0, |t| t.0);
    let body = match stmt.last() {
        Some((_, Token::Sep, _)) => &stmt[..stmt.len() - 1],
        _ => stmt,
    };
    (l, body.last().map_or(l, |t| t.2))
}

/// E0013 for every statement with an expression nested deeper than
/// `limits::MAX_NESTING`: the later stages recurse over expressions, and this bound is what
/// keeps them inside their stack.
fn too_deep(module: &ast::Module) -> Vec<Diagnostic> {
    let limit = crate::limits::MAX_NESTING;
    module
        .items
        .iter()
        .filter_map(|item| item.exprs().into_iter().find_map(|e| e.deeper_than(limit)))
        .map(|e| {
            Diagnostic::error(
                "E0013",
                Span::new(e.span.start as usize, e.span.start as usize),
                "expression nested too deeply",
            )
            .label(format!("this is more than {limit} levels deep"))
            .hint("a sum of N terms is N levels deep: split long expressions into `let`s")
        })
        .collect()
}

fn parse_error(source: &str, e: ParseError<usize, Token<'_>, lexer::LexError>) -> Diagnostic {
    match e {
        ParseError::UnrecognizedEof { location, expected } => {
            let span = Span::new(location, location);
            Diagnostic::error("E0010", span, "unexpected end of file")
                .label(format!("expected {}", describe_expected(&expected)))
                .hint("a bracket or a statement is not finished")
        }
        ParseError::UnrecognizedToken {
            token: (l, tok, r),
            expected,
        } => unexpected(source, l, &tok, r, &expected),
        ParseError::ExtraToken { token: (l, tok, r) } => Diagnostic::error(
            "E0011",
            Span::new(l, r),
            format!("unexpected {}", tok.describe()),
        )
        .label("not expected here"),
        ParseError::InvalidToken { location } => {
            Diagnostic::error("E0001", Span::new(location, location + 1), "invalid token")
        }
        ParseError::User { .. } => {
            Diagnostic::error("E0001", Span::new(0, 0), "invalid token stream")
        }
    }
}

fn unexpected(
    source: &str,
    l: usize,
    tok: &Token<'_>,
    r: usize,
    expected: &[String],
) -> Diagnostic {
    let span = Span::new(l, r.max(l));
    let exp = describe_expected(expected);
    let (msg, hint) = match tok {
        Token::Sep if l == r => (
            "unclosed bracket before this declaration".to_string(),
            "close every `(`, `[` and `{` before the end of the statement".to_string(),
        ),
        Token::Sep => (
            "statement ends too early".to_string(),
            format!("expected {exp} before the end of the line"),
        ),
        _ => (
            format!("unexpected {}", tok.describe()),
            hint_for(source, tok, expected),
        ),
    };
    let span = if matches!(tok, Token::Sep) && l != r {
        // Point at the end of the line rather than the newline character itself.
        Span::new(l, l)
    } else {
        span
    };
    Diagnostic::error("E0012", span, msg)
        .label(format!("expected {exp}"))
        .hint(hint)
}

fn hint_for(_source: &str, tok: &Token<'_>, expected: &[String]) -> String {
    match tok {
        Token::Prime => "a prime follows the state it differentiates: `x' = …`".to_string(),
        Token::Eq => "`=` appears once per statement, after a name or `x'`".to_string(),
        _ if expected.iter().any(|e| e == "\")\"") => {
            "check that every `(` has a matching `)`".to_string()
        }
        _ if expected.iter().any(|e| e == "\"]\"") => {
            "check that every `[` has a matching `]`".to_string()
        }
        _ => "see docs/language.md for the statement forms".to_string(),
    }
}

fn describe_expected(expected: &[String]) -> String {
    let mut names: Vec<String> = expected
        .iter()
        .map(|e| match e.as_str() {
            "Name" => "a name".to_string(),
            "Num" => "a number".to_string(),
            "Sep" => "end of statement".to_string(),
            s => format!("`{}`", s.trim_matches('"')),
        })
        .collect();
    names.sort();
    names.dedup();
    if names.is_empty() {
        return "something else".to_string();
    }
    if names.len() > 6 {
        let wants_expr = names.iter().any(|n| n == "a number");
        if wants_expr {
            return "an expression".to_string();
        }
        names.truncate(6);
        return format!("one of {}, …", names.join(", "));
    }
    if names.len() == 1 {
        return names.remove(0);
    }
    format!("one of {}", names.join(", "))
}
