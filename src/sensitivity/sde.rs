//! Gradients of SDE losses on a fixed Brownian path: the discrete adjoint of Euler–Maruyama.
//!
//! Trajectory (seed, traj) of an Euler–Maruyama solve is a deterministic function of the
//! params: u_{k+1} = u_k + f_I(t_k, u_k)·h_k + G(t_k, u_k)·ΔW_k with the grid path's
//! increments (the runtime's `GridPath`, keyed by step number). The forward pass here replays
//! exactly the runtime's steps, increments and arithmetic (a test checks the states are the
//! solver's bit for bit); the backward pass carries λ = ∂L/∂u_{k+1} through one generated
//! VJP of the fused step kernel `sde_ito(t, u, p, dw) → (f_I, G·dw)` per step, with
//! cotangents (h·λ, λ). Saved rows between steps are the runtime's linear interpolation and
//! are differentiated as such.

use super::{Gradient, GradientError, RowLoss, Sensitivity, Start};
use crate::backend::Kernel;
use crate::program::Program;
use crate::runtime::sde::{GridPath, SdeMethod, SdeOptions};
use crate::runtime::{FailReason, SolveError, Stats};
use std::sync::Arc;

/// The kernels of the SDE adjoints: the fused Itô step and its VJP (Euler–Maruyama), the
/// drift+diffusion VJP fused with its primal (reversible Heun), and the initial state's VJP.
pub struct SdeKernels {
    /// `(t, u, p, dw) → (f_I, G·dw)`.
    pub step: Arc<dyn Kernel>,
    /// `(t, u, p, dw, wf, wgdw) → (gu, gp)`.
    pub step_vjp: Arc<dyn Kernel>,
    /// `(t, u, p, wf, wg) → (f_S, G, gu, gp)`: the Stratonovich drift and the diffusion
    /// (its diagonal for diagonal noise, else column-major n × m) with their VJP.
    pub drift_diffusion_vjp: Arc<dyn Kernel>,
    pub initial_vjp: Arc<dyn Kernel>,
}

impl SdeKernels {
    pub fn compile(prog: &Program) -> Result<SdeKernels, String> {
        let sde = prog
            .ir
            .sde
            .as_ref()
            .ok_or("the model has no `brownian` noise")?;
        let vjp = crate::diff::vjp(&sde.step_ito, &["u", "p"], false);
        let dd_vjp = crate::diff::vjp(&sde.drift_diffusion, &["u", "p"], true);
        let init = crate::diff::vjp(&prog.ir.initial, &["p"], false);
        let ks = crate::backend::cranelift::compile_all(&[&sde.step_ito, &vjp, &dd_vjp, &init])
            .map_err(|e| e.to_string())?;
        let mut ks = ks.into_iter().map(|k| Arc::new(k) as Arc<dyn Kernel>);
        Ok(SdeKernels {
            step: ks.next().ok_or("missing kernel")?,
            step_vjp: ks.next().ok_or("missing kernel")?,
            drift_diffusion_vjp: ks.next().ok_or("missing kernel")?,
            initial_vjp: ks.next().ok_or("missing kernel")?,
        })
    }
}

/// The SDE sensitivities: `discrete` for euler_maruyama (this module) and reversible_heun
/// (stored steps), `reversible` for reversible_heun (steps reconstructed backward).
pub fn supports(method: SdeMethod, sensitivity: Sensitivity) -> bool {
    matches!(
        (method, sensitivity),
        (SdeMethod::EulerMaruyama, Sensitivity::Discrete)
            | (
                SdeMethod::ReversibleHeun,
                Sensitivity::Discrete | Sensitivity::Reversible
            )
    )
}

/// The `auto` sensitivity of an SDE method: `discrete` for euler_maruyama, `reversible` (O(1)
/// memory in the number of steps) for reversible_heun; `None` for methods without one.
pub fn auto(method: SdeMethod) -> Option<Sensitivity> {
    match method {
        SdeMethod::EulerMaruyama => Some(Sensitivity::Discrete),
        SdeMethod::ReversibleHeun => Some(Sensitivity::Reversible),
        _ => None,
    }
}

/// The loss of trajectory (`opts.seed`, `opts.traj`) on its fixed Brownian path and its
/// gradient by `sensitivity` (see [`supports`]).
pub fn path_gradient(
    prog: &Program,
    kernels: &SdeKernels,
    p: &[f64],
    start: Start,
    opts: &SdeOptions,
    loss: &dyn RowLoss,
    sensitivity: Sensitivity,
) -> Result<Gradient, GradientError> {
    use super::reversible_heun::{Backward, gradient as rh};
    match (opts.method, sensitivity) {
        (SdeMethod::EulerMaruyama, Sensitivity::Discrete) => {
            gradient(prog, kernels, p, start, opts, loss)
        }
        (SdeMethod::ReversibleHeun, Sensitivity::Discrete) => {
            rh(prog, kernels, p, start, opts, loss, Backward::Stored).map(|r| r.gradient)
        }
        (SdeMethod::ReversibleHeun, Sensitivity::Reversible) => {
            rh(prog, kernels, p, start, opts, loss, Backward::Reconstruct).map(|r| r.gradient)
        }
        (m, s) => Err(GradientError::Unsupported(format!(
            "no `{}` gradient through `{m}`: use euler_maruyama with discrete, or reversible_heun with reversible or discrete",
            s.name()
        ))),
    }
}

/// The loss of trajectory (`opts.seed`, `opts.traj`) solved by Euler–Maruyama on its grid
/// path, and its gradient with respect to `p`.
pub fn gradient(
    prog: &Program,
    kernels: &SdeKernels,
    p: &[f64],
    start: Start,
    opts: &SdeOptions,
    loss: &dyn RowLoss,
) -> Result<Gradient, GradientError> {
    if opts.method != SdeMethod::EulerMaruyama || opts.path.is_some() {
        return Err(GradientError::Unsupported(
            "SDE gradients run through euler_maruyama on the grid path".into(),
        ));
    }
    opts.validate(prog.dim()).map_err(|e| invalid(opts.t0, e))?;
    let (n, m) = (prog.dim(), prog.ir.sde.as_ref().map_or(0, |s| s.m));
    let steps = Steps::new(opts);
    let save = opts.save_times().map_err(|e| invalid(opts.t0, e))?;
    // Forward: every step's start state and increment, and the saved rows.
    let mut path = GridPath::new(opts.seed, opts.traj, m);
    let mut scratch = Vec::new();
    let (mut f, mut gdw) = (vec![0.0; n], vec![0.0; n]);
    let mut us = start.state(prog, p);
    let mut dws = vec![0.0; steps.count as usize * m];
    let mut stats = Stats::default();
    for k in 0..steps.count {
        let (ta, h, sq) = steps.at(k);
        let dw = &mut dws[k as usize * m..(k as usize + 1) * m];
        path.increment(k, sq, dw);
        let u = &us[k as usize * n..];
        kernels.step.call(
            &[&[ta], &u[..n], p, dw],
            &mut [&mut f, &mut gdw],
            &mut scratch,
        );
        let next: Vec<f64> = (0..n).map(|i| u[i] + f[i] * h + gdw[i]).collect();
        if !next.iter().all(|x| x.is_finite()) {
            return Err(GradientError::Solve(SolveError {
                t: ta,
                reason: FailReason::NonFiniteState,
                stats,
            }));
        }
        us.extend_from_slice(&next);
        stats.steps += 1;
        stats.accepted += 1;
        stats.rhs_evals += 1;
    }
    let rows = saved_rows(&steps, &save);
    let (mut t_rows, mut u_rows) = (Vec::new(), Vec::new());
    for (s, r) in save.iter().zip(&rows) {
        t_rows.push(*s);
        u_rows.extend(r.value(&us, n));
    }
    let mut seeds = vec![0.0; u_rows.len()];
    let mut grad = vec![0.0; p.len()];
    let value = loss.eval(&t_rows, &u_rows, n, &mut seeds, &mut grad);
    // Cotangents of every step end, then the reverse sweep.
    let mut ubar = vec![0.0; us.len()];
    for (i, r) in rows.iter().enumerate() {
        r.seed(&mut ubar, &seeds[i * n..(i + 1) * n], n);
    }
    let (mut gu, mut gp) = (vec![0.0; n], vec![0.0; p.len()]);
    let mut wf = vec![0.0; n];
    for k in (0..steps.count as usize).rev() {
        let (ta, h, _) = steps.at(k as u64);
        let lambda: Vec<f64> = ubar[(k + 1) * n..(k + 2) * n].to_vec();
        for (w, l) in wf.iter_mut().zip(&lambda) {
            *w = h * l;
        }
        let u = &us[k * n..(k + 1) * n];
        let dw = &dws[k * m..(k + 1) * m];
        kernels.step_vjp.call(
            &[&[ta], u, p, dw, &wf, &lambda],
            &mut [&mut gu, &mut gp],
            &mut scratch,
        );
        for i in 0..n {
            ubar[k * n + i] += lambda[i] + gu[i];
        }
        for (g, x) in grad.iter_mut().zip(&gp) {
            *g += x;
        }
    }
    if let Some(l0) = start.model_cotangent(&ubar[..n]) {
        let mut g0 = vec![0.0; p.len()];
        kernels
            .initial_vjp
            .call(&[p, &l0], &mut [&mut g0], &mut scratch);
        for (g, x) in grad.iter_mut().zip(&g0) {
            *g += x;
        }
    }
    Ok(Gradient {
        loss: value,
        grad,
        start: start.input_cotangent(&ubar[..n]),
        stats,
    })
}

pub(super) fn invalid(t: f64, e: String) -> GradientError {
    GradientError::Solve(SolveError {
        t,
        reason: FailReason::InvalidInput(e),
        stats: Stats::default(),
    })
}

/// The runtime's fixed steps: ends t0 + k·dt (the last one t1), √h of each.
pub(super) struct Steps {
    pub(super) t0: f64,
    t1: f64,
    dt: f64,
    pub(super) count: u64,
}

impl Steps {
    pub(super) fn new(o: &SdeOptions) -> Steps {
        let dt = o.dt.expect("validated: euler_maruyama has a dt");
        Steps {
            t0: o.t0,
            t1: o.t1,
            dt,
            count: ((o.t1 - o.t0) / dt - 1e-9).ceil().max(1.0) as u64,
        }
    }

    pub(super) fn time(&self, k: u64) -> f64 {
        if k >= self.count {
            self.t1
        } else {
            self.t0 + k as f64 * self.dt
        }
    }

    /// Start, length and the √h the runtime scales step k's normals by.
    pub(super) fn at(&self, k: u64) -> (f64, f64, f64) {
        let (ta, tb) = (self.time(k), self.time(k + 1));
        let sq = if k + 1 < self.count {
            self.dt.sqrt()
        } else {
            (self.t1 - self.time(self.count - 1)).sqrt()
        };
        (ta, tb - ta, sq)
    }
}

/// A saved row as the runtime forms it: a step end, or (1 − θ)·u_k + θ·u_{k+1}.
pub(super) enum Row {
    End(usize),
    Between(usize, f64),
}

impl Row {
    fn value(&self, us: &[f64], n: usize) -> Vec<f64> {
        match *self {
            Row::End(k) => us[k * n..(k + 1) * n].to_vec(),
            Row::Between(k, th) => (0..n)
                .map(|i| us[k * n + i] + th * (us[(k + 1) * n + i] - us[k * n + i]))
                .collect(),
        }
    }

    fn seed(&self, ubar: &mut [f64], s: &[f64], n: usize) {
        match *self {
            Row::End(k) => (0..n).for_each(|i| ubar[k * n + i] += s[i]),
            Row::Between(k, th) => {
                for i in 0..n {
                    ubar[k * n + i] += (1.0 - th) * s[i];
                    ubar[(k + 1) * n + i] += th * s[i];
                }
            }
        }
    }
}

/// The row of each save time: those equal to t0 first, then the runtime saver's rule per
/// step (within 1e-9 of a step of an end: that end).
pub(super) fn saved_rows(steps: &Steps, save: &[f64]) -> Vec<Row> {
    let at_t0 = save.iter().take_while(|s| **s == steps.t0).count();
    let mut rows: Vec<Row> = (0..at_t0).map(|_| Row::End(0)).collect();
    let mut next = at_t0;
    for k in 0..steps.count {
        let (ta, h, _) = steps.at(k);
        let tb = steps.time(k + 1);
        while next < save.len() && save[next] <= tb + 1e-9 * h {
            let th = (save[next] - ta) / h;
            rows.push(if th >= 1.0 - 1e-9 {
                Row::End(k as usize + 1)
            } else if th <= 1e-9 {
                Row::End(k as usize)
            } else {
                Row::Between(k as usize, th)
            });
            next += 1;
        }
    }
    rows.truncate(save.len());
    rows
}
