//! Semantic checking: AST → checked [`model::Model`].
//!
//! Owns name resolution, compile-time evaluation of constants (sizes, ranges, indices),
//! static shapes of every expression, and every check of LANGUAGE.md §5. It reports all
//! the errors it finds as diagnostics with spans. It must never build IR or run anything.

mod check;
mod consts;
mod decl;
mod equations;
mod expr;
pub mod model;
mod noise;
pub mod solve;

use crate::diag::Diagnostic;
use crate::syntax::ast;
pub use model::Model;

/// Checks a parsed module. `default_name` names the model when it has no `model` line.
pub fn check(module: &ast::Module, default_name: &str) -> Result<Model, Vec<Diagnostic>> {
    check::Checker::run(module, default_name)
}

/// Names a user may not declare: the built-in functions and `t`.
pub const BUILTINS: [&str; 19] = [
    "t", "exp", "log", "sqrt", "sin", "cos", "tan", "tanh", "sigmoid", "softplus", "relu", "abs",
    "min", "max", "sum", "dot", "ifelse", "reshape", "mlp",
];

/// The closest of `candidates` to `name`, for "did you mean" hints.
pub(crate) fn closest<'a>(
    name: &str,
    candidates: impl Iterator<Item = &'a str>,
) -> Option<&'a str> {
    let mut best: Option<(usize, &str)> = None;
    for c in candidates {
        let d = edit_distance(name, c);
        let limit = (name.len().max(c.len()) / 3).max(1);
        // Ties go to the alphabetically first name, so the hint never depends on hash order.
        if d <= limit && best.is_none_or(|(bd, bc)| d < bd || (d == bd && c < bc)) {
            best = Some((d, c));
        }
    }
    best.map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}
