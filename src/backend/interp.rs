//! The reference interpreter: evaluates a function node by node, in arena order.
//!
//! This defines what every IR operation means; the JIT must match it bit for bit. It
//! favours obviousness over speed (one vector per node).

use super::Kernel;
use crate::ir::{Function, Node};
use crate::math;

/// Evaluates `f` on `args`, returning each output buffer.
pub fn eval(f: &Function, args: &[&[f64]]) -> Vec<Vec<f64>> {
    let vals = eval_nodes(f, args);
    f.outputs
        .iter()
        .map(|(_, id)| vals[id.index()].clone())
        .collect()
}

/// The value of every node.
pub fn eval_nodes(f: &Function, args: &[&[f64]]) -> Vec<Vec<f64>> {
    let mut vals: Vec<Vec<f64>> = Vec::with_capacity(f.nodes.len());
    for (i, n) in f.nodes.iter().enumerate() {
        let len = f.lens[i] as usize;
        let v = |id: &crate::ir::NodeId| &vals[id.index()];
        // Entry k of a value that may broadcast (length 1).
        let at = |x: &Vec<f64>, k: usize| if x.len() == 1 { x[0] } else { x[k] };
        let out: Vec<f64> = match n {
            Node::Const(_) => vec![n.as_const().unwrap_or(f64::NAN)],
            Node::Arg(a) => args[*a as usize].to_vec(),
            Node::Iota { start, len } => (0..*len as i64).map(|k| (start + k) as f64).collect(),
            Node::Index { v: x, k } => vec![v(x)[*k as usize]],
            Node::Gather {
                v: x,
                start,
                stride,
                len,
            } => {
                let x = v(x);
                (0..*len as i64)
                    .map(|k| x[(*start as i64 + k * *stride as i64) as usize])
                    .collect()
            }
            Node::Concat(parts) => parts.iter().flat_map(|p| v(p).iter().copied()).collect(),
            Node::Broadcast(x, len) => vec![v(x)[0]; *len as usize],
            Node::Unary(op, x) => v(x).iter().map(|&a| math::apply1(*op, a)).collect(),
            Node::Binary(op, a, b) => {
                let (a, b) = (v(a), v(b));
                (0..len)
                    .map(|k| math::apply2(*op, at(a, k), at(b, k)))
                    .collect()
            }
            Node::PowI(x, e) => v(x).iter().map(|&a| math::powi(a, *e)).collect(),
            Node::Compare(c, a, b) => {
                let (a, b) = (v(a), v(b));
                (0..len)
                    .map(|k| math::compare(*c, at(a, k), at(b, k)))
                    .collect()
            }
            Node::Select(c, a, b) => {
                let (c, a, b) = (v(c), v(a), v(b));
                (0..len)
                    .map(|k| math::select(at(c, k), at(a, k), at(b, k)))
                    .collect()
            }
            Node::Sum(x) => vec![math::sum(v(x).iter().copied())],
            Node::Dot(a, b) => vec![math::sum(v(a).iter().zip(v(b)).map(|(x, y)| x * y))],
            Node::MatVec { m, x, rows, cols } => {
                let (m, x) = (v(m), v(x));
                let (r, c) = (*rows as usize, *cols as usize);
                if math::is_large_layer(r, c) {
                    let mut out = vec![0.0; r];
                    math::matvec(m, x, r, c, &mut out);
                    out
                } else {
                    (0..r)
                        .map(|r| math::sum((0..c).map(|j| m[r * c + j] * x[j])))
                        .collect()
                }
            }
            Node::MatTVec { m, y, rows, cols } => {
                let (m, y) = (v(m), v(y));
                let (r, c) = (*rows as usize, *cols as usize);
                if math::is_large_layer(r, c) {
                    let mut out = vec![0.0; c];
                    math::mat_t_vec(m, y, r, c, &mut out);
                    out
                } else {
                    (0..c)
                        .map(|j| math::sum((0..r).map(|i| m[i * c + j] * y[i])))
                        .collect()
                }
            }
            Node::Outer(a, b) => {
                let (a, b) = (v(a), v(b));
                a.iter()
                    .flat_map(|x| b.iter().map(move |y| x * y))
                    .collect()
            }
        };
        debug_assert_eq!(out.len(), len, "node %{i} produced the wrong length");
        vals.push(out);
    }
    vals
}

/// The interpreter as a [`Kernel`] (slow; the reference every back end is tested against).
pub struct Interpreted {
    pub f: Function,
    arg_lens: Vec<usize>,
    out_lens: Vec<usize>,
}

impl Interpreted {
    pub fn new(f: Function) -> Interpreted {
        let arg_lens = f.args.iter().map(|a| a.len).collect();
        let out_lens = f.outputs.iter().map(|(b, _)| b.len).collect();
        Interpreted {
            f,
            arg_lens,
            out_lens,
        }
    }
}

impl Kernel for Interpreted {
    fn arg_lens(&self) -> &[usize] {
        &self.arg_lens
    }
    fn out_lens(&self) -> &[usize] {
        &self.out_lens
    }
    fn call(&self, args: &[&[f64]], outs: &mut [&mut [f64]], _scratch: &mut Vec<f64>) {
        super::check_buffers(&self.f.name, &self.arg_lens, &self.out_lens, args, outs);
        let res = eval(&self.f, args);
        for (o, r) in outs.iter_mut().zip(res) {
            o.copy_from_slice(&r);
        }
    }
}
