//! The discrete adjoint of a delay model's solve: reverse mode through the method of steps.
//!
//! The forward solve keeps every accepted step in its [`DdeHistory`] (start state, stages);
//! the backward pass walks the steps last to first, carrying λ = ∂L/∂u_{i+1}, and for each
//! stage k_j = f(t_j, z_j, lags_j) calls the generated VJP
//! `(t, u, p, lag0…, w) → (wᵀf_u, wᵀf_p, wᵀf_lag0, …)`. A lagged value was read either from
//! the history φ(s) (its VJP in p adds to the gradient), from u0 (a piece that starts where a
//! lag lands on t0), or from an earlier step's continuous extension
//! u_q + h_q Σ w_l(θ) k_{q,l}: its cotangent is scattered onto that step's start state and
//! stages and picked up when the walk reaches step q (every lag reads a step before the one
//! being taken, since steps are at most min τ long). Saved rows are that same interpolant.
//!
//! Step sizes and the pieces' ends are constants, so the result is the gradient of the
//! computed loss for the computed steps; it agrees with forward sensitivities
//! ([`super::forward::dde_gradient`]) to rounding. Explicit methods whose history is their
//! own continuous extension (tsit5, dopri5) only.

use super::{Gradient, GradientError, RowLoss, Start};
use crate::backend::Kernel;
use crate::program::Program;
use crate::runtime::dde::{DdeHistory, DdeOptions, LagSource};
use crate::runtime::dense;
use crate::runtime::tableau::{DenseKind, Tableau};
use crate::runtime::{Solution, SolveOptions};
use std::sync::Arc;

/// The VJPs a delay model's adjoint needs: of the vector field in (u, p, every lag) and of
/// the history in p.
pub struct DdeAdjointKernels {
    pub vjp: Arc<dyn Kernel>,
    pub history_vjp: Arc<dyn Kernel>,
    pub initial_vjp: Arc<dyn Kernel>,
}

impl DdeAdjointKernels {
    pub fn compile(prog: &Program) -> Result<DdeAdjointKernels, String> {
        let f = &prog.ir.vector_field;
        let mut wrt: Vec<&str> = vec!["u", "p"];
        wrt.extend(
            f.args
                .iter()
                .map(|a| a.name.as_str())
                .filter(|n| n.starts_with("lag")),
        );
        let vjp = crate::diff::vjp(f, &wrt, false);
        let history = crate::diff::vjp(&prog.ir.history, &["p"], false);
        let initial = crate::diff::vjp(&prog.ir.initial, &["p"], false);
        let ks = crate::backend::cranelift::compile_all(&[&vjp, &history, &initial])
            .map_err(|e| e.to_string())?;
        let mut ks = ks.into_iter().map(|k| Arc::new(k) as Arc<dyn Kernel>);
        Ok(DdeAdjointKernels {
            vjp: ks.next().ok_or("missing kernel")?,
            history_vjp: ks.next().ok_or("missing kernel")?,
            initial_vjp: ks.next().ok_or("missing kernel")?,
        })
    }
}

/// The loss and its gradient by the discrete adjoint of the method of steps.
pub fn gradient(
    prog: &Program,
    kernels: &DdeAdjointKernels,
    p: &[f64],
    start: Start,
    opts: &SolveOptions,
    loss: &dyn RowLoss,
) -> Result<Gradient, GradientError> {
    let method = opts.method;
    let unsupported = || {
        GradientError::Unsupported(format!(
            "the discrete adjoint of a delay model runs through tsit5's or dopri5's steps and continuous extension; `{method}` is not one (use --sensitivity forward)"
        ))
    };
    let tab = method.tableau().ok_or_else(unsupported)?;
    if !matches!(
        method.dense_kind(),
        Some(DenseKind::Dopri5 | DenseKind::Poly4(_))
    ) {
        return Err(unsupported());
    }
    super::delays_are_constant(prog, p)?;
    let u0 = start.state(prog, p);
    let (sol, hist) = prog.solve_dde(p, &u0, opts, &DdeOptions::default())?;
    let kind = hist.stage_interpolant().ok_or_else(unsupported)?;
    let n = prog.dim();
    let mut seeds = vec![0.0; sol.u.len()];
    let mut direct = vec![0.0; p.len()];
    let value = loss.eval(&sol.t, &sol.u, n, &mut seeds, &mut direct);

    let mut back = Backward::new(prog, kernels, &hist, tab, kind, p);
    back.seed_rows(&sol, &seeds);
    let mut lambda = vec![0.0; n];
    for i in (0..hist.len()).rev() {
        back.step(i, &mut lambda);
    }
    for (l, x) in lambda.iter_mut().zip(&back.lambda0) {
        *l += x;
    }
    let mut grad = back.gp;
    for (g, d) in grad.iter_mut().zip(&direct) {
        *g += d;
    }
    if let Some(l0) = start.model_cotangent(&lambda) {
        let mut g = vec![0.0; p.len()];
        kernels
            .initial_vjp
            .call(&[p, &l0], &mut [&mut g], &mut Vec::new());
        add(&mut grad, &g);
    }
    Ok(Gradient {
        loss: value,
        grad,
        start: start.input_cotangent(&lambda),
        stats: sol.stats,
    })
}

/// The backward walk's state: cotangents scattered onto steps not yet reversed.
struct Backward<'a> {
    prog: &'a Program,
    kernels: &'a DdeAdjointKernels,
    hist: &'a DdeHistory,
    tab: &'a Tableau,
    kind: DenseKind,
    p: &'a [f64],
    tau: Vec<f64>,
    n: usize,
    /// Per step: ∂L/∂(start state) and ∂L/∂(stages) from lagged reads and saved rows.
    acc_u: Vec<f64>,
    acc_k: Vec<f64>,
    /// ∂L/∂u0 from lags that read the initial state.
    lambda0: Vec<f64>,
    gp: Vec<f64>,
    weights: Vec<f64>,
    scratch: Vec<f64>,
}

impl<'a> Backward<'a> {
    fn new(
        prog: &'a Program,
        kernels: &'a DdeAdjointKernels,
        hist: &'a DdeHistory,
        tab: &'a Tableau,
        kind: DenseKind,
        p: &'a [f64],
    ) -> Self {
        let n = prog.dim();
        let s = tab.b.len();
        Backward {
            prog,
            kernels,
            hist,
            tab,
            kind,
            p,
            tau: prog.delays(p),
            n,
            acc_u: vec![0.0; hist.len() * n],
            acc_k: vec![0.0; hist.len() * s * n],
            lambda0: vec![0.0; n],
            gp: vec![0.0; p.len()],
            weights: vec![0.0; s.max(7)],
            scratch: Vec::new(),
        }
    }

    /// The saved rows' seeds: a row at t0 is u0; any other the interpolant of the step
    /// that ends at or after it.
    fn seed_rows(&mut self, sol: &Solution, seeds: &[f64]) {
        let n = self.n;
        for (r, &ts) in sol.t.iter().enumerate() {
            let seed = &seeds[r * n..(r + 1) * n];
            match self.hist.lag_source(ts, self.hist.len(), false) {
                LagSource::Step { step, theta } if ts > self.hist.t0 => {
                    self.scatter_step(step, theta, seed)
                }
                _ => add(&mut self.lambda0, seed),
            }
        }
    }

    /// ∂L/∂u(s) = `w` where u(s) = u_q + h_q Σ w_l(θ) k_{q,l}.
    fn scatter_step(&mut self, q: usize, theta: f64, w: &[f64]) {
        let (n, s) = (self.n, self.tab.b.len());
        let (_, h, _, _) = self.hist.step(q);
        add(&mut self.acc_u[q * n..(q + 1) * n], w);
        dense::stage_weights(self.kind, theta, &mut self.weights[..s]);
        for l in 0..s {
            let c = h * self.weights[l];
            let acc = &mut self.acc_k[(q * s + l) * n..(q * s + l + 1) * n];
            for (a, x) in acc.iter_mut().zip(w) {
                *a += c * x;
            }
        }
    }

    /// ∂L/∂(lagged value) = `w` for a value read from `src`.
    fn scatter_lag(&mut self, src: LagSource, w: &[f64]) {
        match src {
            LagSource::Initial => add(&mut self.lambda0, w),
            LagSource::Step { step, theta } => self.scatter_step(step, theta, w),
            LagSource::History(s) => {
                let mut g = vec![0.0; self.p.len()];
                self.kernels
                    .history_vjp
                    .call(&[&[s], self.p, w], &mut [&mut g], &mut self.scratch);
                add(&mut self.gp, &g);
            }
        }
    }

    /// The lagged values at stage `j` of step `i` and where each came from (as the solver
    /// read them: [`DdeHistory::lag_source`] with the steps before `i`).
    fn lags(&mut self, i: usize, j: usize, t: f64) -> (Vec<f64>, Vec<LagSource>) {
        let n = self.n;
        let at_piece_start = j == 0 && self.hist.piece_first(i);
        let history = &self.prog.dde.as_ref().expect("a delay model").history;
        let mut values = vec![0.0; self.tau.len() * n];
        let mut sources = Vec::with_capacity(self.tau.len());
        for (m, tm) in self.tau.iter().enumerate() {
            let src = self.hist.lag_source(t - tm, i, at_piece_start);
            let out = &mut values[m * n..(m + 1) * n];
            match src {
                LagSource::History(s) => {
                    history.call(&[&[s], self.p], &mut [out], &mut self.scratch)
                }
                src => self.hist.eval_source(src, out),
            }
            sources.push(src);
        }
        (values, sources)
    }

    /// Reverses step i: `lambda` is ∂L/∂u_{i+1} on entry and ∂L/∂u_i on exit.
    fn step(&mut self, i: usize, lambda: &mut [f64]) {
        let (n, s) = (self.n, self.tab.b.len());
        // `hist` and `tab` are shared borrows that outlive `self`'s: no copies of u and k.
        let (hist, tab) = (self.hist, self.tab);
        let (t, h, u, k) = hist.step(i);
        let mut kbar = self.acc_k[i * s * n..(i + 1) * s * n].to_vec();
        for j in 0..s {
            for c in 0..n {
                kbar[j * n + c] += h * tab.b[j] * lambda[c];
            }
        }
        let mut ubar = lambda.to_vec();
        add(&mut ubar, &self.acc_u[i * n..(i + 1) * n]);
        let m = self.tau.len();
        let mut outs: Vec<Vec<f64>> = vec![vec![0.0; n], vec![0.0; self.p.len()]];
        outs.extend((0..m).map(|_| vec![0.0; n]));
        let mut z = vec![0.0; n];
        for j in (0..s).rev() {
            if kbar[j * n..(j + 1) * n].iter().all(|x| *x == 0.0) {
                continue;
            }
            // z_j = u_i + h Σ_{l<j} a_jl k_l, at t_j = t_i + c_j h.
            z.copy_from_slice(u);
            for (l, a) in tab.a[j].iter().enumerate() {
                for c in 0..n {
                    z[c] += h * a * k[l * n + c];
                }
            }
            let tj = t + tab.c[j] * h;
            let (lags, sources) = self.lags(i, j, tj);
            {
                let tt = [tj];
                let mut args: Vec<&[f64]> = vec![&tt, &z, self.p];
                args.extend(lags.chunks_exact(n));
                args.push(&kbar[j * n..(j + 1) * n]);
                let mut out_refs: Vec<&mut [f64]> =
                    outs.iter_mut().map(|v| v.as_mut_slice()).collect();
                self.kernels
                    .vjp
                    .call(&args, &mut out_refs, &mut self.scratch);
            }
            add(&mut ubar, &outs[0]);
            add(&mut self.gp, &outs[1]);
            for (l, a) in tab.a[j].iter().enumerate() {
                for c in 0..n {
                    kbar[l * n + c] += h * a * outs[0][c];
                }
            }
            for (g, src) in outs[2..].iter().zip(sources) {
                self.scatter_lag(src, g);
            }
        }
        lambda.copy_from_slice(&ubar);
    }
}

fn add(a: &mut [f64], b: &[f64]) {
    for (x, y) in a.iter_mut().zip(b) {
        *x += y;
    }
}
