//! Solves and vector–Jacobian products of the solve map `(θ, u0) ↦ y(ts)`, one trajectory
//! or a batch: B trajectories run in parallel on all cores, each with its own step-size
//! control, and give exactly what B single solves give (the same arithmetic per
//! trajectory; sums over the batch in trajectory order).

use super::options::Plan;
use super::{Error, Model, Options};
use crate::runtime::{Solution, Stats};
use crate::sensitivity::discrete::{self, Tape};
use crate::sensitivity::{self, AdjointOptions, Cotangent, Gradient, Sensitivity, Start};
use rayon::prelude::*;

/// A row-major array of f64 with an optional leading batch axis: one row (`(width,)`) or
/// `rows` rows (`(rows, width)`).
#[derive(Clone, Copy, Debug)]
pub struct Values<'a> {
    data: &'a [f64],
    rows: Option<usize>,
}

impl<'a> Values<'a> {
    /// One row, shared by every trajectory of a batch.
    pub fn one(data: &'a [f64]) -> Values<'a> {
        Values { data, rows: None }
    }

    /// `rows` rows, one per trajectory (`data.len()` must be a multiple of `rows`; checked
    /// when used).
    pub fn batch(data: &'a [f64], rows: usize) -> Values<'a> {
        Values {
            data,
            rows: Some(rows),
        }
    }

    /// The values, row-major.
    pub fn data(&self) -> &'a [f64] {
        self.data
    }

    /// The number of rows of a batch; `None` for one shared row.
    pub fn rows(&self) -> Option<usize> {
        self.rows
    }

    /// Row `b` (the shared row when not batched).
    fn row(&self, b: usize, width: usize) -> &'a [f64] {
        match self.rows {
            Some(_) => &self.data[b * width..(b + 1) * width],
            None => self.data,
        }
    }

    /// The row width when every row is `width` long; else an input error naming `what`.
    fn check_width(&self, what: &str, width: usize, unit: &str) -> Result<(), Error> {
        let ok = match self.rows {
            None => self.data.len() == width,
            Some(r) => r > 0 && self.data.len() == r * width,
        };
        if ok {
            return Ok(());
        }
        Err(Error::Input(match self.rows {
            None => format!(
                "{what} has {} entries; this model has {width} {unit}",
                self.data.len()
            ),
            Some(0) => format!("{what} has a batch axis of length 0"),
            Some(r) => format!(
                "{what} has {} entries for {r} batch rows; this model has {width} {unit} per row",
                self.data.len()
            ),
        }))
    }

    fn to_owned(self) -> Owned {
        Owned {
            data: self.data.to_vec(),
            rows: self.rows,
        }
    }
}

/// [`Values`] kept by a [`Pullback`].
#[derive(Clone, Debug)]
struct Owned {
    data: Vec<f64>,
    rows: Option<usize>,
}

impl Owned {
    fn view(&self) -> Values<'_> {
        Values {
            data: &self.data,
            rows: self.rows,
        }
    }
}

/// Solved trajectories: y at every save time, `(T, n)` or `(B, T, n)` row-major.
#[derive(Clone, Debug)]
pub struct Solved {
    y: Vec<f64>,
    batch: Option<usize>,
    times: usize,
    dim: usize,
    stats: Stats,
}

impl Solved {
    /// The states, row-major in the order of [`Solved::shape`].
    pub fn values(&self) -> &[f64] {
        &self.y
    }

    /// The states, owned.
    pub fn into_values(self) -> Vec<f64> {
        self.y
    }

    /// `[T, n]`, or `[B, T, n]` for a batch.
    pub fn shape(&self) -> Vec<usize> {
        let mut s: Vec<usize> = self.batch.into_iter().collect();
        s.extend([self.times, self.dim]);
        s
    }

    /// The number of trajectories of a batch; `None` for one unbatched solve.
    pub fn batch(&self) -> Option<usize> {
        self.batch
    }

    /// The solver's work, summed over the batch.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }
}

/// The cotangents a [`Pullback`] returns, shaped like the inputs of the solve.
#[derive(Clone, Debug, PartialEq)]
pub struct Cotangents {
    theta: Vec<f64>,
    theta_rows: Option<usize>,
    u0: Option<Vec<f64>>,
    u0_rows: Option<usize>,
}

impl Cotangents {
    /// ∂⟨ȳ, y⟩/∂θ: `(P,)` when θ was one shared row (summed over the batch), `(B, P)` when θ
    /// had a batch axis. Includes the path through the model's initial state when no `u0`
    /// was given.
    pub fn theta(&self) -> &[f64] {
        &self.theta
    }

    /// θ's batch rows, `None` when θ was one row.
    pub fn theta_rows(&self) -> Option<usize> {
        self.theta_rows
    }

    /// ∂⟨ȳ, y⟩/∂u0, shaped like the given `u0` (summed over the batch when it was one
    /// shared row); `None` when no `u0` was given.
    pub fn u0(&self) -> Option<&[f64]> {
        self.u0.as_deref()
    }

    /// u0's batch rows, `None` when u0 was one row (or not given).
    pub fn u0_rows(&self) -> Option<usize> {
        self.u0_rows
    }

    /// (θ's cotangent, u0's cotangent), owned.
    pub fn into_parts(self) -> (Vec<f64>, Option<Vec<f64>>) {
        (self.theta, self.u0)
    }
}

/// The pullback of one [`Model::solve_vjp`]: maps cotangents ȳ of its trajectories to the
/// cotangents of θ and u0. May be applied any number of times, from any thread.
///
/// With the discrete adjoint of an ODE it keeps each trajectory's recorded steps (a
/// [`Tape`]), so applying it only runs the reverse sweep; the other methods solve again
/// (the same arithmetic, so the same solution) inside their gradient.
pub struct Pullback {
    model: Model,
    tapes: Option<Vec<Tape>>,
    ts: Vec<f64>,
    theta: Owned,
    u0: Option<Owned>,
    plan: Plan,
    sensitivity: Sensitivity,
    adjoint: AdjointOptions,
    batch: Option<usize>,
}

impl std::fmt::Debug for Pullback {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pullback")
            .field("model", &self.model.name())
            .field("times", &self.ts.len())
            .field("batch", &self.batch)
            .field("sensitivity", &self.sensitivity.name())
            .finish()
    }
}

/// What one batch of trajectories is: its size and each row's inputs.
#[derive(Clone, Copy)]
struct Shape<'a> {
    batch: Option<usize>,
    theta: Values<'a>,
    u0: Option<Values<'a>>,
    np: usize,
    n: usize,
}

impl<'a> Shape<'a> {
    /// Checks the inputs against the model and each other.
    fn of(model: &Model, theta: Values<'a>, u0: Option<Values<'a>>) -> Result<Shape<'a>, Error> {
        let (np, n) = (model.num_params(), model.dim());
        theta.check_width("theta", np, "parameters")?;
        if let Some(u) = &u0 {
            u.check_width("u0", n, "state entries")?;
        }
        let batch = match (theta.rows(), u0.and_then(|u| u.rows())) {
            (Some(a), Some(b)) if a != b => {
                return Err(Error::Input(format!(
                    "theta has {a} batch rows and u0 has {b}: batch axes must agree"
                )));
            }
            (a, b) => a.or(b),
        };
        let shape = Shape {
            batch,
            theta,
            u0,
            np,
            n,
        };
        for b in 0..shape.len() {
            model.check_theta(shape.theta(b), batch.map(|_| b))?;
            if let Some(u) = shape.u0(b)
                && let Some(i) = u.iter().position(|x| !x.is_finite())
            {
                let at = batch
                    .map(|_| format!(" (batch row {b})"))
                    .unwrap_or_default();
                return Err(Error::Input(format!(
                    "u0[{i}]{at} is {}: the initial state must be finite",
                    u[i]
                )));
            }
        }
        Ok(shape)
    }

    fn len(&self) -> usize {
        self.batch.unwrap_or(1)
    }

    fn theta(&self, b: usize) -> &'a [f64] {
        self.theta.row(b, self.np)
    }

    fn u0(&self, b: usize) -> Option<&'a [f64]> {
        self.u0.map(|u| u.row(b, self.n))
    }

    /// Runs `f` for every trajectory, in parallel for a batch; the first failure (lowest
    /// trajectory) wins.
    fn run<T: Send>(
        &self,
        f: impl Fn(usize) -> Result<T, Error> + Sync + Send,
    ) -> Result<Vec<T>, Error> {
        match self.batch {
            None => Ok(vec![f(0)?]),
            Some(b) => (0..b).into_par_iter().map(f).collect(),
        }
    }
}

impl Model {
    /// Solves from `u0` (the model's initial state at θ when `None`) and returns the states
    /// at the save times `ts` (strictly increasing; `ts[0]` is t0). θ and u0 may each be
    /// one row or a batch; with a batch axis the result is `(B, T, n)`.
    pub fn solve(
        &self,
        ts: &[f64],
        theta: Values,
        u0: Option<Values>,
        opts: &Options,
    ) -> Result<Solved, Error> {
        let plan = opts.plan(self.program(), ts)?;
        let shape = Shape::of(self, theta, u0)?;
        check_result_size(shape.len(), ts.len(), self.dim())?;
        let sols = shape.run(|b| self.solve_one(&plan, shape.theta(b), shape.u0(b), b, &shape))?;
        Ok(self.collect(ts.len(), shape.batch, sols.iter()))
    }

    /// [`Model::solve`], and the pullback of its solve map `(θ, u0) ↦ y` for any cotangent ȳ
    /// (by `opts.sensitivity`; `discrete` is the exact derivative of the computed solution).
    pub fn solve_vjp(
        &self,
        ts: &[f64],
        theta: Values,
        u0: Option<Values>,
        opts: &Options,
    ) -> Result<(Solved, Pullback), Error> {
        let prog = self.program();
        let plan = opts.plan(prog, ts)?;
        let sensitivity = opts.sensitivity(prog, &plan, u0.is_some())?;
        let adjoint = AdjointOptions {
            checkpoints: opts.checkpoints,
            ..AdjointOptions::default()
        };
        let (solved, tapes) = match &plan {
            Plan::Ode(o) if sensitivity == Sensitivity::Discrete && !prog.is_dde() => {
                let shape = Shape::of(self, theta, u0)?;
                check_result_size(shape.len(), ts.len(), self.dim())?;
                self.kernels()
                    .adjoint()
                    .map_err(|e| Error::gradient(e, None))?;
                let tapes = shape.run(|b| {
                    let start = match shape.u0(b) {
                        Some(u) => Start::Input(u),
                        None => Start::Model,
                    };
                    discrete::record(prog, shape.theta(b), start, o, adjoint.checkpoints)
                        .map_err(|e| Error::gradient(e, shape.batch.map(|_| b)))
                })?;
                let sols = tapes.iter().map(Tape::solution);
                (self.collect(ts.len(), shape.batch, sols), Some(tapes))
            }
            _ => (self.solve(ts, theta, u0, opts)?, None),
        };
        let pullback = Pullback {
            model: self.clone(),
            tapes,
            ts: ts.to_vec(),
            theta: theta.to_owned(),
            u0: u0.map(Values::to_owned),
            plan,
            sensitivity,
            adjoint,
            batch: solved.batch,
        };
        Ok((solved, pullback))
    }

    /// One trajectory: an ODE or delay solve, or SDE path `b` of the seed.
    fn solve_one(
        &self,
        plan: &Plan,
        p: &[f64],
        u0: Option<&[f64]>,
        b: usize,
        shape: &Shape,
    ) -> Result<Solution, Error> {
        let prog = self.program();
        let traj = shape.batch.map(|_| b);
        let u0 = match u0 {
            Some(u) => u.to_vec(),
            None => prog.initial_state(p),
        };
        match plan {
            Plan::Ode(o) => {
                if prog.is_dde() {
                    prog.check_dde_options(p, o).map_err(Error::from)?;
                }
                prog.solve(p, &u0, o).map_err(|e| Error::solve(e, traj))
            }
            Plan::Sde(o) => {
                let mut o = o.clone();
                o.traj = b as u64;
                prog.solve_sde(p, &u0, &o)
                    .map(|s| s.sol)
                    .map_err(|e| Error::solve(e, traj))
            }
        }
    }

    fn collect<'s>(
        &self,
        times: usize,
        batch: Option<usize>,
        sols: impl ExactSizeIterator<Item = &'s Solution>,
    ) -> Solved {
        let dim = self.dim();
        let mut y = Vec::with_capacity(sols.len() * times * dim);
        let mut stats = Stats::default();
        for s in sols {
            debug_assert_eq!(s.len(), times, "one row per save time");
            y.extend_from_slice(&s.u);
            stats.add(&s.stats);
        }
        Solved {
            y,
            batch,
            times,
            dim,
            stats,
        }
    }
}

/// The most entries a result may have (8 GiB of f64): a larger one is refused before any
/// work, instead of failing to allocate (which would abort the process).
const MAX_RESULT_ENTRIES: usize = 1 << 30;

fn check_result_size(batch: usize, times: usize, dim: usize) -> Result<(), Error> {
    let entries = batch.checked_mul(times).and_then(|x| x.checked_mul(dim));
    match entries {
        Some(e) if e <= MAX_RESULT_ENTRIES => Ok(()),
        _ => Err(Error::Input(format!(
            "the result would hold {batch} × {times} × {dim} values, more than the {MAX_RESULT_ENTRIES} this version allocates at once; solve fewer trajectories or save times per call"
        ))),
    }
}

impl Pullback {
    /// The cotangents of θ and u0 for the cotangent `y_bar` of the trajectories (the shape
    /// of the solve's result). Each trajectory's adjoint runs in parallel for a batch.
    pub fn apply(&self, y_bar: &[f64]) -> Result<Cotangents, Error> {
        let (n, times) = (self.model.dim(), self.ts.len());
        let shape = Shape::of(
            &self.model,
            self.theta.view(),
            self.u0.as_ref().map(Owned::view),
        )?;
        let per = times * n;
        if y_bar.len() != shape.len() * per {
            let want = match self.batch {
                Some(b) => format!("({b}, {times}, {n})"),
                None => format!("({times}, {n})"),
            };
            return Err(Error::Input(format!(
                "the cotangent has {} entries; the solution's shape is {want}",
                y_bar.len()
            )));
        }
        let grads = shape.run(|b| {
            let seeds = &y_bar[b * per..(b + 1) * per];
            self.gradient_one(shape.theta(b), shape.u0(b), b, seeds)
                .map_err(|e| Error::gradient(e, self.batch.map(|_| b)))
        })?;
        Ok(self.assemble(grads))
    }

    /// One trajectory's ⟨ȳ_b, y_b⟩ and its gradient: the reverse sweep of its tape, or a
    /// gradient solve.
    fn gradient_one(
        &self,
        p: &[f64],
        u0: Option<&[f64]>,
        b: usize,
        seeds: &[f64],
    ) -> Result<Gradient, sensitivity::GradientError> {
        let kernels = self.model.kernels();
        let prog = kernels.program();
        let start = match u0 {
            Some(u) => Start::Input(u),
            None => Start::Model,
        };
        let loss = Cotangent(seeds);
        if let Some(tapes) = &self.tapes {
            let adjoint = kernels.adjoint()?;
            return Ok(discrete::reverse(prog, adjoint, &tapes[b], p, start, &loss));
        }
        match &self.plan {
            Plan::Ode(o) => {
                sensitivity::gradient(kernels, self.sensitivity, p, start, o, &loss, self.adjoint)
            }
            Plan::Sde(o) => {
                let mut o = o.clone();
                o.traj = b as u64;
                let sde = kernels.sde()?;
                sensitivity::sde::path_gradient(prog, sde, p, start, &o, &loss, self.sensitivity)
            }
        }
    }

    /// Per-trajectory gradients into the inputs' shapes (shared rows summed in order).
    fn assemble(&self, grads: Vec<Gradient>) -> Cotangents {
        let sum_or_stack = |rows: Option<usize>, parts: Vec<Vec<f64>>, width: usize| match rows {
            Some(_) => parts.concat(),
            None => {
                let mut total = vec![0.0; width];
                for g in &parts {
                    for (t, x) in total.iter_mut().zip(g) {
                        *t += x;
                    }
                }
                total
            }
        };
        let np = self.model.num_params();
        let n = self.model.dim();
        let mut thetas = Vec::with_capacity(grads.len());
        let mut starts = Vec::with_capacity(grads.len());
        for g in grads {
            thetas.push(g.grad);
            starts.push(g.start.unwrap_or_else(|| vec![0.0; n]));
        }
        Cotangents {
            theta: sum_or_stack(self.theta.rows, thetas, np),
            theta_rows: self.theta.rows,
            u0: self.u0.as_ref().map(|u| sum_or_stack(u.rows, starts, n)),
            u0_rows: self.u0.as_ref().and_then(|u| u.rows),
        }
    }
}
