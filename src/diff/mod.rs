//! Derivatives as source-to-source transforms of IR functions.
//!
//! From one set of per-op rules (`rules`): forward mode (`jvp`), reverse mode with
//! cotangent accumulation (`vjp`), dense Jacobians (one forward sweep per column with
//! constant unit seeds, so structural zeros vanish at compile time), and sparse Jacobians
//! (the pattern from a structural analysis of the IR, columns grouped by a greedy
//! colouring, one forward sweep per colour). Every result is an ordinary IR function that
//! any back end compiles. Owns differentiation; must never evaluate or compile.
//!
//! Structural zeros: a tangent or cotangent that is known to be zero is absent (`None`),
//! so `0 * x` is never emitted. This differs from evaluating the chain rule numerically
//! only where the primal is infinite or NaN.

mod forward;
mod reverse;
mod rules;
pub mod sparsity;

use crate::ir::{Builder, Function, Node, NodeId};
pub use sparsity::Pattern;

/// Copies `f`'s nodes into `b`; returns the new id of each old node.
pub(crate) fn copy_primal(f: &Function, b: &mut Builder) -> Vec<NodeId> {
    let mut map: Vec<NodeId> = Vec::with_capacity(f.nodes.len());
    for a in &f.args {
        b.arg(&a.name, a.len);
    }
    for n in &f.nodes {
        let id = match n {
            Node::Arg(k) => b.arg(&f.args[*k as usize].name, f.args[*k as usize].len),
            other => b.push(other.map_children(|c| map[c.index()])),
        };
        map.push(id);
    }
    map
}

/// Forward mode: `f` plus a tangent argument `d<x>` for each argument `x` in `wrt`;
/// outputs `d<out>` = J·(tangents) for each output of `f` (after `f`'s own outputs when
/// `fused`).
pub fn jvp(f: &Function, wrt: &[&str], fused: bool) -> Function {
    let mut b = Builder::new(format!("{}_jvp", f.name));
    let primal = copy_primal(f, &mut b);
    let seeds: Vec<Option<NodeId>> = f
        .args
        .iter()
        .map(|a| {
            wrt.contains(&a.name.as_str())
                .then(|| b.arg(&format!("d{}", a.name), a.len))
        })
        .collect();
    let tangents = forward::sweep(f, &mut b, &primal, &|k, _| seeds[k]);
    if fused {
        for (buf, id) in &f.outputs {
            b.output(&buf.name, primal[id.index()]);
        }
    }
    for (buf, id) in &f.outputs {
        let t = tangents[id.index()];
        let t = rules::or_zero(&mut b, t, buf.len);
        b.output(&format!("d{}", buf.name), t);
    }
    crate::opt::dce(&b.finish())
}

/// Reverse mode: `f` plus a cotangent argument `w<out>` for each output; outputs
/// `g<x>` = Jᵀ·(cotangents) for each argument `x` in `wrt` (after `f`'s outputs when `fused`).
pub fn vjp(f: &Function, wrt: &[&str], fused: bool) -> Function {
    let mut b = Builder::new(format!("{}_vjp", f.name));
    let primal = copy_primal(f, &mut b);
    let seeds: Vec<NodeId> = f
        .outputs
        .iter()
        .map(|(buf, _)| b.arg(&format!("w{}", buf.name), buf.len))
        .collect();
    let grads = reverse::sweep(f, &mut b, &primal, &seeds);
    if fused {
        for (buf, id) in &f.outputs {
            b.output(&buf.name, primal[id.index()]);
        }
    }
    for (k, a) in f.args.iter().enumerate() {
        if wrt.contains(&a.name.as_str()) {
            let g = rules::or_zero(&mut b, grads[k], a.len);
            b.output(&format!("g{}", a.name), g);
        }
    }
    crate::opt::dce(&b.finish())
}

/// The dense Jacobian of output 0 with respect to argument `wrt`, as output `jac` in
/// COLUMN-major order (column k is the JVP with unit seed e_k), optionally after `f`'s own
/// outputs (a fused f+J kernel sharing subexpressions).
pub fn jacobian_dense(f: &Function, wrt: &str, fused: bool) -> Function {
    let mut b = Builder::new(format!("{}_jac", f.name));
    let primal = copy_primal(f, &mut b);
    let k_arg = f
        .arg_index(wrt)
        .expect("differentiate with respect to an argument of the function");
    let n = f.args[k_arg].len;
    let (out_buf, out_id) = f.outputs[0].clone();
    let mut columns = Vec::with_capacity(n);
    for k in 0..n {
        let e = unit(&mut b, n, k);
        let tangents = forward::sweep(f, &mut b, &primal, &|a, _| (a == k_arg).then_some(e));
        columns.push(rules::or_zero(
            &mut b,
            tangents[out_id.index()],
            out_buf.len,
        ));
    }
    if fused {
        for (buf, id) in &f.outputs {
            b.output(&buf.name, primal[id.index()]);
        }
    }
    let jac = b.push(Node::Concat(columns));
    b.output("jac", jac);
    crate::opt::dce(&b.finish())
}

/// The unit vector e_k of length n, built so that indexing it folds to constants.
fn unit(b: &mut Builder, n: usize, k: usize) -> NodeId {
    let zero = b.constant(0.0);
    let one = b.constant(1.0);
    let mut parts = Vec::new();
    if k > 0 {
        parts.push(b.push(Node::Broadcast(zero, k as u32)));
    }
    parts.push(one);
    if k + 1 < n {
        parts.push(b.push(Node::Broadcast(zero, (n - k - 1) as u32)));
    }
    b.push(Node::Concat(parts))
}

/// A sparse Jacobian kernel: `compressed = [J·s_0, J·s_1, …]` for the colour seeds s_c,
/// and the table that turns it into CSR values.
#[derive(Clone, Debug, PartialEq)]
pub struct SparseJacobian {
    /// Arguments: `f`'s, then `seeds` (colours × n, colour-major). Output `compressed`
    /// (colours × rows, colour-major).
    pub function: Function,
    pub pattern: Pattern,
    pub colours: usize,
    /// The seed argument's contents (1 where column j has colour c).
    pub seeds: Vec<f64>,
    /// For each nonzero in CSR order, its position in `compressed`.
    pub gather: Vec<u32>,
}

/// The sparse Jacobian of output 0 with respect to argument `wrt`, or `None` when the
/// structural analysis finds it too dense to be worth it.
pub fn jacobian_sparse(f: &Function, wrt: &str) -> Option<SparseJacobian> {
    let k_arg = f.arg_index(wrt)?;
    let pattern = sparsity::pattern(f, 0, k_arg)?;
    let n = pattern.n_cols;
    let rows = pattern.n_rows;
    let colour = sparsity::colour_columns(&pattern);
    let colours = colour.iter().map(|c| *c as usize + 1).max().unwrap_or(0);
    let mut seeds = vec![0.0; colours * n];
    for (j, c) in colour.iter().enumerate() {
        seeds[*c as usize * n + j] = 1.0;
    }
    let mut b = Builder::new(format!("{}_jac_sparse", f.name));
    let primal = copy_primal(f, &mut b);
    let seed_arg = b.arg("seeds", colours * n);
    let out_id = f.outputs[0].1;
    let mut blocks = Vec::with_capacity(colours);
    for c in 0..colours {
        let s = b.push(Node::Gather {
            v: seed_arg,
            start: (c * n) as u32,
            stride: 1,
            len: n as u32,
        });
        let tangents = forward::sweep(f, &mut b, &primal, &|a, _| (a == k_arg).then_some(s));
        blocks.push(rules::or_zero(&mut b, tangents[out_id.index()], rows));
    }
    let compressed = b.push(Node::Concat(blocks));
    b.output("compressed", compressed);
    let mut gather = Vec::with_capacity(pattern.nnz());
    for i in 0..rows {
        for &j in &pattern.cols[pattern.row_ptr[i]..pattern.row_ptr[i + 1]] {
            gather.push((colour[j] as usize * rows + i) as u32);
        }
    }
    Some(SparseJacobian {
        function: crate::opt::dce(&b.finish()),
        pattern,
        colours,
        seeds,
        gather,
    })
}

/// The forward-sensitivity system of a vector field `f(t, u, p)` for all `np` params:
/// a function of `(t, U, p)` with `U = [u, S_0, …, S_{np-1}]` (each S_k = ∂u/∂p_k, length
/// n) returning `[f, J_u S_0 + ∂f/∂p_0, …]`. One forward sweep per param, so it suits
/// models with few params; the ∂f/∂p_k seeds are constant unit vectors, so only the
/// terms that really depend on p_k are emitted.
///
/// A delay model's lagged states `lagJ` (length n) become augmented `LAGJ` of the same
/// layout as `U` (the lagged state and its sensitivities), adding
/// `∂f/∂lagJ · S_k(t − τ_J)` to each sensitivity: the system is itself a delay equation
/// with the same delays (delays that depend on p are not differentiated here).
///
/// With `state_columns`, n more blocks follow the params' (`S_{np+j}` = ∂u/∂u0_j, with no
/// ∂f/∂p term: S' = J_u S): the sensitivities to a given initial state.
pub fn forward_sensitivity_system(f: &Function, state_columns: bool) -> Function {
    let u_arg = f.arg_index("u").expect("a vector field has u");
    let p_arg = f.arg_index("p").expect("a vector field has p");
    let n = f.args[u_arg].len;
    let np = f.args[p_arg].len;
    // Sensitivity blocks: one per param, then (optionally) one per state entry.
    let blocks = np + if state_columns { n } else { 0 };
    let mut b = Builder::new(format!("{}_forward_sensitivity", f.name));
    let mut arg_nodes = Vec::with_capacity(f.args.len());
    // The augmented arguments: (index in f.args, the whole augmented buffer).
    let mut augmented: Vec<(usize, NodeId)> = Vec::new();
    for (k, a) in f.args.iter().enumerate() {
        let is_lag = a.len == n
            && a.name
                .strip_prefix("lag")
                .is_some_and(|d| !d.is_empty() && d.bytes().all(|c| c.is_ascii_digit()));
        if k == u_arg || is_lag {
            let name = if k == u_arg {
                "U".to_string()
            } else {
                a.name.to_uppercase()
            };
            let whole = b.arg(&name, n * (1 + blocks));
            augmented.push((k, whole));
            arg_nodes.push(b.push(Node::Gather {
                v: whole,
                start: 0,
                stride: 1,
                len: n as u32,
            }));
        } else {
            arg_nodes.push(b.arg(&a.name, a.len));
        }
    }
    let mut primal: Vec<NodeId> = Vec::with_capacity(f.nodes.len());
    for node in &f.nodes {
        let id = match node {
            Node::Arg(k) => arg_nodes[*k as usize],
            other => b.push(other.map_children(|c| primal[c.index()])),
        };
        primal.push(id);
    }
    let out_id = f.outputs[0].1;
    let mut pieces = vec![primal[out_id.index()]];
    for k in 0..blocks {
        // Tangent of each augmented argument: its k-th sensitivity block.
        let mut seeds: Vec<Option<NodeId>> = vec![None; f.args.len()];
        for &(a, whole) in &augmented {
            seeds[a] = Some(b.push(Node::Gather {
                v: whole,
                start: (n * (1 + k)) as u32,
                stride: 1,
                len: n as u32,
            }));
        }
        seeds[p_arg] = (k < np).then(|| unit(&mut b, np, k));
        let tangents = forward::sweep(f, &mut b, &primal, &|a, _| seeds[a]);
        pieces.push(rules::or_zero(&mut b, tangents[out_id.index()], n));
    }
    let out = b.push(Node::Concat(pieces));
    b.output("dU", out);
    crate::opt::dce(&b.finish())
}
