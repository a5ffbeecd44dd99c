//! The one stepping loop shared by every explicit RK method.
//!
//! `solve_with` dispatches once on the method to a loop monomorphised over the tableau (its
//! coefficients are compile-time constants) and over the vector field type, so the hot loop
//! has no dynamic dispatch and allocates nothing per step: every buffer (stages, stage input,
//! new state, f at the step end for Hermite output) is allocated once per solve.
//!
//! Semantics:
//! - fixed-step mode (euler, midpoint, heun, rk4 always; any method with `adaptive = false`):
//!   steps end at t0 + k·dt (computed, never accumulated) and the last step is shortened to land
//!   exactly on t1 (a remainder below 1e-9·dt is absorbed by the previous step);
//! - adaptive mode: PI control of the embedded error estimate (see `controller`), first step
//!   from `dt` when given, else Hairer's starting step; the step is clipped to hit t1 exactly;
//!   FSAL methods reuse their last stage as the next first stage (not counted as an rhs call);
//! - save points are filled by dense output as steps pass them (the solver never steps onto
//!   them); a save point equal to a step end copies the state;
//! - failures: a NaN/∞ state or error estimate in a trial step is rejected (dt × 0.2) in
//!   adaptive mode and reported as `NonFiniteState` if the step size then underflows; in
//!   fixed-step mode (or when f at an accepted state is non-finite) it is reported at once;
//!   `StepSizeUnderflow` when the controller asks for |dt| < dtmin (default
//!   16·ε·max(|t0|, |t1|), i.e. a step that barely changes t) or t + dt == t;
//!   `MaxSteps` when more than `max_steps` steps would be attempted. The reported `t` is the
//!   last accepted time;
//! - t1 < t0 integrates backward (dt, saveat spacing and dtmin are magnitudes).

use super::controller::{PiController, initial_step};
use super::dense;
use super::tableau::{
    BOSH3, DOPRI5, DenseKind, EULER, ErkTab, HEUN, MIDPOINT, RK4, TSIT5, Tableau, VERN7,
};
use super::trace::Trace;
use super::{FailReason, OdeRhs, SolveError, Stats};
use std::sync::OnceLock;

/// A solver method (LANGUAGE.md §6 "Method names"): the explicit Runge–Kutta methods, run
/// by [`solve_with`], and the implicit (stiff) ones, run by [`super::stiff::solve_stiff`]
/// (they need a Jacobian, see [`super::OdeJacobian`]). [`super::stiff::solve_any`] takes any.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Method {
    Euler,
    Midpoint,
    Heun,
    Rk4,
    Bosh3,
    Dopri5,
    Tsit5,
    Vern7,
    /// Shampine–Reichelt's ode23s Rosenbrock W-method: L-stable, order 2, error estimate
    /// from a 3rd-order companion, own 2nd-order dense output.
    Rosenbrock23,
    /// Rodas5P (Steinebach 2023): 8-stage stiffly accurate Rosenbrock method, order 5 with
    /// an embedded order-4 estimate and its own 4th-order dense output.
    Rodas5,
    /// Variable-order (1–5) BDF/NDF with quasi-constant steps, modified Newton and
    /// Jacobian/LU reuse. Adaptive only.
    Bdf,
    /// Stiffness switching: tsit5 while the problem is non-stiff, rodas5 where it is stiff
    /// (see [`super::stiff::auto`]). Adaptive only.
    Auto,
}

impl Method {
    /// Every method, explicit then implicit.
    pub const ALL: [Method; 12] = [
        Method::Euler,
        Method::Midpoint,
        Method::Heun,
        Method::Rk4,
        Method::Bosh3,
        Method::Dopri5,
        Method::Tsit5,
        Method::Vern7,
        Method::Rosenbrock23,
        Method::Rodas5,
        Method::Bdf,
        Method::Auto,
    ];

    /// The explicit Runge–Kutta methods (those with a Butcher tableau).
    pub const EXPLICIT: [Method; 8] = [
        Method::Euler,
        Method::Midpoint,
        Method::Heun,
        Method::Rk4,
        Method::Bosh3,
        Method::Dopri5,
        Method::Tsit5,
        Method::Vern7,
    ];

    /// The implicit (stiff) methods, which need a Jacobian.
    pub const IMPLICIT: [Method; 3] = [Method::Rosenbrock23, Method::Rodas5, Method::Bdf];

    /// The method with this (lower-case) name, if it is one of ours.
    pub fn from_name(name: &str) -> Option<Method> {
        Method::ALL.into_iter().find(|m| m.name() == name)
    }

    pub fn name(self) -> &'static str {
        match self {
            Method::Euler => EULER.name,
            Method::Midpoint => MIDPOINT.name,
            Method::Heun => HEUN.name,
            Method::Rk4 => RK4.name,
            Method::Bosh3 => BOSH3.name,
            Method::Dopri5 => DOPRI5.name,
            Method::Tsit5 => TSIT5.name,
            Method::Vern7 => VERN7.name,
            Method::Rosenbrock23 => "rosenbrock23",
            Method::Rodas5 => "rodas5",
            Method::Bdf => "bdf",
            Method::Auto => "auto",
        }
    }

    /// Needs a Jacobian and runs in [`super::stiff::solve_stiff`] (auto too: it may switch
    /// to rodas5).
    pub fn is_implicit(self) -> bool {
        matches!(
            self,
            Method::Rosenbrock23 | Method::Rodas5 | Method::Bdf | Method::Auto
        )
    }

    /// A Rosenbrock method, or one that may use one (needs ∂f/∂t as well as the Jacobian).
    pub fn is_rosenbrock(self) -> bool {
        matches!(self, Method::Rosenbrock23 | Method::Rodas5 | Method::Auto)
    }

    /// Needs a `dt` and always runs with fixed steps (heun carries an embedded Euler estimate
    /// but, like the language says, is a fixed-step method).
    pub fn is_fixed_step_only(self) -> bool {
        matches!(
            self,
            Method::Euler | Method::Midpoint | Method::Heun | Method::Rk4
        )
    }

    /// Always adaptive: `adaptive = false` is refused (bdf).
    pub fn is_adaptive_only(self) -> bool {
        matches!(self, Method::Bdf | Method::Auto)
    }

    /// The order of the method (bdf: its highest order, 5).
    pub fn order(self) -> u32 {
        self.tableau_info().0
    }

    /// The order of the embedded error estimate, when there is one (bdf: none, its
    /// estimate comes from the predictor).
    pub fn embedded_order(self) -> Option<u32> {
        let e = self.tableau_info().1;
        (e > 0).then_some(e)
    }

    pub fn is_fsal(self) -> bool {
        self.tableau_info().2
    }

    /// Number of stages (rhs calls per step without FSAL reuse; for Rosenbrock methods
    /// also the number of linear solves; bdf: 1).
    pub fn stages(self) -> usize {
        self.tableau_info().3
    }

    fn tableau_info(self) -> (u32, u32, bool, usize) {
        fn f<const S: usize>(t: &ErkTab<S>) -> (u32, u32, bool, usize) {
            (t.order, t.embedded_order, t.fsal, S)
        }
        match self {
            Method::Euler => f(&EULER),
            Method::Midpoint => f(&MIDPOINT),
            Method::Heun => f(&HEUN),
            Method::Rk4 => f(&RK4),
            Method::Bosh3 => f(&BOSH3),
            Method::Dopri5 => f(&DOPRI5),
            Method::Tsit5 => f(&TSIT5),
            Method::Vern7 => f(&VERN7),
            Method::Rosenbrock23 => (2, 3, true, 3),
            Method::Rodas5 => (5, 4, false, 8),
            Method::Bdf => (5, 0, false, 1),
            // The orders and stages of its stiff half, rodas5 (tsit5 has the same orders).
            Method::Auto => (5, 4, false, 8),
        }
    }

    /// How the dense output is formed (`None` for the implicit methods).
    pub fn dense_kind(self) -> Option<DenseKind> {
        Some(match self {
            Method::Euler => EULER.dense,
            Method::Midpoint => MIDPOINT.dense,
            Method::Heun => HEUN.dense,
            Method::Rk4 => RK4.dense,
            Method::Bosh3 => BOSH3.dense,
            Method::Dopri5 => DOPRI5.dense,
            Method::Tsit5 => TSIT5.dense,
            Method::Vern7 => VERN7.dense,
            Method::Rosenbrock23 | Method::Rodas5 | Method::Bdf | Method::Auto => return None,
        })
    }

    /// The Butcher tableau, as data (`None` for the implicit methods).
    pub fn tableau(self) -> Option<&'static Tableau> {
        // Built once per method: every gradient asks for it, and a fresh one is a dozen
        // allocations.
        static TABLEAUS: [OnceLock<Tableau>; 8] = [const { OnceLock::new() }; 8];
        let (slot, build): (usize, fn() -> Tableau) = match self {
            Method::Euler => (0, || EULER.to_tableau()),
            Method::Midpoint => (1, || MIDPOINT.to_tableau()),
            Method::Heun => (2, || HEUN.to_tableau()),
            Method::Rk4 => (3, || RK4.to_tableau()),
            Method::Bosh3 => (4, || BOSH3.to_tableau()),
            Method::Dopri5 => (5, || DOPRI5.to_tableau()),
            Method::Tsit5 => (6, || TSIT5.to_tableau()),
            Method::Vern7 => (7, || VERN7.to_tableau()),
            Method::Rosenbrock23 | Method::Rodas5 | Method::Bdf | Method::Auto => return None,
        };
        Some(TABLEAUS[slot].get_or_init(build))
    }
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Method {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Method::from_name(s).ok_or_else(|| format!("unknown method `{s}`"))
    }
}

/// Which times the solution reports.
#[derive(Clone, Debug, PartialEq)]
pub enum SaveAt {
    /// t0 and t1.
    Ends,
    /// t0, every t0 + k·dt strictly between (points within 1e-12·|t1 − t0| of t1 are dropped),
    /// and t1. `dt` is a magnitude.
    Every(f64),
    /// Exactly these times (each in [t0, t1]); reported in integration order.
    Times(Vec<f64>),
}

/// Options of one solve. Build with [`SolveOptions::new`] and set fields.
#[derive(Clone, Debug, PartialEq)]
pub struct SolveOptions {
    pub method: Method,
    pub t0: f64,
    pub t1: f64,
    pub rtol: f64,
    /// Length 1 (the same for every component) or the state dimension.
    pub atol: Vec<f64>,
    /// Fixed-step mode: the step (required). Adaptive mode: the first step (else automatic).
    /// A magnitude; the sign is taken from t1 − t0.
    pub dt: Option<f64>,
    /// Adaptive step control for methods that have an error estimate (ignored, i.e. false,
    /// for fixed-step-only methods). With `false`, `dt` is required.
    pub adaptive: bool,
    pub saveat: SaveAt,
    /// Maximum number of attempted steps.
    pub max_steps: u64,
    /// Smallest step magnitude the controller may ask for (default 16·ε·max(|t0|, |t1|)).
    pub dtmin: Option<f64>,
    /// Largest step magnitude (default |t1 − t0|).
    pub dtmax: Option<f64>,
    /// Only the first this-many components enter the error norm (and the starting-step
    /// norms); `None`: all. Forward sensitivities set it to the state dimension so the
    /// augmented solve takes exactly the steps of the plain solve.
    pub error_components: Option<usize>,
}

impl SolveOptions {
    /// Defaults: rtol 1e-6, atol 1e-8, no dt, adaptive, save the ends, 100 000 steps.
    pub fn new(method: Method, t0: f64, t1: f64) -> Self {
        SolveOptions {
            method,
            t0,
            t1,
            rtol: 1e-6,
            atol: vec![1e-8],
            dt: None,
            adaptive: true,
            saveat: SaveAt::Ends,
            max_steps: 100_000,
            dtmin: None,
            dtmax: None,
            error_components: None,
        }
    }

    /// Whether this solve runs with fixed steps.
    pub fn is_fixed_step(&self) -> bool {
        self.method.is_fixed_step_only() || (!self.adaptive && !self.method.is_adaptive_only())
    }

    /// Checks the options against a state dimension; the message is suitable for a user.
    pub fn validate(&self, dim: usize) -> Result<(), String> {
        if !self.t0.is_finite() || !self.t1.is_finite() {
            return Err(format!(
                "t0 and t1 must be finite (got {} and {})",
                self.t0, self.t1
            ));
        }
        if !(self.rtol >= 0.0 && self.rtol.is_finite()) {
            return Err(format!(
                "rtol must be a finite number ≥ 0 (got {})",
                self.rtol
            ));
        }
        if self.atol.len() != 1 && self.atol.len() != dim {
            return Err(format!(
                "atol has {} entries; give one or one per state component ({dim})",
                self.atol.len()
            ));
        }
        for &a in &self.atol {
            if !(a >= 0.0 && a.is_finite()) {
                return Err(format!("atol must be finite and ≥ 0 (got {a})"));
            }
            if a == 0.0 && self.rtol == 0.0 && !self.is_fixed_step() {
                return Err("rtol and atol cannot both be zero".into());
            }
        }
        if !self.adaptive && self.method.is_adaptive_only() {
            return Err(format!(
                "method `{}` is adaptive only: it cannot run with fixed steps",
                self.method
            ));
        }
        match self.dt {
            None if self.is_fixed_step() => {
                return Err(if self.method.is_fixed_step_only() {
                    format!("method `{}` is fixed-step: it needs a dt", self.method)
                } else {
                    "a non-adaptive solve needs a dt".into()
                });
            }
            Some(dt) if !(dt.is_finite() && dt != 0.0) => {
                return Err(format!("dt must be finite and nonzero (got {dt})"));
            }
            _ => {}
        }
        if let Some(m) = self.dtmin
            && !(m >= 0.0 && m.is_finite())
        {
            return Err(format!("dtmin must be finite and ≥ 0 (got {m})"));
        }
        if let Some(m) = self.dtmax
            && (m.is_nan() || m <= 0.0)
        {
            return Err(format!("dtmax must be > 0 (got {m})"));
        }
        self.save_times().map(|_| ())
    }

    /// The save times, in integration order.
    pub fn save_times(&self) -> Result<Vec<f64>, String> {
        let (t0, t1) = (self.t0, self.t1);
        let span = t1 - t0;
        let dir = if span < 0.0 { -1.0 } else { 1.0 };
        match &self.saveat {
            SaveAt::Ends => Ok(vec![t0, t1]),
            SaveAt::Every(dt) => {
                let dt = dt.abs();
                if !(dt.is_finite() && dt > 0.0) {
                    return Err(format!("saveat spacing must be finite and > 0 (got {dt})"));
                }
                let n = span.abs() / dt;
                if n > 1e8 {
                    return Err(format!("saveat spacing {dt} gives more than 1e8 rows"));
                }
                let tol = 1e-12 * span.abs();
                let mut v = Vec::with_capacity(n as usize + 2);
                v.push(t0);
                let mut k = 1u64;
                loop {
                    let t = t0 + dir * (k as f64) * dt;
                    if (t1 - t) * dir <= tol {
                        break;
                    }
                    v.push(t);
                    k += 1;
                }
                v.push(t1);
                Ok(v)
            }
            SaveAt::Times(ts) => {
                let (lo, hi) = if t0 <= t1 { (t0, t1) } else { (t1, t0) };
                for &t in ts {
                    if !(t >= lo && t <= hi) {
                        return Err(format!("save time {t} is outside [{lo}, {hi}]"));
                    }
                }
                let mut v = ts.clone();
                if dir > 0.0 {
                    v.sort_by(|a, b| a.total_cmp(b));
                } else {
                    v.sort_by(|a, b| b.total_cmp(a));
                }
                Ok(v)
            }
        }
    }
}

/// A solved trajectory: `t.len()` rows of `dim` values, row-major in `u`.
#[derive(Clone, Debug, PartialEq)]
pub struct Solution {
    pub t: Vec<f64>,
    pub u: Vec<f64>,
    pub stats: Stats,
    pub dim: usize,
}

impl Solution {
    /// Number of rows (save times).
    pub fn len(&self) -> usize {
        self.t.len()
    }

    pub fn is_empty(&self) -> bool {
        self.t.is_empty()
    }

    /// The state at save time `i`.
    pub fn row(&self, i: usize) -> &[f64] {
        &self.u[i * self.dim..(i + 1) * self.dim]
    }

    /// The last row (the state at t1 for a complete solve).
    pub fn last(&self) -> &[f64] {
        self.row(self.len() - 1)
    }
}

/// A vector field from a closure `f(t, u, du)`.
pub struct FnRhs<F> {
    pub dim: usize,
    pub f: F,
}

impl<F: FnMut(f64, &[f64], &mut [f64])> FnRhs<F> {
    pub fn new(dim: usize, f: F) -> Self {
        FnRhs { dim, f }
    }
}

impl<F: FnMut(f64, &[f64], &mut [f64])> OdeRhs for FnRhs<F> {
    #[inline]
    fn dim(&self) -> usize {
        self.dim
    }
    #[inline]
    fn eval(&mut self, t: f64, u: &[f64], du: &mut [f64]) {
        (self.f)(t, u, du)
    }
}

/// Solves u' = f(t, u), u(t0) = u0 with an explicit RK method. See the module docs.
pub fn solve(
    rhs: &mut dyn OdeRhs,
    u0: &[f64],
    opts: &SolveOptions,
) -> Result<Solution, SolveError> {
    solve_with(rhs, u0, opts)
}

/// As [`solve`], monomorphised over the vector field (use this in hot paths).
///
/// Explicit methods only: an implicit method is refused with `InvalidInput` (use
/// [`super::stiff::solve_stiff`] or [`super::stiff::solve_any`], which need a Jacobian).
pub fn solve_with<R: OdeRhs + ?Sized>(
    rhs: &mut R,
    u0: &[f64],
    opts: &SolveOptions,
) -> Result<Solution, SolveError> {
    solve_traced(rhs, u0, opts, None)
}

/// As [`solve_with`], recording every accepted step into `trace` when one is given (see
/// [`Trace`]; the discrete adjoint replays the record). vern7 cannot be traced: its lazy
/// interpolation stages are not recorded.
pub fn solve_traced<R: OdeRhs + ?Sized>(
    rhs: &mut R,
    u0: &[f64],
    opts: &SolveOptions,
    trace: Option<&mut Trace>,
) -> Result<Solution, SolveError> {
    check_input(rhs.dim(), u0, opts)?;
    if trace.is_some() && opts.method == Method::Vern7 {
        return Err(SolveError {
            t: opts.t0,
            reason: FailReason::InvalidInput(
                "vern7 steps cannot be traced (its interpolant's extra stages are lazy); use tsit5 or dopri5".into(),
            ),
            stats: Stats::default(),
        });
    }
    match opts.method {
        Method::Euler => run::<R, 1, Euler>(rhs, u0, opts, trace),
        Method::Midpoint => run::<R, 2, Midpoint>(rhs, u0, opts, trace),
        Method::Heun => run::<R, 2, Heun>(rhs, u0, opts, trace),
        Method::Rk4 => run::<R, 4, Rk4>(rhs, u0, opts, trace),
        Method::Bosh3 => run::<R, 4, Bosh3>(rhs, u0, opts, trace),
        Method::Dopri5 => run::<R, 7, Dopri5>(rhs, u0, opts, trace),
        Method::Tsit5 => run::<R, 7, Tsit5>(rhs, u0, opts, trace),
        Method::Vern7 => run::<R, 10, Vern7>(rhs, u0, opts, trace),
        m @ (Method::Rosenbrock23 | Method::Rodas5 | Method::Bdf | Method::Auto) => {
            Err(SolveError {
                t: opts.t0,
                reason: FailReason::InvalidInput(format!(
                    "method `{m}` is implicit: it needs a Jacobian (solve it with solve_stiff or solve_any)"
                )),
                stats: Stats::default(),
            })
        }
    }
}

/// The checks every solve makes before it starts (state length, options); the error is an
/// `InvalidInput` at t0 with empty stats.
pub(crate) fn check_input(dim: usize, u0: &[f64], opts: &SolveOptions) -> Result<(), SolveError> {
    let fail = |msg: String| {
        Err(SolveError {
            t: opts.t0,
            reason: FailReason::InvalidInput(msg),
            stats: Stats::default(),
        })
    };
    if u0.len() != dim {
        return fail(format!(
            "the initial state has {} components but the system has {}",
            u0.len(),
            dim
        ));
    }
    if let Err(msg) = opts.validate(u0.len()) {
        return fail(msg);
    }
    Ok(())
}

/// The absolute tolerance expanded to one entry per component.
pub(crate) fn expand_atol(opts: &SolveOptions, dim: usize) -> Vec<f64> {
    if opts.atol.len() == 1 {
        vec![opts.atol[0]; dim]
    } else {
        opts.atol.clone()
    }
}

/// The adaptive loop's step bounds (hmax, dtmin): see the module docs.
pub(crate) fn step_bounds(opts: &SolveOptions) -> (f64, f64) {
    let (t0, t1) = (opts.t0, opts.t1);
    let hmax = opts.dtmax.unwrap_or(f64::INFINITY).min((t1 - t0).abs());
    let dtmin = opts
        .dtmin
        .unwrap_or(16.0 * f64::EPSILON * t0.abs().max(t1.abs()));
    (hmax, dtmin)
}

/// The number of fixed steps and the end of step `k` (1-based) of a fixed-step solve: steps
/// end at t0 + k·dt, the last one exactly at t1 (a remainder below 1e-9·dt is absorbed).
pub(crate) fn fixed_steps(opts: &SolveOptions) -> (u64, impl Fn(u64) -> f64) {
    let (t0, t1) = (opts.t0, opts.t1);
    let dir = if t1 < t0 { -1.0 } else { 1.0 };
    let dt = opts.dt.expect("validated").abs();
    let r = (t1 - t0).abs() / dt;
    let n = (r - 1e-9 * r.max(1.0)).ceil().max(1.0);
    // A dt so small that the count overflows to ∞ (∞ − ∞ is NaN, which `max` would turn into
    // one step) is as many steps as can be: the step limit then stops the solve with its
    // reason instead of a one-step answer.
    let n = if !r.is_finite() || n >= u64::MAX as f64 {
        u64::MAX
    } else {
        n as u64
    };
    (n, move |k: u64| {
        if k == n {
            t1
        } else {
            t0 + dir * (k as f64) * dt
        }
    })
}

/// A tableau known at compile time.
trait Scheme<const S: usize> {
    const TAB: ErkTab<S>;
}

macro_rules! scheme {
    ($ty:ident, $s:literal, $tab:expr) => {
        struct $ty;
        impl Scheme<$s> for $ty {
            const TAB: ErkTab<$s> = $tab;
        }
    };
}
scheme!(Euler, 1, EULER);
scheme!(Midpoint, 2, MIDPOINT);
scheme!(Heun, 2, HEUN);
scheme!(Rk4, 4, RK4);
scheme!(Bosh3, 4, BOSH3);
scheme!(Dopri5, 7, DOPRI5);
scheme!(Tsit5, 7, TSIT5);
scheme!(Vern7, 10, VERN7);

#[inline]
pub(crate) fn all_finite(x: &[f64]) -> bool {
    // x·0 is 0 for finite x and NaN for ±∞/NaN.
    x.iter().fold(0.0, |acc, v| acc + v * 0.0) == 0.0
}

/// Everything one solve allocates, once.
struct Work<'a> {
    dim: usize,
    /// Components that enter the error norm (the first `err_dim`).
    err_dim: usize,
    trace: Option<&'a mut Trace>,
    /// Current state u_n.
    u: Vec<f64>,
    /// Trial state u_{n+1}.
    un: Vec<f64>,
    /// Stage input / interpolation output.
    tmp: Vec<f64>,
    /// Stages, stage-major: k[j*dim + i]. k_0 = f(t_n, u_n).
    k: Vec<f64>,
    /// f(t_{n+1}, u_{n+1}) for Hermite output of non-FSAL methods.
    fnext: Vec<f64>,
    /// vern7's extra interpolation stages (empty for other methods).
    kx: Vec<f64>,
    /// Absolute tolerance per component.
    atol: Vec<f64>,
    /// Save times (integration order), the next one to fill, and the output.
    save: Vec<f64>,
    si: usize,
    out_t: Vec<f64>,
    out_u: Vec<f64>,
    dir: f64,
    stats: Stats,
}

impl Work<'_> {
    #[inline]
    fn push_row(&mut self, t: f64, from_tmp: bool) {
        self.out_t.push(t);
        let src = if from_tmp { &self.tmp } else { &self.u };
        self.out_u.extend_from_slice(src);
    }

    fn fail(&self, t: f64, reason: FailReason) -> SolveError {
        SolveError {
            t,
            reason,
            stats: self.stats,
        }
    }
}

/// Stage `I` (1 ≤ I < S) of a trial step: k_I = f(t + c_I h, u + h Σ_{j<I} a_Ij k_j).
/// `I` is a compile-time constant so the sum is fully unrolled over constant coefficients
/// (zero coefficients vanish at compile time). For an FSAL method the last stage's input is
/// the new state and is written to `un` directly.
#[inline(always)]
fn stage<R: OdeRhs + ?Sized, const S: usize, M: Scheme<S>, const I: usize>(
    rhs: &mut R,
    t: f64,
    h: f64,
    w: &mut Work,
) {
    let dim = w.dim;
    let (done, rest) = w.k.split_at_mut(I * dim);
    let ks: [&[f64]; I] = std::array::from_fn(|j| &done[j * dim..(j + 1) * dim]);
    let dst: &mut [f64] = if M::TAB.fsal && I == S - 1 {
        &mut w.un[..dim]
    } else {
        &mut w.tmp[..dim]
    };
    combine::<I>(&M::TAB.a[I], h, &w.u[..dim], &ks, dst);
    rhs.eval(t + M::TAB.c[I] * h, dst, &mut rest[..dim]);
}

/// dst = u + h Σ_j coef_j ks_j, with `coef` compile-time constants after inlining (zero terms
/// vanish). Components go in pairs so the compiler emits paired (16-byte) stores: a vector
/// field that loads its input with vector loads then does not stall on store forwarding.
#[inline(always)]
fn combine<const N: usize>(coef: &[f64], h: f64, u: &[f64], ks: &[&[f64]; N], dst: &mut [f64]) {
    let dim = dst.len();
    let u = &u[..dim];
    let ks: [&[f64]; N] = std::array::from_fn(|j| &ks[j][..dim]);
    let mut i = 0;
    while i + 2 <= dim {
        let (mut a0, mut a1) = (0.0, 0.0);
        for j in 0..N {
            let c = coef[j];
            if c != 0.0 {
                a0 += c * ks[j][i];
                a1 += c * ks[j][i + 1];
            }
        }
        dst[i] = u[i] + h * a0;
        dst[i + 1] = u[i + 1] + h * a1;
        i += 2;
    }
    if i < dim {
        let mut a0 = 0.0;
        for j in 0..N {
            let c = coef[j];
            if c != 0.0 {
                a0 += c * ks[j][i];
            }
        }
        dst[i] = u[i] + h * a0;
    }
}

/// One trial step of size h from (t, u) with k_0 = f(t, u) in place: fills the other stages
/// and the new state `un`.
#[inline(always)]
fn trial<R: OdeRhs + ?Sized, const S: usize, M: Scheme<S>>(
    rhs: &mut R,
    t: f64,
    h: f64,
    w: &mut Work,
) {
    macro_rules! stages {
        ($($i:literal)*) => { $( if $i < S { stage::<R, S, M, $i>(rhs, t, h, w); } )* };
    }
    // Every method here has at most 10 stages (checked at compile time below).
    const { assert!(S <= 10) };
    stages!(1 2 3 4 5 6 7 8 9);
    w.stats.rhs_evals += (S - 1) as u64;
    if !M::TAB.fsal {
        let dim = w.dim;
        let ks: [&[f64]; S] = std::array::from_fn(|j| &w.k[j * dim..(j + 1) * dim]);
        combine::<S>(&M::TAB.b, h, &w.u[..dim], &ks, &mut w.un[..dim]);
    }
}

/// The scaled RMS error of the trial step (NaN/∞ when the trial is non-finite).
#[inline(always)]
fn error_estimate<const S: usize, M: Scheme<S>>(h: f64, rtol: f64, w: &Work) -> f64 {
    let dim = w.err_dim;
    if dim == 0 {
        return 0.0;
    }
    let (u, un, atol) = (&w.u[..dim], &w.un[..dim], &w.atol[..dim]);
    let stride = w.dim;
    let ks: [&[f64]; S] = std::array::from_fn(|j| &w.k[j * stride..j * stride + dim]);
    let ks: [&[f64]; S] = std::array::from_fn(|j| &ks[j][..dim]);
    // Two independent accumulators (components in pairs) to shorten the dependency chain.
    let (mut acc0, mut acc1) = (0.0, 0.0);
    let mut poison = 0.0;
    let mut i = 0;
    while i + 2 <= dim {
        let (mut e0, mut e1) = (0.0, 0.0);
        for (&ej, kj) in M::TAB.e.iter().zip(&ks) {
            if ej != 0.0 {
                e0 += ej * kj[i];
                e1 += ej * kj[i + 1];
            }
        }
        let sc0 = atol[i] + rtol * u[i].abs().max(un[i].abs());
        let sc1 = atol[i + 1] + rtol * u[i + 1].abs().max(un[i + 1].abs());
        let (r0, r1) = (h * e0 / sc0, h * e1 / sc1);
        acc0 += r0 * r0;
        acc1 += r1 * r1;
        poison += un[i] * 0.0 + un[i + 1] * 0.0;
        i += 2;
    }
    if i < dim {
        let mut e0 = 0.0;
        for (&ej, kj) in M::TAB.e.iter().zip(&ks) {
            if ej != 0.0 {
                e0 += ej * kj[i];
            }
        }
        let sc0 = atol[i] + rtol * u[i].abs().max(un[i].abs());
        let r0 = h * e0 / sc0;
        acc0 += r0 * r0;
        poison += un[i] * 0.0;
    }
    ((acc0 + acc1) / dim as f64).sqrt() + poison
}

/// After an accepted step (t, u) → (t_new, un): fills the save points in (t, t_new], then
/// makes (t_new, un) current with a valid k_0 when it is free. Returns whether k_0 is valid;
/// errors if f(t_new, un) had to be evaluated and is non-finite.
#[inline(always)]
fn accept<R: OdeRhs + ?Sized, const S: usize, M: Scheme<S>>(
    rhs: &mut R,
    t: f64,
    h: f64,
    t_new: f64,
    w: &mut Work,
) -> Result<bool, SolveError> {
    let dim = w.dim;
    let mut have_fnext = false;
    while w.si < w.save.len() {
        let ts = w.save[w.si];
        if (ts - t_new) * w.dir > 0.0 {
            break;
        }
        if ts == t_new {
            w.out_t.push(ts);
            w.out_u.extend_from_slice(&w.un[..dim]);
        } else {
            let theta = (ts - t) / h;
            let needs_fnext =
                matches!(M::TAB.dense, DenseKind::Hermite | DenseKind::Vern7) && !M::TAB.fsal;
            if needs_fnext && !have_fnext {
                rhs.eval(t_new, &w.un[..dim], &mut w.fnext[..dim]);
                w.stats.rhs_evals += 1;
                have_fnext = true;
                if !all_finite(&w.fnext[..dim]) {
                    return Err(w.fail(t_new, FailReason::NonFiniteState));
                }
                if matches!(M::TAB.dense, DenseKind::Vern7) {
                    dense::vern7_extra_stages(
                        rhs,
                        t,
                        h,
                        &w.u,
                        &w.k,
                        &w.fnext,
                        &mut w.kx,
                        &mut w.tmp[..dim],
                    );
                    w.stats.rhs_evals += 5;
                }
            }
            if matches!(M::TAB.dense, DenseKind::Vern7) {
                dense::vern7_interpolate(theta, h, &w.u, &w.k, &w.fnext, &w.kx, &mut w.tmp[..dim]);
            } else {
                let f1: &[f64] = if M::TAB.fsal {
                    &w.k[(S - 1) * dim..S * dim]
                } else {
                    &w.fnext[..dim]
                };
                dense::interpolate::<S>(
                    M::TAB.dense,
                    theta,
                    h,
                    &w.u,
                    &w.un,
                    &w.k,
                    f1,
                    &mut w.tmp[..dim],
                );
            }
            w.push_row(ts, true);
        }
        w.si += 1;
    }
    std::mem::swap(&mut w.u, &mut w.un);
    if M::TAB.fsal {
        // k_0 ← k_{S-1} (a plain loop: `copy_within` is a memmove call, slow for tiny dims).
        let (first, rest) = w.k.split_at_mut((S - 1) * dim);
        for (a, b) in first[..dim].iter_mut().zip(&rest[..dim]) {
            *a = *b;
        }
        Ok(true)
    } else if have_fnext {
        w.k[..dim].copy_from_slice(&w.fnext[..dim]);
        Ok(true)
    } else {
        Ok(false)
    }
}

fn run<R: OdeRhs + ?Sized, const S: usize, M: Scheme<S>>(
    rhs: &mut R,
    u0: &[f64],
    opts: &SolveOptions,
    mut trace: Option<&mut Trace>,
) -> Result<Solution, SolveError> {
    let dim = u0.len();
    let (t0, t1) = (opts.t0, opts.t1);
    let dir = if t1 < t0 { -1.0 } else { 1.0 };
    let save = opts.save_times().expect("validated");
    let atol = expand_atol(opts, dim);
    if let Some(tr) = trace.as_mut() {
        tr.start(dim, S);
    }
    let mut w = Work {
        dim,
        err_dim: opts.error_components.unwrap_or(dim).min(dim),
        trace,
        u: u0.to_vec(),
        un: vec![0.0; dim],
        tmp: vec![0.0; dim],
        k: vec![0.0; S * dim],
        fnext: vec![0.0; dim],
        kx: vec![
            0.0;
            if matches!(M::TAB.dense, DenseKind::Vern7) {
                5 * dim
            } else {
                0
            }
        ],
        atol,
        out_t: Vec::with_capacity(save.len()),
        out_u: Vec::with_capacity(save.len() * dim),
        save,
        si: 0,
        dir,
        stats: Stats::default(),
    };
    if !all_finite(u0) {
        return Err(w.fail(t0, FailReason::NonFiniteState));
    }
    while w.si < w.save.len() && w.save[w.si] == t0 {
        w.push_row(t0, false);
        w.si += 1;
    }
    if t0 == t1 {
        while w.si < w.save.len() {
            w.push_row(t1, false);
            w.si += 1;
        }
        return Ok(Solution {
            t: w.out_t,
            u: w.out_u,
            stats: w.stats,
            dim,
        });
    }
    rhs.eval(t0, &w.u[..dim], &mut w.k[..dim]);
    w.stats.rhs_evals += 1;
    if !all_finite(&w.k[..dim]) {
        return Err(w.fail(t0, FailReason::NonFiniteState));
    }
    if opts.is_fixed_step() {
        run_fixed::<R, S, M>(rhs, opts, &mut w)?;
    } else {
        run_adaptive::<R, S, M>(rhs, opts, &mut w)?;
    }
    debug_assert!(w.si == w.save.len() || rhs.stop_requested());
    if let Some(tr) = w.trace {
        tr.u_end.extend_from_slice(&w.u[..dim]);
    }
    Ok(Solution {
        t: w.out_t,
        u: w.out_u,
        stats: w.stats,
        dim,
    })
}

#[inline]
fn refresh_k0<R: OdeRhs + ?Sized>(rhs: &mut R, t: f64, w: &mut Work) -> Result<(), SolveError> {
    let dim = w.dim;
    rhs.eval(t, &w.u[..dim], &mut w.k[..dim]);
    w.stats.rhs_evals += 1;
    if all_finite(&w.k[..dim]) {
        Ok(())
    } else {
        Err(w.fail(t, FailReason::NonFiniteState))
    }
}

fn run_fixed<R: OdeRhs + ?Sized, const S: usize, M: Scheme<S>>(
    rhs: &mut R,
    opts: &SolveOptions,
    w: &mut Work,
) -> Result<(), SolveError> {
    let (n, step_end) = fixed_steps(opts);
    let mut t = opts.t0;
    let mut k0_valid = true;
    for step in 1..=n {
        if w.stats.steps >= opts.max_steps {
            return Err(w.fail(
                t,
                FailReason::MaxSteps {
                    max_steps: opts.max_steps,
                },
            ));
        }
        let t_new = step_end(step);
        let h = t_new - t;
        if !k0_valid {
            refresh_k0(rhs, t, w)?;
        }
        trial::<R, S, M>(rhs, t, h, w);
        w.stats.steps += 1;
        if !all_finite(&w.un[..w.dim]) {
            w.stats.rejected += 1;
            return Err(w.fail(t, FailReason::NonFiniteState));
        }
        w.stats.accepted += 1;
        if let Some(tr) = w.trace.as_deref_mut() {
            tr.record(t, h, t_new, &w.u[..w.dim], &w.k);
        }
        rhs.step_accepted(t, h, t_new, &w.u[..w.dim], &w.un[..w.dim], &w.k);
        k0_valid = accept::<R, S, M>(rhs, t, h, t_new, w)?;
        t = t_new;
    }
    Ok(())
}

fn run_adaptive<R: OdeRhs + ?Sized, const S: usize, M: Scheme<S>>(
    rhs: &mut R,
    opts: &SolveOptions,
    w: &mut Work,
) -> Result<(), SolveError> {
    let (t0, t1, dir) = (opts.t0, opts.t1, w.dir);
    let dim = w.dim;
    let (hmax, dtmin) = step_bounds(opts);
    let mut ctrl = PiController::new(M::TAB.embedded_order + 1);
    let mut h = match opts.dt {
        Some(dt) => dt.abs().min(hmax),
        None => {
            let (u, k, tmp, un) = (
                &w.u[..dim],
                &w.k[..dim],
                &mut w.tmp[..dim],
                &mut w.un[..dim],
            );
            initial_step(
                rhs,
                t0,
                u,
                k,
                dir,
                M::TAB.order,
                opts.rtol,
                &w.atol,
                hmax,
                tmp,
                un,
                &mut w.stats,
                w.err_dim,
            )
        }
    } * dir;
    let mut t = t0;
    let mut k0_valid = true;
    loop {
        let mut last = false;
        if (t + h - t1) * dir >= 0.0 {
            h = t1 - t;
            last = true;
        }
        if w.stats.steps >= opts.max_steps {
            return Err(w.fail(
                t,
                FailReason::MaxSteps {
                    max_steps: opts.max_steps,
                },
            ));
        }
        if !k0_valid {
            refresh_k0(rhs, t, w)?;
            k0_valid = true;
        }
        trial::<R, S, M>(rhs, t, h, w);
        w.stats.steps += 1;
        let e = error_estimate::<S, M>(h, opts.rtol, w);
        let nonfinite = !e.is_finite();
        let d = if nonfinite {
            ctrl.reject_nonfinite()
        } else {
            ctrl.decide(e)
        };
        if d.accept {
            w.stats.accepted += 1;
            let t_new = if last { t1 } else { t + h };
            if let Some(tr) = w.trace.as_deref_mut() {
                tr.record(t, h, t_new, &w.u[..dim], &w.k);
            }
            rhs.step_accepted(t, h, t_new, &w.u[..dim], &w.un[..dim], &w.k);
            k0_valid = accept::<R, S, M>(rhs, t, h, t_new, w)?;
            t = t_new;
            if last || rhs.stop_requested() {
                return Ok(());
            }
            h *= d.factor;
            if h.abs() > hmax {
                h = hmax * dir;
            }
        } else {
            w.stats.rejected += 1;
            h *= d.factor;
        }
        if h.abs() < dtmin || t + h == t {
            let reason = if nonfinite {
                FailReason::NonFiniteState
            } else {
                FailReason::StepSizeUnderflow { dt: h }
            };
            return Err(w.fail(t, reason));
        }
    }
}
