//! Rosenbrock methods on the shared step-control loop.
//!
//! Each stage solves a linear system with W = I − h·γ·J, J = ∂f/∂u at the step start
//! (evaluated once per accepted point and reused by rejected attempts; W is refactored on
//! every attempt since h changes). Non-autonomous systems need ∂f/∂t: from
//! [`OdeJacobian::time_derivative`] when implemented, else a forward difference
//! (f(t + δ, u) − f(t, u))/δ, δ = √ε·max(|t|, |h|) (one counted rhs call per point).
//!
//! - rosenbrock23: Shampine & Reichelt's ode23s (SIAM J. Sci. Comput. 18, 1997), d = 1/(2+√2):
//!   W k1 = f0 + h·d·f_t; W (k2 − k1) = f(t + h/2, u + h/2·k1) − k1; u1 = u + h·k2;
//!   W k3 = f(t+h, u1) − e32 (k2 − f1) − 2 (k1 − f0) + h·d·f_t; err = h/6 (k1 − 2k2 + k3).
//!   FSAL (f(t+h, u1) starts the next step). Dense output: u + h[θ(1−θ) k1 + θ(θ−2d) k2]/(1−2d).
//! - rodas5: Rodas5P (Steinebach 2023) in OrdinaryDiffEq's form: stage increments k_i with
//!   (I/(hγ) − J) k_i = f(t + c_i h, u + Σ a_ij k_j) + h d_i f_t + Σ (C_ij/h) k_j; the last
//!   two stages accumulate (stiffly accurate), u1 = u + Σ_{i≤5} a_6i k_i + k6 + k7 + k8 and
//!   err = k8. Dense output: (1−θ)u + θ(u1 + (1−θ)(K1 + θ(K2 + θK3))), K_m = Σ H_mi k_i.

use super::super::controller::{PiController, error_norm, initial_step};
use super::super::integrate::{
    Solution, SolveOptions, all_finite, expand_atol, fixed_steps, step_bounds,
};
use super::super::{FailReason, OdeJacobian, SolveError, Stats};
use super::linsolve::{LinSys, Singular};
use super::{Out, dtmin_at};

/// Buffers of one Rosenbrock solve (allocated once).
pub(crate) struct RosWork {
    dim: usize,
    u: Vec<f64>,
    un: Vec<f64>,
    /// f(t, u) at the current point.
    f0: Vec<f64>,
    /// FSAL: f(t + h, un) of the trial step.
    fnew: Vec<f64>,
    /// ∂f/∂t at the current point.
    dfdt: Vec<f64>,
    /// Stage increments (and scratch), k[j*dim..].
    k: Vec<f64>,
    /// Stage input.
    ut: Vec<f64>,
    err: Vec<f64>,
    /// Dense-output coefficients of the accepted step (rodas5: K1, K2, K3).
    dense: Vec<f64>,
}

/// A Rosenbrock scheme the loop is monomorphised over.
pub(crate) trait RosScheme {
    /// W = I − h·GAMMA·J.
    const GAMMA: f64;
    const ORDER: u32;
    /// Order of the local error estimate (for the controller).
    const ERR_Q: u32;
    /// Number of dim-sized stage buffers.
    const NK: usize;
    const DENSE: usize;
    /// The trial step writes f(t + h, un) into `fnew`.
    const FSAL: bool;

    /// One trial step of size h from (t, u) (with f0, dfdt at (t, u)): factors W, runs the
    /// stages, writes `un` and `err`.
    fn trial<R: OdeJacobian + ?Sized>(
        rhs: &mut R,
        t: f64,
        h: f64,
        w: &mut RosWork,
        lin: &mut LinSys,
        stats: &mut Stats,
    ) -> Result<(), Singular>;

    /// Prepares the dense output of the accepted trial step.
    fn dense_prepare(_w: &mut RosWork) {}

    /// The state at t + θh of the accepted trial step.
    fn interp(theta: f64, h: f64, w: &RosWork, out: &mut [f64]);
}

/// rosenbrock23 (ode23s).
pub(crate) struct Ros23;

const SQRT2: f64 = std::f64::consts::SQRT_2;
const R23_D: f64 = 1.0 / (2.0 + SQRT2);
const R23_E32: f64 = 6.0 + SQRT2;

impl RosScheme for Ros23 {
    const GAMMA: f64 = R23_D;
    const ORDER: u32 = 2;
    const ERR_Q: u32 = 3;
    const NK: usize = 4;
    const DENSE: usize = 0;
    const FSAL: bool = true;

    fn trial<R: OdeJacobian + ?Sized>(
        rhs: &mut R,
        t: f64,
        h: f64,
        w: &mut RosWork,
        lin: &mut LinSys,
        stats: &mut Stats,
    ) -> Result<(), Singular> {
        let n = w.dim;
        let hd = h * R23_D;
        lin.factor(hd, stats)?;
        let (k1, rest) = w.k.split_at_mut(n);
        let (k2, rest) = rest.split_at_mut(n);
        let (k3, f1) = rest.split_at_mut(n);
        let f1 = &mut f1[..n];
        for i in 0..n {
            k1[i] = w.f0[i] + hd * w.dfdt[i];
        }
        lin.solve(k1)?;
        for i in 0..n {
            w.ut[i] = w.u[i] + 0.5 * h * k1[i];
        }
        rhs.eval(t + 0.5 * h, &w.ut, f1);
        for i in 0..n {
            k2[i] = f1[i] - k1[i];
        }
        lin.solve(k2)?;
        for i in 0..n {
            k2[i] += k1[i];
            w.un[i] = w.u[i] + h * k2[i];
        }
        rhs.eval(t + h, &w.un, &mut w.fnew);
        stats.rhs_evals += 2;
        for i in 0..n {
            k3[i] =
                w.fnew[i] - R23_E32 * (k2[i] - f1[i]) - 2.0 * (k1[i] - w.f0[i]) + hd * w.dfdt[i];
        }
        lin.solve(k3)?;
        for i in 0..n {
            w.err[i] = h / 6.0 * (k1[i] - 2.0 * k2[i] + k3[i]);
        }
        Ok(())
    }

    fn interp(theta: f64, h: f64, w: &RosWork, out: &mut [f64]) {
        let n = w.dim;
        let c1 = theta * (1.0 - theta) / (1.0 - 2.0 * R23_D);
        let c2 = theta * (theta - 2.0 * R23_D) / (1.0 - 2.0 * R23_D);
        let (k1, k2) = (&w.k[..n], &w.k[n..2 * n]);
        for i in 0..n {
            out[i] = w.u[i] + h * (c1 * k1[i] + c2 * k2[i]);
        }
    }
}

/// rodas5 (Rodas5P coefficients).
pub(crate) struct Rodas5P;

mod rodas5p {
    pub const GAMMA: f64 = 0.21193756319429014;
    /// Stage inputs u + Σ_j A[i][j] k_j (rows 7 and 8 accumulate k6, k7).
    pub const A: [[f64; 8]; 8] = {
        let a61 = -7.502846399306121;
        let a62 = 2.561846144803919;
        let a63 = -11.627539656261098;
        let a64 = -0.18268767659942256;
        let a65 = 0.030198172008377946;
        [
            [0.0; 8],
            [3.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
            [
                2.849394379747939,
                0.45842242204463923,
                0.0,
                0.0,
                0.0,
                0.0,
                0.0,
                0.0,
            ],
            [
                -6.954028509809101,
                2.489845061869568,
                -10.358996098473584,
                0.0,
                0.0,
                0.0,
                0.0,
                0.0,
            ],
            [
                2.8029986275628964,
                0.5072464736228206,
                -0.3988312541770524,
                -0.04721187230404641,
                0.0,
                0.0,
                0.0,
                0.0,
            ],
            [a61, a62, a63, a64, a65, 0.0, 0.0, 0.0],
            [a61, a62, a63, a64, a65, 1.0, 0.0, 0.0],
            [a61, a62, a63, a64, a65, 1.0, 1.0, 0.0],
        ]
    };
    pub const C: [[f64; 8]; 8] = [
        [0.0; 8],
        [-14.155112264123755, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
        [
            -17.97296035885952,
            -2.859693295451294,
            0.0,
            0.0,
            0.0,
            0.0,
            0.0,
            0.0,
        ],
        [
            147.12150275711716,
            -1.41221402718213,
            71.68940251302358,
            0.0,
            0.0,
            0.0,
            0.0,
            0.0,
        ],
        [
            165.43517024871676,
            -0.4592823456491126,
            42.90938336958603,
            -5.961986721573306,
            0.0,
            0.0,
            0.0,
            0.0,
        ],
        [
            24.854864614690072,
            -3.0009227002832186,
            47.4931110020768,
            5.5814197821558125,
            -0.6610691825249471,
            0.0,
            0.0,
            0.0,
        ],
        [
            30.91273214028599,
            -3.1208243349937974,
            77.79954646070892,
            34.28646028294783,
            -19.097331116725623,
            -28.087943162872662,
            0.0,
            0.0,
        ],
        [
            37.80277123390563,
            -3.2571969029072276,
            112.26918849496327,
            66.9347231244047,
            -40.06618937091002,
            -54.66780262877968,
            -9.48861652309627,
            0.0,
        ],
    ];
    pub const CT: [f64; 8] = [
        0.0,
        0.6358126895828704,
        0.4095798393397535,
        0.9769306725060716,
        0.4288403609558664,
        1.0,
        1.0,
        1.0,
    ];
    pub const D: [f64; 8] = [
        0.21193756319429014,
        -0.42387512638858027,
        -0.3384627126235924,
        1.8046452872882734,
        2.325825639765069,
        0.0,
        0.0,
        0.0,
    ];
    /// Dense output: K_m = Σ_i H[m][i] k_i.
    pub const H: [[f64; 8]; 3] = [
        [
            25.948786856663858,
            -2.5579724845846235,
            10.433815404888879,
            -2.3679251022685204,
            0.524948541321073,
            1.1241088310450404,
            0.4272876194431874,
            -0.17202221070155493,
        ],
        [
            -9.91568850695171,
            -0.9689944594115154,
            3.0438037242978453,
            -24.495224566215796,
            20.176138334709044,
            15.98066361424651,
            -6.789040303419874,
            -6.710236069923372,
        ],
        [
            11.419903575922262,
            2.8879645146136994,
            72.92137995996029,
            80.12511834622643,
            -52.072871366152654,
            -59.78993625266729,
            -0.15582684282751913,
            4.883087185713722,
        ],
    ];
}

impl RosScheme for Rodas5P {
    const GAMMA: f64 = rodas5p::GAMMA;
    const ORDER: u32 = 5;
    const ERR_Q: u32 = 5;
    const NK: usize = 8;
    const DENSE: usize = 3;
    const FSAL: bool = false;

    fn trial<R: OdeJacobian + ?Sized>(
        rhs: &mut R,
        t: f64,
        h: f64,
        w: &mut RosWork,
        lin: &mut LinSys,
        stats: &mut Stats,
    ) -> Result<(), Singular> {
        with_const_n!(w.dim, |n| rodas5p_trial(n, rhs, t, h, w, lin, stats))
    }

    fn dense_prepare(w: &mut RosWork) {
        with_const_n!(w.dim, |n| rodas5p_dense(n, w))
    }

    fn interp(theta: f64, _h: f64, w: &RosWork, out: &mut [f64]) {
        let n = w.dim;
        let t1 = 1.0 - theta;
        let (k1, k2, k3) = (&w.dense[..n], &w.dense[n..2 * n], &w.dense[2 * n..3 * n]);
        for i in 0..n {
            out[i] =
                t1 * w.u[i] + theta * (w.un[i] + t1 * (k1[i] + theta * (k2[i] + theta * k3[i])));
        }
    }
}

/// Rodas5P's trial step, written for a dimension `n` that is a constant after inlining
/// (`with_const_n!`): each stage accumulates over the earlier stages per component, in
/// registers, instead of sweeping the stage buffers once per earlier stage.
#[inline(always)]
fn rodas5p_trial<R: OdeJacobian + ?Sized>(
    n: usize,
    rhs: &mut R,
    t: f64,
    h: f64,
    w: &mut RosWork,
    lin: &mut LinSys,
    stats: &mut Stats,
) -> Result<(), Singular> {
    use rodas5p::{A, C, CT, D};
    let hg = h * Rodas5P::GAMMA;
    lin.factor(hg, stats)?;
    let (u, ut, f0, dfdt) = (&w.u[..n], &mut w.ut[..n], &w.f0[..n], &w.dfdt[..n]);
    let k = &mut w.k[..8 * n];
    for s in 0..8 {
        let (done, rest) = k.split_at_mut(s * n);
        let ks = &mut rest[..n];
        let hd = h * D[s];
        if s == 0 {
            for i in 0..n {
                ks[i] = hg * (f0[i] + hd * dfdt[i]);
            }
        } else {
            for i in 0..n {
                let mut acc = u[i];
                for j in 0..s {
                    acc += A[s][j] * done[j * n + i];
                }
                ut[i] = acc;
            }
            rhs.eval(t + CT[s] * h, ut, ks);
            stats.rhs_evals += 1;
            let mut c = [0.0; 8];
            for j in 0..s {
                c[j] = C[s][j] / h;
            }
            for i in 0..n {
                let mut acc = ks[i] + hd * dfdt[i];
                for j in 0..s {
                    acc += c[j] * done[j * n + i];
                }
                ks[i] = hg * acc;
            }
        }
        lin.solve(ks)?;
    }
    // u1 = (stage-8 input) + k8 = ut + k8; the estimate is k8.
    let k8 = &k[7 * n..8 * n];
    let (un, err) = (&mut w.un[..n], &mut w.err[..n]);
    for i in 0..n {
        un[i] = ut[i] + k8[i];
        err[i] = k8[i];
    }
    Ok(())
}

/// Rodas5P's dense-output coefficients K_m = Σ_j H_mj k_j (see `rodas5p_trial` for `n`).
#[inline(always)]
fn rodas5p_dense(n: usize, w: &mut RosWork) {
    let k = &w.k[..8 * n];
    let dense = &mut w.dense[..3 * n];
    for i in 0..n {
        for m in 0..3 {
            let mut acc = 0.0;
            for j in 0..8 {
                acc += rodas5p::H[m][j] * k[j * n + i];
            }
            dense[m * n + i] = acc;
        }
    }
}

/// The Jacobian and ∂f/∂t at the current point (t, u) (f0 = f(t, u) already in place).
fn new_point<R: OdeJacobian + ?Sized>(
    rhs: &mut R,
    t: f64,
    h: f64,
    w: &mut RosWork,
    lin: &mut LinSys,
    out: &mut Out,
) -> Result<(), SolveError> {
    if !lin.eval_jac(rhs, t, &w.u, &mut out.stats) {
        return Err(out.fail(t, FailReason::NonFiniteState));
    }
    if !rhs.time_derivative(t, &w.u, &mut w.dfdt) {
        let delta = f64::EPSILON.sqrt() * t.abs().max(h.abs());
        let delta = if h < 0.0 { -delta } else { delta };
        let tp = t + delta;
        let delta = tp - t;
        if delta == 0.0 {
            w.dfdt.fill(0.0);
        } else {
            rhs.eval(tp, &w.u, &mut w.ut);
            out.stats.rhs_evals += 1;
            for i in 0..w.dim {
                w.dfdt[i] = (w.ut[i] - w.f0[i]) / delta;
            }
        }
    }
    if !all_finite(&w.dfdt) {
        return Err(out.fail(t, FailReason::NonFiniteState));
    }
    Ok(())
}

/// After an accepted trial step t → t_new: save points, then (t_new, un) becomes current
/// with f0 = f(t_new, un) (free for FSAL schemes; skipped after the last step otherwise).
fn accept<R: OdeJacobian + ?Sized, M: RosScheme>(
    rhs: &mut R,
    t: f64,
    h: f64,
    t_new: f64,
    last: bool,
    w: &mut RosWork,
    out: &mut Out,
) -> Result<(), SolveError> {
    out.stats.accepted += 1;
    // The hook gets the dense-output coefficients (rodas5: K1, K2, K3; rosenbrock23: none,
    // a delay equation's history then recomputes f at the ends for a cubic Hermite).
    M::dense_prepare(w);
    rhs.step_accepted(t, h, t_new, &w.u, &w.un, &w.dense);
    if out.has_point_before(t_new) {
        let ww: &RosWork = w;
        out.fill(t_new, &ww.un, |ts, o| M::interp((ts - t) / h, h, ww, o));
    }
    std::mem::swap(&mut w.u, &mut w.un);
    if M::FSAL {
        std::mem::swap(&mut w.f0, &mut w.fnew);
    } else if !last {
        rhs.eval(t_new, &w.u, &mut w.f0);
        out.stats.rhs_evals += 1;
    } else {
        return Ok(());
    }
    if !all_finite(&w.f0) {
        return Err(out.fail(t_new, FailReason::NonFiniteState));
    }
    Ok(())
}

pub(crate) fn solve<R: OdeJacobian + ?Sized, M: RosScheme>(
    rhs: &mut R,
    u0: &[f64],
    opts: &SolveOptions,
) -> Result<Solution, SolveError> {
    let dim = u0.len();
    let mut out = Out::new(opts, dim);
    if out.start(opts, u0)? {
        return Ok(out.finish());
    }
    let mut lin = LinSys::new(rhs).map_err(|m| out.fail(opts.t0, FailReason::InvalidInput(m)))?;
    let mut w = RosWork {
        dim,
        u: u0.to_vec(),
        un: vec![0.0; dim],
        f0: vec![0.0; dim],
        fnew: vec![0.0; dim],
        dfdt: vec![0.0; dim],
        k: vec![0.0; M::NK * dim],
        ut: vec![0.0; dim],
        err: vec![0.0; dim],
        dense: vec![0.0; M::DENSE * dim],
    };
    rhs.eval(opts.t0, &w.u, &mut w.f0);
    out.stats.rhs_evals += 1;
    if !all_finite(&w.f0) {
        return Err(out.fail(opts.t0, FailReason::NonFiniteState));
    }
    if opts.is_fixed_step() {
        run_fixed::<R, M>(rhs, opts, &mut w, &mut lin, &mut out)?;
    } else {
        run_adaptive::<R, M>(rhs, opts, &mut w, &mut lin, &mut out)?;
    }
    Ok(out.finish())
}

fn run_fixed<R: OdeJacobian + ?Sized, M: RosScheme>(
    rhs: &mut R,
    opts: &SolveOptions,
    w: &mut RosWork,
    lin: &mut LinSys,
    out: &mut Out,
) -> Result<(), SolveError> {
    let (n, step_end) = fixed_steps(opts);
    let mut t = opts.t0;
    for step in 1..=n {
        if out.stats.steps >= opts.max_steps {
            let max_steps = opts.max_steps;
            return Err(out.fail(t, FailReason::MaxSteps { max_steps }));
        }
        let t_new = step_end(step);
        let h = t_new - t;
        new_point(rhs, t, h, w, lin, out)?;
        let r = M::trial(rhs, t, h, w, lin, &mut out.stats);
        out.stats.steps += 1;
        if r.is_err() || !all_finite(&w.un) {
            out.stats.rejected += 1;
            let reason = if r.is_err() {
                FailReason::SingularMatrix
            } else {
                FailReason::NonFiniteState
            };
            return Err(out.fail(t, reason));
        }
        accept::<R, M>(rhs, t, h, t_new, step == n, w, out)?;
        t = t_new;
    }
    Ok(())
}

fn run_adaptive<R: OdeJacobian + ?Sized, M: RosScheme>(
    rhs: &mut R,
    opts: &SolveOptions,
    w: &mut RosWork,
    lin: &mut LinSys,
    out: &mut Out,
) -> Result<(), SolveError> {
    let (t0, t1, dir) = (opts.t0, opts.t1, out.dir);
    let (hmax, _) = step_bounds(opts);
    let atol = expand_atol(opts, w.dim);
    let mut ctrl = PiController::new(M::ERR_Q);
    let mut h = match opts.dt {
        Some(dt) => dt.abs().min(hmax),
        None => initial_step(
            rhs,
            t0,
            &w.u,
            &w.f0,
            dir,
            M::ORDER,
            opts.rtol,
            &atol,
            hmax,
            &mut w.ut,
            &mut w.un,
            &mut out.stats,
            usize::MAX,
        ),
    } * dir;
    let mut t = t0;
    let mut fresh = false;
    loop {
        let mut last = false;
        if (t + h - t1) * dir >= 0.0 {
            h = t1 - t;
            last = true;
        }
        if out.stats.steps >= opts.max_steps {
            let max_steps = opts.max_steps;
            return Err(out.fail(t, FailReason::MaxSteps { max_steps }));
        }
        if !fresh {
            new_point(rhs, t, h, w, lin, out)?;
            fresh = true;
        }
        let r = M::trial(rhs, t, h, w, lin, &mut out.stats);
        out.stats.steps += 1;
        let singular = r.is_err();
        let e = if singular {
            f64::NAN
        } else {
            error_norm(&w.err, &w.u, &w.un, &atol, opts.rtol)
        };
        let nonfinite = !e.is_finite();
        let d = if nonfinite {
            ctrl.reject_nonfinite()
        } else {
            ctrl.decide(e)
        };
        if d.accept {
            let t_new = if last { t1 } else { t + h };
            accept::<R, M>(rhs, t, h, t_new, last, w, out)?;
            t = t_new;
            fresh = false;
            if last || rhs.stop_requested() {
                return Ok(());
            }
            h *= d.factor;
            if h.abs() > hmax {
                h = hmax * dir;
            }
        } else {
            out.stats.rejected += 1;
            h *= d.factor;
        }
        if h.abs() < dtmin_at(opts, t) || t + h == t {
            let reason = if singular {
                FailReason::SingularMatrix
            } else if nonfinite {
                FailReason::NonFiniteState
            } else {
                FailReason::StepSizeUnderflow { dt: h }
            };
            return Err(out.fail(t, reason));
        }
    }
}
