//! The `solve { … }` block: default settings, each key and value checked.

use super::check::*;
use super::model::*;
use crate::diag::Diagnostic;
use crate::syntax::ast::{self, ExprKind};

/// Every method name the language accepts (LANGUAGE.md §6).
pub const METHODS: [&str; 17] = [
    "euler",
    "midpoint",
    "heun",
    "rk4",
    "bosh3",
    "dopri5",
    "tsit5",
    "vern7",
    "rosenbrock23",
    "rodas5",
    "bdf",
    "auto",
    "euler_maruyama",
    "milstein",
    "reversible_heun",
    "sde_adaptive",
    "auto",
];

const KEYS: [&str; 6] = ["t", "method", "rtol", "atol", "saveat", "dt"];

impl<'a> Checker<'a> {
    pub(super) fn resolve_solve(&mut self, states: &[StateDef]) -> SolveDefaults {
        let mut out = SolveDefaults::default();
        let items = self.solve_items.clone();
        if items.len() > 1 {
            self.error(
                Diagnostic::error("E0801", items[1].1, "more than one `solve` block")
                    .label("second block")
                    .also(items[0].1, "first block")
                    .hint("merge them into one `solve { … }`"),
            );
        }
        let mut seen: Vec<&ast::Ident> = Vec::new();
        for (entries, _) in items.iter().take(1) {
            for entry in entries.iter() {
                if let Some(prev) = seen.iter().find(|k| k.name == entry.key.name) {
                    let prev = prev.span;
                    self.error(
                        Diagnostic::error(
                            "E0802",
                            entry.key.span,
                            format!("`{}` is set twice", entry.key.name),
                        )
                        .label("second setting")
                        .also(prev, "first setting"),
                    );
                    continue;
                }
                seen.push(&entry.key);
                self.solve_entry(entry, states, &mut out);
            }
        }
        out
    }

    fn solve_entry(
        &mut self,
        entry: &ast::SolveEntry,
        states: &[StateDef],
        out: &mut SolveDefaults,
    ) {
        let v = &entry.value;
        let ctx = Ctx::new(Allow::CONSTS, "a solve setting");
        match entry.key.name.as_str() {
            "t" => {
                let ExprKind::Range(a, b) = &v.kind else {
                    self.error(
                        Diagnostic::error("E0803", v.span, "`t` takes a time span")
                            .label("expected `T0 .. T1`")
                            .hint("e.g. `solve { t = 0 .. 10 }`"),
                    );
                    return;
                };
                out.t0 = self.const_scalar(a, &ctx);
                out.t1 = self.const_scalar(b, &ctx);
            }
            "method" => {
                let name = match &v.kind {
                    ExprKind::Name(n) => n.as_str(),
                    _ => "",
                };
                if METHODS.contains(&name) {
                    out.method = Some(name.to_string());
                } else {
                    let hint = match super::closest(name, METHODS.iter().copied()) {
                        Some(c) => format!("did you mean `{c}`?"),
                        None => format!("methods: {}", METHODS[..16].join(", ")),
                    };
                    self.error(
                        Diagnostic::error("E0804", v.span, "unknown method")
                            .label("not a method name")
                            .hint(hint),
                    );
                }
            }
            "rtol" | "saveat" | "dt" => {
                let Some(x) = self.const_scalar(v, &ctx) else {
                    return;
                };
                if x.is_nan() || x <= 0.0 {
                    self.error(
                        Diagnostic::error(
                            "E0805",
                            v.span,
                            format!("`{}` must be positive", entry.key.name),
                        )
                        .label(format!("this is {}", crate::syntax::print::number(x))),
                    );
                    return;
                }
                match entry.key.name.as_str() {
                    "rtol" => out.rtol = Some(x),
                    "saveat" => out.saveat = Some(x),
                    _ => out.dt = Some(x),
                }
            }
            "atol" => {
                let Some(te) = self.type_value(v, &ctx) else {
                    return;
                };
                let Some(vals) = self.fold(&te) else { return };
                let n: usize = states.iter().map(StateDef::size).sum();
                if te.shape != Shape::Scalar && vals.len() != n {
                    self.error(
                        Diagnostic::error(
                            "E0806",
                            v.span,
                            "`atol` needs one entry per state entry",
                        )
                        .label(format!("{} entries for {n} state entries", vals.len()))
                        .hint("give one number, or a list as long as the state"),
                    );
                    return;
                }
                if vals.iter().any(|x| x.is_nan() || *x < 0.0) {
                    self.error(
                        Diagnostic::error("E0805", v.span, "`atol` must not be negative")
                            .label("a negative tolerance"),
                    );
                    return;
                }
                out.atol = Some(vals);
            }
            other => {
                let hint = match super::closest(other, KEYS.iter().copied()) {
                    Some(c) => format!("did you mean `{c}`?"),
                    None => format!("the keys are {}", KEYS.join(", ")),
                };
                self.error(
                    Diagnostic::error(
                        "E0807",
                        entry.key.span,
                        format!("unknown solve setting `{other}`"),
                    )
                    .label("not a setting")
                    .hint(hint),
                );
            }
        }
    }
}
