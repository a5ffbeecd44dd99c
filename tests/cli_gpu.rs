//! The GPU parts of the command line on any machine: `ndec compile --emit cuda|ptx`, its
//! usage errors, and `ndec run --device cuda`, which on a machine without a CUDA driver (like
//! CI) must stop with exit 4 and a message saying why and what to do — never panic, never
//! write output. On a machine with a GPU the same run must succeed and match the CPU's rows.

use std::process::{Command, Output};

fn ndec(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ndec"));
    c.args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("ndec runs")
}

fn model(name: &str) -> String {
    format!("{}/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn driver_present() -> bool {
    ndec::backend::cuda::launch::driver_available()
}

#[test]
fn run_on_cuda_without_a_driver_exits_4_with_the_reason() {
    let lorenz = model("examples/lorenz.nde");
    let args = [
        "run",
        &lorenz,
        "--t1",
        "1",
        "--ensemble",
        "4",
        "--device",
        "cuda",
    ];
    let o = ndec(&args, &[]);
    let err = text(&o.stderr);
    assert!(!err.contains("panicked"), "{err}");
    if driver_present() {
        // A GPU machine: the run must work (tests/cuda_gpu.rs compares it with the CPU).
        assert_eq!(o.status.code(), Some(0), "{err}");
        assert!(text(&o.stdout).starts_with("traj,t,x,y,z\n"));
        return;
    }
    assert_eq!(o.status.code(), Some(4), "{err}");
    assert!(err.contains("no CUDA driver"), "{err}");
    assert!(err.contains("--device cpu"), "{err}");
    assert!(o.stdout.is_empty(), "no CSV may be written");
}

#[test]
fn f32_is_refused_on_the_cpu_and_bad_flag_values_are_usage_errors() {
    let lorenz = model("examples/lorenz.nde");
    let o = ndec(&["run", &lorenz, "--t1", "1", "--precision", "f32"], &[]);
    assert_eq!(o.status.code(), Some(4), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("f32"));
    let o = ndec(&["run", &lorenz, "--t1", "1", "--device", "tpu"], &[]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn compile_emits_cuda_c_for_every_kernel_and_rejects_mismatched_targets() {
    let lv = model("tests/data/ok/lotka_volterra.nde");
    let o = ndec(&["compile", &lv, "--emit", "cuda"], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let c = text(&o.stdout);
    for k in [
        "vector_field",
        "initial",
        "outputs",
        "jacobian",
        "jvp",
        "vjp",
        "initial_vjp",
    ] {
        assert!(
            c.contains(&format!("__device__ void ndec_{k}(")),
            "{k} missing"
        );
        assert!(
            c.contains(&format!("__global__ void ndec_{k}_batch(")),
            "{k} batch missing"
        );
    }
    assert!(c.contains("double") && !c.contains("float"));
    let o = ndec(
        &["compile", &lv, "--emit", "cuda", "--precision", "f32"],
        &[],
    );
    assert_eq!(o.status.code(), Some(0));
    assert!(!text(&o.stdout).contains("double"));
    let o = ndec(&["compile", &lv, "--emit", "cuda", "--target", "cpu"], &[]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    let o = ndec(&["compile", &lv, "--emit", "clif", "--target", "cuda"], &[]);
    assert_eq!(o.status.code(), Some(2));
    let o = ndec(&["compile", &lv, "--emit", "ir", "--precision", "f32"], &[]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn emit_ptx_without_libnvrtc_is_exit_4_and_with_it_is_ptx() {
    let lv = model("tests/data/ok/lotka_volterra.nde");
    let o = ndec(
        &["compile", &lv, "--emit", "ptx"],
        &[("NDEC_NVRTC_DIR", "/nonexistent-ndec-nvrtc")],
    );
    let err = text(&o.stderr);
    assert!(!err.contains("panicked"), "{err}");
    match o.status.code() {
        // libnvrtc found by name on this machine anyway (LD_LIBRARY_PATH or a system install).
        Some(0) => assert!(text(&o.stdout).contains(".visible .entry ndec_vector_field_batch")),
        Some(4) => assert!(err.contains("libnvrtc"), "{err}"),
        c => panic!("exit {c:?}: {err}"),
    }
    let lib = format!(
        "{}/target/nvrtc/nvidia/cuda_nvrtc/lib",
        env!("CARGO_MANIFEST_DIR")
    );
    if std::path::Path::new(&lib).join("libnvrtc.so.12").exists() {
        let o = ndec(
            &["compile", &lv, "--emit", "ptx"],
            &[("NDEC_NVRTC_DIR", &lib)],
        );
        assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
        let ptx = text(&o.stdout);
        assert!(ptx.contains(".version") && ptx.contains(".entry ndec_jacobian_batch"));
    }
}
