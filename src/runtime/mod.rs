//! The runtime: one shared stepping loop that drives generated kernels.
//!
//! Owns: Butcher tableaus (`tableau`), step-size control (`controller`), dense output
//! (`dense`), and the stepping loop itself (`integrate`). It knows nothing about the
//! language, the IR or how a vector field was compiled: it sees only the [`OdeRhs`] trait.
//! It must never parse, print or exit; failures are returned as [`SolveError`] values.

pub mod controller;
pub mod dde;
pub mod dense;
pub mod integrate;
pub mod sde;
pub mod stiff;
pub mod tableau;
pub mod trace;

#[cfg(test)]
mod solver_tests;

pub use integrate::{
    FnRhs, Method, SaveAt, Solution, SolveOptions, solve, solve_traced, solve_with,
};
pub use stiff::{solve_any, solve_stiff};
pub use trace::Trace;

/// A vector field u' = f(t, u) over a fixed-length state.
///
/// `eval` must write all `dim()` entries of `du`. It takes `&mut self` so that an
/// implementation may own scratch memory (a JIT kernel does); one instance per thread.
pub trait OdeRhs {
    fn dim(&self) -> usize;
    fn eval(&mut self, t: f64, u: &[f64], du: &mut [f64]);
    /// Called by the explicit RK loop after each accepted step (t, u) → (t_new, u_new), with
    /// the step's stages `k` (stage-major, `stages × dim`), before the state advances. The
    /// default does nothing; a DDE right-hand side (see [`dde`]) keeps the steps as its
    /// dense history.
    #[inline(always)]
    fn step_accepted(
        &mut self,
        _t: f64,
        _h: f64,
        _t_new: f64,
        _u: &[f64],
        _u_new: &[f64],
        _k: &[f64],
    ) {
    }
    /// Asked after each accepted step (after [`OdeRhs::step_accepted`]): `true` ends the
    /// solve there, successfully, with the save points up to that step filled. The default
    /// never stops; `method = auto` (see [`stiff::auto`]) stops a solve to switch methods.
    #[inline(always)]
    fn stop_requested(&self) -> bool {
        false
    }
}

/// A sparsity pattern in compressed sparse row form: row `i` has nonzeros in columns
/// `cols[row_ptr[i]..row_ptr[i+1]]` (sorted, no duplicates).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sparsity {
    pub n: usize,
    pub row_ptr: Vec<usize>,
    pub cols: Vec<usize>,
}

impl Sparsity {
    pub fn nnz(&self) -> usize {
        self.cols.len()
    }
}

/// A vector field with its Jacobian ∂f/∂u, for stiff methods.
pub trait OdeJacobian: OdeRhs {
    /// Dense Jacobian at (t, u), row-major: `jac[i*n + k] = ∂f_i/∂u_k`.
    fn jac(&mut self, t: f64, u: &[f64], jac: &mut [f64]);
    /// The Jacobian's structural pattern, if the vector field knows it (then `jac_sparse`
    /// must be implemented); `None` means treat it as dense.
    fn sparsity(&self) -> Option<&Sparsity> {
        None
    }
    /// The Jacobian's values at (t, u) in the order of `sparsity().cols`.
    fn jac_sparse(&mut self, _t: f64, _u: &[f64], _values: &mut [f64]) {
        unimplemented!("jac_sparse is only called when sparsity() is Some")
    }
    /// ∂f/∂t at (t, u), for Rosenbrock methods on non-autonomous systems. Return `false`
    /// (the default) when not implemented: the solver then uses a forward difference (one
    /// counted rhs call per step). An autonomous system may write zeros and return `true`.
    fn time_derivative(&mut self, _t: f64, _u: &[f64], _dfdt: &mut [f64]) -> bool {
        false
    }
}

/// Work counters every solve reports (`--stats`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Stats {
    /// Attempted steps: accepted + rejected.
    pub steps: u64,
    pub accepted: u64,
    pub rejected: u64,
    /// Actual vector-field calls (an FSAL reuse is not a call).
    pub rhs_evals: u64,
    pub jac_evals: u64,
    pub lu_factorizations: u64,
    pub newton_iters: u64,
}

impl Stats {
    pub fn add(&mut self, o: &Stats) {
        self.steps += o.steps;
        self.accepted += o.accepted;
        self.rejected += o.rejected;
        self.rhs_evals += o.rhs_evals;
        self.jac_evals += o.jac_evals;
        self.lu_factorizations += o.lu_factorizations;
        self.newton_iters += o.newton_iters;
    }
}

/// Why a solve stopped early.
#[derive(Clone, Debug, PartialEq)]
pub enum FailReason {
    /// The controller asked for a step smaller than the minimum allowed.
    StepSizeUnderflow { dt: f64 },
    /// The state (or a stage) became NaN or infinite.
    NonFiniteState,
    /// More than `max_steps` attempted steps.
    MaxSteps { max_steps: u64 },
    /// The options or the initial state are unusable (e.g. a fixed-step method without a dt,
    /// a save time outside [t0, t1], a wrong atol or u0 length). Nothing was solved.
    /// Callers may check first with `SolveOptions::validate` to report a usage error.
    InvalidInput(String),
    /// The iteration matrix W = I − γ·h·J of an implicit method was singular (or its LU
    /// factors non-finite) and shrinking the step did not help.
    SingularMatrix,
    /// The Newton iteration of an implicit method (bdf) kept failing to converge even with
    /// a fresh Jacobian as the step was reduced.
    NewtonFailure { dt: f64 },
}

/// A failed solve: the time reached (the last accepted time) and the reason.
#[derive(Clone, Debug, PartialEq)]
pub struct SolveError {
    pub t: f64,
    pub reason: FailReason,
    pub stats: Stats,
}

/// A number in its shortest round-trip form, in exponent notation when very small or large
/// (`5e-324`, not 324 digits): how failure messages print times.
pub fn shortest(x: f64) -> String {
    if x.is_finite() {
        ryu::Buffer::new().format_finite(x).to_string()
    } else {
        x.to_string()
    }
}

impl std::fmt::Display for SolveError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let t = shortest(self.t);
        match &self.reason {
            FailReason::StepSizeUnderflow { dt } => write!(
                f,
                "solver failed at t = {t}: step size underflow (dt = {dt:e}); the problem may be stiff or singular here"
            ),
            FailReason::NonFiniteState => write!(
                f,
                "solver failed at t = {t}: the state became non-finite (NaN or infinity)"
            ),
            FailReason::MaxSteps { max_steps } => write!(
                f,
                "solver failed at t = {t}: reached the maximum of {max_steps} steps"
            ),
            FailReason::InvalidInput(msg) => write!(f, "invalid solver input: {msg}"),
            FailReason::SingularMatrix => write!(
                f,
                "solver failed at t = {t}: the implicit method's iteration matrix I - gamma*h*J is singular"
            ),
            FailReason::NewtonFailure { dt } => write!(
                f,
                "solver failed at t = {t}: the Newton iteration did not converge (dt = {dt:e}); the Jacobian may be wrong or the problem singular here"
            ),
        }
    }
}

impl std::error::Error for SolveError {}
