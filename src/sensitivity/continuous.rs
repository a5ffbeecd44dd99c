//! Continuous adjoints: the adjoint ODE integrated backward from t1 to t0,
//!
//!   λ' = −(∂f/∂u)ᵀ λ,   q' = −(∂f/∂p)ᵀ λ,   λ jumps by ∂L/∂u(τ) at each saved time τ,
//!
//! so that dL/dp = q(t0) + (∂u0/∂p)ᵀ λ(t0). Three ways to get u(t) and q:
//! - `backsolve`: u is integrated backward alongside (y = [u, λ, q]) and reset to the
//!   forward solution at every saved time (cheap in memory; can drift on unstable systems);
//! - `interpolating`: u(t) from the forward solve's dense output (y = [λ, q]);
//! - `quadrature`: u(t) interpolated, y = λ alone, and q = ∫ λᵀ ∂f/∂p dt by 3-point
//!   Gauss–Legendre quadrature on every backward step (λ from the backward dense output).
//!
//! The backward solves use the forward method and tolerances. With the seminorm (Kidger,
//! Chen & Lyons 2021; on by default) only the u and λ components enter the error norm: q
//! never feeds back into the dynamics, so controlling it only costs steps. These methods
//! approximate the gradient of the continuous problem; they agree with the discrete adjoint
//! to the order of the tolerances.

use super::{AdjointKernels, Gradient, GradientError, RowLoss, Sensitivity, Start, VjpCall};
use crate::program::{Program, ProgramRhs};
use crate::runtime::dense;
use crate::runtime::tableau::{DenseKind, Tableau};
use crate::runtime::{OdeRhs, SaveAt, SolveOptions, Trace, solve_traced};
use std::cell::RefCell;

/// The loss and its gradient by a continuous adjoint (explicit methods).
#[allow(clippy::too_many_arguments)]
pub fn gradient(
    prog: &Program,
    kernels: &AdjointKernels,
    method: Sensitivity,
    p: &[f64],
    start: Start,
    opts: &SolveOptions,
    loss: &dyn RowLoss,
    seminorm: bool,
) -> Result<Gradient, GradientError> {
    let m = opts.method;
    let (Some(tab), Some(kind)) = (m.tableau(), m.dense_kind()) else {
        return Err(GradientError::Unsupported(format!(
            "the continuous adjoints here integrate with explicit methods; for `{m}` use --sensitivity forward"
        )));
    };
    if kind == DenseKind::Vern7 || opts.is_fixed_step() {
        return Err(GradientError::Unsupported(format!(
            "the continuous adjoints need an adaptive method with a recorded interpolant (tsit5, dopri5, bosh3), not `{m}`"
        )));
    }
    let n = prog.dim();
    let np = p.len();
    let u0 = start.state(prog, p);
    let mut trace = Trace::new(None);
    let mut rhs = prog.rhs(p);
    let sol = solve_traced(&mut rhs, &u0, opts, Some(&mut trace))?;
    let mut seeds = vec![0.0; sol.u.len()];
    let mut grad = vec![0.0; np];
    let value = loss.eval(&sol.t, &sol.u, n, &mut seeds, &mut grad);
    let mut stats = sol.stats;

    let (u_len, q_len) = match method {
        Sensitivity::Backsolve => (n, np),
        Sensitivity::Interpolating => (0, np),
        _ => (0, 0),
    };
    let dim = u_len + n + q_len;
    let mut adj = AdjointRhs {
        n,
        u_len,
        q_len,
        vjp: kernels.vjp_call(p),
        forward: Interp::new(tab, kind, &trace),
        f: prog.rhs(p),
        u: vec![0.0; n],
        du: vec![0.0; n],
    };
    let mut bopts = opts.clone();
    bopts.saveat = SaveAt::Ends;
    bopts.dt = None;
    bopts.error_components = seminorm.then_some(u_len + n);
    if bopts.atol.len() > 1 {
        let per = bopts.atol.clone();
        bopts.atol = (0..dim).map(|i| per[i % n]).collect();
    }
    let mut y = vec![0.0; dim];
    if u_len > 0 {
        // No step was taken when the data end at t0 (one row there): the state is u0.
        let u_end = if trace.u_end.is_empty() {
            &u0
        } else {
            &trace.u_end
        };
        y[..n].copy_from_slice(u_end);
    }
    let mut btrace = Trace::new(None);
    // Rows 0..r are still to come; segments between saved times run last to first, each
    // starting with the jumps of the rows at its upper end.
    let mut r = sol.t.len();
    let mut t_hi = opts.t1;
    loop {
        while r > 0 && sol.t[r - 1] == t_hi {
            r -= 1;
            for i in 0..n {
                y[u_len + i] += seeds[r * n + i];
            }
            if u_len > 0 {
                y[..n].copy_from_slice(sol.row(r));
            }
        }
        let t_lo = if r > 0 { sol.t[r - 1] } else { opts.t0 };
        if t_lo == t_hi {
            break;
        }
        bopts.t0 = t_hi;
        bopts.t1 = t_lo;
        let traced = (method == Sensitivity::Quadrature).then_some(&mut btrace);
        let bsol = solve_traced(&mut adj, &y, &bopts, traced)?;
        stats.add(&bsol.stats);
        y.copy_from_slice(bsol.last());
        if method == Sensitivity::Quadrature {
            quadrature(&mut adj, tab, kind, &btrace, &mut grad);
        }
        t_hi = t_lo;
    }
    let lambda = &y[u_len..u_len + n];
    if q_len > 0 {
        for (g, q) in grad.iter_mut().zip(&y[u_len + n..]) {
            *g += q;
        }
    }
    if let Some(l0) = start.model_cotangent(lambda) {
        kernels.initial_vjp(p, &l0, &mut grad);
    }
    Ok(Gradient {
        loss: value,
        grad,
        start: start.input_cotangent(lambda),
        stats,
    })
}

/// grad += ∫ λᵀ ∂f/∂p dt over every step of one backward solve (3-point Gauss–Legendre).
fn quadrature(
    adj: &mut AdjointRhs,
    tab: &Tableau,
    kind: DenseKind,
    btrace: &Trace,
    grad: &mut [f64],
) {
    let s15 = 0.15f64.sqrt();
    let nodes = [0.5 - s15, 0.5, 0.5 + s15];
    let weights = [5.0 / 18.0, 8.0 / 18.0, 5.0 / 18.0];
    let n = adj.n;
    let mut lam = vec![0.0; n];
    let back = Interp::new(tab, kind, btrace);
    for step in 0..btrace.len() {
        let (t, h) = (btrace.t[step], btrace.h[step]);
        for (x, w) in nodes.iter().zip(weights) {
            let tg = t + x * h;
            back.at_step(step, *x, adj, &mut lam);
            adj.forward.eval(tg, &mut adj.f, &mut adj.u);
            adj.vjp.call(tg, &adj.u, &lam);
            // The step runs backward (h < 0): the forward-oriented integral is −h Σ w g.
            for (g, gp) in grad.iter_mut().zip(&adj.vjp.gp) {
                *g += -h * w * gp;
            }
        }
    }
}

/// The backward system y = [u?, λ, q?] (see the module doc).
struct AdjointRhs<'a> {
    n: usize,
    u_len: usize,
    q_len: usize,
    vjp: VjpCall<'a>,
    forward: Interp<'a>,
    f: ProgramRhs<'a>,
    u: Vec<f64>,
    du: Vec<f64>,
}

impl OdeRhs for AdjointRhs<'_> {
    fn dim(&self) -> usize {
        self.u_len + self.n + self.q_len
    }

    fn eval(&mut self, t: f64, y: &[f64], dy: &mut [f64]) {
        let (n, ul) = (self.n, self.u_len);
        if ul > 0 {
            self.u.copy_from_slice(&y[..n]);
            self.f.eval(t, &self.u, &mut self.du);
            dy[..n].copy_from_slice(&self.du);
        } else {
            self.forward.eval(t, &mut self.f, &mut self.u);
        }
        self.vjp.call(t, &self.u, &y[ul..ul + n]);
        for (d, g) in dy[ul..ul + n].iter_mut().zip(&self.vjp.gu) {
            *d = -g;
        }
        for (d, g) in dy[ul + n..].iter_mut().zip(&self.vjp.gp) {
            *d = -g;
        }
    }
}

/// Dense output of a traced solve at any time inside it.
struct Interp<'a> {
    tab: Tableau,
    kind: DenseKind,
    trace: &'a Trace,
    /// Scratch: stage weights, and f at the end of the last Hermite step asked for.
    w: RefCell<Vec<f64>>,
    f1: RefCell<(usize, Vec<f64>)>,
}

impl<'a> Interp<'a> {
    fn new(tab: &Tableau, kind: DenseKind, trace: &'a Trace) -> Self {
        Interp {
            tab: tab.clone(),
            kind,
            trace,
            w: RefCell::new(vec![0.0; tab.stages()]),
            f1: RefCell::new((usize::MAX, vec![0.0; trace.dim])),
        }
    }

    /// u(t); `rhs` evaluates f when a Hermite interpolant needs f at the step end.
    fn eval(&self, t: f64, rhs: &mut dyn OdeRhs, out: &mut [f64]) {
        let tr = self.trace;
        let last = tr.len() - 1;
        let dir = tr.h[0].signum();
        // The first step whose end reaches t.
        let step = tr.t_end.partition_point(|&e| (e - t) * dir < 0.0).min(last);
        let theta = (t - tr.t[step]) / tr.h[step];
        self.at_step(step, theta, rhs, out);
    }

    fn at_step(&self, step: usize, theta: f64, rhs: &mut dyn OdeRhs, out: &mut [f64]) {
        let tr = self.trace;
        let (n, s) = (tr.dim, tr.stages);
        let u = &tr.ckpt_u[step * n..(step + 1) * n];
        let k = &tr.k[step * s * n..(step + 1) * s * n];
        let h = tr.h[step];
        let mut w = self.w.borrow_mut();
        if dense::stage_weights(self.kind, theta, &mut w) {
            for i in 0..n {
                let mut acc = 0.0;
                for j in 0..s {
                    acc += w[j] * k[j * n + i];
                }
                out[i] = u[i] + h * acc;
            }
            return;
        }
        let u1: &[f64] = if step + 1 < tr.len() {
            &tr.ckpt_u[(step + 1) * n..(step + 2) * n]
        } else {
            &tr.u_end
        };
        let mut cache = self.f1.borrow_mut();
        let f1: &[f64] = if self.tab.fsal {
            &k[(s - 1) * n..]
        } else {
            if cache.0 != step {
                rhs.eval(tr.t_end[step], u1, &mut cache.1);
                cache.0 = step;
            }
            &cache.1
        };
        dense::hermite(theta, h, u, &k[..n], u1, f1, out);
    }
}
