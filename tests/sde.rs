//! SDE solvers end to end (model text → kernels → solver): strong order on geometric
//! Brownian motion against its exact solution on the same Brownian path, weak order on
//! Ornstein–Uhlenbeck moments, the derived drift/diffusion kernels against hand formulas,
//! the noise classes, and replay (a trajectory does not depend on what else was solved).
//!
//! Every test uses fixed seeds. Statistical tolerances are stated in standard errors of
//! the sample at hand; order estimates are least-squares slopes over step sizes that share
//! one Brownian path per sample (the Brownian tree), with the slope's own standard error
//! estimated from independent batches.

use ndec::program::Program;
use ndec::runtime::SaveAt;
use ndec::runtime::sde::{BrownianKind, SdeMethod, SdeOptions, SdeSolution};
use ndec::stochastic::NoiseClass;

const GBM: &str = "param mu = 1.0, sigma = 0.6\nbrownian W\nstate x = 1\nx' = mu*x + sigma*x*W\n";

fn program(text: &str) -> Program {
    Program::from_source("test.nde", text).unwrap_or_else(|e| panic!("{e}"))
}

fn solve(prog: &Program, opts: &SdeOptions) -> SdeSolution {
    let p = prog.default_params();
    let u0 = prog.initial_state(&p);
    prog.solve_sde(&p, &u0, opts)
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Least-squares slope of log(err) against log(h).
fn slope(h: &[f64], e: &[f64]) -> f64 {
    let x: Vec<f64> = h.iter().map(|v| v.ln()).collect();
    let y: Vec<f64> = e.iter().map(|v| v.ln()).collect();
    let n = x.len() as f64;
    let (mx, my) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
    let sxy: f64 = x.iter().zip(&y).map(|(a, b)| (a - mx) * (b - my)).sum();
    let sxx: f64 = x.iter().map(|a| (a - mx) * (a - mx)).sum();
    sxy / sxx
}

/// Mean strong error E|X_N − X(T)| of GBM per step size (paths `traj` in `range`), the exact
/// solution taken on each path's own W(T).
fn gbm_strong_errors(
    prog: &Program,
    method: SdeMethod,
    hs: &[f64],
    range: std::ops::Range<u64>,
) -> Vec<f64> {
    let (mu, sigma) = (1.0f64, 0.6f64);
    hs.iter()
        .map(|&h| {
            let mut total = 0.0;
            for k in range.clone() {
                let mut o = SdeOptions::new(method, 0.0, 1.0);
                o.dt = Some(h);
                o.seed = 11;
                o.traj = k;
                o.path = Some(BrownianKind::Tree);
                let s = solve(prog, &o);
                let w = s.w_row(s.sol.len() - 1)[0];
                let exact = ((mu - 0.5 * sigma * sigma) + sigma * w).exp();
                total += (s.sol.last()[0] - exact).abs();
            }
            total / range.clone().count() as f64
        })
        .collect()
}

/// The strong order of `method` on GBM: the slope over all paths, and its standard error
/// from 8 independent batches.
fn strong_order(method: SdeMethod, hs: &[f64], paths: u64) -> (f64, f64, Vec<f64>) {
    let prog = program(GBM);
    let batches = 8;
    let per = paths / batches;
    let mut slopes = Vec::new();
    let mut sums = vec![0.0; hs.len()];
    for b in 0..batches {
        let e = gbm_strong_errors(&prog, method, hs, b * per..(b + 1) * per);
        slopes.push(slope(hs, &e));
        for (s, x) in sums.iter_mut().zip(&e) {
            *s += x / batches as f64;
        }
    }
    let all = slope(hs, &sums);
    let mean = slopes.iter().sum::<f64>() / batches as f64;
    let var = slopes.iter().map(|s| (s - mean).powi(2)).sum::<f64>() / (batches - 1) as f64;
    (all, (var / batches as f64).sqrt(), sums)
}

const HS: [f64; 5] = [1.0 / 16.0, 1.0 / 32.0, 1.0 / 64.0, 1.0 / 128.0, 1.0 / 256.0];

/// The slope must be within 3 batch standard errors of the theoretical order, plus 0.1
/// for the pre-asymptotic range of step sizes (stated, not tuned per method).
fn assert_order(name: &str, (p, se, errs): (f64, f64, Vec<f64>), want: f64) {
    eprintln!("{name}: strong order {p:.3} ± {se:.3}, errors {errs:.3?}");
    assert!(
        (p - want).abs() <= 0.1 + 3.0 * se,
        "{name}: measured strong order {p:.3} (± {se:.3}), want {want}; errors {errs:?}"
    );
    for w in errs.windows(2) {
        assert!(w[1] < w[0], "{name}: the error must fall with h: {errs:?}");
    }
}

#[test]
fn euler_maruyama_has_strong_order_one_half() {
    assert_order(
        "euler_maruyama",
        strong_order(SdeMethod::EulerMaruyama, &HS, 400),
        0.5,
    );
}

#[test]
fn milstein_has_strong_order_one() {
    assert_order("milstein", strong_order(SdeMethod::Milstein, &HS, 400), 1.0);
}

#[test]
fn reversible_heun_has_strong_order_one_on_scalar_noise() {
    // Scalar noise is commutative; reversible Heun is a Stratonovich Heun-type method and
    // converges with order 1 there (order 0.5 is only its guarantee for general noise).
    assert_order(
        "reversible_heun",
        strong_order(SdeMethod::ReversibleHeun, &HS, 400),
        1.0,
    );
}

#[test]
fn sde_adaptive_error_falls_with_the_tolerance() {
    let prog = program(GBM);
    let (mu, sigma) = (1.0f64, 0.6f64);
    let tols = [1e-2, 1e-3, 1e-4];
    let mut errs = Vec::new();
    let mut steps = Vec::new();
    for &tol in &tols {
        let (mut total, mut nsteps) = (0.0, 0);
        for k in 0..200 {
            let mut o = SdeOptions::new(SdeMethod::SdeAdaptive, 0.0, 1.0);
            o.rtol = tol;
            o.atol = vec![tol];
            o.seed = 5;
            o.traj = k;
            let s = solve(&prog, &o);
            let w = s.w_row(s.sol.len() - 1)[0];
            let exact = ((mu - 0.5 * sigma * sigma) + sigma * w).exp();
            total += (s.sol.last()[0] - exact).abs();
            nsteps += s.sol.stats.accepted;
        }
        errs.push(total / 200.0);
        steps.push(nsteps as f64 / 200.0);
    }
    let order = slope(&tols, &errs);
    eprintln!(
        "sde_adaptive: errors {errs:.3?} at tolerances {tols:?}, mean accepted steps {steps:?}, slope {order:.3}"
    );
    for w in errs.windows(2) {
        assert!(
            w[1] < 0.3 * w[0],
            "error must fall with the tolerance: {errs:?}"
        );
    }
    assert!(steps[2] > steps[0], "tighter tolerance takes more steps");
}

#[test]
fn sde_adaptive_rejects_and_the_path_stays_brownian() {
    // Rejections happen and W(1) over many paths is still N(0, 1): mean within 4 standard
    // errors of 0, variance within 4 standard errors (√(2/N)) of 1.
    let prog = program(GBM);
    let n = 2000;
    let (mut sum, mut sum2, mut rejected) = (0.0, 0.0, 0);
    for k in 0..n {
        let mut o = SdeOptions::new(SdeMethod::SdeAdaptive, 0.0, 1.0);
        o.rtol = 1e-3;
        o.atol = vec![1e-3];
        o.seed = 9;
        o.traj = k;
        let s = solve(&prog, &o);
        let w = s.w_row(s.sol.len() - 1)[0];
        sum += w;
        sum2 += w * w;
        rejected += s.sol.stats.rejected;
    }
    let nf = n as f64;
    let mean = sum / nf;
    let var = sum2 / nf - mean * mean;
    assert!(rejected > 0, "no step was rejected");
    assert!(mean.abs() < 4.0 / nf.sqrt(), "mean of W(1) = {mean}");
    assert!(
        (var - 1.0).abs() < 4.0 * (2.0 / nf).sqrt(),
        "var of W(1) = {var}"
    );
}

const OU: &str =
    "param theta = 2.0, m = 1.0, s = 0.5\nbrownian W\nstate x = 0\nx' = theta*(m - x) + s*W\n";

#[test]
fn euler_maruyama_weak_order_on_ornstein_uhlenbeck_moments() {
    // dX = θ(m − X)dt + s dW, X0 = 0: E X(1) = m(1 − e^{−θ}), Var X(1) = s²(1 − e^{−2θ})/(2θ).
    // Euler–Maruyama's own moments are known exactly: with a = 1 − θh and N = 1/h steps,
    // mean m(1 − a^N) and variance s²h(1 − a^{2N})/(1 − a²). The sample moments must match
    // those within 4 standard errors (the sampling is right), and the weak error against
    // the SDE must fall like h (weak order 1).
    let prog = program(OU);
    let (theta, m, s) = (2.0f64, 1.0f64, 0.5f64);
    let exact_mean = m * (1.0 - (-theta).exp());
    let exact_var = s * s * (1.0 - (-2.0 * theta).exp()) / (2.0 * theta);
    let paths = 40_000u64;
    let hs = [0.1, 0.05, 0.025];
    let mut weak = Vec::new();
    for &h in &hs {
        let (mut s1, mut s2) = (0.0, 0.0);
        for k in 0..paths {
            let mut o = SdeOptions::new(SdeMethod::EulerMaruyama, 0.0, 1.0);
            o.dt = Some(h);
            o.seed = 3;
            o.traj = k;
            let x = solve(&prog, &o).sol.last()[0];
            s1 += x;
            s2 += x * x;
        }
        let nf = paths as f64;
        let mean = s1 / nf;
        let var = (s2 - nf * mean * mean) / (nf - 1.0);
        let a = 1.0 - theta * h;
        let steps = (1.0 / h).round() as i32;
        let em_mean = m * (1.0 - a.powi(steps));
        let em_var = s * s * h * (1.0 - a.powi(2 * steps)) / (1.0 - a * a);
        let se_mean = (var / nf).sqrt();
        let se_var = var * (2.0 / (nf - 1.0)).sqrt();
        eprintln!(
            "h = {h}: mean {mean:.5} (EM {em_mean:.5}, SDE {exact_mean:.5}, se {se_mean:.1e}), var {var:.5} (EM {em_var:.5}, SDE {exact_var:.5}, se {se_var:.1e})"
        );
        assert!(
            (mean - em_mean).abs() < 4.0 * se_mean,
            "h = {h}: mean {mean} vs {em_mean}"
        );
        assert!(
            (var - em_var).abs() < 4.0 * se_var,
            "h = {h}: var {var} vs {em_var}"
        );
        weak.push((mean - exact_mean).abs());
    }
    let p = slope(&hs, &weak);
    eprintln!("weak errors of the mean {weak:.3?}: order {p:.2}");
    assert!((p - 1.0).abs() < 0.3, "weak order {p}");
}

#[test]
fn all_methods_match_ornstein_uhlenbeck_moments() {
    // At a small step every method's moments at t = 1 must agree with the exact ones
    // within 4 standard errors plus the method's O(h) bias bound θ·h·|m| (mean) and
    // s²·h (variance) at h = 1/200.
    let prog = program(OU);
    let (theta, m, s) = (2.0f64, 1.0f64, 0.5f64);
    let exact_mean = m * (1.0 - (-theta).exp());
    let exact_var = s * s * (1.0 - (-2.0 * theta).exp()) / (2.0 * theta);
    let paths = 4000u64;
    let h = 1.0 / 200.0;
    for method in SdeMethod::ALL {
        let (mut s1, mut s2) = (0.0, 0.0);
        for k in 0..paths {
            let mut o = SdeOptions::new(method, 0.0, 1.0);
            o.dt = Some(h);
            o.rtol = 1e-4;
            o.atol = vec![1e-4];
            o.seed = 21;
            o.traj = k;
            let x = solve(&prog, &o).sol.last()[0];
            s1 += x;
            s2 += x * x;
        }
        let nf = paths as f64;
        let mean = s1 / nf;
        let var = (s2 - nf * mean * mean) / (nf - 1.0);
        let se_mean = (var / nf).sqrt();
        let se_var = var * (2.0 / (nf - 1.0)).sqrt();
        eprintln!("{method}: mean {mean:.4} ({exact_mean:.4}), var {var:.4} ({exact_var:.4})");
        assert!(
            (mean - exact_mean).abs() < 4.0 * se_mean + theta * h * m,
            "{method}: mean {mean} vs {exact_mean} (se {se_mean})"
        );
        assert!(
            (var - exact_var).abs() < 4.0 * se_var + s * s * h,
            "{method}: var {var} vs {exact_var} (se {se_var})"
        );
    }
}

#[test]
fn stratonovich_and_ito_models_of_the_same_process_agree() {
    // dX = μX dt + σX∘dW (Stratonovich) is dX = (μ + σ²/2)X dt + σX dW (Itô). Written both
    // ways, each method gives the same path to rounding.
    let ito = program(
        "param mu = 0.3, sigma = 0.5\nbrownian W\nstate x = 1\nx' = (mu + sigma^2/2)*x + sigma*x*W\n",
    );
    let strat = program(
        "param mu = 0.3, sigma = 0.5\nbrownian stratonovich W\nstate x = 1\nx' = mu*x + sigma*x*W\n",
    );
    for method in SdeMethod::ALL {
        let mut o = SdeOptions::new(method, 0.0, 1.0);
        o.dt = Some(0.01);
        o.rtol = 1e-4;
        o.atol = vec![1e-4];
        o.seed = 4;
        let a = solve(&ito, &o).sol.last()[0];
        let b = solve(&strat, &o).sol.last()[0];
        assert!((a - b).abs() <= 1e-12 * a.abs(), "{method}: {a} vs {b}");
    }
}

#[test]
fn derived_kernels_match_hand_formulas() {
    // Heston: G = [[sv·S, 0], [ξ·sv·ρ, ξ·sv·√(1−ρ²)]] with sv = √|v|.
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/ok/sde_heston.nde"
    ))
    .unwrap();
    let prog = program(&text);
    let sde = prog.ir.sde.as_ref().expect("an SDE");
    assert_eq!((sde.n, sde.m), (2, 2));
    assert_eq!(sde.noise.class, NoiseClass::General);
    assert!(!sde.noise.commutative);
    let p = prog.default_params();
    let (xi, rho) = (0.3, -0.7f64);
    let u = [90.0, 0.05];
    let k = ndec::backend::interp::Interpreted::new(sde.diffusion.clone());
    let mut g = vec![0.0; 4];
    ndec::backend::Kernel::call(&k, &[&[0.5], &u, &p], &mut [&mut g], &mut Vec::new());
    let sv = 0.05f64.sqrt();
    let want = [
        sv * 90.0,
        xi * sv * rho,
        0.0,
        xi * sv * (1.0 - rho * rho).sqrt(),
    ];
    for (a, b) in g.iter().zip(&want) {
        assert!(
            (a - b).abs() <= 1e-14 * b.abs().max(1.0),
            "{g:?} vs {want:?}"
        );
    }
    // GBM: Stratonovich drift = Itô drift − ½σ²x; Milstein product ½σ²x·dw².
    let prog = program(GBM);
    let sde = prog.ir.sde.as_ref().unwrap();
    assert_eq!(sde.noise.class, NoiseClass::Scalar);
    assert!(sde.noise.commutative && !sde.noise.additive);
    let p = prog.default_params();
    let k = ndec::backend::interp::Interpreted::new(sde.step_milstein.clone());
    let (mut f, mut gdw, mut mil) = (vec![0.0], vec![0.0], vec![0.0]);
    ndec::backend::Kernel::call(
        &k,
        &[&[0.0], &[2.0], &p, &[0.3]],
        &mut [&mut f, &mut gdw, &mut mil],
        &mut Vec::new(),
    );
    let (mu, sigma) = (1.0, 0.6);
    assert!((f[0] - (mu - 0.5 * sigma * sigma) * 2.0).abs() < 1e-14);
    assert!((gdw[0] - sigma * 2.0 * 0.3).abs() < 1e-15);
    assert!((mil[0] - 0.5 * sigma * sigma * 2.0 * 0.09).abs() < 1e-15);
}

#[test]
fn noise_classes_of_the_corpus() {
    let class = |file: &str| {
        let text = std::fs::read_to_string(format!(
            "{}/tests/data/ok/{file}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        program(&text).ir.sde.as_ref().unwrap().noise
    };
    let ou = class("sde_ou.nde");
    assert_eq!(ou.class, NoiseClass::Scalar);
    assert!(ou.additive);
    let d = class("sde_diagonal.nde");
    assert_eq!(d.class, NoiseClass::Diagonal);
    assert!(d.commutative && !d.additive);
    let nn = class("sde_neural.nde");
    assert_eq!(nn.class, NoiseClass::Diagonal);
    assert!(nn.commutative);
    // Two noises on one state, additive: commutative (all L^j g_k vanish).
    let two = program(
        "brownian W1, W2\nstate x = 0\nstate y = 0\nx' = -x + 0.1*W1 + 0.2*W2\ny' = -y + 0.3*W1\n",
    );
    let info = two.ir.sde.as_ref().unwrap().noise;
    assert_eq!(info.class, NoiseClass::Commutative);
    assert!(info.additive);
    // u[0] driven by W1 with a coefficient in u[1]: diagonal but not commutative.
    let nc = program("brownian W1, W2\nstate u[2] = 1\nu[0]' = u[1]*W1\nu[1]' = W2\n");
    let info = nc.ir.sde.as_ref().unwrap().noise;
    assert_eq!(info.class, NoiseClass::Diagonal);
    assert!(!info.commutative);
}

#[test]
fn a_trajectory_replays_alone_bit_for_bit() {
    // Solving trajectories 0..6 in order, then trajectory 4 alone (and with other save
    // times, for the adaptive method), gives the same values bit for bit.
    let prog = program(GBM);
    for method in SdeMethod::ALL {
        let opts = |k: u64| {
            let mut o = SdeOptions::new(method, 0.0, 1.0);
            o.dt = Some(0.01);
            o.rtol = 1e-4;
            o.atol = vec![1e-4];
            o.seed = 77;
            o.traj = k;
            o.saveat = SaveAt::Every(0.25);
            o
        };
        let all: Vec<SdeSolution> = (0..6).map(|k| solve(&prog, &opts(k))).collect();
        let alone = solve(&prog, &opts(4));
        assert_eq!(alone, all[4], "{method}");
        assert_ne!(all[3].sol.u, all[4].sol.u, "{method}: trajectories differ");
    }
    // The Brownian tree gives W at shared times independently of the other save times.
    let mut a = SdeOptions::new(SdeMethod::SdeAdaptive, 0.0, 1.0);
    a.rtol = 1e-4;
    a.atol = vec![1e-4];
    a.seed = 77;
    a.traj = 2;
    a.saveat = SaveAt::Every(0.5);
    let mut b = a.clone();
    b.saveat = SaveAt::Every(0.1);
    let (sa, sb) = (solve(&prog, &a), solve(&prog, &b));
    assert_eq!(sa.w_row(1), sb.w_row(5));
    assert_eq!(sa.w_row(2), sb.w_row(10));
}

#[test]
fn milstein_refuses_non_commutative_noise() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/ok/sde_heston.nde"
    ))
    .unwrap();
    let prog = program(&text);
    let p = prog.default_params();
    let mut o = SdeOptions::new(SdeMethod::Milstein, 0.0, 1.0);
    o.dt = Some(0.01);
    let e = prog
        .solve_sde(&p, &prog.initial_state(&p), &o)
        .expect_err("milstein on general noise");
    assert!(e.to_string().contains("commutative"), "{e}");
    // The other methods solve it.
    for method in [
        SdeMethod::EulerMaruyama,
        SdeMethod::ReversibleHeun,
        SdeMethod::SdeAdaptive,
    ] {
        let mut o = SdeOptions::new(method, 0.0, 1.0);
        o.dt = Some(0.001);
        o.rtol = 1e-3;
        let s = solve(&prog, &o);
        assert!(s.sol.last().iter().all(|x| x.is_finite()));
    }
}

#[test]
fn the_jit_and_the_interpreter_agree_on_sde_paths() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/ok/sde_diagonal.nde"
    ))
    .unwrap();
    let src = ndec::driver::Source::new("d.nde", text);
    let jit = Program::compile(&src, ndec::program::Backend::Jit).unwrap();
    let int = Program::compile(&src, ndec::program::Backend::Interpreter).unwrap();
    for method in SdeMethod::ALL {
        let mut o = SdeOptions::new(method, 0.0, 1.0);
        o.dt = Some(0.01);
        o.seed = 1;
        o.traj = 3;
        o.saveat = SaveAt::Every(0.1);
        assert_eq!(solve(&jit, &o), solve(&int, &o), "{method}");
    }
}

#[test]
fn lockstep_lanes_equal_solving_each_trajectory_alone() {
    // Five lanes with their own params (sigma) and keys, euler_maruyama and milstein, with
    // save times between steps: bit-identical to one-by-one solves.
    let prog = program(GBM);
    for method in [SdeMethod::EulerMaruyama, SdeMethod::Milstein] {
        let ps: Vec<Vec<f64>> = (0..5).map(|k| vec![1.0, 0.2 + 0.1 * k as f64]).collect();
        let opts: Vec<SdeOptions> = (0..5u64)
            .map(|k| {
                let mut o = SdeOptions::new(method, 0.0, 1.3);
                o.dt = Some(0.007);
                o.saveat = SaveAt::Every(0.1);
                o.seed = 8;
                o.traj = 10 + k;
                o
            })
            .collect();
        let pr: Vec<&[f64]> = ps.iter().map(Vec::as_slice).collect();
        let u0: Vec<&[f64]> = vec![&[1.0]; 5];
        let many = prog.solve_sde_many(&pr, &u0, &opts);
        for k in 0..5 {
            let alone = prog.solve_sde(pr[k], u0[k], &opts[k]).unwrap();
            assert_eq!(many[k].as_ref().unwrap(), &alone, "{method} lane {k}");
        }
    }
}
