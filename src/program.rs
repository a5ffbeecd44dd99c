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
use crate::ir::{Function, LowerError, Lowered, ParamLayout};
use crate::runtime::{self, OdeRhs, Solution, SolveError, SolveOptions};
use crate::sema::Model;
use std::sync::Arc;
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
            CompileError::Model(d) => write!(f, "the model has {} error(s)", d.iter().filter(|d| d.is_error()).count()),
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
    /// Time spent lowering and generating code (not parsing).
    pub compile_time: Duration,
}

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
        if let Some(i) = model.inputs.first() {
            return Err(CompileError::Unsupported(LowerError::Unsupported {
                what: "inputs (controlled differential equations): solving with data arrives with the CDE work".into(),
                span: i.span,
            }));
        }
        if model.has_delays() {
            let span = model.states.first().map(|s| s.span).unwrap_or_default();
            return Err(CompileError::Unsupported(LowerError::Unsupported {
                what: "delay differential equations: the DDE solver (method of steps) arrives with the DDE work".into(),
                span,
            }));
        }
        let ir = driver::lower(&model).map_err(CompileError::Unsupported)?;
        let fns = [&ir.vector_field, &ir.initial, &ir.outputs];
        let kernels = build_kernels(&fns, backend)?;
        let [vector_field, initial, outputs]: [Arc<dyn Kernel>; 3] =
            kernels.try_into().map_err(|_| CompileError::Backend("kernel count".into()))?;
        let layout = ir.layout.clone();
        Ok(Program {
            model,
            ir,
            layout,
            vector_field,
            initial,
            outputs,
            compile_time: start.elapsed(),
        })
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
    pub fn rhs<'a>(&'a self, p: &'a [f64]) -> ProgramRhs<'a> {
        assert_eq!(p.len(), self.layout.len, "the parameter vector has the wrong length");
        ProgramRhs {
            kernel: self.vector_field.as_ref(),
            p,
            t: [0.0],
            scratch: vec![0.0; self.vector_field.scratch_len()],
            dim: self.dim(),
        }
    }

    /// Solves from `u0` with parameters `p`.
    pub fn solve(&self, p: &[f64], u0: &[f64], opts: &SolveOptions) -> Result<Solution, SolveError> {
        let mut rhs = self.rhs(p);
        runtime::solve_with(&mut rhs, u0, opts)
    }

    /// Number of output entries (columns after the states).
    pub fn output_len(&self) -> usize {
        self.ir.outputs.outputs[0].0.len
    }

    /// The outputs at every saved row of a solution (row-major, `sol.len() × output_len`).
    pub fn outputs_of(&self, sol: &Solution, p: &[f64]) -> Vec<f64> {
        let n = self.output_len();
        let mut out = vec![0.0; sol.len() * n];
        if n == 0 {
            return out;
        }
        let mut scratch = Vec::new();
        for (i, &t) in sol.t.iter().enumerate() {
            self.outputs
                .call(&[&[t], sol.row(i), p], &mut [&mut out[i * n..(i + 1) * n]], &mut scratch);
        }
        out
    }
}

/// The compiled vector field bound to a parameter vector: an [`OdeRhs`].
pub struct ProgramRhs<'a> {
    kernel: &'a dyn Kernel,
    p: &'a [f64],
    t: [f64; 1],
    scratch: Vec<f64>,
    dim: usize,
}

impl OdeRhs for ProgramRhs<'_> {
    fn dim(&self) -> usize {
        self.dim
    }
    #[inline]
    fn eval(&mut self, t: f64, u: &[f64], du: &mut [f64]) {
        self.t[0] = t;
        self.kernel.call(&[&self.t, u, self.p], &mut [du], &mut self.scratch);
    }
}

fn build_kernels(fns: &[&Function], backend: Backend) -> Result<Vec<Arc<dyn Kernel>>, CompileError> {
    match backend {
        Backend::Interpreter | Backend::Jit => Ok(fns
            .iter()
            .map(|f| Arc::new(Interpreted::new((*f).clone())) as Arc<dyn Kernel>)
            .collect()),
    }
}
