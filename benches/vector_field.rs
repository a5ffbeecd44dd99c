//! One vector-field call: the Cranelift JIT (through `Kernel::call`), the interpreter, and
//! hand-written Rust called through a function pointer; plus the JIT compile time.
//!
//! `cargo bench --bench vector_field -- --warm-up-time 1 --measurement-time 3`

use criterion::{Criterion, criterion_group, criterion_main};
use ndec::backend::Kernel;
use ndec::backend::cranelift;
use ndec::backend::interp::Interpreted;
use ndec::driver::{Source, check, lower};
use ndec::ir::Function;
use std::hint::black_box;

const LV: &str = "model lv
state x = 1.0
state y = 1.0
x' = 1.5*x - x*y
y' = -3*y + x*y
";

const LORENZ: &str = "model lorenz
param sigma = 10.0
param rho = 28.0
const beta = 8/3
state x = 1.0
state y = 0.0
state z = 0.0
x' = sigma*(y - x)
y' = x*(rho - z) - y
z' = x*y - beta*z
";

const CHAIN: &str = "model chain
const N = 100
state u[N] = 1.0
u[0]' = -u[0]
u[i]' = u[i-1] - u[i] for i in 1..N
";

const MLP: &str = "model mlp
net nn = mlp(2 -> 50 -> 2, tanh)
state u[2] = [1.0, 0.5]
u' = nn(u)
";

type Hand = fn(&[f64], &[f64], &mut [f64]);

fn lv(u: &[f64], _p: &[f64], du: &mut [f64]) {
    let (x, y) = (u[0], u[1]);
    du[0] = 1.5 * x - x * y;
    du[1] = -3.0 * y + x * y;
}

fn lorenz(u: &[f64], p: &[f64], du: &mut [f64]) {
    let (x, y, z) = (u[0], u[1], u[2]);
    let (sigma, rho, beta) = (p[0], p[1], 8.0 / 3.0);
    du[0] = sigma * (y - x);
    du[1] = x * (rho - z) - y;
    du[2] = x * y - beta * z;
}

fn chain(u: &[f64], _p: &[f64], du: &mut [f64]) {
    du[0] = -u[0];
    for i in 1..100 {
        du[i] = u[i - 1] - u[i];
    }
}

fn mlp(u: &[f64], p: &[f64], du: &mut [f64]) {
    // p: W1 (50×2), b1 (50), W2 (2×50), b2 (2).
    let (w1, b1, w2, b2) = (&p[0..100], &p[100..150], &p[150..250], &p[250..252]);
    let mut h = [0.0; 50];
    for r in 0..50 {
        // ndec's own tanh (what the generated code calls), so both compute the same numbers.
        h[r] = ndec::math::tanh(w1[2 * r] * u[0] + w1[2 * r + 1] * u[1] + b1[r]);
    }
    for r in 0..2 {
        let row = &w2[50 * r..50 * r + 50];
        let mut s = row[0] * h[0];
        for j in 1..50 {
            s += row[j] * h[j];
        }
        du[r] = s + b2[r];
    }
}

struct Case {
    name: &'static str,
    f: Function,
    u: Vec<f64>,
    p: Vec<f64>,
    hand: Hand,
}

fn case(name: &'static str, text: &str, hand: Hand) -> Case {
    let src = Source::new(format!("{name}.nde"), text);
    let model = check(&src).unwrap_or_else(|d| panic!("{name}: {d:?}"));
    let lowered = lower(&model).unwrap();
    let p = ndec::params::defaults(&model, &lowered.layout);
    let n = lowered.vector_field.args[1].len;
    let u: Vec<f64> = (0..n).map(|i| 0.5 + 0.01 * i as f64).collect();
    Case {
        name,
        f: lowered.vector_field,
        u,
        p,
        hand,
    }
}

fn bench(c: &mut Criterion) {
    let cases = [
        case("lotka_volterra", LV, lv),
        case("lorenz", LORENZ, lorenz),
        case("chain100", CHAIN, chain),
        case("mlp_2_50_2", MLP, mlp),
    ];
    for k in &cases {
        let jit = cranelift::compile(&k.f).unwrap();
        let interp = Interpreted::new(k.f.clone());
        let t = [0.0];
        let args: [&[f64]; 3] = [&t, &k.u, &k.p];
        let n = k.u.len();
        // The three agree (the hand-written MLP sums in the same order as the IR).
        let mut a = vec![0.0; n];
        let mut b = vec![0.0; n];
        jit.call(&args, &mut [&mut a], &mut Vec::new());
        (k.hand)(&k.u, &k.p, &mut b);
        assert_eq!(a, b, "{}: hand-written Rust and JIT differ", k.name);

        let mut g = c.benchmark_group(k.name);
        let mut du = vec![0.0; n];
        let mut scratch = vec![0.0; jit.scratch_len()];
        g.bench_function("jit", |bch| {
            bch.iter(|| jit.call(black_box(&args), &mut [&mut du], &mut scratch))
        });
        let ap = [t.as_ptr(), k.u.as_ptr(), k.p.as_ptr()];
        let op = [du.as_mut_ptr()];
        let sp = scratch.as_mut_ptr();
        g.bench_function("jit_raw", |bch| {
            // SAFETY: the buffers have the kernel's lengths (checked by the call above).
            bch.iter(|| unsafe { jit.call_raw(black_box(ap.as_ptr()), op.as_ptr(), sp) })
        });
        g.bench_function("interp", |bch| {
            bch.iter(|| interp.call(black_box(&args), &mut [&mut du], &mut scratch))
        });
        let hand: Hand = black_box(k.hand);
        g.bench_function("rust_fn_ptr", |bch| {
            bch.iter(|| hand(black_box(&k.u), black_box(&k.p), &mut du))
        });
        g.bench_function("jit_compile", |bch| {
            bch.iter(|| cranelift::compile(black_box(&k.f)).unwrap())
        });
        g.finish();
    }
}

/// The widths users train (issue 13): one vector-field call and one VJP call of
/// u' = 0.2·nn(u) − 0.1·u, nn = n → h → h → n (tanh), and faer's matrix–vector products of
/// the same three shapes (the machine's limit for the matvec part), so the GFLOP/s of each
/// can be compared: a forward call is 2·(nh + h² + hn) flops plus 2h tanh.
fn wide(c: &mut Criterion) {
    for (n, h) in [(8usize, 64usize), (64, 256), (128, 512)] {
        let text = format!(
            "net nn = mlp({n} -> {h} -> {h} -> {n}, tanh, init = glorot(seed = 1))\nstate u[{n}] = 0.5\nu' = 0.2*nn(u) - 0.1*u\n"
        );
        let k = case("wide", &text, lv);
        let vjp = ndec::diff::vjp(&k.f, &["u", "p"], false);
        let jits = cranelift::compile_all(&[&k.f, &vjp]).unwrap();
        let t = [0.0];
        let w: Vec<f64> = (0..n).map(|i| 1.0 - 0.01 * i as f64).collect();
        let (mut du, mut gu, mut gp) = (vec![0.0; n], vec![0.0; n], vec![0.0; k.p.len()]);
        let mut scratch = Vec::new();
        let mut g = c.benchmark_group(format!("mlp_{n}_{h}_{h}_{n}"));
        g.bench_function("jit_vector_field", |b| {
            b.iter(|| jits[0].call(black_box(&[&t, &k.u, &k.p]), &mut [&mut du], &mut scratch))
        });
        g.bench_function("jit_vjp", |b| {
            b.iter(|| {
                jits[1].call(
                    black_box(&[&t, &k.u, &k.p, &w]),
                    &mut [&mut gu, &mut gp],
                    &mut scratch,
                )
            })
        });
        let mats: Vec<faer::Mat<f64>> = [(h, n), (h, h), (n, h)]
            .iter()
            .map(|&(r, c)| faer::Mat::from_fn(r, c, |i, j| ((i * 7 + j * 3) % 11) as f64 * 0.01))
            .collect();
        let xs: Vec<faer::Mat<f64>> = [n, h, h]
            .iter()
            .map(|&c| faer::Mat::from_fn(c, 1, |i, _| i as f64 * 0.001))
            .collect();
        let mut ys: Vec<faer::Mat<f64>> =
            [h, h, n].iter().map(|&r| faer::Mat::zeros(r, 1)).collect();
        g.bench_function("faer_three_matvecs", |b| {
            b.iter(|| {
                for ((m, x), y) in mats.iter().zip(&xs).zip(ys.iter_mut()) {
                    faer::linalg::matmul::matmul(
                        y.as_mut(),
                        faer::Accum::Replace,
                        black_box(m.as_ref()),
                        x.as_ref(),
                        1.0,
                        faer::Par::Seq,
                    );
                }
            })
        });
        g.finish();
    }
}

criterion_group!(benches, bench, wide);
criterion_main!(benches);
