//! Gradients of SDE losses on a fixed Brownian path (Euler–Maruyama's discrete adjoint):
//! the replayed forward pass is the solver's own trajectory, bit for bit, and the gradient
//! agrees with central differences of the same loss, on GBM with params in drift,
//! diffusion and the initial state, and on a neural SDE (MLP drift, diagonal noise).

use ndec::program::Program;
use ndec::runtime::SaveAt;
use ndec::runtime::sde::{SdeMethod, SdeOptions};
use ndec::sensitivity::sde::{SdeKernels, gradient};
use ndec::sensitivity::{RowLoss, Start};

/// Σ over saved rows of (u_i(t) − target_i(t))², with a smooth target.
struct ToTarget;

impl RowLoss for ToTarget {
    fn eval(&self, t: &[f64], u: &[f64], dim: usize, gu: &mut [f64], _gp: &mut [f64]) -> f64 {
        let mut loss = 0.0;
        for (r, tr) in t.iter().enumerate() {
            for i in 0..dim {
                let resid = u[r * dim + i] - (1.0 + 0.3 * tr + 0.1 * i as f64);
                loss += resid * resid;
                gu[r * dim + i] += 2.0 * resid;
            }
        }
        loss
    }
}

fn check(text: &str, traj: u64) {
    // Save points on step ends and between them; with and without t0.
    check_with(text, traj, SaveAt::Every(0.125));
    check_with(text, traj, SaveAt::Times(vec![0.3, 0.555, 1.0]));
}

fn check_with(text: &str, traj: u64, saveat: SaveAt) {
    let prog = Program::from_source("sde.nde", text).unwrap_or_else(|e| panic!("{e}"));
    let kernels = SdeKernels::compile(&prog).unwrap();
    let p = prog.default_params();
    let mut opts = SdeOptions::new(SdeMethod::EulerMaruyama, 0.0, 1.0);
    opts.dt = Some(0.01);
    opts.saveat = saveat;
    opts.seed = 11;
    opts.traj = traj;
    let g = gradient(&prog, &kernels, &p, Start::Model, &opts, &ToTarget).unwrap();
    // The replay is the solver's trajectory: the same loss from the solver's rows.
    let sol = prog.solve_sde(&p, &prog.initial_state(&p), &opts).unwrap();
    let mut scratch = vec![0.0; sol.sol.u.len()];
    let from_solver = ToTarget.eval(&sol.sol.t, &sol.sol.u, prog.dim(), &mut scratch, &mut []);
    assert_eq!(g.loss, from_solver, "replayed loss vs the solver's");
    let expected_rows = match &opts.saveat {
        SaveAt::Times(ts) => ts.len(),
        _ => 9,
    };
    assert_eq!(sol.sol.t.len(), expected_rows, "{:?}", sol.sol.t);
    for k in 0..p.len() {
        let h = 1e-6 * p[k].abs().max(1e-2);
        let (mut pp, mut pm) = (p.clone(), p.clone());
        pp[k] += h;
        pm[k] -= h;
        let lp = gradient(&prog, &kernels, &pp, Start::Model, &opts, &ToTarget).unwrap();
        let lm = gradient(&prog, &kernels, &pm, Start::Model, &opts, &ToTarget).unwrap();
        let fd = (lp.loss - lm.loss) / (2.0 * h);
        let scale = g.grad[k].abs().max(fd.abs()).max(1e-8);
        assert!(
            (g.grad[k] - fd).abs() / scale < 1e-6,
            "param {k}: adjoint {} vs central difference {fd}",
            g.grad[k]
        );
    }
}

#[test]
fn gbm_gradient_on_a_fixed_path_matches_central_differences() {
    for traj in [0, 7] {
        check(
            "param mu = 0.4, sigma = 0.6, x0 = 1.1\nbrownian W\nstate x = x0\nx' = mu*x + sigma*x*W\n",
            traj,
        );
    }
}

#[test]
fn neural_sde_gradient_on_a_fixed_path_matches_central_differences() {
    check(
        "param s = 0.3\nnet f = mlp(2 -> 5 -> 2, tanh, init = glorot(seed = 2))\nbrownian W1, W2\nstate u[2] = [1, 0.5]\nu' = f(u) + s*u*[W1, W2]\n",
        3,
    );
}

const OU: &str =
    "param theta = 2.0, m = 1.0, s = 0.5\nbrownian W\nstate x = 0\nx' = theta*(m - x) + s*W\n";

/// Observed paths of OU with its default params, from seed 100 (the fit uses seed 0).
fn observed_ou(paths: usize) -> Vec<ndec::train::Data> {
    let prog = Program::from_source("ou.nde", OU).unwrap();
    let p = prog.default_params();
    let times: Vec<f64> = (1..=8).map(|i| i as f64 * 0.25).collect();
    (0..paths)
        .map(|k| {
            let mut o = SdeOptions::new(SdeMethod::EulerMaruyama, 0.0, 2.0);
            o.dt = Some(0.01);
            o.saveat = SaveAt::Times(times.clone());
            o.seed = 100;
            o.traj = k as u64;
            let sol = prog.solve_sde(&p, &prog.initial_state(&p), &o).unwrap();
            ndec::train::Data {
                traj: Some(k),
                fixed: Vec::new(),
                times: sol.sol.t.clone(),
                columns: vec![(0, "x".into())],
                values: (0..sol.sol.len())
                    .map(|r| vec![Some(sol.sol.row(r)[0])])
                    .collect(),
            }
        })
        .collect()
}

/// The moment-matching loss (ensemble mean and variance against the observed paths'):
/// its gradient through every path's adjoint agrees with central differences.
#[test]
fn moment_matching_gradient_matches_central_differences() {
    use ndec::sensitivity::Sensitivity::Discrete;
    use ndec::train::{Moments, moment_loss_and_gradient};
    let obs = Moments::of(&observed_ou(50), 1).unwrap();
    let text = OU.replace(
        "theta = 2.0, m = 1.0, s = 0.5",
        "theta = 1.2, m = 0.6, s = 0.3",
    );
    let prog = Program::from_source("ou.nde", &text).unwrap();
    let kernels = SdeKernels::compile(&prog).unwrap();
    let p = prog.default_params();
    let mut opts = SdeOptions::new(SdeMethod::EulerMaruyama, 0.0, 2.0);
    opts.dt = Some(0.01);
    let g = moment_loss_and_gradient(&prog, &kernels, &p, &obs, &opts, 40, Discrete).unwrap();
    for k in 0..p.len() {
        let h = 1e-6 * p[k];
        let (mut pp, mut pm) = (p.clone(), p.clone());
        pp[k] += h;
        pm[k] -= h;
        let lp = moment_loss_and_gradient(&prog, &kernels, &pp, &obs, &opts, 40, Discrete).unwrap();
        let lm = moment_loss_and_gradient(&prog, &kernels, &pm, &obs, &opts, 40, Discrete).unwrap();
        let fd = (lp.loss - lm.loss) / (2.0 * h);
        assert!(
            (g.grad[k] - fd).abs() / g.grad[k].abs().max(fd.abs()) < 1e-6,
            "param {k}: {} vs {fd}",
            g.grad[k]
        );
    }
}

/// Training an SDE to observed moments recovers the parameters of the process that made
/// the data: OU from (θ, m, s) = (1.2, 0.6, 0.3) to within 10% of (2, 1, 0.5), fitted with
/// L-BFGS on 200 fixed simulated paths against 400 observed ones.
#[test]
fn fitting_moments_recovers_ornstein_uhlenbeck_parameters() {
    use ndec::sensitivity::{AdjointOptions, Sensitivity};
    use ndec::train::{FitOptions, Moments, Optimizer, fit_sde};
    let obs = Moments::of(&observed_ou(400), 1).unwrap();
    let text = OU.replace(
        "theta = 2.0, m = 1.0, s = 0.5",
        "theta = 1.2, m = 0.6, s = 0.3",
    );
    let prog = Program::from_source("ou.nde", &text).unwrap();
    let kernels = SdeKernels::compile(&prog).unwrap();
    let mut p = prog.default_params();
    let mut opts = SdeOptions::new(SdeMethod::EulerMaruyama, 0.0, 2.0);
    opts.dt = Some(0.01);
    let fit = FitOptions {
        optimizer: Optimizer::Lbfgs { lr: 0.1 },
        iters: 60,
        sensitivity: Sensitivity::Discrete,
        adjoint: AdjointOptions::default(),
        l2: 0.0,
        minibatch: None,
    };
    let report = fit_sde(&prog, &kernels, &mut p, &obs, &opts, 200, &fit, |_| Ok(())).unwrap();
    let (first, last) = (report.curve[0], *report.curve.last().unwrap());
    assert!(last < 1e-3 * first, "loss {first} -> {last}");
    for (got, want) in p.iter().zip([2.0, 1.0, 0.5]) {
        assert!((got - want).abs() < 0.1 * want, "params {p:?}");
    }
}

/// A neural SDE: the drift is an MLP, the noise scale a param; fitted to the moments of
/// Ornstein–Uhlenbeck paths, the moment loss falls by two orders of magnitude and the noise
/// scale lands near the truth.
#[test]
fn a_neural_sde_fits_the_moments_of_observed_paths() {
    use ndec::sensitivity::{AdjointOptions, Sensitivity};
    use ndec::train::{FitOptions, Moments, Optimizer, fit_sde};
    let obs = Moments::of(&observed_ou(400), 1).unwrap();
    let prog = Program::from_source(
        "neural.nde",
        "param s = 0.2\nnet drift = mlp(1 -> 8 -> 1, tanh, init = glorot(seed = 4))\nbrownian W\nstate x = 0\nx' = drift([x])[0] + s*W\n",
    )
    .unwrap();
    let kernels = SdeKernels::compile(&prog).unwrap();
    let mut p = prog.default_params();
    let mut opts = SdeOptions::new(SdeMethod::EulerMaruyama, 0.0, 2.0);
    opts.dt = Some(0.02);
    let fit = FitOptions {
        optimizer: Optimizer::Lbfgs { lr: 0.1 },
        iters: 80,
        sensitivity: Sensitivity::Discrete,
        adjoint: AdjointOptions::default(),
        l2: 0.0,
        minibatch: None,
    };
    let report = fit_sde(&prog, &kernels, &mut p, &obs, &opts, 100, &fit, |_| Ok(())).unwrap();
    let (first, last) = (report.curve[0], *report.curve.last().unwrap());
    assert!(last < 1e-2 * first, "loss {first} -> {last}");
    assert!((p[0] - 0.5).abs() < 0.1, "s = {}", p[0]);
}
