//! The derivative of every operation, shared by forward and reverse mode.
//!
//! Each rule is written once as "the factor by which a perturbation of the operand scales
//! the result" (`unary_factor`, `binary_factors`); forward mode multiplies tangents by it,
//! reverse mode multiplies cotangents by it.

use crate::ir::{Builder, Node, NodeId};
use crate::sema::model::{Cmp, Func1, Op2};

/// A node's value as a structural zero when it is the constant +0.
pub fn nonzero(b: &Builder, id: NodeId) -> Option<NodeId> {
    match b.node(id).as_const() {
        Some(z) if z == 0.0 && z.is_sign_positive() => None,
        _ => Some(id),
    }
}

/// Zero of length `len` (a scalar 0 broadcast).
pub fn zero(b: &mut Builder, len: usize) -> NodeId {
    let z = b.constant(0.0);
    if len == 1 {
        z
    } else {
        b.push(Node::Broadcast(z, len as u32))
    }
}

pub fn or_zero(b: &mut Builder, x: Option<NodeId>, len: usize) -> NodeId {
    match x {
        Some(x) => fit(b, x, len),
        None => zero(b, len),
    }
}

/// `x` stretched to `len` (a length-1 value broadcasts).
pub fn fit(b: &mut Builder, x: NodeId, len: usize) -> NodeId {
    if b.len_of(x) == len || len == 1 {
        x
    } else {
        b.push(Node::Broadcast(x, len as u32))
    }
}

pub fn add(b: &mut Builder, x: Option<NodeId>, y: Option<NodeId>) -> Option<NodeId> {
    match (x, y) {
        (None, y) => y,
        (x, None) => x,
        (Some(x), Some(y)) => {
            let s = b.push(Node::Binary(Op2::Add, x, y));
            nonzero(b, s)
        }
    }
}

pub fn mul(b: &mut Builder, x: NodeId, y: NodeId) -> NodeId {
    b.push(Node::Binary(Op2::Mul, x, y))
}

pub fn neg(b: &mut Builder, x: NodeId) -> NodeId {
    b.push(Node::Unary(Func1::Neg, x))
}

/// The derivative factor d op(x)/dx, given the operand `x` and the result `y`; `None` for
/// `Neg` (handled as a negation) and `Log`/`Sqrt` (handled as divisions, see `unary_apply`).
fn unary_factor(b: &mut Builder, op: Func1, x: NodeId, y: NodeId) -> NodeId {
    let one = b.constant(1.0);
    match op {
        Func1::Exp => y,
        Func1::Sin => b.push(Node::Unary(Func1::Cos, x)),
        Func1::Cos => {
            let s = b.push(Node::Unary(Func1::Sin, x));
            neg(b, s)
        }
        Func1::Tan => {
            let y2 = b.push(Node::PowI(y, 2));
            b.push(Node::Binary(Op2::Add, one, y2))
        }
        Func1::Tanh => {
            let y2 = b.push(Node::PowI(y, 2));
            b.push(Node::Binary(Op2::Sub, one, y2))
        }
        Func1::Sigmoid => {
            let c = b.push(Node::Binary(Op2::Sub, one, y));
            mul(b, y, c)
        }
        Func1::Softplus => b.push(Node::Unary(Func1::Sigmoid, x)),
        Func1::Relu => {
            let z = b.constant(0.0);
            b.push(Node::Compare(Cmp::Gt, x, z))
        }
        Func1::Abs => {
            let z = b.constant(0.0);
            let m1 = b.constant(-1.0);
            let pos = b.push(Node::Compare(Cmp::Gt, x, z));
            let negm = b.push(Node::Compare(Cmp::Lt, x, z));
            let inner = b.push(Node::Select(negm, m1, z));
            let inner = fit(b, inner, b.len_of(x));
            let onev = fit(b, one, b.len_of(x));
            b.push(Node::Select(pos, onev, inner))
        }
        Func1::Neg | Func1::Log | Func1::Sqrt => unreachable!("handled in unary_apply"),
    }
}

/// The perturbation of `op(x)` for a perturbation `d` of `x` (forward: a tangent;
/// reverse: a cotangent, the factor being symmetric).
pub fn unary_apply(b: &mut Builder, op: Func1, x: NodeId, y: NodeId, d: NodeId) -> NodeId {
    match op {
        Func1::Neg => neg(b, d),
        Func1::Log => b.push(Node::Binary(Op2::Div, d, x)),
        Func1::Sqrt => {
            let two = b.constant(2.0);
            let den = mul(b, two, y);
            b.push(Node::Binary(Op2::Div, d, den))
        }
        _ => {
            let f = unary_factor(b, op, x, y);
            mul(b, d, f)
        }
    }
}

/// For `y = a op b`, the perturbation of y from a perturbation `d` of operand `which`
/// (0 = a, 1 = b). `None` when that operand has no influence (comparisons).
pub fn binary_apply(
    b: &mut Builder,
    op: Op2,
    a: NodeId,
    bb: NodeId,
    y: NodeId,
    which: usize,
    d: NodeId,
) -> NodeId {
    match (op, which) {
        (Op2::Add, _) | (Op2::Sub, 0) => d,
        (Op2::Sub, _) => neg(b, d),
        (Op2::Mul, 0) => mul(b, d, bb),
        (Op2::Mul, _) => mul(b, d, a),
        (Op2::Div, 0) => b.push(Node::Binary(Op2::Div, d, bb)),
        (Op2::Div, _) => {
            // d(a/b)/db = -y/b
            let q = b.push(Node::Binary(Op2::Div, y, bb));
            let t = mul(b, d, q);
            neg(b, t)
        }
        (Op2::Pow, 0) => {
            // b * a^(b-1)
            let one = b.constant(1.0);
            let e = b.push(Node::Binary(Op2::Sub, bb, one));
            let p = b.push(Node::Binary(Op2::Pow, a, e));
            let f = mul(b, bb, p);
            mul(b, d, f)
        }
        (Op2::Pow, _) => {
            let l = b.push(Node::Unary(Func1::Log, a));
            let f = mul(b, l, y);
            mul(b, d, f)
        }
        (Op2::Min | Op2::Max, w) => {
            // The derivative follows the operand that is selected (ties: b).
            let cmp = if op == Op2::Min { Cmp::Lt } else { Cmp::Gt };
            let c = b.push(Node::Compare(cmp, a, bb));
            let len = b.len_of(y);
            let z = zero(b, len);
            let d = fit(b, d, len);
            if w == 0 {
                b.push(Node::Select(c, d, z))
            } else {
                b.push(Node::Select(c, z, d))
            }
        }
    }
}

/// The perturbation of `x^n` for a perturbation `d` of x.
pub fn powi_apply(b: &mut Builder, x: NodeId, n: i32, d: NodeId) -> Option<NodeId> {
    if n == 0 {
        return None;
    }
    let c = b.constant(n as f64);
    let f = if n == 1 {
        c
    } else {
        let p = b.push(Node::PowI(x, n - 1));
        mul(b, c, p)
    };
    Some(mul(b, d, f))
}
