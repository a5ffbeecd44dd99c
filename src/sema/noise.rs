//! SDE checks: every equation must be affine in the noise symbols, so that drift and
//! diffusion can be separated symbolically.

use super::check::*;
use super::model::*;
use crate::diag::Diagnostic;
use crate::span::Span;

/// How an expression depends on the noise symbols.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Degree {
    Free,
    Linear,
    /// Not affine; the span is the innermost offending subexpression.
    Bad(Span),
}

impl<'a> Checker<'a> {
    pub(super) fn check_noise_affine(&mut self, lets: &[LetDef], eqs: &[EquationDef]) {
        if self.noises.is_empty() {
            return;
        }
        let mut let_deg: Vec<Option<Degree>> = vec![None; lets.len()];
        for &id in &self.let_order.clone() {
            if let Some(l) = lets.get(id) {
                let d = degree(&l.expr, &let_deg);
                let_deg[id] = Some(d);
            }
        }
        for eq in eqs {
            if let Degree::Bad(span) = degree(&eq.rhs, &let_deg) {
                self.error(
                    Diagnostic::error("E0510", span, "the equation is not affine in its noise")
                        .label("noise enters non-linearly here")
                        .also(eq.span, "in this equation")
                        .hint("noise must appear as `drift + g1*W1 + g2*W2 + …` with each g free of noise"),
                );
            }
        }
    }
}

fn degree(e: &TExpr, lets: &[Option<Degree>]) -> Degree {
    use Degree::*;
    let d = |x: &TExpr| degree(x, lets);
    let max = |a: Degree, b: Degree| match (a, b) {
        (Bad(s), _) | (_, Bad(s)) => Bad(s),
        (Linear, _) | (_, Linear) => Linear,
        _ => Free,
    };
    let free_only = |a: Degree| match a {
        Free => Free,
        Linear => Bad(e.span),
        b => b,
    };
    match &e.kind {
        TKind::Noise(_) => Linear,
        TKind::Let(id) => lets.get(*id).copied().flatten().unwrap_or(Free),
        TKind::Unary(Func1::Neg, a) | TKind::Sum(a) | TKind::Reshape(a) | TKind::Index(a, _) => {
            d(a)
        }
        TKind::Slice(a, _, _) => d(a),
        TKind::Unary(_, a) | TKind::NetCall(_, a) => free_only(d(a)),
        TKind::Binary(Op2::Add | Op2::Sub, a, b) => max(d(a), d(b)),
        TKind::Binary(Op2::Mul, a, b) | TKind::Dot(a, b) | TKind::MatVec(a, b) => {
            match (d(a), d(b)) {
                (Bad(s), _) | (_, Bad(s)) => Bad(s),
                (Linear, Linear) => Bad(e.span),
                (x, y) => max(x, y),
            }
        }
        TKind::Binary(Op2::Div, a, b) => match d(b) {
            Free => d(a),
            Linear => Bad(e.span),
            bad => bad,
        },
        TKind::Binary(_, a, b) | TKind::Compare(_, a, b) => free_only(max(d(a), d(b))),
        TKind::Select(c, a, b) => match free_only(d(c)) {
            Free => max(d(a), d(b)),
            bad => bad,
        },
        TKind::List(items) => items.iter().fold(Free, |acc, x| max(acc, d(x))),
        TKind::Delayed { .. } => Free,
        _ => Free,
    }
}
