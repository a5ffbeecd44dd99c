//! The discrete adjoint: reverse mode through the explicit solver's own accepted steps.
//!
//! The forward solve records its steps ([`Trace`]); the backward pass walks them last to
//! first, carrying λ = ∂L/∂u_{n+1}, and for each step differentiates exactly what the solver
//! computed: the stages k_i = f(t + c_i h, z_i) with z_i = u_n + h Σ_j a_ij k_j, the update
//! u_{n+1} = u_n + h Σ b_j k_j, and the dense output of every save point inside the step
//! (stage weights u_n + h Σ w_j(θ) k_j, or cubic Hermite from u_n, f_n, u_{n+1}, f_{n+1}).
//! Step sizes are constants (the controller's choices are not differentiated), so the
//! result is the exact gradient of the computed loss for the computed step sequence; it
//! equals forward sensitivities taken with the same steps to rounding.
//!
//! Every stage VJP is one call of the generated kernel `(t, u, p, w) → (wᵀ∂f/∂u, wᵀ∂f/∂p)`.
//! With a checkpoint limit the trace keeps only some start states and each segment is
//! recomputed (same arithmetic as the solver, so the same values) before it is reversed.

use super::{AdjointKernels, Gradient, GradientError, RowLoss, Start, VjpCall};
use crate::program::Program;
use crate::runtime::dense;
use crate::runtime::tableau::{DenseKind, Tableau};
use crate::runtime::{OdeRhs, Solution, SolveOptions, Trace, solve_traced};

/// The loss and its gradient with respect to `p` by the discrete adjoint. `checkpoints`
/// bounds the number of stored states (`None`: keep every step).
pub fn gradient(
    prog: &Program,
    kernels: &AdjointKernels,
    p: &[f64],
    start: Start,
    opts: &SolveOptions,
    loss: &dyn RowLoss,
    checkpoints: Option<usize>,
) -> Result<Gradient, GradientError> {
    let tape = record(prog, p, start, opts, checkpoints)?;
    Ok(reverse(prog, kernels, &tape, p, start, loss))
}

/// A recorded forward solve: the solution and the steps the discrete adjoint reverses (see
/// [`record`]). Plain data; reversed any number of times with [`reverse`].
pub struct Tape {
    sol: Solution,
    trace: Trace,
    u0: Vec<f64>,
    opts: SolveOptions,
}

impl Tape {
    /// The solution of the recorded solve (the same arithmetic as a plain solve).
    pub fn solution(&self) -> &Solution {
        &self.sol
    }
}

/// Solves from `start` at `p` and records what the discrete adjoint needs. `checkpoints`
/// bounds the number of stored states (`None`: keep every step's states and stages).
pub fn record(
    prog: &Program,
    p: &[f64],
    start: Start,
    opts: &SolveOptions,
    checkpoints: Option<usize>,
) -> Result<Tape, GradientError> {
    let method = opts.method;
    let (Some(_), Some(kind)) = (method.tableau(), method.dense_kind()) else {
        return Err(GradientError::Unsupported(format!(
            "the discrete adjoint runs through explicit Runge–Kutta steps; `{method}` is not one (use --sensitivity interpolating or forward)"
        )));
    };
    if kind == DenseKind::Vern7 {
        return Err(GradientError::Unsupported(
            "the discrete adjoint does not support vern7's interpolant; use tsit5 or dopri5".into(),
        ));
    }
    let u0 = start.state(prog, p);
    let mut trace = Trace::new(checkpoints);
    let mut rhs = prog.rhs(p);
    let sol = solve_traced(&mut rhs, &u0, opts, Some(&mut trace))?;
    Ok(Tape {
        sol,
        trace,
        u0,
        opts: opts.clone(),
    })
}

/// The loss on a recorded solve and its gradient: the reverse sweep of [`record`]'s steps.
/// `p` and `start` must be those the tape was recorded with.
pub fn reverse(
    prog: &Program,
    kernels: &AdjointKernels,
    tape: &Tape,
    p: &[f64],
    start: Start,
    loss: &dyn RowLoss,
) -> Gradient {
    let (sol, trace, u0, opts) = (&tape.sol, &tape.trace, &tape.u0, &tape.opts);
    let method = opts.method;
    let (tab, kind) = (
        method.tableau().expect("recorded by an explicit method"),
        method.dense_kind().expect("recorded by an explicit method"),
    );
    let n = prog.dim();
    let mut rhs = prog.rhs(p);
    let mut seeds = vec![0.0; sol.u.len()];
    let mut direct = vec![0.0; p.len()];
    let value = loss.eval(&sol.t, &sol.u, n, &mut seeds, &mut direct);

    let rows = RowsByStep::of(&sol.t, trace, opts.t0);
    let mut back = Backward::new(tab, kind, n, p.len(), kernels, p);
    let mut lambda = vec![0.0; n];
    let mut seg = Segment::default();
    for step in (0..trace.len()).rev() {
        let (u, k) = seg.step(step, trace, tab, &mut rhs);
        back.step(
            trace,
            step,
            u,
            k,
            rows.step(step),
            &sol.t,
            &seeds,
            &mut lambda,
        );
    }
    back.flush_first_stage(opts.t0, u0, &mut lambda);
    for r in rows.initial.clone() {
        add(&mut lambda, &seeds[r * n..(r + 1) * n]);
    }
    let mut grad = back.gp;
    for (g, d) in grad.iter_mut().zip(&direct) {
        *g += d;
    }
    if let Some(l0) = start.model_cotangent(&lambda) {
        kernels.initial_vjp(p, &l0, &mut grad);
    }
    Gradient {
        loss: value,
        grad,
        start: start.input_cotangent(&lambda),
        stats: sol.stats,
    }
}

/// The save rows each step produced, and the rows at t0 before the first step (the
/// solver's own assignment: a row belongs to the first step whose end reaches it). Rows
/// ascend with the steps, so each step's are a range: step `s` produced
/// `bounds[s]..bounds[s + 1]`.
struct RowsByStep {
    initial: std::ops::Range<usize>,
    bounds: Vec<usize>,
}

impl RowsByStep {
    fn of(save_t: &[f64], trace: &Trace, t0: f64) -> RowsByStep {
        let mut r = 0;
        while r < save_t.len() && save_t[r] == t0 {
            r += 1;
        }
        if trace.is_empty() {
            // A solve that did not step (t0 == t1) reports every row at t0.
            return RowsByStep {
                initial: 0..save_t.len(),
                bounds: vec![save_t.len()],
            };
        }
        let initial = 0..r;
        let mut bounds = Vec::with_capacity(trace.len() + 1);
        bounds.push(r);
        for (step, &t_end) in trace.t_end.iter().enumerate() {
            let dir = trace.h[step].signum();
            while r < save_t.len() && (save_t[r] - t_end) * dir <= 0.0 {
                r += 1;
            }
            bounds.push(r);
        }
        RowsByStep { initial, bounds }
    }

    fn step(&self, step: usize) -> std::ops::Range<usize> {
        self.bounds[step]..self.bounds[step + 1]
    }
}

/// The start states and stages of the steps of one checkpoint segment, recomputed when the
/// trace does not keep them.
#[derive(Default)]
struct Segment {
    first: usize,
    u: Vec<f64>,
    k: Vec<f64>,
    valid: bool,
}

impl Segment {
    /// The start state and stages of `step` (walking steps in reverse order).
    fn step<'a>(
        &'a mut self,
        step: usize,
        trace: &'a Trace,
        tab: &Tableau,
        rhs: &mut dyn OdeRhs,
    ) -> (&'a [f64], &'a [f64]) {
        let (n, s) = (trace.dim, trace.stages);
        if trace.keeps_stages() {
            return (
                &trace.ckpt_u[step * n..(step + 1) * n],
                &trace.k[step * s * n..(step + 1) * s * n],
            );
        }
        if !self.valid || step < self.first {
            let c = trace.checkpoint_before(step);
            self.first = trace.ckpt_step[c];
            let count = step + 1 - self.first;
            self.u.resize(count * n, 0.0);
            self.k.resize(count * s * n, 0.0);
            self.u[..n].copy_from_slice(&trace.ckpt_u[c * n..(c + 1) * n]);
            let mut z = vec![0.0; n];
            for j in 0..count {
                let idx = self.first + j;
                let (t, h) = (trace.t[idx], trace.h[idx]);
                let (us, rest) = self.u.split_at_mut((j + 1) * n);
                let u = &us[j * n..];
                let k = &mut self.k[j * s * n..(j + 1) * s * n];
                replay(tab, rhs, t, h, u, k, &mut z);
                if j + 1 < count {
                    next_state(tab, h, u, k, &mut rest[..n]);
                }
            }
            self.valid = true;
        }
        let j = step - self.first;
        (
            &self.u[j * n..(j + 1) * n],
            &self.k[j * s * n..(j + 1) * s * n],
        )
    }
}

/// Recomputes the stages of one step from its start state.
fn replay(
    tab: &Tableau,
    rhs: &mut dyn OdeRhs,
    t: f64,
    h: f64,
    u: &[f64],
    k: &mut [f64],
    z: &mut [f64],
) {
    let n = u.len();
    rhs.eval(t, u, &mut k[..n]);
    for i in 1..tab.stages() {
        stage_input(&tab.a[i], h, u, k, z);
        let (_, rest) = k.split_at_mut(i * n);
        rhs.eval(t + tab.c[i] * h, z, &mut rest[..n]);
    }
}

/// z = u + h Σ_j coef_j k_j, in the solver's arithmetic order (zero terms skipped, stages
/// ascending, the sum formed before it is scaled), so recomputed values are the solver's.
fn stage_input(coef: &[f64], h: f64, u: &[f64], k: &[f64], z: &mut [f64]) {
    let n = u.len();
    for i in 0..n {
        let mut acc = 0.0;
        for (j, &c) in coef.iter().enumerate() {
            if c != 0.0 {
                acc += c * k[j * n + i];
            }
        }
        z[i] = u[i] + h * acc;
    }
}

/// u_{n+1} as the solver forms it (an FSAL method's last stage input, else the b-weights).
fn next_state(tab: &Tableau, h: f64, u: &[f64], k: &[f64], out: &mut [f64]) {
    if tab.fsal {
        stage_input(&tab.a[tab.stages() - 1], h, u, k, out);
    } else {
        stage_input(&tab.b, h, u, k, out);
    }
}

/// acc += c·x.
fn add_scaled(acc: &mut [f64], c: f64, x: &[f64]) {
    for (a, b) in acc.iter_mut().zip(x) {
        *a += c * b;
    }
}

fn add(acc: &mut [f64], x: &[f64]) {
    for (a, b) in acc.iter_mut().zip(x) {
        *a += b;
    }
}

/// The reverse sweep's buffers: stage cotangents, stage inputs, the p-gradient.
struct Backward<'a> {
    tab: &'a Tableau,
    kind: DenseKind,
    n: usize,
    vjp: VjpCall<'a>,
    kbar: Vec<f64>,
    z: Vec<f64>,
    u_next: Vec<f64>,
    ubar: Vec<f64>,
    f1bar: Vec<f64>,
    /// FSAL: the later step's first-stage cotangent, not yet pulled back. That stage was
    /// evaluated at this step's end — it is this step's last stage — so one VJP of the sum
    /// serves both.
    pending: Vec<f64>,
    w: Vec<f64>,
    gp: Vec<f64>,
}

impl<'a> Backward<'a> {
    fn new(
        tab: &'a Tableau,
        kind: DenseKind,
        n: usize,
        np: usize,
        kernels: &'a AdjointKernels,
        p: &'a [f64],
    ) -> Self {
        let s = tab.stages();
        Backward {
            tab,
            kind,
            n,
            vjp: kernels.vjp_call(p),
            kbar: vec![0.0; s * n],
            z: vec![0.0; n],
            u_next: vec![0.0; n],
            ubar: vec![0.0; n],
            f1bar: vec![0.0; n],
            pending: vec![0.0; n],
            w: vec![0.0; s],
            gp: vec![0.0; np],
        }
    }

    /// Reverses one step: on entry `lambda` = ∂L/∂u_{n+1} from later steps, on exit ∂L/∂u_n.
    #[allow(clippy::too_many_arguments)]
    fn step(
        &mut self,
        trace: &Trace,
        step: usize,
        u: &[f64],
        k: &[f64],
        rows: std::ops::Range<usize>,
        save_t: &[f64],
        seeds: &[f64],
        lambda: &mut [f64],
    ) {
        let (n, tab) = (self.n, self.tab);
        let s = tab.stages();
        let (t, h, t_end) = (trace.t[step], trace.h[step], trace.t_end[step]);
        self.kbar.fill(0.0);
        self.ubar.fill(0.0);
        self.f1bar.fill(0.0);
        let mut hermite_used = false;
        for r in rows {
            let seed = &seeds[r * n..(r + 1) * n];
            if save_t[r] == t_end {
                add(lambda, seed);
                continue;
            }
            let theta = (save_t[r] - t) / h;
            if dense::stage_weights(self.kind, theta, &mut self.w) {
                add(&mut self.ubar, seed);
                for j in 0..s {
                    let c = h * self.w[j];
                    if c != 0.0 {
                        add_scaled(&mut self.kbar[j * n..(j + 1) * n], c, seed);
                    }
                }
            } else {
                // u(θ) = (1−θ)u0 + θu1 + θ(θ−1)[(1−2θ)(u1−u0) + (θ−1)h f0 + θ h f1].
                let a = theta * (theta - 1.0);
                let c_u0 = 1.0 - theta - a * (1.0 - 2.0 * theta);
                let c_u1 = theta + a * (1.0 - 2.0 * theta);
                let (c_f0, c_f1) = (a * (theta - 1.0) * h, a * theta * h);
                for i in 0..n {
                    self.ubar[i] += c_u0 * seed[i];
                    lambda[i] += c_u1 * seed[i];
                    self.kbar[i] += c_f0 * seed[i];
                    self.f1bar[i] += c_f1 * seed[i];
                }
                hermite_used = true;
            }
        }
        next_state(tab, h, u, k, &mut self.u_next);
        if hermite_used {
            if tab.fsal {
                add(&mut self.kbar[(s - 1) * n..], &self.f1bar);
            } else {
                // f1 = f(t_end, u_{n+1}), evaluated by the solver for the interpolation.
                self.vjp.call(t_end, &self.u_next, &self.f1bar);
                add(lambda, &self.vjp.gu);
                add(&mut self.gp, &self.vjp.gp);
            }
        }
        // An FSAL method's last stage reads u_{n+1} itself: its cotangent joins λ before λ
        // flows into the update.
        let last_regular = if tab.fsal {
            add(&mut self.kbar[(s - 1) * n..], &self.pending);
            self.pending.fill(0.0);
            let kb = &self.kbar[(s - 1) * n..];
            if kb.iter().any(|x| *x != 0.0) {
                self.vjp.call(t + tab.c[s - 1] * h, &self.u_next, kb);
                add(lambda, &self.vjp.gu);
                add(&mut self.gp, &self.vjp.gp);
            }
            s - 1
        } else {
            s
        };
        // u_{n+1} = u_n + h Σ_j b_j k_j (FSAL: the last stage row).
        add(&mut self.ubar, lambda);
        let weights = if tab.fsal { &tab.a[s - 1] } else { &tab.b };
        for (j, &b) in weights.iter().enumerate().take(last_regular) {
            if b != 0.0 {
                add_scaled(&mut self.kbar[j * n..(j + 1) * n], h * b, lambda);
            }
        }
        // Stages in reverse: k_i = f(t + c_i h, z_i), z_i = u_n + h Σ_{j<i} a_ij k_j.
        for i in (0..last_regular).rev() {
            let kb = &self.kbar[i * n..(i + 1) * n];
            if kb.iter().all(|x| *x == 0.0) {
                continue;
            }
            if i == 0 && tab.fsal {
                // Pulled back together with the earlier step's last stage (see `pending`).
                self.pending.copy_from_slice(kb);
                continue;
            }
            if i == 0 {
                self.z.copy_from_slice(u);
            } else {
                stage_input(&tab.a[i], h, u, k, &mut self.z);
            }
            self.vjp.call(t + tab.c[i] * h, &self.z, kb);
            add(&mut self.gp, &self.vjp.gp);
            add(&mut self.ubar, &self.vjp.gu);
            for (j, &a) in tab.a[i].iter().enumerate() {
                if a != 0.0 {
                    add_scaled(&mut self.kbar[j * n..(j + 1) * n], h * a, &self.vjp.gu);
                }
            }
        }
        lambda.copy_from_slice(&self.ubar);
    }

    /// After the first step: pulls back its first stage's pending cotangent at (t0, u0).
    fn flush_first_stage(&mut self, t0: f64, u0: &[f64], lambda: &mut [f64]) {
        if self.pending.iter().any(|x| *x != 0.0) {
            self.vjp.call(t0, u0, &self.pending);
            add(lambda, &self.vjp.gu);
            add(&mut self.gp, &self.vjp.gp);
            self.pending.fill(0.0);
        }
    }
}
