//! Forward mode: propagate tangents through a function, front to back.

use super::rules::{self, add, fit, nonzero};
use crate::ir::{Builder, Function, Node, NodeId};

/// The tangent of every node of `f` (`None`: structurally zero), given the tangent of each
/// argument (`seed(arg_index, builder)`). `primal` maps `f`'s nodes into `b`.
pub fn sweep(
    f: &Function,
    b: &mut Builder,
    primal: &[NodeId],
    seed: &dyn Fn(usize, &mut Builder) -> Option<NodeId>,
) -> Vec<Option<NodeId>> {
    let mut tan: Vec<Option<NodeId>> = Vec::with_capacity(f.nodes.len());
    for (i, n) in f.nodes.iter().enumerate() {
        let p = |id: &NodeId| primal[id.index()];
        let t = |id: &NodeId| tan[id.index()];
        let len = f.lens[i] as usize;
        let y = primal[i];
        let d: Option<NodeId> = match n {
            Node::Const(_) | Node::Iota { .. } | Node::Compare(..) => None,
            Node::Arg(k) => seed(*k as usize, b),
            Node::Index { v, k } => t(v).map(|tv| b.push(Node::Index { v: tv, k: *k })),
            Node::Gather {
                v,
                start,
                stride,
                len,
            } => t(v).map(|tv| {
                b.push(Node::Gather {
                    v: tv,
                    start: *start,
                    stride: *stride,
                    len: *len,
                })
            }),
            Node::Concat(parts) => {
                if parts.iter().all(|q| t(q).is_none()) {
                    None
                } else {
                    let pieces: Vec<NodeId> = parts
                        .iter()
                        .map(|q| rules::or_zero(b, t(q), f.len_of(*q)))
                        .collect();
                    Some(b.push(Node::Concat(pieces)))
                }
            }
            Node::Broadcast(x, n) => t(x).map(|tx| b.push(Node::Broadcast(tx, *n))),
            Node::Unary(op, x) => t(x).map(|tx| rules::unary_apply(b, *op, p(x), y, tx)),
            Node::Binary(op, a, c) => {
                let da = t(a).map(|ta| rules::binary_apply(b, *op, p(a), p(c), y, 0, ta));
                let dc = t(c).map(|tc| rules::binary_apply(b, *op, p(a), p(c), y, 1, tc));
                add(b, da, dc)
            }
            Node::PowI(x, k) => t(x).and_then(|tx| rules::powi_apply(b, p(x), *k, tx)),
            Node::Select(c, a, e) => match (t(a), t(e)) {
                (None, None) => None,
                (ta, te) => {
                    let ta = rules::or_zero(b, ta, len);
                    let te = rules::or_zero(b, te, len);
                    Some(b.push(Node::Select(p(c), ta, te)))
                }
            },
            Node::Sum(x) => t(x).map(|tx| b.push(Node::Sum(tx))),
            Node::Dot(a, c) => {
                let da = t(a).map(|ta| b.push(Node::Dot(ta, p(c))));
                let dc = t(c).map(|tc| b.push(Node::Dot(p(a), tc)));
                add(b, da, dc)
            }
            Node::MatVec { m, x, rows, cols } => {
                let dm = t(m).map(|tm| {
                    b.push(Node::MatVec {
                        m: tm,
                        x: p(x),
                        rows: *rows,
                        cols: *cols,
                    })
                });
                let dx = t(x).map(|tx| {
                    b.push(Node::MatVec {
                        m: p(m),
                        x: tx,
                        rows: *rows,
                        cols: *cols,
                    })
                });
                add(b, dm, dx)
            }
            Node::MatTVec {
                m,
                y: v,
                rows,
                cols,
            } => {
                let dm = t(m).map(|tm| {
                    b.push(Node::MatTVec {
                        m: tm,
                        y: p(v),
                        rows: *rows,
                        cols: *cols,
                    })
                });
                let dv = t(v).map(|tv| {
                    b.push(Node::MatTVec {
                        m: p(m),
                        y: tv,
                        rows: *rows,
                        cols: *cols,
                    })
                });
                add(b, dm, dv)
            }
            Node::Outer(a, c) => {
                let da = t(a).map(|ta| b.push(Node::Outer(ta, p(c))));
                let dc = t(c).map(|tc| b.push(Node::Outer(p(a), tc)));
                add(b, da, dc)
            }
        };
        let d = d.and_then(|d| nonzero(b, d)).map(|d| fit(b, d, len));
        tan.push(d);
    }
    tan
}
