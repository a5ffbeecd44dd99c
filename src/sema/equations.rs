//! Equations: left sides, indexed families, and that every state entry is defined once.

use super::check::*;
use super::model::*;
use crate::diag::Diagnostic;
use crate::span::Span;
use crate::syntax::ast::{self, ExprKind};
use std::collections::HashMap;

impl<'a> Checker<'a> {
    pub(super) fn resolve_equations(&mut self, states: &[StateDef]) -> Vec<EquationDef> {
        let mut out = Vec::new();
        for (eq, span) in self.equation_items.clone() {
            match self.equation(eq, span, states) {
                Some(def) => out.push(def),
                None => {
                    if let Some(name) = lhs_name(&eq.lhs) {
                        self.failed_eq_states.push(name.to_string());
                    }
                }
            }
        }
        self.check_coverage(&out, states);
        out.sort_by_key(|e| (e.state, e.lo));
        out
    }

    fn equation(
        &mut self,
        eq: &ast::Equation,
        span: Span,
        states: &[StateDef],
    ) -> Option<EquationDef> {
        let ExprKind::Prime(target) = &eq.lhs.kind else {
            self.error(
                Diagnostic::error(
                    "E0410",
                    eq.lhs.span,
                    "the left side of an equation must be a derivative",
                )
                .label("expected `x'` or `u[i]'`")
                .hint("write the state's derivative: `x' = …`"),
            );
            return None;
        };
        let (name, index) = match &target.kind {
            ExprKind::Name(n) => (n, None),
            ExprKind::Index(v, i) => match &v.kind {
                ExprKind::Name(n) => (n, Some(i.as_ref())),
                _ => return self.bad_lhs(target.span),
            },
            _ => return self.bad_lhs(target.span),
        };
        let ident = ast::Ident {
            name: name.clone(),
            span: Span::new(
                target.span.start as usize,
                target.span.start as usize + name.len(),
            ),
        };
        let id = self.state_named(&ident, "equation")?;
        // States are resolved in id order, so this is states[id]; the search is the fallback
        // (it would make checking quadratic in the number of states).
        let decl = match states.get(id) {
            Some(s) if s.name == *name => s,
            _ => states.iter().find(|s| s.name == *name)?,
        };
        let state_span = decl.span;
        let (lo, hi, family_ctx) = match (&eq.family, index, decl.len) {
            (None, None, None) => (0, 1, None),
            (None, None, Some(n)) => (0, n, None),
            (_, Some(_), None) => {
                self.error(
                    Diagnostic::error("E0411", target.span, format!("`{name}` is a scalar state"))
                        .label("cannot be indexed")
                        .also(state_span, "declared here without a size"),
                );
                return None;
            }
            (Some(f), None, _) => {
                self.error(
                    Diagnostic::error("E0412", f.span, "a `for` family needs an indexed left side")
                        .label(format!("the left side does not use `{}`", f.var.name))
                        .hint(format!(
                            "write `{name}[{}]' = … for {} in A..B`",
                            f.var.name, f.var.name
                        )),
                );
                return None;
            }
            (None, Some(i), Some(n)) => {
                let k = self.const_int(i, "an equation's index")?;
                if k < 0 || k >= n as i64 {
                    self.error(
                        Diagnostic::error("E0351", i.span, "index out of range")
                            .label(format!("this is {k}, but `{name}` has entries 0..{n}"))
                            .hint(format!("the vector has {n} entries, numbered from 0")),
                    );
                    return None;
                }
                (k as usize, k as usize + 1, None)
            }
            (Some(f), Some(i), Some(n)) => {
                let is_var = matches!(&i.kind, ExprKind::Name(v) if *v == f.var.name);
                if !is_var {
                    self.error(
                        Diagnostic::error(
                            "E0413",
                            i.span,
                            format!("the left side must be indexed by `{}` itself", f.var.name),
                        )
                        .label("a family defines entry i for each i in its range")
                        .hint(format!(
                            "write `{name}[{}]'` and shift indices on the right side",
                            f.var.name
                        )),
                    );
                    return None;
                }
                let lo = self.const_int(&f.lo, "a range start")?;
                let hi = self.const_int(&f.hi, "a range end")?;
                if lo < 0 || hi < lo || hi > n as i64 {
                    self.error(
                        Diagnostic::error(
                            "E0414",
                            f.span,
                            format!("family range {lo}..{hi} is out of range"),
                        )
                        .label(format!("`{name}` has entries 0..{n}"))
                        .hint(format!("use a range within 0..{n}")),
                    );
                    return None;
                }
                let ix = IndexCtx {
                    name: f.var.name.clone(),
                    lo,
                    hi,
                };
                (lo as usize, hi as usize, Some(ix))
            }
        };
        let ctx = Ctx::new(Allow::EVERYTHING, "an equation");
        let ctx = match &family_ctx {
            Some(ix) => ctx.with_index(ix.clone()),
            None => ctx,
        };
        let rhs = self.type_value(&eq.rhs, &ctx)?;
        let want_vector = family_ctx.is_none() && index.is_none() && decl.len.is_some();
        let fits = match rhs.shape {
            Shape::Scalar => true,
            Shape::Vector(m) => want_vector && m == hi - lo,
            _ => false,
        };
        if !fits {
            let want = if want_vector {
                format!(
                    "a vector of length {} (or a scalar, applied to every entry)",
                    hi - lo
                )
            } else {
                "a scalar".to_string()
            };
            self.error(
                Diagnostic::error(
                    "E0415",
                    rhs.span,
                    format!("the right side for `{name}` has the wrong shape"),
                )
                .label(format!("this is {}", rhs.shape.describe()))
                .also(eq.lhs.span, format!("this needs {want}"))
                .hint("vector lengths must match on both sides"),
            );
            return None;
        }
        Some(EquationDef {
            state: id,
            lo,
            hi,
            family: family_ctx.is_some(),
            rhs,
            span,
        })
    }

    fn bad_lhs(&mut self, span: Span) -> Option<EquationDef> {
        self.error(
            Diagnostic::error(
                "E0410",
                span,
                "the left side of an equation must be a state",
            )
            .label("expected a state name, or a vector state indexed by the family variable")
            .hint("write `x' = …` or `u[i]' = … for i in A..B`"),
        );
        None
    }

    fn check_coverage(&mut self, eqs: &[EquationDef], states: &[StateDef]) {
        let mut by_state: HashMap<usize, Vec<&EquationDef>> = HashMap::new();
        for e in eqs.iter().filter(|e| e.hi > e.lo) {
            by_state.entry(e.state).or_default().push(e);
        }
        for (id, s) in states.iter().enumerate() {
            let sid = self.state_id_of(&s.name).unwrap_or(id);
            let mut segs: Vec<&EquationDef> = by_state.remove(&sid).unwrap_or_default();
            segs.sort_by_key(|e| (e.lo, e.hi));
            let n = s.size();
            if n == 0 || self.failed_eq_states.contains(&s.name) {
                continue; // one of its equations had an error of its own
            }
            if segs.is_empty() {
                self.error(
                    Diagnostic::error(
                        "E0420",
                        s.span,
                        format!("state `{}` has no equation", s.name),
                    )
                    .label("declared here")
                    .hint(format!("add `{}' = …`", s.name)),
                );
                continue;
            }
            let mut covered = 0usize;
            let mut prev: Option<&EquationDef> = None;
            for e in &segs {
                if e.lo < covered {
                    let p = prev.expect("an overlap has an earlier segment");
                    let what = if s.len.is_none() {
                        format!("state `{}` has two equations", s.name)
                    } else {
                        format!("`{}[{}]` is defined twice", s.name, e.lo.max(p.lo))
                    };
                    self.error(
                        Diagnostic::error("E0421", e.span, what)
                            .label("defined again here")
                            .also(p.span, "first defined here")
                            .hint("every entry of a state needs exactly one equation"),
                    );
                } else if e.lo > covered {
                    self.gap(s, covered, e.lo);
                }
                covered = covered.max(e.hi);
                prev = Some(e);
            }
            if covered < n {
                self.gap(s, covered, n);
            }
        }
    }

    fn gap(&mut self, s: &StateDef, lo: usize, hi: usize) {
        let which = if hi == lo + 1 {
            format!("`{}[{lo}]` has", s.name)
        } else {
            format!(
                "entries `{}[{lo}]` to `{}[{}]` have",
                s.name,
                s.name,
                hi - 1
            )
        };
        self.error(
            Diagnostic::error("E0422", s.span, format!("{which} no equation"))
                .label("declared here")
                .hint("every entry of a vector state needs exactly one equation"),
        );
    }

    fn state_id_of(&self, name: &str) -> Option<StateId> {
        match self.symbols.get(name) {
            Some((Symbol::State(id), _)) => Some(*id),
            _ => None,
        }
    }
}

/// The state an equation's left side names (`x'`, `u[i]'`, or a malformed `x = …`).
fn lhs_name(lhs: &ast::Expr) -> Option<&str> {
    let target = match &lhs.kind {
        ExprKind::Prime(t) => t.as_ref(),
        _ => lhs,
    };
    match &target.kind {
        ExprKind::Name(n) => Some(n),
        ExprKind::Index(v, _) => match &v.kind {
            ExprKind::Name(n) => Some(n),
            _ => None,
        },
        _ => None,
    }
}
