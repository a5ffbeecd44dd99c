//! Forward sensitivities: the solver integrates u and S_k = ∂u/∂p_k together
//! (`diff::forward_sensitivity_system`: S' = ∂f/∂u·S + ∂f/∂p) from S(t0) = ∂u0/∂p.
//!
//! Only the state enters the error norm (`SolveOptions::error_components`), so the
//! augmented solve takes exactly the plain solve's steps and — the same Runge–Kutta map
//! applied to the tangent system being the tangent of that map — the result is the
//! derivative of the computed solution, like the discrete adjoint, at a cost that grows
//! with the number of parameters.

use super::{Gradient, GradientError, RowLoss};
use crate::backend::Kernel;
use crate::program::Program;
use crate::runtime::{self, OdeRhs, SolveOptions};
use std::sync::Arc;

/// The augmented vector field `(t, [u, S], p) → [f, f_u S + f_p]` and ∂u0/∂p.
pub struct ForwardKernels {
    pub system: Arc<dyn Kernel>,
    /// Column-major n × np.
    pub initial_jacobian: Arc<dyn Kernel>,
}

impl ForwardKernels {
    pub fn compile(prog: &Program) -> Result<ForwardKernels, String> {
        let sys = crate::diff::forward_sensitivity_system(&prog.ir.vector_field);
        let init = crate::diff::jacobian_dense(&prog.ir.initial, "p", false);
        let ks =
            crate::backend::cranelift::compile_all(&[&sys, &init]).map_err(|e| e.to_string())?;
        let mut ks = ks.into_iter().map(|k| Arc::new(k) as Arc<dyn Kernel>);
        Ok(ForwardKernels {
            system: ks.next().ok_or("missing kernel")?,
            initial_jacobian: ks.next().ok_or("missing kernel")?,
        })
    }
}

/// A kernel `(t, U, p) -> dU` as a vector field.
struct KernelRhs<'a> {
    kernel: &'a dyn Kernel,
    p: &'a [f64],
    t: [f64; 1],
    scratch: Vec<f64>,
    dim: usize,
}

impl OdeRhs for KernelRhs<'_> {
    fn dim(&self) -> usize {
        self.dim
    }
    fn eval(&mut self, t: f64, u: &[f64], du: &mut [f64]) {
        self.t[0] = t;
        self.kernel
            .call(&[&self.t, u, self.p], &mut [du], &mut self.scratch);
    }
}

/// The loss and its gradient by forward sensitivities (explicit methods).
pub fn gradient(
    prog: &Program,
    kernels: &ForwardKernels,
    p: &[f64],
    opts: &SolveOptions,
    loss: &dyn RowLoss,
) -> Result<Gradient, GradientError> {
    if opts.method.is_implicit() {
        return Err(GradientError::Unsupported(format!(
            "forward sensitivities run with explicit methods; for `{}` use --sensitivity interpolating",
            opts.method
        )));
    }
    let n = prog.dim();
    let np = p.len();
    let dim = n * (1 + np);
    let u0 = prog.initial_state(p);
    let mut big = vec![0.0; dim];
    big[..n].copy_from_slice(&u0);
    kernels
        .initial_jacobian
        .call(&[p], &mut [&mut big[n..]], &mut Vec::new());
    let mut o = opts.clone();
    o.error_components = Some(n);
    if o.atol.len() > 1 {
        let per = o.atol.clone();
        o.atol = (0..dim).map(|i| per[i % n]).collect();
    }
    let mut rhs = KernelRhs {
        kernel: kernels.system.as_ref(),
        p,
        t: [0.0],
        scratch: Vec::new(),
        dim,
    };
    let sol = runtime::solve_with(&mut rhs, &big, &o)?;
    // Split the saved rows into the state part (for the loss) and the sensitivities.
    let rows = sol.len();
    let mut u = Vec::with_capacity(rows * n);
    for r in 0..rows {
        u.extend_from_slice(&sol.row(r)[..n]);
    }
    let mut seeds = vec![0.0; rows * n];
    let value = loss.eval(&sol.t, &u, n, &mut seeds);
    let mut grad = vec![0.0; np];
    for r in 0..rows {
        let row = sol.row(r);
        let seed = &seeds[r * n..(r + 1) * n];
        for (k, g) in grad.iter_mut().enumerate() {
            let s = &row[n * (1 + k)..n * (2 + k)];
            *g += seed.iter().zip(s).map(|(a, b)| a * b).sum::<f64>();
        }
    }
    Ok(Gradient {
        loss: value,
        grad,
        stats: sol.stats,
    })
}
