//! The host side of the GPU back end: finding a device, compiling stepper modules through a
//! cache keyed by the source hash, sizing device memory up front, launching one thread per
//! trajectory and copying the results back.
//!
//! Owns every call into the CUDA driver (through cudarc, loaded at run time) and turns each
//! absence — no driver library, no device, no libnvrtc, not enough device memory — into a
//! [`GpuError`] with a message for the user, never a panic. It must never decide *what* to
//! solve (the caller passes validated options and per-trajectory parameters and initial
//! states) and never write files other than its PTX cache.

use super::stepper::{self, ErkArgs, SdeArgs, StepperError};
use super::{NvrtcError, Precision};
use crate::ir::Lowered;
use crate::runtime::SolveOptions;
use crate::runtime::sde::SdeOptions;
use cudarc::driver::{
    CudaContext, CudaModule, CudaSlice, CudaStream, DeviceRepr, LaunchConfig, PushKernelArg,
    ValidAsZeroBits,
};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Why a GPU solve did not happen.
#[derive(Debug, Clone, PartialEq)]
pub enum GpuError {
    /// No CUDA driver library (libcuda) on this machine.
    NoDriver(String),
    /// The driver found no usable device.
    NoDevice(String),
    /// libnvrtc is missing.
    NoNvrtc(String),
    /// The model or method has no GPU stepper.
    Unsupported(String),
    /// The ensemble's buffers do not fit in the device's free memory.
    OutOfMemory { need: usize, free: usize },
    /// NVRTC rejected the generated code, or the driver failed (internal errors).
    Internal(String),
}

impl std::fmt::Display for GpuError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GpuError::NoDriver(m) | GpuError::NoDevice(m) | GpuError::NoNvrtc(m) => f.write_str(m),
            GpuError::Unsupported(m) => write!(f, "not available on the GPU: {m}"),
            GpuError::OutOfMemory { need, free } => write!(
                f,
                "the ensemble needs {} of device memory but only {} is free: solve fewer \
                 trajectories per run (--ensemble), save fewer times (--saveat) or use \
                 --precision f32",
                mib(*need),
                mib(*free)
            ),
            GpuError::Internal(m) => write!(f, "internal GPU error: {m}"),
        }
    }
}

impl std::error::Error for GpuError {}

fn mib(b: usize) -> String {
    format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0))
}

impl From<StepperError> for GpuError {
    fn from(e: StepperError) -> Self {
        GpuError::Unsupported(e.0)
    }
}

impl From<NvrtcError> for GpuError {
    fn from(e: NvrtcError) -> Self {
        match e {
            NvrtcError::Missing(m) => GpuError::NoNvrtc(m),
            e @ NvrtcError::Compile(_) => GpuError::Internal(e.to_string()),
        }
    }
}

fn drv(e: impl std::fmt::Display) -> GpuError {
    GpuError::Internal(e.to_string())
}

/// Whether the CUDA driver library can be loaded (no driver call is made).
pub fn driver_available() -> bool {
    // SAFETY: only tries to dlopen the driver library by its candidate names.
    unsafe { cudarc::driver::sys::is_culib_present() }
}

/// FNV-1a, 64 bits: the cache key of a module's source and compile options (stable across
/// runs and platforms, unlike `DefaultHasher`).
pub fn source_hash(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for b in p.bytes().chain([0u8]) {
            h ^= b as u64;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

/// Where compiled PTX is kept: `$NDEC_CACHE_DIR`, else `$XDG_CACHE_HOME/ndec/ptx`, else
/// `~/.cache/ndec/ptx`, else the temporary directory.
pub fn cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("NDEC_CACHE_DIR") {
        return PathBuf::from(d);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("ndec").join("ptx")
}

/// PTX for `src` from the on-disk cache, else compiled by NVRTC and stored (atomically:
/// a temporary file renamed into place). Returns the PTX and whether it was a cache hit.
/// A cache that cannot be written is not an error (the PTX is still returned).
pub fn cached_ptx(src: &str, name: &str, arch: &'static str) -> Result<(String, bool), NvrtcError> {
    cached_ptx_in(&cache_dir(), src, name, arch)
}

/// As [`cached_ptx`], with the cache in `dir`.
pub fn cached_ptx_in(
    dir: &std::path::Path,
    src: &str,
    name: &str,
    arch: &'static str,
) -> Result<(String, bool), NvrtcError> {
    let key = source_hash(&[src, arch, "fmad=false", env!("CARGO_PKG_VERSION")]);
    let path = dir.join(format!("{key:016x}.ptx"));
    if let Ok(ptx) = std::fs::read_to_string(&path)
        && ptx.contains(".entry")
    {
        return Ok((ptx, true));
    }
    let ptx = super::compile_ptx_arch(src, name, arch)?;
    if std::fs::create_dir_all(dir).is_ok() {
        let tmp = dir.join(format!("{key:016x}.{}.tmp", std::process::id()));
        if std::fs::write(&tmp, &ptx).is_ok() {
            let _ = std::fs::rename(&tmp, &path);
        }
    }
    Ok((ptx, false))
}

/// The NVRTC virtual architecture for a compute capability.
pub fn arch_for(major: i32, minor: i32) -> &'static str {
    match (major, minor) {
        (7, 0) => "compute_70",
        (7, 5) => "compute_75",
        (8, 0) => "compute_80",
        (8, 6) => "compute_86",
        (8, 9) => "compute_89",
        (9, _) => "compute_90",
        (10, _) => "compute_100",
        (12, _) => "compute_120",
        (m, _) if m > 12 => "compute_120",
        _ => "compute_70",
    }
}

/// An opened device with its stream and the modules loaded so far (keyed by source hash).
pub struct Gpu {
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    pub name: String,
    pub arch: &'static str,
    modules: Mutex<HashMap<u64, Arc<CudaModule>>>,
}

impl Gpu {
    /// Opens device `ordinal`. Checks the driver library, then the device, then libnvrtc,
    /// each with its own error.
    pub fn open(ordinal: usize) -> Result<Gpu, GpuError> {
        if !driver_available() {
            return Err(GpuError::NoDriver(
                "no CUDA driver found (libcuda.so could not be loaded): --device cuda needs an \
                 NVIDIA GPU with its driver installed; run on the CPU with --device cpu"
                    .into(),
            ));
        }
        let ctx = CudaContext::new(ordinal).map_err(|e| {
            let count = CudaContext::device_count().unwrap_or(0);
            GpuError::NoDevice(format!(
                "no usable CUDA device {ordinal} ({count} found; the driver says: {e}); run on \
                 the CPU with --device cpu"
            ))
        })?;
        if !super::nvrtc_available() {
            return Err(GpuError::NoNvrtc(format!(
                "libnvrtc (NVIDIA's run-time CUDA compiler) was not found: install it (e.g. \
                 scripts/install-nvrtc.sh) and set {} to its directory, or put libnvrtc.so.12 \
                 on LD_LIBRARY_PATH",
                super::NVRTC_DIR_ENV
            )));
        }
        let name = ctx.name().map_err(drv)?;
        let (major, minor) = ctx.compute_capability().map_err(drv)?;
        let stream = ctx.default_stream();
        Ok(Gpu {
            ctx,
            stream,
            name,
            arch: arch_for(major, minor),
            modules: Mutex::new(HashMap::new()),
        })
    }

    /// The module of `src`, compiled (or taken from the caches) and loaded once.
    fn module(&self, src: &str, name: &str) -> Result<(Arc<CudaModule>, f64), GpuError> {
        let t = Instant::now();
        let key = source_hash(&[src, self.arch]);
        if let Some(m) = self.modules.lock().map_err(drv)?.get(&key) {
            return Ok((m.clone(), 0.0));
        }
        let (ptx, _) = cached_ptx(src, name, self.arch)?;
        let m = self
            .ctx
            .load_module(cudarc::nvrtc::Ptx::from_src(ptx))
            .map_err(drv)?;
        self.modules.lock().map_err(drv)?.insert(key, m.clone());
        Ok((m, t.elapsed().as_secs_f64() * 1e3))
    }

    fn check_memory(&self, need: usize) -> Result<(), GpuError> {
        let (free, _total) = self.ctx.mem_get_info().map_err(drv)?;
        // Leave room for the per-thread local memory (stacks) of the launch.
        if need > free / 10 * 9 {
            return Err(GpuError::OutOfMemory { need, free });
        }
        Ok(())
    }
}

/// The results of an ensemble solve, trajectory by trajectory.
#[derive(Clone, Debug, PartialEq)]
pub struct Ensemble {
    /// `n_traj × n_save × dim`, as f64 whatever the precision.
    pub out: Vec<f64>,
    pub save_t: Vec<f64>,
    pub dim: usize,
    /// Per trajectory: steps, accepted, rejected, rhs evaluations.
    pub stats: Vec<[u64; 4]>,
    /// Per trajectory: 0 ok, 1 max steps, 2 step-size underflow, 3 non-finite state.
    pub status: Vec<i32>,
    /// Per trajectory: the time reached.
    pub t_end: Vec<f64>,
    pub compile_ms: f64,
    pub solve_ms: f64,
}

/// The element type of a precision.
trait Real: DeviceRepr + ValidAsZeroBits + Copy + Default + Unpin + 'static {
    fn of(x: f64) -> Self;
    fn to(self) -> f64;
}

impl Real for f64 {
    fn of(x: f64) -> f64 {
        x
    }
    fn to(self) -> f64 {
        self
    }
}

impl Real for f32 {
    fn of(x: f64) -> f32 {
        x as f32
    }
    fn to(self) -> f64 {
        self as f64
    }
}

/// Device copies of an ensemble's inputs and outputs.
struct Buffers<T> {
    u0: CudaSlice<T>,
    p: CudaSlice<T>,
    save_t: CudaSlice<T>,
    out: CudaSlice<T>,
    stats: CudaSlice<i64>,
    status: CudaSlice<i32>,
    t_end: CudaSlice<T>,
}

/// Bytes of device memory an ensemble needs.
pub fn ensemble_bytes(n: usize, dim: usize, np: usize, n_save: usize, p: Precision) -> usize {
    let real = match p {
        Precision::F64 => 8,
        Precision::F32 => 4,
    };
    let per = (dim + np + n_save * dim + 1) * real + 4 * 8 + 4;
    n.saturating_mul(per).saturating_add((n_save + dim) * real)
}

fn upload<T: Real>(
    gpu: &Gpu,
    n: usize,
    dim: usize,
    ps: &[f64],
    u0s: &[f64],
    save_t: &[f64],
) -> Result<Buffers<T>, GpuError> {
    let conv = |x: &[f64]| x.iter().map(|&v| T::of(v)).collect::<Vec<T>>();
    let s = &gpu.stream;
    // Never allocate zero-length buffers.
    let pad = |mut v: Vec<T>| {
        if v.is_empty() {
            v.push(T::default());
        }
        v
    };
    Ok(Buffers {
        u0: s.clone_htod(&pad(conv(u0s))).map_err(drv)?,
        p: s.clone_htod(&pad(conv(ps))).map_err(drv)?,
        save_t: s.clone_htod(&pad(conv(save_t))).map_err(drv)?,
        out: s
            .alloc_zeros::<T>((n * save_t.len() * dim).max(1))
            .map_err(drv)?,
        stats: s.alloc_zeros::<i64>(4 * n).map_err(drv)?,
        status: s.alloc_zeros::<i32>(n).map_err(drv)?,
        t_end: s.alloc_zeros::<T>(n).map_err(drv)?,
    })
}

/// After a launch: waits for it, times it from `start`, and copies the results back.
fn finish<T: Real>(
    gpu: &Gpu,
    b: &Buffers<T>,
    (n, dim): (usize, usize),
    save_t: Vec<f64>,
    start: Instant,
    compile_ms: f64,
) -> Result<Ensemble, GpuError> {
    let s = &gpu.stream;
    s.synchronize().map_err(drv)?;
    let solve_ms = start.elapsed().as_secs_f64() * 1e3;
    let mut out: Vec<f64> = s
        .clone_dtoh(&b.out)
        .map_err(drv)?
        .into_iter()
        .map(T::to)
        .collect();
    out.truncate(n * save_t.len() * dim);
    let stats = s.clone_dtoh(&b.stats).map_err(drv)?;
    Ok(Ensemble {
        out,
        save_t,
        dim,
        stats: stats
            .chunks(4)
            .map(|c| [c[0] as u64, c[1] as u64, c[2] as u64, c[3] as u64])
            .collect(),
        status: s.clone_dtoh(&b.status).map_err(drv)?,
        t_end: s
            .clone_dtoh(&b.t_end)
            .map_err(drv)?
            .into_iter()
            .map(T::to)
            .collect(),
        compile_ms,
        solve_ms,
    })
}

/// Threads per block of every launch.
const BLOCK: u32 = 128;

fn config(n: usize) -> Result<LaunchConfig, GpuError> {
    let blocks = u32::try_from(n.div_ceil(BLOCK as usize))
        .map_err(|_| GpuError::Unsupported(format!("{n} trajectories in one launch")))?;
    Ok(LaunchConfig {
        grid_dim: (blocks.max(1), 1, 1),
        block_dim: (BLOCK, 1, 1),
        shared_mem_bytes: 0,
    })
}

/// Checks the per-trajectory arrays: `n` trajectories of `np` params and `dim` states.
fn check_inputs(n: usize, ps: &[f64], np: usize, u0s: &[f64], dim: usize) -> Result<(), GpuError> {
    if ps.len() != n * np || u0s.len() != n * dim {
        return Err(GpuError::Internal(format!(
            "ensemble inputs: {} params and {} initial values for {n} trajectories of {np} and {dim}",
            ps.len(),
            u0s.len()
        )));
    }
    Ok(())
}

/// Solves an ODE ensemble with an explicit RK method: trajectory k has params
/// `ps[k*np..]` and initial state `u0s[k*dim..]`.
pub fn solve_erk(
    gpu: &Gpu,
    model: &str,
    l: &Lowered,
    opts: &SolveOptions,
    prec: Precision,
    ps: &[f64],
    u0s: &[f64],
) -> Result<Ensemble, GpuError> {
    match prec {
        Precision::F64 => erk_typed::<f64>(gpu, model, l, opts, prec, ps, u0s),
        Precision::F32 => erk_typed::<f32>(gpu, model, l, opts, prec, ps, u0s),
    }
}

fn erk_typed<T: Real>(
    gpu: &Gpu,
    model: &str,
    l: &Lowered,
    opts: &SolveOptions,
    prec: Precision,
    ps: &[f64],
    u0s: &[f64],
) -> Result<Ensemble, GpuError> {
    let dim = l
        .vector_field
        .args
        .iter()
        .find(|a| a.name == "u")
        .map_or(0, |a| a.len);
    let np = l.layout.len;
    let n = u0s
        .len()
        .checked_div(dim)
        .unwrap_or_else(|| ps.len() / np.max(1));
    check_inputs(n, ps, np, u0s, dim)?;
    let a = ErkArgs::new(opts, dim, prec)?;
    let src = stepper::erk_module(model, l, opts.method, prec)?;
    let (module, compile_ms) = gpu.module(&src, model)?;
    gpu.check_memory(ensemble_bytes(n, dim, np, a.save_t.len(), prec))?;
    let mut b = upload::<T>(gpu, n, dim, ps, u0s, &a.save_t)?;
    let atol = gpu
        .stream
        .clone_htod(
            &a.atol
                .iter()
                .map(|&x| T::of(x))
                .chain([T::default()])
                .collect::<Vec<T>>(),
        )
        .map_err(drv)?;
    let entry = if a.fixed {
        "ndec_erk_fixed"
    } else {
        "ndec_erk_adaptive"
    };
    let f = module.load_function(entry).map_err(drv)?;
    let (n_i, ns) = (n as i64, a.save_t.len() as i32);
    let (t0, t1, dt, rtol, hmax, dtmin) = (
        T::of(a.t0),
        T::of(a.t1),
        T::of(a.dt),
        T::of(a.rtol),
        T::of(a.hmax),
        T::of(a.dtmin),
    );
    let start = Instant::now();
    let mut lb = gpu.stream.launch_builder(&f);
    lb.arg(&n_i).arg(&b.u0).arg(&b.p).arg(&t0).arg(&t1);
    if a.fixed {
        lb.arg(&dt).arg(&a.n_steps);
    } else {
        lb.arg(&dt).arg(&rtol).arg(&atol).arg(&hmax).arg(&dtmin);
    }
    lb.arg(&b.save_t)
        .arg(&ns)
        .arg(&a.max_steps)
        .arg(&mut b.out)
        .arg(&mut b.stats)
        .arg(&mut b.status)
        .arg(&mut b.t_end);
    // SAFETY: the argument list matches the signature of ndec_erk_fixed/ndec_erk_adaptive in
    // kernels/erk.cuh one for one (types: long long, real pointers, reals, long long, int).
    // Each thread k < n reads u0[k*dim .. (k+1)*dim] (u0s.len() == n*dim, checked),
    // p[k*np .. (k+1)*np] (ps.len() == n*np, checked), atol[0..dim] (dim + 1 entries),
    // save_t[0..n_save] and writes out[k*n_save*dim ..][..n_save*dim] (n*n_save*dim
    // allocated), stats[4k..4k+4] (4n), status[k] and t_end[k] (n); threads k >= n return.
    unsafe { lb.launch(config(n)?) }.map_err(drv)?;
    finish::<T>(gpu, &b, (n, dim), a.save_t, start, compile_ms)
}

/// Solves an SDE ensemble (euler_maruyama or milstein on the grid path): trajectory k of
/// the arrays is trajectory `traj0 + k` of the ensemble, its noise keyed by
/// (`opts.seed`, `traj0 + k`) exactly as on the CPU.
#[allow(clippy::too_many_arguments)]
pub fn solve_sde(
    gpu: &Gpu,
    model: &str,
    l: &Lowered,
    opts: &SdeOptions,
    prec: Precision,
    traj0: u64,
    ps: &[f64],
    u0s: &[f64],
) -> Result<Ensemble, GpuError> {
    match prec {
        Precision::F64 => sde_typed::<f64>(gpu, model, l, opts, prec, traj0, ps, u0s),
        Precision::F32 => sde_typed::<f32>(gpu, model, l, opts, prec, traj0, ps, u0s),
    }
}

#[allow(clippy::too_many_arguments)]
fn sde_typed<T: Real>(
    gpu: &Gpu,
    model: &str,
    l: &Lowered,
    opts: &SdeOptions,
    prec: Precision,
    traj0: u64,
    ps: &[f64],
    u0s: &[f64],
) -> Result<Ensemble, GpuError> {
    let Some(sde) = &l.sde else {
        return Err(GpuError::Unsupported("the model has no noise".into()));
    };
    let (dim, np) = (sde.n, l.layout.len);
    let n = u0s.len().checked_div(dim).unwrap_or(0);
    check_inputs(n, ps, np, u0s, dim)?;
    let a = SdeArgs::new(opts, sde)?;
    let src = stepper::sde_module(model, l, prec)?;
    let (module, compile_ms) = gpu.module(&src, model)?;
    gpu.check_memory(ensemble_bytes(n, dim, np, a.save_t.len(), prec))?;
    let mut b = upload::<T>(gpu, n, dim, ps, u0s, &a.save_t)?;
    let f = module.load_function("ndec_sde_fixed").map_err(drv)?;
    let (n_i, traj0_i, ns, mil) = (
        n as i64,
        i64::try_from(traj0).map_err(drv)?,
        a.save_t.len() as i32,
        a.milstein as i32,
    );
    let (t0, t1, dt, sq, sq_last) = (
        T::of(a.t0),
        T::of(a.t1),
        T::of(a.dt),
        T::of(a.sqrt_dt),
        T::of(a.sqrt_last),
    );
    let start = Instant::now();
    let mut lb = gpu.stream.launch_builder(&f);
    lb.arg(&n_i)
        .arg(&traj0_i)
        .arg(&a.seed)
        .arg(&mil)
        .arg(&b.u0)
        .arg(&b.p)
        .arg(&t0)
        .arg(&t1)
        .arg(&dt)
        .arg(&a.n_steps)
        .arg(&sq)
        .arg(&sq_last)
        .arg(&b.save_t)
        .arg(&ns)
        .arg(&a.max_steps)
        .arg(&mut b.out)
        .arg(&mut b.stats)
        .arg(&mut b.status)
        .arg(&mut b.t_end);
    // SAFETY: the argument list matches ndec_sde_fixed in kernels/sde.cuh one for one. Each
    // thread k < n reads u0[k*dim ..][..dim] (u0s.len() == n*dim, checked), p[k*np ..][..np]
    // (ps.len() == n*np, checked), save_t[0..n_save], and writes out[k*n_save*dim ..]
    // [..n_save*dim] (n*n_save*dim allocated), stats[4k..4k+4], status[k], t_end[k];
    // threads k >= n return at once.
    unsafe { lb.launch(config(n)?) }.map_err(drv)?;
    finish::<T>(gpu, &b, (n, dim), a.save_t, start, compile_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_source_hash_is_stable_and_separates_parts() {
        // FNV-1a test vector: the empty string hashes to the offset basis (here with the
        // part terminator, so check that instead against a hand computation).
        let h0 = source_hash(&[]);
        assert_eq!(h0, 0xcbf2_9ce4_8422_2325);
        assert_ne!(source_hash(&["ab", "c"]), source_hash(&["a", "bc"]));
        assert_eq!(source_hash(&["x"]), source_hash(&["x"]));
    }

    #[test]
    fn memory_estimate_counts_every_buffer() {
        // 10 trajectories of a 3-state model with 2 params saving 5 times, f64:
        // per trajectory (3 + 2 + 15 + 1)·8 + 32 + 4 = 204 bytes, plus (5 + 3)·8 shared.
        assert_eq!(ensemble_bytes(10, 3, 2, 5, Precision::F64), 10 * 204 + 64);
        assert_eq!(ensemble_bytes(10, 3, 2, 5, Precision::F32), 10 * 120 + 32);
        assert_eq!(
            ensemble_bytes(usize::MAX, 3, 2, 5, Precision::F64),
            usize::MAX
        );
    }

    #[test]
    fn architectures_cover_the_lent_gpus() {
        assert_eq!(arch_for(9, 0), "compute_90");
        assert_eq!(arch_for(8, 0), "compute_80");
        assert_eq!(arch_for(13, 0), "compute_120");
    }

    #[test]
    fn no_driver_is_an_error_value_not_a_panic() {
        if driver_available() {
            return; // with a driver, tests/cuda_gpu.rs checks the device paths against the CPU
        }
        match Gpu::open(0) {
            Err(GpuError::NoDriver(m)) => assert!(m.contains("--device cpu"), "{m}"),
            Err(e) => panic!("expected NoDriver, got {e}"),
            Ok(_) => panic!("opened a device without a driver"),
        }
    }
}
