//! Dense output inside one accepted step [t_n, t_n + h], at θ = (t − t_n)/h ∈ [0, 1].
//!
//! - dopri5: Hairer's 4th-order continuous extension (`dopri5.f`, CONTD5);
//! - tsit5: Tsitouras' free 4th-order interpolant, b_i(θ) = Σ_m r_im θ^m;
//! - vern7: Verner's interpolant (16 stages: the step's 10, f(t_{n+1}, u_{n+1}) and five
//!   more, evaluated only for steps that contain a save point);
//! - everything else (bosh3, whose natural interpolant it is, the fixed-step methods):
//!   cubic Hermite from (u_n, f_n, u_{n+1}, f_{n+1}).
//!
//! The two RK-weight interpolants are written as weights w_i(θ) with
//! u(t_n + θh) = u_n + h Σ_i w_i(θ) k_i, so they can be checked against the order conditions
//! (see the tests) and evaluated with one pass over the stages.

use super::OdeRhs;
use super::tableau::{DOPRI5, DOPRI5_D, DenseKind, VERN7_INTERP};

/// Cubic Hermite interpolation:
/// u(θ) = (1−θ)u0 + θu1 + θ(θ−1)[(1−2θ)(u1−u0) + (θ−1)h f0 + θ h f1].
#[inline]
pub fn hermite(
    theta: f64,
    h: f64,
    u0: &[f64],
    f0: &[f64],
    u1: &[f64],
    f1: &[f64],
    out: &mut [f64],
) {
    let t = theta;
    let a = t * (t - 1.0);
    for i in 0..out.len() {
        let d = u1[i] - u0[i];
        out[i] = (1.0 - t) * u0[i]
            + t * u1[i]
            + a * ((1.0 - 2.0 * t) * d + (t - 1.0) * h * f0[i] + t * h * f1[i]);
    }
}

/// Hairer's dopri5 dense output as stage weights:
/// w_i(θ) = θ b_i + θ(1−θ)([i=1] − b_i) + θ²(1−θ)(2b_i − [i=1] − [i=7]) + θ²(1−θ)² d_i.
#[inline]
pub fn dopri5_weights(theta: f64, w: &mut [f64; 7]) {
    let t = theta;
    let t1 = 1.0 - t;
    for i in 0..7 {
        let b = DOPRI5.b[i];
        let first = if i == 0 { 1.0 } else { 0.0 };
        let last = if i == 6 { 1.0 } else { 0.0 };
        w[i] = t * b
            + t * t1 * (first - b)
            + t * t * t1 * (2.0 * b - first - last)
            + t * t * t1 * t1 * DOPRI5_D[i];
    }
}

/// b_i(θ) = r_i1 θ + r_i2 θ² + r_i3 θ³ + r_i4 θ⁴.
#[inline]
pub fn poly4_weights(r: &[[f64; 4]], theta: f64, w: &mut [f64]) {
    for (wi, ri) in w.iter_mut().zip(r) {
        *wi = theta * (ri[0] + theta * (ri[1] + theta * (ri[2] + theta * ri[3])));
    }
}

/// Stage weights of a method's own interpolant, when it has one (length S), else `None`.
pub fn stage_weights(kind: DenseKind, theta: f64, w: &mut [f64]) -> bool {
    match kind {
        DenseKind::Hermite | DenseKind::Vern7 => false,
        DenseKind::Dopri5 => {
            let mut ww = [0.0; 7];
            dopri5_weights(theta, &mut ww);
            w[..7].copy_from_slice(&ww);
            true
        }
        DenseKind::Poly4(r) => {
            poly4_weights(r, theta, &mut w[..r.len()]);
            true
        }
    }
}

/// Verner's vern7 interpolation weights b_i(θ) over its 16 stages.
#[inline]
pub fn vern7_weights(theta: f64, w: &mut [f64; 16]) {
    for (wi, ri) in w.iter_mut().zip(&VERN7_INTERP.r) {
        let mut p = 0.0;
        for m in (0..7).rev() {
            p = p * theta + ri[m];
        }
        *wi = p * theta;
    }
}

/// Evaluates vern7's five extra interpolation stages (stages 11..16; stage 10 is `fnext`)
/// into `kx` (5·dim, stage-major). `k` holds the step's 10 stages. Five rhs calls.
#[allow(clippy::too_many_arguments)]
pub fn vern7_extra_stages<R: OdeRhs + ?Sized>(
    rhs: &mut R,
    t: f64,
    h: f64,
    u: &[f64],
    k: &[f64],
    fnext: &[f64],
    kx: &mut [f64],
    tmp: &mut [f64],
) {
    let dim = u.len();
    for x in 0..5 {
        let row = &VERN7_INTERP.a[x];
        let (done, rest) = kx.split_at_mut(x * dim);
        for i in 0..dim {
            let mut acc = 0.0;
            for j in 0..10 {
                if row[j] != 0.0 {
                    acc += row[j] * k[j * dim + i];
                }
            }
            acc += row[10] * fnext[i];
            for j in 0..x {
                acc += row[11 + j] * done[j * dim + i];
            }
            tmp[i] = u[i] + h * acc;
        }
        rhs.eval(t + VERN7_INTERP.c[x] * h, tmp, &mut rest[..dim]);
    }
}

/// vern7's dense output at θ from the 10 step stages, `fnext` and the extra stages `kx`.
#[inline]
pub fn vern7_interpolate(
    theta: f64,
    h: f64,
    u0: &[f64],
    k: &[f64],
    fnext: &[f64],
    kx: &[f64],
    out: &mut [f64],
) {
    let dim = out.len();
    let mut w = [0.0; 16];
    vern7_weights(theta, &mut w);
    for i in 0..dim {
        let mut acc = 0.0;
        for j in 0..10 {
            if w[j] != 0.0 {
                acc += w[j] * k[j * dim + i];
            }
        }
        acc += w[10] * fnext[i];
        for x in 0..5 {
            acc += w[11 + x] * kx[x * dim + i];
        }
        out[i] = u0[i] + h * acc;
    }
}

/// Evaluates the dense output of one step (Hermite or stage weights; not vern7).
///
/// `k` holds the S stages stage-major (`k[j*dim + i]`); `f1` = f(t_n + h, u_{n+1}) (used by
/// Hermite only; for an FSAL method it is the last stage).
#[allow(clippy::too_many_arguments)]
#[inline]
pub fn interpolate<const S: usize>(
    kind: DenseKind,
    theta: f64,
    h: f64,
    u0: &[f64],
    u1: &[f64],
    k: &[f64],
    f1: &[f64],
    out: &mut [f64],
) {
    let dim = out.len();
    let mut w = [0.0; S];
    if stage_weights(kind, theta, &mut w) {
        for i in 0..dim {
            let mut acc = 0.0;
            for j in 0..S {
                acc += w[j] * k[j * dim + i];
            }
            out[i] = u0[i] + h * acc;
        }
    } else {
        hermite(theta, h, u0, &k[..dim], u1, f1, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::tableau::TSIT5;

    #[test]
    fn own_interpolants_satisfy_order_4_conditions_at_every_theta() {
        for (tab, kind) in [
            (DOPRI5.to_tableau(), DOPRI5.dense),
            (TSIT5.to_tableau(), TSIT5.dense),
        ] {
            for k in 0..=20 {
                let theta = k as f64 / 20.0;
                let mut w = [0.0; 7];
                assert!(stage_weights(kind, theta, &mut w));
                tab.check_dense_weights(&w, theta, 4)
                    .unwrap_or_else(|e| panic!("{e}"));
            }
            // θ = 1 reproduces the step (w = b, to round-off).
            let mut w = [0.0; 7];
            stage_weights(kind, 1.0, &mut w);
            for (wi, bi) in w.iter().zip(&tab.b) {
                assert!((wi - bi).abs() < 1e-14, "{}: {wi} vs {bi}", tab.name);
            }
            // They are not 5th order (so the check above is meaningful at order 4).
            let mut w = [0.0; 7];
            stage_weights(kind, 0.5, &mut w);
            assert!(tab.check_dense_weights(&w, 0.5, 5).is_err(), "{}", tab.name);
        }
    }

    #[test]
    fn vern7_interpolant_satisfies_its_order_conditions() {
        let tab = crate::runtime::tableau::vern7_extended_tableau();
        // The extended tableau is itself consistent (row sums) to its (trivial) order.
        let mut t1 = tab.clone();
        t1.order = 1;
        t1.check_consistency().unwrap();
        let mut w = [0.0; 16];
        for k in 0..=10 {
            let theta = k as f64 / 10.0;
            vern7_weights(theta, &mut w);
            // The weights are cancelling sums of coefficients up to ~1200: scale the round-off
            // tolerance by the size of the terms, Σ_i Σ_m |r_im| θ^(m+1).
            let mag: f64 = VERN7_INTERP
                .r
                .iter()
                .flat_map(|ri| {
                    ri.iter()
                        .enumerate()
                        .map(move |(m, r)| r.abs() * theta.powi(m as i32 + 1))
                })
                .sum();
            let tol = CHECK_TOL * mag.max(1.0);
            // Verner's interpolant for the 7(6) pair is of order 6 ...
            tab.check_dense_weights_tol(&w, theta, 6, tol)
                .unwrap_or_else(|e| panic!("{e}"));
            // ... and not 7 (for θ strictly inside the step).
            if k > 0 && k < 10 {
                assert!(tab.check_dense_weights_tol(&w, theta, 7, tol).is_err());
            }
        }
        vern7_weights(1.0, &mut w);
        for j in 0..16 {
            let b = if j < 10 { VERN7_B[j] } else { 0.0 };
            assert!((w[j] - b).abs() < 1e-12, "stage {j}: {} vs {b}", w[j]);
        }
    }
    use crate::runtime::tableau::{CHECK_TOL, VERN7};
    const VERN7_B: [f64; 10] = VERN7.b;

    #[test]
    fn a_perturbed_interpolant_fails_the_check() {
        let tab = TSIT5.to_tableau();
        let mut r = crate::runtime::tableau::TSIT5_R;
        r[3][1] += 1e-6;
        let mut w = [0.0; 7];
        poly4_weights(&r, 0.3, &mut w);
        assert!(tab.check_dense_weights(&w, 0.3, 4).is_err());
    }

    #[test]
    fn hermite_reproduces_cubics() {
        // u(t) = t³ − 2t² + t − 5 on [1, 3], h = 2.
        let u = |t: f64| t * t * t - 2.0 * t * t + t - 5.0;
        let du = |t: f64| 3.0 * t * t - 4.0 * t + 1.0;
        let (t0, h) = (1.0, 2.0);
        for k in 0..=10 {
            let th = k as f64 / 10.0;
            let mut out = [0.0];
            hermite(
                th,
                h,
                &[u(t0)],
                &[du(t0)],
                &[u(t0 + h)],
                &[du(t0 + h)],
                &mut out,
            );
            assert!((out[0] - u(t0 + th * h)).abs() < 1e-13);
        }
    }
}
