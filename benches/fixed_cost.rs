//! The fixed cost of one solve and its gradient, apart from the steps' own arithmetic:
//! what every window of a minibatch, every trajectory of a batch and every call from Python
//! pays once (issue 12).
//!
//! `cargo bench --bench fixed_cost -- --warm-up-time 1 --measurement-time 3`
//!
//! - `one_step/*`: a 2-state linear model `u' = -a·u`, one fixed tsit5 step from t = 0 to
//!   0.1: the plain solve, the solve plus its discrete-adjoint gradient (the training path,
//!   `sensitivity::gradient`), and the same through the library facade (`Model::solve_vjp`
//!   then `Pullback::apply`). What is left after the step's 6 vector-field calls and their
//!   VJPs is the per-solve fixed cost.
//! - `spiral_minibatch/*`: the issue-5 spiral net (2 → 50 → 2, tanh), one minibatch
//!   gradient of 1 and of 20 windows of 10 observations (adaptive tsit5, rtol 1e-7, atol
//!   1e-9), as `ndec train --batch-time 10` runs it.

use criterion::{Criterion, criterion_group, criterion_main};
use ndec::runtime::{Method, SaveAt, SolveOptions};
use ndec::sensitivity::{self, AdjointOptions, Cotangent, Sensitivity, Start};
use ndec::{Options, Values};
use std::hint::black_box;

const LINEAR: &str = "model decay
param a = 0.5
state u[2] = [1, 2]
u' = -a*u
";

fn one_step(c: &mut Criterion) {
    let model = ndec::compile_source("decay.nde", LINEAR).expect("compiles");
    let prog = model.program();
    let kernels = model.kernels();
    kernels
        .prepare(Sensitivity::Discrete)
        .expect("adjoint kernels");
    let mut opts = SolveOptions::new(Method::Tsit5, 0.0, 0.1);
    opts.adaptive = false;
    opts.dt = Some(0.1);
    opts.saveat = SaveAt::Times(vec![0.0, 0.1]);
    let (p, u0) = (vec![0.5], vec![1.0, 2.0]);
    let seeds = [0.0, 0.0, 1.0, -1.0];
    let mut g = c.benchmark_group("one_step");
    g.bench_function("solve", |b| {
        b.iter(|| black_box(prog.solve(&p, &u0, &opts).expect("solves")))
    });
    g.bench_function("solve_and_discrete_gradient", |b| {
        b.iter(|| {
            let loss = Cotangent(&seeds);
            let start = Start::State(&u0);
            let adj = AdjointOptions::default();
            let d = Sensitivity::Discrete;
            black_box(sensitivity::gradient(kernels, d, &p, start, &opts, &loss, adj).unwrap())
        })
    });
    let o = Options {
        method: Some("tsit5".into()),
        dt: Some(0.1),
        sensitivity: Some("discrete".into()),
        ..Options::default()
    };
    let ts = [0.0, 0.1];
    g.bench_function("facade_solve_vjp_and_apply", |b| {
        b.iter(|| {
            let (y, pb) = model
                .solve_vjp(&ts, Values::one(&p), Some(Values::one(&u0)), &o)
                .expect("solves");
            black_box(y);
            black_box(pb.apply(&seeds).expect("pulls back"))
        })
    });
    g.finish();
}

fn spiral_minibatch(c: &mut Criterion) {
    let root = env!("CARGO_MANIFEST_DIR");
    let model = ndec::compile(format!("{root}/bench/models/spiral_train.nde")).expect("compiles");
    let prog = model.program();
    let names = prog.model.row_names();
    let text = std::fs::read_to_string(format!("{root}/bench/spiral/data.csv")).expect("data");
    let data = ndec::train::parse_data(&text, &names).expect("parses");
    let w0 = model
        .load_params(format!("{root}/bench/spiral/w0.json"))
        .expect("params");
    let kernels = model.kernels();
    kernels
        .prepare(Sensitivity::Discrete)
        .expect("adjoint kernels");
    let mut opts = SolveOptions::new(Method::Tsit5, 0.0, 25.0);
    opts.rtol = 1e-7;
    opts.atol = vec![1e-9];
    let windows = ndec::train::Windows {
        len: 10,
        batch: 20,
        seed: 0,
    };
    let candidates = windows.candidates(&data[0], prog.dim());
    let starts = windows.draw(&candidates, 0);
    let mut g = c.benchmark_group("spiral_minibatch");
    for count in [1, 20] {
        g.bench_function(format!("windows_{count}_of_10"), |b| {
            b.iter(|| {
                black_box(
                    ndec::train::window_loss_and_gradient(
                        kernels,
                        Sensitivity::Discrete,
                        &w0,
                        &data[0],
                        &opts,
                        AdjointOptions::default(),
                        &starts[..count],
                        windows.len,
                    )
                    .expect("gradient"),
                )
            })
        });
    }
    g.finish();
}

criterion_group!(benches, one_step, spiral_minibatch);
criterion_main!(benches);
