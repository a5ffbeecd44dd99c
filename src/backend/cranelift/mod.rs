//! The Cranelift JIT back end: IR functions to native code, bit-identical to the interpreter.
//!
//! Every function compiles to `extern "C" fn(args: *const *const f64, outs: *const *mut f64,
//! scratch: *mut f64)`, with `args`/`outs` in the order of [`Function::args`] /
//! [`Function::outputs`] and every length fixed at compile time. [`JitKernel`] wraps it as a
//! [`Kernel`]: it checks buffer lengths before each call, so a wrong buffer is a panic.
//!
//! Where each node lives (fused into a loop, unrolled into registers, stored in scratch or
//! straight in the output) comes from [`crate::backend::schedule`]; `codegen` turns that
//! into Cranelift IR. Transcendentals go through one shim table (`shims`) that calls the
//! functions of [`crate::math`]; arithmetic, sqrt, abs, min/max, comparisons and selects are
//! native instructions with the same IEEE results. Multiply–add is never fused.

mod codegen;
mod shims;

use crate::backend::schedule::{self, Schedule};
use crate::backend::{Kernel, check_buffers};
use crate::ir::{Function, Node};
use cranelift_codegen::Context;
use cranelift_codegen::ir::{AbiParam, FuncRef, Signature, UserFuncName, types};
use cranelift_codegen::settings::{self, Configurable};
use cranelift_frontend::FunctionBuilderContext;
use cranelift_jit::{JITBuilder, JITModule};
use cranelift_module::{FuncId, Linkage, Module, default_libcall_names};
use std::mem::MaybeUninit;
use std::sync::Arc;

/// Why a function could not be compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JitError {
    /// The IR function is malformed (see [`crate::ir::validate`]).
    Invalid(String),
    /// Cranelift rejected the settings, the host, or the generated code.
    Cranelift(String),
}

impl std::fmt::Display for JitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JitError::Invalid(m) => write!(f, "invalid IR: {m}"),
            JitError::Cranelift(m) => write!(f, "cranelift: {m}"),
        }
    }
}

impl std::error::Error for JitError {}

fn cl_err(e: impl std::fmt::Display) -> JitError {
    JitError::Cranelift(e.to_string())
}

/// The machine code of one module; freed when the last kernel using it is dropped.
struct Code(Option<JITModule>);

// SAFETY: after `finalize_definitions` the module is never used again except by `Drop`,
// which runs once, with exclusive access, when the last `Arc` goes away. The code it owns
// is immutable executable memory that any thread may run.
unsafe impl Send for Code {}
unsafe impl Sync for Code {}

impl Drop for Code {
    fn drop(&mut self) {
        if let Some(m) = self.0.take() {
            // SAFETY: no kernel holds this module any more (this is the last `Arc`), so no
            // function pointer into it can be called afterwards or is running now (a running
            // call borrows its kernel, hence the `Arc`).
            unsafe { m.free_memory() };
        }
    }
}

type RawFn = super::NativeEntry;

/// A compiled kernel. Cheap to share between threads: each caller passes its own scratch.
pub struct JitKernel {
    _code: Arc<Code>,
    func: RawFn,
    name: String,
    arg_lens: Vec<usize>,
    out_lens: Vec<usize>,
    scratch_len: usize,
}

impl std::fmt::Debug for JitKernel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JitKernel")
            .field("name", &self.name)
            .field("arg_lens", &self.arg_lens)
            .field("out_lens", &self.out_lens)
            .field("scratch_len", &self.scratch_len)
            .finish()
    }
}

impl JitKernel {
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// Most buffers a call passes without allocating its pointer tables.
const INLINE_PTRS: usize = 8;

impl Kernel for JitKernel {
    fn arg_lens(&self) -> &[usize] {
        &self.arg_lens
    }
    fn out_lens(&self) -> &[usize] {
        &self.out_lens
    }
    fn scratch_len(&self) -> usize {
        self.scratch_len
    }
    fn native(&self) -> Option<super::NativeEntry> {
        Some(self.func)
    }
    #[inline]
    fn call(&self, args: &[&[f64]], outs: &mut [&mut [f64]], scratch: &mut Vec<f64>) {
        check_buffers(&self.name, &self.arg_lens, &self.out_lens, args, outs);
        if scratch.len() < self.scratch_len {
            scratch.resize(self.scratch_len, 0.0);
        }
        let (na, no) = (args.len(), outs.len());
        if na <= INLINE_PTRS && no <= INLINE_PTRS {
            let mut ap = [MaybeUninit::<*const f64>::uninit(); INLINE_PTRS];
            let mut op = [MaybeUninit::<*mut f64>::uninit(); INLINE_PTRS];
            for (p, a) in ap.iter_mut().zip(args) {
                p.write(a.as_ptr());
            }
            for (p, o) in op.iter_mut().zip(outs.iter_mut()) {
                p.write(o.as_mut_ptr());
            }
            // SAFETY: `check_buffers` proved every argument and output buffer has exactly the
            // length the code was compiled for, and `scratch` holds at least `scratch_len`
            // entries; the generated code reads/writes only inside those ranges (every index
            // is a compile-time constant or a loop counter bounded by those lengths) and reads
            // only the first `na`/`no` (initialised) entries of the pointer tables. Outputs are
            // `&mut` (no aliasing with inputs or each other) and scratch is this caller's own.
            // The code stays mapped while `self._code` (an `Arc`) is alive.
            unsafe {
                (self.func)(
                    ap.as_ptr().cast::<*const f64>(),
                    op.as_ptr().cast::<*mut f64>(),
                    scratch.as_mut_ptr(),
                )
            }
        } else {
            let ap: Vec<*const f64> = args.iter().map(|a| a.as_ptr()).collect();
            let op: Vec<*mut f64> = outs.iter_mut().map(|o| o.as_mut_ptr()).collect();
            // SAFETY: as above: lengths checked, buffers disjoint, code alive.
            unsafe { (self.func)(ap.as_ptr(), op.as_ptr(), scratch.as_mut_ptr()) }
        }
    }
}

impl JitKernel {
    /// Calls the compiled code directly, with no checks (for benchmarks and tight loops that
    /// have checked their buffers once).
    ///
    /// # Safety
    /// `args[k]` must point to `arg_lens()[k]` readable f64s, `outs[k]` to `out_lens()[k]`
    /// writable f64s not overlapping any other buffer, and `scratch` to `scratch_len()`
    /// writable f64s used by no other thread during the call.
    #[inline]
    pub unsafe fn call_raw(
        &self,
        args: *const *const f64,
        outs: *const *mut f64,
        scratch: *mut f64,
    ) {
        // SAFETY: the caller's contract above is exactly the generated code's.
        unsafe { (self.func)(args, outs, scratch) }
    }
}

/// A JIT module set up for ndec: opt_level=speed, is_pic=false, no FMA, shims registered.
fn new_module() -> Result<JITModule, JitError> {
    let mut flags = settings::builder();
    flags.set("opt_level", "speed").map_err(cl_err)?;
    flags.set("is_pic", "false").map_err(cl_err)?;
    // The IR verifier guards codegen in debug builds and tests; release builds skip its cost.
    let verify = if cfg!(debug_assertions) {
        "true"
    } else {
        "false"
    };
    flags.set("enable_verifier", verify).map_err(cl_err)?;
    flags
        .set("use_colocated_libcalls", "false")
        .map_err(cl_err)?;
    let mut isa = cranelift_native::builder().map_err(cl_err)?;
    // Never fuse multiply-add (the code never asks for `fma`; this makes sure of it on x86).
    let _ = isa.set("has_fma", "false");
    let isa = isa.finish(settings::Flags::new(flags)).map_err(cl_err)?;
    let mut jb = JITBuilder::with_isa(isa, default_libcall_names());
    for s in shims::table() {
        jb.symbol(s.name, s.ptr);
    }
    jb.symbol(shims::UNARY_SLICE.0, shims::UNARY_SLICE.1);
    for (name, ptr) in shims::LAYER_PRODUCTS {
        jb.symbol(name, ptr);
    }
    Ok(JITModule::new(jb))
}

fn kernel_signature(m: &JITModule) -> Signature {
    let ptr = m.target_config().pointer_type();
    let mut sig = m.make_signature();
    for _ in 0..3 {
        sig.params.push(AbiParam::new(ptr));
    }
    sig
}

/// Builds `f` into `ctx.func` (declared as `id`); returns its schedule.
fn build(
    module: &mut JITModule,
    ctx: &mut Context,
    fctx: &mut FunctionBuilderContext,
    f: &Function,
    id: FuncId,
) -> Result<Schedule, JitError> {
    crate::ir::validate(f).map_err(JitError::Invalid)?;
    let sched = schedule::schedule(f, schedule::UNROLL);
    ctx.func.signature = kernel_signature(module);
    ctx.func.name = UserFuncName::user(0, id.as_u32());
    let need = codegen::needed_shims(f);
    let mut refs: [Option<FuncRef>; 9] = [None; 9];
    for (k, def) in shims::table().iter().enumerate() {
        if need[k] {
            let mut sig = module.make_signature();
            for _ in 0..def.arity {
                sig.params.push(AbiParam::new(types::F64));
            }
            sig.returns.push(AbiParam::new(types::F64));
            let fid = module
                .declare_function(def.name, Linkage::Import, &sig)
                .map_err(cl_err)?;
            refs[k] = Some(module.declare_func_in_func(fid, &mut ctx.func));
        }
    }
    // The whole-vector form, for functions that call a unary shim at all.
    let slice = if need[..8].iter().any(|n| *n) {
        let mut sig = module.make_signature();
        let ptr = module.target_config().pointer_type();
        for t in [types::I64, ptr, types::I64] {
            sig.params.push(AbiParam::new(t));
        }
        let fid = module
            .declare_function(shims::UNARY_SLICE.0, Linkage::Import, &sig)
            .map_err(cl_err)?;
        Some(module.declare_func_in_func(fid, &mut ctx.func))
    } else {
        None
    };
    // The large-layer products, for functions that have one.
    let large = f.nodes.iter().any(|n| match n {
        Node::MatVec { rows, cols, .. } | Node::MatTVec { rows, cols, .. } => {
            crate::math::is_large_layer(*rows as usize, *cols as usize)
        }
        _ => false,
    });
    let mut layers = [None, None];
    if large {
        let ptr = module.target_config().pointer_type();
        for (k, (name, _)) in shims::LAYER_PRODUCTS.iter().enumerate() {
            let mut sig = module.make_signature();
            for t in [ptr, ptr, types::I64, types::I64, ptr] {
                sig.params.push(AbiParam::new(t));
            }
            let fid = module
                .declare_function(name, Linkage::Import, &sig)
                .map_err(cl_err)?;
            layers[k] = Some(module.declare_func_in_func(fid, &mut ctx.func));
        }
    }
    let calls = codegen::Calls {
        scalar: refs,
        slice,
        layers,
    };
    codegen::build(
        &mut ctx.func,
        fctx,
        f,
        &sched,
        calls,
        module.target_config(),
    );
    Ok(sched)
}

/// Compiles one function.
pub fn compile(f: &Function) -> Result<JitKernel, JitError> {
    Ok(compile_all(&[f])?.pop().expect("one kernel"))
}

/// Compiles several functions into one module (one finalisation, shared code memory).
pub fn compile_all(fs: &[&Function]) -> Result<Vec<JitKernel>, JitError> {
    let mut module = new_module()?;
    let mut ctx = module.make_context();
    let mut fctx = FunctionBuilderContext::new();
    let mut built = Vec::with_capacity(fs.len());
    for (i, f) in fs.iter().enumerate() {
        let sig = kernel_signature(&module);
        let sym = format!("ndec_k{i}_{}", f.name);
        let id = module
            .declare_function(&sym, Linkage::Local, &sig)
            .map_err(cl_err)?;
        let sched = build(&mut module, &mut ctx, &mut fctx, f, id)?;
        module
            .define_function(id, &mut ctx)
            .map_err(|e| JitError::Cranelift(format!("{}: {e:?}", f.name)))?;
        module.clear_context(&mut ctx);
        built.push((id, sched.scratch_len));
    }
    module.finalize_definitions().map_err(cl_err)?;
    let ptrs: Vec<*const u8> = built
        .iter()
        .map(|(id, _)| module.get_finalized_function(*id))
        .collect();
    let code = Arc::new(Code(Some(module)));
    Ok(fs
        .iter()
        .zip(built)
        .zip(ptrs)
        .map(|((f, (_, scratch_len)), p)| JitKernel {
            _code: code.clone(),
            // SAFETY: `p` is the finalised code of a function declared with `kernel_signature`
            // (three pointer parameters, no results, the platform's C calling convention).
            func: unsafe { std::mem::transmute::<*const u8, RawFn>(p) },
            name: f.name.clone(),
            arg_lens: f.args.iter().map(|a| a.len).collect(),
            out_lens: f.outputs.iter().map(|(b, _)| b.len).collect(),
            scratch_len,
        })
        .collect())
}

/// The Cranelift IR of `f` (before Cranelift's own optimisation), for `--emit clif`.
pub fn clif_text(f: &Function) -> Result<String, JitError> {
    let mut module = new_module()?;
    let mut ctx = module.make_context();
    let mut fctx = FunctionBuilderContext::new();
    let sig = kernel_signature(&module);
    let id = module
        .declare_function(&format!("ndec_{}", f.name), Linkage::Local, &sig)
        .map_err(cl_err)?;
    build(&mut module, &mut ctx, &mut fctx, f, id)?;
    let text = format!("; {}\n{}", f.name, ctx.func.display());
    module.clear_context(&mut ctx);
    // SAFETY: nothing from this module was finalised or handed out.
    unsafe { module.free_memory() };
    Ok(text)
}

/// The machine code of `f` as Cranelift prints it (after optimisation and register
/// allocation), for `--emit asm` and for looking at what the JIT made.
pub fn disassembly(f: &Function) -> Result<String, JitError> {
    let mut module = new_module()?;
    let mut ctx = module.make_context();
    let mut fctx = FunctionBuilderContext::new();
    let sig = kernel_signature(&module);
    let id = module
        .declare_function(&format!("ndec_{}", f.name), Linkage::Local, &sig)
        .map_err(cl_err)?;
    build(&mut module, &mut ctx, &mut fctx, f, id)?;
    ctx.set_disasm(true);
    module
        .define_function(id, &mut ctx)
        .map_err(|e| JitError::Cranelift(format!("{}: {e:?}", f.name)))?;
    let text = ctx
        .compiled_code()
        .and_then(|c| c.vcode.clone())
        .unwrap_or_default();
    module.clear_context(&mut ctx);
    // SAFETY: nothing from this module was finalised or handed out.
    unsafe { module.free_memory() };
    Ok(text)
}

/// The placement analysis this back end uses for `f` (for tests and diagnostics).
pub fn schedule_of(f: &Function) -> Schedule {
    schedule::schedule(f, schedule::UNROLL)
}
