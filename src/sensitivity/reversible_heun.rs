//! Gradients of SDE losses on a fixed Brownian path through reversible Heun (Kidger, Foster,
//! Li & Lyons 2021, "Efficient and Accurate Gradients for Neural SDEs").
//!
//! Reversible Heun carries (y, ŷ) and the Stratonovich drift μ = f_S(t, ŷ) and diffusion
//! σ = G(t, ŷ) at ŷ; one step over [t_k, t_k + h] with increment ΔW is
//!   ŷ' = 2y − ŷ + μh + σΔW,   (μ', σ') = (f_S, G)(t_k + h, ŷ'),
//!   y' = y + ½(μ + μ')h + ½(σ + σ')ΔW,
//! and it is algebraically reversible: ŷ = 2y' − ŷ' − μ'h − σ'ΔW, then (μ, σ) at ŷ and
//! y = y' − ½(μ + μ')h − ½(σ + σ')ΔW. The forward pass here replays the runtime's steps,
//! increments and arithmetic exactly (so the loss is the solver's, bit for bit); the backward
//! pass carries the cotangents (a_y, a_ŷ) of every step end through the exact adjoint of that
//! map, with one call per step end of the generated drift+diffusion VJP fused with its primal:
//! μ_k and σ_k enter ŷ_{k+1} (weights h, ΔW_k), y_{k+1} (½h, ½ΔW_k) and y_k (½h_{k−1},
//! ½ΔW_{k−1}), so their VJP at ŷ_k takes those three cotangents at once. The states the
//! backward pass needs come either
//! - reconstructed from the final state by the reversal above ([`Backward::Reconstruct`], the
//!   `reversible` sensitivity: memory independent of the number of steps), or
//! - stored by the forward pass ([`Backward::Stored`], the `discrete` sensitivity).
//!
//! Both are the exact gradient of the discretised solve; they differ only by the rounding of
//! the reconstruction, which [`Reversal::reconstruction_error`] reports at t0. Works on the
//! grid path (increments keyed by step number) and on the Brownian tree. Owns these two
//! adjoints; must never choose a sensitivity for the user (that is [`super::sde`]) or step
//! any other method.

use super::sde::{Row, SdeKernels, Steps, invalid, saved_rows};
use super::{Gradient, GradientError, RowLoss, Start};
use crate::program::Program;
use crate::runtime::sde::{
    BrownianKind, BrownianTree, GridPath, SdeMethod, SdeOptions, SdeRhs, apply_diffusion,
};
use crate::runtime::{FailReason, SolveError, Stats};

/// Where the backward pass gets each step's ŷ.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backward {
    /// Reverse every step from the final state (O(1) memory in the number of steps).
    Reconstruct,
    /// Store ŷ of every step end in the forward pass.
    Stored,
}

/// A gradient through reversible Heun.
#[derive(Clone, Debug)]
pub struct Reversal {
    pub gradient: Gradient,
    /// max_i max(|y_0,i − u0_i|, |ŷ_0,i − u0_i|) of the states the backward pass reconstructed
    /// at t0 (0 for [`Backward::Stored`]).
    pub reconstruction_error: f64,
}

/// The sizes of one problem: n states, m Wiener processes, G's storage.
#[derive(Clone, Copy)]
struct Shape {
    n: usize,
    m: usize,
    diag: bool,
    /// n for diagonal noise (G's diagonal), else n·m (column-major).
    glen: usize,
}

/// Reversible Heun's state at a step end: y, ŷ and μ, σ at ŷ.
#[derive(Clone)]
struct Node {
    y: Vec<f64>,
    yhat: Vec<f64>,
    mu: Vec<f64>,
    sig: Vec<f64>,
}

impl Node {
    fn zeros(s: Shape) -> Node {
        Node {
            y: vec![0.0; s.n],
            yhat: vec![0.0; s.n],
            mu: vec![0.0; s.n],
            sig: vec![0.0; s.glen],
        }
    }
}

/// The Brownian increments of the runtime's fixed steps, in any order.
enum Increments {
    Grid(GridPath),
    Tree(BrownianTree, Vec<f64>),
}

impl Increments {
    fn new(opts: &SdeOptions, m: usize) -> Increments {
        match opts.brownian() {
            BrownianKind::Grid => Increments::Grid(GridPath::new(opts.seed, opts.traj, m)),
            BrownianKind::Tree => Increments::Tree(
                BrownianTree::new(opts.seed, opts.traj, m, opts.t0, opts.t1),
                vec![0.0; m],
            ),
        }
    }

    /// ΔW over step k, as the runtime forms it.
    fn at(&mut self, steps: &Steps, k: u64, dw: &mut [f64]) {
        match self {
            Increments::Grid(g) => g.increment(k, steps.at(k).2, dw),
            Increments::Tree(tree, wa) => {
                tree.value(steps.time(k + 1), dw);
                tree.value(steps.time(k), wa);
                for (d, a) in dw.iter_mut().zip(wa.iter()) {
                    *d -= a;
                }
            }
        }
    }
}

/// One forward step a → b (the runtime's arithmetic); `gdw` scratch of length n.
fn step(
    rhs: &mut impl SdeRhs,
    s: Shape,
    (tb, h): (f64, f64),
    dw: &[f64],
    a: &Node,
    b: &mut Node,
    gdw: (&mut [f64], &mut [f64]),
) {
    let (ga, gb) = gdw;
    apply_diffusion(&a.sig, dw, s.n, s.m, s.diag, ga);
    for (i, yh) in b.yhat.iter_mut().enumerate() {
        *yh = 2.0 * a.y[i] - a.yhat[i] + a.mu[i] * h + ga[i];
    }
    rhs.drift_diffusion(tb, &b.yhat, &mut b.mu, &mut b.sig);
    apply_diffusion(&b.sig, dw, s.n, s.m, s.diag, gb);
    for i in 0..s.n {
        b.y[i] = a.y[i] + 0.5 * (a.mu[i] + b.mu[i]) * h + 0.5 * (ga[i] + gb[i]);
    }
}

/// The reversal's first half: ŷ of step start a from step end b.
fn unstep_yhat(s: Shape, h: f64, dw: &[f64], b: &Node, a: &mut Node, gb: &mut [f64]) {
    apply_diffusion(&b.sig, dw, s.n, s.m, s.diag, gb);
    for (i, yh) in a.yhat.iter_mut().enumerate() {
        *yh = 2.0 * b.y[i] - b.yhat[i] - b.mu[i] * h - gb[i];
    }
}

/// The reversal's second half (μ, σ at a's ŷ known): y of a. `gb` holds σ_b·ΔW.
fn unstep_y(s: Shape, h: f64, dw: &[f64], b: &Node, a: &mut Node, ga: &mut [f64], gb: &[f64]) {
    apply_diffusion(&a.sig, dw, s.n, s.m, s.diag, ga);
    for i in 0..s.n {
        a.y[i] = b.y[i] - 0.5 * (a.mu[i] + b.mu[i]) * h - 0.5 * (ga[i] + gb[i]);
    }
}

/// The step end (node) whose state a saved row reads last.
fn last_node(r: &Row) -> usize {
    match *r {
        Row::End(k) => k,
        Row::Between(k, _) => k + 1,
    }
}

/// A saved row's value from y at its last node (`cur`) and the node before (`prev`).
fn row_value(r: &Row, prev: &[f64], cur: &[f64], out: &mut Vec<f64>) {
    match *r {
        Row::End(_) => out.extend_from_slice(cur),
        Row::Between(_, th) => out.extend(prev.iter().zip(cur).map(|(a, b)| a + th * (b - a))),
    }
}

/// What the forward pass leaves for the backward one.
struct Forward {
    last: Node,
    t_rows: Vec<f64>,
    u_rows: Vec<f64>,
    /// ŷ of every step end ([`Backward::Stored`] only).
    stored: Vec<f64>,
    u0: Vec<f64>,
    stats: Stats,
}

/// The loss of trajectory (`opts.seed`, `opts.traj`) solved by reversible Heun on its
/// Brownian path (grid or tree), and its gradient with respect to `p` by `backward`.
pub fn gradient(
    prog: &Program,
    kernels: &SdeKernels,
    p: &[f64],
    start: Start,
    opts: &SdeOptions,
    loss: &dyn RowLoss,
    backward: Backward,
) -> Result<Reversal, GradientError> {
    if opts.method != SdeMethod::ReversibleHeun {
        return Err(GradientError::Unsupported(format!(
            "the reversible-Heun adjoint differentiates reversible_heun, not `{}`",
            opts.method
        )));
    }
    opts.validate(prog.dim()).map_err(|e| invalid(opts.t0, e))?;
    let mut rhs = prog
        .sde_rhs(p)
        .ok_or_else(|| GradientError::Unsupported("the model has no `brownian` noise".into()))?;
    let shape = Shape {
        n: rhs.dim(),
        m: rhs.noise_dim(),
        diag: rhs.diagonal(),
        glen: if rhs.diagonal() {
            rhs.dim()
        } else {
            rhs.dim() * rhs.noise_dim()
        },
    };
    let steps = Steps::new(opts);
    let save = opts.save_times().map_err(|e| invalid(opts.t0, e))?;
    let rows = saved_rows(&steps, &save);
    let u0 = start.state(prog, p);
    let fwd = forward(&mut rhs, shape, &steps, opts, &rows, &save, u0, backward)?;
    let mut seeds = vec![0.0; fwd.u_rows.len()];
    let mut grad = vec![0.0; p.len()];
    let value = loss.eval(&fwd.t_rows, &fwd.u_rows, shape.n, &mut seeds, &mut grad);
    let sweep = Sweep {
        kernels,
        p,
        shape,
        steps: &steps,
        backward,
    };
    let (l0, y0) = sweep.run(
        &fwd,
        &rows,
        &seeds,
        Increments::new(opts, shape.m),
        &mut grad,
    );
    let reconstruction_error = match backward {
        Backward::Stored => 0.0,
        Backward::Reconstruct => (0..shape.n)
            .map(|i| {
                (y0.y[i] - fwd.u0[i])
                    .abs()
                    .max((y0.yhat[i] - fwd.u0[i]).abs())
            })
            .fold(0.0, f64::max),
    };
    let input_cotangent = start.input_cotangent(&l0);
    if let Some(l0) = start.model_cotangent(&l0) {
        let mut g0 = vec![0.0; p.len()];
        kernels
            .initial_vjp
            .call(&[p, &l0], &mut [&mut g0], &mut Vec::new());
        for (g, x) in grad.iter_mut().zip(&g0) {
            *g += x;
        }
    }
    Ok(Reversal {
        gradient: Gradient {
            loss: value,
            grad,
            start: input_cotangent,
            stats: fwd.stats,
        },
        reconstruction_error,
    })
}

/// The forward solve: the runtime's reversible Heun steps, the saved rows, and (stored
/// backward) every ŷ.
#[allow(clippy::too_many_arguments)]
fn forward(
    rhs: &mut impl SdeRhs,
    s: Shape,
    steps: &Steps,
    opts: &SdeOptions,
    rows: &[Row],
    save: &[f64],
    u0: Vec<f64>,
    backward: Backward,
) -> Result<Forward, GradientError> {
    let mut path = Increments::new(opts, s.m);
    let mut cur = Node::zeros(s);
    cur.y.copy_from_slice(&u0);
    cur.yhat.copy_from_slice(&u0);
    rhs.drift_diffusion(steps.t0, &u0, &mut cur.mu, &mut cur.sig);
    let mut next = Node::zeros(s);
    let mut stats = Stats {
        rhs_evals: 1,
        ..Stats::default()
    };
    let (mut dw, mut ga, mut gb) = (vec![0.0; s.m], vec![0.0; s.n], vec![0.0; s.n]);
    let mut u_rows = Vec::with_capacity(rows.len() * s.n);
    let mut r = 0;
    while r < rows.len() && last_node(&rows[r]) == 0 {
        row_value(&rows[r], &u0, &u0, &mut u_rows);
        r += 1;
    }
    let mut stored = Vec::new();
    if backward == Backward::Stored {
        stored.extend_from_slice(&u0);
    }
    for k in 0..steps.count {
        let (ta, h, _) = steps.at(k);
        path.at(steps, k, &mut dw);
        let tb = steps.time(k + 1);
        step(rhs, s, (tb, h), &dw, &cur, &mut next, (&mut ga, &mut gb));
        stats.steps += 1;
        stats.accepted += 1;
        stats.rhs_evals += 1;
        if !next.y.iter().all(|x| x.is_finite()) {
            return Err(GradientError::Solve(SolveError {
                t: ta,
                reason: FailReason::NonFiniteState,
                stats,
            }));
        }
        std::mem::swap(&mut cur, &mut next);
        while r < rows.len() && last_node(&rows[r]) == k as usize + 1 {
            row_value(&rows[r], &next.y, &cur.y, &mut u_rows);
            r += 1;
        }
        if backward == Backward::Stored {
            stored.extend_from_slice(&cur.yhat);
        }
    }
    Ok(Forward {
        last: cur,
        t_rows: save.to_vec(),
        u_rows,
        stored,
        u0,
        stats,
    })
}

/// The loss's cotangent on y at each step end, from the saved rows: (node, row, weight),
/// sorted by node.
fn node_seeds(rows: &[Row]) -> Vec<(usize, usize, f64)> {
    let mut out = Vec::with_capacity(2 * rows.len());
    for (i, r) in rows.iter().enumerate() {
        match *r {
            Row::End(k) => out.push((k, i, 1.0)),
            Row::Between(k, th) => out.extend([(k, i, 1.0 - th), (k + 1, i, th)]),
        }
    }
    out.sort_by_key(|e| e.0);
    out
}

/// The backward pass of one gradient.
struct Sweep<'a> {
    kernels: &'a SdeKernels,
    p: &'a [f64],
    shape: Shape,
    steps: &'a Steps,
    backward: Backward,
}

/// Cotangents of one step end: of y and of ŷ (the latter including everything that flows
/// through μ and σ at ŷ).
struct Cotangent {
    y: Vec<f64>,
    yhat: Vec<f64>,
}

impl Sweep<'_> {
    /// Accumulates the sweep's parameter gradient into `grad`; returns the cotangent of u0
    /// and the node at t0 (reconstructed, or only its ŷ when stored).
    fn run(
        &self,
        fwd: &Forward,
        rows: &[Row],
        seeds: &[f64],
        mut path: Increments,
        grad: &mut [f64],
    ) -> (Vec<f64>, Node) {
        let s = self.shape;
        let last = self.steps.count as usize;
        let mut entries = node_seeds(rows);
        let mut hi = fwd.last.clone();
        let mut lo = Node::zeros(s);
        let mut above: Option<Cotangent> = None;
        let (mut dw_hi, mut dw_lo) = (vec![0.0; s.m], vec![0.0; s.m]);
        let (mut ga, mut gb) = (vec![0.0; s.n], vec![0.0; s.n]);
        let mut scratch = Vec::new();
        for j in (0..=last).rev() {
            if j > 0 {
                path.at(self.steps, j as u64 - 1, &mut dw_lo);
            }
            let h_hi = (j < last).then(|| self.steps.at(j as u64).1);
            // ŷ_j: the final state's, reconstructed from node j + 1, or stored.
            let node = if j == last {
                &mut hi
            } else {
                match self.backward {
                    Backward::Reconstruct => {
                        unstep_yhat(s, h_hi.unwrap_or(0.0), &dw_hi, &hi, &mut lo, &mut gb)
                    }
                    Backward::Stored => {
                        lo.yhat.copy_from_slice(&fwd.stored[j * s.n..(j + 1) * s.n])
                    }
                }
                &mut lo
            };
            let mut ay = vec![0.0; s.n];
            while let Some(&(_, r, w)) = entries.last().filter(|e| e.0 == j) {
                for i in 0..s.n {
                    ay[i] += w * seeds[r * s.n + i];
                }
                entries.pop();
            }
            if let Some(a) = &above {
                for (i, x) in ay.iter_mut().enumerate() {
                    *x += a.y[i] + 2.0 * a.yhat[i];
                }
            }
            let (wf, wg) = self.weights(j, above.as_ref(), &ay, &dw_hi, &dw_lo);
            let (mut gu, mut gp) = (vec![0.0; s.n], vec![0.0; self.p.len()]);
            let t = self.steps.time(j as u64);
            let (mut mu, mut sig) = (vec![0.0; s.n], vec![0.0; s.glen]);
            self.kernels.drift_diffusion_vjp.call(
                &[&[t], &node.yhat, self.p, &wf, &wg],
                &mut [&mut mu, &mut sig, &mut gu, &mut gp],
                &mut scratch,
            );
            if j < last {
                node.mu = mu;
                node.sig = sig;
            }
            for (g, x) in grad.iter_mut().zip(&gp) {
                *g += x;
            }
            let mut ayhat = gu;
            if let Some(a) = &above {
                for (x, a) in ayhat.iter_mut().zip(&a.yhat) {
                    *x -= a;
                }
            }
            if j < last {
                if self.backward == Backward::Reconstruct {
                    let h = h_hi.unwrap_or(0.0);
                    unstep_y(s, h, &dw_hi, &hi, &mut lo, &mut ga, &gb);
                }
                std::mem::swap(&mut hi, &mut lo);
            }
            above = Some(Cotangent { y: ay, yhat: ayhat });
            std::mem::swap(&mut dw_hi, &mut dw_lo);
        }
        let a = above.expect("at least one node");
        let l0 = (0..s.n).map(|i| a.y[i] + a.yhat[i]).collect();
        (l0, hi)
    }

    /// The cotangents of μ_j and σ_j: from step j (ŷ_{j+1} with weights h_j, ΔW_j; y_{j+1}
    /// with ½h_j, ½ΔW_j) and from step j − 1 (y_j with ½h_{j−1}, ½ΔW_{j−1}).
    fn weights(
        &self,
        j: usize,
        above: Option<&Cotangent>,
        ay: &[f64],
        dw_hi: &[f64],
        dw_lo: &[f64],
    ) -> (Vec<f64>, Vec<f64>) {
        let s = self.shape;
        let (mut wf, mut wg) = (vec![0.0; s.n], vec![0.0; s.glen]);
        let mut add = |a: &[f64], hw: f64, dw: &[f64]| {
            for i in 0..s.n {
                wf[i] += hw * a[i];
            }
            if s.diag {
                for i in 0..s.n {
                    wg[i] += a[i] * dw[i];
                }
            } else {
                for (jj, d) in dw.iter().enumerate() {
                    for i in 0..s.n {
                        wg[jj * s.n + i] += a[i] * d;
                    }
                }
            }
        };
        if let Some(c) = above {
            let h = self.steps.at(j as u64).1;
            let mix: Vec<f64> = (0..s.n).map(|i| c.yhat[i] + 0.5 * c.y[i]).collect();
            add(&mix, h, dw_hi);
        }
        if j > 0 {
            let h = self.steps.at(j as u64 - 1).1;
            let half: Vec<f64> = ay.iter().map(|a| 0.5 * a).collect();
            add(&half, h, dw_lo);
        }
        (wf, wg)
    }
}
