//! Stiff (implicit) methods: Rosenbrock methods (rosenbrock23, rodas5), a variable-order
//! BDF, and `auto` (tsit5 and rodas5 with stiffness switching), driven by the same options,
//! controller, save-time and failure semantics as the explicit loop (see `integrate`): save
//! points are filled by each method's own dense output as steps pass them; t1 < t0 integrates
//! backward; failures are statuses with the last accepted time and the work done so far.
//!
//! Linear algebra lives in `linsolve` (dense LU, hand-written for n ≤ 16, faer beyond; faer's
//! sparse LU when the vector field gives a sparsity pattern).
//!
//! One difference from the explicit loop: the default smallest step is relative to the current
//! time, 16·ε·|t| (a step that barely changes t), not to max(|t0|, |t1|) — stiff solves over
//! [0, 1e11] need steps of 1e-6 near 0. An explicit `dtmin` is used as given.
//!
//! Work counters: `rhs_evals` counts every call of `eval` (also the finite difference for
//! ∂f/∂t and the starting-step probe), `jac_evals` every Jacobian evaluation,
//! `lu_factorizations` every factorisation of W, `newton_iters` (bdf) every Newton
//! iteration; steps = accepted + rejected, where a bdf attempt whose Newton iteration fails is
//! a rejected step.

// Index loops read closer to the formulas here, and `!(x <= tol)` is the deliberate
// NaN-rejecting form of a comparison.
#![allow(clippy::needless_range_loop, clippy::neg_cmp_op_on_partial_ord)]

/// Calls `$body(n)` with `n` a literal for 1 ≤ n ≤ 8, so that the `#[inline(always)]`
/// body is specialised per size: its loops unroll and its bounds checks fold away, which is
/// what generated, unrolled code would give for the small systems where per-step overhead
/// dominates.
macro_rules! with_const_n {
    ($n:expr, $body:expr) => {
        match $n {
            1 => $body(1),
            2 => $body(2),
            3 => $body(3),
            4 => $body(4),
            5 => $body(5),
            6 => $body(6),
            7 => $body(7),
            8 => $body(8),
            n => $body(n),
        }
    };
}

pub mod auto;
pub mod bdf;
pub mod linsolve;
pub mod rosenbrock;

#[cfg(test)]
mod tests;

use super::integrate::{Method, Solution, SolveOptions, all_finite, check_input, solve_with};
use super::{FailReason, OdeJacobian, SolveError, Stats};

/// Solves u' = f(t, u), u(t0) = u0 with an implicit method (`rosenbrock23`, `rodas5`, `bdf`).
/// An explicit method is refused with `InvalidInput` (see [`solve_any`]).
pub fn solve_stiff<R: OdeJacobian + ?Sized>(
    rhs: &mut R,
    u0: &[f64],
    opts: &SolveOptions,
) -> Result<Solution, SolveError> {
    check_input(rhs.dim(), u0, opts)?;
    match opts.method {
        Method::Rosenbrock23 => rosenbrock::solve::<R, rosenbrock::Ros23>(rhs, u0, opts),
        Method::Rodas5 => rosenbrock::solve::<R, rosenbrock::Rodas5P>(rhs, u0, opts),
        Method::Bdf => bdf::solve(rhs, u0, opts),
        Method::Auto => auto::solve(rhs, u0, opts),
        m => Err(SolveError {
            t: opts.t0,
            reason: FailReason::InvalidInput(format!(
                "method `{m}` is explicit: solve it with solve_with (or solve_any)"
            )),
            stats: Stats::default(),
        }),
    }
}

/// Solves with any method: explicit ones go to [`solve_with`], implicit ones to
/// [`solve_stiff`].
pub fn solve_any<R: OdeJacobian + ?Sized>(
    rhs: &mut R,
    u0: &[f64],
    opts: &SolveOptions,
) -> Result<Solution, SolveError> {
    if opts.method.is_implicit() {
        solve_stiff(rhs, u0, opts)
    } else {
        solve_with(rhs, u0, opts)
    }
}

/// The smallest step magnitude allowed at time t (see the module docs).
#[inline]
pub(crate) fn dtmin_at(opts: &SolveOptions, t: f64) -> f64 {
    opts.dtmin.unwrap_or(16.0 * f64::EPSILON * t.abs())
}

/// The save-point cursor and output rows of one solve.
pub(crate) struct Out {
    pub dim: usize,
    pub dir: f64,
    save: Vec<f64>,
    si: usize,
    out_t: Vec<f64>,
    out_u: Vec<f64>,
    pub stats: Stats,
}

impl Out {
    pub(crate) fn new(opts: &SolveOptions, dim: usize) -> Out {
        let save = opts.save_times().expect("validated");
        Out {
            dim,
            dir: if opts.t1 < opts.t0 { -1.0 } else { 1.0 },
            out_t: Vec::with_capacity(save.len()),
            out_u: Vec::with_capacity(save.len() * dim),
            save,
            si: 0,
            stats: Stats::default(),
        }
    }

    pub(crate) fn fail(&self, t: f64, reason: FailReason) -> SolveError {
        SolveError {
            t,
            reason,
            stats: self.stats,
        }
    }

    /// Rows at t0; `Some(solution)` when there is nothing to integrate (t0 == t1), an error
    /// for a non-finite initial state.
    pub(crate) fn start(&mut self, opts: &SolveOptions, u0: &[f64]) -> Result<bool, SolveError> {
        if !all_finite(u0) {
            return Err(self.fail(opts.t0, FailReason::NonFiniteState));
        }
        while self.si < self.save.len() && self.save[self.si] == opts.t0 {
            self.out_t.push(opts.t0);
            self.out_u.extend_from_slice(u0);
            self.si += 1;
        }
        if opts.t0 == opts.t1 {
            while self.si < self.save.len() {
                self.out_t.push(opts.t1);
                self.out_u.extend_from_slice(u0);
                self.si += 1;
            }
            return Ok(true);
        }
        Ok(false)
    }

    /// Whether a save point lies in (t, t_new] (a step that ends there must fill it).
    #[inline]
    pub(crate) fn has_point_before(&self, t_new: f64) -> bool {
        self.si < self.save.len() && (self.save[self.si] - t_new) * self.dir <= 0.0
    }

    /// After an accepted step (t, u) → (t_new, u_new): fills the save points in (t, t_new],
    /// a point equal to t_new by copying `u_new`, the others by `interp(ts, out)`.
    pub(crate) fn fill(
        &mut self,
        t_new: f64,
        u_new: &[f64],
        mut interp: impl FnMut(f64, &mut [f64]),
    ) {
        while self.si < self.save.len() {
            let ts = self.save[self.si];
            if (ts - t_new) * self.dir > 0.0 {
                break;
            }
            self.out_t.push(ts);
            let start = self.out_u.len();
            if ts == t_new {
                self.out_u.extend_from_slice(u_new);
            } else {
                self.out_u.resize(start + self.dim, 0.0);
                interp(ts, &mut self.out_u[start..]);
            }
            self.si += 1;
        }
    }

    /// The rows so far (all of them, unless the solve stopped early on request).
    pub(crate) fn finish(self) -> Solution {
        Solution {
            t: self.out_t,
            u: self.out_u,
            stats: self.stats,
            dim: self.dim,
        }
    }
}
