//! Back ends: turn IR functions into something that computes.
//!
//! `interp` is the reference semantics (every other back end is tested against it bit
//! for bit); `cranelift` compiles to native code; `cuda` emits CUDA C (compiled to PTX by
//! NVRTC) and runs ensembles on a GPU. All implement the kernel ABI of [`Kernel`] (input
//! and output buffers of fixed f64 lengths) over the kernel set of [`abi`]. Owns code
//! generation and calling generated code; must never parse, check or solve.

pub mod abi;
pub mod cranelift;
pub mod cuda;
pub mod interp;
pub mod schedule;

/// A compiled kernel: `outputs = f(inputs)` over f64 buffers whose lengths are fixed at
/// compile time (`arg_lens`, `out_lens`). Implementations check those lengths before
/// every call, so a wrong buffer is a panic with a message, never a memory error.
pub trait Kernel: Send + Sync {
    fn arg_lens(&self) -> &[usize];
    fn out_lens(&self) -> &[usize];
    /// Calls the kernel. `scratch` is per-thread working memory (see [`Kernel::scratch_len`]).
    fn call(&self, args: &[&[f64]], outs: &mut [&mut [f64]], scratch: &mut Vec<f64>);
    fn scratch_len(&self) -> usize {
        0
    }
    /// The machine-code entry point, when the kernel is native code. A hot loop that has
    /// checked the buffer lengths once may call it directly (see `program::ProgramRhs`); the
    /// code stays valid while the kernel is alive.
    fn native(&self) -> Option<NativeEntry> {
        None
    }
}

/// The kernel ABI: argument pointers, output pointers, scratch.
pub type NativeEntry = unsafe extern "C" fn(*const *const f64, *const *mut f64, *mut f64);

/// Panics with a clear message unless the buffers have the kernel's lengths.
pub fn check_buffers(
    name: &str,
    arg_lens: &[usize],
    out_lens: &[usize],
    args: &[&[f64]],
    outs: &[&mut [f64]],
) {
    assert_eq!(
        args.len(),
        arg_lens.len(),
        "{name}: expected {} argument buffers",
        arg_lens.len()
    );
    assert_eq!(
        outs.len(),
        out_lens.len(),
        "{name}: expected {} output buffers",
        out_lens.len()
    );
    for (i, (a, &n)) in args.iter().zip(arg_lens).enumerate() {
        assert_eq!(a.len(), n, "{name}: argument {i} must have length {n}");
    }
    for (i, (o, &n)) in outs.iter().zip(out_lens).enumerate() {
        assert_eq!(o.len(), n, "{name}: output {i} must have length {n}");
    }
}
