//! The library's front door: compile a model once, then solve it as often as needed.
//!
//! ```no_run
//! use ndec::program::Program;
//! use ndec::runtime::{Method, SaveAt, SolveOptions};
//!
//! let prog = Program::from_source("lv.nde", "
//!     param a = 1.5, b = 1, c = 3, d = 1
//!     state x = 1
//!     state y = 1
//!     x' = a*x - b*x*y
//!     y' = c*x*y - d*y
//! ").expect("the model compiles");
//! let p = prog.default_params();
//! let u0 = prog.initial_state(&p);
//! let mut opts = SolveOptions::new(Method::Tsit5, 0.0, 10.0);
//! opts.saveat = SaveAt::Every(1.0);
//! let sol = prog.solve(&p, &u0, &opts).expect("the solve succeeds");
//! println!("x(10) = {}", sol.last()[0]);
//! ```

use crate::backend::Kernel;
use crate::backend::interp::Interpreted;
use crate::diag::Diagnostic;
use crate::driver::{self, Source};
use crate::ir::{Function, LowerError, Lowered, Node, ParamLayout};
use crate::runtime::sde::{SdeOptions, SdeRhs, SdeSolution};
use crate::runtime::{
    self, Method, OdeJacobian, OdeRhs, Solution, SolveError, SolveOptions, Sparsity,
};
use crate::sema::Model;
use crate::stochastic::NoiseInfo;
use std::sync::{Arc, OnceLock};

mod dde;
pub(crate) use dde::with_kernel_args;
pub use dde::{DdeKernels, DdeRefusal, ProgramDde};
use std::time::{Duration, Instant};

/// Which back end runs the kernels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Backend {
    /// Native code through Cranelift (the default).
    #[default]
    Jit,
    /// The reference interpreter (slow; the semantics every back end is tested against).
    Interpreter,
}

/// Why a model could not be compiled.
#[derive(Debug)]
pub enum CompileError {
    /// The model has errors; render them with [`crate::diag::render`].
    Model(Vec<Diagnostic>),
    /// The model uses something this version cannot compile yet.
    Unsupported(LowerError),
    /// The back end failed (an internal error).
    Backend(String),
}

impl std::fmt::Display for CompileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CompileError::Model(d) => write!(
                f,
                "the model has {} error(s)",
                d.iter().filter(|d| d.is_error()).count()
            ),
            CompileError::Unsupported(e) => write!(f, "{e}"),
            CompileError::Backend(e) => write!(f, "code generation failed: {e}"),
        }
    }
}

impl std::error::Error for CompileError {}

/// A compiled model: the checked model, its IR, and a kernel for each IR function.
pub struct Program {
    pub model: Model,
    pub ir: Lowered,
    pub layout: ParamLayout,
    pub vector_field: Arc<dyn Kernel>,
    pub initial: Arc<dyn Kernel>,
    pub outputs: Arc<dyn Kernel>,
    /// The SDE kernels, for a model with `brownian` noise (`vector_field` is then its drift).
    pub sde: Option<SdeKernels>,
    /// The delay kernels, for a model with delayed states (`vector_field` then takes the
    /// lagged states after `p`).
    pub dde: Option<DdeKernels>,
    /// Time spent lowering and generating code (not parsing).
    pub compile_time: Duration,
    backend: Backend,
    jacobian: OnceLock<Result<JacobianKernel, String>>,
    time_derivative: OnceLock<Result<TimeDerivative, String>>,
}

/// ∂f/∂t, which Rosenbrock methods need at every step: nothing to compute when the vector
/// field does not read `t`, else the generated JVP of f in the direction of t.
pub enum TimeDerivative {
    Autonomous,
    /// `(t, u, p, dt) -> ddu`, called with dt = 1.
    Kernel(Arc<dyn Kernel>),
    /// The vector field also reads inputs or lagged states, which move with t in ways its IR
    /// does not show: the solver takes a forward difference.
    Unavailable,
}

/// The compiled Jacobian ∂f/∂u: dense (column-major kernel output) for small or dense
/// systems, compressed by column colouring for sparse ones.
pub enum JacobianKernel {
    Dense(Arc<dyn Kernel>),
    Sparse {
        kernel: Arc<dyn Kernel>,
        pattern: Sparsity,
        seeds: Vec<f64>,
        gather: Vec<u32>,
        compressed_len: usize,
    },
}

impl JacobianKernel {
    /// ∂(output 0)/∂(argument `wrt`) of `f`, an `(t, x, p, …)` function: colour-compressed
    /// sparse when x has more than [`DENSE_MAX`] entries and the structural pattern is under
    /// 25% dense, else dense.
    pub(crate) fn build(
        f: &Function,
        wrt: &str,
        backend: Backend,
    ) -> Result<JacobianKernel, String> {
        let n = f.args[f.arg_index(wrt).expect("differentiate w.r.t. an argument")].len;
        let sparse = if n > DENSE_MAX {
            crate::diff::jacobian_sparse(f, wrt)
        } else {
            None
        };
        match sparse {
            Some(sj) if sj.pattern.density() < 0.25 => {
                let kernel = build_kernels(&[&sj.function], backend)
                    .map_err(|e| e.to_string())?
                    .remove(0);
                let pattern = Sparsity {
                    n,
                    row_ptr: sj.pattern.row_ptr.clone(),
                    cols: sj.pattern.cols.clone(),
                };
                Ok(JacobianKernel::Sparse {
                    kernel,
                    pattern,
                    compressed_len: sj.colours * n,
                    seeds: sj.seeds,
                    gather: sj.gather,
                })
            }
            _ => {
                let jf = crate::diff::jacobian_dense(f, wrt, false);
                let kernel = build_kernels(&[&jf], backend)
                    .map_err(|e| e.to_string())?
                    .remove(0);
                Ok(JacobianKernel::Dense(kernel))
            }
        }
    }

    /// The pattern, for a sparse kernel.
    pub(crate) fn sparsity(&self) -> Option<&Sparsity> {
        match self {
            JacobianKernel::Sparse { pattern, .. } => Some(pattern),
            JacobianKernel::Dense(_) => None,
        }
    }

    /// The dense n × n Jacobian, row-major, at `args` = (t, x, p).
    pub(crate) fn dense(
        &self,
        args: [&[f64]; 3],
        n: usize,
        work: &mut Vec<f64>,
        scratch: &mut Vec<f64>,
        jac: &mut [f64],
    ) {
        match self {
            JacobianKernel::Dense(_) => {
                self.dense_at(&args, n, work, scratch, jac);
            }
            JacobianKernel::Sparse { pattern, .. } => {
                jac.fill(0.0);
                let mut vals = vec![0.0; pattern.nnz()];
                self.sparse_values(args, work, scratch, &mut vals);
                for i in 0..n {
                    let row = pattern.row_ptr[i]..pattern.row_ptr[i + 1];
                    for (nz, &j) in row.clone().zip(&pattern.cols[row]) {
                        jac[i * n + j] = vals[nz];
                    }
                }
            }
        }
    }

    /// A dense kernel's n × n Jacobian, row-major, at the function's own arguments `args`
    /// (a delay model's lagged states included). False for a sparse kernel, whose seeds
    /// follow (t, x, p) only: the caller then takes forward differences.
    pub(crate) fn dense_at(
        &self,
        args: &[&[f64]],
        n: usize,
        work: &mut Vec<f64>,
        scratch: &mut Vec<f64>,
        jac: &mut [f64],
    ) -> bool {
        let JacobianKernel::Dense(k) = self else {
            return false;
        };
        work.resize(n * n, 0.0);
        k.call(args, &mut [work], scratch);
        column_to_row_major(work, jac, n);
        true
    }

    /// A sparse kernel's values at `args` = (t, x, p), in the order of its pattern.
    pub(crate) fn sparse_values(
        &self,
        args: [&[f64]; 3],
        work: &mut Vec<f64>,
        scratch: &mut Vec<f64>,
        values: &mut [f64],
    ) {
        let JacobianKernel::Sparse {
            kernel,
            seeds,
            gather,
            compressed_len,
            ..
        } = self
        else {
            unreachable!("sparse values are only read from a sparse kernel")
        };
        work.resize(*compressed_len, 0.0);
        kernel.call(&[args[0], args[1], args[2], seeds], &mut [work], scratch);
        for (v, &g) in values.iter_mut().zip(gather.iter()) {
            *v = work[g as usize];
        }
    }
}

/// The compiled kernels of an SDE (see [`crate::stochastic`]).
pub struct SdeKernels {
    /// `(t, u, p, dw) -> (f_ito, G dw)`.
    pub ito: Arc<dyn Kernel>,
    /// `(t, u, p, dw) -> (f_strat, G dw)`.
    pub stratonovich: Arc<dyn Kernel>,
    /// `(t, u, p, dw) -> (f_strat, G dw, ½ (∂(G dw)/∂u)(G dw))`.
    pub milstein: Arc<dyn Kernel>,
    /// `(t, u, p) -> (f_strat, G)` (G's diagonal for diagonal noise).
    pub drift_diffusion: Arc<dyn Kernel>,
    pub noise: NoiseInfo,
    /// Number of Wiener processes.
    pub m: usize,
}

/// Systems up to this size always get a dense Jacobian.
const DENSE_MAX: usize = 48;

impl Program {
    /// Parses, checks and compiles a model's text with the JIT.
    pub fn from_source(name: &str, text: &str) -> Result<Program, CompileError> {
        Program::compile(&Source::new(name, text), Backend::Jit)
    }

    pub fn compile(src: &Source, backend: Backend) -> Result<Program, CompileError> {
        let model = driver::check(src).map_err(CompileError::Model)?;
        Program::from_model(model, backend)
    }

    pub fn from_model(model: Model, backend: Backend) -> Result<Program, CompileError> {
        let start = Instant::now();
        let entries = model.entry_count();
        if entries > crate::limits::MAX_MODEL_ENTRIES {
            let span = model.states.first().map(|s| s.span).unwrap_or_default();
            return Err(CompileError::Unsupported(LowerError::Unsupported {
                what: format!(
                    "a model of {entries} scalar entries (states, params and net weights): this version compiles at most {}",
                    crate::limits::MAX_MODEL_ENTRIES
                ),
                span,
            }));
        }
        if let Some(i) = model.inputs.first() {
            return Err(CompileError::Unsupported(LowerError::Unsupported {
                what: "inputs (controlled differential equations): solving with data arrives with the CDE work".into(),
                span: i.span,
            }));
        }
        if model.has_delays() && !model.noises.is_empty() {
            let span = model.states.first().map(|s| s.span).unwrap_or_default();
            return Err(CompileError::Unsupported(LowerError::Unsupported {
                what:
                    "stochastic delay equations (`brownian` noise and delayed states in one model)"
                        .into(),
                span,
            }));
        }
        let ir = driver::lower(&model).map_err(CompileError::Unsupported)?;
        let mut fns = vec![&ir.vector_field, &ir.initial, &ir.outputs];
        if model.has_delays() {
            fns.extend([&ir.delays, &ir.history]);
        }
        if let Some(s) = &ir.sde {
            fns.extend([
                &s.step_ito,
                &s.step_stratonovich,
                &s.step_milstein,
                &s.drift_diffusion,
            ]);
        }
        let mut kernels = build_kernels(&fns, backend)?.into_iter();
        let mut next = || {
            kernels
                .next()
                .ok_or_else(|| CompileError::Backend("kernel count".into()))
        };
        let (vector_field, initial, outputs) = (next()?, next()?, next()?);
        let dde = match model.has_delays() {
            true => Some(DdeKernels {
                delays: next()?,
                history: next()?,
            }),
            false => None,
        };
        let sde = match &ir.sde {
            Some(s) => Some(SdeKernels {
                ito: next()?,
                stratonovich: next()?,
                milstein: next()?,
                drift_diffusion: next()?,
                noise: s.noise,
                m: s.m,
            }),
            None => None,
        };
        let layout = ir.layout.clone();
        Ok(Program {
            model,
            ir,
            layout,
            vector_field,
            initial,
            outputs,
            sde,
            dde,
            compile_time: start.elapsed(),
            backend,
            jacobian: OnceLock::new(),
            time_derivative: OnceLock::new(),
        })
    }

    /// The Jacobian kernel, generated and compiled on first use (only stiff methods need it).
    pub fn jacobian(&self) -> Result<&JacobianKernel, String> {
        self.jacobian
            .get_or_init(|| self.build_jacobian())
            .as_ref()
            .map_err(Clone::clone)
    }

    /// ∂f/∂t, generated and compiled on first use (only Rosenbrock methods need it).
    pub fn time_derivative(&self) -> Result<&TimeDerivative, String> {
        self.time_derivative
            .get_or_init(|| self.build_time_derivative())
            .as_ref()
            .map_err(Clone::clone)
    }

    fn build_time_derivative(&self) -> Result<TimeDerivative, String> {
        let f = &self.ir.vector_field;
        if f.args.len() != 3 {
            return Ok(TimeDerivative::Unavailable);
        }
        let t = f.arg_index("t").expect("the vector field takes t");
        if !f
            .nodes
            .iter()
            .any(|n| matches!(n, Node::Arg(k) if *k as usize == t))
        {
            return Ok(TimeDerivative::Autonomous);
        }
        let df = crate::diff::jvp(f, &["t"], false);
        let kernel = build_kernels(&[&df], self.backend)
            .map_err(|e| e.to_string())?
            .remove(0);
        Ok(TimeDerivative::Kernel(kernel))
    }

    /// Generates and compiles what `method` needs beyond the vector field: the Jacobian for
    /// an implicit method, and ∂f/∂t for a Rosenbrock method. Done by [`Program::solve`]; a
    /// caller that times the solve separately calls it first.
    pub fn prepare_method(&self, method: Method) -> Result<(), String> {
        if method.is_implicit() {
            self.jacobian()
                .map_err(|e| format!("cannot compile the Jacobian: {e}"))?;
        }
        if method.is_rosenbrock() {
            self.time_derivative()
                .map_err(|e| format!("cannot compile the time derivative: {e}"))?;
        }
        Ok(())
    }

    fn build_jacobian(&self) -> Result<JacobianKernel, String> {
        JacobianKernel::build(&self.ir.vector_field, "u", self.backend)
    }

    /// Number of scalar state entries.
    pub fn dim(&self) -> usize {
        self.model.state_len()
    }

    /// The parameter vector with every default and every net initialised from its seed.
    pub fn default_params(&self) -> Vec<f64> {
        crate::params::defaults(&self.model, &self.layout)
    }

    /// Initial state for parameters `p`.
    pub fn initial_state(&self, p: &[f64]) -> Vec<f64> {
        let mut u0 = vec![0.0; self.dim()];
        let mut scratch = Vec::new();
        self.initial.call(&[p], &mut [&mut u0], &mut scratch);
        u0
    }

    /// The vector field with parameters `p`, as the solver sees it.
    ///
    /// Panics for a delay model, whose vector field also takes lagged states: use
    /// [`Program::dde_rhs`].
    pub fn rhs<'a>(&'a self, p: &'a [f64]) -> ProgramRhs<'a> {
        assert!(
            self.dde.is_none(),
            "a delay model's vector field needs lagged states: use Program::dde_rhs"
        );
        assert_eq!(
            p.len(),
            self.layout.len,
            "the parameter vector has the wrong length"
        );
        ProgramRhs::bind(
            self.vector_field.as_ref(),
            self.jacobian.get().and_then(|j| j.as_ref().ok()),
            self.time_derivative.get().and_then(|d| d.as_ref().ok()),
            p,
            self.dim(),
        )
    }

    /// Solves from `u0` with parameters `p` (stiff methods compile the Jacobian first).
    pub fn solve(
        &self,
        p: &[f64],
        u0: &[f64],
        opts: &SolveOptions,
    ) -> Result<Solution, SolveError> {
        if self.sde.is_some() {
            return Err(SolveError {
                t: opts.t0,
                reason: runtime::FailReason::InvalidInput(
                    "the model is an SDE: solve it with `solve_sde` and an SDE method".into(),
                ),
                stats: Default::default(),
            });
        }
        if self.dde.is_some() {
            return self
                .solve_dde(p, u0, opts, &runtime::dde::DdeOptions::default())
                .map(|(sol, _)| sol);
        }
        if let Err(e) = self.prepare_method(opts.method) {
            return Err(SolveError {
                t: opts.t0,
                reason: runtime::FailReason::InvalidInput(e),
                stats: Default::default(),
            });
        }
        let mut rhs = self.rhs(p);
        runtime::solve_any(&mut rhs, u0, opts)
    }

    /// The SDE kernels bound to a parameter vector (`None` for an ODE).
    pub fn sde_rhs<'a>(&'a self, p: &'a [f64]) -> Option<ProgramSde<'a>> {
        assert_eq!(
            p.len(),
            self.layout.len,
            "the parameter vector has the wrong length"
        );
        let k = self.sde.as_ref()?;
        Some(ProgramSde::new(k, p, self.dim()))
    }

    /// Solves an SDE model on trajectory (`opts.seed`, `opts.traj`)'s Brownian path.
    pub fn solve_sde(
        &self,
        p: &[f64],
        u0: &[f64],
        opts: &SdeOptions,
    ) -> Result<SdeSolution, SolveError> {
        match self.sde_rhs(p) {
            Some(mut rhs) => runtime::sde::solve_sde(&mut rhs, u0, opts),
            None => Err(SolveError {
                t: opts.t0,
                reason: runtime::FailReason::InvalidInput(
                    "the model has no `brownian` noise: solve it as an ODE".into(),
                ),
                stats: Default::default(),
            }),
        }
    }

    /// Solves several trajectories of an SDE model, each with its params, initial state and
    /// options (usually differing only in `traj`), in lockstep where the method allows:
    /// results bit-identical to [`Program::solve_sde`] one by one.
    pub fn solve_sde_many(
        &self,
        p: &[&[f64]],
        u0: &[&[f64]],
        opts: &[SdeOptions],
    ) -> Vec<Result<SdeSolution, SolveError>> {
        if self.sde.is_none() {
            return opts
                .iter()
                .zip(p)
                .zip(u0)
                .map(|((o, p), u)| self.solve_sde(p, u, o))
                .collect();
        }
        let mut rhs: Vec<ProgramSde<'_>> = p
            .iter()
            .map(|p| self.sde_rhs(p).expect("an SDE program"))
            .collect();
        runtime::sde::solve_sde_many(&mut rhs, u0, opts)
    }

    /// Number of output entries (columns after the states).
    pub fn output_len(&self) -> usize {
        self.ir.outputs.outputs[0].0.len
    }

    /// The outputs at every saved row of a solution (row-major, `sol.len() × output_len`).
    /// Panics for a delay model (its outputs may read lagged states): use
    /// [`Program::dde_outputs_of`].
    pub fn outputs_of(&self, sol: &Solution, p: &[f64]) -> Vec<f64> {
        assert!(
            self.dde.is_none(),
            "a delay model's outputs need its history: use Program::dde_outputs_of"
        );
        let n = self.output_len();
        let mut out = vec![0.0; sol.len() * n];
        if n == 0 {
            return out;
        }
        let mut scratch = Vec::new();
        for (i, &t) in sol.t.iter().enumerate() {
            self.outputs.call(
                &[&[t], sol.row(i), p],
                &mut [&mut out[i * n..(i + 1) * n]],
                &mut scratch,
            );
        }
        out
    }
}

/// The compiled vector field (and its Jacobian, once compiled) bound to a parameter
/// vector: what the solvers see.
pub struct ProgramRhs<'a> {
    kernel: &'a dyn Kernel,
    native: Option<crate::backend::NativeEntry>,
    jacobian: Option<&'a JacobianKernel>,
    /// `None` until [`Program::time_derivative`] has been built: Rosenbrock methods then
    /// take a forward difference.
    time_derivative: Option<&'a TimeDerivative>,
    p: &'a [f64],
    t: [f64; 1],
    scratch: Vec<f64>,
    /// The Jacobian kernel's raw output (column-major or compressed).
    work: Vec<f64>,
    dim: usize,
}

impl<'a> ProgramRhs<'a> {
    /// A `(t, x, p) -> dx` kernel over `dim` entries, with what stiff methods need, bound to
    /// `p`: the model's own vector field ([`Program::rhs`]) or the augmented system of forward
    /// sensitivities.
    pub(crate) fn bind(
        kernel: &'a dyn Kernel,
        jacobian: Option<&'a JacobianKernel>,
        time_derivative: Option<&'a TimeDerivative>,
        p: &'a [f64],
        dim: usize,
    ) -> ProgramRhs<'a> {
        // The direct entry is used only when the kernel's ABI is exactly (t, x, p) -> dx,
        // which is checked here once instead of on every call.
        let native = kernel
            .native()
            .filter(|_| kernel.arg_lens() == [1, dim, p.len()] && kernel.out_lens() == [dim]);
        ProgramRhs {
            kernel,
            native,
            jacobian,
            time_derivative,
            p,
            t: [0.0],
            scratch: vec![0.0; kernel.scratch_len()],
            work: Vec::new(),
            dim,
        }
    }

    fn jacobian_kernel(&self) -> &'a JacobianKernel {
        self.jacobian
            .expect("Program::solve compiles the Jacobian before a stiff solve")
    }
}

impl OdeJacobian for ProgramRhs<'_> {
    fn jac(&mut self, t: f64, u: &[f64], jac: &mut [f64]) {
        self.t[0] = t;
        let k = self.jacobian_kernel();
        k.dense(
            [&self.t, u, self.p],
            self.dim,
            &mut self.work,
            &mut self.scratch,
            jac,
        );
    }

    fn time_derivative(&mut self, t: f64, u: &[f64], dfdt: &mut [f64]) -> bool {
        match self.time_derivative {
            None | Some(TimeDerivative::Unavailable) => false,
            Some(TimeDerivative::Autonomous) => {
                dfdt.fill(0.0);
                true
            }
            Some(TimeDerivative::Kernel(k)) => {
                self.t[0] = t;
                k.call(
                    &[&self.t, u, self.p, &[1.0]],
                    &mut [dfdt],
                    &mut self.scratch,
                );
                true
            }
        }
    }

    fn sparsity(&self) -> Option<&Sparsity> {
        self.jacobian_kernel().sparsity()
    }

    fn jac_sparse(&mut self, t: f64, u: &[f64], values: &mut [f64]) {
        self.t[0] = t;
        let k = self.jacobian_kernel();
        k.sparse_values(
            [&self.t, u, self.p],
            &mut self.work,
            &mut self.scratch,
            values,
        );
    }
}

impl OdeRhs for ProgramRhs<'_> {
    fn dim(&self) -> usize {
        self.dim
    }
    #[inline]
    fn eval(&mut self, t: f64, u: &[f64], du: &mut [f64]) {
        self.t[0] = t;
        match self.native {
            Some(entry) => {
                assert!(
                    u.len() == self.dim && du.len() == self.dim,
                    "state buffers of the wrong length"
                );
                let args = [self.t.as_ptr(), u.as_ptr(), self.p.as_ptr()];
                let outs = [du.as_mut_ptr()];
                // SAFETY: `Program::rhs` checked that this kernel's ABI is (t[1], u[dim],
                // p[p.len()]) -> du[dim]; `u` and `du` were checked just above, `self.t` and
                // `self.p` have those lengths by construction, and `scratch` was sized to the
                // kernel's `scratch_len`. `du` is `&mut`, so it aliases no input. The code is
                // alive: `self.kernel` borrows the kernel that owns it.
                unsafe { entry(args.as_ptr(), outs.as_ptr(), self.scratch.as_mut_ptr()) }
            }
            None => self
                .kernel
                .call(&[&self.t, u, self.p], &mut [du], &mut self.scratch),
        }
    }
}

/// A Jacobian kernel's column-major n × n output into the row-major layout the solvers read.
fn column_to_row_major(col: &[f64], row: &mut [f64], n: usize) {
    for i in 0..n {
        for j in 0..n {
            row[i * n + j] = col[j * n + i];
        }
    }
}

fn build_kernels(
    fns: &[&Function],
    backend: Backend,
) -> Result<Vec<Arc<dyn Kernel>>, CompileError> {
    match backend {
        Backend::Interpreter => Ok(fns
            .iter()
            .map(|f| Arc::new(Interpreted::new((*f).clone())) as Arc<dyn Kernel>)
            .collect()),
        Backend::Jit => {
            let ks = crate::backend::cranelift::compile_all(fns)
                .map_err(|e| CompileError::Backend(e.to_string()))?;
            Ok(ks
                .into_iter()
                .map(|k| Arc::new(k) as Arc<dyn Kernel>)
                .collect())
        }
    }
}

/// The SDE kernels bound to a parameter vector: what the SDE solvers see.
pub struct ProgramSde<'a> {
    k: &'a SdeKernels,
    p: &'a [f64],
    t: [f64; 1],
    n: usize,
    scratch: Vec<f64>,
    /// Per kernel (ito, stratonovich, milstein, drift_diffusion): its native entry when its
    /// argument lengths are (t[1], u[n], p[np][, dw[m]]), checked once here.
    entries: [Option<crate::backend::NativeEntry>; 4],
    /// Per kernel, its output lengths.
    out_lens: [Vec<usize>; 4],
}

impl<'a> ProgramSde<'a> {
    fn new(k: &'a SdeKernels, p: &'a [f64], n: usize) -> ProgramSde<'a> {
        let kernels = [&k.ito, &k.stratonovich, &k.milstein, &k.drift_diffusion];
        let scratch = kernels.iter().map(|k| k.scratch_len()).max().unwrap_or(0);
        let entries = std::array::from_fn(|i| {
            let kernel = kernels[i];
            let want: &[usize] = if i == 3 {
                &[1, n, p.len()]
            } else {
                &[1, n, p.len(), k.m]
            };
            kernel.native().filter(|_| kernel.arg_lens() == want)
        });
        ProgramSde {
            k,
            p,
            t: [0.0],
            n,
            scratch: vec![0.0; scratch],
            entries,
            out_lens: std::array::from_fn(|i| kernels[i].out_lens().to_vec()),
        }
    }

    fn kernel(&self, which: usize) -> &'a dyn Kernel {
        let k = self.k;
        match which {
            0 => k.ito.as_ref(),
            1 => k.stratonovich.as_ref(),
            2 => k.milstein.as_ref(),
            _ => k.drift_diffusion.as_ref(),
        }
    }

    /// Calls kernel `which` on (t, u, p[, dw]): the native entry when there is one (after
    /// checking the state, noise and output lengths), else through [`Kernel::call`].
    fn call(
        &mut self,
        which: usize,
        t: f64,
        u: &[f64],
        dw: Option<&[f64]>,
        outs: &mut [&mut [f64]],
    ) {
        self.t[0] = t;
        match self.entries[which] {
            Some(entry) => {
                let out_lens = &self.out_lens[which];
                assert!(
                    u.len() == self.n
                        && dw.is_none_or(|d| d.len() == self.k.m)
                        && outs.len() == out_lens.len()
                        && outs.iter().zip(out_lens).all(|(o, &l)| o.len() == l),
                    "SDE kernel buffers of the wrong length"
                );
                let args = [
                    self.t.as_ptr(),
                    u.as_ptr(),
                    self.p.as_ptr(),
                    dw.map_or(std::ptr::null(), |d| d.as_ptr()),
                ];
                let mut op: [*mut f64; 3] = [std::ptr::null_mut(); 3];
                for (o, slot) in outs.iter_mut().zip(op.iter_mut()) {
                    *slot = o.as_mut_ptr();
                }
                // SAFETY: `ProgramSde::new` checked this kernel's argument lengths against
                // (t[1], u[n], p[p.len()][, dw[m]]) and sized `scratch` to the largest
                // scratch_len; `u`, `dw` and every output were checked just above. Outputs
                // are `&mut` slices, so they alias no input. The code is alive while `self.k`
                // borrows the kernel that owns it.
                unsafe { entry(args.as_ptr(), op.as_ptr(), self.scratch.as_mut_ptr()) }
            }
            None => {
                let mut args: Vec<&[f64]> = vec![&self.t, u, self.p];
                args.extend(dw);
                self.kernel(which).call(&args, outs, &mut self.scratch)
            }
        }
    }
}

impl SdeRhs for ProgramSde<'_> {
    fn dim(&self) -> usize {
        self.n
    }
    fn noise_dim(&self) -> usize {
        self.k.m
    }
    fn commutative(&self) -> bool {
        self.k.noise.commutative
    }
    fn diagonal(&self) -> bool {
        self.k.noise.class == crate::stochastic::NoiseClass::Diagonal
    }
    fn ito(&mut self, t: f64, u: &[f64], dw: &[f64], f: &mut [f64], gdw: &mut [f64]) {
        self.call(0, t, u, Some(dw), &mut [f, gdw]);
    }
    fn stratonovich(&mut self, t: f64, u: &[f64], dw: &[f64], f: &mut [f64], gdw: &mut [f64]) {
        self.call(1, t, u, Some(dw), &mut [f, gdw]);
    }
    fn milstein(
        &mut self,
        t: f64,
        u: &[f64],
        dw: &[f64],
        f: &mut [f64],
        gdw: &mut [f64],
        mil: &mut [f64],
    ) {
        self.call(2, t, u, Some(dw), &mut [f, gdw, mil]);
    }
    fn drift_diffusion(&mut self, t: f64, u: &[f64], f: &mut [f64], g: &mut [f64]) {
        self.call(3, t, u, None, &mut [f, g]);
    }
}
