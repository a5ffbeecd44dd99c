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

/// Dropped with an explicit stack, not by recursion: a tree as deep as the nesting limit
/// must not overflow the stack of whichever thread lets go of it.
impl Drop for Expr {
    fn drop(&mut self) {
        let mut stack = Vec::new();
        self.kind.take_children(&mut stack);
        while let Some(mut e) = stack.pop() {
            e.kind.take_children(&mut stack);
        }
    }
}

impl ExprKind {
    /// Moves every child out (leaving leaves in their place) onto `out`.
    fn take_children(&mut self, out: &mut Vec<Expr>) {
        let leaf = || Expr::new(ExprKind::Number(0.0), Span::default());
        let mut take = |b: &mut Expr| {
            if b.kind.has_children() {
                out.push(std::mem::replace(b, leaf()));
            }
        };
        match self {
            ExprKind::Number(_) | ExprKind::Name(_) => {}
            ExprKind::Neg(a) | ExprKind::Prime(a) => take(a),
            ExprKind::Binary(_, a, b) | ExprKind::Index(a, b) | ExprKind::Range(a, b) => {
                take(a);
                take(b);
            }
            ExprKind::Slice(a, b, c) => {
                take(a);
                take(b);
                take(c);
            }
            ExprKind::Call(_, args) => {
                for arg in args {
                    match arg {
                        Arg::Pos(e) | Arg::Named(_, e) => take(e),
                    }
                }
            }
            ExprKind::List(items) | ExprKind::Chain(items) => out.append(items),
        }
    }

    fn has_children(&self) -> bool {
        match self {
            ExprKind::Number(_) | ExprKind::Name(_) => false,
            ExprKind::List(v) | ExprKind::Chain(v) => !v.is_empty(),
            ExprKind::Call(_, args) => !args.is_empty(),
            _ => true,
        }
    }
}

impl Item {
    /// Every top-level expression of the statement, in source order.
    pub fn exprs(&self) -> Vec<&Expr> {
        fn family(f: &Option<ForClause>) -> Vec<&Expr> {
            f.iter().flat_map(|c| [&c.lo, &c.hi]).collect()
        }
        match &self.kind {
            ItemKind::Model(_) | ItemKind::Brownian { .. } | ItemKind::Error => Vec::new(),
            ItemKind::Const(b) | ItemKind::Param(b) | ItemKind::Let(b) | ItemKind::Output(b) => {
                b.iter().map(|b| &b.value).collect()
            }
            ItemKind::State(decls) => decls
                .iter()
                .flat_map(|d| {
                    let mut v: Vec<&Expr> = d.size.iter().collect();
                    v.push(&d.init);
                    v.extend(family(&d.family));
                    v
                })
                .collect(),
            ItemKind::Net(n) => n
                .args
                .iter()
                .map(|a| match a {
                    Arg::Pos(e) | Arg::Named(_, e) => e,
                })
                .collect(),
            ItemKind::History { value, .. } => vec![value],
            ItemKind::Input(decls) => decls.iter().filter_map(|d| d.size.as_ref()).collect(),
            ItemKind::Equation(eq) => {
                let mut v = vec![&eq.lhs, &eq.rhs];
                v.extend(family(&eq.family));
                v
            }
            ItemKind::Solve(entries) => entries.iter().map(|e| &e.value).collect(),
        }
    }
}

impl Expr {
    /// The direct subexpressions, in source order.
    pub fn children(&self) -> Vec<&Expr> {
        match &self.kind {
            ExprKind::Number(_) | ExprKind::Name(_) => Vec::new(),
            ExprKind::Neg(a) | ExprKind::Prime(a) => vec![a],
            ExprKind::Binary(_, a, b) | ExprKind::Index(a, b) | ExprKind::Range(a, b) => {
                vec![a, b]
            }
            ExprKind::Slice(a, b, c) => vec![a, b, c],
            ExprKind::Call(_, args) => args
                .iter()
                .map(|a| match a {
                    Arg::Pos(e) | Arg::Named(_, e) => e,
                })
                .collect(),
            ExprKind::List(items) | ExprKind::Chain(items) => items.iter().collect(),
        }
    }

    /// The first node (in a depth-first walk) deeper than `limit`, if any. A walk with an
    /// explicit stack: it is what guards the recursive stages, so it must not recurse.
    pub fn deeper_than(&self, limit: u32) -> Option<&Expr> {
        let mut stack = vec![(self, 1u32)];
        while let Some((e, depth)) = stack.pop() {
            if depth > limit {
                return Some(e);
            }
            stack.extend(e.children().into_iter().rev().map(|c| (c, depth + 1)));
        }
        None
    }
}
