//! diffsol peer for ndec's side-by-side benchmarks.
//!
//! Every model is written in DiffSL and JIT-compiled by diffsol's Cranelift backend
//! (`CraneliftJitModule`, cargo feature `diffsl-cranelift`). The compile is timed once; then
//! each repetition builds a fresh solver from the compiled problem and steps it to `t1`
//! (`set_stop_time` + `step` until `TstopReached`), keeping only the end state, the same work
//! `ndec run --repeat K` times. Warm-up repetitions are excluded from the statistics.
//!
//! Usage:
//!   diffsol-bench lv    [--repeat K] [--warmup W] [--t1 T] [--rtol R] [--atol A] [--la nalgebra|faer]
//!   diffsol-bench rober [--repeat K] [--warmup W] [--t1 T] [--rtol R] [--atol A]
//!   diffsol-bench heat  [--repeat K] [--warmup W] [--t1 T] [--rtol R] [--atol A] [--n N]
//!
//! Prints one JSON line per run on stdout.

use diffsol::{
    CraneliftJitModule, FaerMat, FaerSparseLU, FaerSparseMat, Matrix, NalgebraLU, NalgebraMat,
    OdeBuilder, OdeSolverMethod, OdeSolverStopReason, Vector,
};
use std::time::Instant;

type CG = CraneliftJitModule;

struct Args {
    model: String,
    repeat: usize,
    warmup: usize,
    t1: Option<f64>,
    rtol: Option<f64>,
    atol: Option<f64>,
    n: usize,
    la: String,
}

fn parse_args() -> Args {
    let mut it = std::env::args().skip(1);
    let model = it.next().unwrap_or_else(|| usage("missing model"));
    let mut a = Args {
        model,
        repeat: 0,
        warmup: 0,
        t1: None,
        rtol: None,
        atol: None,
        n: 1000,
        la: "nalgebra".into(),
    };
    while let Some(flag) = it.next() {
        let mut val = || it.next().unwrap_or_else(|| usage(&format!("{flag} needs a value")));
        match flag.as_str() {
            "--repeat" => a.repeat = val().parse().unwrap_or_else(|_| usage("bad --repeat")),
            "--warmup" => a.warmup = val().parse().unwrap_or_else(|_| usage("bad --warmup")),
            "--t1" => a.t1 = Some(val().parse().unwrap_or_else(|_| usage("bad --t1"))),
            "--rtol" => a.rtol = Some(val().parse().unwrap_or_else(|_| usage("bad --rtol"))),
            "--atol" => a.atol = Some(val().parse().unwrap_or_else(|_| usage("bad --atol"))),
            "--n" => a.n = val().parse().unwrap_or_else(|_| usage("bad --n")),
            "--la" => a.la = val(),
            _ => usage(&format!("unknown flag {flag}")),
        }
    }
    a
}

fn usage(msg: &str) -> ! {
    eprintln!("diffsol-bench: {msg}");
    eprintln!("usage: diffsol-bench lv|rober|heat [--repeat K] [--warmup W] [--t1 T] [--rtol R] [--atol A] [--n N] [--la nalgebra|faer]");
    std::process::exit(2)
}

/// Timings in microseconds, sorted.
struct Timing {
    sorted_us: Vec<f64>,
}

impl Timing {
    fn measure(warmup: usize, repeat: usize, mut f: impl FnMut()) -> Self {
        for _ in 0..warmup {
            f();
        }
        let mut v = Vec::with_capacity(repeat);
        for _ in 0..repeat.max(1) {
            let t = Instant::now();
            f();
            v.push(t.elapsed().as_secs_f64() * 1e6);
        }
        v.sort_by(f64::total_cmp);
        Timing { sorted_us: v }
    }
    fn min(&self) -> f64 {
        self.sorted_us[0]
    }
    fn median(&self) -> f64 {
        self.sorted_us[self.sorted_us.len() / 2]
    }
    fn mean(&self) -> f64 {
        self.sorted_us.iter().sum::<f64>() / self.sorted_us.len() as f64
    }
}

fn json_f64s(v: &[f64]) -> String {
    let items: Vec<String> = v.iter().map(|x| format!("{x:e}")).collect();
    format!("[{}]", items.join(","))
}

#[allow(clippy::too_many_arguments)]
fn report(
    model: &str,
    method: &str,
    la: &str,
    params: &str,
    compile_ms: f64,
    t: &Timing,
    steps: usize,
    rejected: usize,
    extra: &str,
    end: &[f64],
) {
    println!(
        "{{\"tool\":\"diffsol\",\"version\":\"0.18.0\",\"backend\":\"diffsl-cranelift\",\"model\":\"{model}\",\"method\":\"{method}\",\"la\":\"{la}\",{params},\"repeat\":{},\"solve_us_min\":{:.3},\"solve_us_median\":{:.3},\"solve_us_mean\":{:.3},\"steps\":{steps},\"rejected\":{rejected},{extra}\"compile_ms\":{:.3},\"end_state\":{}}}",
        t.sorted_us.len(),
        t.min(),
        t.median(),
        t.mean(),
        compile_ms,
        json_f64s(end)
    );
}

/// Solve to t1 keeping only the end state: returns (state, steps, error-test failures).
macro_rules! solve_to_end {
    ($solver:expr, $t1:expr) => {{
        let mut s = $solver;
        s.set_stop_time($t1).expect("set_stop_time");
        loop {
            match s.step().expect("step failed") {
                OdeSolverStopReason::TstopReached => break,
                OdeSolverStopReason::InternalTimestep => {}
                OdeSolverStopReason::RootFound(..) => panic!("unexpected root"),
            }
        }
        let st = s.get_statistics();
        let (steps, fails) = (st.number_of_steps, st.number_of_error_test_failures);
        let y = s.state().y.clone_as_vec();
        (y, steps, fails)
    }};
}

const LV_CODE: &str = "
a { 1.5 } b { 1.0 } c { 3.0 } d { 1.0 }
u_i { x = 1.0, y = 1.0 }
F_i { a * x - b * x * y, c * x * y - d * y }
";

fn lv<M>(a: &Args, la: &str)
where
    M: Matrix<T = f64>,
    M::V: diffsol::DefaultDenseMatrix,
    for<'b> &'b M::V: diffsol::vector::VectorRef<M::V>,
    for<'b> &'b M: diffsol::matrix::MatrixRef<M>,
{
    let t1 = a.t1.unwrap_or(10.0);
    let rtol = a.rtol.unwrap_or(1e-6);
    let atol = a.atol.unwrap_or(1e-6);
    let repeat = if a.repeat == 0 { 2000 } else { a.repeat };
    let warmup = if a.warmup == 0 { 200 } else { a.warmup };
    let t = Instant::now();
    let problem = OdeBuilder::<M>::new()
        .rtol(rtol)
        .atol([atol])
        .build_from_diffsl::<CG>(LV_CODE)
        .expect("DiffSL compile (cranelift) failed");
    let compile_ms = t.elapsed().as_secs_f64() * 1e3;
    let mut last = (Vec::new(), 0, 0);
    let timing = Timing::measure(warmup, repeat, || {
        last = solve_to_end!(problem.tsit45().expect("tsit45"), t1);
    });
    let params = format!("\"t1\":{t1},\"rtol\":{rtol:e},\"atol\":{atol:e}");
    report("lotka_volterra", "tsit45", la, &params, compile_ms, &timing, last.1, last.2, "", &last.0);
}

const ROBER_CODE: &str = "
k1 { 0.04 } k2 { 10000.0 } k3 { 30000000.0 }
u_i { y1 = 1.0, y2 = 0.0, y3 = 0.0 }
F_i {
    -k1 * y1 + k2 * y2 * y3,
    k1 * y1 - k2 * y2 * y3 - k3 * y2 * y2,
    k3 * y2 * y2,
}
";

fn rober(a: &Args) {
    type M = NalgebraMat<f64>;
    let t1 = a.t1.unwrap_or(1e5);
    let rtol = a.rtol.unwrap_or(1e-6);
    let atol = a.atol.unwrap_or(1e-10);
    let repeat = if a.repeat == 0 { 200 } else { a.repeat };
    let warmup = if a.warmup == 0 { 20 } else { a.warmup };
    let t = Instant::now();
    let problem = OdeBuilder::<M>::new()
        .rtol(rtol)
        .atol([atol])
        .build_from_diffsl::<CG>(ROBER_CODE)
        .expect("DiffSL compile (cranelift) failed");
    let compile_ms = t.elapsed().as_secs_f64() * 1e3;
    let mut last = (Vec::new(), 0, 0);
    let timing = Timing::measure(warmup, repeat, || {
        last = solve_to_end!(problem.bdf::<NalgebraLU<f64>>().expect("bdf"), t1);
    });
    let params = format!("\"t1\":{t1:e},\"rtol\":{rtol:e},\"atol\":{atol:e}");
    report("robertson_ode", "bdf", "nalgebra-dense-lu", &params, compile_ms, &timing, last.1, last.2, "", &last.0);
}

/// The 1-D heat equation u_t = D u_xx on (0,1), u = 0 at both ends, N interior points
/// (dx = 1/(N+1)), u(0, x_i) = sin(3.14159 x_i): the same discretisation as ndec's
/// examples/heat.nde with N = 1000.
fn heat_code(n: usize) -> String {
    let dx = 1.0 / (n as f64 + 1.0);
    let u0: Vec<String> = (0..n)
        .map(|i| format!("({i}): {:e}", (3.14159 * (i as f64 + 1.0) * dx).sin()))
        .collect();
    format!(
        "
D {{ 0.01 }}
dx {{ {dx:e} }}
A_ij {{
    ({nm1_lo}..{nm1}, 1..{n}): 1.0,
    (0..{n}, 0..{n}): -2.0,
    (1..{n}, 0..{nm1}): 1.0,
}}
u_i {{
    {u0}
}}
heat_i {{ A_ij * u_j }}
F_i {{ D * heat_i / (dx * dx) }}
",
        nm1_lo = 0,
        nm1 = n - 1,
        u0 = u0.join(",\n    ")
    )
}

fn heat(a: &Args) {
    type M = FaerSparseMat<f64>;
    let n = a.n;
    let t1 = a.t1.unwrap_or(10.0);
    let rtol = a.rtol.unwrap_or(1e-6);
    let atol = a.atol.unwrap_or(1e-8);
    let repeat = if a.repeat == 0 { 50 } else { a.repeat };
    let warmup = if a.warmup == 0 { 5 } else { a.warmup };
    let code = heat_code(n);
    let t = Instant::now();
    let problem = OdeBuilder::<M>::new()
        .rtol(rtol)
        .atol([atol])
        .build_from_diffsl::<CG>(&code)
        .expect("DiffSL compile (cranelift) failed");
    let compile_ms = t.elapsed().as_secs_f64() * 1e3;
    let mut last = (Vec::new(), 0, 0);
    let timing = Timing::measure(warmup, repeat, || {
        last = solve_to_end!(problem.bdf::<FaerSparseLU<f64>>().expect("bdf"), t1);
    });
    let heat_total: f64 = last.0.iter().sum::<f64>() / (n as f64 + 1.0);
    let params = format!("\"n\":{n},\"t1\":{t1},\"rtol\":{rtol:e},\"atol\":{atol:e}");
    let extra = format!("\"sum_u_dx\":{heat_total:e},");
    let end = [last.0[0], last.0[n / 2], last.0[n - 1]];
    report("heat1d", "bdf", "faer-sparse-lu", &params, compile_ms, &timing, last.1, last.2, &extra, &end);
}

fn main() {
    let a = parse_args();
    match a.model.as_str() {
        "lv" => match a.la.as_str() {
            "nalgebra" => lv::<NalgebraMat<f64>>(&a, "nalgebra"),
            "faer" => lv::<FaerMat<f64>>(&a, "faer"),
            other => usage(&format!("unknown --la {other}")),
        },
        "rober" => rober(&a),
        "heat" => heat(&a),
        other => usage(&format!("unknown model {other}")),
    }
}
