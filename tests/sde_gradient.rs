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
