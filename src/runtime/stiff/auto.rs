//! `method = auto`: tsit5 while the problem is non-stiff, rodas5 while it is stiff, switching
//! at accepted steps (OrdinaryDiffEq's `AutoTsit5(Rodas5P())` in spirit).
//!
//! Owns the switching rule and the stitching of the pieces. The steps are the shared explicit
//! loop's and the Rosenbrock loop's, unchanged: a [`Switching`] wrapper around the vector field
//! watches each accepted step (`step_accepted`) and ends the piece (`stop_requested`) when the
//! other method should take over. This module must never step or interpolate on its own.
//!
//! - *Non-stiff → stiff* (Hairer's test in DOPRI5, HNW II §IV.2): tsit5's last two stages are
//!   both at t + h (c₆ = c₇ = 1), so ρ = ‖k₇ − k₆‖ / ‖u₁ − Y₆‖ estimates the modulus of ∂f/∂u's
//!   dominant eigenvalue along the step. h·ρ above [`STIFF_HRHO`] (0.9 × 3.5068, tsit5's
//!   stability size, the thresholds of OrdinaryDiffEq's AutoSwitch) on [`STIFF_AFTER`] accepted
//!   steps, with no run of [`CALM_RESET`] calmer steps in between, means stability, not
//!   accuracy, is limiting the step: switch. (The estimate runs low: on ROBER the
//!   stability-limited tsit5 step settles at h·ρ ≈ 3.2, so Hairer's 3.25 would rarely fire.)
//! - *Stiff → non-stiff*: at each rodas5 step ‖J‖∞ (J at the step's start, which rodas5
//!   evaluates anyway) bounds the spectral radius. h·‖J‖∞ below [`NONSTIFF_HNORM`] on
//!   [`NONSTIFF_AFTER`] accepted steps in a row means tsit5 would be stable, with a margin, at
//!   rodas5's own step: switch back. The margin keeps the two from switching to and fro.
//!
//! Each piece starts the next method at the switch point with a fresh controller and starting
//! step; the save points are filled by the method in charge; `max_steps` bounds all pieces
//! together and the statistics are their sums.

use super::super::integrate::{SaveAt, Solution, SolveOptions, solve_with};
use super::super::tableau::TSIT5;
use super::super::{FailReason, Method, OdeJacobian, OdeRhs, SolveError, Sparsity, Stats};
use super::rosenbrock::{self, Rodas5P};

/// h·ρ above this counts as a stiff tsit5 step.
pub const STIFF_HRHO: f64 = 0.9 * 3.5068;
/// Stiff tsit5 steps before a switch to rodas5.
pub const STIFF_AFTER: u32 = 10;
/// Calm tsit5 steps in a row that reset the stiff count.
pub const CALM_RESET: u32 = 3;
/// h·‖J‖∞ below this counts as a non-stiff rodas5 step.
pub const NONSTIFF_HNORM: f64 = 2.0;
/// Non-stiff rodas5 steps in a row before a switch back to tsit5.
pub const NONSTIFF_AFTER: u32 = 15;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Explicit,
    Stiff,
}

/// The vector field, watched: forwards everything to `rhs` and decides when to switch.
struct Switching<'a, R: ?Sized> {
    rhs: &'a mut R,
    mode: Mode,
    /// Explicit mode: stiff steps counted, calm steps in a row. Stiff mode: non-stiff steps
    /// in a row (in `evidence`).
    evidence: u32,
    calm: u32,
    /// ‖J‖∞ of the last Jacobian evaluated (stiff mode).
    jnorm: f64,
    /// Where the current piece stopped to switch: (t, u).
    stop: Option<(f64, Vec<f64>)>,
    /// Scratch for tsit5's stage-6 input.
    y6: Vec<f64>,
}

impl<R: OdeJacobian + ?Sized> Switching<'_, R> {
    fn start(&mut self, mode: Mode) {
        self.mode = mode;
        self.evidence = 0;
        self.calm = 0;
        self.stop = None;
    }

    /// Hairer's h·ρ for an accepted tsit5 step (k: its 7 stages, stage-major).
    fn tsit5_hrho(&mut self, h: f64, u: &[f64], u_new: &[f64], k: &[f64]) -> f64 {
        let n = u.len();
        let a = &TSIT5.a[5];
        let (mut num, mut den) = (0.0, 0.0);
        for i in 0..n {
            let mut acc = 0.0;
            for j in 0..5 {
                acc += a[j] * k[j * n + i];
            }
            self.y6[i] = u[i] + h * acc;
            let dk = k[6 * n + i] - k[5 * n + i];
            let du = u_new[i] - self.y6[i];
            num += dk * dk;
            den += du * du;
        }
        if den > 0.0 {
            h.abs() * (num / den).sqrt()
        } else {
            0.0
        }
    }
}

impl<R: OdeJacobian + ?Sized> OdeRhs for Switching<'_, R> {
    fn dim(&self) -> usize {
        self.rhs.dim()
    }
    #[inline]
    fn eval(&mut self, t: f64, u: &[f64], du: &mut [f64]) {
        self.rhs.eval(t, u, du)
    }
    fn step_accepted(&mut self, t: f64, h: f64, t_new: f64, u: &[f64], u_new: &[f64], k: &[f64]) {
        self.rhs.step_accepted(t, h, t_new, u, u_new, k);
        let switch = match self.mode {
            Mode::Explicit => {
                if self.tsit5_hrho(h, u, u_new, k) > STIFF_HRHO {
                    self.evidence += 1;
                    self.calm = 0;
                } else {
                    self.calm += 1;
                    if self.calm >= CALM_RESET {
                        self.evidence = 0;
                    }
                }
                self.evidence >= STIFF_AFTER
            }
            Mode::Stiff => {
                if h.abs() * self.jnorm < NONSTIFF_HNORM {
                    self.evidence += 1;
                } else {
                    self.evidence = 0;
                }
                self.evidence >= NONSTIFF_AFTER
            }
        };
        if switch {
            self.stop = Some((t_new, u_new.to_vec()));
        }
    }
    #[inline]
    fn stop_requested(&self) -> bool {
        self.stop.is_some()
    }
}

impl<R: OdeJacobian + ?Sized> OdeJacobian for Switching<'_, R> {
    fn jac(&mut self, t: f64, u: &[f64], jac: &mut [f64]) {
        self.rhs.jac(t, u, jac);
        let n = u.len();
        self.jnorm = (0..n)
            .map(|i| jac[i * n..(i + 1) * n].iter().map(|x| x.abs()).sum::<f64>())
            .fold(0.0, f64::max);
    }
    fn sparsity(&self) -> Option<&Sparsity> {
        self.rhs.sparsity()
    }
    fn jac_sparse(&mut self, t: f64, u: &[f64], values: &mut [f64]) {
        self.rhs.jac_sparse(t, u, values);
        let sp = self
            .rhs
            .sparsity()
            .expect("jac_sparse is only called when sparsity() is Some");
        self.jnorm = sp
            .row_ptr
            .windows(2)
            .map(|r| values[r[0]..r[1]].iter().map(|x| x.abs()).sum::<f64>())
            .fold(0.0, f64::max);
    }
    fn time_derivative(&mut self, t: f64, u: &[f64], dfdt: &mut [f64]) -> bool {
        self.rhs.time_derivative(t, u, dfdt)
    }
}

/// Solves with `method = auto` (input already checked by `solve_stiff`).
pub(crate) fn solve<R: OdeJacobian + ?Sized>(
    rhs: &mut R,
    u0: &[f64],
    opts: &SolveOptions,
) -> Result<Solution, SolveError> {
    let dim = u0.len();
    let save = opts.save_times().expect("validated");
    let mut sw = Switching {
        rhs,
        mode: Mode::Explicit,
        evidence: 0,
        calm: 0,
        jnorm: 0.0,
        stop: None,
        y6: vec![0.0; dim],
    };
    let mut sol = Solution {
        t: Vec::with_capacity(save.len()),
        u: Vec::with_capacity(save.len() * dim),
        stats: Stats::default(),
        dim,
    };
    let (mut t, mut u, mut mode) = (opts.t0, u0.to_vec(), Mode::Explicit);
    loop {
        let mut piece = opts.clone();
        piece.t0 = t;
        piece.saveat = SaveAt::Times(save[sol.t.len()..].to_vec());
        piece.max_steps = opts.max_steps - sol.stats.steps;
        if t != opts.t0 {
            // A given dt is the first step of the whole solve, not of every piece.
            piece.dt = None;
        }
        sw.start(mode);
        let part = match mode {
            Mode::Explicit => {
                piece.method = Method::Tsit5;
                solve_with(&mut sw, &u, &piece)
            }
            Mode::Stiff => {
                piece.method = Method::Rodas5;
                rosenbrock::solve::<_, Rodas5P>(&mut sw, &u, &piece)
            }
        };
        let part = part.map_err(|mut e| {
            e.stats.add(&sol.stats);
            if let FailReason::MaxSteps { max_steps } = &mut e.reason {
                *max_steps = opts.max_steps;
            }
            e
        })?;
        sol.t.extend_from_slice(&part.t);
        sol.u.extend_from_slice(&part.u);
        sol.stats.add(&part.stats);
        match sw.stop.take() {
            // Done, or asked to switch on the very last step.
            None => return Ok(sol),
            Some((ts, _)) if ts == opts.t1 => return Ok(sol),
            Some((ts, _)) if sol.stats.steps >= opts.max_steps => {
                return Err(SolveError {
                    t: ts,
                    reason: FailReason::MaxSteps {
                        max_steps: opts.max_steps,
                    },
                    stats: sol.stats,
                });
            }
            Some((ts, us)) => {
                (t, u) = (ts, us);
                mode = match mode {
                    Mode::Explicit => Mode::Stiff,
                    Mode::Stiff => Mode::Explicit,
                };
            }
        }
    }
}
