//! Tests of the stiff methods: convergence orders, ROBER, van der Pol, the heat equation on
//! the sparse and dense paths, failure statuses and exact work counts. Every vector field
//! here carries a hand-written analytic Jacobian.

use super::super::{
    FailReason, FnRhs, Method, OdeJacobian, OdeRhs, SaveAt, Solution, SolveError, SolveOptions,
    Sparsity, solve_with,
};
use super::{solve_any, solve_stiff};

const STIFF: [Method; 3] = [Method::Rosenbrock23, Method::Rodas5, Method::Bdf];

fn checked(r: Result<Solution, SolveError>) -> Result<Solution, SolveError> {
    let st = match &r {
        Ok(s) => s.stats,
        Err(e) => e.stats,
    };
    assert_eq!(st.steps, st.accepted + st.rejected, "{st:?}");
    r
}

fn run<R: OdeJacobian>(rhs: &mut R, u0: &[f64], o: &SolveOptions) -> Solution {
    checked(solve_stiff(rhs, u0, o)).unwrap_or_else(|e| panic!("{}: {e} ({:?})", o.method, e.stats))
}

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

fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

// ---- test systems --------------------------------------------------------------------------

/// Damped rotation, logistic equation and a forced linear equation (non-autonomous).
struct Conv {
    /// Give ∂f/∂t analytically (else the solver differences it).
    exact_dt: bool,
}

impl OdeRhs for Conv {
    fn dim(&self) -> usize {
        4
    }
    fn eval(&mut self, t: f64, u: &[f64], du: &mut [f64]) {
        du[0] = -0.5 * u[0] + u[1];
        du[1] = -u[0] - 0.5 * u[1];
        du[2] = u[2] * (1.0 - u[2]);
        du[3] = -(u[3] - t.sin()) + t.cos();
    }
}

impl OdeJacobian for Conv {
    fn jac(&mut self, _t: f64, u: &[f64], j: &mut [f64]) {
        j.fill(0.0);
        j[0] = -0.5;
        j[1] = 1.0;
        j[4] = -1.0;
        j[5] = -0.5;
        j[10] = 1.0 - 2.0 * u[2];
        j[15] = -1.0;
    }
    fn time_derivative(&mut self, t: f64, _u: &[f64], d: &mut [f64]) -> bool {
        if self.exact_dt {
            d[..3].fill(0.0);
            d[3] = t.cos() - t.sin();
        }
        self.exact_dt
    }
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

/// Robertson's chemical kinetics.
struct Rober;
impl OdeRhs for Rober {
    fn dim(&self) -> usize {
        3
    }
    fn eval(&mut self, _t: f64, y: &[f64], dy: &mut [f64]) {
        let (k1, k2, k3) = (0.04, 3e7, 1e4);
        dy[0] = -k1 * y[0] + k3 * y[1] * y[2];
        dy[1] = k1 * y[0] - k3 * y[1] * y[2] - k2 * y[1] * y[1];
        dy[2] = k2 * y[1] * y[1];
    }
}
impl OdeJacobian for Rober {
    fn jac(&mut self, _t: f64, y: &[f64], j: &mut [f64]) {
        let (k1, k2, k3) = (0.04, 3e7, 1e4);
        j.copy_from_slice(&[
            -k1,
            k3 * y[2],
            k3 * y[1],
            k1,
            -k3 * y[2] - 2.0 * k2 * y[1],
            -k3 * y[1],
            0.0,
            2.0 * k2 * y[1],
            0.0,
        ]);
    }
    fn time_derivative(&mut self, _t: f64, _u: &[f64], d: &mut [f64]) -> bool {
        d.fill(0.0);
        true
    }
}

/// Van der Pol, x'' − μ(1 − x²)x' + x = 0 as a first-order system.
struct VdpMu(f64);
impl OdeRhs for VdpMu {
    fn dim(&self) -> usize {
        2
    }
    fn eval(&mut self, _t: f64, y: &[f64], dy: &mut [f64]) {
        dy[0] = y[1];
        dy[1] = self.0 * (1.0 - y[0] * y[0]) * y[1] - y[0];
    }
}
impl OdeJacobian for VdpMu {
    fn jac(&mut self, _t: f64, y: &[f64], j: &mut [f64]) {
        let m = self.0;
        j.copy_from_slice(&[
            0.0,
            1.0,
            -2.0 * m * y[0] * y[1] - 1.0,
            m * (1.0 - y[0] * y[0]),
        ]);
    }
}

/// Van der Pol in the scaled form of the IVP test set: y1' = y2, ε y2' = (1 − y1²)y2 − y1.
struct VdpEps(f64);
impl OdeRhs for VdpEps {
    fn dim(&self) -> usize {
        2
    }
    fn eval(&mut self, _t: f64, y: &[f64], dy: &mut [f64]) {
        dy[0] = y[1];
        dy[1] = ((1.0 - y[0] * y[0]) * y[1] - y[0]) / self.0;
    }
}
impl OdeJacobian for VdpEps {
    fn jac(&mut self, _t: f64, y: &[f64], j: &mut [f64]) {
        let e = self.0;
        j.copy_from_slice(&[
            0.0,
            1.0,
            (-2.0 * y[0] * y[1] - 1.0) / e,
            (1.0 - y[0] * y[0]) / e,
        ]);
    }
    fn time_derivative(&mut self, _t: f64, _u: &[f64], d: &mut [f64]) -> bool {
        d.fill(0.0);
        true
    }
}

/// u_t = D u_xx on (0, 1), N interior points, Dirichlet 0; tridiagonal CSR pattern when
/// `sparse`.
struct Heat {
    n: usize,
    k: f64,
    pattern: Option<Sparsity>,
}

impl Heat {
    fn new(n: usize, diff: f64, sparse: bool) -> Heat {
        let dx = 1.0 / (n as f64 + 1.0);
        let pattern = sparse.then(|| {
            let mut row_ptr = vec![0];
            let mut cols = vec![];
            for i in 0..n {
                for j in i.saturating_sub(1)..(i + 2).min(n) {
                    cols.push(j);
                }
                row_ptr.push(cols.len());
            }
            Sparsity { n, row_ptr, cols }
        });
        Heat {
            n,
            k: diff / (dx * dx),
            pattern,
        }
    }
    fn x(&self, i: usize) -> f64 {
        (i as f64 + 1.0) / (self.n as f64 + 1.0)
    }
    fn u0(&self) -> Vec<f64> {
        (0..self.n)
            .map(|i| (std::f64::consts::PI * self.x(i)).sin())
            .collect()
    }
    /// The semi-discrete solution exp(−λt) sin(π x_i), λ = (4D/dx²) sin²(π dx/2).
    fn exact(&self, t: f64) -> Vec<f64> {
        let dx = 1.0 / (self.n as f64 + 1.0);
        let s = (std::f64::consts::PI * dx / 2.0).sin();
        let lam = 4.0 * self.k * s * s;
        self.u0().iter().map(|v| v * (-lam * t).exp()).collect()
    }
}

impl OdeRhs for Heat {
    fn dim(&self) -> usize {
        self.n
    }
    fn eval(&mut self, _t: f64, u: &[f64], du: &mut [f64]) {
        let n = self.n;
        for i in 0..n {
            let l = if i > 0 { u[i - 1] } else { 0.0 };
            let r = if i + 1 < n { u[i + 1] } else { 0.0 };
            du[i] = self.k * (l - 2.0 * u[i] + r);
        }
    }
}

impl OdeJacobian for Heat {
    fn jac(&mut self, _t: f64, _u: &[f64], j: &mut [f64]) {
        let n = self.n;
        j.fill(0.0);
        for i in 0..n {
            j[i * n + i] = -2.0 * self.k;
            if i > 0 {
                j[i * n + i - 1] = self.k;
            }
            if i + 1 < n {
                j[i * n + i + 1] = self.k;
            }
        }
    }
    fn sparsity(&self) -> Option<&Sparsity> {
        self.pattern.as_ref()
    }
    fn jac_sparse(&mut self, _t: f64, _u: &[f64], v: &mut [f64]) {
        let p = self.pattern.as_ref().unwrap();
        for i in 0..self.n {
            for k in p.row_ptr[i]..p.row_ptr[i + 1] {
                v[k] = if p.cols[k] == i {
                    -2.0 * self.k
                } else {
                    self.k
                };
            }
        }
    }
    fn time_derivative(&mut self, _t: f64, _u: &[f64], d: &mut [f64]) -> bool {
        d.fill(0.0);
        true
    }
}

/// u' = λ(u − g(t)) + g'(t) with an analytic Jacobian (optionally wrong, for failures) and
/// an optional NaN after `nan_after`.
struct Lin1 {
    lam: f64,
    jac_value: f64,
    nan_after: f64,
    jac_nan: bool,
}
impl Lin1 {
    fn new(lam: f64) -> Lin1 {
        Lin1 {
            lam,
            jac_value: lam,
            nan_after: f64::INFINITY,
            jac_nan: false,
        }
    }
}
impl OdeRhs for Lin1 {
    fn dim(&self) -> usize {
        1
    }
    fn eval(&mut self, t: f64, u: &[f64], du: &mut [f64]) {
        du[0] = if t > self.nan_after {
            f64::NAN
        } else {
            self.lam * (u[0] - t.cos()) - t.sin()
        };
    }
}
impl OdeJacobian for Lin1 {
    fn jac(&mut self, _t: f64, _u: &[f64], j: &mut [f64]) {
        j[0] = if self.jac_nan {
            f64::NAN
        } else {
            self.jac_value
        };
    }
}

// ---- convergence order ---------------------------------------------------------------------

fn conv_errors(m: Method, dts: &[f64], exact_dt: bool) -> Vec<(f64, f64)> {
    let t1 = 2.0;
    let want = conv_exact(t1);
    dts.iter()
        .map(|&dt| {
            let mut o = SolveOptions::new(m, 0.0, t1);
            o.adaptive = false;
            o.dt = Some(dt);
            let s = run(&mut Conv { exact_dt }, &CONV_U0, &o);
            (dt, max_abs_diff(s.last(), &want))
        })
        .collect()
}

#[test]
fn rosenbrock_methods_converge_at_their_order_with_fixed_steps() {
    for (m, dts) in [
        (Method::Rosenbrock23, [0.04, 0.02, 0.01, 0.005]),
        (Method::Rodas5, [0.2, 0.1, 0.05, 0.025]),
    ] {
        let pts = conv_errors(m, &dts, true);
        let p = slope(&pts);
        assert!(
            (p - m.order() as f64).abs() <= 0.2,
            "{m}: observed order {p:.3}, errors {pts:?}"
        );
    }
}

#[test]
fn rosenbrock23_is_second_order_with_a_differenced_time_derivative() {
    let pts = conv_errors(Method::Rosenbrock23, &[0.04, 0.02, 0.01, 0.005], false);
    let p = slope(&pts);
    assert!((p - 2.0).abs() <= 0.2, "{p} {pts:?}");
}

#[test]
fn adaptive_error_is_proportional_to_tolerance() {
    // With per-step error control the global error goes roughly like tol^(p/(p+1)) (2/3 for
    // rosenbrock23, 5/6 for rodas5); bdf, variable-order, has no single exponent. Check the
    // error follows the tolerance over four decades and stays within a multiple of it.
    for m in STIFF {
        let mut pts = vec![];
        for tol in [1e-4, 1e-5, 1e-6, 1e-7, 1e-8] {
            let mut o = SolveOptions::new(m, 0.0, 2.0);
            o.rtol = tol;
            o.atol = vec![tol];
            let s = run(&mut Conv { exact_dt: true }, &CONV_U0, &o);
            let e = max_abs_diff(s.last(), &conv_exact(2.0));
            // rosenbrock23 controls the error per step: its global error is larger.
            assert!(e < 200.0 * tol, "{m}: tol {tol:e} error {e:e}");
            pts.push((tol, e));
        }
        let p = slope(&pts);
        assert!(
            p > 0.6 && p < 1.3,
            "{m}: error/tolerance slope {p:.3} {pts:?}"
        );
    }
}

// ---- dense output --------------------------------------------------------------------------

#[test]
fn dense_output_is_accurate_between_steps() {
    let ts: Vec<f64> = (1..40).map(|i| i as f64 * 0.0497).collect();
    for (m, tol) in [
        (Method::Rosenbrock23, 1e-4),
        (Method::Rodas5, 1e-6),
        (Method::Bdf, 1e-5),
    ] {
        let mut o = SolveOptions::new(m, 0.0, 2.0);
        o.rtol = 1e-8;
        o.atol = vec![1e-8];
        o.saveat = SaveAt::Times(ts.clone());
        let s = run(&mut Conv { exact_dt: true }, &CONV_U0, &o);
        assert_eq!(s.t, ts);
        let worst = (0..s.len())
            .map(|i| max_abs_diff(s.row(i), &conv_exact(s.t[i])))
            .fold(0.0, f64::max);
        assert!(worst < tol, "{m}: dense output error {worst:e}");
    }
}

// ---- ROBER ---------------------------------------------------------------------------------

fn rober_opts(m: Method, t1: f64) -> SolveOptions {
    let mut o = SolveOptions::new(m, 0.0, t1);
    o.rtol = 1e-6;
    o.atol = vec![1e-10, 1e-12, 1e-10];
    o.max_steps = 1_000_000;
    o
}

#[test]
fn rober_matches_reference_values() {
    // Hairer & Wanner / IVP test set references.
    let refs: [(f64, [f64; 3]); 2] = [
        (
            1e5,
            [
                1.786592260209636e-2,
                7.274751015624179e-8,
                9.821340766967839e-1,
            ],
        ),
        (
            1e11,
            [
                2.083340149701228e-8,
                8.33336077033459e-14,
                9.999999791665832e-1,
            ],
        ),
    ];
    for m in STIFF {
        for (t1, want) in refs {
            let mut o = rober_opts(m, t1);
            o.saveat = SaveAt::Times(vec![0.4, 40.0, t1]);
            let s = run(&mut Rober, &[1.0, 0.0, 0.0], &o);
            let y = s.last();
            for i in 0..3 {
                // Relative 2e-3, or what the absolute tolerance allows for tiny components.
                let err = (y[i] - want[i]).abs();
                assert!(
                    err < 2e-3 * want[i].abs() + 3.0 * o.atol[i],
                    "{m} t={t1:e}: y{} = {:e}, want {:e}",
                    i + 1,
                    y[i],
                    want[i]
                );
            }
            for r in 0..s.len() {
                let row = s.row(r);
                let mass = row[0] + row[1] + row[2];
                assert!((mass - 1.0).abs() < 1e-8, "{m}: mass {mass} at {}", s.t[r]);
            }
            // Values at t = 0.4 and 40 (Hairer & Wanner's table), from the dense output.
            for (r, want) in [
                (0, [9.851721138377e-1, 3.386395e-5, 1.479402e-2]),
                (1, [7.158270687193e-1, 9.185534764e-6, 2.841637457e-1]),
            ] {
                let y = s.row(r);
                for i in 0..3 {
                    assert!(
                        (y[i] - want[i]).abs() / want[i] < 2e-3,
                        "{m}: y{}({}) = {:e}, want {:e}",
                        i + 1,
                        s.t[r],
                        y[i],
                        want[i]
                    );
                }
            }
        }
    }
}

#[test]
fn bdf_reuses_jacobians_and_factorisations() {
    let o = rober_opts(Method::Bdf, 1e5);
    let s = run(&mut Rober, &[1.0, 0.0, 0.0], &o);
    let st = s.stats;
    assert!(st.lu_factorizations < st.steps / 2, "{st:?}");
    assert!(st.jac_evals < st.lu_factorizations, "{st:?}");
    assert!(st.jac_evals >= 1);
    // Every rhs call is f(t0), the starting-step probe or a Newton iteration.
    assert_eq!(st.rhs_evals, 2 + st.newton_iters, "{st:?}");
    assert!(st.newton_iters >= 2 * st.accepted, "{st:?}");
}

// ---- van der Pol ---------------------------------------------------------------------------

/// IVP test set (vdpol, ε = 1e-6, t = 2).
const VDP_EPS_REF: [f64; 2] = [1.706167732170483, -0.8928097010247975];

#[test]
fn van_der_pol_scaled_form_matches_the_test_set() {
    for (m, rtol, tol) in [
        (Method::Rodas5, 1e-9, 1e-6),
        (Method::Bdf, 1e-9, 1e-5),
        (Method::Rosenbrock23, 1e-7, 1e-4),
    ] {
        let mut o = SolveOptions::new(m, 0.0, 2.0);
        o.rtol = rtol;
        o.atol = vec![rtol];
        o.max_steps = 1_000_000;
        let s = run(&mut VdpEps(1e-6), &[2.0, 0.0], &o);
        let y = s.last();
        for i in 0..2 {
            let rel = (y[i] - VDP_EPS_REF[i]).abs() / VDP_EPS_REF[i].abs();
            assert!(
                rel < tol,
                "{m}: y{} = {:.15e}, rel error {rel:e}",
                i + 1,
                y[i]
            );
        }
    }
}

#[test]
fn van_der_pol_mu_1000_agrees_across_methods_and_with_the_scaled_form() {
    // x(t) for μ = 1000 equals y1(t/μ) of the ε = 1/μ² form: check at t = 2000, and that
    // the methods agree at t = 3000 with a tight-tolerance rodas5 reference.
    let mut reference = SolveOptions::new(Method::Rodas5, 0.0, 3000.0);
    reference.rtol = 1e-12;
    reference.atol = vec![1e-12];
    reference.max_steps = 1_000_000;
    reference.saveat = SaveAt::Times(vec![2000.0, 3000.0]);
    let r = run(&mut VdpMu(1000.0), &[2.0, 0.0], &reference);
    assert!(
        (r.row(0)[0] - VDP_EPS_REF[0]).abs() < 1e-8,
        "{:?}",
        r.row(0)
    );
    assert!(
        (r.row(0)[1] * 1000.0 - VDP_EPS_REF[1]).abs() < 1e-6,
        "{:?}",
        r.row(0)
    );
    for (m, rtol, tol) in [
        (Method::Bdf, 1e-10, 1e-7),
        (Method::Rodas5, 1e-8, 1e-6),
        (Method::Rosenbrock23, 1e-7, 1e-4),
    ] {
        let mut o = reference.clone();
        o.method = m;
        o.rtol = rtol;
        o.atol = vec![rtol];
        let s = run(&mut VdpMu(1000.0), &[2.0, 0.0], &o);
        for r_i in 0..2 {
            let d = (s.row(r_i)[0] - r.row(r_i)[0]).abs();
            assert!(
                d < tol,
                "{m}: x({}) = {} vs {}",
                s.t[r_i],
                s.row(r_i)[0],
                r.row(r_i)[0]
            );
        }
    }
}

// ---- heat equation: sparse path ------------------------------------------------------------

#[test]
fn heat_equation_sparse_matches_the_semi_discrete_solution() {
    let t1 = 0.1;
    for (m, rtol, atol) in [
        (Method::Bdf, 1e-6, 1e-8),
        (Method::Rodas5, 1e-6, 1e-8),
        (Method::Rosenbrock23, 1e-5, 1e-7),
    ] {
        let mut heat = Heat::new(1000, 1.0, true);
        let u0 = heat.u0();
        let mut o = SolveOptions::new(m, 0.0, t1);
        o.rtol = rtol;
        o.atol = vec![atol];
        let s = run(&mut heat, &u0, &o);
        let want = heat.exact(t1);
        let err = max_abs_diff(s.last(), &want);
        // Global error within a small multiple of the local tolerance at this scale.
        let scale = atol + rtol * want.iter().fold(0.0f64, |a, v| a.max(v.abs()));
        assert!(
            err < 20.0 * scale,
            "{m}: error {err:e} vs tolerance scale {scale:e} ({:?})",
            s.stats
        );
        assert!(s.stats.accepted < 2000, "{m}: {:?}", s.stats);
    }
}

#[test]
fn sparse_and_dense_paths_agree() {
    for m in STIFF {
        let mut res = vec![];
        for sparse in [true, false] {
            let mut heat = Heat::new(100, 1.0, sparse);
            let u0 = heat.u0();
            let mut o = SolveOptions::new(m, 0.0, 0.2);
            o.saveat = SaveAt::Every(0.05);
            res.push(run(&mut heat, &u0, &o));
        }
        let (a, b) = (&res[0], &res[1]);
        assert_eq!(a.t, b.t);
        let d = max_abs_diff(&a.u, &b.u);
        assert!(d < 1e-12, "{m}: sparse vs dense differ by {d:e}");
        assert_eq!(a.stats, b.stats, "{m}");
    }
    // Small dense (hand-written LU, n ≤ 16) against faer's dense LU and the sparse LU.
    for m in STIFF {
        let mut res = vec![];
        for (n, sparse) in [(12, false), (12, true)] {
            let mut heat = Heat::new(n, 0.1, sparse);
            let u0 = heat.u0();
            let o = SolveOptions::new(m, 0.0, 1.0);
            res.push(run(&mut heat, &u0, &o));
        }
        assert!(max_abs_diff(&res[0].u, &res[1].u) < 1e-12, "{m}");
    }
}

// ---- exact work counts ---------------------------------------------------------------------

#[test]
fn fixed_step_work_counts_are_exact() {
    let n = 25u64;
    let mk = |m| {
        let mut o = SolveOptions::new(m, 0.0, 1.0);
        o.adaptive = false;
        o.dt = Some(1.0 / n as f64);
        o
    };
    // rosenbrock23: f(t0) + 2 per step (FSAL); ∂f/∂t analytic.
    let s = run(
        &mut Conv { exact_dt: true },
        &CONV_U0,
        &mk(Method::Rosenbrock23),
    );
    assert_eq!(
        (s.stats.steps, s.stats.accepted, s.stats.rejected),
        (n, n, 0)
    );
    assert_eq!(s.stats.rhs_evals, 1 + 2 * n);
    assert_eq!((s.stats.jac_evals, s.stats.lu_factorizations), (n, n));
    assert_eq!(s.stats.newton_iters, 0);
    // With a differenced ∂f/∂t: one more call per step.
    let s = run(
        &mut Conv { exact_dt: false },
        &CONV_U0,
        &mk(Method::Rosenbrock23),
    );
    assert_eq!(s.stats.rhs_evals, 1 + 3 * n);
    // rodas5: 7 stage calls per step and f at each new point but the last.
    let s = run(&mut Conv { exact_dt: true }, &CONV_U0, &mk(Method::Rodas5));
    assert_eq!(s.stats.rhs_evals, 1 + 7 * n + (n - 1));
    assert_eq!((s.stats.jac_evals, s.stats.lu_factorizations), (n, n));
}

#[test]
fn adaptive_rosenbrock_work_counts_are_exact() {
    for m in [Method::Rosenbrock23, Method::Rodas5] {
        let mut o = rober_opts(m, 1e5);
        o.dt = Some(1e-6); // no starting-step probe
        let s = run(&mut Rober, &[1.0, 0.0, 0.0], &o);
        let st = s.stats;
        assert!(st.rejected > 0 || st.accepted > 10, "{st:?}");
        // J once per accepted point (rejections reuse it), W once per attempt.
        assert_eq!(st.jac_evals, st.accepted, "{m} {st:?}");
        assert_eq!(st.lu_factorizations, st.steps, "{m} {st:?}");
        let want = match m {
            Method::Rosenbrock23 => 1 + 2 * st.steps,
            _ => 1 + 7 * st.steps + (st.accepted - 1),
        };
        assert_eq!(st.rhs_evals, want, "{m} {st:?}");
    }
}

// ---- failures ------------------------------------------------------------------------------

fn err_of<R: OdeJacobian>(rhs: &mut R, u0: &[f64], o: &SolveOptions) -> SolveError {
    match checked(solve_stiff(rhs, u0, o)) {
        Ok(s) => panic!("{}: expected a failure, got {:?}", o.method, s.stats),
        Err(e) => e,
    }
}

#[test]
fn singular_iteration_matrix_is_reported() {
    // λ = 1/(h γ): W = 1 − hγλ = 0 on the first fixed step.
    for (m, gamma) in [
        (Method::Rosenbrock23, 1.0 / (2.0 + std::f64::consts::SQRT_2)),
        (Method::Rodas5, 0.21193756319429014),
    ] {
        let h = 0.125;
        let mut rhs = Lin1::new(1.0 / (h * gamma));
        let mut o = SolveOptions::new(m, 0.0, 1.0);
        o.adaptive = false;
        o.dt = Some(h);
        let e = err_of(&mut rhs, &[1.0], &o);
        assert_eq!(e.reason, FailReason::SingularMatrix, "{m}");
        assert_eq!(e.t, 0.0);
        assert_eq!(e.stats.lu_factorizations, 1);
        assert!(e.to_string().contains("singular"), "{e}");
    }
}

#[test]
fn non_finite_states_and_jacobians_are_reported_with_the_time_reached() {
    for m in STIFF {
        let mut rhs = Lin1::new(-10.0);
        rhs.nan_after = 0.5;
        let o = SolveOptions::new(m, 0.0, 1.0);
        let e = err_of(&mut rhs, &[1.0], &o);
        assert_eq!(e.reason, FailReason::NonFiniteState, "{m}");
        assert!(e.t > 0.3 && e.t <= 0.5, "{m}: t = {}", e.t);

        let mut rhs = Lin1::new(-10.0);
        rhs.jac_nan = true;
        let e = err_of(&mut rhs, &[1.0], &o);
        assert_eq!(e.reason, FailReason::NonFiniteState, "{m}");
        assert_eq!(e.t, 0.0, "{m}");

        let e = err_of(&mut Lin1::new(-1.0), &[f64::NAN], &o);
        assert_eq!((e.reason, e.t), (FailReason::NonFiniteState, 0.0), "{m}");
    }
}

#[test]
fn bdf_reports_newton_failure_with_a_wrong_jacobian() {
    let mut rhs = Lin1::new(-1e6);
    rhs.jac_value = 1e6; // wrong sign: the Newton iteration diverges
    let mut o = SolveOptions::new(Method::Bdf, 0.0, 1.0);
    o.dt = Some(0.01);
    o.dtmin = Some(1e-4);
    let e = err_of(&mut rhs, &[1.0], &o);
    assert!(
        matches!(e.reason, FailReason::NewtonFailure { .. }),
        "{:?}",
        e.reason
    );
    assert_eq!(e.t, 0.0);
    // The Jacobian was fresh (evaluated for this step), so it is not re-evaluated; every
    // halving refactors W.
    assert_eq!(e.stats.jac_evals, 1, "{:?}", e.stats);
    assert_eq!(e.stats.lu_factorizations, e.stats.rejected, "{:?}", e.stats);
    assert_eq!(e.stats.accepted, 0);
    assert!(e.to_string().contains("Newton"), "{e}");
}

#[test]
fn max_steps_is_reported() {
    for m in STIFF {
        let mut o = rober_opts(m, 1e5);
        o.max_steps = 20;
        let e = err_of(&mut Rober, &[1.0, 0.0, 0.0], &o);
        assert_eq!(e.reason, FailReason::MaxSteps { max_steps: 20 }, "{m}");
        assert_eq!(e.stats.steps, 20);
        assert!(e.t > 0.0 && e.t < 1e5);
    }
}

#[test]
fn invalid_inputs_are_refused() {
    let mut o = SolveOptions::new(Method::Rodas5, 0.0, 1.0);
    // An implicit method through the explicit entry point.
    let e = solve_with(&mut FnRhs::new(1, |_, u, du| du[0] = -u[0]), &[1.0], &o).unwrap_err();
    assert!(
        matches!(e.reason, FailReason::InvalidInput(ref s) if s.contains("implicit")),
        "{e}"
    );
    // An explicit method through solve_stiff, but fine through solve_any.
    o.method = Method::Tsit5;
    let e = solve_stiff(&mut Lin1::new(-1.0), &[1.0], &o).unwrap_err();
    assert!(matches!(e.reason, FailReason::InvalidInput(_)), "{e}");
    let s = solve_any(&mut Lin1::new(-1.0), &[1.0], &o).unwrap();
    assert!((s.last()[0] - 1.0f64.cos()).abs() < 1e-6);
    // bdf is adaptive only.
    o.method = Method::Bdf;
    o.adaptive = false;
    o.dt = Some(0.1);
    let e = solve_stiff(&mut Lin1::new(-1.0), &[1.0], &o).unwrap_err();
    assert!(
        matches!(e.reason, FailReason::InvalidInput(ref s) if s.contains("adaptive")),
        "{e}"
    );
    // Wrong state length; a malformed sparsity pattern.
    o.adaptive = true;
    let e = solve_stiff(&mut Lin1::new(-1.0), &[1.0, 2.0], &o).unwrap_err();
    assert!(matches!(e.reason, FailReason::InvalidInput(_)));
    let mut heat = Heat::new(5, 1.0, true);
    heat.pattern.as_mut().unwrap().cols[1] = 0; // duplicate column
    let e = solve_stiff(&mut heat, &[0.0; 5], &o).unwrap_err();
    assert!(
        matches!(e.reason, FailReason::InvalidInput(ref s) if s.contains("sparsity")),
        "{e}"
    );
}

#[test]
fn solve_any_dispatches_and_stiff_methods_handle_edge_cases() {
    for m in STIFF {
        // Zero-length interval.
        let o = SolveOptions::new(m, 1.0, 1.0);
        let s = run(&mut Lin1::new(-1.0), &[1.0], &o);
        assert_eq!((s.t.clone(), s.u.clone()), (vec![1.0, 1.0], vec![1.0, 1.0]));
        // Backward integration of u' = λ(u − cos t) − sin t, u = cos t (λ > 0: stiff and
        // stable backward).
        let mut o = SolveOptions::new(m, 2.0, 0.0);
        o.rtol = 1e-8;
        o.atol = vec![1e-10];
        o.saveat = SaveAt::Every(0.5);
        let s = checked(solve_any(&mut Lin1::new(50.0), &[2.0f64.cos()], &o)).unwrap();
        assert_eq!(s.t, vec![2.0, 1.5, 1.0, 0.5, 0.0]);
        for i in 0..s.len() {
            assert!(
                (s.row(i)[0] - s.t[i].cos()).abs() < 1e-6,
                "{m} at {}: {}",
                s.t[i],
                s.row(i)[0]
            );
        }
    }
}

#[test]
fn explicit_methods_still_go_through_solve_with_unchanged() {
    let mut o = SolveOptions::new(Method::Tsit5, 0.0, 2.0);
    o.rtol = 1e-8;
    let a = solve_with(&mut Conv { exact_dt: true }, &CONV_U0, &o).unwrap();
    let b = solve_any(&mut Conv { exact_dt: true }, &CONV_U0, &o).unwrap();
    assert_eq!(a, b);
    assert_eq!(a.stats.jac_evals, 0);
}

// ---- method = auto -------------------------------------------------------------------------

/// A harmonic oscillator (non-stiff): u'' = −u.
struct Oscillator;
impl OdeRhs for Oscillator {
    fn dim(&self) -> usize {
        2
    }
    fn eval(&mut self, _t: f64, y: &[f64], dy: &mut [f64]) {
        dy[0] = y[1];
        dy[1] = -y[0];
    }
}
impl OdeJacobian for Oscillator {
    fn jac(&mut self, _t: f64, _y: &[f64], j: &mut [f64]) {
        j.copy_from_slice(&[0.0, 1.0, -1.0, 0.0]);
    }
}

#[test]
fn auto_on_a_non_stiff_problem_is_tsit5_step_for_step() {
    let mut o = SolveOptions::new(Method::Auto, 0.0, 20.0);
    o.saveat = SaveAt::Every(0.5);
    o.rtol = 1e-8;
    o.atol = vec![1e-10];
    let a = run(&mut Oscillator, &[1.0, 0.0], &o);
    o.method = Method::Tsit5;
    let t = solve_any(&mut Oscillator, &[1.0, 0.0], &o).unwrap();
    assert_eq!(a.t, t.t);
    assert_eq!(a.u, t.u);
    assert_eq!(
        (a.stats.steps, a.stats.accepted, a.stats.jac_evals),
        (t.stats.steps, t.stats.accepted, 0)
    );
    // Plus the stiffness probes: POWER_ITERS vector-field calls every PROBE_EVERY steps.
    use super::auto::{POWER_ITERS, PROBE_EVERY};
    let probes = a.stats.accepted / PROBE_EVERY as u64;
    assert_eq!(
        a.stats.rhs_evals,
        t.stats.rhs_evals + probes * POWER_ITERS as u64
    );
}

#[test]
fn auto_switches_to_rodas5_on_rober_and_matches_the_reference() {
    let o = rober_opts(Method::Auto, 1e5);
    let s = run(&mut Rober, &[1.0, 0.0, 0.0], &o);
    let reference = [
        1.786592260209636e-2,
        7.274751015624179e-8,
        9.821340766967839e-1,
    ];
    for k in 0..3 {
        let rel = (s.last()[k] - reference[k]).abs() / reference[k];
        assert!(rel < 1e-4, "y{k}: {} vs {}", s.last()[k], reference[k]);
    }
    // Stiff almost from the start: a few dozen explicit steps, then rodas5's.
    assert!(s.stats.jac_evals > 50, "{:?}", s.stats);
    let mut t = rober_opts(Method::Tsit5, 1e5);
    t.max_steps = 20 * s.stats.steps;
    let tsit5 = solve_any(&mut Rober, &[1.0, 0.0, 0.0], &t).unwrap_err();
    assert!(
        matches!(tsit5.reason, FailReason::MaxSteps { .. }),
        "tsit5 alone should need far more steps: {tsit5}"
    );
}

#[test]
fn auto_switches_both_ways_on_van_der_pol_and_fills_every_save_point() {
    let mut reference = SolveOptions::new(Method::Rodas5, 0.0, 3000.0);
    reference.rtol = 1e-12;
    reference.atol = vec![1e-12];
    reference.max_steps = 1_000_000;
    reference.saveat = SaveAt::Every(100.0);
    let r = run(&mut VdpMu(1000.0), &[2.0, 0.0], &reference);
    let mut o = reference.clone();
    o.method = Method::Auto;
    o.rtol = 1e-8;
    o.atol = vec![1e-8];
    let s = run(&mut VdpMu(1000.0), &[2.0, 0.0], &o);
    assert_eq!(s.t, r.t);
    for i in 0..s.len() {
        assert!(
            (s.row(i)[0] - r.row(i)[0]).abs() < 1e-6,
            "x({}) = {} vs {}",
            s.t[i],
            s.row(i)[0],
            r.row(i)[0]
        );
    }
    // Rodas5 on the slow manifold (a Jacobian per accepted stiff step), tsit5 through the
    // fast jumps: hundreds of steps of each, so it switched back as well as forth.
    let explicit = s.stats.accepted - s.stats.jac_evals;
    assert!(s.stats.jac_evals > 200 && explicit > 200, "{:?}", s.stats);
    // And fewer steps than rodas5 alone at the same tolerance.
    o.method = Method::Rodas5;
    let rodas = run(&mut VdpMu(1000.0), &[2.0, 0.0], &o);
    assert!(s.stats.jac_evals < rodas.stats.jac_evals);
}

#[test]
fn auto_reports_the_callers_max_steps_and_counts_every_piece() {
    let mut o = rober_opts(Method::Auto, 1e5);
    let whole = run(&mut Rober, &[1.0, 0.0, 0.0], &o);
    // A budget that runs out halfway through the rodas5 piece.
    let explicit = whole.stats.steps - whole.stats.jac_evals;
    let budget = explicit + whole.stats.jac_evals / 2;
    o.max_steps = budget;
    let e = err_of(&mut Rober, &[1.0, 0.0, 0.0], &o);
    assert_eq!(e.reason, FailReason::MaxSteps { max_steps: budget });
    assert_eq!(e.stats.steps, budget);
    assert!(e.stats.jac_evals > 0 && e.t > 0.0 && e.t < 1e5, "{e:?}");
}
