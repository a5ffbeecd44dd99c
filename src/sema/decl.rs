//! Declarations: collecting names (duplicates, built-ins) and resolving each kind.

use super::BUILTINS;
use super::check::*;
use super::model::*;
use crate::diag::Diagnostic;
use crate::span::Span;
use crate::syntax::ast::{self, ItemKind};

impl<'a> Checker<'a> {
    /// Pass 1: every declared name, so that uses may come before declarations.
    pub(super) fn declare_all(&mut self, module: &'a ast::Module) {
        for item in &module.items {
            match &item.kind {
                ItemKind::Model(n) => {
                    if self.model_name.is_some() {
                        self.error(
                            Diagnostic::error("E0102", n.span, "the model is named twice")
                                .label("second `model` line")
                                .hint("keep one `model NAME` line"),
                        );
                    }
                    self.model_name = Some(n.name.clone());
                }
                ItemKind::Const(bs) => {
                    for b in bs {
                        let id = self.consts.len();
                        if self.declare(&b.name, Symbol::Const(id)) {
                            self.consts.push(ConstSlot {
                                name: b.name.name.clone(),
                                expr: &b.value,
                                span: b.name.span,
                                state: Slot::Pending,
                            });
                        }
                    }
                }
                ItemKind::Param(bs) => {
                    for b in bs {
                        let id = self.params.len();
                        if self.declare(&b.name, Symbol::Param(id)) {
                            self.params.push(ParamDef {
                                name: b.name.name.clone(),
                                default: f64::NAN,
                                span: b.name.span,
                            });
                            self.param_exprs.push(&b.value);
                        }
                    }
                }
                ItemKind::State(decls) => {
                    self.saw_state = true;
                    for d in decls {
                        let id = self.states.len();
                        if self.declare(&d.name, Symbol::State(id)) {
                            self.states.push(StateSlot {
                                decl: d,
                                len: None,
                                ok: true,
                            });
                        }
                    }
                }
                ItemKind::Let(bs) => {
                    for b in bs {
                        let id = self.lets.len();
                        if self.declare(&b.name, Symbol::Let(id)) {
                            self.lets.push(LetSlot {
                                name: b.name.name.clone(),
                                expr: &b.value,
                                span: b.name.span,
                                state: Slot::Pending,
                            });
                        }
                    }
                }
                ItemKind::Net(n) => {
                    let id = self.net_decls.len();
                    if self.declare(&n.name, Symbol::Net(id)) {
                        self.net_decls.push(n);
                        self.nets.push(None);
                    }
                }
                ItemKind::Brownian { calculus, names } => {
                    let kind = match calculus {
                        Some(ast::Calculus::Stratonovich) => Calculus::Stratonovich,
                        _ => Calculus::Ito,
                    };
                    match self.calculus {
                        Some((k, first)) if k != kind => self.error(
                            Diagnostic::error(
                                "E0501",
                                item.span,
                                "Itô and Stratonovich noise in one model",
                            )
                            .label("this declaration uses the other calculus")
                            .also(first, "first brownian declaration")
                            .hint("one kind per model: declare every brownian the same way"),
                        ),
                        Some(_) => {}
                        None => self.calculus = Some((kind, item.span)),
                    }
                    for n in names {
                        let id = self.noises.len();
                        if self.declare(n, Symbol::Noise(id)) {
                            self.noises.push(NoiseDef {
                                name: n.name.clone(),
                                span: n.span,
                            });
                        }
                    }
                }
                ItemKind::History { state, value } => {
                    self.history_items.push((state, value, item.span));
                }
                ItemKind::Input(decls) => {
                    for d in decls {
                        let id = self.input_decls.len();
                        if self.declare(&d.name, Symbol::Input(id)) {
                            self.input_decls.push(d);
                        }
                    }
                }
                ItemKind::Output(bs) => {
                    for b in bs {
                        let id = self.output_decls.len();
                        if self.declare(&b.name, Symbol::Output(id)) {
                            self.output_decls.push(b);
                        }
                    }
                }
                ItemKind::Equation(eq) => self.equation_items.push((eq, item.span)),
                ItemKind::Solve(entries) => self.solve_items.push((entries, item.span)),
                ItemKind::Error => {}
            }
        }
    }

    /// Records a name; false (with a diagnostic) for a duplicate or a built-in.
    fn declare(&mut self, name: &ast::Ident, sym: Symbol) -> bool {
        if BUILTINS.contains(&name.name.as_str()) {
            let what = if name.name == "t" {
                "`t` is the independent variable".to_string()
            } else {
                format!("`{}` is a built-in function", name.name)
            };
            self.error(
                Diagnostic::error(
                    "E0103",
                    name.span,
                    format!("cannot declare `{}`", name.name),
                )
                .label(what)
                .hint("choose another name"),
            );
            return false;
        }
        if let Some((prev, prev_span)) = self.symbols.get(&name.name) {
            let (prev, prev_span) = (*prev, *prev_span);
            self.error(
                Diagnostic::error("E0104", name.span, format!("`{}` is declared twice", name.name))
                    .label(format!("declared again as a {}", sym.kind_name()))
                    .also(prev_span, format!("first declared here as a {}", prev.kind_name()))
                    .hint("every const, param, state, let, net, brownian, input and output needs its own name"),
            );
            return false;
        }
        self.symbols.insert(name.name.clone(), (sym, name.span));
        true
    }

    pub(super) fn resolve_consts(&mut self) {
        for id in 0..self.consts.len() {
            self.const_value(id, self.consts[id].span);
        }
    }

    /// The value of const `id`, evaluating it (and what it uses) on first use.
    pub(super) fn const_value(&mut self, id: usize, use_span: Span) -> Option<ConstDef> {
        match &self.consts[id].state {
            Slot::Done(v) => return v.clone(),
            Slot::Busy => {
                let name = self.consts[id].name.clone();
                let decl = self.consts[id].span;
                self.error(
                    Diagnostic::error(
                        "E0201",
                        use_span,
                        format!("const `{name}` depends on itself"),
                    )
                    .label("used here while its value is being computed")
                    .also(decl, "declared here")
                    .hint("a const must be computable from numbers and earlier consts"),
                );
                self.consts[id].state = Slot::Done(None);
                return None;
            }
            Slot::Pending => {}
        }
        self.consts[id].state = Slot::Busy;
        let expr = self.consts[id].expr;
        let ctx = Ctx::new(Allow::CONSTS, "a const");
        let value = self.type_value(expr, &ctx).and_then(|te| {
            let v = self.fold(&te)?;
            Some(ConstDef {
                name: self.consts[id].name.clone(),
                is_vector: !matches!(te.shape, Shape::Scalar),
                value: v,
                span: self.consts[id].span,
            })
        });
        if matches!(self.consts[id].state, Slot::Busy) {
            self.consts[id].state = Slot::Done(value.clone());
        }
        value
    }

    pub(super) fn resolve_params(&mut self) {
        for id in 0..self.params.len() {
            let ctx = Ctx::new(Allow::CONSTS, "a param's default value");
            let e = self.param_exprs[id];
            if let Some(v) = self.const_scalar(e, &ctx) {
                self.params[id].default = v;
            }
        }
    }

    /// Sizes of vector states and inputs.
    pub(super) fn resolve_sizes(&mut self) {
        for id in 0..self.states.len() {
            if let Some(size) = &self.states[id].decl.size {
                match self.const_size(size, "a state's size") {
                    Some(n) => self.states[id].len = Some(n),
                    None => self.states[id].ok = false,
                }
            }
        }
        for id in 0..self.input_decls.len() {
            let d = self.input_decls[id];
            let len = d
                .size
                .as_ref()
                .and_then(|s| self.const_size(s, "an input's size"));
            self.inputs.push(InputDef {
                name: d.name.name.clone(),
                len,
                span: d.name.span,
            });
        }
    }

    pub(super) fn resolve_lets(&mut self) -> Vec<LetDef> {
        for id in 0..self.lets.len() {
            self.let_expr(id, self.lets[id].span);
        }
        (0..self.lets.len())
            .filter_map(|id| match &self.lets[id].state {
                Slot::Done(Some(e)) => Some(LetDef {
                    name: self.lets[id].name.clone(),
                    expr: e.clone(),
                    span: self.lets[id].span,
                }),
                _ => None,
            })
            .collect()
    }

    /// The typed expression of let `id`, checking it (and its dependencies) on first use.
    pub(super) fn let_expr(&mut self, id: LetId, use_span: Span) -> Option<Shape> {
        match &self.lets[id].state {
            Slot::Done(v) => return v.as_ref().map(|e| e.shape),
            Slot::Busy => {
                let name = self.lets[id].name.clone();
                let decl = self.lets[id].span;
                self.error(
                    Diagnostic::error(
                        "E0202",
                        use_span,
                        format!("`{name}` is defined in terms of itself"),
                    )
                    .label("this use closes a cycle among lets")
                    .also(decl, format!("`{name}` is declared here"))
                    .hint("lets must form a chain without cycles; break the loop with a state"),
                );
                self.lets[id].state = Slot::Done(None);
                return None;
            }
            Slot::Pending => {}
        }
        self.lets[id].state = Slot::Busy;
        let ctx = Ctx::new(Allow::EVERYTHING, "a let");
        let e = self.type_value(self.lets[id].expr, &ctx);
        if matches!(self.lets[id].state, Slot::Busy) {
            self.lets[id].state = Slot::Done(e.clone());
            self.let_order.push(id);
        }
        // A cycle reported inside marks the let as failed.
        match &self.lets[id].state {
            Slot::Done(Some(e)) => Some(e.shape),
            _ => None,
        }
    }

    pub(super) fn resolve_states(&mut self) -> Vec<StateDef> {
        let mut out = Vec::new();
        let mut offset = 0;
        for id in 0..self.states.len() {
            if !self.states[id].ok {
                continue;
            }
            let decl = self.states[id].decl;
            let len = self.states[id].len;
            let n = len.unwrap_or(1);
            let ctx = Ctx {
                allow: Allow {
                    params: true,
                    ..Allow::CONSTS
                },
                index: None,
                what: "an initial value",
            };
            let (init, per_index) = match &decl.family {
                Some(f) => {
                    let Some(idx) = self.check_init_family(f, len, decl) else {
                        continue;
                    };
                    let Some(e) = self.type_value(&decl.init, &ctx.with_index(idx)) else {
                        continue;
                    };
                    if e.shape != Shape::Scalar {
                        self.error(shape_error(
                            &e,
                            "the value under `for` must be a scalar (one entry per index)",
                        ));
                        continue;
                    }
                    (e, true)
                }
                None => {
                    let Some(e) = self.type_value(&decl.init, &ctx) else {
                        continue;
                    };
                    let fits = match (len, e.shape) {
                        (_, Shape::Scalar) => true,
                        (Some(n), Shape::Vector(m)) => n == m,
                        _ => false,
                    };
                    if !fits {
                        let want = len.map_or("a scalar".to_string(), |n| {
                            format!("a scalar or a vector of length {n}")
                        });
                        self.error(
                            Diagnostic::error(
                                "E0301",
                                e.span,
                                format!(
                                    "initial value of `{}` has the wrong shape",
                                    decl.name.name
                                ),
                            )
                            .label(format!("this is {}", e.shape.describe()))
                            .hint(format!("the initial value must be {want}")),
                        );
                        continue;
                    }
                    (e, false)
                }
            };
            out.push(StateDef {
                name: decl.name.name.clone(),
                len,
                offset,
                init,
                init_per_index: per_index,
                span: decl.name.span,
            });
            offset += n;
        }
        out
    }

    fn check_init_family(
        &mut self,
        f: &ast::ForClause,
        len: Option<usize>,
        decl: &ast::StateDecl,
    ) -> Option<IndexCtx> {
        let Some(n) = len else {
            self.error(
                Diagnostic::error("E0302", f.span, "a `for` initialiser needs a vector state")
                    .label(format!("`{}` is a scalar", decl.name.name))
                    .hint(format!(
                        "declare it with a size: `state {}[N] = … for i in 0..N`",
                        decl.name.name
                    )),
            );
            return None;
        };
        let lo = self.const_int(&f.lo, "a range start")?;
        let hi = self.const_int(&f.hi, "a range end")?;
        if lo != 0 || hi != n as i64 {
            self.error(
                Diagnostic::error(
                    "E0303",
                    f.span,
                    "a `for` initialiser must run over the whole state",
                )
                .label(format!("this runs over {lo}..{hi}"))
                .hint(format!("write `for {} in 0..{n}`", f.var.name)),
            );
            return None;
        }
        Some(IndexCtx {
            name: f.var.name.clone(),
            lo,
            hi,
        })
    }

    pub(super) fn resolve_histories(&mut self) -> Vec<HistoryDef> {
        let mut out: Vec<HistoryDef> = Vec::new();
        for (name, value, span) in self.history_items.clone() {
            let Some(id) = self.state_named(name, "history") else {
                continue;
            };
            if let Some(prev) = out.iter().find(|h| h.state == id) {
                let prev = prev.span;
                self.error(
                    Diagnostic::error("E0304", span, format!("`{}` has two histories", name.name))
                        .label("second history")
                        .also(prev, "first history")
                        .hint("give each state at most one history"),
                );
                continue;
            }
            let ctx = Ctx::new(
                Allow {
                    time: true,
                    params: true,
                    ..Allow::CONSTS
                },
                "a history",
            );
            let Some(e) = self.type_value(value, &ctx) else {
                continue;
            };
            let len = self.states[id].len;
            let fits = match (len, e.shape) {
                (_, Shape::Scalar) => true,
                (Some(n), Shape::Vector(m)) => n == m,
                _ => false,
            };
            if !fits {
                self.error(shape_error(
                    &e,
                    "a history must be a scalar or match the state's length",
                ));
                continue;
            }
            out.push(HistoryDef {
                state: id,
                expr: e,
                span,
            });
        }
        out
    }

    /// The state a statement names, or a diagnostic.
    pub(super) fn state_named(&mut self, name: &ast::Ident, what: &str) -> Option<StateId> {
        match self.symbols.get(&name.name).copied() {
            Some((Symbol::State(id), _)) if self.states[id].ok => Some(id),
            Some((Symbol::State(_), _)) => None,
            Some((sym, decl)) => {
                self.error(
                    Diagnostic::error(
                        "E0305",
                        name.span,
                        format!(
                            "{} is for a state, but `{}` is a {}",
                            article(what),
                            name.name,
                            sym.kind_name()
                        ),
                    )
                    .label("not a state")
                    .also(decl, "declared here")
                    .hint("only states have equations, initial values and histories"),
                );
                None
            }
            None if name.name == "t" => {
                self.error(
                    Diagnostic::error(
                        "E0305",
                        name.span,
                        format!(
                            "{} is for a state, but `t` is the independent variable",
                            article(what)
                        ),
                    )
                    .label("not a state")
                    .hint("declare a state and write its equation"),
                );
                None
            }
            None => {
                let hint = self.did_you_mean(&name.name);
                self.error(
                    Diagnostic::error("E0101", name.span, format!("unknown name `{}`", name.name))
                        .label("no state has this name")
                        .hint(hint),
                );
                None
            }
        }
    }

    pub(super) fn did_you_mean(&self, name: &str) -> String {
        match super::closest(name, self.symbols.keys().map(String::as_str)) {
            Some(c) => format!("did you mean `{c}`?"),
            None => "declare it (const, param, state, let, …) before using it".to_string(),
        }
    }

    pub(super) fn resolve_outputs(&mut self) -> Vec<OutputDef> {
        let mut out = Vec::new();
        for b in self.output_decls.clone() {
            let ctx = Ctx::new(
                Allow {
                    noise: false,
                    ..Allow::EVERYTHING
                },
                "an output",
            );
            let Some(e) = self.type_value(&b.value, &ctx) else {
                continue;
            };
            if matches!(e.shape, Shape::Matrix(..)) {
                self.error(shape_error(&e, "an output must be a scalar or a vector"));
                continue;
            }
            out.push(OutputDef {
                name: b.name.name.clone(),
                expr: e,
                span: b.name.span,
            });
        }
        out
    }
}

/// "this is a …" diagnostic for a value of the wrong shape.
pub(super) fn shape_error(e: &TExpr, want: &str) -> Diagnostic {
    Diagnostic::error("E0310", e.span, "value has the wrong shape")
        .label(format!("this is {}", e.shape.describe()))
        .hint(want.to_string())
}

fn article(what: &str) -> String {
    let vowel = what.starts_with(['a', 'e', 'i', 'o', 'u']);
    format!("{} {what}", if vowel { "an" } else { "a" })
}
