//! Step-size control: the error norm, a PI controller and Hairer's starting step size.

use super::{OdeRhs, Stats};

/// RMS norm of `err_i / (atol_i + rtol·max(|u_i|, |u_new_i|))` (Hairer's norm; the same one
/// the stepping loop computes fused with the step). `atol` has length 1 or `err.len()`.
/// Returns NaN or ∞ when any term is non-finite.
pub fn error_norm(err: &[f64], u: &[f64], u_new: &[f64], atol: &[f64], rtol: f64) -> f64 {
    let n = err.len();
    if n == 0 {
        return 0.0;
    }
    let mut acc = 0.0;
    for i in 0..n {
        let at = if atol.len() == 1 { atol[0] } else { atol[i] };
        let sc = at + rtol * u[i].abs().max(u_new[i].abs());
        let r = err[i] / sc;
        acc += r * r;
    }
    // NaN in `u`/`u_new` is invisible to `max`; make it visible.
    let poison: f64 = u.iter().chain(u_new).map(|x| x * 0.0).sum();
    (acc / n as f64).sqrt() + poison
}

/// Hairer/OrdinaryDiffEq-style PI controller on the scaled error E (accept when E ≤ 1):
/// `factor = safety · E^(−β1) · E_prev^(β2)`, clamped to `[qmin, qmax]`, with no growth on the
/// step right after a rejection; on rejection only the current-error term is used,
/// `factor = max(qmin, safety · E^(−β1))`.
///
/// Defaults (for an embedded pair with error order q = embedded order + 1, i.e. the local
/// error estimate is O(h^q)): β1 = 0.7/q, β2 = 0.4/q (OrdinaryDiffEq.jl's defaults; Hairer–Wanner II, IV.2: the
/// current-error term keeps roughly the classical E^(−1/q) behaviour, the E_prev term damps step-size
/// oscillations), safety 0.9, qmin 0.2,
/// qmax 10, E_prev starts at 1e-4 (as in `dopri5.f`'s FACOLD).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PiController {
    pub beta1: f64,
    pub beta2: f64,
    pub safety: f64,
    pub qmin: f64,
    pub qmax: f64,
    /// The previous accepted step's error (floored at 1e-4).
    pub err_prev: f64,
    /// ln(err_prev), kept so each decision costs one ln and one exp (not two pow).
    ln_err_prev: f64,
    /// The previous attempt was rejected: cap the next accepted growth at 1.
    pub last_rejected: bool,
}

/// ln(1e-4), the floor of ln E_prev.
pub(crate) const LN_1E_4: f64 = -9.210340371976182;

/// What the controller decided about one attempted step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Decision {
    pub accept: bool,
    /// Multiply the step size by this for the next attempt.
    pub factor: f64,
}

impl PiController {
    /// `q`: the order of the local error estimate (embedded order + 1).
    pub fn new(q: u32) -> Self {
        let q = q.max(1) as f64;
        PiController {
            beta1: 0.7 / q,
            beta2: 0.4 / q,
            safety: 0.9,
            qmin: 0.2,
            qmax: 10.0,
            err_prev: 1e-4,
            ln_err_prev: LN_1E_4,
            last_rejected: false,
        }
    }

    /// Decide on a step with scaled error `e` (must be finite; the loop handles non-finite
    /// estimates itself, see [`PiController::reject_nonfinite`]).
    #[inline]
    pub fn decide(&mut self, e: f64) -> Decision {
        if e <= 1.0 {
            // safety · E^(−β1) · E_prev^(β2) as one exp of logs; E = 0 gives ln E = −∞ and an
            // infinite factor, clamped to qmax.
            let ln_e = e.ln();
            let mut factor =
                self.safety * (self.beta2 * self.ln_err_prev - self.beta1 * ln_e).exp();
            factor = factor.clamp(self.qmin, self.qmax);
            if self.last_rejected {
                factor = factor.min(1.0);
            }
            self.err_prev = e.max(1e-4);
            self.ln_err_prev = ln_e.max(LN_1E_4);
            self.last_rejected = false;
            Decision {
                accept: true,
                factor,
            }
        } else {
            let factor = (self.safety * (-self.beta1 * e.ln()).exp()).clamp(self.qmin, 1.0);
            self.last_rejected = true;
            Decision {
                accept: false,
                factor,
            }
        }
    }

    /// A trial step whose state or error estimate is NaN/∞: reject and cut by `qmin`.
    #[inline]
    pub fn reject_nonfinite(&mut self) -> Decision {
        self.last_rejected = true;
        Decision {
            accept: false,
            factor: self.qmin,
        }
    }
}

/// Hairer's starting step size (Hairer, Nørsett & Wanner I, II.4, "Starting step size"):
///
/// d0 = ‖u0‖, d1 = ‖f0‖ (scaled by atol_i + rtol·|u0_i|); h0 = 0.01·d0/d1 (1e-6 if either is
/// < 1e-5); one explicit Euler step u1 = u0 + h0·f0 and f1 = f(t0 + h0, u1) (one rhs call,
/// counted); d2 = ‖f1 − f0‖/h0; h1 = (0.01/max(d1, d2))^(1/(p+1)) (max(1e-6, 1e-3·h0) if
/// max(d1, d2) ≤ 1e-15); h = min(100·h0, h1, hmax).
///
/// `f0` = f(t0, u0) is supplied (the caller already has it: it is the first stage).
/// `dir` is ±1. Returns the magnitude |h| (> 0). `u1`, `f1` are scratch of length dim.
#[allow(clippy::too_many_arguments)]
pub fn initial_step<R: OdeRhs + ?Sized>(
    rhs: &mut R,
    t0: f64,
    u0: &[f64],
    f0: &[f64],
    dir: f64,
    order: u32,
    rtol: f64,
    atol: &[f64],
    hmax: f64,
    u1: &mut [f64],
    f1: &mut [f64],
    stats: &mut Stats,
    norm_dim: usize,
) -> f64 {
    let dim = u0.len();
    // Norms over the first `norm_dim` components only (forward sensitivities: the state alone
    // sets the steps), the trial evaluation over all of them.
    let n = norm_dim.min(dim);
    if n == 0 {
        return hmax;
    }
    let at = |i: usize| if atol.len() == 1 { atol[0] } else { atol[i] };
    let mut d0 = 0.0;
    let mut d1 = 0.0;
    for i in 0..n {
        let sc = at(i) + rtol * u0[i].abs();
        d0 += (u0[i] / sc).powi(2);
        d1 += (f0[i] / sc).powi(2);
    }
    let d0 = (d0 / n as f64).sqrt();
    let d1 = (d1 / n as f64).sqrt();
    let mut h0 = if d0 < 1e-5 || d1 < 1e-5 {
        1e-6
    } else {
        0.01 * d0 / d1
    };
    if !h0.is_finite() {
        h0 = 1e-6;
    }
    h0 = h0.min(hmax);
    for i in 0..dim {
        u1[i] = u0[i] + dir * h0 * f0[i];
    }
    rhs.eval(t0 + dir * h0, u1, f1);
    stats.rhs_evals += 1;
    let mut d2 = 0.0;
    for i in 0..n {
        let sc = at(i) + rtol * u0[i].abs();
        d2 += ((f1[i] - f0[i]) / sc).powi(2);
    }
    let d2 = (d2 / n as f64).sqrt() / h0;
    let dmax = d1.max(d2);
    let h1 = if !d2.is_finite() {
        // The trial evaluation blew up: stay with the cautious guess.
        h0
    } else if dmax <= 1e-15 {
        (h0 * 1e-3).max(1e-6)
    } else {
        (0.01 / dmax).powf(1.0 / (order as f64 + 1.0))
    };
    let h = (100.0 * h0).min(h1).min(hmax);
    if h > 0.0 { h } else { hmax.min(1e-6) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn norm_is_rms_of_scaled_error() {
        let e = error_norm(&[1e-6, 2e-6], &[1.0, -2.0], &[1.0, 3.0], &[1e-6], 1e-6);
        // scales: 1e-6 + 1e-6·1 = 2e-6 ; 1e-6 + 1e-6·3 = 4e-6 → ratios 0.5, 0.5
        assert!((e - 0.5).abs() < 1e-15, "{e}");
        assert!(error_norm(&[0.0], &[f64::NAN], &[1.0], &[1.0], 1.0).is_nan());
        assert!(error_norm(&[f64::INFINITY], &[1.0], &[1.0], &[1.0], 1.0).is_infinite());
    }

    #[test]
    fn pi_controller_accepts_rejects_and_clamps() {
        let mut c = PiController::new(5);
        let d = c.decide(0.5);
        assert!(d.accept);
        // 0.9 · 0.5^(-0.14) · (1e-4)^(0.08)
        let want = 0.9 * 0.5f64.powf(-0.14) * 1e-4f64.powf(0.08);
        assert!((d.factor - want).abs() < 1e-14, "{} vs {want}", d.factor);
        assert_eq!(LN_1E_4, 1e-4f64.ln());
        assert_eq!(c.err_prev, 0.5);
        let d = c.decide(1e-30);
        assert!(d.accept && d.factor <= 10.0);
        assert_eq!(c.decide(0.0).factor, 10.0);
        let d = c.decide(1e6);
        assert!(!d.accept && d.factor == 0.2);
        let d = c.decide(2.0);
        assert!(!d.accept && d.factor < 1.0 && d.factor > 0.2);
        // Right after a rejection: no growth even for a tiny error.
        let d = c.decide(1e-8);
        assert!(d.accept && d.factor == 1.0);
        // Then growth is allowed again.
        assert!(c.decide(1e-8).factor > 1.0);
    }

    struct Lin;
    impl OdeRhs for Lin {
        fn dim(&self) -> usize {
            1
        }
        fn eval(&mut self, _t: f64, u: &[f64], du: &mut [f64]) {
            du[0] = -u[0];
        }
    }

    #[test]
    fn initial_step_is_sensible_and_counts_one_eval() {
        let mut st = Stats::default();
        let (mut a, mut b) = ([0.0], [0.0]);
        let h = initial_step(
            &mut Lin,
            0.0,
            &[1.0],
            &[-1.0],
            1.0,
            5,
            1e-6,
            &[1e-6],
            10.0,
            &mut a,
            &mut b,
            &mut st,
            1,
        );
        assert_eq!(st.rhs_evals, 1);
        // d0 = d1 ≈ 5e5 → h0 = 0.01; d2 ≈ ‖f1−f0‖/h0 ≈ 5e5 → h1 = (0.01/5e5)^(1/6) ≈ 0.052.
        assert!(h > 0.04 && h < 0.06, "{h}");
        // Clamped by hmax.
        let h = initial_step(
            &mut Lin,
            0.0,
            &[1.0],
            &[-1.0],
            1.0,
            5,
            1e-6,
            &[1e-6],
            1e-3,
            &mut a,
            &mut b,
            &mut st,
            1,
        );
        assert!(h <= 1e-3);
    }
}
