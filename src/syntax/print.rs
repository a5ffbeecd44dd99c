//! Prints an AST back as `.nde` source. `Parens::Minimal` writes only the parentheses the
//! precedence rules need (the round-trip form); `Parens::Explicit` brackets every
//! operation so the tree's shape is visible (`ndec compile --emit ast`).

use super::ast::*;
use std::fmt::Write;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parens {
    Minimal,
    Explicit,
}

pub fn module(m: &Module, parens: Parens) -> String {
    let p = Printer { parens };
    let mut out = String::new();
    for item in &m.items {
        p.item(&mut out, item);
        out.push('\n');
    }
    out
}

pub fn expr(e: &Expr, parens: Parens) -> String {
    let mut s = String::new();
    Printer { parens }.expr(&mut s, e, 0);
    s
}

/// Formats a number so that it lexes back to the same f64.
pub fn number(x: f64) -> String {
    if x.is_finite() {
        let s = format!("{x:?}");
        s.strip_suffix(".0").map(str::to_string).unwrap_or(s)
    } else {
        // Not representable as a literal; 1e999 reads back as infinity.
        "1e999".to_string()
    }
}

struct Printer {
    parens: Parens,
}

const CMP: u8 = 1;
const SUM: u8 = 2;
const PROD: u8 = 3;
const UNARY: u8 = 4;
const POSTFIX: u8 = 6;

impl Printer {
    fn item(&self, o: &mut String, item: &Item) {
        match &item.kind {
            ItemKind::Model(n) => {
                let _ = write!(o, "model {}", n.name);
            }
            ItemKind::Const(b) => self.bindings(o, "const", b),
            ItemKind::Param(b) => self.bindings(o, "param", b),
            ItemKind::Let(b) => self.bindings(o, "let", b),
            ItemKind::Output(b) => self.bindings(o, "output", b),
            ItemKind::State(decls) => {
                o.push_str("state ");
                for (k, d) in decls.iter().enumerate() {
                    if k > 0 {
                        o.push_str(", ");
                    }
                    o.push_str(&d.name.name);
                    if let Some(s) = &d.size {
                        o.push('[');
                        self.expr(o, s, 0);
                        o.push(']');
                    }
                    o.push_str(" = ");
                    self.expr(o, &d.init, 0);
                    if let Some(f) = &d.family {
                        self.for_clause(o, f);
                    }
                }
            }
            ItemKind::Net(n) => {
                let _ = write!(o, "net {} = {}(", n.name.name, n.ctor.name);
                self.args(o, &n.args);
                o.push(')');
            }
            ItemKind::Brownian { calculus, names } => {
                o.push_str("brownian ");
                match calculus {
                    Some(Calculus::Ito) => o.push_str("ito "),
                    Some(Calculus::Stratonovich) => o.push_str("stratonovich "),
                    None => {}
                }
                let names: Vec<&str> = names.iter().map(|n| n.name.as_str()).collect();
                o.push_str(&names.join(", "));
            }
            ItemKind::History { state, value } => {
                let _ = write!(o, "history {} = ", state.name);
                self.expr(o, value, 0);
            }
            ItemKind::Input(decls) => {
                o.push_str("input ");
                for (k, d) in decls.iter().enumerate() {
                    if k > 0 {
                        o.push_str(", ");
                    }
                    o.push_str(&d.name.name);
                    if let Some(s) = &d.size {
                        o.push('[');
                        self.expr(o, s, 0);
                        o.push(']');
                    }
                }
            }
            ItemKind::Equation(eq) => {
                self.expr(o, &eq.lhs, 0);
                o.push_str(" = ");
                self.expr(o, &eq.rhs, 0);
                if let Some(f) = &eq.family {
                    self.for_clause(o, f);
                }
            }
            ItemKind::Solve(entries) => {
                o.push_str("solve { ");
                for (k, e) in entries.iter().enumerate() {
                    if k > 0 {
                        o.push_str(", ");
                    }
                    let _ = write!(o, "{} = ", e.key.name);
                    self.expr(o, &e.value, 0);
                }
                o.push_str(" }");
            }
            ItemKind::Error => o.push_str("# (a statement that did not parse)"),
        }
    }

    fn bindings(&self, o: &mut String, kw: &str, b: &[Binding]) {
        o.push_str(kw);
        o.push(' ');
        for (k, b) in b.iter().enumerate() {
            if k > 0 {
                o.push_str(", ");
            }
            o.push_str(&b.name.name);
            o.push_str(" = ");
            self.expr(o, &b.value, 0);
        }
    }

    fn for_clause(&self, o: &mut String, f: &ForClause) {
        let _ = write!(o, " for {} in ", f.var.name);
        self.expr(o, &f.lo, 0);
        o.push_str("..");
        self.expr(o, &f.hi, 0);
    }

    fn args(&self, o: &mut String, args: &[Arg]) {
        for (k, a) in args.iter().enumerate() {
            if k > 0 {
                o.push_str(", ");
            }
            match a {
                Arg::Pos(e) => self.expr(o, e, 0),
                Arg::Named(n, e) => {
                    let _ = write!(o, "{} = ", n.name);
                    self.expr(o, e, 0);
                }
            }
        }
    }

    /// Writes `e` in a context that needs at least precedence `min`.
    fn expr(&self, o: &mut String, e: &Expr, min: u8) {
        let own = precedence(e);
        let wrap = own < min || (self.parens == Parens::Explicit && own < POSTFIX && min > 0);
        if wrap {
            o.push('(');
        }
        match &e.kind {
            ExprKind::Number(x) => o.push_str(&number(*x)),
            ExprKind::Name(n) => o.push_str(n),
            ExprKind::Neg(a) => {
                o.push('-');
                self.expr(o, a, UNARY);
            }
            ExprKind::Binary(op, a, b) => {
                let (l, r) = match op {
                    BinOp::Pow => (POSTFIX, UNARY),
                    op if op.is_comparison() => (SUM, SUM),
                    _ => (own, own + 1),
                };
                self.expr(o, a, l.max(1));
                let _ = write!(o, " {} ", op.symbol());
                self.expr(o, b, r);
            }
            ExprKind::Call(f, args) => {
                o.push_str(&f.name);
                o.push('(');
                self.args(o, args);
                o.push(')');
            }
            ExprKind::Index(v, i) => {
                self.expr(o, v, POSTFIX);
                o.push('[');
                self.expr(o, i, 0);
                o.push(']');
            }
            ExprKind::Slice(v, a, b) => {
                self.expr(o, v, POSTFIX);
                o.push('[');
                self.expr(o, a, 0);
                o.push_str("..");
                self.expr(o, b, 0);
                o.push(']');
            }
            ExprKind::Prime(v) => {
                self.expr(o, v, POSTFIX);
                o.push('\'');
            }
            ExprKind::List(items) => {
                o.push('[');
                for (k, x) in items.iter().enumerate() {
                    if k > 0 {
                        o.push_str(", ");
                    }
                    self.expr(o, x, 0);
                }
                o.push(']');
            }
            ExprKind::Range(a, b) => {
                self.expr(o, a, 0);
                o.push_str(" .. ");
                self.expr(o, b, 0);
            }
            ExprKind::Chain(items) => {
                for (k, x) in items.iter().enumerate() {
                    if k > 0 {
                        o.push_str(" -> ");
                    }
                    self.expr(o, x, 0);
                }
            }
        }
        if wrap {
            o.push(')');
        }
    }
}

fn precedence(e: &Expr) -> u8 {
    match &e.kind {
        ExprKind::Binary(op, ..) => match op {
            op if op.is_comparison() => CMP,
            BinOp::Add | BinOp::Sub => SUM,
            BinOp::Mul | BinOp::Div | BinOp::MatMul => PROD,
            BinOp::Pow => 5,
            _ => unreachable!("all binary operators are covered above"),
        },
        ExprKind::Neg(_) => UNARY,
        // Ranges and chains only appear at the top of a solve entry or an argument.
        ExprKind::Range(..) | ExprKind::Chain(_) => 0,
        _ => 7,
    }
}
