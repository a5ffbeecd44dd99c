//! Delay models on the compiled kernels: the vector field's lagged-state arguments
//! (`lag0`, `lag1`, … — one per distinct lag, each a whole state vector) filled from the
//! DDE history that [`crate::runtime::dde`] keeps.
//!
//! Owns binding a [`Program`]'s delay kernels (`delays(p)`, `history(t, p)`) and its vector
//! field to the runtime's [`DdeRhs`], and evaluating outputs that read lagged states. It
//! must never step or interpolate itself: stepping and the history belong to the runtime.

use super::Program;
use crate::backend::Kernel;
use crate::runtime::dde::{self, DdeHistory, DdeOptions, DdeRhs, LagSource};
use crate::runtime::{self, Solution, SolveError};
use std::sync::Arc;

/// The compiled kernels a delay model adds.
pub struct DdeKernels {
    /// `tau = delays(p)`: one entry per distinct lag.
    pub delays: Arc<dyn Kernel>,
    /// `u = history(t, p)`: the state for t < t0.
    pub history: Arc<dyn Kernel>,
}

/// A delay model's vector field bound to a parameter vector: what the DDE solver sees.
pub struct ProgramDde<'a> {
    prog: &'a Program,
    k: &'a DdeKernels,
    p: &'a [f64],
    tau: Vec<f64>,
    t: [f64; 1],
    scratch: Vec<f64>,
    work: Vec<f64>,
}

/// Kernel argument lists up to this long live on the stack.
const INLINE_ARGS: usize = 8;

/// Calls `f` with a delay kernel's arguments `(t, u, p, lag0, lag1, …)`: `m` lagged blocks
/// of `block` entries each from `lags`. Up to [`INLINE_ARGS`] arguments live on the stack
/// (the vector field is called once per stage).
pub(crate) fn with_kernel_args<R>(
    t: &[f64],
    u: &[f64],
    p: &[f64],
    lags: &[f64],
    (block, m): (usize, usize),
    f: impl FnOnce(&[&[f64]]) -> R,
) -> R {
    let lag_blocks = lags.chunks_exact(block).take(m);
    if 3 + m <= INLINE_ARGS {
        let mut buf: [&[f64]; INLINE_ARGS] = [&[]; INLINE_ARGS];
        buf[0] = t;
        buf[1] = u;
        buf[2] = p;
        for (slot, l) in buf[3..].iter_mut().zip(lag_blocks) {
            *slot = l;
        }
        f(&buf[..3 + m])
    } else {
        let mut args: Vec<&[f64]> = vec![t, u, p];
        args.extend(lag_blocks);
        f(&args)
    }
}

impl ProgramDde<'_> {
    fn with_args<R>(&self, u: &[f64], lags: &[f64], f: impl FnOnce(&[&[f64]]) -> R) -> R {
        let shape = (self.prog.dim(), self.tau.len());
        with_kernel_args(&self.t, u, self.p, lags, shape, f)
    }
}

impl DdeRhs for ProgramDde<'_> {
    fn dim(&self) -> usize {
        self.prog.dim()
    }

    fn delays(&self) -> &[f64] {
        &self.tau
    }

    fn history(&mut self, t: f64, u: &mut [f64]) {
        self.k
            .history
            .call(&[&[t], self.p], &mut [u], &mut self.scratch);
    }

    fn eval(&mut self, t: f64, u: &[f64], lags: &[f64], du: &mut [f64]) {
        self.t[0] = t;
        let mut scratch = std::mem::take(&mut self.scratch);
        self.with_args(u, lags, |args| {
            self.prog.vector_field.call(args, &mut [du], &mut scratch)
        });
        self.scratch = scratch;
    }

    fn jac(&mut self, t: f64, u: &[f64], lags: &[f64], jac: &mut [f64]) -> bool {
        // The Jacobian kernel keeps the vector field's arguments (the lags are held fixed);
        // a sparse one is left to forward differences.
        let Some(Ok(kernel)) = self.prog.jacobian.get() else {
            return false;
        };
        let n = self.prog.dim();
        self.t[0] = t;
        let mut work = std::mem::take(&mut self.work);
        let mut scratch = std::mem::take(&mut self.scratch);
        let done = self.with_args(u, lags, |args| {
            kernel.dense_at(args, n, &mut work, &mut scratch, jac)
        });
        self.work = work;
        self.scratch = scratch;
        done
    }
}

/// Why a delay model cannot be solved with some options at some params.
#[derive(Clone, Debug, PartialEq)]
pub enum DdeRefusal {
    /// The method cannot solve delay equations (the message names one that can).
    Unavailable(String),
    /// The options or params are unusable: a delay that is not positive, a fixed step
    /// longer than the smallest delay, an end time before the start.
    Invalid(String),
}

impl std::fmt::Display for DdeRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DdeRefusal::Unavailable(m) | DdeRefusal::Invalid(m) => f.write_str(m),
        }
    }
}

impl Program {
    /// What a delay model needs of a solve before it starts: a method with a history
    /// interpolant of its order, a forward span, positive delays and a fixed step no longer
    /// than the smallest delay.
    pub fn check_dde_options(
        &self,
        p: &[f64],
        opts: &runtime::SolveOptions,
    ) -> Result<(), DdeRefusal> {
        use runtime::Method;
        if opts.method == Method::Vern7 {
            return Err(DdeRefusal::Unavailable(
                "vern7 cannot solve delay equations: its lagged values would come from a cubic Hermite history, far below its order; use tsit5, dopri5 or a stiff method".into(),
            ));
        }
        if opts.method == Method::Auto {
            return Err(DdeRefusal::Unavailable(
                "method auto cannot solve delay equations: the history lives in the method's own interpolant, which would change at every switch; use tsit5, dopri5 or a stiff method".into(),
            ));
        }
        if opts.t1 < opts.t0 {
            return Err(DdeRefusal::Invalid(format!(
                "a delay model is solved forward in time only (t1 = {} < t0 = {})",
                opts.t1, opts.t0
            )));
        }
        let tau = self.delays(p);
        for (j, tj) in tau.iter().enumerate() {
            if !(tj.is_finite() && *tj > 0.0) {
                return Err(DdeRefusal::Invalid(format!(
                    "with these params the model's delay {} (in order of appearance) is {tj}: delays must be positive",
                    j + 1
                )));
            }
        }
        let tau_min = tau.iter().copied().fold(f64::INFINITY, f64::min);
        if let Some(dt) = opts.dt.filter(|_| opts.is_fixed_step())
            && dt.abs() > tau_min
        {
            return Err(DdeRefusal::Invalid(format!(
                "the step dt = {dt} exceeds the smallest delay {tau_min}: a delay equation needs dt ≤ min τ"
            )));
        }
        Ok(())
    }

    /// Whether the model reads lagged states (`x(t - tau)`).
    pub fn is_dde(&self) -> bool {
        self.dde.is_some()
    }

    /// The delays τ_j for parameters `p`, one per distinct lag (empty for a model without).
    pub fn delays(&self, p: &[f64]) -> Vec<f64> {
        let Some(k) = &self.dde else {
            return Vec::new();
        };
        let mut tau = vec![0.0; k.delays.out_lens()[0]];
        k.delays.call(&[p], &mut [&mut tau], &mut Vec::new());
        tau
    }

    /// The delay model bound to `p` (`None` without delays).
    pub fn dde_rhs<'a>(&'a self, p: &'a [f64]) -> Option<ProgramDde<'a>> {
        assert_eq!(
            p.len(),
            self.layout.len,
            "the parameter vector has the wrong length"
        );
        let k = self.dde.as_ref()?;
        Some(ProgramDde {
            prog: self,
            k,
            p,
            tau: self.delays(p),
            t: [0.0],
            scratch: Vec::new(),
            work: Vec::new(),
        })
    }

    /// Solves a delay model from `u0` (the state at t0; the model's `history` before it),
    /// returning the solution and the dense history of its steps.
    pub fn solve_dde(
        &self,
        p: &[f64],
        u0: &[f64],
        opts: &runtime::SolveOptions,
        dopts: &DdeOptions,
    ) -> Result<(Solution, DdeHistory), SolveError> {
        let Some(mut rhs) = self.dde_rhs(p) else {
            return Err(SolveError {
                t: opts.t0,
                reason: runtime::FailReason::InvalidInput(
                    "the model has no delayed states: solve it as an ODE".into(),
                ),
                stats: Default::default(),
            });
        };
        if opts.method.is_implicit() {
            // Compiled once; a failure leaves forward differences to the solver.
            let _ = self.jacobian();
        }
        dde::solve_dde_history(&mut rhs, u0, opts, dopts)
    }

    /// The lagged states u(t − τ_j) at time t of a finished solve, for delays `tau`: the
    /// history before t0, the solution from t0 on (at t0 itself u0, the solution's value).
    pub fn lagged_states(&self, hist: &DdeHistory, p: &[f64], tau: &[f64], t: f64) -> Vec<f64> {
        let history = &self.dde.as_ref().expect("a delay model").history;
        let n = self.dim();
        let mut out = vec![0.0; tau.len() * n];
        for (j, tj) in tau.iter().enumerate() {
            let o = &mut out[j * n..(j + 1) * n];
            match hist.lag_source(t - tj, hist.len(), true) {
                LagSource::History(s) => history.call(&[&[s], p], &mut [o], &mut Vec::new()),
                src => hist.eval_source(src, o),
            }
        }
        out
    }

    /// The outputs at every saved row of a delay model's solution (row-major,
    /// `sol.len() × output_len`), lagged states read from `hist`.
    pub fn dde_outputs_of(&self, sol: &Solution, hist: &DdeHistory, p: &[f64]) -> Vec<f64> {
        let n = self.output_len();
        let mut out = vec![0.0; sol.len() * n];
        if n == 0 {
            return out;
        }
        let mut scratch = Vec::new();
        let tau = self.delays(p);
        for (i, &t) in sol.t.iter().enumerate() {
            let lags = self.lagged_states(hist, p, &tau, t);
            let tt = [t];
            let mut args: Vec<&[f64]> = vec![&tt, sol.row(i), p];
            args.extend(lags.chunks_exact(self.dim()));
            self.outputs
                .call(&args, &mut [&mut out[i * n..(i + 1) * n]], &mut scratch);
        }
        out
    }
}
