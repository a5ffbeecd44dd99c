//! Typing expressions: names resolved, shapes computed, indices proved in range.

use super::check::*;
use super::model::*;
use crate::diag::Diagnostic;
use crate::span::Span;
use crate::syntax::ast::{self, BinOp, ExprKind};

type Typed = Option<TExpr>;

fn mk(kind: TKind, shape: Shape, span: Span) -> TExpr {
    TExpr { kind, shape, span }
}

impl<'a> Checker<'a> {
    /// Types an expression that must be a value (not a bare comparison).
    pub(super) fn type_value(&mut self, e: &ast::Expr, ctx: &Ctx) -> Typed {
        let te = self.type_expr(e, ctx)?;
        if let Shape::Mask(_) = te.shape {
            self.error(
                Diagnostic::error("E0311", e.span, "a comparison is not a number")
                    .label("this comparison")
                    .hint("use it as the condition of `ifelse(COND, A, B)`"),
            );
            return None;
        }
        Some(te)
    }

    fn type_expr(&mut self, e: &ast::Expr, ctx: &Ctx) -> Typed {
        let te = match &e.kind {
            ExprKind::Number(x) => {
                if !x.is_finite() {
                    self.error(
                        Diagnostic::error("E0312", e.span, "number too large")
                            .label("this overflows a 64-bit float"),
                    );
                    return None;
                }
                mk(TKind::Number(*x), Shape::Scalar, e.span)
            }
            ExprKind::Name(n) => self.type_name(n, e.span, ctx)?,
            ExprKind::Neg(a) => {
                let a = self.type_value(a, ctx)?;
                let shape = a.shape;
                mk(TKind::Unary(Func1::Neg, Box::new(a)), shape, e.span)
            }
            ExprKind::Binary(op, a, b) => self.type_binary(*op, a, b, e.span, ctx)?,
            ExprKind::Call(f, args) => self.type_call(f, args, e.span, ctx)?,
            ExprKind::Index(v, i) => {
                let v = self.type_value(v, ctx)?;
                let n = self.vector_len(&v, "indexed")?;
                let idx = self.index(i, n, ctx)?;
                mk(TKind::Index(Box::new(v), idx), Shape::Scalar, e.span)
            }
            ExprKind::Slice(v, lo, hi) => {
                let v = self.type_value(v, ctx)?;
                let n = self.vector_len(&v, "sliced")?;
                let lo_v = self.const_int(lo, "a slice start")?;
                let hi_v = self.const_int(hi, "a slice end")?;
                if lo_v < 0 || hi_v < lo_v || hi_v as usize > n {
                    self.error(
                        Diagnostic::error(
                            "E0320",
                            e.span,
                            format!("slice {lo_v}..{hi_v} is out of range"),
                        )
                        .label(format!("the vector has length {n}"))
                        .hint(format!("a slice a..b needs 0 <= a <= b <= {n}")),
                    );
                    return None;
                }
                let (lo_v, hi_v) = (lo_v as usize, hi_v as usize);
                mk(
                    TKind::Slice(Box::new(v), lo_v, hi_v),
                    Shape::Vector(hi_v - lo_v),
                    e.span,
                )
            }
            ExprKind::Prime(x) => self.type_prime(x, e.span, ctx)?,
            ExprKind::List(items) => {
                if items.is_empty() {
                    self.error(
                        Diagnostic::error("E0321", e.span, "empty list")
                            .label("a vector needs at least one entry"),
                    );
                    return None;
                }
                let mut out = Vec::new();
                let mut n = 0;
                let mut ok = true;
                for x in items {
                    match self.type_value(x, ctx) {
                        Some(t) if matches!(t.shape, Shape::Matrix(..)) => {
                            self.error(super::decl::shape_error(
                                &t,
                                "list entries are scalars or vectors",
                            ));
                            ok = false;
                        }
                        Some(t) => {
                            n += t.shape.len();
                            out.push(t);
                        }
                        None => ok = false,
                    }
                }
                if !ok {
                    return None;
                }
                mk(TKind::List(out), Shape::Vector(n), e.span)
            }
            ExprKind::Range(..) => {
                self.error(
                    Diagnostic::error("E0322", e.span, "a range is not a value")
                        .label("`a .. b` only appears in `solve { t = … }`, slices and `for`"),
                );
                return None;
            }
            ExprKind::Chain(_) => {
                self.error(
                    Diagnostic::error("E0323", e.span, "`->` is not an operator")
                        .label("layer sizes `a -> b` only appear in `mlp(…)`"),
                );
                return None;
            }
        };
        // Inside an indexed family, what depends on the index is one scalar per entry.
        if ctx.index.is_some()
            && te.shape != Shape::Scalar
            && !matches!(te.shape, Shape::Mask(1))
            && te.uses_index()
        {
            self.error(
                Diagnostic::error(
                    "E0324",
                    e.span,
                    "only scalars may depend on the family index",
                )
                .label(format!(
                    "this is {} that depends on the index",
                    te.shape.describe()
                ))
                .hint("index into vectors (`u[i-1]`) so that each entry is a scalar expression"),
            );
            return None;
        }
        Some(te)
    }

    fn type_name(&mut self, n: &str, span: Span, ctx: &Ctx) -> Typed {
        if let Some(idx) = &ctx.index
            && idx.name == n
        {
            return Some(mk(TKind::IndexVar, Shape::Scalar, span));
        }
        if n == "t" {
            if !ctx.allow.time {
                return self.not_allowed(span, "`t`", ctx);
            }
            return Some(mk(TKind::Time, Shape::Scalar, span));
        }
        let Some((sym, decl)) = self.symbols.get(n).copied() else {
            if super::BUILTINS.contains(&n) {
                self.error(
                    Diagnostic::error("E0330", span, format!("`{n}` is a function"))
                        .label("used as a value")
                        .hint(format!("call it: `{n}(…)`")),
                );
                return None;
            }
            let hint = self.did_you_mean(n);
            self.error(
                Diagnostic::error("E0101", span, format!("unknown name `{n}`"))
                    .label("not declared")
                    .hint(hint),
            );
            return None;
        };
        Some(match sym {
            Symbol::Const(id) => {
                let c = self.const_value(id, span)?;
                if c.is_vector {
                    mk(
                        TKind::Numbers(c.value.clone()),
                        Shape::Vector(c.value.len()),
                        span,
                    )
                } else {
                    mk(TKind::Number(c.value[0]), Shape::Scalar, span)
                }
            }
            Symbol::Param(id) => {
                if !ctx.allow.params {
                    return self.not_allowed(span, &format!("param `{n}`"), ctx);
                }
                mk(TKind::Param(id), Shape::Scalar, span)
            }
            Symbol::State(id) => {
                if !ctx.allow.states {
                    return self.not_allowed(span, &format!("state `{n}`"), ctx);
                }
                if !self.states[id].ok {
                    return None;
                }
                let shape = self.states[id].len.map_or(Shape::Scalar, Shape::Vector);
                mk(TKind::State(id), shape, span)
            }
            Symbol::Let(id) => {
                if !ctx.allow.lets {
                    return self.not_allowed(span, &format!("let `{n}`"), ctx);
                }
                let shape = self.let_expr(id, span)?;
                mk(TKind::Let(id), shape, span)
            }
            Symbol::Input(id) => {
                if !ctx.allow.inputs {
                    return self.not_allowed(span, &format!("input `{n}`"), ctx);
                }
                let shape = self
                    .inputs
                    .get(id)?
                    .len
                    .map_or(Shape::Scalar, Shape::Vector);
                mk(TKind::Input(id), shape, span)
            }
            Symbol::Noise(id) => {
                if !ctx.allow.noise {
                    return self.not_allowed(span, &format!("brownian `{n}`"), ctx);
                }
                mk(TKind::Noise(id), Shape::Scalar, span)
            }
            Symbol::Net(_) => {
                self.error(
                    Diagnostic::error("E0331", span, format!("net `{n}` must be called"))
                        .label("a net is a function of a vector")
                        .also(decl, "declared here")
                        .hint(format!("call it: `{n}([x, y])`")),
                );
                return None;
            }
            Symbol::Output(_) => {
                self.error(
                    Diagnostic::error(
                        "E0332",
                        span,
                        format!("output `{n}` cannot be used in an expression"),
                    )
                    .label("outputs are only written out")
                    .also(decl, "declared here")
                    .hint("compute it in a `let` and use the let in both places"),
                );
                return None;
            }
        })
    }

    fn not_allowed(&mut self, span: Span, what: &str, ctx: &Ctx) -> Typed {
        let allowed = if ctx.allow.states {
            "states, params, lets, inputs, t and consts"
        } else if ctx.allow.time {
            "t, consts and params"
        } else if ctx.allow.params {
            "consts and params"
        } else {
            "numbers and consts"
        };
        self.error(
            Diagnostic::error(
                "E0333",
                span,
                format!("{} cannot use {what}", capital_what(ctx.what)),
            )
            .label("not allowed here")
            .hint(format!("{} may only use {allowed}", ctx.what)),
        );
        None
    }

    fn type_binary(
        &mut self,
        op: BinOp,
        a: &ast::Expr,
        b: &ast::Expr,
        span: Span,
        ctx: &Ctx,
    ) -> Typed {
        if op.is_comparison() {
            let (ta, tb) = (self.type_value(a, ctx), self.type_value(b, ctx));
            let (ta, tb) = (ta?, tb?);
            let shape = self.broadcast(&ta, &tb, span)?;
            let cmp = match op {
                BinOp::Lt => Cmp::Lt,
                BinOp::Le => Cmp::Le,
                BinOp::Gt => Cmp::Gt,
                _ => Cmp::Ge,
            };
            return Some(mk(
                TKind::Compare(cmp, Box::new(ta), Box::new(tb)),
                Shape::Mask(shape.len()),
                span,
            ));
        }
        let (ta, tb) = (self.type_value(a, ctx), self.type_value(b, ctx));
        let (ta, tb) = (ta?, tb?);
        if op == BinOp::MatMul {
            return self.matvec(ta, tb, span);
        }
        let op2 = match op {
            BinOp::Add => Op2::Add,
            BinOp::Sub => Op2::Sub,
            BinOp::Mul => Op2::Mul,
            BinOp::Div => Op2::Div,
            _ => Op2::Pow,
        };
        let shape = self.broadcast(&ta, &tb, span)?;
        Some(mk(
            TKind::Binary(op2, Box::new(ta), Box::new(tb)),
            shape,
            span,
        ))
    }

    fn matvec(&mut self, m: TExpr, x: TExpr, span: Span) -> Typed {
        match (m.shape, x.shape) {
            (Shape::Matrix(r, c), Shape::Vector(n)) if c == n => Some(mk(
                TKind::MatVec(Box::new(m), Box::new(x)),
                Shape::Vector(r),
                span,
            )),
            (Shape::Matrix(r, 1), Shape::Scalar) => Some(mk(
                TKind::MatVec(Box::new(m), Box::new(x)),
                Shape::Vector(r),
                span,
            )),
            (Shape::Matrix(r, c), other) => {
                self.error(
                    Diagnostic::error("E0340", span, "matrix–vector shapes do not match")
                        .label(format!("a {r}×{c} matrix times {}", other.describe()))
                        .hint(format!(
                            "the right side of `@` must be a vector of length {c}"
                        )),
                );
                None
            }
            (other, _) => {
                self.error(
                    Diagnostic::error("E0341", m.span, "the left side of `@` must be a matrix")
                        .label(format!("this is {}", other.describe()))
                        .hint("make a matrix with `reshape(v, ROWS, COLS)`; for two vectors use `dot(a, b)`"),
                );
                None
            }
        }
    }

    /// The shape of an elementwise operation on `a` and `b` (scalars broadcast).
    fn broadcast(&mut self, a: &TExpr, b: &TExpr, span: Span) -> Option<Shape> {
        match (a.shape, b.shape) {
            (Shape::Scalar, s) | (s, Shape::Scalar) => Some(s),
            (x, y) if x == y => Some(x),
            (x, y) => {
                self.error(
                    Diagnostic::error("E0342", span, "shapes do not match")
                        .label(format!("{} and {}", x.describe(), y.describe()))
                        .also(a.span, x.describe())
                        .also(b.span, y.describe())
                        .hint("elementwise operations need equal lengths (or a scalar)"),
                );
                None
            }
        }
    }

    fn vector_len(&mut self, v: &TExpr, what: &str) -> Option<usize> {
        match v.shape {
            Shape::Vector(n) => Some(n),
            other => {
                self.error(
                    Diagnostic::error("E0343", v.span, format!("only a vector can be {what}"))
                        .label(format!("this is {}", other.describe())),
                );
                None
            }
        }
    }

    /// An index into a vector of length `n`: a compile-time integer or, in a family,
    /// an affine function of the index, proved in range for every index value.
    fn index(&mut self, i: &ast::Expr, n: usize, ctx: &Ctx) -> Option<Affine> {
        let ti = self.type_value(i, ctx)?;
        let aff = match affine(&ti) {
            Ok(aff) => aff,
            Err(NotAffine::Overflow) => {
                self.error(
                    Diagnostic::error("E0352", i.span, "integer overflow in an index")
                        .label(format!(
                            "this index's arithmetic goes beyond ±{INDEX_LIMIT}"
                        ))
                        .hint("indices are small integers; check the constants in this index"),
                );
                return None;
            }
            Err(NotAffine::NotConstant) => {
                self.error(
                    Diagnostic::error("E0350", i.span, "an index must be known at compile time")
                        .label("this is not a compile-time integer")
                        .hint(match &ctx.index {
                            Some(ix) => format!(
                                "use integers, consts and `{}` (like `{}-1`)",
                                ix.name, ix.name
                            ),
                            None => "use integers and consts".to_string(),
                        }),
                );
                return None;
            }
        };
        let (lo_i, hi_i) = match (&ctx.index, aff.a) {
            (Some(ix), a) if a != 0 => (ix.lo, ix.hi - 1),
            _ => (0, 0),
        };
        if hi_i < lo_i {
            return Some(aff); // an empty family: nothing to index
        }
        // In i128: `a*i + b` with |a|, |b| ≤ 2^53 and |i| ≤ 2^30 cannot overflow there, so
        // no wrapped value can pass the range proof.
        let at = |i: i64| aff.a as i128 * i as i128 + aff.b as i128;
        let (v1, v2) = (at(lo_i), at(hi_i));
        let (min, max) = (v1.min(v2), v1.max(v2));
        if min < 0 || max >= n as i128 {
            let bad = if min < 0 { min } else { max };
            let mut d = Diagnostic::error("E0351", i.span, "index out of range")
                .label(format!("this reaches {bad}, but valid indices are 0..{n}"));
            d = match (&ctx.index, aff.a) {
                (Some(ix), a) if a != 0 => {
                    let at = if at(lo_i) == bad { lo_i } else { hi_i };
                    d.hint(format!(
                        "at {} = {at} the index is {bad}; narrow the family's range",
                        ix.name
                    ))
                }
                _ => d.hint(format!("the vector has {n} entries, numbered from 0")),
            };
            self.error(d);
            return None;
        }
        if lo_i == hi_i {
            // A family of one: the index is the constant it takes there (its stride means
            // nothing and need not fit the IR's 32-bit stride).
            return Some(Affine::constant(v1 as i64));
        }
        Some(aff)
    }

    fn type_prime(&mut self, x: &ast::Expr, span: Span, ctx: &Ctx) -> Typed {
        if let ExprKind::Name(n) = &x.kind
            && let Some((Symbol::Input(id), _)) = self.symbols.get(n).copied()
        {
            if !ctx.allow.inputs {
                return self.not_allowed(span, &format!("input `{n}`"), ctx);
            }
            let shape = self
                .inputs
                .get(id)?
                .len
                .map_or(Shape::Scalar, Shape::Vector);
            return Some(mk(TKind::InputDeriv(id), shape, span));
        }
        self.error(
            Diagnostic::error("E0334", span, "a derivative on the right side")
                .label("only an input's derivative `X'` can be used in an expression")
                .hint("a state's derivative is defined by its equation; use the state itself"),
        );
        None
    }

    fn type_call(&mut self, f: &ast::Ident, args: &[ast::Arg], span: Span, ctx: &Ctx) -> Typed {
        match self.symbols.get(&f.name).copied() {
            Some((Symbol::State(id), _)) => return self.type_delay(id, f, args, span, ctx),
            Some((Symbol::Net(id), _)) => return self.type_net_call(id, f, args, span, ctx),
            Some((sym, decl)) => {
                self.error(
                    Diagnostic::error("E0360", f.span, format!("`{}` is not a function", f.name))
                        .label(format!("a {} cannot be called", sym.kind_name()))
                        .also(decl, "declared here"),
                );
                return None;
            }
            None => {}
        }
        let name = f.name.as_str();
        let positional: Vec<&ast::Expr> = args
            .iter()
            .filter_map(|a| match a {
                ast::Arg::Pos(e) => Some(e),
                ast::Arg::Named(..) => None,
            })
            .collect();
        if let Some(ast::Arg::Named(n, _)) = args.iter().find(|a| matches!(a, ast::Arg::Named(..)))
        {
            self.error(
                Diagnostic::error(
                    "E0361",
                    n.span,
                    format!("`{name}` takes no named arguments"),
                )
                .label("named argument"),
            );
            return None;
        }
        let arity = match name {
            "min" | "max" | "dot" => 2,
            "ifelse" | "reshape" => 3,
            "sum" => 1,
            _ if Func1::NAMED.iter().any(|(n, _)| *n == name) => 1,
            _ => {
                let hint = match super::closest(name, super::BUILTINS.iter().copied()) {
                    Some(c) => format!("did you mean `{c}`?"),
                    None => "see docs/language.md for the functions".to_string(),
                };
                self.error(
                    Diagnostic::error("E0362", f.span, format!("unknown function `{name}`"))
                        .label("not a function, net or state")
                        .hint(hint),
                );
                return None;
            }
        };
        if positional.len() != arity {
            let s = if arity == 1 { "" } else { "s" };
            self.error(
                Diagnostic::error(
                    "E0363",
                    span,
                    format!(
                        "`{name}` takes {arity} argument{s}, but {} were given",
                        positional.len()
                    ),
                )
                .label("wrong number of arguments")
                .hint(signature(name)),
            );
            return None;
        }
        match name {
            "ifelse" => {
                let c = self.type_expr(positional[0], ctx);
                let (a, b) = (
                    self.type_value(positional[1], ctx),
                    self.type_value(positional[2], ctx),
                );
                let (c, a, b) = (c?, a?, b?);
                let Shape::Mask(cn) = c.shape else {
                    self.error(
                        Diagnostic::error(
                            "E0364",
                            c.span,
                            "the condition of `ifelse` must be a comparison",
                        )
                        .label(format!("this is {}", c.shape.describe()))
                        .hint("e.g. `ifelse(x < 1, a, b)`"),
                    );
                    return None;
                };
                let ab = self.broadcast(&a, &b, span)?;
                let shape = match (cn, ab) {
                    (1, s) => s,
                    (n, Shape::Scalar) => Shape::Vector(n),
                    (n, Shape::Vector(m)) if n == m => ab,
                    (n, other) => {
                        self.error(
                            Diagnostic::error("E0342", span, "shapes do not match").label(format!(
                                "a condition of length {n} and {}",
                                other.describe()
                            )),
                        );
                        return None;
                    }
                };
                Some(mk(
                    TKind::Select(Box::new(c), Box::new(a), Box::new(b)),
                    shape,
                    span,
                ))
            }
            "reshape" => {
                let v = self.type_value(positional[0], ctx)?;
                let r = self.const_size(positional[1], "a row count")?;
                let c = self.const_size(positional[2], "a column count")?;
                if v.shape.len() != r * c || matches!(v.shape, Shape::Matrix(..)) {
                    self.error(
                        Diagnostic::error("E0365", span, "cannot reshape").label(format!(
                            "{} into {r}×{c} (needs {} entries)",
                            v.shape.describe(),
                            r * c
                        )),
                    );
                    return None;
                }
                Some(mk(TKind::Reshape(Box::new(v)), Shape::Matrix(r, c), span))
            }
            "sum" => {
                let v = self.type_value(positional[0], ctx)?;
                Some(mk(TKind::Sum(Box::new(v)), Shape::Scalar, span))
            }
            "dot" => {
                let (a, b) = (
                    self.type_value(positional[0], ctx),
                    self.type_value(positional[1], ctx),
                );
                let (a, b) = (a?, b?);
                match (a.shape, b.shape) {
                    (Shape::Vector(n), Shape::Vector(m)) if n == m => {}
                    (x, y) => {
                        self.error(
                            Diagnostic::error(
                                "E0366",
                                span,
                                "`dot` needs two vectors of equal length",
                            )
                            .label(format!(
                                "{} and {}",
                                x.describe(),
                                y.describe()
                            )),
                        );
                        return None;
                    }
                }
                Some(mk(
                    TKind::Dot(Box::new(a), Box::new(b)),
                    Shape::Scalar,
                    span,
                ))
            }
            "min" | "max" => {
                let (a, b) = (
                    self.type_value(positional[0], ctx),
                    self.type_value(positional[1], ctx),
                );
                let (a, b) = (a?, b?);
                let shape = self.broadcast(&a, &b, span)?;
                let op = if name == "min" { Op2::Min } else { Op2::Max };
                Some(mk(TKind::Binary(op, Box::new(a), Box::new(b)), shape, span))
            }
            _ => {
                let func = Func1::NAMED
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, f)| *f)?;
                let a = self.type_value(positional[0], ctx)?;
                let shape = a.shape;
                Some(mk(TKind::Unary(func, Box::new(a)), shape, span))
            }
        }
    }

    fn type_net_call(
        &mut self,
        id: NetId,
        f: &ast::Ident,
        args: &[ast::Arg],
        span: Span,
        ctx: &Ctx,
    ) -> Typed {
        if !ctx.allow.nets {
            return self.not_allowed(span, &format!("net `{}`", f.name), ctx);
        }
        let net = self.nets[id].clone()?;
        let [ast::Arg::Pos(arg)] = args else {
            self.error(
                Diagnostic::error(
                    "E0610",
                    span,
                    format!("net `{}` takes one vector argument", f.name),
                )
                .label("wrong arguments")
                .hint(format!("call it as `{}([x, y])`", f.name)),
            );
            return None;
        };
        let x = self.type_value(arg, ctx)?;
        let input = net.layers[0];
        let fits = match x.shape {
            Shape::Vector(n) => n == input,
            Shape::Scalar => input == 1,
            _ => false,
        };
        if !fits {
            self.error(
                Diagnostic::error(
                    "E0611",
                    arg.span,
                    format!("net `{}` is called with the wrong input length", f.name),
                )
                .label(format!("this is {}", x.shape.describe()))
                .also(net.span, format!("declared with {input} inputs"))
                .hint(format!("pass a vector of length {input}")),
            );
            return None;
        }
        let out = *net.layers.last()?;
        Some(mk(
            TKind::NetCall(id, Box::new(x)),
            Shape::Vector(out),
            span,
        ))
    }

    /// `x(t - tau)`: the state at a lagged time.
    fn type_delay(
        &mut self,
        id: StateId,
        f: &ast::Ident,
        args: &[ast::Arg],
        span: Span,
        ctx: &Ctx,
    ) -> Typed {
        if !ctx.allow.delays {
            return self.not_allowed(span, &format!("a delayed state `{}(…)`", f.name), ctx);
        }
        let lag_expr = match args {
            [
                ast::Arg::Pos(ast::Expr {
                    kind: ExprKind::Binary(BinOp::Sub, t, lag),
                    ..
                }),
            ] if matches!(&t.kind, ExprKind::Name(n) if n == "t") => lag,
            _ => {
                self.error(
                    Diagnostic::error(
                        "E0701",
                        span,
                        format!("`{}(…)` must be a delay `{}(t - tau)`", f.name, f.name),
                    )
                    .label("a state can only be called at a lagged time")
                    .hint(
                        "write `x(t - tau)` with tau a positive const, param or expression of them",
                    ),
                );
                return None;
            }
        };
        let lag_ctx = Ctx::new(
            Allow {
                params: true,
                ..Allow::CONSTS
            },
            "a delay",
        );
        let lag = self.type_value(lag_expr, &lag_ctx)?;
        if lag.shape != Shape::Scalar {
            self.error(super::decl::shape_error(&lag, "a delay is a scalar"));
            return None;
        }
        match self.fold_with_defaults(&lag) {
            Some(v) if v[0] > 0.0 => {}
            Some(v) => {
                self.error(
                    Diagnostic::error("E0702", lag.span, "a delay must be positive")
                        .label(format!(
                            "this is {} (params at their defaults)",
                            crate::syntax::print::number(v[0])
                        ))
                        .hint("use x(t - tau) with tau > 0"),
                );
                return None;
            }
            None => return None,
        }
        if !self.states[id].ok {
            return None;
        }
        let shape = self.states[id].len.map_or(Shape::Scalar, Shape::Vector);
        Some(mk(
            TKind::Delayed {
                state: id,
                lag: Box::new(lag),
            },
            shape,
            span,
        ))
    }
}

fn capital_what(s: &str) -> String {
    super::consts::capital(s)
}

fn signature(name: &str) -> String {
    match name {
        "min" | "max" => format!("`{name}(a, b)`: elementwise, a scalar broadcasts"),
        "dot" => "`dot(a, b)`: two vectors of equal length".to_string(),
        "ifelse" => "`ifelse(COND, A, B)`: A where COND holds, else B".to_string(),
        "reshape" => "`reshape(v, ROWS, COLS)`: a row-major matrix".to_string(),
        "sum" => "`sum(v)`: the sum of a vector's entries".to_string(),
        _ => format!("`{name}(x)`: one argument, applied elementwise"),
    }
}

/// Why an index is not an affine function `a*i + b` of the family index.
pub(super) enum NotAffine {
    /// It uses something other than integers, consts and the family index.
    NotConstant,
    /// Its integer arithmetic leaves the range `±INDEX_LIMIT` (it would wrap in i64).
    Overflow,
}

/// The largest magnitude of any integer met while folding an index: beyond it, f64 and
/// i64 arithmetic disagree and wrapping could carry an index back into range.
pub(super) const INDEX_LIMIT: i64 = 1 << 53;

/// `a*i + b` if the typed expression is an integer affine function of the family index.
/// Every operation is checked: a coefficient beyond `INDEX_LIMIT` is an overflow, never a
/// wrapped value.
pub(super) fn affine(e: &TExpr) -> Result<Affine, NotAffine> {
    use NotAffine::*;
    let int = |x: f64| {
        if x.fract() != 0.0 || !x.is_finite() {
            Err(NotConstant)
        } else if x.abs() > INDEX_LIMIT as f64 {
            Err(Overflow)
        } else {
            Ok(x as i64)
        }
    };
    let bound = |v: Option<i64>| match v {
        Some(v) if v.abs() <= INDEX_LIMIT => Ok(v),
        _ => Err(Overflow),
    };
    let make = |a: Option<i64>, b: Option<i64>| {
        Ok(Affine {
            a: bound(a)?,
            b: bound(b)?,
        })
    };
    match &e.kind {
        TKind::Number(x) => Ok(Affine::constant(int(*x)?)),
        TKind::IndexVar => Ok(Affine { a: 1, b: 0 }),
        TKind::Unary(Func1::Neg, x) => {
            let x = affine(x)?;
            make(x.a.checked_neg(), x.b.checked_neg())
        }
        TKind::Binary(Op2::Add, x, y) => {
            let (x, y) = (affine(x)?, affine(y)?);
            make(x.a.checked_add(y.a), x.b.checked_add(y.b))
        }
        TKind::Binary(Op2::Sub, x, y) => {
            let (x, y) = (affine(x)?, affine(y)?);
            make(x.a.checked_sub(y.a), x.b.checked_sub(y.b))
        }
        TKind::Binary(Op2::Div, x, y) => {
            // Only exact division of a constant: `N/2` with N even.
            let (x, y) = (affine(x)?, affine(y)?);
            if x.a != 0 || y.a != 0 || y.b == 0 || x.b.checked_rem(y.b) != Some(0) {
                return Err(NotConstant);
            }
            make(Some(0), x.b.checked_div(y.b))
        }
        TKind::Binary(Op2::Mul, x, y) => {
            let (x, y) = (affine(x)?, affine(y)?);
            match (x.a, y.a) {
                (0, _) => make(x.b.checked_mul(y.a), x.b.checked_mul(y.b)),
                (_, 0) => make(x.a.checked_mul(y.b), x.b.checked_mul(y.b)),
                _ => Err(NotConstant),
            }
        }
        _ => Err(NotConstant),
    }
}
