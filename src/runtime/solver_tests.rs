//! Tests of the stepping loop against closed forms, conserved quantities, an independent
//! high-accuracy reference, exact work counts and the failure statuses.

use super::{
    FailReason, FnRhs, Method, OdeRhs, SaveAt, Solution, SolveError, SolveOptions, solve,
    solve_with,
};

/// Every solve must keep steps = accepted + rejected.
fn checked(r: Result<Solution, SolveError>) -> Result<Solution, SolveError> {
    let st = match &r {
        Ok(s) => s.stats,
        Err(e) => e.stats,
    };
    assert_eq!(st.steps, st.accepted + st.rejected, "{st:?}");
    r
}

fn run<F: FnMut(f64, &[f64], &mut [f64])>(
    dim: usize,
    f: F,
    u0: &[f64],
    o: &SolveOptions,
) -> Solution {
    checked(solve_with(&mut FnRhs::new(dim, f), u0, o))
        .unwrap_or_else(|e| panic!("{}: {e}", o.method))
}

fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

// ---- convergence order ---------------------------------------------------------------------

/// A 4-component test system whose stages all matter: a damped rotation (linear), a
/// logistic equation (nonlinear) and a forced linear equation (non-autonomous, so the c_i
/// matter).
fn conv_rhs(t: f64, u: &[f64], du: &mut [f64]) {
    du[0] = -0.5 * u[0] + u[1];
    du[1] = -u[0] - 0.5 * u[1];
    du[2] = u[2] * (1.0 - u[2]);
    du[3] = -(u[3] - t.sin()) + t.cos();
}
const CONV_U0: [f64; 4] = [1.0, 0.0, 0.5, 0.5];
fn conv_exact(t: f64) -> [f64; 4] {
    let d = (-0.5 * t).exp();
    [
        d * t.cos(),
        -d * t.sin(),
        1.0 / (1.0 + (-t).exp()),
        t.sin() + 0.5 * (-t).exp(),
    ]
}

/// Least-squares slope of log(err) against log(dt).
fn slope(pts: &[(f64, f64)]) -> f64 {
    let n = pts.len() as f64;
    let (mx, my) = pts.iter().fold((0.0, 0.0), |(a, b), (x, y)| {
        (a + x.ln() / n, b + y.ln() / n)
    });
    let (mut sxy, mut sxx) = (0.0, 0.0);
    for (x, y) in pts {
        sxy += (x.ln() - mx) * (y.ln() - my);
        sxx += (x.ln() - mx).powi(2);
    }
    sxy / sxx
}

#[test]
fn every_method_converges_at_its_order_with_fixed_steps() {
    let t1 = 2.0;
    for m in Method::EXPLICIT {
        // dt ranges in the asymptotic regime and well above the round-off floor (the smallest
        // errors used are ≥ 1e-14).
        let dts: &[f64] = match m.order() {
            1 => &[0.02, 0.01, 0.005, 0.0025],
            2 => &[0.04, 0.02, 0.01, 0.005],
            3 | 4 => &[0.2, 0.1, 0.05, 0.025],
            5 => &[0.05, 0.025, 0.0125],
            _ => &[0.4, 0.2, 0.1],
        };
        // Errors of the linear part (components 0, 1) and of the nonlinear / non-autonomous
        // part (components 2, 3), separately: on linear autonomous problems many methods
        // coincide (midpoint and heun both give I + hA + h²A²/2), so the second part is what
        // tests the remaining order conditions and the c_i.
        let (mut lin, mut nonlin) = (vec![], vec![]);
        for &dt in dts {
            let mut o = SolveOptions::new(m, 0.0, t1);
            o.dt = Some(dt);
            o.adaptive = false;
            let s = run(4, conv_rhs, &CONV_U0, &o);
            let n = (t1 / dt).round() as u64;
            assert_eq!(s.stats.steps, n, "{m}: fixed grid");
            assert_eq!(s.stats.rejected, 0);
            let ex = conv_exact(t1);
            lin.push((dt, max_abs_diff(&s.last()[..2], &ex[..2])));
            nonlin.push((dt, max_abs_diff(&s.last()[2..], &ex[2..])));
        }
        for (part, pts) in [("linear", &lin), ("nonlinear", &nonlin)] {
            let p = slope(pts);
            assert!(
                (p - m.order() as f64).abs() <= 0.2,
                "{m} ({part} part): observed order {p:.3}, errors {pts:?}"
            );
            assert!(
                pts.last().unwrap().1 > 1e-14,
                "{m}: hit the round-off floor {pts:?}"
            );
        }
    }
}

// ---- adaptive golden tests -------------------------------------------------------------------

const ADAPTIVE: [Method; 4] = [Method::Bosh3, Method::Dopri5, Method::Tsit5, Method::Vern7];

#[test]
fn harmonic_oscillator_matches_cos_sin() {
    for m in ADAPTIVE {
        let mut o = SolveOptions::new(m, 0.0, 10.0);
        o.rtol = 1e-10;
        o.atol = vec![1e-10];
        let s = run(
            2,
            |_, u, du| {
                du[0] = u[1];
                du[1] = -u[0];
            },
            &[1.0, 0.0],
            &o,
        );
        let err = max_abs_diff(s.last(), &[10f64.cos(), -10f64.sin()]);
        // Global error over ~1.6 periods: a small multiple of the tolerance.
        assert!(err < 5e-9, "{m}: error {err:e}, stats {:?}", s.stats);
        assert!(err > 1e-15, "{m}: suspiciously exact");
        assert_eq!(s.t, vec![0.0, 10.0]);
    }
}

fn lotka(_t: f64, u: &[f64], du: &mut [f64]) {
    du[0] = 1.5 * u[0] - u[0] * u[1];
    du[1] = -3.0 * u[1] + u[0] * u[1];
}
/// Conserved along Lotka–Volterra trajectories (α = 1.5, β = 1, γ = 3, δ = 1).
fn lotka_invariant(u: &[f64]) -> f64 {
    u[0] - 3.0 * u[0].ln() + u[1] - 1.5 * u[1].ln()
}

#[test]
fn lotka_volterra_against_reference_and_invariant() {
    let reference = |m: Method| {
        let mut o = SolveOptions::new(m, 0.0, 10.0);
        o.rtol = 1e-13;
        o.atol = vec![1e-13];
        o.saveat = SaveAt::Every(1.0);
        run(2, lotka, &[1.0, 1.0], &o)
    };
    let r7 = reference(Method::Vern7);
    let r5 = reference(Method::Dopri5);
    // Two independent methods agree, and the reference conserves the invariant.
    assert!(
        max_abs_diff(&r7.u, &r5.u) < 1e-10,
        "{:?} vs {:?}",
        r7.u,
        r5.u
    );
    let v0 = lotka_invariant(&[1.0, 1.0]);
    for i in 0..r7.len() {
        assert!((lotka_invariant(r7.row(i)) - v0).abs() < 1e-11);
    }
    for m in ADAPTIVE {
        for tol in [1e-6, 1e-9] {
            let mut o = SolveOptions::new(m, 0.0, 10.0);
            o.rtol = tol;
            o.atol = vec![tol];
            o.saveat = SaveAt::Every(1.0);
            let s = run(2, lotka, &[1.0, 1.0], &o);
            assert_eq!(s.t, r7.t);
            let err = max_abs_diff(&s.u, &r7.u);
            assert!(err < 200.0 * tol, "{m} at tol {tol:e}: error {err:e}");
        }
    }
}

#[test]
fn kepler_orbit_conserves_energy_and_momentum_and_closes() {
    let e: f64 = 0.5;
    let q0 = [1.0 - e, 0.0, 0.0, ((1.0 + e) / (1.0 - e)).sqrt()];
    let kepler = |_t: f64, u: &[f64], du: &mut [f64]| {
        let r3 = (u[0] * u[0] + u[1] * u[1]).powf(1.5);
        du[0] = u[2];
        du[1] = u[3];
        du[2] = -u[0] / r3;
        du[3] = -u[1] / r3;
    };
    let energy =
        |u: &[f64]| 0.5 * (u[2] * u[2] + u[3] * u[3]) - 1.0 / (u[0] * u[0] + u[1] * u[1]).sqrt();
    let momentum = |u: &[f64]| u[0] * u[3] - u[1] * u[2];
    let periods = 3.0;
    for m in [Method::Dopri5, Method::Tsit5, Method::Vern7] {
        let tol = 1e-10;
        let mut o = SolveOptions::new(m, 0.0, periods * 2.0 * std::f64::consts::PI);
        o.rtol = tol;
        o.atol = vec![tol];
        o.saveat = SaveAt::Every(0.5);
        let s = run(4, kepler, &q0, &o);
        let (h0, l0) = (energy(&q0), momentum(&q0));
        assert!((h0 + 0.5).abs() < 1e-15);
        let mut worst: f64 = 0.0;
        for i in 0..s.len() {
            worst = worst
                .max((energy(s.row(i)) - h0).abs())
                .max((momentum(s.row(i)) - l0).abs());
        }
        assert!(worst < 1e-7, "{m}: invariant drift {worst:e}");
        // After whole periods the body is back at perihelion.
        let back = max_abs_diff(s.last(), &q0);
        assert!(back < 1e-6, "{m}: orbit does not close: {back:e}");
    }
}

#[test]
fn dense_output_error_is_of_the_step_error_order() {
    // Many save points per step; compare the worst interpolated error with the error at the
    // step ends (Ends saves only step-end states).
    let osc = |_t: f64, u: &[f64], du: &mut [f64]| {
        du[0] = u[1];
        du[1] = -u[0];
    };
    for m in [Method::Bosh3, Method::Dopri5, Method::Tsit5] {
        for tol in [1e-5, 1e-8] {
            let mut o = SolveOptions::new(m, 0.0, 10.0);
            o.rtol = tol;
            o.atol = vec![tol];
            let ends = run(2, osc, &[1.0, 0.0], &o);
            let end_err = max_abs_diff(ends.last(), &[10f64.cos(), -10f64.sin()]);
            o.saveat = SaveAt::Every(0.01);
            let dense = run(2, osc, &[1.0, 0.0], &o);
            assert_eq!(dense.len(), 1001);
            // Same steps: dense output never changes the step sequence.
            assert_eq!(dense.stats.steps, ends.stats.steps);
            let mut worst: f64 = 0.0;
            for i in 0..dense.len() {
                let t = dense.t[i];
                worst = worst.max(max_abs_diff(dense.row(i), &[t.cos(), -t.sin()]));
            }
            assert!(
                worst < 10.0 * end_err.max(tol),
                "{m} tol {tol:e}: dense {worst:e} vs end {end_err:e}"
            );
        }
    }
}

// ---- save points -----------------------------------------------------------------------------

#[test]
fn saveat_every_uses_exact_multiples_and_no_near_duplicate() {
    let mut o = SolveOptions::new(Method::Tsit5, 0.0, 1.0);
    o.saveat = SaveAt::Every(0.1);
    let ts = o.save_times().unwrap();
    assert_eq!(ts.len(), 11, "{ts:?}"); // 0.1·10 = 1.0000000000000002 must not give a duplicate
    for (k, t) in ts.iter().enumerate().take(10) {
        assert_eq!(*t, 0.0 + k as f64 * 0.1);
    }
    assert_eq!(ts[10], 1.0);
    o.saveat = SaveAt::Every(0.3);
    assert_eq!(o.save_times().unwrap(), vec![0.0, 0.3, 0.6, 0.3 * 3.0, 1.0]);
    let s = run(1, |_, u, du| du[0] = -u[0], &[1.0], &o);
    assert_eq!(s.t, vec![0.0, 0.3, 0.6, 0.3 * 3.0, 1.0]);
    for i in 0..s.len() {
        assert!((s.row(i)[0] - (-s.t[i]).exp()).abs() < 1e-6);
    }
}

#[test]
fn saveat_times_sorted_and_exact() {
    let mut o = SolveOptions::new(Method::Vern7, 0.0, 2.0);
    o.rtol = 1e-10;
    o.atol = vec![1e-12];
    o.saveat = SaveAt::Times(vec![1.5, 0.25, 2.0, 0.0, 1.0]);
    let s = run(1, |t, _u, du| du[0] = t.cos(), &[0.0], &o);
    assert_eq!(s.t, vec![0.0, 0.25, 1.0, 1.5, 2.0]);
    for i in 0..s.len() {
        assert!(
            (s.row(i)[0] - s.t[i].sin()).abs() < 1e-8,
            "t = {}: {}",
            s.t[i],
            s.row(i)[0]
        );
    }
    // Without t0/t1 in the list, only the listed times come back.
    o.saveat = SaveAt::Times(vec![0.5]);
    let s = run(1, |t, _u, du| du[0] = t.cos(), &[0.0], &o);
    assert_eq!(s.t, vec![0.5]);
    // Outside [t0, t1]: rejected.
    o.saveat = SaveAt::Times(vec![2.5]);
    let r = solve(
        &mut FnRhs::new(1, |_t: f64, _u: &[f64], du: &mut [f64]| du[0] = 1.0),
        &[0.0],
        &o,
    );
    assert!(matches!(
        r,
        Err(SolveError {
            reason: FailReason::InvalidInput(_),
            ..
        })
    ));
}

#[test]
fn backward_integration() {
    for m in [Method::Rk4, Method::Tsit5, Method::Vern7] {
        let mut o = SolveOptions::new(m, 1.0, 0.0);
        o.rtol = 1e-10;
        o.atol = vec![1e-12];
        o.dt = if m.is_fixed_step_only() {
            Some(0.01)
        } else {
            None
        };
        o.saveat = SaveAt::Every(0.25);
        let s = run(1, |t, u, du| du[0] = -u[0] + t, &[1.0], &o);
        assert_eq!(s.t, vec![1.0, 0.75, 0.5, 0.25, 0.0]);
        // u = t − 1 + C e^{−t}; u(1) = 1 → C = e.
        for i in 0..s.len() {
            let t = s.t[i];
            let exact = t - 1.0 + (1.0 - t).exp();
            assert!((s.row(i)[0] - exact).abs() < 1e-8, "{m} t = {t}");
        }
    }
}

// ---- work counts -----------------------------------------------------------------------------

struct Counting {
    calls: u64,
}
impl OdeRhs for Counting {
    fn dim(&self) -> usize {
        2
    }
    fn eval(&mut self, _t: f64, u: &[f64], du: &mut [f64]) {
        self.calls += 1;
        du[0] = u[1];
        du[1] = -u[0];
    }
}

#[test]
fn rhs_evals_are_counted_exactly() {
    // Fixed steps: FSAL methods cost (S − 1) per step plus the first evaluation.
    for (m, per_step, initial) in [
        (Method::Euler, 1, 0),
        (Method::Midpoint, 2, 0),
        (Method::Heun, 2, 0),
        (Method::Rk4, 4, 0),
        (Method::Bosh3, 3, 1),
        (Method::Dopri5, 6, 1),
        (Method::Tsit5, 6, 1),
        (Method::Vern7, 10, 0),
    ] {
        let mut o = SolveOptions::new(m, 0.0, 1.0);
        o.dt = Some(0.01);
        o.adaptive = false;
        let mut c = Counting { calls: 0 };
        let s = checked(solve(&mut c, &[1.0, 0.0], &o)).unwrap();
        assert_eq!(s.stats.steps, 100, "{m}");
        assert_eq!(s.stats.rhs_evals, c.calls, "{m}");
        assert_eq!(s.stats.rhs_evals, per_step * 100 + initial, "{m}");
        assert_eq!(
            (
                s.stats.jac_evals,
                s.stats.lu_factorizations,
                s.stats.newton_iters
            ),
            (0, 0, 0)
        );
    }
    // Adaptive: 1 (first stage) + 1 (starting step size) + per attempt; a non-FSAL method
    // (vern7) re-evaluates its first stage after each accepted step except the last (and not
    // after a rejection, where f(t_n, u_n) is still valid).
    for m in ADAPTIVE {
        for saveat in [SaveAt::Ends, SaveAt::Every(1e-3)] {
            let mut o = SolveOptions::new(m, 0.0, 20.0);
            o.rtol = 1e-9;
            o.saveat = saveat.clone();
            let mut c = Counting { calls: 0 };
            let s = checked(solve(&mut c, &[1.0, 0.0], &o)).unwrap();
            let st = s.stats;
            assert_eq!(st.rhs_evals, c.calls);
            assert!(st.accepted > 20 && st.rejected < st.accepted);
            let per_attempt = m.stages() as u64 - 1;
            let expected = match (m.is_fsal(), &saveat) {
                (true, _) => 2 + per_attempt * st.steps,
                (false, SaveAt::Ends) => 2 + per_attempt * st.steps + (st.accepted - 1),
                // Every step contains save points: f(t_{n+1}, u_{n+1}) is evaluated for the
                // interpolant and reused as the next first stage, plus 5 extra stages.
                (false, _) => 2 + per_attempt * st.steps + 6 * st.accepted,
            };
            assert_eq!(st.rhs_evals, expected, "{m} {saveat:?} {st:?}");
            if let SaveAt::Every(_) = saveat {
                assert_eq!(s.len(), 20_001);
            }
        }
    }
    // With a user-given first step there is no starting-step evaluation.
    let mut o = SolveOptions::new(Method::Tsit5, 0.0, 1.0);
    o.dt = Some(1e-3);
    let s = solve(&mut Counting { calls: 0 }, &[1.0, 0.0], &o).unwrap();
    assert_eq!(s.stats.rhs_evals, 1 + 6 * s.stats.steps);
}

#[test]
fn rejections_happen_and_are_counted() {
    // A much too large first step forces rejections.
    let mut o = SolveOptions::new(Method::Tsit5, 0.0, 10.0);
    o.dt = Some(10.0);
    let s = run(2, lotka, &[1.0, 1.0], &o);
    assert!(s.stats.rejected >= 1, "{:?}", s.stats);
    assert_eq!(s.stats.rhs_evals, 1 + 6 * s.stats.steps);
}

// ---- failures --------------------------------------------------------------------------------

#[test]
fn blow_up_is_reported_near_the_singularity() {
    // u' = u², u(0) = 1: u = 1/(1 − t) blows up at t = 1.
    for m in ADAPTIVE {
        let o = SolveOptions::new(m, 0.0, 2.0);
        let r = checked(solve(
            &mut FnRhs::new(1, |_t, u: &[f64], du: &mut [f64]| du[0] = u[0] * u[0]),
            &[1.0],
            &o,
        ));
        let e = r.expect_err("must fail");
        assert!(
            matches!(
                e.reason,
                FailReason::NonFiniteState | FailReason::StepSizeUnderflow { .. }
            ),
            "{m}: {e}"
        );
        // The numerical blow-up time differs from 1 by about the tolerance.
        assert!((e.t - 1.0).abs() < 1e-3, "{m}: {e}");
        assert!(!e.to_string().is_empty());
    }
}

#[test]
fn nan_in_the_vector_field_is_reported() {
    // f is NaN for t > 0.5: fixed steps stop at the last good time; adaptive steps shrink
    // towards 0.5 and report a non-finite state there.
    let f = |t: f64, _u: &[f64], du: &mut [f64]| du[0] = if t > 0.5 { f64::NAN } else { 1.0 };
    let mut o = SolveOptions::new(Method::Rk4, 0.0, 1.0);
    o.dt = Some(0.1);
    let e = checked(solve(&mut FnRhs::new(1, f), &[0.0], &o)).unwrap_err();
    assert_eq!(e.reason, FailReason::NonFiniteState);
    assert!((e.t - 0.5).abs() < 1e-12, "{e}");
    for m in ADAPTIVE {
        let o = SolveOptions::new(m, 0.0, 1.0);
        let e = checked(solve(&mut FnRhs::new(1, f), &[0.0], &o)).unwrap_err();
        assert_eq!(e.reason, FailReason::NonFiniteState, "{m}: {e}");
        assert!(e.t <= 0.5 && e.t > 0.5 - 1e-9, "{m}: {e}");
    }
    // A non-finite initial state fails at t0 without stepping.
    let o = SolveOptions::new(Method::Tsit5, 0.0, 1.0);
    let e = solve(
        &mut FnRhs::new(1, |_t, _u: &[f64], du: &mut [f64]| du[0] = 0.0),
        &[f64::INFINITY],
        &o,
    )
    .unwrap_err();
    assert_eq!(
        (e.t, e.reason, e.stats.steps),
        (0.0, FailReason::NonFiniteState, 0)
    );
}

#[test]
fn max_steps_is_enforced() {
    let mut o = SolveOptions::new(Method::Tsit5, 0.0, 100.0);
    o.max_steps = 10;
    let e = checked(solve_with(&mut FnRhs::new(2, lotka), &[1.0, 1.0], &o)).unwrap_err();
    assert_eq!(e.reason, FailReason::MaxSteps { max_steps: 10 });
    assert_eq!(e.stats.steps, 10);
    assert!(e.t > 0.0 && e.t < 100.0);
    let mut o = SolveOptions::new(Method::Euler, 0.0, 1.0);
    o.dt = Some(0.01);
    o.max_steps = 50;
    let e = checked(solve_with(&mut FnRhs::new(2, lotka), &[1.0, 1.0], &o)).unwrap_err();
    assert_eq!(e.reason, FailReason::MaxSteps { max_steps: 50 });
    assert!((e.t - 0.5).abs() < 1e-12);
    // Exactly max_steps steps are allowed.
    o.max_steps = 100;
    assert!(solve_with(&mut FnRhs::new(2, lotka), &[1.0, 1.0], &o).is_ok());
}

#[test]
fn invalid_inputs_are_errors_not_panics() {
    let mut rhs = FnRhs::new(2, lotka);
    let bad = |o: &SolveOptions, u0: &[f64], rhs: &mut dyn OdeRhs| match solve(rhs, u0, o) {
        Err(SolveError {
            reason: FailReason::InvalidInput(msg),
            ..
        }) => msg,
        other => panic!("expected InvalidInput, got {other:?}"),
    };
    let o = SolveOptions::new(Method::Rk4, 0.0, 1.0);
    assert!(bad(&o, &[1.0, 1.0], &mut rhs).contains("needs a dt"));
    let mut o = SolveOptions::new(Method::Tsit5, 0.0, 1.0);
    o.adaptive = false;
    assert!(bad(&o, &[1.0, 1.0], &mut rhs).contains("dt"));
    let mut o = SolveOptions::new(Method::Tsit5, 0.0, 1.0);
    o.atol = vec![1e-6; 3];
    assert!(bad(&o, &[1.0, 1.0], &mut rhs).contains("atol"));
    let o = SolveOptions::new(Method::Tsit5, 0.0, 1.0);
    assert!(bad(&o, &[1.0], &mut rhs).contains("components"));
    let mut o = SolveOptions::new(Method::Tsit5, 0.0, f64::NAN);
    o.t1 = f64::NAN;
    assert!(bad(&o, &[1.0, 1.0], &mut rhs).contains("finite"));
}

#[test]
fn method_names_round_trip() {
    for m in Method::ALL {
        assert_eq!(Method::from_name(m.name()), Some(m));
        assert_eq!(m.name().parse::<Method>(), Ok(m));
        assert_eq!(m.tableau().is_none(), m.is_implicit());
        if let Some(tab) = m.tableau() {
            tab.check_consistency().unwrap();
            assert_eq!(tab.order, m.order());
        }
    }
    assert_eq!(Method::from_name("rodas5"), Some(Method::Rodas5));
    assert_eq!(Method::from_name("rodas4"), None);
    // Every method is explicit, implicit, or auto (which switches between one of each).
    assert_eq!(
        Method::EXPLICIT.len() + Method::IMPLICIT.len() + 1,
        Method::ALL.len()
    );
    assert_eq!(Method::from_name("auto"), Some(Method::Auto));
    assert!(Method::EXPLICIT.iter().all(|m| !m.is_implicit()));
    assert!(Method::IMPLICIT.iter().all(|m| m.is_implicit()));
    let fixed: Vec<_> = Method::ALL
        .into_iter()
        .filter(|m| m.is_fixed_step_only())
        .map(|m| m.name())
        .collect();
    assert_eq!(fixed, ["euler", "midpoint", "heun", "rk4"]);
    assert_eq!(Method::Tsit5.order(), 5);
    assert_eq!(Method::Vern7.embedded_order(), Some(6));
}

#[test]
fn zero_length_interval_returns_the_initial_state() {
    let o = SolveOptions::new(Method::Tsit5, 1.0, 1.0);
    let s = run(2, lotka, &[1.0, 2.0], &o);
    assert_eq!(s.t, vec![1.0, 1.0]);
    assert_eq!(s.u, vec![1.0, 2.0, 1.0, 2.0]);
    assert_eq!(s.stats.rhs_evals, 0);
}
