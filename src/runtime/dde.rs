//! Delay differential equations with constant delays, u'(t) = f(t, u(t), u(t − τ_1), …,
//! u(t − τ_m)), u(t) = φ(t) for t < t0, u(t0) = u0: the method of steps on the shared
//! explicit RK loop.
//!
//! - **History.** Lagged values u(s), s = t − τ_j, come from the history function φ for
//!   s < t0 and, for s ≥ t0, from the dense output of the steps accepted so far (each
//!   accepted step is recorded through [`OdeRhs::step_accepted`]: its start and end states
//!   and stages; found by binary search and evaluated with the method's own interpolant,
//!   tsit5's and dopri5's 4th-order ones, cubic Hermite for the others).
//! - **Step bound.** Every step is at most min τ_j long (`dtmax` is lowered to it; a
//!   fixed `dt` above it is refused), so every lagged time of every stage lies at or before
//!   the current step's start: the history it reads is complete, never extrapolated.
//! - **Discontinuities.** The solution's derivatives jump at t0 (the history meets the
//!   initial value there) and, propagated by the delays, at t0 + Σ n_j τ_j. A jump in a
//!   derivative of order above the method's order does not spoil it, so the points with
//!   Σ n_j ≤ order + 1 (which covers a jump in the value at t0 too) are tracked: the solve
//!   runs piecewise between consecutive ones, each piece a fresh solve (stages restart
//!   there, the step-size controller too) that ends exactly on the point. At a point d,
//!   the piece that ends at d sees the left limits of the lagged values, the next one
//!   starts with the right limits (this matters only at t0 itself, when φ(t0) ≠ u0).
//!   [`DdeOptions::track_discontinuities`] = false turns this off (one piece), to measure
//!   what it buys.
//!
//! Explicit methods and the stiff ones (rosenbrock23, rodas5, bdf: their Jacobian is ∂f/∂u
//! with the lagged values held fixed, and their history is the cubic Hermite interpolant of
//! the accepted steps, which caps rodas5's order near 4). vern7 is refused (`InvalidInput`):
//! its own interpolant needs lazy extra stages, and a cubic Hermite history would cap it far
//! below order 7.

use super::dense;
use super::integrate::{self, Method, SaveAt, Solution, SolveOptions};
use super::tableau::DenseKind;
use super::{FailReason, OdeJacobian, OdeRhs, SolveError, Stats, stiff};

/// A delay differential equation's right-hand side (see the module docs).
pub trait DdeRhs {
    fn dim(&self) -> usize;
    /// The delays τ_j (each > 0), in the order of the lagged-value blocks of `eval`.
    fn delays(&self) -> &[f64];
    /// The history φ(t) for t < t0 (t0 itself: its left limit).
    fn history(&mut self, t: f64, u: &mut [f64]);
    /// `du = f(t, u, lags)`, where `lags[j*dim..(j+1)*dim]` is u(t − τ_j).
    fn eval(&mut self, t: f64, u: &[f64], lags: &[f64], du: &mut [f64]);
    /// ∂f/∂u at (t, u, lags), the lagged values held fixed, row-major (`jac[i*dim + k]`),
    /// for the stiff methods. Return `false` (the default) when not implemented: forward
    /// differences are used then.
    fn jac(&mut self, _t: f64, _u: &[f64], _lags: &[f64], _jac: &mut [f64]) -> bool {
        false
    }
}

/// DDE-specific options (the rest is [`SolveOptions`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DdeOptions {
    /// Step exactly onto the propagated discontinuities (default true).
    pub track_discontinuities: bool,
}

impl Default for DdeOptions {
    fn default() -> Self {
        DdeOptions {
            track_discontinuities: true,
        }
    }
}

/// The most discontinuity points tracked (many delays give many combinations).
const MAX_BREAKPOINTS: usize = 100_000;

/// How a recorded step is interpolated.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Interp {
    /// The explicit method's own continuous extension from its stages.
    Stages(DenseKind),
    /// Cubic Hermite from the ends' values and slopes (`k` holds f at both ends).
    Hermite,
    /// rodas5's 4th-order dense output (`k` holds its coefficients K1, K2, K3).
    Rodas,
}

/// The accepted steps of a DDE solve, with what their dense output needs.
#[derive(Clone, Debug)]
pub struct DdeHistory {
    pub dim: usize,
    pub t0: f64,
    /// The initial state u0 (the solution at t0 from the right).
    pub u0: Vec<f64>,
    interp: Interp,
    /// Vectors of `k` per step.
    stages: usize,
    /// Per step: start time, signed size, start state, end state, and the interpolant's
    /// vectors (see [`Interp`]).
    t: Vec<f64>,
    h: Vec<f64>,
    u: Vec<f64>,
    u1: Vec<f64>,
    k: Vec<f64>,
    /// Per step: whether it starts a piece (there a lag landing on t0 reads u0, not φ(t0)).
    piece_first: Vec<bool>,
    /// Tolerance for "s is t0" (rounding of (t0 + τ) − τ).
    pub t0_tol: f64,
}

/// Where a lagged value u(s) was read from during the solve.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LagSource {
    /// The history function φ(s) (s < t0, or s = t0 inside a piece: the left limit).
    History(f64),
    /// The initial state (s = t0 at the start of a piece: the right limit; or no step yet).
    Initial,
    /// The interpolant of recorded step `step` at θ.
    Step { step: usize, theta: f64 },
}

impl DdeHistory {
    fn new(method: Method, dim: usize, t0: f64, u0: &[f64], t0_tol: f64) -> DdeHistory {
        let (interp, stages) = match method.dense_kind() {
            Some(d @ (DenseKind::Dopri5 | DenseKind::Poly4(_))) => {
                (Interp::Stages(d), method.stages())
            }
            _ if method == Method::Rodas5 => (Interp::Rodas, 3),
            _ => (Interp::Hermite, 2),
        };
        DdeHistory {
            dim,
            t0,
            u0: u0.to_vec(),
            interp,
            stages,
            t: Vec::new(),
            h: Vec::new(),
            u: Vec::new(),
            u1: Vec::new(),
            k: Vec::new(),
            piece_first: Vec::new(),
            t0_tol,
        }
    }

    /// Step `i`: start time, length, start state and the interpolant's vectors (for an
    /// explicit method with its own continuous extension: the stages, stage-major).
    pub fn step(&self, i: usize) -> (f64, f64, &[f64], &[f64]) {
        let (n, s) = (self.dim, self.stages);
        (
            self.t[i],
            self.h[i],
            &self.u[i * n..(i + 1) * n],
            &self.k[i * s * n..(i + 1) * s * n],
        )
    }

    /// The explicit method's continuous extension, when the history interpolates with it.
    pub fn stage_interpolant(&self) -> Option<DenseKind> {
        match self.interp {
            Interp::Stages(kind) => Some(kind),
            Interp::Hermite | Interp::Rodas => None,
        }
    }

    /// Whether step `i` starts a piece.
    pub fn piece_first(&self, i: usize) -> bool {
        self.piece_first[i]
    }

    /// Where u(s) is read from when only the first `recorded` steps exist, by a stage at
    /// the start of a piece (`piece_start`: there a lag landing on t0 takes the right limit
    /// u0, elsewhere the left limit φ(t0)). The solver and the adjoint both ask this.
    pub fn lag_source(&self, s: f64, recorded: usize, piece_start: bool) -> LagSource {
        let at_t0 = (s - self.t0).abs() <= self.t0_tol;
        if s < self.t0 && !at_t0 {
            return LagSource::History(s);
        }
        if at_t0 {
            return match piece_start {
                true => LagSource::Initial,
                false => LagSource::History(self.t0),
            };
        }
        self.locate(s, recorded)
            .map_or(LagSource::Initial, |(step, theta)| LagSource::Step {
                step,
                theta,
            })
    }

    /// The step among the first `limit` whose interpolant gives u(s) (the last starting
    /// strictly before s; the first for s at or before its start), and θ; `None` if none.
    fn locate(&self, s: f64, limit: usize) -> Option<(usize, f64)> {
        let recorded = &self.t[..limit.min(self.t.len())];
        if recorded.is_empty() {
            return None;
        }
        let i = recorded.partition_point(|&ts| ts < s).saturating_sub(1);
        Some((i, (s - self.t[i]) / self.h[i]))
    }

    /// Number of recorded steps.
    pub fn len(&self) -> usize {
        self.t.len()
    }

    pub fn is_empty(&self) -> bool {
        self.t.is_empty()
    }

    /// The end of the recorded solution (t0 before the first step).
    pub fn t_end(&self) -> f64 {
        match (self.t.last(), self.h.last()) {
            (Some(t), Some(h)) => t + h,
            _ => self.t0,
        }
    }

    /// u(s) for t0 ≤ s from the recorded steps (at a step boundary: the step ending there,
    /// which by continuity equals the one starting there). Before any step: u0.
    pub fn eval(&self, s: f64, out: &mut [f64]) {
        match self.locate(s, self.t.len()) {
            Some((i, theta)) => self.eval_step(i, theta, out),
            None => out.copy_from_slice(&self.u0),
        }
    }

    /// The value a [`LagSource`] other than `History` stands for.
    pub fn eval_source(&self, src: LagSource, out: &mut [f64]) {
        match src {
            LagSource::Step { step, theta } => self.eval_step(step, theta, out),
            LagSource::Initial => out.copy_from_slice(&self.u0),
            LagSource::History(_) => unreachable!("the history function is the caller's"),
        }
    }

    /// Step i's interpolant at θ.
    fn eval_step(&self, i: usize, theta: f64, out: &mut [f64]) {
        let dim = self.dim;
        let h = self.h[i];
        let u = &self.u[i * dim..(i + 1) * dim];
        let k = &self.k[i * self.stages * dim..(i + 1) * self.stages * dim];
        match self.interp {
            Interp::Stages(kind) => {
                let s_n = self.stages;
                let mut w = [0.0; 7];
                dense::stage_weights(kind, theta, &mut w[..s_n]);
                for (c, o) in out.iter_mut().enumerate() {
                    let mut acc = 0.0;
                    for j in 0..s_n {
                        acc += w[j] * k[j * dim + c];
                    }
                    *o = u[c] + h * acc;
                }
            }
            Interp::Hermite => {
                let u1 = &self.u1[i * dim..(i + 1) * dim];
                dense::hermite(theta, h, u, &k[..dim], u1, &k[dim..2 * dim], out);
            }
            Interp::Rodas => {
                // The form of `stiff::rosenbrock::Rodas5P::interp`.
                let u1 = &self.u1[i * dim..(i + 1) * dim];
                let t1 = 1.0 - theta;
                let (k1, k2, k3) = (&k[..dim], &k[dim..2 * dim], &k[2 * dim..]);
                for c in 0..dim {
                    out[c] = t1 * u[c]
                        + theta * (u1[c] + t1 * (k1[c] + theta * (k2[c] + theta * k3[c])));
                }
            }
        }
    }
}

/// The DDE as an ODE right-hand side for the shared loop: lagged values from the history.
struct Stepper<'a, D: DdeRhs + ?Sized> {
    f: &'a mut D,
    hist: DdeHistory,
    tau: Vec<f64>,
    lags: Vec<f64>,
    /// Start of the current piece: there the lagged values are right limits.
    piece_start: f64,
    /// Whether the method is FSAL (its last stage is f at the step's end).
    fsal: bool,
    /// rhs calls made here (f at a step's end for Hermite output).
    extra_evals: u64,
    /// f at the end of the last recorded step (time, value), reused as the next step's f at
    /// its start when the step has no stages to take it from (the stiff methods).
    f_end: Option<(f64, Vec<f64>)>,
    /// Scratch for forward-difference Jacobians.
    work: Vec<f64>,
}

impl<D: DdeRhs + ?Sized> Stepper<'_, D> {
    fn fill_lags(&mut self, t: f64) {
        let dim = self.hist.dim;
        let at_piece_start = t == self.piece_start;
        for j in 0..self.tau.len() {
            let src = self
                .hist
                .lag_source(t - self.tau[j], self.hist.len(), at_piece_start);
            let out = &mut self.lags[j * dim..(j + 1) * dim];
            match src {
                LagSource::History(s) => self.f.history(s, out),
                src => self.hist.eval_source(src, out),
            }
        }
    }
}

impl<D: DdeRhs + ?Sized> Stepper<'_, D> {
    /// f(t, u) with the lagged values at t (one counted extra call).
    fn f_at(&mut self, t: f64, u: &[f64]) -> Vec<f64> {
        let mut f = vec![0.0; self.hist.dim];
        self.fill_lags(t);
        self.f.eval(t, u, &self.lags, &mut f);
        self.extra_evals += 1;
        f
    }

    /// f at a step's start and end for the Hermite history. `k` holds the step's stages
    /// (explicit methods: k_0 = f at the start; the last stage is f at the end for FSAL
    /// ones) or nothing (stiff methods). Lagged times of f at the end are at or before t
    /// (h ≤ min τ), so already recorded.
    fn end_slopes(
        &mut self,
        t: f64,
        t_new: f64,
        u: &[f64],
        u_new: &[f64],
        k: &[f64],
    ) -> [Vec<f64>; 2] {
        let dim = self.hist.dim;
        let n = k.len() / dim;
        let f0 = if n >= 1 {
            k[..dim].to_vec()
        } else {
            match self.f_end.take() {
                Some((te, f)) if te == t && t != self.piece_start => f,
                _ => self.f_at(t, u),
            }
        };
        let f1 = if n >= 2 && self.fsal {
            k[(n - 1) * dim..n * dim].to_vec()
        } else {
            self.f_at(t_new, u_new)
        };
        self.f_end = Some((t_new, f1.clone()));
        [f0, f1]
    }
}

impl<D: DdeRhs + ?Sized> OdeJacobian for Stepper<'_, D> {
    fn jac(&mut self, t: f64, u: &[f64], jac: &mut [f64]) {
        self.fill_lags(t);
        if self.f.jac(t, u, &self.lags, jac) {
            return;
        }
        // Forward differences, column by column.
        let dim = self.hist.dim;
        self.work.resize(3 * dim, 0.0);
        let (f0, rest) = self.work.split_at_mut(dim);
        let (f1, up) = rest.split_at_mut(dim);
        self.f.eval(t, u, &self.lags, f0);
        up.copy_from_slice(u);
        for c in 0..dim {
            let h = f64::EPSILON.sqrt() * u[c].abs().max(1.0);
            up[c] = u[c] + h;
            self.f.eval(t, up, &self.lags, f1);
            up[c] = u[c];
            for r in 0..dim {
                jac[r * dim + c] = (f1[r] - f0[r]) / h;
            }
        }
    }
}

impl<D: DdeRhs + ?Sized> OdeRhs for Stepper<'_, D> {
    fn dim(&self) -> usize {
        self.hist.dim
    }

    fn eval(&mut self, t: f64, u: &[f64], du: &mut [f64]) {
        self.fill_lags(t);
        self.f.eval(t, u, &self.lags, du);
    }

    fn step_accepted(&mut self, t: f64, _h: f64, t_new: f64, u: &[f64], u_new: &[f64], k: &[f64]) {
        let dim = self.hist.dim;
        // Slopes first: f at the step's end reads lagged values from the steps recorded so far.
        let slopes = match self.hist.interp {
            Interp::Hermite => Some(self.end_slopes(t, t_new, u, u_new, k)),
            Interp::Stages(_) | Interp::Rodas => None,
        };
        let hist = &mut self.hist;
        hist.piece_first.push(t == self.piece_start);
        hist.t.push(t);
        // The step's real length (the last step of a piece ends exactly on its end).
        hist.h.push(t_new - t);
        hist.u.extend_from_slice(u);
        hist.u1.extend_from_slice(u_new);
        match slopes {
            Some([f0, f1]) => {
                hist.k.extend_from_slice(&f0);
                hist.k.extend_from_slice(&f1);
            }
            None => hist.k.extend_from_slice(&k[..hist.stages * dim]),
        }
    }
}

/// The propagated discontinuity points t0 + Σ n_j τ_j (1 ≤ Σ n_j ≤ `levels`) strictly inside
/// (t0, t1), ascending, points closer than a rounding error merged.
pub fn breakpoints(t0: f64, t1: f64, tau: &[f64], levels: u32) -> Vec<f64> {
    let mut all: Vec<f64> = Vec::new();
    let mut frontier = vec![t0];
    let scale = t0.abs().max(t1.abs()).max(1.0);
    let tol = 64.0 * f64::EPSILON * scale;
    for _ in 0..levels {
        let mut next = Vec::new();
        for &d in &frontier {
            for &tj in tau {
                let e = d + tj;
                if e < t1 - tol {
                    next.push(e);
                }
            }
        }
        next.sort_by(|a, b| a.total_cmp(b));
        next.dedup_by(|a, b| (*a - *b).abs() <= tol);
        all.extend_from_slice(&next);
        if all.len() > MAX_BREAKPOINTS || next.is_empty() {
            break;
        }
        frontier = next;
    }
    all.sort_by(|a, b| a.total_cmp(b));
    all.dedup_by(|a, b| (*a - *b).abs() <= tol);
    all.truncate(MAX_BREAKPOINTS);
    all
}

fn invalid(opts: &SolveOptions, msg: String) -> SolveError {
    SolveError {
        t: opts.t0,
        reason: FailReason::InvalidInput(msg),
        stats: Stats::default(),
    }
}

/// Solves the DDE (see the module docs) with an explicit method; also returns the dense
/// history of the accepted steps.
pub fn solve_dde_history<D: DdeRhs + ?Sized>(
    f: &mut D,
    u0: &[f64],
    opts: &SolveOptions,
    dopts: &DdeOptions,
) -> Result<(Solution, DdeHistory), SolveError> {
    let dim = f.dim();
    integrate::check_input(dim, u0, opts)?;
    if opts.method == Method::Vern7 {
        return Err(invalid(
            opts,
            "vern7 cannot solve delay equations here: its history would be read through a cubic Hermite interpolant, far below its order; use tsit5 or dopri5".into(),
        ));
    }
    if opts.method == Method::Auto {
        return Err(invalid(
            opts,
            "method auto cannot solve delay equations here: the history is kept in the method's own interpolant, which would change at every switch; choose tsit5, dopri5 or a stiff method".into(),
        ));
    }
    let (t0, t1) = (opts.t0, opts.t1);
    if t1 < t0 {
        return Err(invalid(
            opts,
            "a delay equation is solved forward in time only (t1 ≥ t0)".into(),
        ));
    }
    let tau = f.delays().to_vec();
    for &tj in &tau {
        if !(tj.is_finite() && tj > 0.0) {
            return Err(invalid(
                opts,
                format!("every delay must be finite and > 0 (got {tj})"),
            ));
        }
    }
    let tau_min = tau.iter().copied().fold(f64::INFINITY, f64::min);
    let mut base = opts.clone();
    if opts.is_fixed_step() {
        let dt = opts.dt.expect("validated").abs();
        if dt > tau_min {
            return Err(invalid(
                opts,
                format!(
                    "the step dt = {dt} exceeds the smallest delay {tau_min}: a delay equation needs dt ≤ min τ"
                ),
            ));
        }
    } else {
        base.dtmax = Some(opts.dtmax.unwrap_or(f64::INFINITY).min(tau_min));
        if let Some(dt) = base.dt {
            base.dt = Some(dt.abs().min(tau_min));
        }
    }
    let save = opts.save_times().expect("validated");
    // The pieces' ends.
    let mut ends = if dopts.track_discontinuities && !tau.is_empty() {
        breakpoints(t0, t1, &tau, opts.method.order() + 1)
    } else {
        Vec::new()
    };
    ends.push(t1);
    let scale = t0.abs().max(t1.abs()).max(1.0);
    let mut st = Stepper {
        f,
        hist: DdeHistory::new(opts.method, dim, t0, u0, 4.0 * f64::EPSILON * scale),
        lags: vec![0.0; tau.len() * dim],
        tau,
        piece_start: t0,
        fsal: opts.method.is_fsal(),
        extra_evals: 0,
        f_end: None,
        work: Vec::new(),
    };
    let mut stats = Stats::default();
    let mut out_t = Vec::with_capacity(save.len());
    let mut out_u = Vec::with_capacity(save.len() * dim);
    let mut u = u0.to_vec();
    let mut a = t0;
    let mut si = 0;
    // Save times at t0.
    while si < save.len() && save[si] <= t0 {
        out_t.push(t0);
        out_u.extend_from_slice(u0);
        si += 1;
    }
    if t0 == t1 {
        while si < save.len() {
            out_t.push(t1);
            out_u.extend_from_slice(u0);
            si += 1;
        }
        return Ok((
            Solution {
                t: out_t,
                u: out_u,
                stats,
                dim,
            },
            st.hist,
        ));
    }
    for &b in &ends {
        // Requested save times in (a, b]; b itself always (the next piece starts there).
        let mut times = Vec::new();
        let first = si;
        while si < save.len() && save[si] <= b {
            times.push(save[si]);
            si += 1;
        }
        let requested = times.len();
        let b_requested = times.last() == Some(&b);
        if !b_requested {
            times.push(b);
        }
        let mut o = base.clone();
        o.t0 = a;
        o.t1 = b;
        o.saveat = SaveAt::Times(times);
        o.max_steps = opts.max_steps.saturating_sub(stats.steps);
        // A piece after the first starts with the step the previous one was taking (its
        // last step is clipped onto the piece's end, so the larger of its last two):
        // Hairer's starting-step guess misfires where the solution crosses zero (a
        // breakpoint of x' = −x(t − 1) is such a place) and would ask for a step near 1e-14.
        if !o.is_fixed_step() && a > t0 {
            let n = st.hist.h.len();
            let last = st.hist.h[n.saturating_sub(2)..]
                .iter()
                .fold(0.0_f64, |m, h| m.max(h.abs()));
            if last > 0.0 {
                o.dt = Some(last.min(tau_min));
            }
        }
        st.piece_start = a;
        st.extra_evals = 0;
        let r = if o.method.is_implicit() {
            stiff::solve_stiff(&mut st, &u, &o)
        } else {
            integrate::solve_with(&mut st, &u, &o)
        };
        let mut sol = match r {
            Ok(s) => s,
            Err(mut e) => {
                e.stats.add(&stats);
                e.stats.rhs_evals += st.extra_evals;
                if let FailReason::MaxSteps { .. } = e.reason {
                    e.reason = FailReason::MaxSteps {
                        max_steps: opts.max_steps,
                    };
                }
                return Err(e);
            }
        };
        sol.stats.rhs_evals += st.extra_evals;
        stats.add(&sol.stats);
        // Rows: the piece's solution has t = a prepended only if a was requested (it was
        // not: SaveAt::Times starts at the requested ones), so rows match `times`.
        debug_assert_eq!(sol.len(), requested + usize::from(!b_requested));
        debug_assert_eq!(si - first, requested);
        out_t.extend_from_slice(&sol.t[..requested]);
        out_u.extend_from_slice(&sol.u[..requested * dim]);
        u.copy_from_slice(sol.last());
        a = b;
    }
    Ok((
        Solution {
            t: out_t,
            u: out_u,
            stats,
            dim,
        },
        st.hist,
    ))
}

/// As [`solve_dde_history`], the solution only.
pub fn solve_dde<D: DdeRhs + ?Sized>(
    f: &mut D,
    u0: &[f64],
    opts: &SolveOptions,
    dopts: &DdeOptions,
) -> Result<Solution, SolveError> {
    solve_dde_history(f, u0, opts, dopts).map(|(s, _)| s)
}

/// A DDE from closures: `history(t, u)` and `f(t, u, lags, du)`.
pub struct FnDde<H, F> {
    pub dim: usize,
    pub tau: Vec<f64>,
    pub history: H,
    pub f: F,
}

impl<H, F> DdeRhs for FnDde<H, F>
where
    H: FnMut(f64, &mut [f64]),
    F: FnMut(f64, &[f64], &[f64], &mut [f64]),
{
    fn dim(&self) -> usize {
        self.dim
    }
    fn delays(&self) -> &[f64] {
        &self.tau
    }
    fn history(&mut self, t: f64, u: &mut [f64]) {
        (self.history)(t, u)
    }
    fn eval(&mut self, t: f64, u: &[f64], lags: &[f64], du: &mut [f64]) {
        (self.f)(t, u, lags, du)
    }
}

#[cfg(test)]
mod tests;
