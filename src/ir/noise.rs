//! IR passes for stochastic models: setting the noise argument to a structural zero
//! (the drift: "the equation with every W set to zero", symbolically, so `sigma*x*W`
//! vanishes instead of computing `sigma*x*0`), and inlining one function into another.

use super::{Builder, Function, Node, NodeId};
use crate::sema::model::{Func1, Op2};

/// `f` with argument `arg` replaced by a structural zero: every term that multiplies it
/// disappears. The argument stays in the signature only if `keep_arg`; otherwise the
/// result has `f`'s other arguments, in order. Outputs that become zero are zero-filled.
pub fn zero_arg(f: &Function, arg: usize, name: &str, keep_arg: bool) -> Function {
    let mut b = Builder::new(name);
    for (k, a) in f.args.iter().enumerate() {
        if k != arg || keep_arg {
            b.arg(&a.name, a.len);
        }
    }
    // `None`: structurally zero.
    let mut map: Vec<Option<NodeId>> = Vec::with_capacity(f.nodes.len());
    for (i, n) in f.nodes.iter().enumerate() {
        let len = f.lens[i] as usize;
        let m = |id: &NodeId| map[id.index()];
        let v: Option<NodeId> = match n {
            Node::Arg(k) if *k as usize == arg => None,
            Node::Arg(k) => {
                let a = &f.args[*k as usize];
                Some(b.arg(&a.name, a.len))
            }
            Node::Index { v, .. }
            | Node::Gather { v, .. }
            | Node::Broadcast(v, _)
            | Node::Sum(v)
            | Node::Unary(Func1::Neg, v)
                if m(v).is_none() =>
            {
                None
            }
            Node::Binary(op @ (Op2::Add | Op2::Sub), x, y) => match (m(x), m(y)) {
                (None, None) => None,
                (Some(a), None) => Some(fit(&mut b, a, len)),
                (None, Some(c)) => {
                    let c = if *op == Op2::Sub {
                        b.push(Node::Unary(Func1::Neg, c))
                    } else {
                        c
                    };
                    Some(fit(&mut b, c, len))
                }
                (Some(a), Some(c)) => Some(b.push(Node::Binary(*op, a, c))),
            },
            Node::Binary(Op2::Mul, x, y)
            | Node::Dot(x, y)
            | Node::MatVec { m: x, x: y, .. }
            | Node::MatTVec { m: x, y, .. }
            | Node::Outer(x, y)
                if m(x).is_none() || m(y).is_none() =>
            {
                None
            }
            Node::Binary(Op2::Div, x, _) if m(x).is_none() => None,
            Node::Concat(parts) if parts.iter().all(|p| m(p).is_none()) => None,
            other => {
                let kids: Vec<NodeId> = other
                    .children()
                    .iter()
                    .map(|c| match m(c) {
                        Some(x) => x,
                        None => zero(&mut b, f.len_of(*c)),
                    })
                    .collect();
                let mut it = kids.into_iter();
                Some(b.push(other.map_children(|_| it.next().expect("one per child"))))
            }
        };
        map.push(v);
    }
    for (buf, id) in &f.outputs {
        let v = match map[id.index()] {
            Some(v) => fit(&mut b, v, buf.len),
            None => zero(&mut b, buf.len),
        };
        b.output(&buf.name, v);
    }
    crate::opt::dce(&b.finish())
}

/// Copies `f`'s nodes into `b` with argument k read from `args[k]`; returns the node of
/// each of `f`'s outputs.
pub fn inline(f: &Function, b: &mut Builder, args: &[NodeId]) -> Vec<NodeId> {
    assert_eq!(
        args.len(),
        f.args.len(),
        "inline {}: argument count",
        f.name
    );
    let mut map: Vec<NodeId> = Vec::with_capacity(f.nodes.len());
    for n in &f.nodes {
        let id = match n {
            Node::Arg(k) => args[*k as usize],
            other => b.push(other.map_children(|c| map[c.index()])),
        };
        map.push(id);
    }
    f.outputs.iter().map(|(_, id)| map[id.index()]).collect()
}

/// Whether a node is a zero constant or a broadcast of one (a structural zero).
pub fn is_zero(b: &Builder, id: NodeId) -> bool {
    let z = |n: &Node| {
        n.as_const()
            .is_some_and(|c| c == 0.0 && c.is_sign_positive())
    };
    match b.node(id) {
        Node::Broadcast(x, _) => z(b.node(*x)),
        n => z(n),
    }
}

/// A +0 of length `len`.
pub fn zero(b: &mut Builder, len: usize) -> NodeId {
    let z = b.constant(0.0);
    if len == 1 {
        z
    } else {
        b.push(Node::Broadcast(z, len as u32))
    }
}

fn fit(b: &mut Builder, x: NodeId, len: usize) -> NodeId {
    if b.len_of(x) == len {
        x
    } else {
        b.push(Node::Broadcast(x, len as u32))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Kernel;
    use crate::backend::interp::Interpreted;

    /// f(u, w) = [u0*w0 + 2, -(w1) - u1, u0 / 3 - w0*u1, sum([w0, w1])]
    fn affine() -> Function {
        let mut b = Builder::new("f");
        let u = b.arg("u", 2);
        let w = b.arg("w", 2);
        let u0 = b.push(Node::Index { v: u, k: 0 });
        let u1 = b.push(Node::Index { v: u, k: 1 });
        let w0 = b.push(Node::Index { v: w, k: 0 });
        let w1 = b.push(Node::Index { v: w, k: 1 });
        let two = b.constant(2.0);
        let three = b.constant(3.0);
        let a = b.push(Node::Binary(Op2::Mul, u0, w0));
        let e0 = b.push(Node::Binary(Op2::Add, a, two));
        let nw1 = b.push(Node::Unary(Func1::Neg, w1));
        let e1 = b.push(Node::Binary(Op2::Sub, nw1, u1));
        let d = b.push(Node::Binary(Op2::Div, u0, three));
        let c = b.push(Node::Binary(Op2::Mul, w0, u1));
        let e2 = b.push(Node::Binary(Op2::Sub, d, c));
        let ws = b.push(Node::Concat(vec![w0, w1]));
        let e3 = b.push(Node::Sum(ws));
        let out = b.push(Node::Concat(vec![e0, e1, e2, e3]));
        b.output("du", out);
        b.finish()
    }

    #[test]
    fn zero_arg_drops_every_noise_term() {
        let f = affine();
        let g = zero_arg(&f, 1, "drift", false);
        assert_eq!(g.args.len(), 1);
        let text = g.to_text();
        assert!(!text.contains("arg w"), "{text}");
        // No multiplication survives: every product had a noise factor.
        assert!(!text.contains("mul"), "{text}");
        let k = Interpreted::new(g);
        let mut out = vec![0.0; 4];
        k.call(&[&[1.5, -2.0]], &mut [&mut out], &mut Vec::new());
        assert_eq!(out, vec![2.0, 2.0, 0.5, 0.0]);
    }

    #[test]
    fn inline_reproduces_the_function() {
        let f = affine();
        let mut b = Builder::new("g");
        let u = b.arg("u", 2);
        let w = b.arg("w", 2);
        let outs = inline(&f, &mut b, &[u, w]);
        b.output("du", outs[0]);
        let g = b.finish();
        let (kf, kg) = (Interpreted::new(f), Interpreted::new(g));
        let (mut a, mut c) = (vec![0.0; 4], vec![0.0; 4]);
        let args: [&[f64]; 2] = [&[0.3, -1.1], &[0.7, 2.5]];
        kf.call(&args, &mut [&mut a], &mut Vec::new());
        kg.call(&args, &mut [&mut c], &mut Vec::new());
        assert_eq!(a, c);
    }
}
