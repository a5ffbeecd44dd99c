//! The spiral demo with the library API: generate data from the true dynamics
//! u' = A u³ (A = [[-0.1, 2], [-2, -0.1]], u0 = [2, 0], 1000 points on [0, 25]) with ndec's
//! own solver, then fit the neural ODE u' = nn(u³) (2 → 50 → 2, tanh) from normal(0, 0.1)
//! weights with Adam on minibatches of short windows (torchdiffeq's scheme), gradients by
//! the discrete adjoint. Run with `cargo run --release --example train_spiral`.

use ndec::program::Program;
use ndec::runtime::{Method, SaveAt, SolveOptions};
use ndec::sensitivity::{AdjointOptions, Kernels, Sensitivity};
use ndec::train::{self, Data, Event, FitOptions, Minibatch, Optimizer, Windows};

const TRUTH: &str = "state u[2] = [2, 0]
u' = [-0.1*u[0]^3 + 2*u[1]^3, -2*u[0]^3 - 0.1*u[1]^3]";

const MODEL: &str = "net nn = mlp(2 -> 50 -> 2, tanh)
state u[2] = [2, 0]
u' = nn(u^3)";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (start, end, iters) = fit_spiral(true)?;
    println!("full-trajectory MSE: {start:.4} at the start, {end:.4} after {iters} iterations");
    Ok(())
}

/// The demo: (full-trajectory MSE at the start, at the end, iterations). `tests/train_demos.rs`
/// runs this same function and checks the end loss.
pub fn fit_spiral(verbose: bool) -> Result<(f64, f64, usize), Box<dyn std::error::Error>> {
    let data = spiral_data()?;
    let prog = Program::from_source("spiral.nde", MODEL)?;
    let mut p = normal_weights(&prog, 0.1, 0);
    let mut opts = SolveOptions::new(Method::Tsit5, 0.0, 25.0);
    opts.rtol = 1e-7;
    opts.atol = vec![1e-9];
    let kernels = Kernels::new(prog);
    let prog = kernels.program();
    let fit = FitOptions {
        optimizer: Optimizer::Adam {
            lr: 0.002,
            clip: None,
            weight_decay: 0.0,
        },
        iters: 3000,
        sensitivity: Sensitivity::Discrete,
        adjoint: AdjointOptions::default(),
        l2: 0.0,
        minibatch: Some(Minibatch::Windows(Windows {
            len: 10,
            batch: 20,
            seed: 0,
        })),
    };
    let report = train::fit(
        &kernels,
        &mut p,
        std::slice::from_ref(&data),
        &opts,
        &fit,
        |e| {
            if let Event::Iter { done, g, .. } = e
                && verbose
                && done % 500 == 0
            {
                println!("iter {done:5}  minibatch loss {:.3e}", g.loss);
            }
            Ok(())
        },
    )?;
    let end = train::loss(prog, &p, std::slice::from_ref(&data), &opts)?;
    Ok((report.curve[0], end, report.iters))
}

/// 1000 observations of the true spiral, solved at tight tolerance.
fn spiral_data() -> Result<Data, Box<dyn std::error::Error>> {
    let truth = Program::from_source("truth.nde", TRUTH)?;
    let p = truth.default_params();
    let times: Vec<f64> = (0..1000).map(|i| 25.0 * i as f64 / 999.0).collect();
    let mut opts = SolveOptions::new(Method::Vern7, 0.0, 25.0);
    opts.rtol = 1e-12;
    opts.atol = vec![1e-12];
    opts.saveat = SaveAt::Times(times.clone());
    let sol = truth.solve(&p, &truth.initial_state(&p), &opts)?;
    Ok(Data {
        traj: None,
        fixed: Vec::new(),
        values: (0..sol.len())
            .map(|r| sol.row(r).iter().map(|v| Some(*v)).collect())
            .collect(),
        times,
        columns: vec![(0, "u[0]".into()), (1, "u[1]".into())],
    })
}

/// Weights drawn from normal(0, sd) (Philox, keyed by seed), biases zero.
fn normal_weights(prog: &Program, sd: f64, seed: u64) -> Vec<f64> {
    let mut p = prog.default_params();
    let rng = ndec::rng::Stream::new(seed, 0);
    for layer in prog.layout.nets.iter().flat_map(|n| &n.layers) {
        for k in 0..layer.rows * layer.cols {
            p[layer.weight + k] = sd * rng.normal((layer.weight + k) as u64);
        }
        p[layer.bias..layer.bias + layer.rows].fill(0.0);
    }
    p
}
