//! Lowering a checked model to IR functions: the vector field, the initial values (a
//! function of the params), the outputs, and for delay models the lags and histories.
//!
//! The parameter vector `p` holds the scalar params in declaration order, then every
//! net's layers (each layer's weight matrix, row-major OUT×IN, then its bias).

use super::{Builder, Function, Node, NodeId};
use crate::sema::model::*;
use crate::span::Span;
use std::collections::HashMap;

/// Where one layer's weights and biases live in `p`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerLayout {
    pub weight: usize,
    pub bias: usize,
    /// Outputs (rows of the weight matrix).
    pub rows: usize,
    /// Inputs (columns).
    pub cols: usize,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamBlock {
    pub net: String,
    pub layers: Vec<LayerLayout>,
}

/// The layout of the flat parameter vector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamLayout {
    /// Scalar params: name and position.
    pub scalars: Vec<(String, usize)>,
    pub nets: Vec<ParamBlock>,
    pub len: usize,
}

impl ParamLayout {
    pub fn of(m: &Model) -> ParamLayout {
        let scalars: Vec<(String, usize)> = m
            .params
            .iter()
            .enumerate()
            .map(|(i, p)| (p.name.clone(), i))
            .collect();
        let mut off = scalars.len();
        let mut nets = Vec::new();
        for n in &m.nets {
            let mut layers = Vec::new();
            for w in n.layers.windows(2) {
                let (cols, rows) = (w[0], w[1]);
                layers.push(LayerLayout {
                    weight: off,
                    bias: off + rows * cols,
                    rows,
                    cols,
                });
                off += rows * cols + rows;
            }
            nets.push(ParamBlock {
                net: n.name.clone(),
                layers,
            });
        }
        ParamLayout {
            scalars,
            nets,
            len: off,
        }
    }
}

/// Every IR function of a model.
#[derive(Clone, Debug, PartialEq)]
pub struct Lowered {
    /// `du = f(t, u, p, inputs…, lagged states…)`.
    pub vector_field: Function,
    /// `u0 = init(p)`.
    pub initial: Function,
    /// `o = outputs(t, u, p, …)` (no outputs: an empty output buffer).
    pub outputs: Function,
    /// `tau = delays(p)`, one entry per distinct lag (empty without delays).
    pub delays: Function,
    /// `u = history(t, p)` for t < t0.
    pub history: Function,
    pub layout: ParamLayout,
    /// For an SDE: `du = sde_field(t, u, p, w)`, the equations with the noise symbols as
    /// the argument `w` (one entry per `brownian`, in declaration order); affine in `w`.
    /// `vector_field` is then the drift (in the model's calculus), named `drift`.
    pub noise_field: Option<Function>,
    pub calculus: Calculus,
    /// For an SDE: the derived kernels (drift in both calculi, diffusion, Milstein
    /// products) and the noise class; filled in by `driver::lower` (see [`crate::stochastic`]).
    pub sde: Option<crate::stochastic::SdeIr>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum LowerError {
    /// A construct this version cannot compile yet.
    Unsupported { what: String, span: Span },
}

impl std::fmt::Display for LowerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LowerError::Unsupported { what, .. } => write!(f, "not supported yet: {what}"),
        }
    }
}

pub fn lower(m: &Model) -> Result<Lowered, LowerError> {
    let layout = ParamLayout::of(m);
    let lags = collect_lags(m);
    let sde = m.is_sde();
    // An SDE's equations are lowered once with the noise symbols as an argument `w`
    // (affine in it); the drift is that function with `w` a structural zero.
    let noise_field = sde.then(|| {
        let mut l = Lower::new(m, &layout, &lags, "sde_field", ArgSet::Dynamics);
        l.w = Some(l.b.arg("w", m.noises.len()));
        let pieces = l.equation_pieces();
        let du = l.b.push(Node::Concat(pieces));
        l.b.output("du", du);
        l.finish()
    });
    let vector_field = match &noise_field {
        Some(f) => {
            let w = f.arg_index("w").expect("the SDE field has w");
            super::noise::zero_arg(f, w, "drift", false)
        }
        None => {
            let mut l = Lower::new(m, &layout, &lags, "vector_field", ArgSet::Dynamics);
            let pieces = l.equation_pieces();
            let du = l.b.push(Node::Concat(pieces));
            l.b.output("du", du);
            l.finish()
        }
    };
    let initial = {
        let mut l = Lower::new(m, &layout, &lags, "initial", ArgSet::Params);
        let mut pieces = Vec::new();
        for s in &m.states {
            let n = s.size();
            let v = if s.init_per_index {
                l.family = Some((0, n));
                let v = l.expr(&s.init);
                l.family = None;
                v
            } else {
                l.expr(&s.init)
            };
            pieces.push(l.fit(v, n));
        }
        let u0 = l.b.push(Node::Concat(pieces));
        l.b.output("u0", u0);
        l.finish()
    };
    let outputs = {
        let mut l = Lower::new(m, &layout, &lags, "outputs", ArgSet::Dynamics);
        if sde {
            // A let with noise may feed an output: the output sees its drift part.
            l.w = Some(l.b.arg("w", m.noises.len()));
        }
        let pieces: Vec<NodeId> = m.outputs.iter().map(|o| l.expr(&o.expr)).collect();
        l.output_or_empty("o", pieces);
        let f = l.finish();
        match f.arg_index("w") {
            Some(w) => super::noise::zero_arg(&f, w, "outputs", false),
            None => f,
        }
    };
    let delays = {
        let mut l = Lower::new(m, &layout, &lags, "delays", ArgSet::Params);
        let pieces: Vec<NodeId> = lags.iter().map(|e| l.expr(e)).collect();
        l.output_or_empty("tau", pieces);
        l.finish()
    };
    let history = {
        let mut l = Lower::new(m, &layout, &lags, "history", ArgSet::TimeParams);
        let mut pieces = Vec::new();
        for (id, s) in m.states.iter().enumerate() {
            let v = match m.histories.iter().find(|h| h.state == id) {
                Some(h) => l.expr(&h.expr),
                // Default: the initial value.
                None if s.init_per_index => {
                    l.family = Some((0, s.size()));
                    let v = l.expr(&s.init);
                    l.family = None;
                    v
                }
                None => l.expr(&s.init),
            };
            pieces.push(l.fit(v, s.size()));
        }
        let u = l.b.push(Node::Concat(pieces));
        l.b.output("u", u);
        l.finish()
    };
    Ok(Lowered {
        vector_field,
        initial,
        outputs,
        delays,
        history,
        layout,
        noise_field,
        calculus: m.calculus,
        sde: None,
    })
}

/// The distinct lag expressions, in order of first appearance.
fn collect_lags(m: &Model) -> Vec<TExpr> {
    let mut lags: Vec<TExpr> = Vec::new();
    let mut f = |e: &TExpr| {
        if let TKind::Delayed { lag, .. } = &e.kind
            && !lags.iter().any(|l| same_expr(l, lag))
        {
            lags.push((**lag).clone());
        }
    };
    for &id in &m.let_order {
        m.lets[id].expr.visit(&mut f);
    }
    for e in &m.equations {
        e.rhs.visit(&mut f);
    }
    for o in &m.outputs {
        o.expr.visit(&mut f);
    }
    lags
}

/// Structural equality ignoring spans.
fn same_expr(a: &TExpr, b: &TExpr) -> bool {
    format!("{:?}", strip(a)) == format!("{:?}", strip(b))
}

fn strip(e: &TExpr) -> TExpr {
    let mut e = e.clone();
    fn go(e: &mut TExpr) {
        e.span = Span::default();
        match &mut e.kind {
            TKind::Delayed { lag, .. } => go(lag),
            TKind::Unary(_, a) | TKind::Sum(a) | TKind::Reshape(a) | TKind::Index(a, _) => go(a),
            TKind::Slice(a, _, _) | TKind::NetCall(_, a) => go(a),
            TKind::Binary(_, a, b)
            | TKind::Compare(_, a, b)
            | TKind::Dot(a, b)
            | TKind::MatVec(a, b) => {
                go(a);
                go(b);
            }
            TKind::Select(c, a, b) => {
                go(c);
                go(a);
                go(b);
            }
            TKind::List(v) => v.iter_mut().for_each(go),
            _ => {}
        }
    }
    go(&mut e);
    e
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum ArgSet {
    /// t, u, p, inputs, lagged states.
    Dynamics,
    /// p only.
    Params,
    /// t and p.
    TimeParams,
}

struct Lower<'m> {
    m: &'m Model,
    layout: &'m ParamLayout,
    lags: &'m [TExpr],
    b: Builder,
    t: Option<NodeId>,
    u: Option<NodeId>,
    p: NodeId,
    inputs: Vec<(NodeId, NodeId)>,
    lag_args: Vec<NodeId>,
    lets: HashMap<LetId, NodeId>,
    /// The noise argument (SDE field only).
    w: Option<NodeId>,
    /// Inside an indexed family: (first index, number of entries).
    family: Option<(i64, usize)>,
}

impl<'m> Lower<'m> {
    fn new(
        m: &'m Model,
        layout: &'m ParamLayout,
        lags: &'m [TExpr],
        name: &str,
        args: ArgSet,
    ) -> Lower<'m> {
        let mut b = Builder::new(name);
        let n = m.state_len();
        let (t, u) = match args {
            ArgSet::Dynamics => (Some(b.arg("t", 1)), Some(b.arg("u", n))),
            ArgSet::TimeParams => (Some(b.arg("t", 1)), None),
            ArgSet::Params => (None, None),
        };
        let p = b.arg("p", layout.len);
        let mut inputs = Vec::new();
        let mut lag_args = Vec::new();
        if args == ArgSet::Dynamics {
            for i in &m.inputs {
                let len = i.len.unwrap_or(1);
                let x = b.arg(&i.name, len);
                let dx = b.arg(&format!("{}'", i.name), len);
                inputs.push((x, dx));
            }
            for k in 0..lags.len() {
                lag_args.push(b.arg(&format!("lag{k}"), n));
            }
        }
        Lower {
            m,
            layout,
            lags,
            b,
            t,
            u,
            p,
            inputs,
            lag_args,
            lets: HashMap::new(),
            w: None,
            family: None,
        }
    }

    fn finish(self) -> Function {
        let f = crate::opt::dce(&self.b.finish());
        debug_assert_eq!(super::validate(&f), Ok(()));
        f
    }

    fn output_or_empty(&mut self, name: &str, pieces: Vec<NodeId>) {
        if pieces.is_empty() {
            // An empty output buffer: declared in the ABI, nothing to compute.
            self.b.output_empty(name);
        } else {
            let v = self.b.push(Node::Concat(pieces));
            self.b.output(name, v);
        }
    }

    /// A value stretched to length `n` (a scalar broadcasts).
    fn fit(&mut self, v: NodeId, n: usize) -> NodeId {
        if self.b.len_of(v) == n {
            v
        } else {
            self.b.push(Node::Broadcast(v, n as u32))
        }
    }

    /// The right sides of all equations, in state order: the pieces of `du`.
    fn equation_pieces(&mut self) -> Vec<NodeId> {
        let mut pieces = Vec::new();
        for eq in &self.m.equations {
            let n = eq.hi - eq.lo;
            let v = if eq.family {
                self.family = Some((eq.lo as i64, n));
                let v = self.expr(&eq.rhs);
                self.family = None;
                v
            } else {
                self.expr(&eq.rhs)
            };
            pieces.push(self.fit(v, n));
        }
        pieces
    }

    fn state_slice(&mut self, buf: NodeId, id: StateId) -> NodeId {
        let s = &self.m.states[id];
        match s.len {
            None => self.b.push(Node::Index {
                v: buf,
                k: s.offset as u32,
            }),
            Some(n) => self.b.push(Node::Gather {
                v: buf,
                start: s.offset as u32,
                stride: 1,
                len: n as u32,
            }),
        }
    }

    fn slice(&mut self, v: NodeId, start: usize, len: usize) -> NodeId {
        self.b.push(Node::Gather {
            v,
            start: start as u32,
            stride: 1,
            len: len as u32,
        })
    }

    fn expr(&mut self, e: &TExpr) -> NodeId {
        let node = match &e.kind {
            TKind::Number(x) => return self.b.constant(*x),
            TKind::Numbers(v) => {
                let parts: Vec<NodeId> = v.iter().map(|x| self.b.constant(*x)).collect();
                Node::Concat(parts)
            }
            TKind::Time => return self.t.expect("sema allows t only where the kernel has it"),
            TKind::Param(id) => Node::Index {
                v: self.p,
                k: *id as u32,
            },
            TKind::State(id) => {
                let u = self.u.expect("sema allows states only in dynamics");
                return self.state_slice(u, *id);
            }
            TKind::Let(id) => {
                if let Some(&v) = self.lets.get(id) {
                    return v;
                }
                let saved = self.family.take();
                let v = self.expr(&self.m.lets[*id].expr);
                self.family = saved;
                self.lets.insert(*id, v);
                return v;
            }
            TKind::Input(id) => return self.inputs[*id].0,
            TKind::InputDeriv(id) => return self.inputs[*id].1,
            TKind::Noise(k) => Node::Index {
                v: self
                    .w
                    .expect("noise is lowered only where the kernel has w"),
                k: *k as u32,
            },
            TKind::Delayed { state, lag } => {
                let k = self
                    .lags
                    .iter()
                    .position(|l| same_expr(l, lag))
                    .expect("every lag was collected");
                let buf = self.lag_args[k];
                return self.state_slice(buf, *state);
            }
            TKind::IndexVar => {
                let (lo, n) = self.family.expect("the index only appears in families");
                Node::Iota {
                    start: lo,
                    len: n as u32,
                }
            }
            TKind::Unary(op, a) => Node::Unary(*op, self.expr(a)),
            TKind::Binary(op, a, b) => Node::Binary(*op, self.expr(a), self.expr(b)),
            TKind::Compare(c, a, b) => Node::Compare(*c, self.expr(a), self.expr(b)),
            TKind::Select(c, a, b) => Node::Select(self.expr(c), self.expr(a), self.expr(b)),
            TKind::Sum(a) => Node::Sum(self.expr(a)),
            TKind::Dot(a, b) => Node::Dot(self.expr(a), self.expr(b)),
            TKind::MatVec(mat, x) => {
                let Shape::Matrix(rows, cols) = mat.shape else {
                    unreachable!("sema types the left of @ as a matrix")
                };
                Node::MatVec {
                    m: self.expr(mat),
                    x: self.expr(x),
                    rows: rows as u32,
                    cols: cols as u32,
                }
            }
            TKind::Reshape(a) => return self.expr(a),
            TKind::Index(v, aff) => {
                let base = self.expr(v);
                match (self.family, aff.a) {
                    (Some((lo, n)), a) if a != 0 => Node::Gather {
                        v: base,
                        start: (a * lo + aff.b) as u32,
                        stride: a as i32,
                        len: n as u32,
                    },
                    _ => Node::Index {
                        v: base,
                        k: aff.b as u32,
                    },
                }
            }
            TKind::Slice(v, lo, hi) => {
                let base = self.expr(v);
                return self.slice(base, *lo, hi - lo);
            }
            TKind::List(items) => Node::Concat(items.iter().map(|x| self.expr(x)).collect()),
            TKind::NetCall(id, x) => return self.net(*id, x),
        };
        self.b.push_at(node, e.span)
    }

    /// A net as whole layers: act(W x + b) per hidden layer, the output layer with act_out.
    fn net(&mut self, id: NetId, x: &TExpr) -> NodeId {
        let net = &self.m.nets[id];
        let block = &self.layout.nets[id];
        let mut h = self.expr(x);
        let last = block.layers.len() - 1;
        for (k, layer) in block.layers.iter().enumerate() {
            let w = self.slice(self.p, layer.weight, layer.rows * layer.cols);
            let bias = self.slice(self.p, layer.bias, layer.rows);
            let wx = self.b.push(Node::MatVec {
                m: w,
                x: h,
                rows: layer.rows as u32,
                cols: layer.cols as u32,
            });
            let z = self.b.push(Node::Binary(Op2::Add, wx, bias));
            let act = if k == last { net.act_out } else { net.act };
            h = match act.func() {
                Some(f) => self.b.push(Node::Unary(f, z)),
                None => z,
            };
        }
        h
    }
}
