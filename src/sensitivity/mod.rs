//! Gradients of a loss on a solution with respect to every param and net weight.
//!
//! Each method is a strategy around the shared stepping loop, all returning dL/dp for the
//! whole parameter vector (scalar params, then net weights, `ParamLayout` order):
//! - [`forward`]: forward sensitivities, the augmented system (u, ∂u/∂p) integrated with the
//!   plain solve's steps (few parameters);
//! - [`discrete`]: the adjoint of the explicit solver's own steps, with checkpoints — the
//!   exact gradient of the computed loss;
//! - [`continuous`]: the adjoint ODE integrated backward: `backsolve` (the state re-integrated
//!   backward alongside), `interpolating` (the state from the forward dense output) and
//!   `quadrature` (interpolating state, the parameter integral by Gauss–Legendre quadrature
//!   per backward step).
//!
//! - [`sde`]: gradients of SDE losses on a fixed Brownian path: the discrete adjoint of
//!   Euler–Maruyama, and the choice among the SDE adjoints;
//! - [`reversible_heun`]: the reversible-Heun adjoint (steps reconstructed backward from the
//!   final state, O(1) memory in the number of steps) and its stored-steps twin.
//!
//! - [`dde`]: for delay models, the discrete adjoint of the method of steps; forward
//!   sensitivities for them are [`forward::dde_gradient`].
//!
//! Losses are [`RowLoss`]es on the saved rows. Owns the differentiation of solves; must never
//! parse models or choose optimisers (that is `train`).

pub mod continuous;
pub mod dde;
pub mod discrete;
pub mod forward;
pub mod reversible_heun;
pub mod sde;

use crate::backend::Kernel;
use crate::program::Program;
use crate::runtime::{Method, SolveError, SolveOptions, Stats};
use std::sync::{Arc, OnceLock};

/// A sensitivity method (LANGUAGE.md §6 "Sensitivity names").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sensitivity {
    Forward,
    Discrete,
    Backsolve,
    Interpolating,
    Quadrature,
    /// The reversible-Heun adjoint of an SDE (Kidger et al. 2021): the forward steps are
    /// reconstructed backward from the final state. SDEs with `reversible_heun` only.
    Reversible,
}

impl Sensitivity {
    /// The ODE sensitivities (`reversible` is an SDE's only).
    pub const ALL: [Sensitivity; 5] = [
        Sensitivity::Forward,
        Sensitivity::Discrete,
        Sensitivity::Backsolve,
        Sensitivity::Interpolating,
        Sensitivity::Quadrature,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Sensitivity::Forward => "forward",
            Sensitivity::Discrete => "discrete",
            Sensitivity::Backsolve => "backsolve",
            Sensitivity::Interpolating => "interpolating",
            Sensitivity::Quadrature => "quadrature",
            Sensitivity::Reversible => "reversible",
        }
    }

    pub fn from_name(s: &str) -> Option<Sensitivity> {
        Sensitivity::ALL
            .into_iter()
            .chain([Sensitivity::Reversible])
            .find(|m| m.name() == s)
    }

    /// The `auto` choice: forward sensitivities while the augmented system stays small
    /// (n·(1+np) up to 64 entries and at most 8 params, where one forward sweep beats a
    /// forward-plus-backward pass) and for stiff methods (the adjoints here step with
    /// explicit methods) and vern7 (its lazy interpolant is not traced, which the adjoints
    /// need); otherwise the discrete adjoint.
    ///
    /// Delay models always get forward sensitivities (see [`Sensitivity::auto_for`]).
    pub fn auto(n: usize, np: usize, method: Method) -> Sensitivity {
        if (np <= 8 && n * (1 + np) <= 64) || method.is_implicit() || method == Method::Vern7 {
            Sensitivity::Forward
        } else {
            Sensitivity::Discrete
        }
    }
}

impl Sensitivity {
    /// [`Sensitivity::auto`] for a compiled model; a delay model gets the discrete adjoint
    /// only where it exists (tsit5, dopri5), forward sensitivities otherwise. With
    /// `given_start` the start state is differentiated too ([`Start::Input`]): its n columns
    /// count against forward sensitivities like params.
    pub fn auto_for(prog: &Program, method: Method, given_start: bool) -> Sensitivity {
        let columns = prog.layout.len + if given_start { prog.dim() } else { 0 };
        let auto = Sensitivity::auto(prog.dim(), columns, method);
        if prog.is_dde() && !matches!(method, Method::Tsit5 | Method::Dopri5) {
            return Sensitivity::Forward;
        }
        auto
    }
}

/// Where a solve starts.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Start<'a> {
    /// The model's initial state u0(p), differentiated.
    Model,
    /// u0(p) with some entries set to constants (their ∂/∂p is zero).
    Override(&'a [(usize, f64)]),
    /// A given state (a constant: no gradient flows into it).
    State(&'a [f64]),
    /// A given state that is an input of the differentiated map: its cotangent ∂L/∂u(t0)
    /// is returned in [`Gradient::start`]. (Forward sensitivities then also carry ∂u/∂u0,
    /// n more columns; the adjoints get it for free.)
    Input(&'a [f64]),
}

impl Start<'_> {
    /// The start state at params `p`.
    pub fn state(&self, prog: &Program, p: &[f64]) -> Vec<f64> {
        match self {
            Start::State(u) | Start::Input(u) => u.to_vec(),
            Start::Model => prog.initial_state(p),
            Start::Override(set) => {
                let mut u = prog.initial_state(p);
                for (i, x) in *set {
                    u[*i] = *x;
                }
                u
            }
        }
    }

    /// The cotangent λ0 that flows into u0(p): `None` for a given state; overridden entries
    /// zeroed.
    pub fn model_cotangent(&self, lambda: &[f64]) -> Option<Vec<f64>> {
        match self {
            Start::State(_) | Start::Input(_) => None,
            Start::Model => Some(lambda.to_vec()),
            Start::Override(set) => {
                let mut l = lambda.to_vec();
                for (i, _) in *set {
                    l[*i] = 0.0;
                }
                Some(l)
            }
        }
    }

    /// ∂L/∂u(t0) for [`Gradient::start`]: `Some` exactly for [`Start::Input`].
    pub fn input_cotangent(&self, lambda: &[f64]) -> Option<Vec<f64>> {
        matches!(self, Start::Input(_)).then(|| lambda.to_vec())
    }
}

/// The loss ⟨ȳ, y⟩ for fixed cotangents ȳ of the saved rows (row-major, one row of `dim`
/// per saved time): its gradient is the vector–Jacobian product of the solve map with ȳ.
pub struct Cotangent<'a>(pub &'a [f64]);

impl RowLoss for Cotangent<'_> {
    fn eval(&self, _t: &[f64], u: &[f64], _dim: usize, gu: &mut [f64], _gp: &mut [f64]) -> f64 {
        gu.copy_from_slice(self.0);
        self.0.iter().zip(u).map(|(a, b)| a * b).sum()
    }
}

/// A loss on the saved rows of a solution (and possibly on `p` directly, e.g. through
/// observed outputs that depend on params).
pub trait RowLoss {
    /// Returns L, adds ∂L/∂(saved value) into `grad_u` (the layout of `u`: one row of
    /// `dim` per saved time) and the direct ∂L/∂p into `grad_p`. Both arrive zeroed.
    fn eval(&self, t: &[f64], u: &[f64], dim: usize, grad_u: &mut [f64], grad_p: &mut [f64])
    -> f64;
}

/// A loss, its gradient with respect to every entry of `p`, and the solver's work.
#[derive(Clone, Debug)]
pub struct Gradient {
    pub loss: f64,
    pub grad: Vec<f64>,
    /// ∂L/∂u(t0), the cotangent of the start state: `Some` exactly when the solve started
    /// from [`Start::Input`].
    pub start: Option<Vec<f64>>,
    pub stats: Stats,
}

impl Gradient {
    /// Zero loss and gradient over `np` params, no work: the start of a sum.
    pub fn zero(np: usize) -> Gradient {
        Gradient {
            loss: 0.0,
            grad: vec![0.0; np],
            start: None,
            stats: Stats::default(),
        }
    }
}

#[derive(Debug)]
pub enum GradientError {
    /// The solve (forward or backward) failed.
    Solve(SolveError),
    /// The method cannot handle this model or solver (the message says what to use).
    Unsupported(String),
    /// A derivative kernel failed to compile.
    Compile(String),
}

impl From<SolveError> for GradientError {
    fn from(e: SolveError) -> Self {
        GradientError::Solve(e)
    }
}

impl std::fmt::Display for GradientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GradientError::Solve(e) => write!(f, "{e}"),
            GradientError::Unsupported(m) => f.write_str(m),
            GradientError::Compile(m) => write!(f, "cannot compile a derivative kernel: {m}"),
        }
    }
}

impl std::error::Error for GradientError {}

/// A compiled program with the generated derivative kernels every method may need, each
/// compiled on first use. Owns the program (shared), so it can live as long as its user
/// wants — a Python object, a training run — with no borrow to keep alive.
pub struct Kernels {
    prog: Arc<Program>,
    forward: OnceLock<Result<forward::ForwardKernels, String>>,
    adjoint: OnceLock<Result<AdjointKernels, String>>,
    output_vjp: OnceLock<Result<Arc<dyn Kernel>, String>>,
    dde_adjoint: OnceLock<Result<dde::DdeAdjointKernels, String>>,
    sde: OnceLock<Result<sde::SdeKernels, String>>,
}

impl Kernels {
    /// No kernel is compiled until a method asks for it.
    pub fn new(prog: impl Into<Arc<Program>>) -> Self {
        Kernels {
            prog: prog.into(),
            forward: OnceLock::new(),
            adjoint: OnceLock::new(),
            output_vjp: OnceLock::new(),
            dde_adjoint: OnceLock::new(),
            sde: OnceLock::new(),
        }
    }

    /// The program these kernels differentiate.
    pub fn program(&self) -> &Program {
        &self.prog
    }

    /// The SDE adjoint kernels (an SDE model only).
    pub fn sde(&self) -> Result<&sde::SdeKernels, GradientError> {
        self.sde
            .get_or_init(|| sde::SdeKernels::compile(&self.prog))
            .as_ref()
            .map_err(|e| GradientError::Compile(e.clone()))
    }

    /// Compiles what `method` needs now (so that compile time is not charged to a gradient).
    pub fn prepare(&self, method: Sensitivity) -> Result<(), GradientError> {
        match method {
            Sensitivity::Forward => self.forward().map(|_| ()),
            Sensitivity::Reversible => Err(reversible_is_for_sdes()),
            _ if self.prog.is_dde() => self.dde_adjoint().map(|_| ()),
            _ => self.adjoint().map(|_| ()),
        }
    }

    /// The outputs' VJP `(t, u, p, w) → (wᵀ∂o/∂u, wᵀ∂o/∂p)`, for losses on outputs.
    pub fn output_vjp(&self) -> Result<&dyn Kernel, GradientError> {
        self.output_vjp
            .get_or_init(|| {
                let f = crate::diff::vjp(&self.prog.ir.outputs, &["u", "p"], false);
                crate::backend::cranelift::compile(&f)
                    .map(|k| Arc::new(k) as Arc<dyn Kernel>)
                    .map_err(|e| e.to_string())
            })
            .as_ref()
            .map(|k| k.as_ref())
            .map_err(|e| GradientError::Compile(e.clone()))
    }

    fn forward(&self) -> Result<&forward::ForwardKernels, GradientError> {
        self.forward
            .get_or_init(|| forward::ForwardKernels::compile(&self.prog))
            .as_ref()
            .map_err(|e| GradientError::Compile(e.clone()))
    }

    fn dde_adjoint(&self) -> Result<&dde::DdeAdjointKernels, GradientError> {
        self.dde_adjoint
            .get_or_init(|| dde::DdeAdjointKernels::compile(&self.prog))
            .as_ref()
            .map_err(|e| GradientError::Compile(e.clone()))
    }

    /// The vector field's and the initial state's VJP kernels (the adjoint methods').
    pub fn adjoint(&self) -> Result<&AdjointKernels, GradientError> {
        self.adjoint
            .get_or_init(|| AdjointKernels::compile(&self.prog))
            .as_ref()
            .map_err(|e| GradientError::Compile(e.clone()))
    }
}

/// Settings of the adjoint methods.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdjointOptions {
    /// `discrete`: at most this many stored states (`None`: every step's states and stages).
    pub checkpoints: Option<usize>,
    /// Continuous adjoints: leave the parameter integral out of the error norm.
    pub seminorm: bool,
}

impl Default for AdjointOptions {
    fn default() -> Self {
        AdjointOptions {
            checkpoints: None,
            seminorm: true,
        }
    }
}

/// The loss at `p` and its gradient by `method`. The solve starts from the model's initial
/// state (a function of `p`, differentiated too) or from a given `start` state (a constant).
pub fn gradient(
    kernels: &Kernels,
    method: Sensitivity,
    p: &[f64],
    start: Start,
    opts: &SolveOptions,
    loss: &dyn RowLoss,
    adjoint: AdjointOptions,
) -> Result<Gradient, GradientError> {
    let prog = kernels.program();
    if !prog.model.inputs.is_empty() {
        return Err(GradientError::Unsupported(
            "gradients of controlled models are not available yet".into(),
        ));
    }
    if prog.is_dde() {
        return match method {
            Sensitivity::Forward => {
                forward::dde_gradient(prog, kernels.forward()?, p, start, opts, loss)
            }
            Sensitivity::Discrete => {
                dde::gradient(prog, kernels.dde_adjoint()?, p, start, opts, loss)
            }
            m => Err(GradientError::Unsupported(format!(
                "a delay model's gradient is by forward sensitivities or the discrete adjoint through the method of steps (`forward`, `discrete`), not `{}`",
                m.name()
            ))),
        };
    }
    match method {
        Sensitivity::Forward => forward::gradient(prog, kernels.forward()?, p, start, opts, loss),
        Sensitivity::Discrete => discrete::gradient(
            prog,
            kernels.adjoint()?,
            p,
            start,
            opts,
            loss,
            adjoint.checkpoints,
        ),
        Sensitivity::Backsolve | Sensitivity::Interpolating | Sensitivity::Quadrature => {
            continuous::gradient(
                prog,
                kernels.adjoint()?,
                method,
                p,
                start,
                opts,
                loss,
                adjoint.seminorm,
            )
        }
        Sensitivity::Reversible => Err(reversible_is_for_sdes()),
    }
}

/// Refuses a delay model whose delays depend on the params (∂τ/∂p is not differentiated:
/// the pieces and lagged times would move with p).
pub(crate) fn delays_are_constant(prog: &Program, p: &[f64]) -> Result<(), GradientError> {
    let jac = crate::diff::jacobian_dense(&prog.ir.delays, "p", false);
    let m = prog.ir.delays.outputs[0].0.len;
    let mut dtau = vec![0.0; m * p.len()];
    crate::backend::interp::Interpreted::new(jac).call(&[p], &mut [&mut dtau], &mut Vec::new());
    match (0..p.len()).find(|&k| dtau[k * m..(k + 1) * m].iter().any(|d| *d != 0.0)) {
        Some(k) => Err(GradientError::Unsupported(format!(
            "a delay depends on parameter entry {k}: gradients with respect to a delay are not available; make the delay a const"
        ))),
        None => Ok(()),
    }
}

fn reversible_is_for_sdes() -> GradientError {
    GradientError::Unsupported(
        "`reversible` is the reversible-Heun adjoint of an SDE; for an ODE use discrete, forward, backsolve, interpolating or quadrature".into(),
    )
}

/// The VJP kernels of the adjoint methods: of the vector field,
/// `(t, u, p, w) → (wᵀ∂f/∂u, wᵀ∂f/∂p)`, and of the initial state, `(p, w) → wᵀ∂u0/∂p`.
pub struct AdjointKernels {
    pub vjp: Arc<dyn Kernel>,
    pub initial_vjp: Arc<dyn Kernel>,
}

impl AdjointKernels {
    pub fn compile(prog: &Program) -> Result<AdjointKernels, String> {
        let f = crate::diff::vjp(&prog.ir.vector_field, &["u", "p"], false);
        let g = crate::diff::vjp(&prog.ir.initial, &["p"], false);
        let ks = crate::backend::cranelift::compile_all(&[&f, &g]).map_err(|e| e.to_string())?;
        let mut ks = ks.into_iter().map(|k| Arc::new(k) as Arc<dyn Kernel>);
        Ok(AdjointKernels {
            vjp: ks.next().ok_or("missing kernel")?,
            initial_vjp: ks.next().ok_or("missing kernel")?,
        })
    }

    /// A caller of the vector field's VJP bound to `p`.
    pub fn vjp_call<'a>(&'a self, p: &'a [f64]) -> VjpCall<'a> {
        let n = self.vjp.out_lens()[0];
        VjpCall {
            kernel: self.vjp.as_ref(),
            p,
            t: [0.0],
            scratch: vec![0.0; self.vjp.scratch_len()],
            gu: vec![0.0; n],
            gp: vec![0.0; p.len()],
        }
    }

    /// grad += wᵀ ∂u0/∂p.
    pub fn initial_vjp(&self, p: &[f64], w: &[f64], grad: &mut [f64]) {
        let mut g = vec![0.0; p.len()];
        self.initial_vjp
            .call(&[p, w], &mut [&mut g], &mut Vec::new());
        for (a, b) in grad.iter_mut().zip(&g) {
            *a += b;
        }
    }
}

/// One VJP evaluation at a time: results in `gu`, `gp`.
pub struct VjpCall<'a> {
    kernel: &'a dyn Kernel,
    p: &'a [f64],
    t: [f64; 1],
    scratch: Vec<f64>,
    pub gu: Vec<f64>,
    pub gp: Vec<f64>,
}

impl VjpCall<'_> {
    /// gu = wᵀ∂f/∂u, gp = wᵀ∂f/∂p at (t, u).
    #[inline]
    pub fn call(&mut self, t: f64, u: &[f64], w: &[f64]) {
        self.t[0] = t;
        self.kernel.call(
            &[&self.t, u, self.p, w],
            &mut [&mut self.gu, &mut self.gp],
            &mut self.scratch,
        );
    }
}
