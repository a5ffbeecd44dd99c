//! The hand-written CUDA tsit5 Lorenz ensemble (bench/gpu/lorenz_tsit5.cu), the practical
//! limit in bench/gpu_lorenz.sh: compiled with the same NVRTC as ndec's modules, rho drawn
//! uniform in [0, 21], timed from launch to synchronisation (the kernel alone; the host's
//! setup and copies are not in the time).
//!
//!   cargo run --release --example gpu_lorenz_handwritten -- N fixed|adaptive f64|f32 [REPEAT]
//!
//! Prints one JSON line: {"n":…, "mode":…, "precision":…, "kernel_ms_min":…, "kernel_ms_median":…}.
//! Needs an NVIDIA GPU with its driver and libnvrtc.

use cudarc::driver::{CudaContext, DeviceRepr, LaunchConfig, PushKernelArg, ValidAsZeroBits};
use ndec::backend::cuda::{compile_ptx_arch, launch};
use std::time::Instant;

trait Real: DeviceRepr + ValidAsZeroBits + Copy + Default + Unpin + 'static {
    fn of(x: f64) -> Self;
}
impl Real for f64 {
    fn of(x: f64) -> f64 {
        x
    }
}
impl Real for f32 {
    fn of(x: f64) -> f32 {
        x as f32
    }
}

fn run<T: Real>(n: usize, adaptive: bool, precision: &str, repeat: usize) -> Result<(), String> {
    if !launch::driver_available() {
        return Err("no CUDA driver on this machine".into());
    }
    let ctx = CudaContext::new(0).map_err(|e| e.to_string())?;
    let (maj, min) = ctx.compute_capability().map_err(|e| e.to_string())?;
    let real = if precision == "f32" {
        "float"
    } else {
        "double"
    };
    let src = format!(
        "#define REAL {real}\n{}",
        include_str!("../bench/gpu/lorenz_tsit5.cu")
    );
    let ptx = compile_ptx_arch(&src, "lorenz_tsit5", launch::arch_for(maj, min))
        .map_err(|e| e.to_string())?;
    let module = ctx
        .load_module(cudarc::nvrtc::Ptx::from_src(ptx))
        .map_err(|e| e.to_string())?;
    let stream = ctx.default_stream();
    let rhos: Vec<T> = (0..n)
        .map(|k| T::of(21.0 * ndec::rng::Stream::new(0, k as u64).uniform(0)))
        .collect();
    let d_rhos = stream.clone_htod(&rhos).map_err(|e| e.to_string())?;
    let mut out = stream.alloc_zeros::<T>(3 * n).map_err(|e| e.to_string())?;
    let mut steps = stream.alloc_zeros::<i64>(n).map_err(|e| e.to_string())?;
    let n_i = n as i64;
    let cfg = LaunchConfig {
        grid_dim: (n.div_ceil(128) as u32, 1, 1),
        block_dim: (128, 1, 1),
        shared_mem_bytes: 0,
    };
    let mut times = vec![];
    for _ in 0..repeat.max(1) {
        let t = Instant::now();
        if adaptive {
            let f = module
                .load_function("ndec_hw_adaptive")
                .map_err(|e| e.to_string())?;
            let tol = T::of(1e-8);
            let mut l = stream.launch_builder(&f);
            l.arg(&n_i)
                .arg(&d_rhos)
                .arg(&tol)
                .arg(&mut out)
                .arg(&mut steps);
            // SAFETY: ndec_hw_adaptive(long long n, const real* rhos, real tol, real* out,
            // long long* steps): rhos has n entries, out 3n, steps n; threads k >= n return.
            unsafe { l.launch(cfg) }.map_err(|e| e.to_string())?;
        } else {
            let f = module
                .load_function("ndec_hw_fixed")
                .map_err(|e| e.to_string())?;
            let (dt, n_steps) = (T::of(1e-3), 1000i64);
            let mut l = stream.launch_builder(&f);
            l.arg(&n_i)
                .arg(&d_rhos)
                .arg(&dt)
                .arg(&n_steps)
                .arg(&mut out);
            // SAFETY: ndec_hw_fixed(long long n, const real* rhos, real dt, long long n_steps,
            // real* out): rhos has n entries, out 3n; threads k >= n return.
            unsafe { l.launch(cfg) }.map_err(|e| e.to_string())?;
        }
        stream.synchronize().map_err(|e| e.to_string())?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    println!(
        "{{\"n\":{n},\"mode\":\"{}\",\"precision\":\"{precision}\",\"kernel_ms_min\":{},\"kernel_ms_median\":{}}}",
        if adaptive { "adaptive" } else { "fixed" },
        times[0],
        times[times.len() / 2]
    );
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n: usize = args.first().and_then(|s| s.parse().ok()).unwrap_or(1 << 20);
    let adaptive = args.get(1).is_some_and(|s| s == "adaptive");
    let precision = args.get(2).cloned().unwrap_or_else(|| "f64".into());
    let repeat: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(5);
    let r = if precision == "f32" {
        run::<f32>(n, adaptive, &precision, repeat)
    } else {
        run::<f64>(n, adaptive, &precision, repeat)
    };
    if let Err(e) = r {
        eprintln!("gpu_lorenz_handwritten: {e}");
        std::process::exit(4);
    }
}
