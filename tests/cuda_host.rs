//! The GPU stepper modules, compiled as plain C++ for the host (tests/cuda_host/shim.h) and
//! run one "thread" per trajectory, against the CPU solvers: in f64 without contraction they
//! must agree bit for bit — every saved state, every step, rejection and rhs count — and the
//! SDE stepper's Philox/ziggurat normals must be the CPU's own. This checks the templates in
//! `kernels/` and their instantiation on a machine without a GPU; on a GPU only the
//! device's libm (an ulp here and there) can make them differ.
//!
//! Needs a C++ compiler (`c++`, or `$CXX`). Without one the test fails, saying why, unless
//! NDEC_SKIP_HOST_CXX=1 is set.

use ndec::backend::cuda::Precision;
use ndec::backend::cuda::stepper::{self, ErkArgs, SdeArgs};
use ndec::program::Program;
use ndec::rng::{Gaussians, Stream};
use ndec::runtime::sde::{GridPath, SdeMethod, SdeOptions};
use ndec::runtime::{Method, SaveAt, SolveOptions};
use std::fmt::Write;
use std::path::PathBuf;
use std::process::Command;

fn manifest() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Compiles `src` (a generated module plus a `main`) with the shim and runs it; its stdout.
/// `None` when skipping was asked for and there is no compiler.
fn run_host(name: &str, src: &str) -> Option<String> {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("cuda_host");
    std::fs::create_dir_all(&dir).unwrap();
    let cpp = dir.join(format!("{name}.cpp"));
    let exe = dir.join(name);
    std::fs::write(&cpp, src).unwrap();
    let cxx = std::env::var("CXX").unwrap_or_else(|_| "c++".into());
    let status = Command::new(&cxx)
        .args([
            "-std=c++14",
            "-O1",
            "-ffp-contract=off",
            "-fno-fast-math",
            "-w",
            "-include",
        ])
        .arg(manifest().join("tests/cuda_host/shim.h"))
        .arg("-o")
        .arg(&exe)
        .arg(&cpp)
        .arg("-lm")
        .status();
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => panic!("{cxx} failed ({s}) on {}", cpp.display()),
        Err(e) => {
            if std::env::var_os("NDEC_SKIP_HOST_CXX").is_some_and(|v| v == "1") {
                eprintln!("cuda_host: SKIPPED ({cxx}: {e}; NDEC_SKIP_HOST_CXX=1)");
                return None;
            }
            panic!(
                "cuda_host: no C++ compiler `{cxx}` ({e}): install one (or set CXX), or set \
                 NDEC_SKIP_HOST_CXX=1 to skip this check of the GPU stepper templates"
            );
        }
    }
    let out = Command::new(&exe).output().unwrap();
    assert!(out.status.success(), "{name} failed: {:?}", out);
    Some(String::from_utf8(out.stdout).unwrap())
}

/// A C array literal (one spare entry so empty arrays are valid C++).
fn arr(ty: &str, name: &str, xs: &[f64]) -> String {
    let mut s = format!("static {ty} {name}[] = {{");
    for x in xs {
        let _ = write!(s, "{x:?}, ");
    }
    s.push_str("0.0};\n");
    s
}

fn model(path: &str) -> Program {
    let text = std::fs::read_to_string(manifest().join(path)).unwrap();
    Program::from_source(path, &text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Parameter vectors and initial states of `n` trajectories: each scalar param scaled by
/// 1 + 0.05·k (so the trajectories take different steps).
fn ensemble(prog: &Program, n: usize) -> (Vec<f64>, Vec<f64>) {
    let (mut ps, mut us) = (vec![], vec![]);
    for k in 0..n {
        let mut p = prog.default_params();
        for (_, i) in &prog.layout.scalars {
            p[*i] *= 1.0 + 0.05 * k as f64;
        }
        us.extend(prog.initial_state(&p));
        ps.extend(p);
    }
    (ps, us)
}

struct Parsed {
    out: Vec<u64>,
    stats: Vec<u64>,
    status: Vec<i64>,
}

fn parse(text: &str, n_out: usize) -> Parsed {
    let mut lines = text.lines();
    let out = (0..n_out)
        .map(|_| u64::from_str_radix(lines.next().unwrap(), 16).unwrap())
        .collect();
    let rest: Vec<i64> = lines.map(|l| l.trim().parse().unwrap()).collect();
    let n = rest.len() / 5;
    Parsed {
        out,
        stats: rest[..4 * n].iter().map(|&x| x as u64).collect(),
        status: rest[4 * n..].to_vec(),
    }
}

/// Runs an ERK module on the host for `n` trajectories and compares with `Program::solve`.
fn erk_matches_cpu(path: &str, opts: &SolveOptions, n: usize) -> Option<()> {
    let prog = model(path);
    let dim = prog.dim();
    let src = stepper::erk_module("m", &prog.ir, opts.method, Precision::F64).unwrap();
    let a = ErkArgs::new(opts, dim, Precision::F64).unwrap();
    let (ps, us) = ensemble(&prog, n);
    let ns = a.save_t.len();
    let mut main = src;
    main.push_str(&arr("const double", "u0", &us));
    main.push_str(&arr("const double", "pp", &ps));
    main.push_str(&arr("const double", "atol_v", &a.atol));
    main.push_str(&arr("const double", "save_t", &a.save_t));
    let total = n * ns * dim;
    let _ = writeln!(
        main,
        "static double out[{}];\nstatic long long stats[{}];\nstatic int status[{n}];\n\
         static double t_end[{n}];\nint main() {{",
        total + 1,
        4 * n
    );
    let call = if a.fixed {
        format!(
            "ndec_erk_fixed({n}, u0, pp, {:?}, {:?}, {:?}, {}, save_t, {ns}, {}, out, stats, status, t_end)",
            a.t0, a.t1, a.dt, a.n_steps, a.max_steps
        )
    } else {
        format!(
            "ndec_erk_adaptive({n}, u0, pp, {:?}, {:?}, {:?}, {:?}, atol_v, {:?}, {:?}, save_t, {ns}, {}, out, stats, status, t_end)",
            a.t0, a.t1, a.dt, a.rtol, a.hmax, a.dtmin, a.max_steps
        )
    };
    let _ = writeln!(
        main,
        "    NDEC_HOST_LAUNCH({n}, {call});\n    ndec_print_bits(out, {total});\n\
         \x20   for (int i = 0; i < {}; i++) printf(\"%lld\\n\", stats[i]);\n\
         \x20   for (int i = 0; i < {n}; i++) printf(\"%d\\n\", status[i]);\n    return 0;\n}}",
        4 * n
    );
    let name = format!(
        "erk_{}_{}_{}",
        opts.method,
        if a.fixed { "fixed" } else { "adaptive" },
        path.rsplit('/').next().unwrap().trim_end_matches(".nde")
    );
    let got = parse(&run_host(&name, &main)?, total);
    for k in 0..n {
        let p = &ps[k * prog.layout.len..(k + 1) * prog.layout.len];
        let u0 = &us[k * dim..(k + 1) * dim];
        let sol = prog.solve(p, u0, opts).unwrap();
        assert_eq!(got.status[k], 0, "{name} trajectory {k}: status");
        assert_eq!(sol.t, a.save_t, "{name}: save times");
        let st = &got.stats[4 * k..4 * k + 4];
        let want = [
            sol.stats.steps,
            sol.stats.accepted,
            sol.stats.rejected,
            sol.stats.rhs_evals,
        ];
        assert_eq!(
            st, want,
            "{name} trajectory {k}: steps, accepted, rejected, rhs_evals"
        );
        for (i, x) in sol.u.iter().enumerate() {
            let g = got.out[k * ns * dim + i];
            assert_eq!(
                g,
                x.to_bits(),
                "{name} trajectory {k}, entry {i}: host-run GPU stepper {} vs CPU {x}",
                f64::from_bits(g)
            );
        }
    }
    Some(())
}

#[test]
fn tsit5_adaptive_takes_the_cpus_steps_bit_for_bit() {
    for path in [
        "examples/lorenz.nde",
        "tests/data/ok/lotka_ude.nde",
        "tests/data/ok/van_der_pol.nde",
    ] {
        let mut o = SolveOptions::new(Method::Tsit5, 0.0, 3.0);
        o.rtol = 1e-8;
        o.saveat = SaveAt::Every(0.25);
        if erk_matches_cpu(path, &o, 6).is_none() {
            return;
        }
    }
}

#[test]
fn dopri5_adaptive_and_bosh3_hermite_saves_match_the_cpu() {
    let mut o = SolveOptions::new(Method::Dopri5, 0.0, 2.0);
    o.saveat = SaveAt::Every(0.1);
    o.dt = Some(1e-3);
    if erk_matches_cpu("tests/data/ok/lotka_volterra.nde", &o, 4).is_none() {
        return;
    }
    let mut o = SolveOptions::new(Method::Bosh3, 0.0, 2.0);
    o.saveat = SaveAt::Every(0.1);
    erk_matches_cpu("tests/data/ok/heat1d.nde", &o, 3);
}

#[test]
fn fixed_steps_match_the_cpu_with_fsal_and_with_hermite() {
    for m in [Method::Tsit5, Method::Rk4] {
        let mut o = SolveOptions::new(m, 0.0, 1.0);
        o.adaptive = false;
        o.dt = Some(1e-2 / 3.0);
        o.saveat = SaveAt::Every(0.05);
        if erk_matches_cpu("examples/lorenz.nde", &o, 5).is_none() {
            return;
        }
    }
}

#[test]
fn device_normals_are_the_cpus_ziggurat_normals() {
    let prog = model("tests/data/ok/sde_ou.nde");
    let mut src = stepper::sde_module("m", &prog.ir, Precision::F64).unwrap();
    let (seed, stream, q0, n) = (0x1234_5678_9abc_u64, (5u64) | (1 << 56), 1000u64, 20_000);
    let _ = writeln!(
        src,
        "static double out[{n}];\nint main() {{\n    blockDim.x = {n};\n    \
         for (unsigned th = 0; th < {n}; th++) {{ threadIdx.x = th; \
         ndec_normals({seed}ull, {stream}ull, {q0}ull, {n}, out); }}\n    \
         ndec_print_bits(out, {n});\n    return 0;\n}}"
    );
    let Some(text) = run_host("normals", &src) else {
        return;
    };
    let mut g = Gaussians::new(Stream::new(seed, stream));
    let got: Vec<u64> = text
        .lines()
        .map(|l| u64::from_str_radix(l, 16).unwrap())
        .collect();
    assert_eq!(got.len(), n);
    let mut tails = 0;
    for (j, b) in got.iter().enumerate() {
        let want = g.at(q0 + j as u64);
        tails += (want.abs() > ndec::rng::ZIG_R) as usize;
        assert_eq!(*b, want.to_bits(), "normal {}", q0 + j as u64);
    }
    // 20 000 draws reach the tail (P ≈ 5.8e-4) about 12 times: the slow path was exercised.
    assert!(tails >= 3, "{tails} tail draws");
    // And the grid path of trajectory 5 is exactly this stream.
    let mut z = vec![0.0; 8];
    GridPath::new(seed, 5, 1).normals(q0, &mut z);
    for (j, x) in z.iter().enumerate() {
        assert_eq!(x.to_bits(), got[j]);
    }
}

/// Runs the SDE module on the host for trajectories traj0.. and compares with `solve_sde`.
fn sde_matches_cpu(path: &str, method: SdeMethod, n: usize, traj0: u64) -> Option<()> {
    let prog = model(path);
    let dim = prog.dim();
    let mut o = SdeOptions::new(method, 0.0, 1.0);
    o.dt = Some(1e-2 / 3.0);
    o.saveat = SaveAt::Every(0.1);
    o.seed = 42;
    let sde = prog.ir.sde.as_ref().unwrap();
    let a = SdeArgs::new(&o, sde).unwrap();
    let src = stepper::sde_module("m", &prog.ir, Precision::F64).unwrap();
    let (ps, us) = ensemble(&prog, n);
    let ns = a.save_t.len();
    let total = n * ns * dim;
    let mut main = src;
    main.push_str(&arr("const double", "u0", &us));
    main.push_str(&arr("const double", "pp", &ps));
    main.push_str(&arr("const double", "save_t", &a.save_t));
    let _ = writeln!(
        main,
        "static double out[{}];\nstatic long long stats[{}];\nstatic int status[{n}];\n\
         static double t_end[{n}];\nint main() {{\n    NDEC_HOST_LAUNCH({n}, ndec_sde_fixed({n}, \
         {traj0}, {}ull, {}, u0, pp, {:?}, {:?}, {:?}, {}, {:?}, {:?}, save_t, {ns}, {}, out, \
         stats, status, t_end));\n    ndec_print_bits(out, {total});\n    \
         for (int i = 0; i < {}; i++) printf(\"%lld\\n\", stats[i]);\n    \
         for (int i = 0; i < {n}; i++) printf(\"%d\\n\", status[i]);\n    return 0;\n}}",
        total + 1,
        4 * n,
        a.seed,
        a.milstein as i32,
        a.t0,
        a.t1,
        a.dt,
        a.n_steps,
        a.sqrt_dt,
        a.sqrt_last,
        a.max_steps,
        4 * n
    );
    let name = format!(
        "sde_{method}_{}",
        path.rsplit('/').next().unwrap().trim_end_matches(".nde")
    );
    let got = parse(&run_host(&name, &main)?, total);
    for k in 0..n {
        let p = &ps[k * prog.layout.len..(k + 1) * prog.layout.len];
        let u0 = &us[k * dim..(k + 1) * dim];
        let mut ok = o.clone();
        ok.traj = traj0 + k as u64;
        let sol = prog.solve_sde(p, u0, &ok).unwrap().sol;
        assert_eq!(got.status[k], 0);
        assert_eq!(sol.t, a.save_t);
        assert_eq!(got.stats[4 * k], sol.stats.steps);
        assert_eq!(got.stats[4 * k + 3], sol.stats.rhs_evals);
        for (i, x) in sol.u.iter().enumerate() {
            let g = got.out[k * ns * dim + i];
            assert_eq!(
                g,
                x.to_bits(),
                "{name} trajectory {}, entry {i}: {} vs CPU {x}",
                traj0 + k as u64,
                f64::from_bits(g)
            );
        }
    }
    Some(())
}

#[test]
fn euler_maruyama_and_milstein_replay_the_cpu_paths_bit_for_bit() {
    if sde_matches_cpu("tests/data/ok/sde_gbm.nde", SdeMethod::EulerMaruyama, 4, 0).is_none() {
        return;
    }
    sde_matches_cpu(
        "tests/data/ok/sde_heston.nde",
        SdeMethod::EulerMaruyama,
        3,
        17,
    );
    sde_matches_cpu("tests/data/ok/sde_diagonal.nde", SdeMethod::Milstein, 3, 2);
    sde_matches_cpu(
        "tests/data/ok/sde_neural.nde",
        SdeMethod::EulerMaruyama,
        2,
        5,
    );
}
