//! SDE solvers: Brownian paths from a counter-based generator, and the stepping loops
//! of `euler_maruyama`, `milstein`, `reversible_heun` (fixed steps) and `sde_adaptive`
//! (an embedded Stratonovich Heun / Euler pair with error control and rejection on a
//! Brownian tree).
//!
//! The solvers see an SDE only through [`SdeRhs`]: fused kernels returning the drift (Itô
//! or Stratonovich) together with G·dw, the Milstein product, or the diffusion matrix.
//! Every method solves either calculus because both drifts are available.
//!
//! **Brownian paths.** A draw is a pure function of (seed, trajectory, position), from
//! Philox4x32-10 ([`crate::rng`]), so any trajectory replays alone, on any thread:
//! - [`GridPath`] (fixed-step methods by default): the increment of noise j over step n is
//!   √h·Z(seed, traj, n·m + j), keyed by the step number;
//! - [`BrownianTree`] (the adaptive method; optional for fixed steps): a virtual Brownian
//!   tree on [t0, t1]. W(t1) = √T·Z₀; the midpoint of the dyadic interval with heap id k
//!   is the Brownian bridge ½(W(a)+W(b)) + √((b−a)/4)·Z_k. W(t) at any t is found by
//!   bisection (exact at dyadic points, linear between the level-50 points), so it is one
//!   fixed continuous path: a rejected step, a bisected step or a later pass (an adjoint)
//!   asks for W at new times and gets values consistent with every earlier answer. The
//!   descent is cached, so sequential queries cost O(1) bridge samples each on average.
//!
//! Noise of trajectory k never shares Philox blocks with the `--vary` draws of
//! [`crate::ensemble`] (stream k): the grid uses stream k + 2⁵⁶, the tree k + 2⁵⁷. Normals are
//! Doornik's ziggurat on Philox bits ([`Gaussians`]).

use super::integrate::{Method, SaveAt, Solution, SolveOptions};
use super::{FailReason, SolveError, Stats};
use crate::rng::{Gaussians, Stream};

/// The SDE methods (LANGUAGE.md §6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SdeMethod {
    /// Euler–Maruyama (Itô): strong order 0.5, weak order 1; fixed steps.
    EulerMaruyama,
    /// Milstein for commutative noise (scalar, diagonal, additive, or proved commutative):
    /// strong order 1; fixed steps. Written in Stratonovich form,
    /// u += f_S h + G ΔW + ½ (∂(GΔW)/∂u)(GΔW), which equals the Itô form
    /// u += f_I h + G ΔW + ½ Σ_{j,k} L^j g_k (ΔW_j ΔW_k − δ_jk h) for commutative noise.
    /// Non-commutative noise needs Lévy areas, which this version does not sample: refused.
    Milstein,
    /// Reversible Heun (Kidger et al. 2021), Stratonovich: strong order 0.5 in general, 1 for
    /// additive noise; one drift+diffusion evaluation per step; algebraically reversible.
    ReversibleHeun,
    /// Adaptive Stratonovich Heun with an embedded Euler estimate on a Brownian tree:
    /// strong order 1 for commutative noise (0.5 in general), error control with rejection.
    SdeAdaptive,
}

impl SdeMethod {
    pub const ALL: [SdeMethod; 4] = [
        SdeMethod::EulerMaruyama,
        SdeMethod::Milstein,
        SdeMethod::ReversibleHeun,
        SdeMethod::SdeAdaptive,
    ];

    pub fn name(self) -> &'static str {
        match self {
            SdeMethod::EulerMaruyama => "euler_maruyama",
            SdeMethod::Milstein => "milstein",
            SdeMethod::ReversibleHeun => "reversible_heun",
            SdeMethod::SdeAdaptive => "sde_adaptive",
        }
    }

    pub fn from_name(name: &str) -> Option<SdeMethod> {
        SdeMethod::ALL.into_iter().find(|m| m.name() == name)
    }

    pub fn is_fixed_step(self) -> bool {
        self != SdeMethod::SdeAdaptive
    }
}

impl std::fmt::Display for SdeMethod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Which realisation of the Brownian path a solve uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BrownianKind {
    /// Independent increments per fixed step, keyed by the step number (fixed-step only).
    Grid,
    /// The virtual Brownian tree: one path, queried at any times.
    Tree,
}

/// Options of one SDE solve. Build with [`SdeOptions::new`] and set fields.
#[derive(Clone, Debug, PartialEq)]
pub struct SdeOptions {
    pub method: SdeMethod,
    pub t0: f64,
    /// Must be > t0.
    pub t1: f64,
    pub rtol: f64,
    /// Length 1 or the state dimension.
    pub atol: Vec<f64>,
    /// The step of a fixed-step method (required); the first step of `sde_adaptive`.
    pub dt: Option<f64>,
    pub saveat: SaveAt,
    pub max_steps: u64,
    pub dtmin: Option<f64>,
    pub dtmax: Option<f64>,
    /// The noise key: trajectory `traj` of seed `seed`.
    pub seed: u64,
    pub traj: u64,
    /// `None`: the grid for fixed-step methods, the tree for `sde_adaptive` (which needs it).
    pub path: Option<BrownianKind>,
}

impl SdeOptions {
    /// Defaults: rtol 1e-6, atol 1e-8, save the ends, 100 000 steps, seed 0, trajectory 0.
    pub fn new(method: SdeMethod, t0: f64, t1: f64) -> SdeOptions {
        SdeOptions {
            method,
            t0,
            t1,
            rtol: 1e-6,
            atol: vec![1e-8],
            dt: None,
            saveat: SaveAt::Ends,
            max_steps: 100_000,
            dtmin: None,
            dtmax: None,
            seed: 0,
            traj: 0,
            path: None,
        }
    }

    pub fn brownian(&self) -> BrownianKind {
        match (self.method, self.path) {
            (SdeMethod::SdeAdaptive, _) => BrownianKind::Tree,
            (_, Some(k)) => k,
            (_, None) => BrownianKind::Grid,
        }
    }

    /// Checks the options against a state dimension; the message is suitable for a user.
    pub fn validate(&self, dim: usize) -> Result<(), String> {
        if !self.t0.is_finite() || !self.t1.is_finite() {
            return Err(format!(
                "t0 and t1 must be finite (got {} and {})",
                self.t0, self.t1
            ));
        }
        if self.t1 <= self.t0 {
            return Err(format!(
                "an SDE is solved forward in time: t1 must be > t0 (got t0 = {}, t1 = {})",
                self.t0, self.t1
            ));
        }
        if !(self.rtol >= 0.0 && self.rtol.is_finite()) {
            return Err(format!(
                "rtol must be a finite number ≥ 0 (got {})",
                self.rtol
            ));
        }
        if self.atol.len() != 1 && self.atol.len() != dim {
            return Err(format!(
                "atol has {} entries; give one or one per state component ({dim})",
                self.atol.len()
            ));
        }
        for &a in &self.atol {
            if !(a >= 0.0 && a.is_finite()) {
                return Err(format!("atol must be finite and ≥ 0 (got {a})"));
            }
            if a == 0.0 && self.rtol == 0.0 && !self.method.is_fixed_step() {
                return Err("rtol and atol cannot both be zero".into());
            }
        }
        match self.dt {
            None if self.method.is_fixed_step() => {
                return Err(format!(
                    "method `{}` is fixed-step: it needs a dt",
                    self.method
                ));
            }
            Some(dt) if !(dt.is_finite() && dt > 0.0) => {
                return Err(format!("dt must be finite and > 0 (got {dt})"));
            }
            _ => {}
        }
        self.save_times().map(|_| ())
    }

    /// The save times, ascending.
    pub fn save_times(&self) -> Result<Vec<f64>, String> {
        let mut o = SolveOptions::new(Method::Euler, self.t0, self.t1);
        o.saveat = self.saveat.clone();
        o.save_times()
    }
}

/// An SDE du = f(t, u) dt + G(t, u) dW over n states and m Wiener processes, as fused
/// kernels. One instance per thread (implementations own scratch memory).
pub trait SdeRhs {
    fn dim(&self) -> usize;
    fn noise_dim(&self) -> usize;
    /// Whether L^j g_k = L^k g_j for every pair (Milstein needs it).
    fn commutative(&self) -> bool;
    /// Whether [`SdeRhs::drift_diffusion`] writes G as its diagonal (length n).
    fn diagonal(&self) -> bool;
    /// Itô drift f_I(t, u) and G(t, u)·dw.
    fn ito(&mut self, t: f64, u: &[f64], dw: &[f64], f: &mut [f64], gdw: &mut [f64]);
    /// Stratonovich drift f_S(t, u) and G(t, u)·dw.
    fn stratonovich(&mut self, t: f64, u: &[f64], dw: &[f64], f: &mut [f64], gdw: &mut [f64]);
    /// f_S, G·dw and ½ (∂(G dw)/∂u)(G dw).
    #[allow(clippy::too_many_arguments)]
    fn milstein(
        &mut self,
        t: f64,
        u: &[f64],
        dw: &[f64],
        f: &mut [f64],
        gdw: &mut [f64],
        mil: &mut [f64],
    );
    /// f_S and G (its diagonal when `diagonal()`, else column-major n × m).
    fn drift_diffusion(&mut self, t: f64, u: &[f64], f: &mut [f64], g: &mut [f64]);
}

/// A solved SDE trajectory and the Brownian path at the save times.
#[derive(Clone, Debug, PartialEq)]
pub struct SdeSolution {
    pub sol: Solution,
    /// W at each save time (row-major, rows × m); W(t0) = 0.
    pub w: Vec<f64>,
    pub noise_dim: usize,
}

impl SdeSolution {
    pub fn w_row(&self, i: usize) -> &[f64] {
        &self.w[i * self.noise_dim..(i + 1) * self.noise_dim]
    }
}

const GRID_TAG: u64 = 1 << 56;
const TREE_TAG: u64 = 1 << 57;

/// Increments over fixed steps: step n of length h gets √h·Z(seed, traj, n·m + j) for noise j
/// (ziggurat normals, [`Gaussians`]).
#[derive(Clone, Debug)]
pub struct GridPath {
    normals: Gaussians,
    m: usize,
}

impl GridPath {
    pub fn new(seed: u64, traj: u64, m: usize) -> GridPath {
        assert!(traj < GRID_TAG, "trajectory index too large");
        GridPath {
            normals: Gaussians::new(Stream::new(seed, traj | GRID_TAG)),
            m,
        }
    }

    /// The unit normals of steps n0, n0 + 1, … (m per step, step-major) into `z`.
    pub fn normals(&mut self, n0: u64, z: &mut [f64]) {
        self.normals.fill(n0 * self.m as u64, z);
    }

    /// ΔW over step `n` of length h, given √h.
    pub fn increment(&mut self, n: u64, sqrt_h: f64, dw: &mut [f64]) {
        let s = sqrt_h;
        let q0 = n * self.m as u64;
        for (j, d) in dw.iter_mut().enumerate() {
            *d = s * self.normals.at(q0 + j as u64);
        }
    }
}

/// Deepest bisection level of the tree; below it W is linear (|interval| = T·2⁻⁵⁰).
const TREE_DEPTH: u32 = 50;

#[derive(Clone, Copy, Debug)]
struct Frame {
    a: f64,
    b: f64,
    id: u64,
    depth: u32,
}

/// A virtual Brownian tree on [t0, t1] (see the module documentation).
#[derive(Clone, Debug)]
pub struct BrownianTree {
    normals: Gaussians,
    m: usize,
    t0: f64,
    t1: f64,
    /// The descent from the root to the last query: frames and their end values
    /// (`vals[2k·m..]` = W(a_k), `vals[(2k+1)·m..]` = W(b_k)).
    frames: Vec<Frame>,
    vals: Vec<f64>,
    mid: Vec<f64>,
}

impl BrownianTree {
    pub fn new(seed: u64, traj: u64, m: usize, t0: f64, t1: f64) -> BrownianTree {
        assert!(traj < GRID_TAG, "trajectory index too large");
        assert!(t1 > t0, "the tree needs t1 > t0");
        assert!(
            m < 1 << 12,
            "too many Wiener processes for the tree's counter layout"
        );
        let mut normals = Gaussians::new(Stream::new(seed, traj | TREE_TAG));
        let mut vals = vec![0.0; 2 * m];
        let s = (t1 - t0).sqrt();
        let mut tmp = vec![0.0; m];
        normals_into(&mut normals, m, 0, &mut tmp);
        for j in 0..m {
            vals[m + j] = s * tmp[j];
        }
        BrownianTree {
            normals,
            m,
            t0,
            t1,
            frames: vec![Frame {
                a: t0,
                b: t1,
                id: 1,
                depth: 0,
            }],
            vals,
            mid: tmp,
        }
    }

    /// W(t) for t in [t0, t1] (clamped).
    pub fn value(&mut self, t: f64, out: &mut [f64]) {
        let m = self.m;
        let t = t.clamp(self.t0, self.t1);
        while self.frames.len() > 1 {
            let f = self.frames[self.frames.len() - 1];
            if f.a <= t && t <= f.b {
                break;
            }
            self.frames.pop();
            self.vals.truncate(2 * m * self.frames.len());
        }
        loop {
            let k = self.frames.len() - 1;
            let f = self.frames[k];
            let (wa, wb) = self.vals[2 * k * m..(2 * k + 2) * m].split_at(m);
            if t == f.a {
                out.copy_from_slice(wa);
                return;
            }
            if t == f.b {
                out.copy_from_slice(wb);
                return;
            }
            let mid = 0.5 * (f.a + f.b);
            if f.depth >= TREE_DEPTH || mid <= f.a || mid >= f.b {
                let th = (t - f.a) / (f.b - f.a);
                for j in 0..m {
                    out[j] = wa[j] + th * (wb[j] - wa[j]);
                }
                return;
            }
            let s = (0.25 * (f.b - f.a)).sqrt();
            normals_into(&mut self.normals, m, f.id, &mut self.mid);
            for j in 0..m {
                self.mid[j] = 0.5 * (wa[j] + wb[j]) + s * self.mid[j];
            }
            if t == mid {
                out.copy_from_slice(&self.mid);
                return;
            }
            let (child, lo_hi) = if t < mid {
                (
                    Frame {
                        a: f.a,
                        b: mid,
                        id: 2 * f.id,
                        depth: f.depth + 1,
                    },
                    false,
                )
            } else {
                (
                    Frame {
                        a: mid,
                        b: f.b,
                        id: 2 * f.id + 1,
                        depth: f.depth + 1,
                    },
                    true,
                )
            };
            let base = 2 * k * m;
            if lo_hi {
                self.vals.extend_from_within(base..base + m);
                self.vals.extend_from_within(base + m..base + 2 * m);
                let n = self.vals.len();
                self.vals[n - 2 * m..n - m].copy_from_slice(&self.mid);
            } else {
                self.vals.extend_from_within(base..base + 2 * m);
                let n = self.vals.len();
                self.vals[n - m..].copy_from_slice(&self.mid);
            }
            self.frames.push(child);
        }
    }
}

/// m standard normals for tree node `id` (normal numbers id·m … id·m + m − 1).
fn normals_into(g: &mut Gaussians, m: usize, id: u64, out: &mut [f64]) {
    let q0 = id * m as u64;
    for (j, o) in out.iter_mut().enumerate() {
        *o = g.at(q0 + j as u64);
    }
}

enum Path {
    Grid(GridPath),
    Tree(BrownianTree),
}

fn fail(t: f64, reason: FailReason, stats: Stats) -> SolveError {
    SolveError { t, reason, stats }
}

/// Solves an SDE from `u0` on the path of trajectory (`opts.seed`, `opts.traj`).
pub fn solve_sde<R: SdeRhs + ?Sized>(
    rhs: &mut R,
    u0: &[f64],
    opts: &SdeOptions,
) -> Result<SdeSolution, SolveError> {
    check(rhs, u0, opts)?;
    if opts.method == SdeMethod::SdeAdaptive {
        adaptive(rhs, u0, opts)
    } else if lane_method(opts) {
        let mut r = solve_lockstep(&mut [rhs], &[u0], std::slice::from_ref(opts));
        r.pop().expect("one lane")
    } else {
        fixed(rhs, u0, opts)
    }
}

/// Whether a solve runs on the lockstep lanes: euler_maruyama or milstein on the grid path.
fn lane_method(o: &SdeOptions) -> bool {
    matches!(o.method, SdeMethod::EulerMaruyama | SdeMethod::Milstein)
        && o.brownian() == BrownianKind::Grid
}

/// Solves several trajectories (one `rhs` each, e.g. with their own params) in lockstep:
/// step k of every lane, then step k + 1, so the lanes' independent kernel calls overlap in
/// the CPU. Each lane's arithmetic is exactly that of solving it alone (the same code runs
/// with one lane), so the results are bit-identical to [`solve_sde`]. Lanes whose options
/// differ in anything but `seed`/`traj`, or whose method is not euler_maruyama or milstein on
/// the grid path, are solved one by one.
pub fn solve_sde_many<R: SdeRhs>(
    rhs: &mut [R],
    u0: &[&[f64]],
    opts: &[SdeOptions],
) -> Vec<Result<SdeSolution, SolveError>> {
    assert!(rhs.len() == u0.len() && u0.len() == opts.len());
    let same = opts.iter().all(|o| {
        lane_method(o) && {
            let (mut a, mut b) = (o.clone(), opts[0].clone());
            (a.seed, a.traj, b.seed, b.traj) = (0, 0, 0, 0);
            a == b
        }
    });
    let checked: Vec<Result<(), SolveError>> = rhs
        .iter()
        .zip(u0)
        .zip(opts)
        .map(|((r, u), o)| check(r, u, o))
        .collect();
    if !same || checked.iter().any(Result::is_err) || rhs.iter().any(|r| r.dim() != rhs[0].dim()) {
        return rhs
            .iter_mut()
            .zip(u0)
            .zip(opts)
            .map(|((r, u), o)| solve_sde(r, u, o))
            .collect();
    }
    let mut refs: Vec<&mut R> = rhs.iter_mut().collect();
    solve_lockstep(&mut refs, u0, opts)
}

/// The checks of [`solve_sde`] before any step.
fn check<R: SdeRhs + ?Sized>(rhs: &R, u0: &[f64], opts: &SdeOptions) -> Result<(), SolveError> {
    let n = rhs.dim();
    let invalid = |m: String| fail(opts.t0, FailReason::InvalidInput(m), Stats::default());
    opts.validate(n).map_err(invalid)?;
    if u0.len() != n {
        return Err(invalid(format!(
            "u0 has {} entries, the system has {n}",
            u0.len()
        )));
    }
    if opts.method == SdeMethod::Milstein && !rhs.commutative() {
        return Err(invalid(
            "milstein needs commutative noise (scalar, diagonal, additive, or L^j g_k = L^k g_j); \
             this model's noise is not proved commutative: use euler_maruyama, reversible_heun or sde_adaptive"
                .into(),
        ));
    }
    Ok(())
}

/// Normals are drawn for this many steps at a time (one tight Philox loop per lane).
const ZCHUNK: u64 = 256;

/// The fixed steps of a solve: ends t0 + k·dt (the last one t1) and √h of each.
struct FixedSteps {
    t0: f64,
    t1: f64,
    dt: f64,
    count: u64,
    sqrt_dt: f64,
    /// √h of the last (possibly shortened) step; every other step uses √dt (its
    /// h = t_{k+1} − t_k may differ from dt in the last bit).
    sqrt_last: f64,
}

impl FixedSteps {
    fn new(o: &SdeOptions) -> FixedSteps {
        let dt = o.dt.expect("validated: fixed-step methods have a dt");
        let count = ((o.t1 - o.t0) / dt - 1e-9).ceil().max(1.0) as u64;
        let mut s = FixedSteps {
            t0: o.t0,
            t1: o.t1,
            dt,
            count,
            sqrt_dt: dt.sqrt(),
            sqrt_last: 0.0,
        };
        s.sqrt_last = (o.t1 - s.time(count - 1)).sqrt();
        s
    }

    #[inline]
    fn time(&self, k: u64) -> f64 {
        if k >= self.count {
            self.t1
        } else {
            self.t0 + k as f64 * self.dt
        }
    }

    #[inline]
    fn sqrt_h(&self, k: u64) -> f64 {
        if k + 1 < self.count {
            self.sqrt_dt
        } else {
            self.sqrt_last
        }
    }
}

/// The lanes of a lockstep solve as one block, lane-major: lane l's state is
/// `u[l·n..(l+1)·n]`, its increments `dw[l·m..(l+1)·m]`, its normals for the current chunk of
/// steps `z[l·ZCHUNK·m..]`. Whole-block buffers are swapped once per step.
struct LaneBlock {
    n: usize,
    m: usize,
    u: Vec<f64>,
    un: Vec<f64>,
    f: Vec<f64>,
    gdw: Vec<f64>,
    mil: Vec<f64>,
    w: Vec<f64>,
    wn: Vec<f64>,
    dw: Vec<f64>,
    z: Vec<f64>,
    paths: Vec<GridPath>,
    savers: Vec<Saver>,
    errs: Vec<Option<SolveError>>,
}

impl LaneBlock {
    fn new(u0: &[&[f64]], opts: &[SdeOptions], n: usize, m: usize, times: &[f64]) -> LaneBlock {
        let lanes = u0.len();
        let savers = u0
            .iter()
            .map(|u| {
                let mut s = Saver::new(times.to_vec());
                s.start(opts[0].t0, u, &vec![0.0; m]);
                s
            })
            .collect();
        LaneBlock {
            n,
            m,
            u: u0.concat(),
            un: vec![0.0; lanes * n],
            f: vec![0.0; lanes * n],
            gdw: vec![0.0; lanes * n],
            mil: vec![0.0; lanes * n],
            w: vec![0.0; lanes * m],
            wn: vec![0.0; lanes * m],
            dw: vec![0.0; lanes * m],
            z: vec![0.0; lanes * ZCHUNK as usize * m],
            paths: opts
                .iter()
                .map(|o| GridPath::new(o.seed, o.traj, m))
                .collect(),
            savers,
            errs: vec![None; lanes],
        }
    }

    /// Every live lane's normals for steps k .. k + ZCHUNK (fewer at the end).
    fn draw(&mut self, k: u64, count: u64) {
        let len = ZCHUNK.min(count - k) as usize * self.m;
        let stride = ZCHUNK as usize * self.m;
        for (l, path) in self.paths.iter_mut().enumerate() {
            if self.errs[l].is_none() {
                path.normals(k, &mut self.z[l * stride..l * stride + len]);
            }
        }
    }

    /// Lane l's step k: increments, one kernel call, the update. Returns whether the new
    /// state is finite.
    #[inline]
    #[allow(clippy::too_many_arguments)]
    fn step<R: SdeRhs + ?Sized>(
        &mut self,
        l: usize,
        r: &mut R,
        ta: f64,
        h: f64,
        sq: f64,
        zk: usize,
        milstein: bool,
    ) -> bool {
        let (n, m) = (self.n, self.m);
        let z = &self.z[l * ZCHUNK as usize * m + zk * m..][..m];
        let (dw, w, wn) = (
            &mut self.dw[l * m..(l + 1) * m],
            &self.w[l * m..(l + 1) * m],
            &mut self.wn[l * m..(l + 1) * m],
        );
        for j in 0..m {
            dw[j] = sq * z[j];
            wn[j] = w[j] + dw[j];
        }
        let span = l * n..(l + 1) * n;
        let (u, un) = (&self.u[span.clone()], &mut self.un[span.clone()]);
        let (f, gdw) = (&mut self.f[span.clone()], &mut self.gdw[span.clone()]);
        let mut finite = true;
        if milstein {
            let mil = &mut self.mil[span];
            r.milstein(ta, u, dw, f, gdw, mil);
            for i in 0..n {
                un[i] = u[i] + f[i] * h + gdw[i] + mil[i];
                finite &= un[i].is_finite();
            }
        } else {
            r.ito(ta, u, dw, f, gdw);
            for i in 0..n {
                un[i] = u[i] + f[i] * h + gdw[i];
                finite &= un[i].is_finite();
            }
        }
        finite
    }

    /// Saves every live lane's rows due in (ta, tb].
    #[cold]
    fn save(&mut self, ta: f64, tb: f64) {
        let (n, m) = (self.n, self.m);
        for (l, saver) in self.savers.iter_mut().enumerate() {
            if self.errs[l].is_none() {
                let (us, ws) = (l * n..(l + 1) * n, l * m..(l + 1) * m);
                let (u, un) = (&self.u[us.clone()], &self.un[us]);
                saver.between(ta, tb, u, un, &self.w[ws.clone()], &self.wn[ws]);
            }
        }
    }
}

/// Euler–Maruyama or Milstein on the grid path, lanes in lockstep (validated options, all
/// equal but for the noise key): per step, every lane's increments, kernel call and update,
/// then the rows due (one test for all lanes: they share the save times) and one swap of
/// the whole block.
fn solve_lockstep<R: SdeRhs + ?Sized>(
    rhs: &mut [&mut R],
    u0: &[&[f64]],
    opts: &[SdeOptions],
) -> Vec<Result<SdeSolution, SolveError>> {
    let o = &opts[0];
    let (n, m) = (rhs[0].dim(), rhs[0].noise_dim());
    let steps = FixedSteps::new(o);
    let times = o.save_times().expect("validated");
    let milstein = o.method == SdeMethod::Milstein;
    let mut b = LaneBlock::new(u0, opts, n, m, &times);
    let mut next_save = times.iter().take_while(|s| **s == o.t0).count();
    for k in 0..steps.count {
        let (ta, tb) = (steps.time(k), steps.time(k + 1));
        let (h, sq) = (tb - ta, steps.sqrt_h(k));
        if k >= o.max_steps {
            let reason = FailReason::MaxSteps {
                max_steps: o.max_steps,
            };
            for e in b.errs.iter_mut().filter(|e| e.is_none()) {
                *e = Some(fail(ta, reason.clone(), lane_stats(k)));
            }
            break;
        }
        if k % ZCHUNK == 0 {
            b.draw(k, steps.count);
        }
        let zk = (k % ZCHUNK) as usize;
        for (l, r) in rhs.iter_mut().enumerate() {
            if b.errs[l].is_none() && !b.step(l, *r, ta, h, sq, zk, milstein) {
                b.errs[l] = Some(fail(ta, FailReason::NonFiniteState, lane_stats(k + 1)));
            }
        }
        if times.get(next_save).is_some_and(|&s| s <= tb + 1e-9 * h) {
            b.save(ta, tb);
            while times.get(next_save).is_some_and(|&s| s <= tb + 1e-9 * h) {
                next_save += 1;
            }
        }
        std::mem::swap(&mut b.u, &mut b.un);
        std::mem::swap(&mut b.w, &mut b.wn);
    }
    let stats = lane_stats(steps.count);
    b.savers
        .into_iter()
        .zip(b.errs)
        .map(|(s, e)| match e {
            Some(e) => Err(e),
            None => Ok(s.finish(n, m, stats)),
        })
        .collect()
}

/// The work of `steps` fixed steps of one lane (one kernel call each).
fn lane_stats(steps: u64) -> Stats {
    Stats {
        steps,
        accepted: steps,
        rhs_evals: steps,
        ..Stats::default()
    }
}

/// Saved rows.
struct Saver {
    times: Vec<f64>,
    next: usize,
    t: Vec<f64>,
    u: Vec<f64>,
    w: Vec<f64>,
}

impl Saver {
    fn new(times: Vec<f64>) -> Saver {
        Saver {
            times,
            next: 0,
            t: Vec::new(),
            u: Vec::new(),
            w: Vec::new(),
        }
    }
    fn push(&mut self, t: f64, u: &[f64], w: &[f64]) {
        self.t.push(t);
        self.u.extend_from_slice(u);
        self.w.extend_from_slice(w);
        self.next += 1;
    }
    /// Saves the initial state at every save time equal to t0 (none when the first save
    /// time is later).
    fn start(&mut self, t0: f64, u: &[f64], w: &[f64]) {
        while self.times.get(self.next) == Some(&t0) {
            self.push(t0, u, w);
        }
    }
    /// Whether a save time is due by the end `tb` of a step of length `h`.
    #[inline]
    fn pending_by(&self, tb: f64, h: f64) -> bool {
        self.times
            .get(self.next)
            .is_some_and(|&s| s <= tb + 1e-9 * h)
    }

    /// Saves every pending time in (ta, tb] by linear interpolation between the step's
    /// ends (the end values themselves when a save time is within 1e-9 of a step of them).
    #[allow(clippy::too_many_arguments)]
    #[cold]
    fn between(&mut self, ta: f64, tb: f64, ua: &[f64], ub: &[f64], wa: &[f64], wb: &[f64]) {
        let h = tb - ta;
        while self.next < self.times.len() && self.times[self.next] <= tb + 1e-9 * h {
            let s = self.times[self.next];
            let th = (s - ta) / h;
            if th >= 1.0 - 1e-9 {
                self.push(s, ub, wb);
            } else if th <= 1e-9 {
                self.push(s, ua, wa);
            } else {
                let u: Vec<f64> = ua.iter().zip(ub).map(|(a, b)| a + th * (b - a)).collect();
                let w: Vec<f64> = wa.iter().zip(wb).map(|(a, b)| a + th * (b - a)).collect();
                self.push(s, &u, &w);
            }
        }
    }
    fn finish(self, n: usize, m: usize, stats: Stats) -> SdeSolution {
        SdeSolution {
            sol: Solution {
                t: self.t,
                u: self.u,
                stats,
                dim: n,
            },
            w: self.w,
            noise_dim: m,
        }
    }
}

fn fixed<R: SdeRhs + ?Sized>(
    rhs: &mut R,
    u0: &[f64],
    opts: &SdeOptions,
) -> Result<SdeSolution, SolveError> {
    let (n, m) = (rhs.dim(), rhs.noise_dim());
    let (t0, t1) = (opts.t0, opts.t1);
    let dt = opts.dt.expect("validated: fixed-step methods have a dt");
    let nsteps = ((t1 - t0) / dt - 1e-9).ceil().max(1.0) as u64;
    let sqrt_dt = dt.sqrt();
    const ZCHUNK: u64 = 256;
    let (mut zbuf, mut zk) = (Vec::<f64>::new(), 0u64);
    let time = |k: u64| {
        if k >= nsteps { t1 } else { t0 + k as f64 * dt }
    };
    // √h of the last (possibly shortened) step; every other step has
    // √dt (its h = t_{k+1} − t_k may differ from dt in the last bit).
    let sqrt_last = (t1 - time(nsteps - 1)).sqrt();
    let mut path = match opts.brownian() {
        BrownianKind::Grid => Path::Grid(GridPath::new(opts.seed, opts.traj, m)),
        BrownianKind::Tree => Path::Tree(BrownianTree::new(opts.seed, opts.traj, m, t0, t1)),
    };
    let mut saver = Saver::new(opts.save_times().expect("validated"));
    let mut stats = Stats::default();
    let mut u = u0.to_vec();
    let mut un = vec![0.0; n];
    let mut f = vec![0.0; n];
    let mut gdw = vec![0.0; n];
    let mut mil = vec![0.0; n];
    let mut w = vec![0.0; m];
    let mut wn = vec![0.0; m];
    let mut dw = vec![0.0; m];
    // Reversible Heun's second state ŷ, its drift μ and diffusion σ (at ŷ).
    let rev = opts.method == SdeMethod::ReversibleHeun;
    let diag = rhs.diagonal();
    let glen = if diag { n } else { n * m };
    let (mut yhat, mut mu, mut sig) = (u.clone(), vec![0.0; n], vec![0.0; glen]);
    let (mut yhat_n, mut mu_n, mut sig_n) = (vec![0.0; n], vec![0.0; n], vec![0.0; glen]);
    let mut gdw_n = vec![0.0; n];
    if rev {
        rhs.drift_diffusion(t0, &u, &mut mu, &mut sig);
        stats.rhs_evals += 1;
    }
    saver.start(t0, &u, &w);
    for k in 0..nsteps {
        let (ta, tb) = (time(k), time(k + 1));
        let h = tb - ta;
        if stats.steps >= opts.max_steps {
            return Err(fail(
                ta,
                FailReason::MaxSteps {
                    max_steps: opts.max_steps,
                },
                stats,
            ));
        }
        match &mut path {
            Path::Grid(g) => {
                // Normals for a chunk of steps at a time (one tight Philox loop).
                if k >= zk + ZCHUNK || k < zk || zbuf.is_empty() {
                    zk = k;
                    let steps = ZCHUNK.min(nsteps - k);
                    zbuf.resize(steps as usize * m, 0.0);
                    g.normals(k, &mut zbuf);
                }
                let sq = if k + 1 < nsteps { sqrt_dt } else { sqrt_last };
                let z = &zbuf[(k - zk) as usize * m..(k - zk + 1) as usize * m];
                for j in 0..m {
                    dw[j] = sq * z[j];
                }
                for j in 0..m {
                    wn[j] = w[j] + dw[j];
                }
            }
            Path::Tree(tr) => {
                tr.value(tb, &mut wn);
                for j in 0..m {
                    dw[j] = wn[j] - w[j];
                }
            }
        }
        match opts.method {
            SdeMethod::EulerMaruyama => {
                rhs.ito(ta, &u, &dw, &mut f, &mut gdw);
                stats.rhs_evals += 1;
                for i in 0..n {
                    un[i] = u[i] + f[i] * h + gdw[i];
                }
            }
            SdeMethod::Milstein => {
                rhs.milstein(ta, &u, &dw, &mut f, &mut gdw, &mut mil);
                stats.rhs_evals += 1;
                for i in 0..n {
                    un[i] = u[i] + f[i] * h + gdw[i] + mil[i];
                }
            }
            SdeMethod::ReversibleHeun => {
                apply_diffusion(&sig, &dw, n, m, diag, &mut gdw);
                for i in 0..n {
                    yhat_n[i] = 2.0 * u[i] - yhat[i] + mu[i] * h + gdw[i];
                }
                rhs.drift_diffusion(tb, &yhat_n, &mut mu_n, &mut sig_n);
                stats.rhs_evals += 1;
                apply_diffusion(&sig_n, &dw, n, m, diag, &mut gdw_n);
                for i in 0..n {
                    un[i] = u[i] + 0.5 * (mu[i] + mu_n[i]) * h + 0.5 * (gdw[i] + gdw_n[i]);
                }
                std::mem::swap(&mut yhat, &mut yhat_n);
                std::mem::swap(&mut mu, &mut mu_n);
                std::mem::swap(&mut sig, &mut sig_n);
            }
            SdeMethod::SdeAdaptive => unreachable!("adaptive is solved elsewhere"),
        }
        stats.steps += 1;
        stats.accepted += 1;
        if !un.iter().all(|x| x.is_finite()) {
            return Err(fail(ta, FailReason::NonFiniteState, stats));
        }
        // Most steps pass no save time: test that inline, before the call.
        if saver.pending_by(tb, h) {
            saver.between(ta, tb, &u, &un, &w, &wn);
        }
        std::mem::swap(&mut u, &mut un);
        std::mem::swap(&mut w, &mut wn);
    }
    Ok(saver.finish(n, m, stats))
}

/// out = G·dw for G stored as its diagonal (`diag`) or column-major n × m.
pub fn apply_diffusion(g: &[f64], dw: &[f64], n: usize, m: usize, diag: bool, out: &mut [f64]) {
    if diag {
        for i in 0..n {
            out[i] = g[i] * dw[i];
        }
    } else {
        out.fill(0.0);
        for j in 0..m {
            let col = &g[j * n..(j + 1) * n];
            for i in 0..n {
                out[i] += col[i] * dw[j];
            }
        }
    }
}

/// `sde_adaptive`: Stratonovich Heun (the trapezoidal predictor–corrector, f the
/// Stratonovich drift)
///   ỹ = y + f(t,y) h + G(t,y) ΔW,
///   y⁺ = y + ½(f(t,y) + f(t+h,ỹ)) h + ½(G(t,y) + G(t+h,ỹ)) ΔW,
/// strong order 1 for commutative noise, with an embedded Milstein step
///   y_M = ỹ + ½ (∂(GΔW)/∂u)(GΔW)
/// (also order 1; it costs nothing extra: the same kernel call gives f(t,y), G(t,y)ΔW and the
/// Milstein product). Their difference y⁺ − y_M = O(h^1.5) (O(h²) without noise) is the
/// local error estimate, measured in the usual mixed absolute/relative RMS norm; the step
/// is accepted when it is ≤ 1 and h ← h·clamp(0.9·err^(−1/2), 0.2, 5). A rejected step is
/// retried on the same Brownian tree (W at the new end comes from the bridge, so every
/// attempt sees one fixed path). Steps land exactly on every save time. Two kernel calls
/// per attempted step.
fn adaptive<R: SdeRhs + ?Sized>(
    rhs: &mut R,
    u0: &[f64],
    opts: &SdeOptions,
) -> Result<SdeSolution, SolveError> {
    let (n, m) = (rhs.dim(), rhs.noise_dim());
    let (t0, t1) = (opts.t0, opts.t1);
    let span = t1 - t0;
    let dtmin = opts
        .dtmin
        .unwrap_or(16.0 * f64::EPSILON * t0.abs().max(t1.abs()).max(span));
    let dtmax = opts.dtmax.unwrap_or(span);
    let mut h = opts.dt.unwrap_or(span / 100.0).min(dtmax);
    let atol = |i: usize| {
        if opts.atol.len() == 1 {
            opts.atol[0]
        } else {
            opts.atol[i]
        }
    };
    let mut tree = BrownianTree::new(opts.seed, opts.traj, m, t0, t1);
    let mut saver = Saver::new(opts.save_times().expect("validated"));
    let mut stats = Stats::default();
    let mut t = t0;
    let mut y = u0.to_vec();
    let mut w = vec![0.0; m];
    let (mut wn, mut dw) = (vec![0.0; m], vec![0.0; m]);
    let (mut f0, mut g0, mut f1, mut g1) = (vec![0.0; n], vec![0.0; n], vec![0.0; n], vec![0.0; n]);
    let (mut ytil, mut yn, mut mil) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
    saver.start(t0, &y, &w);
    while saver.next < saver.times.len() {
        let target = saver.times[saver.next];
        if stats.steps >= opts.max_steps {
            return Err(fail(
                t,
                FailReason::MaxSteps {
                    max_steps: opts.max_steps,
                },
                stats,
            ));
        }
        // Land on the next save time (stretching by at most 1% rather than leaving a sliver).
        let hit = t + h * 1.01 >= target;
        let tn = if hit { target } else { t + h };
        let hh = tn - t;
        tree.value(tn, &mut wn);
        for j in 0..m {
            dw[j] = wn[j] - w[j];
        }
        rhs.milstein(t, &y, &dw, &mut f0, &mut g0, &mut mil);
        for i in 0..n {
            ytil[i] = y[i] + f0[i] * hh + g0[i];
        }
        rhs.stratonovich(tn, &ytil, &dw, &mut f1, &mut g1);
        stats.rhs_evals += 2;
        stats.steps += 1;
        let mut acc = 0.0;
        for i in 0..n {
            yn[i] = y[i] + 0.5 * (f0[i] + f1[i]) * hh + 0.5 * (g0[i] + g1[i]);
            let sc = atol(i) + opts.rtol * y[i].abs().max(yn[i].abs());
            // Heun against the Milstein step ỹ + mil: both order 1 (commutative noise),
            // their difference O(h^1.5) — the local error estimate.
            let e = (yn[i] - ytil[i] - mil[i]) / sc;
            acc += e * e;
        }
        let err = (acc / n as f64).sqrt();
        if err <= 1.0 {
            stats.accepted += 1;
            t = tn;
            std::mem::swap(&mut y, &mut yn);
            std::mem::swap(&mut w, &mut wn);
            if hit {
                saver.push(tn, &y, &w);
            }
            let fac = if err == 0.0 {
                5.0
            } else {
                (0.9 / err.sqrt()).clamp(0.2, 5.0)
            };
            h = (hh * fac).min(dtmax);
        } else {
            stats.rejected += 1;
            let fac = if err.is_finite() {
                (0.9 / err.sqrt()).clamp(0.2, 0.9)
            } else {
                0.2
            };
            h = hh * fac;
            if h < dtmin {
                let reason = if yn.iter().all(|x| x.is_finite()) {
                    FailReason::StepSizeUnderflow { dt: h }
                } else {
                    FailReason::NonFiniteState
                };
                return Err(fail(t, reason, stats));
            }
        }
    }
    Ok(saver.finish(n, m, stats))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tree_is_one_path_whatever_the_query_order() {
        let ts: Vec<f64> = (0..=200).map(|k| 0.3 + 1.7 * k as f64 / 200.0).collect();
        let mut a = BrownianTree::new(5, 9, 3, 0.3, 2.0);
        let forward: Vec<Vec<f64>> = ts
            .iter()
            .map(|&t| {
                let mut w = vec![0.0; 3];
                a.value(t, &mut w);
                w
            })
            .collect();
        // A fresh tree queried in a scrambled order (with repeats) gives the same bits.
        let mut b = BrownianTree::new(5, 9, 3, 0.3, 2.0);
        for i in (0..ts.len())
            .map(|i| (i * 37) % ts.len())
            .chain([0, 200, 100])
        {
            let mut w = vec![0.0; 3];
            b.value(ts[i], &mut w);
            assert_eq!(w, forward[i], "t = {}", ts[i]);
        }
        assert_eq!(forward[0], vec![0.0; 3]);
    }

    #[test]
    fn tree_increments_are_brownian() {
        // Over 4000 paths: W(1) − W(0.5) and W(0.5) are independent N(0, 1/2), and
        // W(0.3) has variance 0.3 (a non-dyadic time). Tolerances: 4 standard errors.
        let n = 4000;
        let (mut v1, mut v2, mut c, mut v3, mut m3) = (0.0, 0.0, 0.0, 0.0, 0.0);
        for k in 0..n {
            let mut tr = BrownianTree::new(1, k, 1, 0.0, 1.0);
            let (mut a, mut b, mut x) = ([0.0], [0.0], [0.0]);
            tr.value(0.5, &mut a);
            tr.value(1.0, &mut b);
            tr.value(0.3, &mut x);
            let d = b[0] - a[0];
            v1 += a[0] * a[0];
            v2 += d * d;
            c += a[0] * d;
            v3 += x[0] * x[0];
            m3 += x[0];
        }
        let nf = n as f64;
        let se = |var: f64| var * (2.0 / nf).sqrt();
        assert!((v1 / nf - 0.5).abs() < 4.0 * se(0.5), "{}", v1 / nf);
        assert!((v2 / nf - 0.5).abs() < 4.0 * se(0.5), "{}", v2 / nf);
        assert!((c / nf).abs() < 4.0 * 0.5 / nf.sqrt(), "{}", c / nf);
        assert!((v3 / nf - 0.3).abs() < 4.0 * se(0.3), "{}", v3 / nf);
        assert!((m3 / nf).abs() < 4.0 * (0.3 / nf).sqrt());
    }

    #[test]
    fn grid_increments_depend_only_on_the_key_and_step() {
        let mut g = GridPath::new(3, 4, 3);
        let (mut a, mut b) = (vec![0.0; 3], vec![0.0; 3]);
        g.increment(17, 0.1, &mut a);
        let mut z = vec![0.0; 9];
        GridPath::new(3, 4, 3).normals(16, &mut z);
        assert!((0..3).all(|j| (z[3 + j] * 0.1 - a[j]).abs() == 0.0));
        GridPath::new(3, 4, 3).increment(17, 0.1, &mut b);
        assert_eq!(a, b);
        GridPath::new(3, 5, 3).increment(17, 0.1, &mut b);
        assert_ne!(a, b);
        // Different noises of one step are different draws.
        assert!(a[0] != a[1] && a[1] != a[2]);
    }
}
