//! Variable-order (1–5) BDF with the NDF modification, quasi-constant step size (the
//! formulation of Shampine & Reichart's ode15s and SciPy's `BDF`, after Byrne & Hindmarsh):
//! the history is kept as backward differences D_0..D_{k+2} of the interpolating polynomial at
//! spacing h; a step-size change by a factor r rescales them (D ← (R(r)·U)ᵀ D), so the formulas
//! stay the fixed-step ones.
//!
//! A step of order k: predictor y⁰ = Σ_{i≤k} D_i, ψ = Σ_{i=1..k} γ_i D_i / α_k, and the
//! corrector d (y = y⁰ + d) solves d − c·f(t + h, y⁰ + d) + ψ = 0 with c = h/α_k by a modified
//! Newton iteration (at most 4 iterations; stops when the estimated remaining error
//! rate/(1 − rate)·‖Δ‖ < tol = max(10ε/rtol, min(0.03, √rtol)), gives up when the rate is ≥ 1 or
//! cannot reach the tolerance in the remaining iterations). The local error is
//! C_k·d (C_k = κ_k γ_k + 1/(k+1)); after k + 1 steps of equal size the order may change by one
//! to the order allowing the largest step (errors of orders k − 1, k + 1 from D_k, D_{k+2}).
//!
//! Linear algebra reuse: W = I − c·J is refactored only when c differs from the c of the last
//! factorisation by more than 30% (a stale W is corrected by CVODE's 2/(1 + c/c_W) factor), or
//! when the Newton iteration fails with a stale W. The Jacobian is re-evaluated (at the
//! predictor) only when the iteration fails with a fresh W of an old J; when it then fails
//! again the step is halved (a rejected step). Repeated failures end with `NewtonFailure`
//! (or `SingularMatrix`, `NonFiniteState`) once the step underflows.
//!
//! Dense output: the interpolating polynomial of the accepted step,
//! y(t) = D_0 + Σ_{j=1..k} D_j Π_{m<j} (t − t_{n+1} + m h)/((m + 1) h).

use super::super::controller::{error_norm, initial_step};
use super::super::integrate::{Solution, SolveOptions, all_finite, expand_atol, step_bounds};
use super::super::{FailReason, OdeJacobian, SolveError};
use super::linsolve::LinSys;
use super::{Out, dtmin_at};

const MAX_ORDER: usize = 5;
const NEWTON_MAXITER: usize = 4;
const MIN_FACTOR: f64 = 0.2;
const MAX_FACTOR: f64 = 10.0;
/// Refactor W when c/c_W leaves [1 − DGMAX, 1 + DGMAX].
const DGMAX: f64 = 0.3;

/// NDF coefficients κ_k (k = 0..5; κ_5 = 0 as in ode15s).
const KAPPA: [f64; 6] = [0.0, -0.1850, -1.0 / 9.0, -0.0823, -0.0415, 0.0];

/// γ_k = Σ_{i=1..k} 1/i.
const GAMMA: [f64; 6] = [
    0.0,
    1.0,
    1.5,
    1.5 + 1.0 / 3.0,
    1.5 + 1.0 / 3.0 + 0.25,
    1.5 + 1.0 / 3.0 + 0.25 + 0.2,
];

fn alpha(k: usize) -> f64 {
    (1.0 - KAPPA[k]) * GAMMA[k]
}

fn error_const(k: usize) -> f64 {
    KAPPA[k] * GAMMA[k] + 1.0 / (k as f64 + 1.0)
}

/// R(order, factor): R_ij = Π_{m=1..i} (m − 1 − factor·j)/m (R_0j = 1).
fn compute_r(order: usize, factor: f64) -> [[f64; MAX_ORDER + 1]; MAX_ORDER + 1] {
    let mut r = [[0.0; MAX_ORDER + 1]; MAX_ORDER + 1];
    for j in 0..=order {
        r[0][j] = 1.0;
    }
    for i in 1..=order {
        for j in 1..=order {
            let m = (i as f64 - 1.0 - factor * j as f64) / i as f64;
            r[i][j] = r[i - 1][j] * m;
        }
    }
    r
}

/// Rescales the differences D_0..D_order to a step `factor` times the current one.
fn change_d(d: &mut [f64], n: usize, order: usize, factor: f64, tmp: &mut [f64]) {
    if factor == 1.0 {
        return;
    }
    let r = compute_r(order, factor);
    let u = compute_r(order, 1.0);
    let mut ru = [[0.0; MAX_ORDER + 1]; MAX_ORDER + 1];
    for i in 0..=order {
        for j in 0..=order {
            ru[i][j] = (0..=order).map(|k| r[i][k] * u[k][j]).sum();
        }
    }
    // D_new[i] = Σ_k RU[k][i] D_old[k]
    let m = order + 1;
    tmp[..m * n].copy_from_slice(&d[..m * n]);
    for i in 0..m {
        let row = &mut d[i * n..(i + 1) * n];
        row.fill(0.0);
        for k in 0..m {
            let c = ru[k][i];
            if c != 0.0 {
                let src = &tmp[k * n..(k + 1) * n];
                for (x, s) in row.iter_mut().zip(src) {
                    *x += c * s;
                }
            }
        }
    }
}

/// Why the last attempt failed (for the status when the step underflows).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Failure {
    None,
    Error,
    Newton,
    Singular,
    NonFinite,
}

pub(crate) fn solve<R: OdeJacobian + ?Sized>(
    rhs: &mut R,
    u0: &[f64],
    opts: &SolveOptions,
) -> Result<Solution, SolveError> {
    let n = u0.len();
    let mut out = Out::new(opts, n);
    if out.start(opts, u0)? {
        return Ok(out.finish());
    }
    let mut lin = LinSys::new(rhs).map_err(|m| out.fail(opts.t0, FailReason::InvalidInput(m)))?;
    let (t0, t1, dir) = (opts.t0, opts.t1, out.dir);
    let (hmax, _) = step_bounds(opts);
    let atol = expand_atol(opts, n);
    let rtol = opts.rtol;
    let newton_tol = (10.0 * f64::EPSILON / rtol).max(0.03f64.min(rtol.sqrt()));

    let mut f = vec![0.0; n];
    rhs.eval(t0, u0, &mut f);
    out.stats.rhs_evals += 1;
    if !all_finite(&f) {
        return Err(out.fail(t0, FailReason::NonFiniteState));
    }
    let mut h_abs = match opts.dt {
        Some(dt) => dt.abs().min(hmax),
        None => {
            let (mut a, mut b) = (vec![0.0; n], vec![0.0; n]);
            initial_step(
                rhs,
                t0,
                u0,
                &f,
                dir,
                1,
                rtol,
                &atol,
                hmax,
                &mut a,
                &mut b,
                &mut out.stats,
                n,
            )
        }
    };

    let rows = MAX_ORDER + 3;
    let mut d = vec![0.0; rows * n];
    let mut tmp = vec![0.0; rows * n];
    d[..n].copy_from_slice(u0);
    for i in 0..n {
        d[n + i] = f[i] * h_abs * dir;
    }
    let mut y_pred = vec![0.0; n];
    let mut y = vec![0.0; n];
    let mut y_prev = vec![0.0; n];
    let mut psi = vec![0.0; n];
    let mut scale = vec![0.0; n];
    let mut corr = vec![0.0; n];
    let mut dy = vec![0.0; n];
    let mut err = vec![0.0; n];

    let mut order = 1usize;
    let mut n_equal = 0usize;
    let mut have_jac = false;
    // c of the current LU factors (NaN: none).
    let mut c_lu = f64::NAN;
    let mut t = t0;

    loop {
        if h_abs > hmax {
            change_d(&mut d, n, order, hmax / h_abs, &mut tmp);
            h_abs = hmax;
            n_equal = 0;
        }
        let mut current_jac = false;
        let mut last_fail = Failure::None;
        let (t_new, h, (en, safety)) = loop {
            if h_abs < dtmin_at(opts, t) || t + h_abs * dir == t {
                let reason = match last_fail {
                    Failure::Newton => FailReason::NewtonFailure { dt: h_abs * dir },
                    Failure::Singular => FailReason::SingularMatrix,
                    Failure::NonFinite => FailReason::NonFiniteState,
                    _ => FailReason::StepSizeUnderflow { dt: h_abs * dir },
                };
                return Err(out.fail(t, reason));
            }
            if out.stats.steps >= opts.max_steps {
                let max_steps = opts.max_steps;
                return Err(out.fail(t, FailReason::MaxSteps { max_steps }));
            }
            let mut t_new = t + h_abs * dir;
            if (t_new - t1) * dir >= 0.0 {
                t_new = t1;
                let h_new = (t1 - t).abs();
                change_d(&mut d, n, order, h_new / h_abs, &mut tmp);
                h_abs = h_new;
                n_equal = 0;
            }
            let h = t_new - t;
            out.stats.steps += 1;

            let al = alpha(order);
            for i in 0..n {
                let mut p = 0.0;
                let mut s = 0.0;
                for k in 0..=order {
                    p += d[k * n + i];
                    if k > 0 {
                        s += GAMMA[k] * d[k * n + i];
                    }
                }
                y_pred[i] = p;
                psi[i] = s / al;
                scale[i] = atol[i] + rtol * p.abs();
            }
            let c = h / al;

            // Newton, with W and J refreshed as needed.
            let mut converged = false;
            let mut iters = 0;
            loop {
                if !have_jac {
                    have_jac = true;
                    current_jac = true;
                    c_lu = f64::NAN;
                    if !lin.eval_jac(rhs, t, &d[..n], &mut out.stats) {
                        out.stats.rejected += 1;
                        return Err(out.fail(t, FailReason::NonFiniteState));
                    }
                }
                if !(((c / c_lu) - 1.0).abs() <= DGMAX) {
                    if lin.factor(c, &mut out.stats).is_err() {
                        c_lu = f64::NAN;
                        last_fail = Failure::Singular;
                        break;
                    }
                    c_lu = c;
                }
                let fresh_lu = c_lu == c;
                let (ok, k, why) = newton(
                    rhs, t_new, c, c_lu, newton_tol, &y_pred, &psi, &scale, &mut lin, &mut y,
                    &mut corr, &mut dy, &mut f, &mut out,
                );
                iters = k;
                if ok {
                    converged = true;
                    break;
                }
                last_fail = why;
                if !fresh_lu {
                    // Refactor with the current J and retry.
                    c_lu = f64::NAN;
                    continue;
                }
                if current_jac {
                    break;
                }
                current_jac = true;
                c_lu = f64::NAN;
                if !lin.eval_jac(rhs, t_new, &y_pred, &mut out.stats) {
                    // A non-finite Jacobian at the predictor: a smaller step may help; the
                    // next attempt needs a finite J again.
                    last_fail = Failure::NonFinite;
                    have_jac = false;
                    break;
                }
            }
            if !converged {
                out.stats.rejected += 1;
                h_abs *= 0.5;
                change_d(&mut d, n, order, 0.5, &mut tmp);
                n_equal = 0;
                continue;
            }
            let ec = error_const(order);
            for i in 0..n {
                err[i] = ec * corr[i];
            }
            let en = error_norm(&err, &y, &y, &atol, rtol);
            let safety =
                0.9 * (2 * NEWTON_MAXITER + 1) as f64 / (2 * NEWTON_MAXITER + iters) as f64;
            if !(en <= 1.0) {
                out.stats.rejected += 1;
                let factor = if en.is_finite() {
                    MIN_FACTOR.max(safety * en.powf(-1.0 / (order as f64 + 1.0)))
                } else {
                    MIN_FACTOR
                };
                h_abs *= factor;
                change_d(&mut d, n, order, factor, &mut tmp);
                n_equal = 0;
                last_fail = if en.is_finite() {
                    Failure::Error
                } else {
                    Failure::NonFinite
                };
                continue;
            }
            break (t_new, h, (en, safety));
        };
        out.stats.accepted += 1;
        n_equal += 1;
        y_prev.copy_from_slice(&d[..n]);

        // Update the differences: D_{k+2} = d − D_{k+1}, D_{k+1} = d, D_i += D_{i+1}.
        for i in 0..n {
            d[(order + 2) * n + i] = corr[i] - d[(order + 1) * n + i];
            d[(order + 1) * n + i] = corr[i];
        }
        for k in (0..=order).rev() {
            let (lo, hi) = d.split_at_mut((k + 1) * n);
            for (a, b) in lo[k * n..].iter_mut().zip(&hi[..n]) {
                *a += *b;
            }
        }

        // No stages in the hook's layout: a delay equation's history recomputes f at the ends.
        rhs.step_accepted(t, h, t_new, &y_prev, &d[..n], &[]);
        if out.has_point_before(t_new) {
            let (dd, ord) = (&d, order);
            out.fill(t_new, &dd[..n], |ts, o| {
                o.copy_from_slice(&dd[..n]);
                let mut p = 1.0;
                for j in 0..ord {
                    p *= (ts - (t_new - j as f64 * h)) / ((j as f64 + 1.0) * h);
                    let row = &dd[(j + 1) * n..(j + 2) * n];
                    for (x, r) in o.iter_mut().zip(row) {
                        *x += p * r;
                    }
                }
            });
        }
        t = t_new;
        if t == t1 {
            return Ok(out.finish());
        }

        if n_equal < order + 1 {
            continue;
        }
        let scale_new: &mut [f64] = &mut scale;
        for i in 0..n {
            scale_new[i] = atol[i] + rtol * d[i].abs();
        }
        let norm_of = |row: usize, c: f64, e: &mut [f64]| {
            for i in 0..n {
                e[i] = c * d[row * n + i] / scale_new[i];
            }
            (e.iter().map(|x| x * x).sum::<f64>() / n.max(1) as f64).sqrt()
        };
        let em = if order > 1 {
            norm_of(order, error_const(order - 1), &mut err)
        } else {
            f64::INFINITY
        };
        let ep = if order < MAX_ORDER {
            norm_of(order + 2, error_const(order + 1), &mut err)
        } else {
            f64::INFINITY
        };
        let norms = [em, en, ep];
        let mut best = 1usize;
        let mut best_f = f64::NEG_INFINITY;
        for (idx, &e) in norms.iter().enumerate() {
            let p = (order + idx) as f64; // orders k−1, k, k+1 → exponents 1/k, 1/(k+1), 1/(k+2)
            let fct = if e == 0.0 {
                f64::INFINITY
            } else {
                e.powf(-1.0 / p)
            };
            if fct > best_f || (idx == 1 && fct >= best_f) {
                best_f = fct;
                best = idx;
            }
        }
        if best_f.is_nan() {
            best = 1;
            best_f = 1.0;
        }
        order = order + best - 1;
        let factor = MAX_FACTOR.min(safety * best_f);
        h_abs *= factor;
        change_d(&mut d, n, order, factor, &mut tmp);
        n_equal = 0;
    }
}

/// The modified Newton iteration for the corrector d (y = y⁰ + d). Returns (converged,
/// iterations, why it failed).
#[allow(clippy::too_many_arguments)]
fn newton<R: OdeJacobian + ?Sized>(
    rhs: &mut R,
    t_new: f64,
    c: f64,
    c_lu: f64,
    tol: f64,
    y_pred: &[f64],
    psi: &[f64],
    scale: &[f64],
    lin: &mut LinSys,
    y: &mut [f64],
    corr: &mut [f64],
    dy: &mut [f64],
    f: &mut [f64],
    out: &mut Out,
) -> (bool, usize, Failure) {
    let n = y.len();
    y.copy_from_slice(y_pred);
    corr.fill(0.0);
    let mut dy_norm_old = f64::NAN;
    // CVODE's correction for a W factored with another c.
    let stale = if c_lu == c {
        1.0
    } else {
        2.0 / (1.0 + c / c_lu)
    };
    for k in 0..NEWTON_MAXITER {
        rhs.eval(t_new, y, f);
        out.stats.rhs_evals += 1;
        out.stats.newton_iters += 1;
        if !all_finite(f) {
            return (false, k + 1, Failure::NonFinite);
        }
        for i in 0..n {
            dy[i] = c * f[i] - psi[i] - corr[i];
        }
        if lin.solve(dy).is_err() {
            return (false, k + 1, Failure::Singular);
        }
        if stale != 1.0 {
            for x in dy.iter_mut() {
                *x *= stale;
            }
        }
        let dy_norm = if n == 0 {
            0.0
        } else {
            (dy.iter()
                .zip(scale)
                .map(|(a, s)| (a / s) * (a / s))
                .sum::<f64>()
                / n as f64)
                .sqrt()
        };
        if !dy_norm.is_finite() {
            return (false, k + 1, Failure::NonFinite);
        }
        let rate = dy_norm / dy_norm_old; // NaN on the first iteration
        if rate.is_finite()
            && (rate >= 1.0
                || rate.powi((NEWTON_MAXITER - k) as i32) / (1.0 - rate) * dy_norm > tol)
        {
            return (false, k + 1, Failure::Newton);
        }
        for i in 0..n {
            y[i] += dy[i];
            corr[i] += dy[i];
        }
        if dy_norm == 0.0 || (rate.is_finite() && rate / (1.0 - rate) * dy_norm < tol) {
            return (true, k + 1, Failure::None);
        }
        dy_norm_old = dy_norm;
    }
    (false, NEWTON_MAXITER, Failure::Newton)
}
