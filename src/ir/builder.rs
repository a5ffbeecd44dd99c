//! Building a [`Function`]: hash-consing, length inference, IEEE-safe constant folding
//! and structural simplification (gathers of gathers, indices of concatenations, …).
//!
//! Folding never changes a result bit: `x*1 → x` and `x-0 → x` hold for every f64
//! (NaN and signed zeros included); `x*0` and `x+0` are left alone.

use super::{Buffer, Function, Node, NodeId};
use crate::math;
use crate::sema::model::Op2;
use crate::span::Span;
use std::collections::HashMap;

pub struct Builder {
    f: Function,
    dedup: HashMap<Node, NodeId>,
}

impl Builder {
    pub fn new(name: impl Into<String>) -> Builder {
        Builder {
            f: Function {
                name: name.into(),
                args: Vec::new(),
                outputs: Vec::new(),
                nodes: Vec::new(),
                lens: Vec::new(),
                spans: Vec::new(),
            },
            dedup: HashMap::new(),
        }
    }

    /// Declares an argument buffer and returns the node that reads it whole.
    pub fn arg(&mut self, name: &str, len: usize) -> NodeId {
        let i = match self.f.arg_index(name) {
            Some(i) => i,
            None => {
                self.f.args.push(Buffer {
                    name: name.to_string(),
                    len,
                });
                self.f.args.len() - 1
            }
        };
        self.push(Node::Arg(i as u32))
    }

    pub fn output(&mut self, name: &str, node: NodeId) {
        let len = self.f.len_of(node);
        self.f.outputs.push((
            Buffer {
                name: name.to_string(),
                len,
            },
            node,
        ));
    }

    /// Declares an output buffer of length 0 (a kernel with nothing to compute).
    pub fn output_empty(&mut self, name: &str) {
        let z = self.push(Node::Concat(Vec::new()));
        self.output(name, z);
    }

    pub fn len_of(&self, id: NodeId) -> usize {
        self.f.len_of(id)
    }

    pub fn node(&self, id: NodeId) -> &Node {
        self.f.node(id)
    }

    pub fn constant(&mut self, x: f64) -> NodeId {
        self.push(Node::constant(x))
    }

    pub fn finish(self) -> Function {
        self.f
    }

    /// Adds a node (or finds the equal one already there), folding and simplifying.
    pub fn push(&mut self, node: Node) -> NodeId {
        self.push_at(node, Span::default())
    }

    pub fn push_at(&mut self, node: Node, span: Span) -> NodeId {
        let node = match self.simplify(node) {
            Ok(existing) => return existing,
            Err(n) => n,
        };
        if let Some(&id) = self.dedup.get(&node) {
            return id;
        }
        let len = self.infer_len(&node);
        let id = NodeId(self.f.nodes.len() as u32);
        self.f.nodes.push(node.clone());
        self.f.lens.push(len as u32);
        self.f.spans.push(span);
        self.dedup.insert(node, id);
        id
    }

    fn infer_len(&self, node: &Node) -> usize {
        let l = |id: &NodeId| self.f.len_of(*id);
        match node {
            Node::Const(_) | Node::Index { .. } | Node::Sum(_) | Node::Dot(..) => 1,
            Node::Arg(i) => self.f.args[*i as usize].len,
            Node::Iota { len, .. } | Node::Gather { len, .. } | Node::Broadcast(_, len) => {
                *len as usize
            }
            Node::Concat(parts) => parts.iter().map(l).sum(),
            Node::Unary(_, x) | Node::PowI(x, _) => l(x),
            Node::Binary(_, a, b) | Node::Compare(_, a, b) => l(a).max(l(b)),
            Node::Select(c, a, b) => l(c).max(l(a)).max(l(b)),
            Node::MatVec { rows, .. } => *rows as usize,
            Node::MatTVec { cols, .. } => *cols as usize,
            Node::Outer(a, b) => l(a) * l(b),
        }
    }

    fn konst(&self, id: NodeId) -> Option<f64> {
        self.f.node(id).as_const()
    }

    /// `Ok(id)` when the node reduces to an existing or new simpler node; `Err(node)` to
    /// insert it as it is (possibly rewritten).
    fn simplify(&mut self, node: Node) -> Result<NodeId, Node> {
        match node {
            Node::Unary(op, x) => {
                if let Some(c) = self.konst(x) {
                    return Ok(self.constant(math::apply1(op, c)));
                }
                if op == crate::sema::model::Func1::Neg
                    && let Node::Unary(crate::sema::model::Func1::Neg, inner) = *self.f.node(x)
                {
                    return Ok(inner);
                }
                Err(node)
            }
            Node::Binary(op, a, b) => {
                if let (Some(x), Some(y)) = (self.konst(a), self.konst(b)) {
                    let v = match op {
                        Op2::Pow => math::pow_const(x, y),
                        _ => math::apply2(op, x, y),
                    };
                    return Ok(self.constant(v));
                }
                // A compile-time integer exponent means binary powering (see `math::pow_const`).
                if let (Op2::Pow, Some(e)) = (op, self.konst(b))
                    && let (Some(n), true) = (math::as_powi_exponent(e), self.f.len_of(b) == 1)
                {
                    return Ok(self.push(Node::PowI(a, n)));
                }
                let (la, lb) = (self.f.len_of(a), self.f.len_of(b));
                let kb = self.konst(b);
                let ka = self.konst(a);
                match op {
                    Op2::Mul if kb == Some(1.0) && la >= lb => return Ok(a),
                    Op2::Mul if ka == Some(1.0) && lb >= la => return Ok(b),
                    Op2::Div if kb == Some(1.0) && la >= lb => return Ok(a),
                    Op2::Sub
                        if kb.is_some_and(|z| z == 0.0 && z.is_sign_positive()) && la >= lb =>
                    {
                        return Ok(a);
                    }
                    Op2::Add
                        if kb.is_some_and(|z| z == 0.0 && z.is_sign_negative()) && la >= lb =>
                    {
                        return Ok(a);
                    }
                    _ => {}
                }
                Err(node)
            }
            Node::PowI(x, n) => {
                if let Some(c) = self.konst(x) {
                    return Ok(self.constant(math::powi(c, n)));
                }
                if n == 1 {
                    return Ok(x);
                }
                Err(node)
            }
            Node::Compare(c, a, b) => match (self.konst(a), self.konst(b)) {
                (Some(x), Some(y)) => Ok(self.constant(math::compare(c, x, y))),
                _ => Err(node),
            },
            Node::Select(c, a, b) => match self.konst(c) {
                Some(m) if self.f.len_of(a) == self.f.len_of(b) => Ok(if m != 0.0 { a } else { b }),
                _ => Err(node),
            },
            Node::Index { v, k } => self.simplify_index(v, k).ok_or(node),
            Node::Gather {
                v,
                start,
                stride,
                len,
            } => self.simplify_gather(v, start, stride, len),
            Node::Broadcast(x, n) => {
                if n == 1 {
                    return Ok(x);
                }
                Err(node)
            }
            Node::Concat(parts) => {
                let mut flat = Vec::with_capacity(parts.len());
                for p in parts {
                    match self.f.node(p) {
                        Node::Concat(inner) => flat.extend(inner.iter().copied()),
                        _ => flat.push(p),
                    }
                }
                if flat.len() == 1 {
                    return Ok(flat[0]);
                }
                if let Some(v) = self.contiguous_gathers(&flat) {
                    return Ok(v);
                }
                Err(Node::Concat(flat))
            }
            other => Err(other),
        }
    }

    fn simplify_index(&mut self, v: NodeId, k: u32) -> Option<NodeId> {
        if self.f.len_of(v) == 1 && k == 0 {
            return Some(v);
        }
        match self.f.node(v).clone() {
            Node::Gather {
                v: base,
                start,
                stride,
                ..
            } => {
                let k2 = start as i64 + stride as i64 * k as i64;
                Some(self.push(Node::Index {
                    v: base,
                    k: k2 as u32,
                }))
            }
            Node::Broadcast(x, _) => Some(x),
            Node::Iota { start, .. } => Some(self.constant((start + k as i64) as f64)),
            Node::Concat(parts) => {
                let mut off = 0u32;
                for p in parts {
                    let n = self.f.len_of(p) as u32;
                    if k < off + n {
                        return Some(self.push(Node::Index { v: p, k: k - off }));
                    }
                    off += n;
                }
                None
            }
            _ => None,
        }
    }

    fn simplify_gather(
        &mut self,
        v: NodeId,
        start: u32,
        stride: i32,
        len: u32,
    ) -> Result<NodeId, Node> {
        if len == 0 {
            return Ok(self.push(Node::Concat(Vec::new())));
        }
        if len == 1 {
            return Ok(self.push(Node::Index { v, k: start }));
        }
        if start == 0 && stride == 1 && len as usize == self.f.len_of(v) {
            return Ok(v);
        }
        match self.f.node(v).clone() {
            Node::Gather {
                v: base,
                start: s0,
                stride: st0,
                ..
            } => {
                let start2 = s0 as i64 + st0 as i64 * start as i64;
                let stride2 = st0 as i64 * stride as i64;
                Ok(self.push(Node::Gather {
                    v: base,
                    start: start2 as u32,
                    stride: stride2 as i32,
                    len,
                }))
            }
            Node::Broadcast(x, _) => Ok(self.push(Node::Broadcast(x, len))),
            Node::Iota { start: s0, .. } if stride == 1 => Ok(self.push(Node::Iota {
                start: s0 + start as i64,
                len,
            })),
            Node::Concat(parts) if stride == 1 => {
                // A slice that falls inside one piece is a slice of that piece.
                let mut off = 0u32;
                for p in parts {
                    let n = self.f.len_of(p) as u32;
                    if start >= off && start + len <= off + n {
                        return Ok(self.push(Node::Gather {
                            v: p,
                            start: start - off,
                            stride: 1,
                            len,
                        }));
                    }
                    off += n;
                }
                Err(Node::Gather {
                    v,
                    start,
                    stride,
                    len,
                })
            }
            _ => Err(Node::Gather {
                v,
                start,
                stride,
                len,
            }),
        }
    }

    /// Pieces that are consecutive unit-stride slices of one vector form one slice.
    fn contiguous_gathers(&mut self, parts: &[NodeId]) -> Option<NodeId> {
        let mut base: Option<NodeId> = None;
        let mut first = 0i64;
        let mut next = 0i64;
        for (i, p) in parts.iter().enumerate() {
            let (b, s, n) = match *self.f.node(*p) {
                Node::Gather {
                    v,
                    start,
                    stride: 1,
                    len,
                } => (v, start as i64, len as i64),
                Node::Index { v, k } => (v, k as i64, 1),
                _ => return None,
            };
            if i == 0 {
                base = Some(b);
                first = s;
            } else if base != Some(b) || s != next {
                return None;
            }
            next = s + n;
        }
        let base = base?;
        let len = (next - first) as u32;
        Some(self.push(Node::Gather {
            v: base,
            start: first as u32,
            stride: 1,
            len,
        }))
    }
}
