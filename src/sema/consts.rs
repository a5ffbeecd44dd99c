//! Compile-time evaluation: consts, sizes, ranges, indices and net declarations.

use super::check::*;
use super::model::*;
use crate::diag::Diagnostic;
use crate::math;
use crate::syntax::ast;

impl<'a> Checker<'a> {
    /// Evaluates a typed expression made only of numbers (consts are already numbers).
    pub(super) fn fold(&mut self, e: &TExpr) -> Option<Vec<f64>> {
        fold_with(e, &|_| None)
    }

    /// Evaluates an expression of consts and params, params at their defaults.
    pub(super) fn fold_with_defaults(&self, e: &TExpr) -> Option<Vec<f64>> {
        let params = &self.params;
        fold_with(e, &|id| params.get(id).map(|p| p.default))
    }

    /// A scalar known at compile time.
    pub(super) fn const_scalar(&mut self, e: &ast::Expr, ctx: &Ctx) -> Option<f64> {
        let te = self.type_value(e, ctx)?;
        if te.shape != Shape::Scalar {
            self.error(
                Diagnostic::error(
                    "E0203",
                    e.span,
                    format!("{} must be a scalar", capital(ctx.what)),
                )
                .label(format!("this is {}", te.shape.describe())),
            );
            return None;
        }
        match self.fold(&te) {
            Some(v) => Some(v[0]),
            None => {
                self.error(
                    Diagnostic::error(
                        "E0204",
                        e.span,
                        format!("{} must be known at compile time", ctx.what),
                    )
                    .label("this depends on something that is only known at run time")
                    .hint("use numbers and consts here (not params, states or t)"),
                );
                None
            }
        }
    }

    /// An integer known at compile time (array sizes, ranges, constant indices).
    pub(super) fn const_int(&mut self, e: &ast::Expr, what: &'static str) -> Option<i64> {
        let ctx = Ctx::new(Allow::CONSTS, what);
        let v = self.const_scalar(e, &ctx)?;
        if v.fract() != 0.0 || !v.is_finite() || v.abs() > 1e15 {
            self.error(
                Diagnostic::error("E0205", e.span, format!("{what} must be an integer"))
                    .label(format!("this is {}", crate::syntax::print::number(v)))
                    .hint("sizes, ranges and indices are whole numbers known at compile time"),
            );
            return None;
        }
        Some(v as i64)
    }

    /// A non-negative integer size.
    pub(super) fn const_size(&mut self, e: &ast::Expr, what: &'static str) -> Option<usize> {
        let n = self.const_int(e, what)?;
        if n < 0 {
            self.error(
                Diagnostic::error("E0206", e.span, format!("{what} must not be negative"))
                    .label(format!("this is {n}")),
            );
            return None;
        }
        if n > MAX_SIZE {
            self.error(
                Diagnostic::error("E0207", e.span, format!("{what} is too large"))
                    .label(format!("this is {n}"))
                    .hint(format!("sizes are limited to {MAX_SIZE} entries")),
            );
            return None;
        }
        Some(n as usize)
    }

    pub(super) fn resolve_nets(&mut self) {
        for id in 0..self.net_decls.len() {
            let decl = self.net_decls[id];
            self.nets[id] = self.resolve_net(decl);
        }
    }

    fn resolve_net(&mut self, d: &ast::NetDecl) -> Option<NetDef> {
        if d.ctor.name != "mlp" {
            self.error(
                Diagnostic::error(
                    "E0601",
                    d.ctor.span,
                    format!("unknown network kind `{}`", d.ctor.name),
                )
                .label("not a network constructor")
                .hint("use `mlp(IN -> H -> OUT, ACT)`"),
            );
            return None;
        }
        let mut layers: Option<Vec<usize>> = None;
        let mut act: Option<Activation> = None;
        let mut act_out = Activation::Identity;
        let mut init = InitKind::Glorot;
        let mut seed = 0u64;
        let mut ok = true;
        let mut positional = 0;
        for arg in &d.args {
            match arg {
                ast::Arg::Pos(e) => {
                    positional += 1;
                    match positional {
                        1 => layers = self.net_layers(e),
                        2 => act = self.activation(e),
                        _ => {
                            self.error(
                                Diagnostic::error("E0602", e.span, "too many arguments to `mlp`")
                                    .label("unexpected argument")
                                    .hint("mlp(IN -> H -> OUT, ACT, init = glorot(seed = 1), act_out = ACT)"),
                            );
                            ok = false;
                        }
                    }
                }
                ast::Arg::Named(n, e) => match n.name.as_str() {
                    "act_out" => match self.activation(e) {
                        Some(a) => act_out = a,
                        None => ok = false,
                    },
                    "init" => match self.net_init(e) {
                        Some((k, s)) => {
                            init = k;
                            seed = s;
                        }
                        None => ok = false,
                    },
                    other => {
                        self.error(
                            Diagnostic::error(
                                "E0603",
                                n.span,
                                format!("unknown mlp option `{other}`"),
                            )
                            .label("not an option of mlp")
                            .hint("the options are `init` and `act_out`"),
                        );
                        ok = false;
                    }
                },
            }
        }
        if positional < 2 && layers.is_some() && act.is_none() && ok {
            self.error(
                Diagnostic::error(
                    "E0604",
                    d.args_span,
                    "`mlp` needs its layer sizes and an activation",
                )
                .label("missing the activation")
                .hint("e.g. `mlp(2 -> 16 -> 2, tanh)`"),
            );
        }
        if positional == 0 {
            self.error(
                Diagnostic::error(
                    "E0604",
                    d.args_span,
                    "`mlp` needs its layer sizes and an activation",
                )
                .label("no layer sizes")
                .hint("e.g. `mlp(2 -> 16 -> 2, tanh)`"),
            );
        }
        if !ok {
            return None;
        }
        Some(NetDef {
            name: d.name.name.clone(),
            layers: layers?,
            act: act?,
            act_out,
            init,
            seed,
            span: d.name.span,
        })
    }

    fn net_layers(&mut self, e: &ast::Expr) -> Option<Vec<usize>> {
        let ast::ExprKind::Chain(items) = &e.kind else {
            self.error(
                Diagnostic::error("E0605", e.span, "`mlp` needs at least two layer sizes")
                    .label("expected `IN -> … -> OUT`")
                    .hint("e.g. `mlp(2 -> 16 -> 2, tanh)`"),
            );
            return None;
        };
        let mut out = Vec::new();
        for x in items {
            let n = self.const_size(x, "a layer size")?;
            if n == 0 {
                self.error(
                    Diagnostic::error("E0606", x.span, "a layer needs at least one unit")
                        .label("this is 0"),
                );
                return None;
            }
            out.push(n);
        }
        for (k, pair) in items.windows(2).enumerate() {
            let weights = out[k] as u64 * out[k + 1] as u64;
            if weights > MAX_SIZE as u64 {
                self.error(
                    Diagnostic::error(
                        "E0207",
                        pair[0].span.to(pair[1].span),
                        "a layer is too large",
                    )
                    .label(format!("{} × {} = {weights} weights", out[k + 1], out[k]))
                    .hint(format!(
                        "a layer's weight matrix is limited to {MAX_SIZE} entries"
                    )),
                );
                return None;
            }
        }
        Some(out)
    }

    fn activation(&mut self, e: &ast::Expr) -> Option<Activation> {
        let name = match &e.kind {
            ast::ExprKind::Name(n) => n.as_str(),
            _ => "",
        };
        match Activation::from_name(name) {
            Some(a) => Some(a),
            None => {
                let names: Vec<&str> = Activation::ALL.iter().map(|(n, _)| *n).collect();
                self.error(
                    Diagnostic::error("E0607", e.span, "unknown activation")
                        .label("not an activation")
                        .hint(format!("use one of {}", names.join(", "))),
                );
                None
            }
        }
    }

    fn net_init(&mut self, e: &ast::Expr) -> Option<(InitKind, u64)> {
        let (kind, args) = match &e.kind {
            ast::ExprKind::Call(f, args) if f.name == "glorot" => {
                (InitKind::Glorot, args.as_slice())
            }
            ast::ExprKind::Call(f, args) if f.name == "he" => (InitKind::He, args.as_slice()),
            ast::ExprKind::Name(n) if n == "glorot" => (InitKind::Glorot, &[][..]),
            ast::ExprKind::Name(n) if n == "he" => (InitKind::He, &[][..]),
            _ => {
                self.error(
                    Diagnostic::error("E0608", e.span, "unknown initialisation")
                        .label("expected `glorot(seed = N)` or `he(seed = N)`"),
                );
                return None;
            }
        };
        let mut seed = 0;
        for a in args {
            match a {
                ast::Arg::Named(n, v) if n.name == "seed" => {
                    let s = self.const_int(v, "a seed")?;
                    if s < 0 {
                        self.error(Diagnostic::error(
                            "E0609",
                            v.span,
                            "a seed must not be negative",
                        ));
                        return None;
                    }
                    seed = s as u64;
                }
                other => {
                    self.error(
                        Diagnostic::error("E0608", other.span(), "unknown initialisation option")
                            .label("the only option is `seed = N`"),
                    );
                    return None;
                }
            }
        }
        Some((kind, seed))
    }
}

/// The largest array size (a state of this many f64 entries is already 8 GB).
pub const MAX_SIZE: i64 = 1 << 30;

pub(super) fn capital(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

/// Folds `e`, looking params up with `param`; `None` if it uses anything else.
pub(super) fn fold_with(e: &TExpr, param: &dyn Fn(ParamId) -> Option<f64>) -> Option<Vec<f64>> {
    let f = |x: &TExpr| fold_with(x, param);
    Some(match &e.kind {
        TKind::Number(x) => vec![*x],
        TKind::Numbers(v) => v.clone(),
        TKind::Param(id) => vec![param(*id)?],
        TKind::Unary(op, a) => f(a)?.into_iter().map(|x| math::apply1(*op, x)).collect(),
        TKind::Binary(Op2::Pow, a, b) if b.shape == Shape::Scalar => {
            let (a, b) = (f(a)?, f(b)?[0]);
            a.into_iter().map(|x| math::pow_const(x, b)).collect()
        }
        TKind::Binary(op, a, b) => zip(f(a)?, f(b)?, |x, y| math::apply2(*op, x, y)),
        TKind::Compare(c, a, b) => zip(f(a)?, f(b)?, |x, y| math::compare(*c, x, y)),
        TKind::Select(c, a, b) => {
            let (c, a, b) = (f(c)?, f(a)?, f(b)?);
            let n = c.len().max(a.len()).max(b.len());
            (0..n)
                .map(|k| math::select(pick(&c, k), pick(&a, k), pick(&b, k)))
                .collect()
        }
        TKind::Sum(a) => vec![math::sum(f(a)?.into_iter())],
        TKind::Dot(a, b) => {
            let (a, b) = (f(a)?, f(b)?);
            vec![math::sum(a.iter().zip(&b).map(|(x, y)| x * y))]
        }
        TKind::Reshape(a) => f(a)?,
        TKind::MatVec(m, x) => {
            let (m, x) = (f(m)?, f(x)?);
            let c = x.len();
            m.chunks(c.max(1))
                .map(|row| math::sum(row.iter().zip(&x).map(|(w, v)| w * v)))
                .collect()
        }
        TKind::Index(a, idx) if idx.a == 0 => vec![*f(a)?.get(usize::try_from(idx.b).ok()?)?],
        TKind::Slice(a, lo, hi) => f(a)?.get(*lo..*hi)?.to_vec(),
        TKind::List(items) => {
            let mut out = Vec::new();
            for x in items {
                out.extend(f(x)?);
            }
            out
        }
        _ => return None,
    })
}

fn pick(v: &[f64], k: usize) -> f64 {
    if v.len() == 1 { v[0] } else { v[k] }
}

fn zip(a: Vec<f64>, b: Vec<f64>, op: impl Fn(f64, f64) -> f64) -> Vec<f64> {
    let n = a.len().max(b.len());
    (0..n).map(|k| op(pick(&a, k), pick(&b, k))).collect()
}
