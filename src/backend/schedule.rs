//! Where each node of a [`Function`] lives when compiled: the backend-neutral part of code
//! generation, shared by every compiling back end (Cranelift now, CUDA later).
//!
//! Every node gets a [`Place`]:
//! - length-1 nodes are scalars (one register value, computed once, loop invariant);
//! - `Arg` vectors are read from their argument buffer;
//! - elementwise chains, `Gather`, `Iota` and `Broadcast` are normally *fused*: computed
//!   lane by lane inside the loop (or unrolled sequence) of the consumer that reads them;
//! - a vector is *materialised* when it is used more than once, is an output, is the source
//!   of a `Gather` or the `x` of a `MatVec` (read many times), is a `MatVec` with long rows,
//!   or is a `Concat` read at a run-time index. A materialised vector of length
//!   `<= unroll` is kept as [`Place::Lanes`] (one register value per entry, computed by an
//!   unrolled sequence) and gets memory only when it must be read at a run-time index or is an
//!   output; a longer one lives in [`Place::Mem`]: a scratch slot, the output buffer it is
//!   (the first output holding it), or its range inside the `Concat` that is its only user
//!   (so `Concat` pieces are written straight into the destination).
//!
//! Loops: a consumer evaluates its operands at a run-time index ("dynamic") when its loop is
//! not unrolled, i.e. when its length is above `unroll`. [`Schedule::dynamic`] records
//! which nodes are read at a run-time index somewhere.

use crate::ir::{Function, Node, NodeId};

/// Vectors up to this length are unrolled instead of looped.
pub const UNROLL: usize = 8;

/// A buffer a materialised vector is written to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Buf {
    /// The caller's scratch buffer.
    Scratch,
    /// Output buffer `i` (in the order of [`Function::outputs`]).
    Output(u32),
}

/// A position in a buffer (in f64 entries).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Slot {
    pub buf: Buf,
    pub offset: usize,
}

impl Slot {
    pub fn at(self, k: usize) -> Slot {
        Slot {
            buf: self.buf,
            offset: self.offset + k,
        }
    }
}

/// Where a node's value lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Place {
    /// Length 0: nothing to compute.
    Empty,
    /// Length 1: one value, computed once at its position in arena order.
    Scalar,
    /// A whole argument buffer.
    Arg(u32),
    /// Computed lane by lane wherever it is read (never stored).
    Fused,
    /// Computed at its position, one value per entry (length `<= unroll`); also stored to the
    /// slot when there is one (an output, or read at a run-time index).
    Lanes(Option<Slot>),
    /// Computed at its position by a loop into this slot.
    Mem(Slot),
}

/// The placement of every node of one function.
#[derive(Clone, Debug)]
pub struct Schedule {
    pub places: Vec<Place>,
    /// Whether a node is read at a run-time index somewhere.
    pub dynamic: Vec<bool>,
    /// f64 entries of scratch memory the function needs.
    pub scratch_len: usize,
    /// The unrolling threshold used.
    pub unroll: usize,
}

impl Schedule {
    pub fn place(&self, id: NodeId) -> Place {
        self.places[id.index()]
    }

    /// The memory slot of a node, if it has one.
    pub fn slot(&self, id: NodeId) -> Option<Slot> {
        match self.places[id.index()] {
            Place::Mem(s) => Some(s),
            Place::Lanes(s) => s,
            _ => None,
        }
    }
}

/// Nodes that are cheap to read at any index without being stored: argument buffers,
/// index ranges, broadcasts, strided views and scalars.
fn is_view(f: &Function, id: NodeId) -> bool {
    f.len_of(id) <= 1
        || matches!(
            f.node(id),
            Node::Arg(_)
                | Node::Iota { .. }
                | Node::Broadcast(..)
                | Node::Gather { .. }
                | Node::Const(_)
        )
}

/// Makes `id` contiguous in memory (a large layer's operand, passed to the routine by
/// address): unit-stride views of an argument already are; anything else gets a slot.
fn in_memory(f: &Function, id: NodeId, need_mem: &mut [bool], dynamic: &mut [bool]) {
    fn unit_view(f: &Function, id: NodeId) -> bool {
        match f.node(id) {
            Node::Arg(_) => true,
            Node::Gather { v, stride: 1, .. } => unit_view(f, *v),
            _ => false,
        }
    }
    if !unit_view(f, id) {
        need_mem[id.index()] = true;
        dynamic[id.index()] = true;
    }
}

/// Places every node of `f`, unrolling vectors (and loops) of length `<= unroll`.
pub fn schedule(f: &Function, unroll: usize) -> Schedule {
    let n = f.nodes.len();
    let unroll = unroll.max(1);
    let uses = f.use_counts();
    // The last (and, for single-use nodes, only) consumer of each node.
    let mut consumer: Vec<Option<NodeId>> = vec![None; n];
    for (i, node) in f.nodes.iter().enumerate() {
        for c in node.children() {
            consumer[c.index()] = Some(NodeId(i as u32));
        }
    }
    let mut output_of: Vec<Option<u32>> = vec![None; n];
    for (o, (_, id)) in f.outputs.iter().enumerate().rev() {
        output_of[id.index()] = Some(o as u32);
    }
    let mut dynamic = vec![false; n];
    let mut need_mem = vec![false; n];
    for (_, id) in &f.outputs {
        if f.len_of(*id) > unroll {
            dynamic[id.index()] = true;
        }
    }
    let mut places = vec![Place::Empty; n];
    let mut scratch_len = 0usize;
    let mut alloc = |len: usize| {
        let s = Slot {
            buf: Buf::Scratch,
            offset: scratch_len,
        };
        scratch_len += len;
        s
    };

    for i in (0..n).rev() {
        let id = NodeId(i as u32);
        let node = f.node(id);
        let len = f.len_of(id);
        let place = if len == 0 {
            Place::Empty
        } else if len == 1 {
            Place::Scalar
        } else {
            match node {
                Node::Arg(k) => Place::Arg(*k),
                // Views are computed where they are read, unless a large layer needs
                // them contiguous in memory (see `in_memory`).
                Node::Iota { .. } | Node::Broadcast(..) | Node::Gather { .. } if !need_mem[i] => {
                    Place::Fused
                }
                _ => {
                    let materialise = output_of[i].is_some()
                        || uses[i] > 1
                        || need_mem[i]
                        || (matches!(node, Node::Concat(_)) && dynamic[i])
                        || matches!(node, Node::MatVec { cols, .. } if *cols as usize > unroll)
                        || matches!(node, Node::MatTVec { rows, .. } if *rows as usize > unroll)
                        || matches!(node, Node::Outer(..));
                    if !materialise {
                        Place::Fused
                    } else if len <= unroll {
                        let slot = match output_of[i] {
                            Some(o) => Some(Slot {
                                buf: Buf::Output(o),
                                offset: 0,
                            }),
                            None if dynamic[i] => Some(alloc(len)),
                            None => None,
                        };
                        Place::Lanes(slot)
                    } else {
                        let slot = match output_of[i] {
                            Some(o) => Slot {
                                buf: Buf::Output(o),
                                offset: 0,
                            },
                            None => concat_range(f, &places, &uses, &consumer, id)
                                .unwrap_or_else(|| alloc(len)),
                        };
                        Place::Mem(slot)
                    }
                }
            }
        };
        places[i] = place;

        // What this node's evaluation asks of its operands.
        let lanes_dyn = match place {
            Place::Mem(_) => true,
            Place::Fused => dynamic[i],
            _ => false,
        };
        match node {
            Node::MatTVec { m, y, rows, cols } => {
                let (rows, cols) = (*rows as usize, *cols as usize);
                if crate::math::is_large_layer(rows, cols) {
                    in_memory(f, *m, &mut need_mem, &mut dynamic);
                    in_memory(f, *y, &mut need_mem, &mut dynamic);
                }
                match place {
                    Place::Fused => dynamic[m.index()] |= dynamic[i],
                    _ => {
                        let red_dyn = rows > unroll;
                        let out_dyn = matches!(place, Place::Mem(_));
                        dynamic[m.index()] |= red_dyn || out_dyn;
                        dynamic[y.index()] |= red_dyn;
                    }
                }
                if cols > 1 && !is_view(f, *y) {
                    need_mem[y.index()] = true;
                }
            }
            Node::Outer(a, b) => {
                let (na, nb) = (f.len_of(*a), f.len_of(*b));
                if matches!(place, Place::Mem(_)) {
                    dynamic[a.index()] |= na > unroll;
                    dynamic[b.index()] |= nb > unroll;
                }
                if na > 1 && !is_view(f, *b) {
                    need_mem[b.index()] = true;
                }
            }
            Node::Unary(_, x) | Node::PowI(x, _) => dynamic[x.index()] |= lanes_dyn,
            Node::Binary(_, a, b) | Node::Compare(_, a, b) => {
                dynamic[a.index()] |= lanes_dyn;
                dynamic[b.index()] |= lanes_dyn;
            }
            Node::Select(c, a, b) => {
                for x in [c, a, b] {
                    dynamic[x.index()] |= lanes_dyn;
                }
            }
            Node::Gather { v, .. } => {
                dynamic[v.index()] |= lanes_dyn;
                if !is_view(f, *v) {
                    need_mem[v.index()] = true;
                }
            }
            Node::Concat(parts) => {
                for p in parts {
                    if f.len_of(*p) > unroll && matches!(place, Place::Mem(_)) {
                        dynamic[p.index()] = true;
                    }
                }
            }
            Node::Sum(x) => dynamic[x.index()] |= f.len_of(*x) > unroll,
            Node::Dot(a, b) => {
                let d = f.len_of(*a) > unroll;
                dynamic[a.index()] |= d;
                dynamic[b.index()] |= d;
            }
            Node::MatVec { m, x, rows, cols } => {
                let (rows, cols) = (*rows as usize, *cols as usize);
                if crate::math::is_large_layer(rows, cols) {
                    in_memory(f, *m, &mut need_mem, &mut dynamic);
                    in_memory(f, *x, &mut need_mem, &mut dynamic);
                }
                match place {
                    Place::Fused => dynamic[m.index()] |= dynamic[i],
                    _ => {
                        let col_dyn = cols > unroll;
                        let row_dyn = matches!(place, Place::Mem(_));
                        dynamic[m.index()] |= col_dyn || row_dyn;
                        dynamic[x.index()] |= col_dyn;
                    }
                }
                if rows > 1 && !is_view(f, *x) {
                    need_mem[x.index()] = true;
                }
            }
            Node::Const(_)
            | Node::Arg(_)
            | Node::Iota { .. }
            | Node::Index { .. }
            | Node::Broadcast(..) => {}
        }
    }
    Schedule {
        places,
        dynamic,
        scratch_len,
        unroll,
    }
}

/// The range of a materialised `Concat` that a node may be written to directly: when the
/// node's only use is that concat (once).
fn concat_range(
    f: &Function,
    places: &[Place],
    uses: &[u32],
    consumer: &[Option<NodeId>],
    id: NodeId,
) -> Option<Slot> {
    if uses[id.index()] != 1 {
        return None;
    }
    let c = consumer[id.index()]?;
    let Node::Concat(parts) = f.node(c) else {
        return None;
    };
    let Place::Mem(dest) = places[c.index()] else {
        return None;
    };
    let mut off = 0;
    for p in parts {
        if *p == id {
            return Some(dest.at(off));
        }
        off += f.len_of(*p);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::Builder;
    use crate::sema::model::{Func1, Op2};

    #[test]
    fn chain_is_fused_into_the_output_concat() {
        let mut b = Builder::new("f");
        let u = b.arg("u", 20);
        let a = b.push(Node::Gather {
            v: u,
            start: 0,
            stride: 1,
            len: 18,
        });
        let c = b.push(Node::Gather {
            v: u,
            start: 2,
            stride: 1,
            len: 18,
        });
        let d = b.push(Node::Binary(Op2::Sub, a, c));
        let e = b.push(Node::Unary(Func1::Exp, d));
        let u0 = b.push(Node::Index { v: u, k: 0 });
        let u1 = b.push(Node::Index { v: u, k: 19 });
        let cat = b.push(Node::Concat(vec![u0, e, u1]));
        b.output("du", cat);
        let f = b.finish();
        let s = schedule(&f, UNROLL);
        assert_eq!(
            s.place(cat),
            Place::Mem(Slot {
                buf: Buf::Output(0),
                offset: 0
            })
        );
        assert_eq!(s.place(e), Place::Fused);
        assert_eq!(s.place(d), Place::Fused);
        assert_eq!(s.scratch_len, 0);
    }

    #[test]
    fn matvec_with_long_rows_goes_straight_into_its_concat() {
        let mut b = Builder::new("f");
        let p = b.arg("p", 400);
        let u = b.arg("u", 20);
        let m = b.push(Node::Gather {
            v: p,
            start: 0,
            stride: 1,
            len: 400,
        });
        let mv = b.push(Node::MatVec {
            m,
            x: u,
            rows: 20,
            cols: 20,
        });
        let t = b.arg("t", 1);
        let cat = b.push(Node::Concat(vec![t, mv]));
        b.output("o", cat);
        let f = b.finish();
        let s = schedule(&f, UNROLL);
        assert_eq!(
            s.place(mv),
            Place::Mem(Slot {
                buf: Buf::Output(0),
                offset: 1
            })
        );
    }
}
