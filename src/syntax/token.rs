//! Tokens of the `.nde` language (logos). Whitespace and comments are skipped here;
//! newlines are kept, because they end statements (see `lexer.rs` for how they are
//! filtered inside brackets).

use logos::Logos;

#[derive(Logos, Clone, Debug, PartialEq)]
#[logos(skip r"[ \t\r\f]+")]
#[logos(skip(r"#[^\n]*", allow_greedy = true))]
pub enum Token<'s> {
    #[token("model")]
    Model,
    #[token("const")]
    Const,
    #[token("param")]
    Param,
    #[token("state")]
    State,
    #[token("let")]
    Let,
    #[token("net")]
    Net,
    #[token("brownian")]
    Brownian,
    #[token("history")]
    History,
    #[token("input")]
    Input,
    #[token("output")]
    Output,
    #[token("solve")]
    Solve,
    #[token("for")]
    For,
    #[token("in")]
    In,
    #[token("ito")]
    Ito,
    #[token("stratonovich")]
    Stratonovich,

    #[regex(r"[A-Za-z_][A-Za-z0-9_]*", |lex| lex.slice())]
    Ident(&'s str),
    #[regex(r"[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?", parse_number)]
    #[regex(r"\.[0-9]+([eE][+-]?[0-9]+)?", parse_number)]
    Number(f64),

    #[token("(")]
    LParen,
    #[token(")")]
    RParen,
    #[token("[")]
    LBracket,
    #[token("]")]
    RBracket,
    #[token("{")]
    LBrace,
    #[token("}")]
    RBrace,
    #[token(",")]
    Comma,
    #[token("=")]
    Eq,
    #[token("'")]
    Prime,
    #[token("..")]
    DotDot,
    #[token("->")]
    Arrow,
    #[token("+")]
    Plus,
    #[token("-")]
    Minus,
    #[token("*")]
    Star,
    #[token("/")]
    Slash,
    #[token("@")]
    At,
    #[token("^")]
    Caret,
    #[token("<")]
    Lt,
    #[token("<=")]
    Le,
    #[token(">")]
    Gt,
    #[token(">=")]
    Ge,
    /// A newline or `;`: the end of a statement. Runs of them are collapsed by the lexer.
    #[token("\n")]
    #[token(";")]
    Sep,
}

fn parse_number<'s>(lex: &mut logos::Lexer<'s, Token<'s>>) -> Option<f64> {
    lex.slice().parse().ok()
}

impl Token<'_> {
    /// Words that begin a declaration; they never appear inside brackets in a valid model,
    /// so the lexer uses them to recover from an unclosed bracket.
    pub fn starts_declaration(&self) -> bool {
        matches!(
            self,
            Token::Model
                | Token::Const
                | Token::Param
                | Token::State
                | Token::Let
                | Token::Net
                | Token::Brownian
                | Token::History
                | Token::Input
                | Token::Output
                | Token::Solve
        )
    }

    /// How the token reads in an error message.
    pub fn describe(&self) -> String {
        match self {
            Token::Ident(s) => format!("name `{s}`"),
            Token::Number(n) => format!("number `{n}`"),
            Token::Sep => "end of statement".to_string(),
            other => format!("`{}`", other.text()),
        }
    }

    pub fn text(&self) -> &'static str {
        match self {
            Token::Model => "model",
            Token::Const => "const",
            Token::Param => "param",
            Token::State => "state",
            Token::Let => "let",
            Token::Net => "net",
            Token::Brownian => "brownian",
            Token::History => "history",
            Token::Input => "input",
            Token::Output => "output",
            Token::Solve => "solve",
            Token::For => "for",
            Token::In => "in",
            Token::Ito => "ito",
            Token::Stratonovich => "stratonovich",
            Token::Ident(_) => "name",
            Token::Number(_) => "number",
            Token::LParen => "(",
            Token::RParen => ")",
            Token::LBracket => "[",
            Token::RBracket => "]",
            Token::LBrace => "{",
            Token::RBrace => "}",
            Token::Comma => ",",
            Token::Eq => "=",
            Token::Prime => "'",
            Token::DotDot => "..",
            Token::Arrow => "->",
            Token::Plus => "+",
            Token::Minus => "-",
            Token::Star => "*",
            Token::Slash => "/",
            Token::At => "@",
            Token::Caret => "^",
            Token::Lt => "<",
            Token::Le => "<=",
            Token::Gt => ">",
            Token::Ge => ">=",
            Token::Sep => "newline",
        }
    }
}
