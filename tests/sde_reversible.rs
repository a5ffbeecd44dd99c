//! Gradients of SDE losses on a fixed Brownian path through reversible Heun: the reversible
//! adjoint (states reconstructed backward from the final one) agrees with central differences
//! of the same loss, and with the discrete adjoint through stored steps to rounding, on GBM,
//! Ornstein–Uhlenbeck, a neural SDE, scalar, diagonal and general noise, Itô and Stratonovich
//! models, on the grid path and on the Brownian tree. The reconstruction error at t0 is
//! printed (`cargo test --test sde_reversible -- --nocapture`).

use ndec::program::Program;
use ndec::runtime::SaveAt;
use ndec::runtime::sde::{BrownianKind, SdeMethod, SdeOptions};
use ndec::sensitivity::reversible_heun::{Backward, Reversal, gradient};
use ndec::sensitivity::sde::{SdeKernels, path_gradient};
use ndec::sensitivity::{GradientError, RowLoss, Sensitivity, Start};

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

const GBM: &str =
    "param mu = 0.4, sigma = 0.6, x0 = 1.1\nbrownian W\nstate x = x0\nx' = mu*x + sigma*x*W\n";
const OU: &str =
    "param theta = 2.0, m = 1.0, s = 0.5\nbrownian W\nstate x = 0.2\nx' = theta*(m - x) + s*W\n";
/// MLP drift, diagonal multiplicative noise.
const NEURAL: &str = "param s = 0.3\nnet f = mlp(2 -> 5 -> 2, tanh, init = glorot(seed = 2))\nbrownian W1, W2\nstate u[2] = [1, 0.5]\nu' = f(u) + s*u*[W1, W2]\n";
/// One Wiener process driving two states (G is 2 × 1), declared Stratonovich.
const SCALAR_STRAT: &str = "param a = 0.7, b = 0.4, c = 0.3\nbrownian stratonovich W\nstate x = 1\nstate y = 0.5\nx' = -a*x + b*y + c*y*W\ny' = -x*y + c*sin(x)*W\n";
/// General (non-diagonal, non-commutative) noise, Itô: the Stratonovich drift the method
/// steps with carries the symbolic correction.
const GENERAL: &str = "param a = 0.5, b = 0.3\nbrownian W1, W2\nstate x = 1\nstate y = -0.5\nx' = -a*x + b*y*W1 + 0.2*x*W2\ny' = -y + b*x*W1 - 0.1*tanh(y)*W2\n";

fn opts(path: BrownianKind, saveat: SaveAt, traj: u64) -> SdeOptions {
    let mut o = SdeOptions::new(SdeMethod::ReversibleHeun, 0.0, 1.0);
    o.dt = Some(0.01);
    o.saveat = saveat;
    o.seed = 11;
    o.traj = traj;
    o.path = Some(path);
    o
}

fn reversal(prog: &Program, k: &SdeKernels, p: &[f64], o: &SdeOptions, b: Backward) -> Reversal {
    gradient(prog, k, p, Start::Model, o, &ToTarget, b).unwrap_or_else(|e| panic!("{e}"))
}

/// The reversible adjoint against central differences of the loss (and the stored adjoint),
/// for both Brownian paths and two kinds of save points.
fn check(name: &str, text: &str) {
    let prog = Program::from_source("sde.nde", text).unwrap_or_else(|e| panic!("{e}"));
    let kernels = SdeKernels::compile(&prog).unwrap();
    let p = prog.default_params();
    for path in [BrownianKind::Grid, BrownianKind::Tree] {
        for saveat in [SaveAt::Every(0.125), SaveAt::Times(vec![0.3, 0.555, 1.0])] {
            let o = opts(path, saveat, 3);
            let rev = reversal(&prog, &kernels, &p, &o, Backward::Reconstruct);
            // The forward replay is the solver's trajectory: the same loss from its rows.
            let sol = prog.solve_sde(&p, &prog.initial_state(&p), &o).unwrap();
            let mut scratch = vec![0.0; sol.sol.u.len()];
            let solver = ToTarget.eval(&sol.sol.t, &sol.sol.u, prog.dim(), &mut scratch, &mut []);
            assert_eq!(
                rev.gradient.loss, solver,
                "{name}: replayed loss vs the solver's"
            );
            against_stored(name, &prog, &kernels, &p, &o, &rev);
            against_central_differences(name, &prog, &kernels, &p, &o, &rev.gradient.grad);
        }
    }
}

/// Reversible vs stored: the same algebra on states that differ by the reconstruction's
/// rounding. Each reversed step rounds at a few ulps of states of order 1 and these models
/// are contractive or mildly expanding over t ∈ [0, 1], so 100 reversed steps stay below
/// 1e-13 (measured: at most 5e-15); gradients evaluated on states that close agree to ~1e-15
/// relative (measured), and 1e-10 (the bound the issue asks for) leaves the margin for the
/// derivatives' own conditioning.
fn against_stored(
    name: &str,
    prog: &Program,
    k: &SdeKernels,
    p: &[f64],
    o: &SdeOptions,
    rev: &Reversal,
) {
    let stored = reversal(prog, k, p, o, Backward::Stored);
    assert_eq!(stored.gradient.loss, rev.gradient.loss);
    assert_eq!(stored.reconstruction_error, 0.0);
    let scale = stored
        .gradient
        .grad
        .iter()
        .fold(0.0f64, |a, g| a.max(g.abs()));
    let diff = (stored.gradient.grad.iter())
        .zip(&rev.gradient.grad)
        .fold(0.0f64, |a, (s, r)| a.max((s - r).abs()));
    println!(
        "{name} ({:?}, {:?}): reconstruction error at t0 {:.2e}, |reversible − stored| / |stored| = {:.2e}",
        o.path.unwrap(),
        o.saveat,
        rev.reconstruction_error,
        diff / scale
    );
    assert!(
        rev.reconstruction_error < 1e-13,
        "{name}: reconstruction error {}",
        rev.reconstruction_error
    );
    assert!(
        diff <= 1e-10 * scale,
        "{name}: reversible {:?} vs stored {:?}",
        rev.gradient.grad,
        stored.gradient.grad
    );
}

/// Central differences with h = 1e-6·max(|p|, 1e-2): truncation O(h²) and cancellation
/// O(ε·L/h) are both below 1e-8 of the gradient here, so 1e-6 relative is a real check.
fn against_central_differences(
    name: &str,
    prog: &Program,
    k: &SdeKernels,
    p: &[f64],
    o: &SdeOptions,
    grad: &[f64],
) {
    for i in 0..p.len() {
        let h = 1e-6 * p[i].abs().max(1e-2);
        let (mut pp, mut pm) = (p.to_vec(), p.to_vec());
        pp[i] += h;
        pm[i] -= h;
        let lp = reversal(prog, k, &pp, o, Backward::Reconstruct)
            .gradient
            .loss;
        let lm = reversal(prog, k, &pm, o, Backward::Reconstruct)
            .gradient
            .loss;
        let fd = (lp - lm) / (2.0 * h);
        let scale = grad[i].abs().max(fd.abs()).max(1e-8);
        assert!(
            (grad[i] - fd).abs() / scale < 1e-6,
            "{name}, param {i}: reversible adjoint {} vs central difference {fd}",
            grad[i]
        );
    }
}

#[test]
fn gbm_reversible_gradient_matches_central_differences() {
    check("GBM", GBM);
}

#[test]
fn ornstein_uhlenbeck_reversible_gradient_matches_central_differences() {
    check("OU", OU);
}

#[test]
fn neural_sde_reversible_gradient_matches_central_differences() {
    check("neural (diagonal noise)", NEURAL);
}

#[test]
fn scalar_noise_stratonovich_reversible_gradient_matches_central_differences() {
    check("scalar noise, Stratonovich", SCALAR_STRAT);
}

#[test]
fn general_noise_reversible_gradient_matches_central_differences() {
    check("general noise", GENERAL);
}

/// A gradient with respect to the initial state only, and from a given start state (no
/// gradient flows into it): the start's cotangent is handled like the EM adjoint's.
#[test]
fn start_states_are_differentiated_only_when_they_depend_on_params() {
    let prog = Program::from_source("gbm.nde", GBM).unwrap();
    let k = SdeKernels::compile(&prog).unwrap();
    let p = prog.default_params();
    let o = opts(BrownianKind::Grid, SaveAt::Ends, 0);
    let model = reversal(&prog, &k, &p, &o, Backward::Reconstruct);
    let given = gradient(
        &prog,
        &k,
        &p,
        Start::State(&[1.1]),
        &o,
        &ToTarget,
        Backward::Reconstruct,
    )
    .unwrap();
    assert_eq!(model.gradient.loss, given.gradient.loss);
    // mu and sigma do not see the difference; x0 does (GBM's x(1) is proportional to x0).
    assert_eq!(model.gradient.grad[..2], given.gradient.grad[..2]);
    assert_eq!(given.gradient.grad[2], 0.0);
    assert!(
        model.gradient.grad[2].abs() > 1e-3,
        "{:?}",
        model.gradient.grad
    );
}

/// The sensitivity choice: reversible_heun takes `reversible` and `discrete`, euler_maruyama
/// only `discrete`; the others are refused with a message naming what works.
#[test]
fn path_gradient_routes_each_method_to_its_adjoints() {
    let prog = Program::from_source("gbm.nde", GBM).unwrap();
    let k = SdeKernels::compile(&prog).unwrap();
    let p = prog.default_params();
    let rh = opts(BrownianKind::Grid, SaveAt::Ends, 1);
    let g = |o: &SdeOptions, s| path_gradient(&prog, &k, &p, Start::Model, o, &ToTarget, s);
    let rev = g(&rh, Sensitivity::Reversible).unwrap();
    let disc = g(&rh, Sensitivity::Discrete).unwrap();
    assert_eq!(rev.loss, disc.loss);
    let mut em = rh.clone();
    em.method = SdeMethod::EulerMaruyama;
    em.path = None;
    assert!(g(&em, Sensitivity::Discrete).is_ok());
    match g(&em, Sensitivity::Reversible) {
        Err(GradientError::Unsupported(m)) => assert!(m.contains("reversible_heun"), "{m}"),
        other => panic!("{other:?}"),
    }
    let mut mil = em.clone();
    mil.method = SdeMethod::Milstein;
    assert!(matches!(
        g(&mil, Sensitivity::Discrete),
        Err(GradientError::Unsupported(_))
    ));
}

/// The moment-matching loss through reversible_heun: its gradient (every path's reversible
/// adjoint with the ensemble moments' cotangents) agrees with central differences, and with
/// the stored-steps adjoint to rounding.
#[test]
fn moment_matching_through_reversible_heun_matches_central_differences() {
    use ndec::train::{Data, Moments, moment_loss_and_gradient};
    let truth = Program::from_source("ou.nde", OU).unwrap();
    let pt = truth.default_params();
    let times: Vec<f64> = (1..=4).map(|i| i as f64 * 0.25).collect();
    let data: Vec<Data> = (0..60)
        .map(|k| {
            let mut o = opts(BrownianKind::Grid, SaveAt::Times(times.clone()), k);
            o.seed = 100;
            let sol = truth.solve_sde(&pt, &truth.initial_state(&pt), &o).unwrap();
            Data {
                traj: Some(k as usize),
                fixed: Vec::new(),
                times: sol.sol.t.clone(),
                columns: vec![(0, "x".into())],
                values: (0..sol.sol.len())
                    .map(|r| vec![Some(sol.sol.row(r)[0])])
                    .collect(),
            }
        })
        .collect();
    let obs = Moments::of(&data, 1).unwrap();
    let prog = Program::from_source("ou.nde", &OU.replace("theta = 2.0", "theta = 1.3")).unwrap();
    let k = SdeKernels::compile(&prog).unwrap();
    let p = prog.default_params();
    let o = opts(BrownianKind::Grid, SaveAt::Ends, 0);
    let g = |q: &[f64], s| moment_loss_and_gradient(&prog, &k, q, &obs, &o, 30, s).unwrap();
    let rev = g(&p, Sensitivity::Reversible);
    let stored = g(&p, Sensitivity::Discrete);
    for i in 0..p.len() {
        let scale = rev.grad[i].abs();
        assert!((rev.grad[i] - stored.grad[i]).abs() <= 1e-10 * scale);
        let h = 1e-6 * p[i];
        let (mut pp, mut pm) = (p.clone(), p.clone());
        pp[i] += h;
        pm[i] -= h;
        let fd = (g(&pp, Sensitivity::Reversible).loss - g(&pm, Sensitivity::Reversible).loss)
            / (2.0 * h);
        assert!(
            (rev.grad[i] - fd).abs() / scale.max(fd.abs()) < 1e-6,
            "param {i}: {} vs {fd}",
            rev.grad[i]
        );
    }
}
