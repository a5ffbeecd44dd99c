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
//!   Every [`PROBE_EVERY`] steps a power iteration on finite-difference products J·v also
//!   estimates ρ in every direction; [`PROBES_STIFF`] stiff probes in a row switch too.
//! - *Stiff → non-stiff*: at each rodas5 step ‖J‖∞ (J at the step's start, which rodas5
//!   evaluates anyway) bounds the spectral radius. h·‖J‖∞ below [`NONSTIFF_HNORM`] on
//!   [`NONSTIFF_AFTER`] accepted steps in a row means tsit5 would be stable, with a margin, at
//!   rodas5's own step: switch back. The margin keeps the two from switching to and fro.
//!
//! Each piece starts the next method at the switch point with a fresh controller and the last
//! step size (×2 into rodas5, ×½ back, as AutoSwitch's dtfac); the save points are filled by the method in charge; `max_steps` bounds all pieces
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
/// Accepted tsit5 steps between two power-iteration probes of the spectral radius.
pub const PROBE_EVERY: u32 = 25;
/// Power iterations (one vector-field call each) per probe.
pub const POWER_ITERS: usize = 6;
/// Stiff probes in a row before a switch to rodas5.
pub const PROBES_STIFF: u32 = 2;
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
    /// The last accepted step's size (magnitude): the next piece starts from it.
    last_h: f64,
    /// Scratch for tsit5's stage-6 input.
    y6: Vec<f64>,
    /// Power iteration: accepted steps since the last probe, stiff probes in a row, the
    /// iterate (kept between probes, so it keeps converging), scratch, and the vector-field
    /// calls made (added to the solve's `rhs_evals`).
    since_probe: u32,
    probe_hits: u32,
    v: Vec<f64>,
    w: Vec<f64>,
    probe_evals: u64,
}

impl<R: OdeJacobian + ?Sized> Switching<'_, R> {
    fn start(&mut self, mode: Mode) {
        self.mode = mode;
        self.evidence = 0;
        self.calm = 0;
        self.stop = None;
        self.since_probe = 0;
        self.probe_hits = 0;
    }

    /// ρ(∂f/∂u) at (t, u) by power iteration on finite-difference products J·v ≈
    /// (f(u + εv) − f(u))/ε, from f0 = f(t, u). Hairer's estimate sees the dominant eigenvalue
    /// only along the step's error, which at tight tolerances can miss a stiff mode that is
    /// already damped (OREGO at rtol 1e-10 ran 170 000 stability-limited tsit5 steps with it
    /// below 3.1); this probe looks in every direction.
    fn power_rho(&mut self, t: f64, u: &[f64], f0: &[f64]) -> f64 {
        let n = u.len();
        let unorm = u.iter().map(|x| x * x).sum::<f64>().sqrt();
        let mut rho = 0.0;
        for _ in 0..POWER_ITERS {
            let vnorm = self.v.iter().map(|x| x * x).sum::<f64>().sqrt();
            if !(vnorm > 0.0 && vnorm.is_finite()) {
                self.reset_iterate();
                return rho;
            }
            let eps = f64::EPSILON.sqrt() * (1.0 + unorm);
            for i in 0..n {
                self.v[i] /= vnorm;
                self.y6[i] = u[i] + eps * self.v[i];
            }
            self.rhs.eval(t, &self.y6, &mut self.w);
            self.probe_evals += 1;
            let mut wnorm = 0.0;
            for i in 0..n {
                self.w[i] = (self.w[i] - f0[i]) / eps;
                wnorm += self.w[i] * self.w[i];
            }
            rho = wnorm.sqrt();
            std::mem::swap(&mut self.v, &mut self.w);
        }
        if !rho.is_finite() {
            self.reset_iterate();
            return 0.0;
        }
        rho
    }

    /// A fixed start vector with entries of both signs (not an eigenvector of a typical J).
    fn reset_iterate(&mut self) {
        for (i, x) in self.v.iter_mut().enumerate() {
            *x = 1.0 + 0.5 * (i % 3) as f64 * if i % 2 == 0 { 1.0 } else { -1.0 };
        }
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
        self.last_h = h.abs();
        let switch = match self.mode {
            Mode::Explicit => {
                self.since_probe += 1;
                if self.since_probe >= PROBE_EVERY {
                    self.since_probe = 0;
                    let n = u.len();
                    // tsit5 is FSAL: its last stage is f(t_new, u_new).
                    let rho = self.power_rho(t_new, u_new, &k[6 * n..7 * n]);
                    if h.abs() * rho > STIFF_HRHO {
                        self.probe_hits += 1;
                    } else {
                        self.probe_hits = 0;
                    }
                }
                if self.tsit5_hrho(h, u, u_new, k) > STIFF_HRHO {
                    self.evidence += 1;
                    self.calm = 0;
                } else {
                    self.calm += 1;
                    if self.calm >= CALM_RESET {
                        self.evidence = 0;
                    }
                }
                self.evidence >= STIFF_AFTER || self.probe_hits >= PROBES_STIFF
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
        last_h: 0.0,
        y6: vec![0.0; dim],
        since_probe: 0,
        probe_hits: 0,
        v: vec![0.0; dim],
        w: vec![0.0; dim],
        probe_evals: 0,
    };
    sw.reset_iterate();
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
            // The next method starts where the last one was (OrdinaryDiffEq's AutoSwitch does
            // the same, with its dtfac = 2): from a fresh starting-step estimate, rodas5's first
            // steps would be small enough to look non-stiff and switch straight back.
            piece.dt = Some(match mode {
                Mode::Stiff => 2.0 * sw.last_h,
                Mode::Explicit => 0.5 * sw.last_h,
            });
        }
        if piece.dtmin.is_none() {
            // The explicit loop's default smallest step is relative to max(|t0|, |t1|), which
            // over [0, 1e11] forbids the 1e-6 steps a stiff start needs: use the stiff loop's
            // rule (relative to the current time) at the piece's start instead.
            piece.dtmin = Some((16.0 * f64::EPSILON * t.abs()).max(f64::MIN_POSITIVE));
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
        sol.stats.rhs_evals += std::mem::take(&mut sw.probe_evals);
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
