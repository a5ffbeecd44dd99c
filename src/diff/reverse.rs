//! Reverse mode: propagate cotangents back to front, accumulating them per node.
//!
//! Contributions to a vector from `Index`/`Gather` reads are kept as placed pieces and
//! assembled once (one concatenation with zero gaps per non-overlapping layer), so a model
//! with n scalar states gets its state cotangent in O(n), not O(n²).

use super::rules::{self, fit, mul, nonzero};
use crate::ir::{Builder, Function, Node, NodeId};

/// A contribution placed at `start, start+stride, …` of a vector.
#[derive(Clone, Copy)]
struct Piece {
    start: i64,
    stride: i64,
    len: usize,
    value: NodeId,
}

#[derive(Default, Clone)]
struct Acc {
    full: Vec<NodeId>,
    pieces: Vec<Piece>,
}

/// The cotangent of each argument of `f` (`None`: zero), given the cotangent `seeds[k]`
/// of output k.
pub fn sweep(
    f: &Function,
    b: &mut Builder,
    primal: &[NodeId],
    seeds: &[NodeId],
) -> Vec<Option<NodeId>> {
    let mut acc: Vec<Acc> = vec![Acc::default(); f.nodes.len()];
    for ((_, id), s) in f.outputs.iter().zip(seeds) {
        acc[id.index()].full.push(*s);
    }
    let mut grads: Vec<Option<NodeId>> = vec![None; f.args.len()];
    for i in (0..f.nodes.len()).rev() {
        let len = f.lens[i] as usize;
        let Some(ct) = assemble(b, std::mem::take(&mut acc[i]), len) else {
            continue;
        };
        let p = |id: &NodeId| primal[id.index()];
        let y = primal[i];
        let mut give = |b: &mut Builder, to: NodeId, value: NodeId| {
            // A contribution to a length-1 operand of a wider node is summed.
            let value = if f.len_of(to) == 1 && b.len_of(value) > 1 {
                b.push(Node::Sum(value))
            } else {
                value
            };
            if let Some(v) = nonzero(b, value) {
                acc[to.index()].full.push(v);
            }
        };
        match &f.nodes[i] {
            Node::Const(_) | Node::Iota { .. } | Node::Compare(..) => {}
            Node::Arg(k) => {
                let g = grads[*k as usize];
                grads[*k as usize] = rules::add(b, g, Some(ct));
            }
            Node::Index { v, k } => acc[v.index()].pieces.push(Piece {
                start: *k as i64,
                stride: 1,
                len: 1,
                value: ct,
            }),
            Node::Gather {
                v,
                start,
                stride,
                len,
            } => acc[v.index()].pieces.push(Piece {
                start: *start as i64,
                stride: *stride as i64,
                len: *len as usize,
                value: ct,
            }),
            Node::Concat(parts) => {
                let mut off = 0u32;
                for q in parts {
                    let n = f.len_of(*q) as u32;
                    if n > 0 {
                        let piece = b.push(Node::Gather {
                            v: ct,
                            start: off,
                            stride: 1,
                            len: n,
                        });
                        give(b, *q, piece);
                    }
                    off += n;
                }
            }
            Node::Broadcast(x, _) => {
                let s = b.push(Node::Sum(ct));
                give(b, *x, s);
            }
            Node::Unary(op, x) => {
                let d = rules::unary_apply(b, *op, p(x), y, ct);
                give(b, *x, d);
            }
            Node::Binary(op, a, c) => {
                let da = rules::binary_apply(b, *op, p(a), p(c), y, 0, ct);
                give(b, *a, da);
                let dc = rules::binary_apply(b, *op, p(a), p(c), y, 1, ct);
                give(b, *c, dc);
            }
            Node::PowI(x, k) => {
                if let Some(d) = rules::powi_apply(b, p(x), *k, ct) {
                    give(b, *x, d);
                }
            }
            Node::Select(c, a, e) => {
                let z = rules::zero(b, len);
                let cta = b.push(Node::Select(p(c), ct, z));
                give(b, *a, cta);
                let cte = b.push(Node::Select(p(c), z, ct));
                give(b, *e, cte);
            }
            Node::Sum(x) => {
                let n = f.len_of(*x);
                let v = fit(b, ct, n);
                give(b, *x, v);
            }
            Node::Dot(a, c) => {
                let da = mul(b, ct, p(c));
                give(b, *a, da);
                let dc = mul(b, ct, p(a));
                give(b, *c, dc);
            }
            Node::MatVec { m, x, rows, cols } => {
                let dm = b.push(Node::Outer(ct, p(x)));
                give(b, *m, dm);
                let dx = b.push(Node::MatTVec {
                    m: p(m),
                    y: ct,
                    rows: *rows,
                    cols: *cols,
                });
                give(b, *x, dx);
            }
            Node::MatTVec {
                m,
                y: v,
                rows,
                cols,
            } => {
                let dm = b.push(Node::Outer(p(v), ct));
                give(b, *m, dm);
                let dv = b.push(Node::MatVec {
                    m: p(m),
                    x: ct,
                    rows: *rows,
                    cols: *cols,
                });
                give(b, *v, dv);
            }
            Node::Outer(a, c) => {
                let (ra, rc) = (f.len_of(*a) as u32, f.len_of(*c) as u32);
                let da = b.push(Node::MatVec {
                    m: ct,
                    x: p(c),
                    rows: ra,
                    cols: rc,
                });
                give(b, *a, da);
                let dc = b.push(Node::MatTVec {
                    m: ct,
                    y: p(a),
                    rows: ra,
                    cols: rc,
                });
                give(b, *c, dc);
            }
        }
    }
    grads
}

/// The total cotangent of a node of length `len` from its contributions.
fn assemble(b: &mut Builder, acc: Acc, len: usize) -> Option<NodeId> {
    let mut total: Option<NodeId> = None;
    for v in acc.full {
        let v = fit(b, v, len);
        total = rules::add(b, total, Some(v));
    }
    let mut pieces = acc.pieces;
    // Normalise negative strides to positive ones over a reversed value.
    for pc in &mut pieces {
        if pc.stride < 0 && pc.len > 1 {
            let rev = b.push(Node::Gather {
                v: pc.value,
                start: (pc.len - 1) as u32,
                stride: -1,
                len: pc.len as u32,
            });
            pc.start += pc.stride * (pc.len as i64 - 1);
            pc.stride = -pc.stride;
            pc.value = rev;
        }
        if pc.len == 1 {
            pc.stride = 1;
        }
    }
    // Expand strided pieces (|stride| > 1) into single entries.
    let mut unit: Vec<Piece> = Vec::with_capacity(pieces.len());
    for pc in pieces {
        if pc.stride == 1 {
            unit.push(pc);
        } else {
            for k in 0..pc.len {
                let v = b.push(Node::Index {
                    v: pc.value,
                    k: k as u32,
                });
                unit.push(Piece {
                    start: pc.start + pc.stride * k as i64,
                    stride: 1,
                    len: 1,
                    value: v,
                });
            }
        }
    }
    unit.sort_by_key(|p| p.start);
    // Greedy layers of non-overlapping pieces, each one concatenation with zero gaps.
    while !unit.is_empty() {
        let mut layer = Vec::new();
        let mut rest = Vec::new();
        let mut end = 0i64;
        for pc in unit {
            if pc.start >= end {
                end = pc.start + pc.len as i64;
                layer.push(pc);
            } else {
                rest.push(pc);
            }
        }
        unit = rest;
        let mut parts = Vec::new();
        let mut pos = 0i64;
        for pc in &layer {
            if pc.start > pos {
                parts.push(rules::zero(b, (pc.start - pos) as usize));
            }
            parts.push(pc.value);
            pos = pc.start + pc.len as i64;
        }
        if (pos as usize) < len {
            parts.push(rules::zero(b, len - pos as usize));
        }
        let v = b.push(Node::Concat(parts));
        total = rules::add(b, total, Some(v));
    }
    total
}
