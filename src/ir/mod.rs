//! The IR: each kernel is a [`Function`], an arena DAG of [`Node`]s over f64 vectors.
//!
//! Invariants (checked by [`validate`]):
//! - the arena order is a topological order: every child id is smaller than its parent's;
//! - every node has a static length; a length-1 value broadcasts against any length
//!   (scalars are length-1 vectors);
//! - nodes are hash-consed on insertion by [`Builder`], so equal subexpressions are shared.
//!
//! Structure stays whole: a neural layer is one `MatVec` over a slice of the parameter
//! vector, and an indexed family is elementwise vector arithmetic over strided `Gather`s
//! and an `Iota` (so the IR is O(model text), never O(entries)). Owns the node set, the
//! builder, lowering from the checked model, the validator and the text form. It must
//! never evaluate or compile (that is `backend`'s job).

mod builder;
mod lower;
pub mod noise;
mod print;
mod validate;

pub use builder::Builder;
pub use lower::{LowerError, Lowered, ParamBlock, ParamLayout, lower};
pub use validate::validate;

use crate::sema::model::{Cmp, Func1, Op2};
use crate::span::Span;

/// A node's position in its function's arena.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(pub u32);

impl NodeId {
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// One operation. Lengths are in [`Function::lens`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Node {
    /// A constant scalar, stored as its bits so nodes can be hashed.
    Const(u64),
    /// A whole argument buffer (`t`, `u`, `p`, …), by position in [`Function::args`].
    Arg(u32),
    /// `[start, start+1, …, start+len-1]` as f64: the family index.
    Iota {
        start: i64,
        len: u32,
    },
    /// Entry `k` of `v` (a scalar).
    Index {
        v: NodeId,
        k: u32,
    },
    /// Entries `start, start+stride, …` of `v` (`len` of them).
    Gather {
        v: NodeId,
        start: u32,
        stride: i32,
        len: u32,
    },
    /// The pieces one after another.
    Concat(Vec<NodeId>),
    /// A scalar repeated `len` times.
    Broadcast(NodeId, u32),
    Unary(Func1, NodeId),
    Binary(Op2, NodeId, NodeId),
    /// `x^n` by [`crate::math::powi`].
    PowI(NodeId, i32),
    /// 1.0 where the comparison holds, else 0.0.
    Compare(Cmp, NodeId, NodeId),
    /// `a` where `mask != 0`, else `b`.
    Select(NodeId, NodeId, NodeId),
    /// Sum of all entries, in order ([`crate::math::sum`]).
    Sum(NodeId),
    /// Σ a_k b_k, in order.
    Dot(NodeId, NodeId),
    /// `m` (row-major, `rows × cols`) times `x` (length `cols`); length `rows`.
    MatVec {
        m: NodeId,
        x: NodeId,
        rows: u32,
        cols: u32,
    },
    /// The transpose product `mᵀ y` (`m` row-major `rows × cols`, `y` length `rows`);
    /// length `cols`. Entry j accumulates over rows in order (reverse mode of `MatVec`).
    MatTVec {
        m: NodeId,
        y: NodeId,
        rows: u32,
        cols: u32,
    },
    /// The outer product `a bᵀ`, row-major: entry `r*|b| + c` is `a[r]*b[c]`.
    Outer(NodeId, NodeId),
}

impl Node {
    pub fn constant(x: f64) -> Node {
        Node::Const(x.to_bits())
    }

    pub fn as_const(&self) -> Option<f64> {
        match self {
            Node::Const(b) => Some(f64::from_bits(*b)),
            _ => None,
        }
    }

    /// The node's operands, in order.
    pub fn children(&self) -> Vec<NodeId> {
        match self {
            Node::Const(_) | Node::Arg(_) | Node::Iota { .. } => vec![],
            Node::Index { v, .. } | Node::Gather { v, .. } => vec![*v],
            Node::Concat(parts) => parts.clone(),
            Node::Broadcast(x, _) | Node::Unary(_, x) | Node::PowI(x, _) | Node::Sum(x) => vec![*x],
            Node::Binary(_, a, b) | Node::Compare(_, a, b) | Node::Dot(a, b) => vec![*a, *b],
            Node::MatVec { m, x, .. } => vec![*m, *x],
            Node::MatTVec { m, y, .. } => vec![*m, *y],
            Node::Outer(a, b) => vec![*a, *b],
            Node::Select(c, a, b) => vec![*c, *a, *b],
        }
    }

    /// The same operation over other operands (`f` maps each child).
    pub fn map_children(&self, mut f: impl FnMut(NodeId) -> NodeId) -> Node {
        match self {
            Node::Const(_) | Node::Arg(_) | Node::Iota { .. } => self.clone(),
            Node::Index { v, k } => Node::Index { v: f(*v), k: *k },
            Node::Gather {
                v,
                start,
                stride,
                len,
            } => Node::Gather {
                v: f(*v),
                start: *start,
                stride: *stride,
                len: *len,
            },
            Node::Concat(parts) => Node::Concat(parts.iter().map(|p| f(*p)).collect()),
            Node::Broadcast(x, n) => Node::Broadcast(f(*x), *n),
            Node::Unary(op, x) => Node::Unary(*op, f(*x)),
            Node::Binary(op, a, b) => Node::Binary(*op, f(*a), f(*b)),
            Node::PowI(x, n) => Node::PowI(f(*x), *n),
            Node::Compare(c, a, b) => Node::Compare(*c, f(*a), f(*b)),
            Node::Select(c, a, b) => Node::Select(f(*c), f(*a), f(*b)),
            Node::Sum(x) => Node::Sum(f(*x)),
            Node::Dot(a, b) => Node::Dot(f(*a), f(*b)),
            Node::MatVec { m, x, rows, cols } => Node::MatVec {
                m: f(*m),
                x: f(*x),
                rows: *rows,
                cols: *cols,
            },
            Node::MatTVec { m, y, rows, cols } => Node::MatTVec {
                m: f(*m),
                y: f(*y),
                rows: *rows,
                cols: *cols,
            },
            Node::Outer(a, b) => Node::Outer(f(*a), f(*b)),
        }
    }
}

/// An input or output buffer of a kernel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Buffer {
    pub name: String,
    pub len: usize,
}

/// One kernel: `outputs = f(args)` over f64 buffers of fixed lengths.
#[derive(Clone, Debug, PartialEq)]
pub struct Function {
    pub name: String,
    pub args: Vec<Buffer>,
    /// Output buffers and the node each one holds.
    pub outputs: Vec<(Buffer, NodeId)>,
    pub nodes: Vec<Node>,
    /// Length of each node's value.
    pub lens: Vec<u32>,
    /// Source span of each node (default for synthetic nodes).
    pub spans: Vec<Span>,
}

impl Function {
    pub fn node(&self, id: NodeId) -> &Node {
        &self.nodes[id.index()]
    }
    pub fn len_of(&self, id: NodeId) -> usize {
        self.lens[id.index()] as usize
    }
    pub fn arg_index(&self, name: &str) -> Option<usize> {
        self.args.iter().position(|a| a.name == name)
    }
    /// The text form (stable; used in snapshots and `--emit ir`).
    pub fn to_text(&self) -> String {
        print::function(self)
    }
    /// How many uses each node has (outputs count as uses).
    pub fn use_counts(&self) -> Vec<u32> {
        let mut uses = vec![0u32; self.nodes.len()];
        for n in &self.nodes {
            for c in n.children() {
                uses[c.index()] += 1;
            }
        }
        for (_, id) in &self.outputs {
            uses[id.index()] += 1;
        }
        uses
    }
}
