//! Compile-time scale: parse + check + lower (IR), the sparse Jacobian, and the JIT, for
//! a 1-D heat stencil of N = 10² … 10⁵ states and for a 64→256→256→64 MLP model.
//! Run: `cargo bench --bench compile`. Results go to BENCHMARKS.md.

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use ndec::driver::{self, Source};
use std::time::Duration;

fn heat(n: usize) -> String {
    format!(
        "const N = {n}, D = 0.01, dx = 1/(N+1)\nstate u[N] = sin(3.14159*(i+1)*dx) for i in 0..N\nu[0]' = D*(-2*u[0] + u[1])/dx^2\nu[i]' = D*(u[i-1] - 2*u[i] + u[i+1])/dx^2 for i in 1..N-1\nu[N-1]' = D*(u[N-2] - 2*u[N-1])/dx^2\n"
    )
}

const MLP: &str = "net f = mlp(64 -> 256 -> 256 -> 64, tanh)\nstate u[64] = 0.1\nu' = f(u) - u\n";

fn ir(text: &str) -> ndec::ir::Lowered {
    let m = driver::check(&Source::new("m.nde", text)).expect("valid");
    driver::lower(&m).expect("lowers")
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("compile");
    g.measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_millis(500))
        .sample_size(20);
    for n in [100usize, 1_000, 10_000, 100_000] {
        let text = heat(n);
        g.bench_with_input(BenchmarkId::new("heat_ir", n), &text, |b, t| {
            b.iter(|| ir(t))
        });
        let l = ir(&text);
        g.bench_with_input(BenchmarkId::new("heat_sparse_jacobian", n), &l, |b, l| {
            b.iter(|| ndec::diff::jacobian_sparse(&l.vector_field, "u").expect("sparse"))
        });
        let sj = ndec::diff::jacobian_sparse(&l.vector_field, "u").expect("sparse");
        g.bench_with_input(
            BenchmarkId::new("heat_jit_f_and_jacobian", n),
            &(&l, &sj),
            |b, (l, sj)| {
                b.iter(|| {
                    ndec::backend::cranelift::compile_all(&[&l.vector_field, &sj.function])
                        .expect("jit")
                })
            },
        );
    }
    g.bench_function("mlp_64_256_256_64_ir", |b| b.iter(|| ir(MLP)));
    let l = ir(MLP);
    g.bench_function("mlp_64_256_256_64_jit", |b| {
        b.iter(|| ndec::backend::cranelift::compile(&l.vector_field).expect("jit"))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
