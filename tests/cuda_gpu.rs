//! The GPU against the CPU, on a machine with a CUDA driver (skipped, with a note, elsewhere;
//! CI has no GPU): issue 7's device checks. Every run is `ndec run` twice, `--device cpu` and
//! `--device cuda`, on the same ensemble; NVRTC compiles with `--fmad=false`, so in f64 the
//! only differences are the device libm's (≤ 1 ulp per call) carried through the steps.
//!
//! Tolerances, stated: f64 ODE states within 1e-9 relative (Lorenz on [0, 1] amplifies a 1-ulp
//! difference by well under 1e6) and the same total of accepted and rejected steps; f32
//! within 1e-3 relative of the CPU's f64; SDE paths (same Philox streams) within 1e-12.

mod common;

use common::*;

fn model(rel: &str) -> String {
    format!("{}/{rel}", env!("CARGO_MANIFEST_DIR"))
}

/// The CSV rows (numbers) and the `--stats` JSON of a successful run.
fn run(args: &[&str]) -> (Vec<Vec<f64>>, serde_json::Value) {
    let o = ndec(args);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let (csv, stats) = out.trim_end().rsplit_once('\n').expect("CSV then stats");
    let rows = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').map(|x| x.parse().unwrap()).collect())
        .collect();
    (rows, serde_json::from_str(stats).expect("stats JSON"))
}

fn max_rel(a: &[Vec<f64>], b: &[Vec<f64>]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .flatten()
        .zip(b.iter().flatten())
        .map(|(x, y)| (x - y).abs() / y.abs().max(1e-3))
        .fold(0.0, f64::max)
}

fn gpu_present() -> bool {
    let present = ndec::backend::cuda::launch::driver_available();
    if !present {
        eprintln!("no CUDA driver here: the GPU-vs-CPU checks are skipped");
    }
    present
}

const LORENZ: [&str; 12] = [
    "--t1",
    "1",
    "--ensemble",
    "256",
    "--vary",
    "rho=uniform(0, 21)",
    "--seed",
    "7",
    "--rtol",
    "1e-8",
    "--stats",
    "--saveat",
];

#[test]
fn f64_adaptive_tsit5_matches_the_cpu_with_the_same_steps() {
    if !gpu_present() {
        return;
    }
    let m = model("examples/lorenz.nde");
    let mut base = vec!["run", m.as_str()];
    base.extend(LORENZ);
    base.push("0.25");
    let (cpu, cs) = run(&[&base[..], &["--device", "cpu"]].concat());
    let (gpu, gs) = run(&[&base[..], &["--device", "cuda"]].concat());
    let r = max_rel(&gpu, &cpu);
    eprintln!(
        "f64 tsit5 adaptive: max rel diff {r:.2e}, accepted {} vs {}",
        gs["accepted"], cs["accepted"]
    );
    assert!(r < 1e-9, "{r}");
    assert_eq!(gs["accepted"], cs["accepted"]);
    assert_eq!(gs["rejected"], cs["rejected"]);
}

#[test]
fn f32_stays_near_the_cpu() {
    if !gpu_present() {
        return;
    }
    let m = model("examples/lorenz.nde");
    let mut base = vec!["run", m.as_str()];
    base.extend(LORENZ);
    base.push("0.25");
    let (cpu, _) = run(&[&base[..], &["--device", "cpu"]].concat());
    let (gpu, _) = run(&[
        &base[..],
        &["--device", "cuda", "--precision", "f32", "--rtol", "1e-5"],
    ]
    .concat());
    let r = max_rel(&gpu, &cpu);
    eprintln!("f32 tsit5 adaptive: max rel diff {r:.2e}");
    assert!(r < 1e-3, "{r}");
}

#[test]
fn sde_paths_replay_on_the_cpu() {
    if !gpu_present() {
        return;
    }
    let gbm = std::env::temp_dir().join(format!("ndec-gpu-gbm-{}.nde", std::process::id()));
    std::fs::write(
        &gbm,
        "param mu = 0.1, sigma = 0.2\nbrownian W\nstate x = 1\nx' = mu*x + sigma*x*W\n",
    )
    .unwrap();
    let g = gbm.to_str().unwrap();
    let base = [
        "run",
        g,
        "--t1",
        "1",
        "--dt",
        "1e-3",
        "--method",
        "euler_maruyama",
        "--ensemble",
        "512",
        "--seed",
        "3",
        "--saveat",
        "0.5",
        "--stats",
    ];
    let (cpu, _) = run(&[&base[..], &["--device", "cpu"]].concat());
    let (gpu, _) = run(&[&base[..], &["--device", "cuda"]].concat());
    let r = max_rel(&gpu, &cpu);
    eprintln!("euler_maruyama GBM: max rel diff {r:.2e}");
    assert!(r < 1e-12, "{r}");
}
