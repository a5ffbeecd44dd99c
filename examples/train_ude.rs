//! A universal differential equation with the library API: Lotka–Volterra whose
//! interaction terms are unknown. The known physics (prey growth αx, predator death −δy)
//! is written out; an MLP learns the rest from six time units of data (a little over one
//! period), and the fitted model is then run to t = 15 and compared with the truth it never
//! saw. Training: Adam on minibatches of short windows, then L-BFGS on the whole data.
//! Run with `cargo run --release --example train_ude`.

use ndec::program::Program;
use ndec::runtime::{Method, SaveAt, SolveOptions};
use ndec::sensitivity::{AdjointOptions, Kernels, Sensitivity};
use ndec::train::{self, Data, FitOptions, Minibatch, Optimizer, Windows};

const TRUTH: &str = "param alpha = 1.3, beta = 0.9, gamma = 0.8, delta = 1.8
state x = 0.44249296
state y = 4.6280594
x' = alpha*x - beta*x*y
y' = gamma*x*y - delta*y";

const UDE: &str = "const alpha = 1.3, delta = 1.8
net nn = mlp(2 -> 16 -> 16 -> 2, tanh, init = glorot(seed = 1))
state x = 0.44249296
state y = 4.6280594
let z = nn([x, y])
x' = alpha*x + z[0]
y' = -delta*y + z[1]";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let r = fit_ude()?;
    println!(
        "fit MSE on [0, 6]: {:.3e}; RMS error against the truth on (6, 15]: {:.3e} (the untrained model: {:.3e})",
        r.fit_loss, r.extrapolation_rms, r.untrained_rms
    );
    Ok(())
}

pub struct UdeResult {
    pub fit_loss: f64,
    pub extrapolation_rms: f64,
    pub untrained_rms: f64,
}

/// The demo; `tests/train_demos.rs` runs this same function and checks its numbers.
pub fn fit_ude() -> Result<UdeResult, Box<dyn std::error::Error>> {
    let truth = Program::from_source("truth.nde", TRUTH)?;
    let times: Vec<f64> = (0..=150).map(|i| i as f64 * 0.1).collect();
    let reference = solve(&truth, &truth.default_params(), &times, 1e-12)?;
    let seen = times.iter().filter(|t| **t <= 6.0 + 1e-9).count();
    let data = Data {
        traj: None,
        fixed: Vec::new(),
        times: times[..seen].to_vec(),
        columns: vec![(0, "x".into()), (1, "y".into())],
        values: reference[..seen]
            .iter()
            .map(|row| row.iter().map(|v| Some(*v)).collect())
            .collect(),
    };
    let prog = Program::from_source("ude.nde", UDE)?;
    let mut p = prog.default_params();
    let untrained_rms = rms_after(&solve(&prog, &p, &times, 1e-9)?, &reference, seen);
    let mut opts = SolveOptions::new(Method::Tsit5, 0.0, 6.0);
    opts.rtol = 1e-7;
    opts.atol = vec![1e-9];
    let kernels = Kernels::new(prog);
    let prog = kernels.program();
    let mut stage = FitOptions {
        optimizer: Optimizer::Adam {
            lr: 0.01,
            clip: None,
            weight_decay: 0.0,
        },
        iters: 3000,
        sensitivity: Sensitivity::Discrete,
        adjoint: AdjointOptions::default(),
        l2: 0.0,
        minibatch: Some(Minibatch::Windows(Windows {
            len: 10,
            batch: 10,
            seed: 0,
        })),
    };
    train::fit(
        &kernels,
        &mut p,
        std::slice::from_ref(&data),
        &opts,
        &stage,
        |_| Ok(()),
    )?;
    stage.optimizer = Optimizer::Lbfgs { lr: 0.01 };
    stage.iters = 2000;
    stage.minibatch = None;
    train::fit(
        &kernels,
        &mut p,
        std::slice::from_ref(&data),
        &opts,
        &stage,
        |_| Ok(()),
    )?;
    let fit_loss = train::loss(prog, &p, std::slice::from_ref(&data), &opts)?;
    let extrapolation_rms = rms_after(&solve(prog, &p, &times, 1e-9)?, &reference, seen);
    Ok(UdeResult {
        fit_loss,
        extrapolation_rms,
        untrained_rms,
    })
}

/// The state at `times` (rows).
fn solve(
    prog: &Program,
    p: &[f64],
    times: &[f64],
    tol: f64,
) -> Result<Vec<Vec<f64>>, Box<dyn std::error::Error>> {
    let mut opts = SolveOptions::new(Method::Tsit5, 0.0, *times.last().unwrap_or(&0.0));
    opts.rtol = tol;
    opts.atol = vec![tol];
    opts.saveat = SaveAt::Times(times.to_vec());
    let sol = prog.solve(p, &prog.initial_state(p), &opts)?;
    Ok((0..sol.len()).map(|r| sol.row(r).to_vec()).collect())
}

/// RMS over both states of the rows from `from` on.
fn rms_after(a: &[Vec<f64>], b: &[Vec<f64>], from: usize) -> f64 {
    let (mut sum, mut count) = (0.0, 0);
    for (ra, rb) in a[from..].iter().zip(&b[from..]) {
        for (x, y) in ra.iter().zip(rb) {
            sum += (x - y).powi(2);
            count += 1;
        }
    }
    (sum / count.max(1) as f64).sqrt()
}
