//! Stiff solvers driven end to end by the compiler's own generated Jacobians (dense for
//! small systems, colour-compressed sparse for stencils), against reference solutions;
//! and the JIT against the interpreter, bit for bit, on every derivative kernel.

use ndec::backend::{Kernel, cranelift, interp};
use ndec::driver::{self, Source};
use ndec::program::{Backend, Program};
use ndec::runtime::{Method, SolveOptions};

const ROBER: &str = "param k1 = 0.04, k2 = 3e7, k3 = 1e4\nstate y1 = 1.0\nstate y2 = 0.0\nstate y3 = 0.0\ny1' = -k1*y1 + k3*y2*y3\ny2' = k1*y1 - k2*y2^2 - k3*y2*y3\ny3' = k2*y2^2\n";

#[test]
fn rober_with_generated_jacobians_matches_the_reference() {
    // Reference at t = 1e5 (IVP test set / Hairer–Wanner), and mass conservation.
    let reference = [1.786592e-2, 7.274751e-8, 0.9821341];
    for backend in [Backend::Jit, Backend::Interpreter] {
        let prog = Program::compile(&Source::new("rober.nde", ROBER), backend).unwrap();
        let p = prog.default_params();
        let u0 = prog.initial_state(&p);
        for method in [Method::Rosenbrock23, Method::Rodas5, Method::Bdf] {
            let mut opts = SolveOptions::new(method, 0.0, 1e5);
            opts.rtol = 1e-8;
            opts.atol = vec![1e-14];
            let sol = prog
                .solve(&p, &u0, &opts)
                .unwrap_or_else(|e| panic!("{method:?}: {e}"));
            let y = sol.last();
            for k in 0..3 {
                let rel = (y[k] - reference[k]).abs() / reference[k];
                assert!(
                    rel < 2e-5,
                    "{method:?} {backend:?}: y{} = {} vs {}",
                    k + 1,
                    y[k],
                    reference[k]
                );
            }
            assert!((y.iter().sum::<f64>() - 1.0).abs() < 1e-8);
            assert!(sol.stats.jac_evals > 0 && sol.stats.lu_factorizations > 0);
        }
    }
}

#[test]
fn heat_n1000_with_the_generated_sparse_jacobian_matches_the_semidiscrete_solution() {
    let n = 1000usize;
    let text = format!(
        "const N = {n}, D = 0.01, dx = 1/(N+1)\nstate u[N] = sin(3.141592653589793*(i+1)*dx) for i in 0..N\nu[0]' = D*(-2*u[0] + u[1])/dx^2\nu[i]' = D*(u[i-1] - 2*u[i] + u[i+1])/dx^2 for i in 1..N-1\nu[N-1]' = D*(u[N-2] - 2*u[N-1])/dx^2\n"
    );
    let prog = Program::from_source("heat.nde", &text).unwrap();
    match prog.jacobian().unwrap() {
        ndec::program::JacobianKernel::Sparse { pattern, .. } => {
            assert_eq!(pattern.cols.len(), 3 * n - 2)
        }
        ndec::program::JacobianKernel::Dense(_) => {
            panic!("a 1000-state stencil must get a sparse Jacobian")
        }
    }
    let p = prog.default_params();
    let u0 = prog.initial_state(&p);
    let dx = 1.0 / (n as f64 + 1.0);
    let lambda = 4.0 * 0.01 / (dx * dx) * (std::f64::consts::PI * dx / 2.0).sin().powi(2);
    let t1 = 10.0;
    for method in [Method::Bdf, Method::Rodas5] {
        let mut opts = SolveOptions::new(method, 0.0, t1);
        opts.rtol = 1e-8;
        opts.atol = vec![1e-10];
        let sol = prog.solve(&p, &u0, &opts).unwrap();
        let u = sol.last();
        let err = (0..n)
            .map(|i| (u[i] - (-lambda * t1).exp() * u0[i]).abs())
            .fold(0.0, f64::max);
        assert!(err < 1e-6, "{method:?}: max error {err:e}");
    }
}

fn bits_equal(a: &[f64], b: &[f64]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan()))
}

#[test]
fn jit_and_interpreter_agree_bit_for_bit_on_derivative_kernels() {
    let mut checked = 0;
    for dir in ["tests/data/ok", "examples"] {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path.extension().and_then(|e| e.to_str()) != Some("nde") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let Ok(m) = driver::check(&Source::new(path.display().to_string(), &text)) else {
                continue;
            };
            let Ok(l) = driver::lower(&m) else { continue };
            let f = &l.vector_field;
            let mut kernels = vec![
                ndec::diff::jvp(f, &["u", "p"], true),
                ndec::diff::vjp(f, &["u", "p"], true),
                ndec::diff::jacobian_dense(f, "u", true),
            ];
            if let Some(sj) = ndec::diff::jacobian_sparse(f, "u") {
                kernels.push(sj.function);
            }
            for k in &kernels {
                let jit =
                    cranelift::compile(k).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                let s = ndec::rng::Stream::new(3, checked as u64);
                let args: Vec<Vec<f64>> = k
                    .args
                    .iter()
                    .enumerate()
                    .map(|(a, b)| {
                        (0..b.len)
                            .map(|j| 0.2 + s.uniform((a * 1000 + j) as u64))
                            .collect()
                    })
                    .collect();
                let refs: Vec<&[f64]> = args.iter().map(Vec::as_slice).collect();
                let want = interp::eval(k, &refs);
                let mut got: Vec<Vec<f64>> =
                    k.outputs.iter().map(|(b, _)| vec![0.0; b.len]).collect();
                let mut outs: Vec<&mut [f64]> = got.iter_mut().map(Vec::as_mut_slice).collect();
                jit.call(&refs, &mut outs, &mut Vec::new());
                for (g, w) in got.iter().zip(&want) {
                    assert!(
                        bits_equal(g, w),
                        "{}: {} differs between JIT and interpreter",
                        path.display(),
                        k.name
                    );
                }
                checked += 1;
            }
        }
    }
    assert!(checked > 100, "only {checked} derivative kernels checked");
}

/// Prothero–Robinson: u' = −λ(u − φ(t)) + φ'(t), φ(t) = sin(t) + t²/4; u = φ when u(0) = φ(0).
/// Stiff and non-autonomous, so Rosenbrock methods need ∂f/∂t at every step.
const PROTHERO: &str =
    "param lam = 1e5\nstate u = 0.0\nu' = -lam*(u - (sin(t) + t^2/4)) + cos(t) + t/2\n";

#[test]
fn generated_time_derivative_matches_the_analytic_one_and_drives_rosenbrock() {
    use ndec::runtime::OdeJacobian;
    let prog = Program::compile(&Source::new("pr.nde", PROTHERO), Backend::Jit).unwrap();
    let p = prog.default_params();
    prog.prepare_method(Method::Rodas5).unwrap();
    let mut rhs = prog.rhs(&p);
    for &(t, u) in &[(0.0, 0.3), (1.7, -2.0), (12.5, 40.0)] {
        // ∂f/∂t = λ φ'(t) + φ''(t) = λ (cos t + t/2) − sin t + 1/2 (independent of u).
        let exact = 1e5 * (f64::cos(t) + t / 2.0) - f64::sin(t) + 0.5;
        let mut d = [f64::NAN];
        assert!(rhs.time_derivative(t, &[u], &mut d));
        assert!(
            (d[0] - exact).abs() <= 1e-12 * exact.abs().max(1.0),
            "t = {t}: {} vs {exact}",
            d[0]
        );
    }
    for method in [Method::Rosenbrock23, Method::Rodas5] {
        let mut opts = SolveOptions::new(method, 0.0, 10.0);
        opts.rtol = 1e-8;
        opts.atol = vec![1e-10];
        let sol = prog.solve(&p, &[0.0], &opts).unwrap();
        let exact = f64::sin(10.0) + 25.0;
        assert!(
            (sol.last()[0] - exact).abs() < 1e-6,
            "{method:?}: {} vs {exact}",
            sol.last()[0]
        );
    }
    // An autonomous vector field has ∂f/∂t = 0 without any kernel call.
    let rober = Program::compile(&Source::new("rober.nde", ROBER), Backend::Jit).unwrap();
    let q = rober.default_params();
    rober.prepare_method(Method::Rodas5).unwrap();
    let mut d = [f64::NAN; 3];
    assert!(rober.rhs(&q).time_derivative(3.0, &[1.0, 0.0, 0.0], &mut d));
    assert_eq!(d, [0.0; 3]);
}
