//! Forward sensitivities: the solver integrates u and S_k = ∂u/∂p_k together
//! (`diff::forward_sensitivity_system`: S' = ∂f/∂u·S + ∂f/∂p) from S(t0) = ∂u0/∂p.
//!
//! Explicit methods: only the state enters the error norm (`SolveOptions::error_components`),
//! so the augmented solve takes exactly the plain solve's steps and — the same Runge–Kutta
//! map applied to the tangent system being the tangent of that map — the result is the
//! derivative of the computed solution, like the discrete adjoint, at a cost that grows
//! with the number of parameters.
//!
//! Stiff methods (rosenbrock23, rodas5, bdf) integrate the same augmented system with its
//! exact Jacobian (generated: the Jacobian of the sensitivity system, second derivatives
//! included), all components under error control: the gradient of the continuous problem
//! to the solve's tolerance.

use super::{Gradient, GradientError, RowLoss, Start};
use crate::backend::Kernel;
use crate::program::{Backend, JacobianKernel, Program, ProgramRhs, with_kernel_args};
use crate::runtime::dde::{self, DdeOptions, DdeRhs};
use crate::runtime::{self, Method, SolveOptions};
use std::sync::{Arc, OnceLock};

/// The augmented vector field `(t, [u, S], p) → [f, f_u S + f_p]` and ∂u0/∂p.
pub struct ForwardKernels {
    /// Sensitivities to the params.
    params: System,
    /// Sensitivities to the params and then to a given initial state (for [`Start::Input`]),
    /// compiled on first use.
    with_state: OnceLock<Result<System, String>>,
    /// Column-major n × np.
    pub initial_jacobian: Arc<dyn Kernel>,
    /// A delay model's ∂φ/∂p `(t, p) → n × np` (column-major: the S layout).
    pub history_jacobian: Option<Arc<dyn Kernel>>,
    vector_field: crate::ir::Function,
}

/// One augmented system: its kernel, its IR, and its Jacobian for stiff methods (compiled
/// on first use: sparse once the system is large — the sensitivity blocks
/// S_k' = f_u S_k + f_{p_k} couple only through u — which for an MLP with hundreds of
/// weights is the difference between a dense n(1+P)-square matrix of generated columns and
/// a few colours).
struct System {
    kernel: Arc<dyn Kernel>,
    ir: crate::ir::Function,
    jacobian: OnceLock<Result<JacobianKernel, String>>,
}

impl System {
    fn new(kernel: Arc<dyn Kernel>, ir: crate::ir::Function) -> System {
        System {
            kernel,
            ir,
            jacobian: OnceLock::new(),
        }
    }

    /// The augmented system's Jacobian when `method` needs one.
    fn jacobian_for(&self, method: Method) -> Result<Option<&JacobianKernel>, GradientError> {
        if !method.is_implicit() {
            return Ok(None);
        }
        self.jacobian
            .get_or_init(|| JacobianKernel::build(&self.ir, "U", Backend::Jit))
            .as_ref()
            .map(Some)
            .map_err(|e| GradientError::Compile(e.clone()))
    }
}

impl ForwardKernels {
    pub fn compile(prog: &Program) -> Result<ForwardKernels, String> {
        let f = &prog.ir.vector_field;
        let sys = crate::diff::forward_sensitivity_system(f, false);
        let init = crate::diff::jacobian_dense(&prog.ir.initial, "p", false);
        let hist = crate::diff::jacobian_dense(&prog.ir.history, "p", false);
        let mut fns = vec![&sys, &init];
        if prog.is_dde() {
            fns.push(&hist);
        }
        let ks = crate::backend::cranelift::compile_all(&fns).map_err(|e| e.to_string())?;
        let mut ks = ks.into_iter().map(|k| Arc::new(k) as Arc<dyn Kernel>);
        Ok(ForwardKernels {
            params: System::new(ks.next().ok_or("missing kernel")?, sys),
            with_state: OnceLock::new(),
            initial_jacobian: ks.next().ok_or("missing kernel")?,
            history_jacobian: match prog.is_dde() {
                true => Some(ks.next().ok_or("missing kernel")?),
                false => None,
            },
            vector_field: f.clone(),
        })
    }

    /// The system for a solve from `start`: with the state columns for [`Start::Input`].
    fn system(&self, start: Start) -> Result<&System, GradientError> {
        if !matches!(start, Start::Input(_)) {
            return Ok(&self.params);
        }
        self.with_state
            .get_or_init(|| {
                let ir = crate::diff::forward_sensitivity_system(&self.vector_field, true);
                let kernel = crate::backend::cranelift::compile(&ir).map_err(|e| e.to_string())?;
                Ok(System::new(Arc::new(kernel), ir))
            })
            .as_ref()
            .map_err(|e| GradientError::Compile(e.clone()))
    }

    /// The augmented `(t, [u, S], p)` kernel of the params' sensitivities.
    pub fn system_kernel(&self) -> &Arc<dyn Kernel> {
        &self.params.kernel
    }
}

/// The number of sensitivity blocks of a solve from `start` over `np` params and `n` states.
fn blocks(start: Start, n: usize, np: usize) -> usize {
    np + if matches!(start, Start::Input(_)) {
        n
    } else {
        0
    }
}

/// The augmented start `[u0, ∂u0/∂p(, I)]` (overridden entries and a given state: zero
/// rows of ∂u0/∂p; a given input state: the identity in the state columns).
fn augmented_start(prog: &Program, kernels: &ForwardKernels, p: &[f64], start: Start) -> Vec<f64> {
    let n = prog.dim();
    let np = p.len();
    let dim = n * (1 + blocks(start, n, np));
    let mut big = vec![0.0; dim];
    big[..n].copy_from_slice(&start.state(prog, p));
    match start {
        Start::State(_) => {}
        Start::Input(_) => {
            for j in 0..n {
                big[n * (1 + np + j) + j] = 1.0;
            }
        }
        Start::Model | Start::Override(_) => {
            kernels
                .initial_jacobian
                .call(&[p], &mut [&mut big[n..n * (1 + np)]], &mut Vec::new());
            // Overridden entries are constants: their rows of ∂u0/∂p are zero.
            if let Start::Override(set) = start {
                for (i, _) in set {
                    for k in 0..np {
                        big[n + k * n + i] = 0.0;
                    }
                }
            }
        }
    }
    big
}

/// The loss at the state part of the augmented solution's rows and its gradient: the
/// loss's seeds against the saved sensitivities, plus its direct ∂L/∂p (and, from
/// [`Start::Input`], the cotangent of the start state against the state columns).
fn loss_and_gradient(
    sol: &runtime::Solution,
    n: usize,
    np: usize,
    start: Start,
    loss: &dyn RowLoss,
) -> Gradient {
    let rows = sol.len();
    let mut u = Vec::with_capacity(rows * n);
    for r in 0..rows {
        u.extend_from_slice(&sol.row(r)[..n]);
    }
    let mut seeds = vec![0.0; rows * n];
    let mut grad = vec![0.0; np];
    let value = loss.eval(&sol.t, &u, n, &mut seeds, &mut grad);
    let mut cotangent = vec![0.0; blocks(start, n, np) - np];
    for r in 0..rows {
        let row = sol.row(r);
        let seed = &seeds[r * n..(r + 1) * n];
        let dot = |k: usize| -> f64 {
            let s = &row[n * (1 + k)..n * (2 + k)];
            seed.iter().zip(s).map(|(a, b)| a * b).sum()
        };
        for (k, g) in grad.iter_mut().enumerate() {
            *g += dot(k);
        }
        for (j, c) in cotangent.iter_mut().enumerate() {
            *c += dot(np + j);
        }
    }
    Gradient {
        loss: value,
        grad,
        start: start.input_cotangent(&cotangent),
        stats: sol.stats,
    }
}

/// The options of the augmented solve: explicit methods control the error of the state
/// only (the plain solve's steps); per-entry atol repeated over the sensitivities.
fn augmented_options(opts: &SolveOptions, n: usize, dim: usize) -> SolveOptions {
    let mut o = opts.clone();
    o.error_components = (!opts.method.is_implicit()).then_some(n);
    if o.atol.len() > 1 {
        let per = o.atol.clone();
        o.atol = (0..dim).map(|i| per[i % n]).collect();
    }
    o
}

/// The loss and its gradient by forward sensitivities.
pub fn gradient(
    prog: &Program,
    kernels: &ForwardKernels,
    p: &[f64],
    start: Start,
    opts: &SolveOptions,
    loss: &dyn RowLoss,
) -> Result<Gradient, GradientError> {
    let n = prog.dim();
    let np = p.len();
    let dim = n * (1 + blocks(start, n, np));
    let big = augmented_start(prog, kernels, p, start);
    let o = augmented_options(opts, n, dim);
    let system = kernels.system(start)?;
    let jacobian = system.jacobian_for(opts.method)?;
    // ∂/∂t of the augmented system is left to the Rosenbrock methods' forward difference.
    let mut rhs = ProgramRhs::bind(system.kernel.as_ref(), jacobian, None, p, dim);
    let sol = runtime::solve_any(&mut rhs, &big, &o)?;
    Ok(loss_and_gradient(&sol, n, np, start, loss))
}

/// The augmented delay equation `(u, S)`: the same delays, history `(φ, ∂φ/∂p)`.
struct AugmentedDde<'a> {
    kernels: &'a ForwardKernels,
    system: &'a Arc<dyn Kernel>,
    jacobian: Option<&'a JacobianKernel>,
    p: &'a [f64],
    tau: Vec<f64>,
    t: [f64; 1],
    scratch: Vec<f64>,
    work: Vec<f64>,
    /// The model's history kernel `(t, p) → φ`.
    history: &'a dyn Kernel,
    n: usize,
    dim: usize,
}

impl AugmentedDde<'_> {
    fn with_args<R>(&self, u: &[f64], lags: &[f64], f: impl FnOnce(&[&[f64]]) -> R) -> R {
        with_kernel_args(&self.t, u, self.p, lags, (self.dim, self.tau.len()), f)
    }
}

impl DdeRhs for AugmentedDde<'_> {
    fn dim(&self) -> usize {
        self.dim
    }
    fn delays(&self) -> &[f64] {
        &self.tau
    }
    fn history(&mut self, t: f64, u: &mut [f64]) {
        let (phi, s) = u.split_at_mut(self.n);
        let tt = [t];
        self.history
            .call(&[&tt, self.p], &mut [phi], &mut self.scratch);
        let hj = self
            .kernels
            .history_jacobian
            .as_ref()
            .expect("a delay model");
        // The history does not depend on a given initial state: its state columns are 0.
        let (dphi, state_columns) = s.split_at_mut(self.n * self.p.len());
        hj.call(&[&tt, self.p], &mut [dphi], &mut self.scratch);
        state_columns.fill(0.0);
    }
    fn eval(&mut self, t: f64, u: &[f64], lags: &[f64], du: &mut [f64]) {
        self.t[0] = t;
        let mut scratch = std::mem::take(&mut self.scratch);
        self.with_args(u, lags, |args| {
            self.system.call(args, &mut [du], &mut scratch)
        });
        self.scratch = scratch;
    }
    fn jac(&mut self, t: f64, u: &[f64], lags: &[f64], jac: &mut [f64]) -> bool {
        // A sparse augmented Jacobian (large systems) is left to forward differences here,
        // as for the model's own delay Jacobian.
        let Some(kernel) = self.jacobian else {
            return false;
        };
        let n = self.dim;
        self.t[0] = t;
        let mut work = std::mem::take(&mut self.work);
        let mut scratch = std::mem::take(&mut self.scratch);
        let done = self.with_args(u, lags, |args| {
            kernel.dense_at(args, n, &mut work, &mut scratch, jac)
        });
        self.work = work;
        self.scratch = scratch;
        done
    }
}

/// The loss and its gradient for a delay model by forward sensitivities: the augmented
/// system is a delay equation with the model's delays, solved by the method of steps with
/// the same pieces; with explicit methods it takes the plain solve's steps and its history
/// interpolant is linear in the stages, so the result is the derivative of the computed
/// solution. Delays must not depend on the params being differentiated (refused).
pub fn dde_gradient(
    prog: &Program,
    kernels: &ForwardKernels,
    p: &[f64],
    start: Start,
    opts: &SolveOptions,
    loss: &dyn RowLoss,
) -> Result<Gradient, GradientError> {
    let n = prog.dim();
    let np = p.len();
    let dim = n * (1 + blocks(start, n, np));
    super::delays_are_constant(prog, p)?;
    let tau = prog.delays(p);
    let big = augmented_start(prog, kernels, p, start);
    let o = augmented_options(opts, n, dim);
    let system = kernels.system(start)?;
    let jacobian = system.jacobian_for(opts.method)?;
    let history = prog.dde.as_ref().expect("a delay model").history.as_ref();
    let mut rhs = AugmentedDde {
        kernels,
        system: &system.kernel,
        jacobian,
        p,
        tau,
        t: [0.0],
        scratch: Vec::new(),
        work: Vec::new(),
        history,
        n,
        dim,
    };
    let (sol, _) = dde::solve_dde_history(&mut rhs, &big, &o, &DdeOptions::default())?;
    Ok(loss_and_gradient(&sol, n, np, start, loss))
}
