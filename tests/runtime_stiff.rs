//! The stiff solvers through the public API, and (ignored) the work/timing report:
//! `cargo test --release --test runtime_stiff -- --ignored --nocapture`.

use ndec::runtime::{
    Method, OdeJacobian, OdeRhs, SaveAt, SolveOptions, Sparsity, solve_any, solve_stiff,
};
use std::time::Instant;

struct Rober;
impl OdeRhs for Rober {
    fn dim(&self) -> usize {
        3
    }
    fn eval(&mut self, _t: f64, y: &[f64], dy: &mut [f64]) {
        dy[0] = -0.04 * y[0] + 1e4 * y[1] * y[2];
        dy[1] = 0.04 * y[0] - 1e4 * y[1] * y[2] - 3e7 * y[1] * y[1];
        dy[2] = 3e7 * y[1] * y[1];
    }
}
impl OdeJacobian for Rober {
    fn jac(&mut self, _t: f64, y: &[f64], j: &mut [f64]) {
        j.copy_from_slice(&[
            -0.04,
            1e4 * y[2],
            1e4 * y[1],
            0.04,
            -1e4 * y[2] - 6e7 * y[1],
            -1e4 * y[1],
            0.0,
            6e7 * y[1],
            0.0,
        ]);
    }
    fn time_derivative(&mut self, _t: f64, _u: &[f64], d: &mut [f64]) -> bool {
        d.fill(0.0);
        true
    }
}

struct Heat {
    n: usize,
    k: f64,
    pattern: Sparsity,
}
impl Heat {
    fn new(n: usize) -> Heat {
        let dx = 1.0 / (n as f64 + 1.0);
        let mut row_ptr = vec![0];
        let mut cols = vec![];
        for i in 0..n {
            cols.extend(i.saturating_sub(1)..(i + 2).min(n));
            row_ptr.push(cols.len());
        }
        Heat {
            n,
            k: 1.0 / (dx * dx),
            pattern: Sparsity { n, row_ptr, cols },
        }
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
    fn jac(&mut self, _t: f64, _u: &[f64], _j: &mut [f64]) {
        unreachable!("the sparse path is used")
    }
    fn sparsity(&self) -> Option<&Sparsity> {
        Some(&self.pattern)
    }
    fn jac_sparse(&mut self, _t: f64, _u: &[f64], v: &mut [f64]) {
        let p = &self.pattern;
        for i in 0..self.n {
            let row = p.row_ptr[i]..p.row_ptr[i + 1];
            for (vk, &col) in v[row.clone()].iter_mut().zip(&p.cols[row]) {
                *vk = if col == i { -2.0 * self.k } else { self.k };
            }
        }
    }
    fn time_derivative(&mut self, _t: f64, _u: &[f64], d: &mut [f64]) -> bool {
        d.fill(0.0);
        true
    }
}

#[test]
fn stiff_methods_are_named_and_solve_through_solve_any() {
    for name in ["rosenbrock23", "rodas5", "bdf"] {
        let m = Method::from_name(name).unwrap();
        assert!(m.is_implicit());
        let mut o = SolveOptions::new(m, 0.0, 40.0);
        o.rtol = 1e-6;
        o.atol = vec![1e-10, 1e-12, 1e-10];
        o.saveat = SaveAt::Every(10.0);
        let s = solve_any(&mut Rober, &[1.0, 0.0, 0.0], &o).unwrap();
        assert_eq!(s.t, vec![0.0, 10.0, 20.0, 30.0, 40.0]);
        // Hairer & Wanner's y(40).
        let y = s.last();
        assert!((y[0] - 0.7158270687193).abs() < 2e-5, "{name}: {y:?}");
        assert!((y[2] - 0.2841637457).abs() < 2e-5, "{name}: {y:?}");
        assert!(s.stats.jac_evals > 0 && s.stats.lu_factorizations > 0);
    }
    assert!(!Method::Tsit5.is_implicit());
}

fn report<R: OdeJacobian>(label: &str, rhs: &mut R, u0: &[f64], o: &SolveOptions) {
    let reps = 5;
    let mut best = f64::INFINITY;
    let mut last = None;
    for _ in 0..reps {
        let t = Instant::now();
        let s = solve_stiff(rhs, u0, o).unwrap();
        best = best.min(t.elapsed().as_secs_f64());
        last = Some(s);
    }
    let s = last.unwrap();
    let st = s.stats;
    let y = s.last();
    let head: Vec<String> = y.iter().take(3).map(|v| format!("{v:.10e}")).collect();
    println!(
        "{label:<28} steps {:>6} (acc {:>6}, rej {:>4})  rhs {:>7}  jac {:>5}  lu {:>6}  newton {:>6}  {:>9.3} ms  y(t1)[..3] = [{}]",
        st.steps,
        st.accepted,
        st.rejected,
        st.rhs_evals,
        st.jac_evals,
        st.lu_factorizations,
        st.newton_iters,
        best * 1e3,
        head.join(", ")
    );
}

#[test]
#[ignore]
fn work_and_timing_report() {
    for m in [Method::Rosenbrock23, Method::Rodas5, Method::Bdf] {
        let mut o = SolveOptions::new(m, 0.0, 1e5);
        o.rtol = 1e-6;
        o.atol = vec![1e-10];
        o.max_steps = 10_000_000;
        report(&format!("rober 1e5 {m}"), &mut Rober, &[1.0, 0.0, 0.0], &o);
    }
    for m in [Method::Bdf, Method::Rodas5, Method::Rosenbrock23] {
        let mut heat = Heat::new(1000);
        let u0: Vec<f64> = (0..1000)
            .map(|i| (std::f64::consts::PI * (i as f64 + 1.0) / 1001.0).sin())
            .collect();
        let mut o = SolveOptions::new(m, 0.0, 0.1);
        o.rtol = 1e-6;
        o.atol = vec![1e-8];
        report(&format!("heat N=1000 sparse {m}"), &mut heat, &u0, &o);
    }
}
