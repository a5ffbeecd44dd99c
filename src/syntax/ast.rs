//! The abstract syntax tree: what the user wrote, with a span on every node.
//!
//! Owns the shape of parsed source. It must never resolve names or evaluate anything;
//! that is `sema`'s job. A statement that failed to parse is kept as `ItemKind::Error`
//! so that later checks can still run over the rest of the file.

use crate::span::Span;

#[derive(Clone, Debug, PartialEq)]
pub struct Ident {
    pub name: String,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Default)]
pub struct Module {
    pub items: Vec<Item>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Item {
    pub kind: ItemKind,
    pub span: Span,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Calculus {
    Ito,
    Stratonovich,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ItemKind {
    Model(Ident),
    Const(Vec<Binding>),
    Param(Vec<Binding>),
    State(Vec<StateDecl>),
    Let(Vec<Binding>),
    Net(NetDecl),
    Brownian {
        calculus: Option<Calculus>,
        names: Vec<Ident>,
    },
    History {
        state: Ident,
        value: Expr,
    },
    Input(Vec<InputDecl>),
    Output(Vec<Binding>),
    Equation(Equation),
    Solve(Vec<SolveEntry>),
    /// A statement the parser could not read; its error has been reported.
    Error,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Binding {
    pub name: Ident,
    pub value: Expr,
}

#[derive(Clone, Debug, PartialEq)]
pub struct StateDecl {
    pub name: Ident,
    /// `state u[N] = …`: the size expression.
    pub size: Option<Expr>,
    pub init: Expr,
    /// `… for i in 0..N`
    pub family: Option<ForClause>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct InputDecl {
    pub name: Ident,
    pub size: Option<Expr>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ForClause {
    pub var: Ident,
    pub lo: Expr,
    pub hi: Expr,
    pub span: Span,
}

/// `LHS = RHS [for i in A..B]`. The left side is kept as an expression (`x'`, `u[i]'`)
/// and checked by sema, so a malformed left side gets a semantic diagnostic.
#[derive(Clone, Debug, PartialEq)]
pub struct Equation {
    pub lhs: Expr,
    pub rhs: Expr,
    pub family: Option<ForClause>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct NetDecl {
    pub name: Ident,
    pub ctor: Ident,
    pub args: Vec<Arg>,
    pub args_span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct SolveEntry {
    pub key: Ident,
    pub value: Expr,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Arg {
    Pos(Expr),
    Named(Ident, Expr),
}

impl Arg {
    pub fn span(&self) -> Span {
        match self {
            Arg::Pos(e) => e.span,
            Arg::Named(n, e) => n.span.to(e.span),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    MatMul,
    Pow,
    Lt,
    Le,
    Gt,
    Ge,
}

impl BinOp {
    pub fn symbol(self) -> &'static str {
        match self {
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::MatMul => "@",
            BinOp::Pow => "^",
            BinOp::Lt => "<",
            BinOp::Le => "<=",
            BinOp::Gt => ">",
            BinOp::Ge => ">=",
        }
    }
    pub fn is_comparison(self) -> bool {
        matches!(self, BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum ExprKind {
    Number(f64),
    Name(String),
    Neg(Box<Expr>),
    Binary(BinOp, Box<Expr>, Box<Expr>),
    /// `f(args)`: a function, a net, or a state at a lagged time `x(t - tau)`.
    Call(Ident, Vec<Arg>),
    Index(Box<Expr>, Box<Expr>),
    /// `v[a..b]`, end exclusive.
    Slice(Box<Expr>, Box<Expr>, Box<Expr>),
    /// `x'`: a derivative (a state on a left side, an input on a right side).
    Prime(Box<Expr>),
    /// `[a, b, c]`; vector entries are concatenated.
    List(Vec<Expr>),
    /// `a .. b` (a time span in `solve`).
    Range(Box<Expr>, Box<Expr>),
    /// `2 -> 16 -> 2` (layer sizes of an `mlp`).
    Chain(Vec<Expr>),
}

impl Expr {
    pub fn new(kind: ExprKind, span: Span) -> Expr {
        Expr { kind, span }
    }
}
