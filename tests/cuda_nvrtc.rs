//! NVRTC compiles the CUDA C of every model in tests/data/ok and examples/ to PTX, in f64
//! and f32, and any NVRTC error fails the test: one translation unit per model and
//! precision holding every kernel of the ABI (device function + batch wrapper) and the
//! model's ensemble stepper (tsit5 for an ODE, euler_maruyama/milstein for an SDE); then
//! every other explicit method's stepper on one model; then the PTX cache. The bulk checks
//! compile with `--Ofast-compile=max` (full front end and PTX generation, little
//! optimisation: seconds instead of minutes); one stepper is also compiled fully optimised.
//!
//! libnvrtc comes from `$NDEC_NVRTC_DIR`, else from target/nvrtc, else this test runs
//! scripts/install-nvrtc.sh (PyPI's nvidia-cuda-nvrtc-cu12, ~90 MB, cached in target/nvrtc).
//! If that fails the test FAILS with the reason — unless NDEC_SKIP_NVRTC=1 is set, which
//! skips it loudly. No GPU or driver is needed.

use ndec::backend::cuda::launch::cached_ptx_in;
use ndec::backend::cuda::stepper;
use ndec::backend::cuda::{self, Precision};
use ndec::driver::{self, Source};
use ndec::runtime::Method;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

fn manifest() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Makes libnvrtc loadable, installing it when needed: Err(why) when it cannot be had.
fn find_nvrtc() -> Result<(), String> {
    if let Some(dir) = std::env::var_os(cuda::NVRTC_DIR_ENV) {
        if cuda::preload_nvrtc(Path::new(&dir)) {
            return Ok(());
        }
        return Err(format!(
            "{} = {} holds no loadable libnvrtc.so.12",
            cuda::NVRTC_DIR_ENV,
            Path::new(&dir).display()
        ));
    }
    let dest = manifest().join("target/nvrtc");
    let lib = dest.join("nvidia/cuda_nvrtc/lib");
    if cuda::preload_nvrtc(&lib) {
        return Ok(());
    }
    eprintln!(
        "cuda_nvrtc: installing libnvrtc from PyPI into {}",
        dest.display()
    );
    let out = std::process::Command::new("sh")
        .arg(manifest().join("scripts/install-nvrtc.sh"))
        .arg(&dest)
        .output()
        .map_err(|e| format!("cannot run scripts/install-nvrtc.sh: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "scripts/install-nvrtc.sh failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    if cuda::preload_nvrtc(&lib) {
        Ok(())
    } else {
        Err(format!(
            "installed, but {} does not load",
            lib.join("libnvrtc.so.12").display()
        ))
    }
}

/// Whether to go on: NVRTC is loadable; skips (loudly) only with NDEC_SKIP_NVRTC=1.
fn nvrtc() -> bool {
    static FOUND: OnceLock<Result<(), String>> = OnceLock::new();
    let r = FOUND.get_or_init(|| {
        find_nvrtc().and_then(|()| {
            cuda::nvrtc_available()
                .then_some(())
                .ok_or_else(|| "libnvrtc does not load".into())
        })
    });
    match r {
        Ok(()) => true,
        Err(why) if std::env::var_os("NDEC_SKIP_NVRTC").is_some_and(|v| v == "1") => {
            eprintln!(
                "\n!!!! SKIPPED (NDEC_SKIP_NVRTC=1): {why}; emitted CUDA C was NOT checked !!!!\n"
            );
            false
        }
        Err(why) => panic!(
            "NVRTC is needed to check the emitted CUDA C and could not be had: {why}\n\
             (needs python3 + pip and PyPI access; set NDEC_NVRTC_DIR to an install, or \
             NDEC_SKIP_NVRTC=1 to skip this check explicitly)"
        ),
    }
}

fn models() -> Vec<PathBuf> {
    let mut files = vec![];
    for dir in ["tests/data/ok", "examples"] {
        for e in std::fs::read_dir(manifest().join(dir)).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "nde") {
                files.push(p);
            }
        }
    }
    files.sort();
    files
}

/// Compiles the jobs on two threads: (name, precision, entries expected, result).
type Job = (String, Precision, usize, String);
fn compile_all(jobs: &[Job]) -> Vec<(String, Precision, usize, Result<String, String>)> {
    let half = jobs.len().div_ceil(2).max(1);
    std::thread::scope(|s| {
        let hs: Vec<_> = jobs
            .chunks(half)
            .map(|chunk| {
                s.spawn(move || {
                    chunk
                        .iter()
                        .map(|(n, p, k, text)| {
                            let r = cuda::compile_ptx_with(text, n, "compute_80", true)
                                .map_err(|e| e.to_string());
                            (n.clone(), *p, *k, r)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        hs.into_iter().flat_map(|h| h.join().unwrap()).collect()
    })
}

/// Fails on any NVRTC error or on a module missing one of its entry points; the kernel count.
fn check_results(results: &[(String, Precision, usize, Result<String, String>)]) -> usize {
    let mut failures = vec![];
    let mut kernels = 0;
    for (name, p, k, r) in results {
        match r {
            Ok(ptx) => {
                let entries = ptx.matches(".visible .entry ndec_").count();
                assert_eq!(
                    entries, *k,
                    "{name} {p:?}: {entries} entry points, expected {k}"
                );
                kernels += k;
            }
            Err(e) => failures.push(format!("{name} ({p:?}): {e}")),
        }
    }
    assert!(
        failures.is_empty(),
        "NVRTC errors:\n{}",
        failures.join("\n")
    );
    kernels
}

#[test]
fn every_kernel_and_stepper_of_every_model_compiles_to_ptx() {
    if !nvrtc() {
        return;
    }
    let files = models();
    assert!(files.len() >= 30, "only {} models found", files.len());
    let mut jobs = vec![];
    let mut abi_only = vec![];
    let mut not_lowered = vec![];
    for path in &files {
        let text = std::fs::read_to_string(path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let src = Source::new(&name, &text);
        let model = driver::check(&src).unwrap_or_else(|_| panic!("{name} does not check"));
        // Models this version cannot lower (exit 4 from every command) have no kernels.
        let Ok(l) = driver::lower(&model) else {
            not_lowered.push(name);
            continue;
        };
        let n_abi = cuda::model_kernels(&l).len();
        for p in [Precision::F64, Precision::F32] {
            let stem = src.stem();
            let with_stepper = if l.sde.is_some() {
                stepper::sde_module_with(&stem, &l, p, true)
                    .map(|t| (t, stepper::SDE_ENTRIES.len()))
            } else {
                stepper::erk_module_with(&stem, &l, Method::Tsit5, p, true)
                    .map(|t| (t, stepper::ERK_ENTRIES.len()))
            };
            match with_stepper {
                Ok((text, k)) => jobs.push((name.clone(), p, n_abi + k, text)),
                // Delay and input models have no GPU stepper: their kernels alone.
                Err(_) => {
                    abi_only.push(name.clone());
                    jobs.push((
                        name.clone(),
                        p,
                        n_abi,
                        cuda::module_source(&stem, &cuda::model_kernels(&l), p),
                    ));
                }
            }
        }
    }
    let results = compile_all(&jobs);
    let kernels = check_results(&results);
    eprintln!(
        "cuda_nvrtc: {kernels} entry points in {} modules compiled to PTX; kernels only (no \
         GPU stepper): {abi_only:?}; not lowerable here: {not_lowered:?}",
        results.len()
    );
    assert!(kernels >= 400, "only {kernels} entry points compiled");
    assert!(abi_only.len() <= 8, "{abi_only:?} lost their stepper");
}

#[test]
fn every_explicit_methods_stepper_compiles_to_ptx() {
    if !nvrtc() {
        return;
    }
    let text = std::fs::read_to_string(manifest().join("examples/lorenz.nde")).unwrap();
    let src = Source::new("lorenz.nde", &text);
    let l = driver::lower(&driver::check(&src).unwrap()).unwrap();
    let mut jobs = vec![];
    for m in [
        Method::Euler,
        Method::Midpoint,
        Method::Heun,
        Method::Rk4,
        Method::Bosh3,
        Method::Dopri5,
    ] {
        for p in [Precision::F64, Precision::F32] {
            let t = stepper::erk_module("lorenz", &l, m, p).unwrap();
            jobs.push((format!("lorenz_{m}"), p, stepper::ERK_ENTRIES.len(), t));
        }
    }
    // vern7 and the implicit methods have no GPU stepper: an error, not bad code.
    for m in [Method::Vern7, Method::Rosenbrock23, Method::Bdf] {
        assert!(
            stepper::erk_module("lorenz", &l, m, Precision::F64).is_err(),
            "{m}"
        );
    }
    check_results(&compile_all(&jobs));
    // The optimised build the runtime uses, once (it is the slow one: tens of seconds for a
    // neural model, about a second for Lorenz).
    let t = stepper::erk_module("lorenz", &l, Method::Tsit5, Precision::F64).unwrap();
    let ptx = cuda::compile_ptx(&t, "lorenz_opt").unwrap();
    assert!(ptx.contains(".entry ndec_erk_adaptive") && ptx.contains(".entry ndec_erk_fixed"));
}

#[test]
fn compiled_ptx_is_cached_by_source_hash() {
    if !nvrtc() {
        return;
    }
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ptx-cache-test");
    let _ = std::fs::remove_dir_all(&dir);
    let src = "extern \"C\" __global__ void ndec_probe(double* x) { x[0] = 1.0; }\n";
    let (a, hit_a) = cached_ptx_in(&dir, src, "probe", "compute_80").unwrap();
    let (b, hit_b) = cached_ptx_in(&dir, src, "probe", "compute_80").unwrap();
    assert!(
        !hit_a && hit_b,
        "first compile then cache hit ({hit_a}, {hit_b})"
    );
    assert_eq!(a, b);
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
    let other = src.replace("1.0", "2.0");
    let (c, hit_c) = cached_ptx_in(&dir, &other, "probe", "compute_80").unwrap();
    assert!(!hit_c && c != a, "a different source is a different key");
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 2);
}
