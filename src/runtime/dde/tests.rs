use super::*;
use crate::runtime::{Method, SaveAt, SolveOptions};

/// A closure DDE with boxed history and right-hand side.
type TestDde =
    FnDde<Box<dyn FnMut(f64, &mut [f64])>, Box<dyn FnMut(f64, &[f64], &[f64], &mut [f64])>>;

/// The exact solution of x'(t) = −x(t − 1), x(t) = h0 for t < 0, x(0) = 1, as polynomials
/// p_k(s) on [k, k+1] in s = t − k: p_{k+1}(s) = p_k(1) − ∫_0^s p_k.
fn exact_unit_delay(h0: f64, pieces: usize) -> Vec<Vec<f64>> {
    // [0, 1]: x' = −h0, x = 1 − h0·s.
    let mut ps = vec![vec![1.0, -h0]];
    for _ in 1..pieces {
        let p = ps.last().unwrap();
        let mut q = vec![p.iter().sum::<f64>()];
        for (m, c) in p.iter().enumerate() {
            q.push(-c / (m as f64 + 1.0));
        }
        ps.push(q);
    }
    ps
}

fn eval_exact(ps: &[Vec<f64>], t: f64) -> f64 {
    let k = (t.floor() as usize).min(ps.len() - 1);
    let s = t - k as f64;
    ps[k].iter().rev().fold(0.0, |acc, c| acc * s + c)
}

fn unit_delay(h0: f64) -> TestDde {
    FnDde {
        dim: 1,
        tau: vec![1.0],
        history: Box::new(move |_t: f64, u: &mut [f64]| u[0] = h0),
        f: Box::new(|_t: f64, _u: &[f64], lags: &[f64], du: &mut [f64]| du[0] = -lags[0]),
    }
}

/// Max abs error against the exact solution at t = 0, 0.05, …, 10; and the accepted steps.
fn unit_delay_error(
    method: Method,
    rtol: f64,
    dt: Option<f64>,
    h0: f64,
    track: bool,
) -> (f64, u64) {
    let ps = exact_unit_delay(h0, 10);
    let mut o = SolveOptions::new(method, 0.0, 10.0);
    o.rtol = rtol;
    o.atol = vec![rtol * 1e-2];
    o.dt = dt;
    o.saveat = SaveAt::Every(0.05);
    let sol = solve_dde(
        &mut unit_delay(h0),
        &[1.0],
        &o,
        &DdeOptions {
            track_discontinuities: track,
        },
    )
    .unwrap();
    assert_eq!(sol.len(), 201);
    assert_eq!(*sol.t.last().unwrap(), 10.0);
    let err = sol
        .t
        .iter()
        .zip(&sol.u)
        .map(|(t, u)| (u - eval_exact(&ps, *t)).abs())
        .fold(0.0, f64::max);
    (err, sol.stats.accepted)
}

#[test]
fn exact_polynomials_are_right() {
    // Hand-derived pieces: [0,1] 1 − s; [1,2] (1 − (t−1)) ... checked at the knots by the
    // recursion's own continuity and at two values worked out by hand.
    let ps = exact_unit_delay(1.0, 10);
    // x(1) = 0; on [1,2] x = −s + s²/2, so x(2) = −1/2.
    assert_eq!(eval_exact(&ps, 1.0), 0.0);
    assert!((eval_exact(&ps, 2.0) + 0.5).abs() < 1e-15);
    // [2,3]: x = −1/2 − ∫(−σ + σ²/2) = −1/2 + s²/2 − s³/6; x(3) = −1/6.
    assert!((eval_exact(&ps, 3.0) + 1.0 / 6.0).abs() < 1e-15);
    // Continuity at every knot.
    for k in 1..10 {
        let left: f64 = ps[k - 1].iter().sum();
        assert!((left - ps[k][0]).abs() < 1e-15);
    }
}

#[test]
fn unit_delay_matches_the_exact_solution_and_converges() {
    let mut prev = f64::INFINITY;
    for rtol in [1e-6, 1e-8, 1e-10] {
        let (e, n) = unit_delay_error(Method::Tsit5, rtol, None, 1.0, true);
        eprintln!("tsit5 rtol {rtol:e}: max error {e:.3e} over [0, 10], {n} steps");
        assert!(e < 50.0 * rtol, "rtol {rtol}: error {e}");
        assert!(e < prev / 10.0, "error {e} did not shrink from {prev}");
        prev = e;
    }
}

#[test]
fn every_explicit_method_solves_the_unit_delay() {
    for (m, rtol, dt, bound) in [
        (Method::Dopri5, 1e-8_f64, None, 1e-6),
        (Method::Bosh3, 1e-8, None, 1e-6),
        (Method::Rk4, 0.0, Some(0.01), 1e-9),
    ] {
        let (e, n) = unit_delay_error(m, rtol.max(1e-8), dt, 1.0, true);
        eprintln!("{m}: max error {e:.3e}, {n} steps");
        assert!(e < bound, "{m}: error {e}");
    }
}

#[test]
fn the_stiff_methods_solve_the_unit_delay_and_converge() {
    for m in [Method::Rosenbrock23, Method::Rodas5, Method::Bdf] {
        let (coarse, _) = unit_delay_error(m, 1e-5, None, 1.0, true);
        let (fine, n) = unit_delay_error(m, 1e-8, None, 1.0, true);
        eprintln!("{m}: max error {coarse:.3e} at rtol 1e-5, {fine:.3e} at 1e-8 ({n} steps)");
        assert!(fine < 1e-5, "{m}: error {fine}");
        assert!(
            fine < coarse / 20.0,
            "{m}: {fine} did not shrink from {coarse}"
        );
    }
}

/// A stiff delay equation: u' = −1000 (u − cos t) + v(t − 1/2), v' = −v(t − 1/2) + u (t − 1/2 lag
/// on both), whose fast mode makes explicit methods crawl.
fn stiff_delay() -> TestDde {
    FnDde {
        dim: 2,
        tau: vec![0.5],
        history: Box::new(|t: f64, u: &mut [f64]| {
            u[0] = t.cos();
            u[1] = 1.0;
        }),
        f: Box::new(|t: f64, u: &[f64], lags: &[f64], du: &mut [f64]| {
            du[0] = -1000.0 * (u[0] - t.cos()) + lags[1];
            du[1] = -lags[1] + 0.1 * u[0];
        }),
    }
}

#[test]
fn stiff_methods_agree_with_a_tight_explicit_reference_in_fewer_steps() {
    let solve = |m: Method, rtol: f64| {
        let mut o = SolveOptions::new(m, 0.0, 4.0);
        o.rtol = rtol;
        o.atol = vec![rtol * 1e-2];
        o.saveat = SaveAt::Every(0.25);
        o.max_steps = 1_000_000;
        solve_dde(&mut stiff_delay(), &[1.0, 1.0], &o, &DdeOptions::default()).unwrap()
    };
    let reference = solve(Method::Tsit5, 1e-11);
    // The explicit method at the same tolerance is held back by stability, not accuracy.
    let explicit = solve(Method::Tsit5, 1e-7).stats.accepted;
    for m in [Method::Rosenbrock23, Method::Rodas5, Method::Bdf] {
        let sol = solve(m, 1e-7);
        let err = max_diff(&sol, &reference);
        eprintln!(
            "{m}: max diff {err:.3e}, {} steps (tsit5 at the same rtol: {explicit})",
            sol.stats.accepted
        );
        assert!(err < 1e-5, "{m}: {err}");
        if m != Method::Rosenbrock23 {
            assert!(sol.stats.accepted * 3 < explicit, "{m}");
        }
    }
}

#[test]
fn a_history_that_jumps_at_t0_is_followed() {
    // φ = 0 before t0, x(0) = 1: x stays 1 on [0, 1], then falls.
    let (e, _) = unit_delay_error(Method::Tsit5, 1e-9, None, 0.0, true);
    eprintln!("history jump: max error {e:.3e}");
    assert!(e < 1e-7, "error {e}");
}

#[test]
fn discontinuity_tracking_matters() {
    let pair = |m, rtol, dt, h0| {
        let (with, _) = unit_delay_error(m, rtol, dt, h0, true);
        let (without, _) = unit_delay_error(m, rtol, dt, h0, false);
        eprintln!(
            "{m} rtol {rtol:e} dt {dt:?} φ = {h0}: error with tracking {with:.3e}, without {without:.3e}"
        );
        (with, without)
    };
    // A history that jumps at t0 (φ = 0, x(0) = 1): x' jumps at t = 1, x'' at t = 2, …
    for rtol in [1e-6, 1e-8, 1e-10] {
        let (with, without) = pair(Method::Tsit5, rtol, None, 0.0);
        assert!(
            without > 10.0 * with,
            "rtol {rtol}: with {with}, without {without}"
        );
    }
    // A continuous history: x' jumps at t0, x'' at t = 1, …
    let (with, without) = pair(Method::Tsit5, 1e-8, None, 1.0);
    assert!(without > 10.0 * with, "with {with}, without {without}");
    // Fixed steps cannot react at all: stepping over the jumps costs orders of magnitude
    // (dt = 0.03 does not divide 1, so untracked steps straddle the integers).
    let (with, without) = pair(Method::Rk4, 1e-8, Some(0.03), 1.0);
    assert!(without > 1000.0 * with, "with {with}, without {without}");
}

fn mackey_glass(tau: f64) -> TestDde {
    let (beta, gamma, n) = (0.2, 0.1, 10);
    FnDde {
        dim: 1,
        tau: vec![tau],
        history: Box::new(|_t: f64, u: &mut [f64]| u[0] = 0.5),
        f: Box::new(move |_t: f64, u: &[f64], lags: &[f64], du: &mut [f64]| {
            let x = lags[0];
            du[0] = beta * x / (1.0 + x.powi(n)) - gamma * u[0];
        }),
    }
}

fn mg_solve(m: Method, rtol: f64, atol: f64) -> crate::runtime::Solution {
    let mut o = SolveOptions::new(m, 0.0, 100.0);
    o.rtol = rtol;
    o.atol = vec![atol];
    o.saveat = SaveAt::Every(0.5);
    o.max_steps = 10_000_000;
    solve_dde(&mut mackey_glass(17.0), &[0.5], &o, &DdeOptions::default()).unwrap()
}

fn max_diff(a: &crate::runtime::Solution, b: &crate::runtime::Solution) -> f64 {
    assert_eq!(a.t, b.t);
    a.u.iter()
        .zip(&b.u)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

#[test]
fn mackey_glass_matches_a_tight_reference() {
    let reference = mg_solve(Method::Tsit5, 1e-13, 1e-15);
    // An independent tight solve (other method) agrees with the reference.
    let other = mg_solve(Method::Dopri5, 1e-13, 1e-15);
    let ref_gap = max_diff(&reference, &other);
    eprintln!("Mackey–Glass: tsit5 vs dopri5 at rtol 1e-13: {ref_gap:.3e}");
    assert!(ref_gap < 1e-10, "{ref_gap}");
    let mut prev = f64::INFINITY;
    for rtol in [1e-5, 1e-7, 1e-9] {
        let sol = mg_solve(Method::Tsit5, rtol, rtol * 1e-2);
        let e = max_diff(&sol, &reference);
        eprintln!(
            "Mackey–Glass tsit5 rtol {rtol:e}: max error {e:.3e} on [0, 100], {} steps",
            sol.stats.accepted
        );
        assert!(e < 100.0 * rtol, "rtol {rtol}: error {e}");
        assert!(e < prev, "error {e} did not shrink from {prev}");
        prev = e;
    }
    // Chaotic regime, not a constant: the solution moves.
    let lo = reference.u.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = reference.u.iter().copied().fold(0.0, f64::max);
    assert!(hi - lo > 0.5, "[{lo}, {hi}]");
}

#[test]
fn bad_inputs_are_refused() {
    let dd = DdeOptions::default();
    let mut o = SolveOptions::new(Method::Vern7, 0.0, 2.0);
    let e = solve_dde(&mut unit_delay(1.0), &[1.0], &o, &dd).unwrap_err();
    assert!(matches!(e.reason, FailReason::InvalidInput(ref m) if m.contains("vern7")));
    o.method = Method::Rk4;
    o.dt = Some(1.5);
    let e = solve_dde(&mut unit_delay(1.0), &[1.0], &o, &dd).unwrap_err();
    assert!(matches!(e.reason, FailReason::InvalidInput(ref m) if m.contains("smallest delay")));
    let mut neg = unit_delay(1.0);
    neg.tau = vec![-1.0];
    let o = SolveOptions::new(Method::Tsit5, 0.0, 2.0);
    let e = solve_dde(&mut neg, &[1.0], &o, &dd).unwrap_err();
    assert!(matches!(e.reason, FailReason::InvalidInput(ref m) if m.contains("> 0")));
}

#[test]
fn breakpoints_combine_the_delays() {
    let b = breakpoints(0.0, 4.0, &[1.0, 1.5], 3);
    assert_eq!(b, vec![1.0, 1.5, 2.0, 2.5, 3.0, 3.5]);
    // Levels bound the sums: with one level only the delays themselves.
    assert_eq!(breakpoints(0.0, 4.0, &[1.0, 1.5], 1), vec![1.0, 1.5]);
}

#[test]
fn steps_are_bounded_by_the_smallest_delay() {
    // Without tracking the only thing keeping lagged reads in finished steps is dt ≤ τ.
    let mut o = SolveOptions::new(Method::Tsit5, 0.0, 10.0);
    o.rtol = 1e-3;
    let dd = DdeOptions {
        track_discontinuities: false,
    };
    let (sol, hist) = solve_dde_history(&mut unit_delay(1.0), &[1.0], &o, &dd).unwrap();
    assert!(sol.stats.accepted >= 10);
    assert!(hist.h.iter().all(|h| *h <= 1.0 + 1e-15), "{:?}", hist.h);
    assert_eq!(hist.t_end(), 10.0);
}
