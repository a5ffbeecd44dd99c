//! The checked model: every name resolved, every constant evaluated, every expression
//! typed with a static shape. This is pure data, the only thing `ir::lower` reads.

use crate::span::Span;

pub type ParamId = usize;
pub type StateId = usize;
pub type LetId = usize;
pub type NetId = usize;
pub type NoiseId = usize;
pub type InputId = usize;

/// The static shape of a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Shape {
    Scalar,
    Vector(usize),
    Matrix(usize, usize),
    /// The result of a comparison; only `ifelse` consumes it. Its length is 1 for a
    /// scalar comparison and n for an elementwise one.
    Mask(usize),
}

impl Shape {
    #[allow(clippy::len_without_is_empty)] // a shape's entry count; emptiness is not a question asked
    pub fn len(self) -> usize {
        match self {
            Shape::Scalar => 1,
            Shape::Vector(n) | Shape::Mask(n) => n,
            Shape::Matrix(r, c) => r * c,
        }
    }
    pub fn describe(self) -> String {
        match self {
            Shape::Scalar => "a scalar".to_string(),
            Shape::Vector(n) => format!("a vector of length {n}"),
            Shape::Matrix(r, c) => format!("a {r}×{c} matrix"),
            Shape::Mask(_) => "a comparison".to_string(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Func1 {
    Neg,
    Exp,
    Log,
    Sqrt,
    Sin,
    Cos,
    Tan,
    Tanh,
    Sigmoid,
    Softplus,
    Relu,
    Abs,
}

impl Func1 {
    pub const NAMED: [(&'static str, Func1); 11] = [
        ("exp", Func1::Exp),
        ("log", Func1::Log),
        ("sqrt", Func1::Sqrt),
        ("sin", Func1::Sin),
        ("cos", Func1::Cos),
        ("tan", Func1::Tan),
        ("tanh", Func1::Tanh),
        ("sigmoid", Func1::Sigmoid),
        ("softplus", Func1::Softplus),
        ("relu", Func1::Relu),
        ("abs", Func1::Abs),
    ];
    pub fn name(self) -> &'static str {
        match self {
            Func1::Neg => "neg",
            f => Func1::NAMED
                .iter()
                .find(|(_, g)| *g == f)
                .map_or("?", |(n, _)| n),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op2 {
    Add,
    Sub,
    Mul,
    Div,
    Pow,
    Min,
    Max,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Cmp {
    Lt,
    Le,
    Gt,
    Ge,
}

/// An activation of a neural layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Activation {
    Tanh,
    Sigmoid,
    Softplus,
    Relu,
    Identity,
}

impl Activation {
    pub const ALL: [(&'static str, Activation); 5] = [
        ("tanh", Activation::Tanh),
        ("sigmoid", Activation::Sigmoid),
        ("softplus", Activation::Softplus),
        ("relu", Activation::Relu),
        ("identity", Activation::Identity),
    ];
    pub fn from_name(s: &str) -> Option<Activation> {
        Activation::ALL
            .iter()
            .find(|(n, _)| *n == s)
            .map(|(_, a)| *a)
    }
    pub fn name(self) -> &'static str {
        Activation::ALL
            .iter()
            .find(|(_, a)| *a == self)
            .map_or("?", |(n, _)| n)
    }
    /// The elementwise function it applies (`None` for identity).
    pub fn func(self) -> Option<Func1> {
        match self {
            Activation::Tanh => Some(Func1::Tanh),
            Activation::Sigmoid => Some(Func1::Sigmoid),
            Activation::Softplus => Some(Func1::Softplus),
            Activation::Relu => Some(Func1::Relu),
            Activation::Identity => None,
        }
    }
}

/// An index into a vector: `a*i + b` where `i` is the family index (a = 0 outside families).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Affine {
    pub a: i64,
    pub b: i64,
}

impl Affine {
    pub fn constant(b: i64) -> Affine {
        Affine { a: 0, b }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct TExpr {
    pub kind: TKind,
    pub shape: Shape,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum TKind {
    Number(f64),
    /// A constant vector (from a const list).
    Numbers(Vec<f64>),
    Time,
    Param(ParamId),
    State(StateId),
    Let(LetId),
    Input(InputId),
    InputDeriv(InputId),
    Noise(NoiseId),
    /// The state's value at `t - lag`.
    Delayed {
        state: StateId,
        lag: Box<TExpr>,
    },
    /// The family index `i` used as a number.
    IndexVar,
    Unary(Func1, Box<TExpr>),
    Binary(Op2, Box<TExpr>, Box<TExpr>),
    Compare(Cmp, Box<TExpr>, Box<TExpr>),
    Select(Box<TExpr>, Box<TExpr>, Box<TExpr>),
    Sum(Box<TExpr>),
    Dot(Box<TExpr>, Box<TExpr>),
    MatVec(Box<TExpr>, Box<TExpr>),
    /// A vector viewed as a row-major matrix (the shape says which).
    Reshape(Box<TExpr>),
    Index(Box<TExpr>, Affine),
    Slice(Box<TExpr>, usize, usize),
    /// Concatenation of scalars and vectors.
    List(Vec<TExpr>),
    NetCall(NetId, Box<TExpr>),
}

impl TExpr {
    /// Does the expression depend on the family index?
    pub fn uses_index(&self) -> bool {
        let mut found = false;
        self.visit(&mut |e| {
            if matches!(e.kind, TKind::IndexVar) || matches!(e.kind, TKind::Index(_, a) if a.a != 0)
            {
                found = true;
            }
        });
        found
    }

    /// Calls `f` on every node, children first (left to right), with an explicit stack:
    /// it runs on any thread, however deep the tree (up to `limits::MAX_NESTING`).
    pub fn visit(&self, f: &mut dyn FnMut(&TExpr)) {
        let mut stack: Vec<(&TExpr, bool)> = vec![(self, false)];
        while let Some((e, expanded)) = stack.pop() {
            if expanded {
                f(e);
                continue;
            }
            stack.push((e, true));
            let before = stack.len();
            e.for_each_child(&mut |c| stack.push((c, false)));
            stack[before..].reverse();
        }
    }

    /// The direct children, left to right.
    fn for_each_child<'s>(&'s self, f: &mut dyn FnMut(&'s TExpr)) {
        match &self.kind {
            TKind::Delayed { lag: a, .. }
            | TKind::Unary(_, a)
            | TKind::Sum(a)
            | TKind::Reshape(a)
            | TKind::Index(a, _)
            | TKind::Slice(a, _, _)
            | TKind::NetCall(_, a) => f(a),
            TKind::Binary(_, a, b)
            | TKind::Compare(_, a, b)
            | TKind::Dot(a, b)
            | TKind::MatVec(a, b) => {
                f(a);
                f(b);
            }
            TKind::Select(c, a, b) => {
                f(c);
                f(a);
                f(b);
            }
            TKind::List(v) => v.iter().for_each(f),
            _ => {}
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct ConstDef {
    pub name: String,
    pub value: Vec<f64>,
    /// A scalar const has `is_vector == false` and one value.
    pub is_vector: bool,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ParamDef {
    pub name: String,
    pub default: f64,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct StateDef {
    pub name: String,
    /// `None` for a scalar state.
    pub len: Option<usize>,
    /// Position of its first entry in the flat state vector.
    pub offset: usize,
    /// The initial value: a scalar (broadcast), a vector of the state's length, or a
    /// scalar in the family index (`… for i in 0..N`, `per_index`).
    pub init: TExpr,
    pub init_per_index: bool,
    pub span: Span,
}

impl StateDef {
    pub fn size(&self) -> usize {
        self.len.unwrap_or(1)
    }
    /// The column names of its entries: `x`, or `u[0]`, `u[1]`, ….
    pub fn entry_names(&self) -> Vec<String> {
        match self.len {
            None => vec![self.name.clone()],
            Some(n) => (0..n).map(|k| format!("{}[{k}]", self.name)).collect(),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct LetDef {
    pub name: String,
    pub expr: TExpr,
    pub span: Span,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InitKind {
    Glorot,
    He,
}

#[derive(Clone, Debug, PartialEq)]
pub struct NetDef {
    pub name: String,
    /// Layer widths, input first: `2 -> 16 -> 2` is `[2, 16, 2]`.
    pub layers: Vec<usize>,
    pub act: Activation,
    pub act_out: Activation,
    pub init: InitKind,
    pub seed: u64,
    pub span: Span,
}

impl NetDef {
    /// Number of weights and biases.
    pub fn param_count(&self) -> usize {
        self.layers.windows(2).map(|w| w[0] * w[1] + w[1]).sum()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Calculus {
    Ito,
    Stratonovich,
}

#[derive(Clone, Debug, PartialEq)]
pub struct NoiseDef {
    pub name: String,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct InputDef {
    pub name: String,
    pub len: Option<usize>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct OutputDef {
    pub name: String,
    pub expr: TExpr,
    pub span: Span,
}

impl OutputDef {
    pub fn entry_names(&self) -> Vec<String> {
        match self.expr.shape {
            Shape::Vector(n) => (0..n).map(|k| format!("{}[{k}]", self.name)).collect(),
            _ => vec![self.name.clone()],
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct HistoryDef {
    pub state: StateId,
    pub expr: TExpr,
    pub span: Span,
}

/// The equations defining entries `lo..hi` of one state.
#[derive(Clone, Debug, PartialEq)]
pub struct EquationDef {
    pub state: StateId,
    pub lo: usize,
    pub hi: usize,
    /// `u[i]' = … for i in lo..hi`: `rhs` is a scalar in the index `i`.
    pub family: bool,
    pub rhs: TExpr,
    pub span: Span,
}

/// Defaults from the `solve { … }` block.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct SolveDefaults {
    pub t0: Option<f64>,
    pub t1: Option<f64>,
    pub method: Option<String>,
    pub rtol: Option<f64>,
    pub atol: Option<Vec<f64>>,
    pub saveat: Option<f64>,
    pub dt: Option<f64>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Model {
    pub name: String,
    pub consts: Vec<ConstDef>,
    pub params: Vec<ParamDef>,
    pub states: Vec<StateDef>,
    /// Indexed by `LetId` (declaration order).
    pub lets: Vec<LetDef>,
    /// Let ids in dependency order: a let only refers to lets before it here.
    pub let_order: Vec<LetId>,
    pub nets: Vec<NetDef>,
    pub calculus: Calculus,
    pub noises: Vec<NoiseDef>,
    pub inputs: Vec<InputDef>,
    pub outputs: Vec<OutputDef>,
    pub histories: Vec<HistoryDef>,
    /// Sorted by state, then by first entry.
    pub equations: Vec<EquationDef>,
    pub solve: SolveDefaults,
}

impl Model {
    /// Total number of scalar state entries.
    pub fn state_len(&self) -> usize {
        self.states.iter().map(StateDef::size).sum()
    }
    /// State entries plus params plus net weights, counted in u64 (each is below 2^30, but
    /// their sum need not be).
    pub fn entry_count(&self) -> u64 {
        let states: u64 = self.states.iter().map(|s| s.size() as u64).sum();
        let nets: u64 = self.nets.iter().map(|n| n.param_count() as u64).sum();
        states + nets + self.params.len() as u64
    }
    pub fn is_sde(&self) -> bool {
        !self.noises.is_empty()
    }
    pub fn has_delays(&self) -> bool {
        let mut found = false;
        let mut f = |e: &TExpr| found |= matches!(e.kind, TKind::Delayed { .. });
        self.lets.iter().for_each(|l| l.expr.visit(&mut f));
        self.equations.iter().for_each(|q| q.rhs.visit(&mut f));
        self.outputs.iter().for_each(|o| o.expr.visit(&mut f));
        found
    }
    /// Column names of the state entries, in declaration order.
    pub fn state_names(&self) -> Vec<String> {
        self.states.iter().flat_map(StateDef::entry_names).collect()
    }
    pub fn output_names(&self) -> Vec<String> {
        self.outputs
            .iter()
            .flat_map(OutputDef::entry_names)
            .collect()
    }
    /// The columns of a trajectory row after `t`: state entries, then output entries.
    pub fn row_names(&self) -> Vec<String> {
        let mut names = self.state_names();
        names.extend(self.output_names());
        names
    }
}

/// Dropped with an explicit stack, not by recursion: a tree as deep as `MAX_NESTING`
/// must not overflow the stack of whichever thread lets go of the model.
impl Drop for TExpr {
    fn drop(&mut self) {
        let mut stack = Vec::new();
        self.kind.take_children(&mut stack);
        while let Some(mut e) = stack.pop() {
            e.kind.take_children(&mut stack);
        }
    }
}

impl TKind {
    /// Moves every child out (leaving leaves in their place) onto `out`.
    fn take_children(&mut self, out: &mut Vec<TExpr>) {
        let mut take = |b: &mut Box<TExpr>| {
            if !b.kind.is_leaf() {
                out.push(std::mem::replace(&mut **b, TExpr::leaf()));
            }
        };
        match self {
            TKind::Delayed { lag: a, .. }
            | TKind::Unary(_, a)
            | TKind::Sum(a)
            | TKind::Reshape(a)
            | TKind::Index(a, _)
            | TKind::Slice(a, _, _)
            | TKind::NetCall(_, a) => take(a),
            TKind::Binary(_, a, b)
            | TKind::Compare(_, a, b)
            | TKind::Dot(a, b)
            | TKind::MatVec(a, b) => {
                take(a);
                take(b);
            }
            TKind::Select(a, b, c) => {
                take(a);
                take(b);
                take(c);
            }
            TKind::List(items) => out.append(items),
            _ => {}
        }
    }

    fn is_leaf(&self) -> bool {
        match self {
            TKind::List(items) => items.is_empty(),
            k => !matches!(
                k,
                TKind::Delayed { .. }
                    | TKind::Unary(..)
                    | TKind::Sum(_)
                    | TKind::Reshape(_)
                    | TKind::Index(..)
                    | TKind::Slice(..)
                    | TKind::NetCall(..)
                    | TKind::Binary(..)
                    | TKind::Compare(..)
                    | TKind::Dot(..)
                    | TKind::MatVec(..)
                    | TKind::Select(..)
            ),
        }
    }
}

impl TExpr {
    /// A childless placeholder (what a dropped node's children are swapped with).
    fn leaf() -> TExpr {
        TExpr {
            kind: TKind::Time,
            shape: Shape::Scalar,
            span: Span::default(),
        }
    }
}
