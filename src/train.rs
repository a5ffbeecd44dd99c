//! Fitting params to data: observations, the MSE loss at observation times, and the
//! optimisers. Gradients come from `sensitivity`.
//!
//! The loss is exactly the mean, over every non-empty data cell, of (prediction − value)².
//! Predictions at data times come from the solver's dense output (the solver does not step
//! onto each data time).

use crate::backend::Kernel;
use crate::ensemble::Target;
use crate::program::Program;
use crate::runtime::{SaveAt, SolveError, SolveOptions};
use crate::sensitivity::{
    self, AdjointOptions, Gradient, GradientError, Kernels, RowLoss, Sensitivity, Start,
};
use rayon::prelude::*;

/// Observations of one trajectory: rows at `times` (sorted ascending), one column per
/// observed state or output entry.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Data {
    /// The `traj` value of these rows, when the file has that column.
    pub traj: Option<usize>,
    /// Params and initial state entries set for this trajectory (from a vary file): the
    /// params are constants here (they get no gradient from it), the states start there.
    pub fixed: Vec<(Target, f64)>,
    pub times: Vec<f64>,
    /// What each column observes, as an index into the trajectory row after `t` (state
    /// entries, then output entries), and its name.
    pub columns: Vec<(usize, String)>,
    /// `values[row][col]`; `None` is a missing observation.
    pub values: Vec<Vec<Option<f64>>>,
}

impl Data {
    /// Number of observed (non-empty) cells.
    pub fn count(&self) -> usize {
        self.observed().count()
    }

    /// Every row, borrowed.
    pub fn observed(&self) -> Observed<'_> {
        self.window(0, self.times.len())
    }

    /// The `len` rows from row `start`, borrowed (no copy: a minibatch window is a view).
    pub fn window(&self, start: usize, len: usize) -> Observed<'_> {
        Observed {
            times: &self.times[start..start + len],
            columns: &self.columns,
            values: &self.values[start..start + len],
        }
    }

    /// This trajectory's params (base `p` with its fixed params) and its initial-state
    /// overrides.
    pub fn setup(&self, p: &[f64]) -> (Vec<f64>, Vec<(usize, f64)>) {
        let mut pk = p.to_vec();
        let mut states = Vec::new();
        for (target, x) in &self.fixed {
            match target {
                Target::Param(i) => pk[*i] = *x,
                Target::State(i) => states.push((*i, *x)),
            }
        }
        (pk, states)
    }
}

/// Consecutive rows of a [`Data`], borrowed: what one loss term compares with.
#[derive(Clone, Copy, Debug)]
pub struct Observed<'a> {
    /// Ascending.
    pub times: &'a [f64],
    /// As [`Data::columns`].
    pub columns: &'a [(usize, String)],
    /// `values[row][col]`; `None` is a missing observation.
    pub values: &'a [Vec<Option<f64>>],
}

impl Observed<'_> {
    /// Number of observed (non-empty) cells.
    pub fn count(&self) -> usize {
        self.values.iter().flatten().filter(|v| v.is_some()).count()
    }

    /// Whether a column observes an output (an entry past the `dim` states).
    fn observes_outputs(&self, dim: usize) -> bool {
        self.columns.iter().any(|(i, _)| *i >= dim)
    }
}

/// The total observed cells of several trajectories.
pub fn count(sets: &[Data]) -> usize {
    sets.iter().map(Data::count).sum()
}

/// Reads a data CSV: header `[traj,]t,<names>` where each name is a state or output entry
/// of the model (`names`: the row layout, states then outputs), empty cells allowed. One
/// [`Data`] per trajectory (ascending `traj`; rows sorted by time). Errors name the line and
/// field (the caller adds the file name).
pub fn parse_data(text: &str, names: &[String]) -> Result<Vec<Data>, String> {
    let mut rdr = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .flexible(false)
        .from_reader(text.as_bytes());
    let headers = rdr.headers().map_err(|e| format!("header: {e}"))?.clone();
    let has_traj = headers.get(0) == Some("traj");
    let first = usize::from(has_traj);
    if headers.get(first) != Some("t") {
        return Err("the header must start with `t` (or `traj,t`)".to_string());
    }
    let mut columns: Vec<(usize, String)> = Vec::new();
    for h in headers.iter().skip(first + 1) {
        let Some(i) = names.iter().position(|n| n == h) else {
            return Err(format!(
                "header: `{h}` is not a state or output entry of the model (entries: {})",
                names.join(", ")
            ));
        };
        if columns.iter().any(|(j, _)| *j == i) {
            return Err(format!("header: `{h}` appears twice"));
        }
        columns.push((i, h.to_string()));
    }
    let mut rows: Vec<(usize, f64, Vec<Option<f64>>)> = Vec::new();
    for (i, rec) in rdr.records().enumerate() {
        let line = i + 2;
        let rec = rec.map_err(|e| format!("line {line}: {e}"))?;
        let traj = match has_traj {
            true => rec
                .get(0)
                .and_then(|x| x.parse::<usize>().ok())
                .ok_or_else(|| {
                    format!("line {line}, field `traj`: not a trajectory number (0, 1, …)")
                })?,
            false => 0,
        };
        let t: f64 = rec
            .get(first)
            .and_then(|x| x.parse().ok())
            .filter(|t: &f64| t.is_finite())
            .ok_or_else(|| format!("line {line}, field `t`: not a finite number"))?;
        let mut vals = Vec::with_capacity(columns.len());
        for (j, (_, name)) in columns.iter().enumerate() {
            let cell = rec.get(first + 1 + j).unwrap_or("");
            vals.push(if cell.is_empty() {
                None
            } else {
                Some(
                    cell.parse::<f64>()
                        .ok()
                        .filter(|v| v.is_finite())
                        .ok_or_else(|| {
                            format!("line {line}, field `{name}`: `{cell}` is not a finite number")
                        })?,
                )
            });
        }
        rows.push((traj, t, vals));
    }
    if rows.is_empty() {
        return Err("no data rows".to_string());
    }
    rows.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)));
    let mut sets: Vec<Data> = Vec::new();
    for (traj, t, vals) in rows {
        let traj = has_traj.then_some(traj);
        if sets.last().is_none_or(|d| d.traj != traj) {
            sets.push(Data {
                traj,
                columns: columns.clone(),
                ..Data::default()
            });
        }
        let d = sets.last_mut().expect("just pushed");
        d.times.push(t);
        d.values.push(vals);
    }
    Ok(sets)
}

/// The mean squared error of a solution saved at the distinct data times (see
/// [`solve_options`]) against the data.
pub struct Mse<'a> {
    pub data: Observed<'a>,
    /// The sum of squares is divided by this: the number of observed cells, or a batch's.
    pub denom: f64,
    /// How to evaluate (and differentiate) observed outputs, when a column is one.
    pub outputs: Option<OutputEval<'a>>,
}

/// The model's outputs `o(t, u, p)` at params `p`, and their VJP
/// `(t, u, p, w) → (wᵀ∂o/∂u, wᵀ∂o/∂p)` when gradients are wanted.
#[derive(Clone, Copy)]
pub struct OutputEval<'a> {
    pub value: &'a dyn Kernel,
    pub vjp: Option<&'a dyn Kernel>,
    pub p: &'a [f64],
}

impl<'a> Mse<'a> {
    /// The loss against `data` (columns index the row of states then outputs).
    pub fn new(data: Observed<'a>, outputs: Option<OutputEval<'a>>) -> Mse<'a> {
        Mse {
            data,
            denom: data.count().max(1) as f64,
            outputs,
        }
    }

    /// The solution row of each data row (both ascending in time; the solution holds every
    /// distinct data time).
    fn rows(&self, sol_t: &[f64]) -> Vec<usize> {
        let mut out = Vec::with_capacity(self.data.times.len());
        let mut r = 0;
        for &t in self.data.times {
            while sol_t[r] != t {
                r += 1;
            }
            out.push(r);
        }
        out
    }
}

impl RowLoss for Mse<'_> {
    fn eval(
        &self,
        t: &[f64],
        u: &[f64],
        dim: usize,
        grad_u: &mut [f64],
        grad_p: &mut [f64],
    ) -> f64 {
        let count = self.denom;
        let outputs = self.outputs.filter(|_| self.data.observes_outputs(dim));
        let n_out = outputs.map_or(0, |o| o.value.out_lens()[0]);
        let (mut o, mut w) = (vec![0.0; n_out], vec![0.0; n_out]);
        let mut gp = vec![0.0; grad_p.len()];
        let mut gu = vec![0.0; dim];
        let mut scratch = Vec::new();
        let mut loss = 0.0;
        for (d, r) in self.rows(t).into_iter().enumerate() {
            let row = &u[r * dim..(r + 1) * dim];
            if let Some(out) = outputs {
                out.value
                    .call(&[&[t[r]], row, out.p], &mut [&mut o], &mut scratch);
                w.fill(0.0);
            }
            for (c, (i, _)) in self.data.columns.iter().enumerate() {
                if let Some(v) = self.data.values[d][c] {
                    let pred = if *i < dim { row[*i] } else { o[*i - dim] };
                    let resid = pred - v;
                    loss += resid * resid;
                    if *i < dim {
                        grad_u[r * dim + i] += 2.0 * resid / count;
                    } else {
                        w[*i - dim] += 2.0 * resid / count;
                    }
                }
            }
            if let Some(vjp) = outputs.and_then(|o| o.vjp)
                && w.iter().any(|x| *x != 0.0)
            {
                let p = outputs.expect("checked").p;
                vjp.call(
                    &[&[t[r]], row, p, &w],
                    &mut [&mut gu, &mut gp],
                    &mut scratch,
                );
                for (a, b) in grad_u[r * dim..(r + 1) * dim].iter_mut().zip(&gu) {
                    *a += b;
                }
                for (a, b) in grad_p.iter_mut().zip(&gp) {
                    *a += b;
                }
            }
        }
        loss / count
    }
}

/// `base` set up to save at the distinct data times (from t0 on) and to end at the last.
pub fn solve_options(base: &SolveOptions, data: Observed) -> SolveOptions {
    let mut opts = base.clone();
    let mut ts: Vec<f64> = data
        .times
        .iter()
        .copied()
        .filter(|t| *t >= opts.t0)
        .collect();
    ts.dedup();
    opts.t1 = *data.times.last().unwrap_or(&opts.t1);
    opts.saveat = SaveAt::Times(ts);
    opts
}

/// The MSE loss over every observed cell of every trajectory at `p`, and its gradient by
/// `method` (a trajectory's fixed params get no gradient from it). Trajectories are
/// differentiated in parallel and summed in order (the result does not depend on the
/// number of threads).
pub fn loss_and_gradient(
    kernels: &Kernels,
    method: Sensitivity,
    p: &[f64],
    sets: &[Data],
    base: &SolveOptions,
    adjoint: AdjointOptions,
) -> Result<Gradient, GradientError> {
    let sets: Vec<&Data> = sets.iter().collect();
    sets_loss_and_gradient(kernels, method, p, &sets, base, adjoint)
}

/// [`loss_and_gradient`] over borrowed trajectories (a minibatch may pick one twice).
fn sets_loss_and_gradient(
    kernels: &Kernels,
    method: Sensitivity,
    p: &[f64],
    sets: &[&Data],
    base: &SolveOptions,
    adjoint: AdjointOptions,
) -> Result<Gradient, GradientError> {
    let denom = sets.iter().map(|d| d.count()).sum::<usize>().max(1) as f64;
    sum_in_order(p.len(), sets, |data| {
        let (pk, states) = data.setup(p);
        let opts = solve_options(base, data.observed());
        let loss = Mse {
            data: data.observed(),
            denom,
            outputs: output_eval(kernels, &pk, data.observed())?,
        };
        let start = Start::Override(&states);
        let g = sensitivity::gradient(kernels, method, &pk, start, &opts, &loss, adjoint)?;
        Ok(without_fixed(g, data))
    })
}

/// Σ one(item) over `items`: the terms computed in parallel, summed in item order (so the
/// sum is the same on any number of threads); the first failing item's error.
fn sum_in_order<T: Sync>(
    np: usize,
    items: &[T],
    one: impl Fn(&T) -> Result<Gradient, GradientError> + Sync + Send,
) -> Result<Gradient, GradientError> {
    let terms: Vec<_> = match items {
        [only] => vec![one(only)],
        _ => items.par_iter().map(&one).collect(),
    };
    let mut total = Gradient::zero(np);
    for g in terms {
        let g = g?;
        total.loss += g.loss;
        for (a, b) in total.grad.iter_mut().zip(&g.grad) {
            *a += b;
        }
        total.stats.add(&g.stats);
    }
    Ok(total)
}

/// `g` with the params `data` fixes zeroed: they are constants of that trajectory.
fn without_fixed(mut g: Gradient, data: &Data) -> Gradient {
    for (target, _) in &data.fixed {
        if let Target::Param(i) = target {
            g.grad[*i] = 0.0;
        }
    }
    g
}

/// The output kernels when `data` observes outputs (compiling their VJP on first use).
fn output_eval<'a>(
    kernels: &'a Kernels,
    p: &'a [f64],
    data: Observed,
) -> Result<Option<OutputEval<'a>>, GradientError> {
    let prog = kernels.program();
    if !data.observes_outputs(prog.dim()) {
        return Ok(None);
    }
    if prog.is_dde() {
        return Err(GradientError::Unsupported(
            "the data observes outputs of a delay model, which training cannot differentiate yet; observe states".into(),
        ));
    }
    Ok(Some(OutputEval {
        value: prog.outputs.as_ref(),
        vjp: Some(kernels.output_vjp()?),
        p,
    }))
}

/// Minibatches of time windows (the scheme of torchdiffeq's spiral demo; one observed
/// trajectory): a window starts at a data row where every state entry is observed, from the
/// observed state there, and spans `len` rows; each iteration draws `batch` windows
/// uniformly from (seed, iteration) with Philox.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Windows {
    pub len: usize,
    pub batch: usize,
    pub seed: u64,
}

impl Windows {
    /// The rows a window may start at: every state entry observed there (outputs may be
    /// missing), with `len` rows from there.
    pub fn candidates(&self, data: &Data, dim: usize) -> Vec<usize> {
        let state_cols: Vec<usize> = (0..dim)
            .filter_map(|i| data.columns.iter().position(|(c, _)| *c == i))
            .collect();
        if state_cols.len() < dim || self.len < 2 || self.len > data.times.len() {
            return Vec::new();
        }
        (0..=data.times.len() - self.len)
            .filter(|&r| state_cols.iter().all(|&c| data.values[r][c].is_some()))
            .collect()
    }

    /// The start rows of iteration `iter`'s batch.
    pub fn draw(&self, candidates: &[usize], iter: u64) -> Vec<usize> {
        draw_uniform(self.seed, iter, self.batch, candidates.len())
            .into_iter()
            .map(|k| candidates[k])
            .collect()
    }
}

/// The MSE over a batch of windows (the mean over every observed cell of every window) and
/// its gradient; each window's start state is data, not differentiated. Windows are views
/// of `data` (nothing copied), differentiated in parallel and summed in the order of
/// `starts`.
#[allow(clippy::too_many_arguments)]
pub fn window_loss_and_gradient(
    kernels: &Kernels,
    method: Sensitivity,
    p: &[f64],
    data: &Data,
    base: &SolveOptions,
    adjoint: AdjointOptions,
    starts: &[usize],
    len: usize,
) -> Result<Gradient, GradientError> {
    let dim = kernels.program().dim();
    if kernels.program().is_dde() {
        return Err(GradientError::Unsupported(
            "time windows start without the solution's history, so they do not apply to delay models; batch whole trajectories".into(),
        ));
    }
    let denom = starts
        .iter()
        .map(|&s| data.window(s, len).count())
        .sum::<usize>()
        .max(1) as f64;
    let (pk, _) = data.setup(p);
    let g = sum_in_order(p.len(), starts, |&s| {
        let w = data.window(s, len);
        let mut u0 = vec![0.0; dim];
        for (c, (i, _)) in w.columns.iter().enumerate() {
            if *i < dim {
                u0[*i] = w.values[0][c].expect("a window starts where every state is observed");
            }
        }
        let mut o = base.clone();
        o.t0 = w.times[0];
        let opts = solve_options(&o, w);
        let loss = Mse {
            data: w,
            denom,
            outputs: output_eval(kernels, &pk, w)?,
        };
        let start = Start::State(&u0);
        sensitivity::gradient(kernels, method, &pk, start, &opts, &loss, adjoint)
    })?;
    Ok(without_fixed(g, data))
}

/// The MSE loss alone (plain solves).
pub fn loss(
    prog: &Program,
    p: &[f64],
    sets: &[Data],
    base: &SolveOptions,
) -> Result<f64, SolveError> {
    let denom = count(sets).max(1) as f64;
    let mut total = 0.0;
    for data in sets {
        let (pk, states) = data.setup(p);
        let opts = solve_options(base, data.observed());
        let sol = prog.solve(&pk, &Start::Override(&states).state(prog, &pk), &opts)?;
        let mut scratch = vec![0.0; sol.u.len()];
        // A delay model's outputs may read lagged states: its data observes states only.
        let outputs = (!prog.is_dde()).then_some(OutputEval {
            value: prog.outputs.as_ref(),
            vjp: None,
            p: &pk,
        });
        let mut gp = vec![0.0; p.len()];
        let mse = Mse {
            data: data.observed(),
            denom,
            outputs,
        };
        total += mse.eval(&sol.t, &sol.u, prog.dim(), &mut scratch, &mut gp);
    }
    Ok(total)
}

/// The model's rows (states, then outputs) at the distinct data times: what the loss
/// compares with the data. Returns the times and the rows.
pub fn predictions(
    prog: &Program,
    p: &[f64],
    data: &Data,
    base: &SolveOptions,
) -> Result<(Vec<f64>, Vec<Vec<f64>>), SolveError> {
    let (pk, states) = data.setup(p);
    let opts = solve_options(base, data.observed());
    let u0 = Start::Override(&states).state(prog, &pk);
    let (sol, outs) = if prog.is_dde() {
        let (sol, hist) = prog.solve_dde(&pk, &u0, &opts, &Default::default())?;
        let outs = prog.dde_outputs_of(&sol, &hist, &pk);
        (sol, outs)
    } else {
        let sol = prog.solve(&pk, &u0, &opts)?;
        let outs = prog.outputs_of(&sol, &pk);
        (sol, outs)
    };
    let no = prog.output_len();
    let rows = (0..sol.len())
        .map(|r| {
            let mut row = sol.row(r).to_vec();
            row.extend_from_slice(&outs[r * no..(r + 1) * no]);
            row
        })
        .collect();
    Ok((sol.t, rows))
}

/// loss += l2·Σ p_k², grad += 2·l2·p (every param and weight).
pub fn add_l2_penalty(l2: f64, p: &[f64], g: &mut Gradient) {
    if l2 == 0.0 {
        return;
    }
    g.loss += l2 * p.iter().map(|x| x * x).sum::<f64>();
    for (gk, pk) in g.grad.iter_mut().zip(p) {
        *gk += 2.0 * l2 * pk;
    }
}

/// The Euclidean norm.
pub fn norm(x: &[f64]) -> f64 {
    x.iter().map(|v| v * v).sum::<f64>().sqrt()
}

/// Adam (Kingma & Ba 2015) with bias correction, optional clipping of the gradient's global
/// norm and decoupled weight decay (AdamW, Loshchilov & Hutter 2019: p ← p − lr·wd·p).
pub struct Adam {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// Scale the gradient down to this norm when it is larger.
    pub clip: Option<f64>,
    pub weight_decay: f64,
    m: Vec<f64>,
    v: Vec<f64>,
    step: i32,
}

impl Adam {
    pub fn new(lr: f64, n: usize) -> Adam {
        Adam {
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            clip: None,
            weight_decay: 0.0,
            m: vec![0.0; n],
            v: vec![0.0; n],
            step: 0,
        }
    }

    pub fn update(&mut self, p: &mut [f64], g: &[f64]) {
        self.step += 1;
        let (b1, b2) = (self.beta1, self.beta2);
        let c1 = 1.0 - b1.powi(self.step);
        let c2 = 1.0 - b2.powi(self.step);
        let scale = match self.clip {
            Some(c) => {
                let n = norm(g);
                if n > c { c / n } else { 1.0 }
            }
            None => 1.0,
        };
        for k in 0..p.len() {
            let gk = scale * g[k];
            self.m[k] = b1 * self.m[k] + (1.0 - b1) * gk;
            self.v[k] = b2 * self.v[k] + (1.0 - b2) * gk * gk;
            p[k] -= self.lr * self.weight_decay * p[k];
            p[k] -= self.lr * (self.m[k] / c1) / ((self.v[k] / c2).sqrt() + self.eps);
        }
    }
}

/// L-BFGS (Nocedal & Wright, Algorithm 7.4) with `memory` correction pairs and a
/// backtracking line search on the Armijo condition (c1 = 1e-4, halving from a unit step;
/// the first iteration starts from a step of length `lr`). A pair that would break positive
/// curvature (sᵀy ≤ 1e-12·|s||y|) is skipped.
pub struct Lbfgs {
    pub memory: usize,
    pub lr: f64,
    s: Vec<Vec<f64>>,
    y: Vec<Vec<f64>>,
}

/// What one L-BFGS iteration did.
pub enum LbfgsStep {
    /// Moved to a point with a lower loss; the gradient there is returned.
    Moved(Gradient),
    /// No step along the search direction lowered the loss: converged or stuck.
    Stalled,
}

impl Lbfgs {
    pub fn new(lr: f64) -> Lbfgs {
        Lbfgs {
            memory: 10,
            lr,
            s: Vec::new(),
            y: Vec::new(),
        }
    }

    /// The two-loop recursion: d = −H·g.
    fn direction(&self, g: &[f64]) -> Vec<f64> {
        let mut q = g.to_vec();
        let k = self.s.len();
        let mut alpha = vec![0.0; k];
        for i in (0..k).rev() {
            let rho = 1.0 / dot(&self.y[i], &self.s[i]);
            alpha[i] = rho * dot(&self.s[i], &q);
            axpy(-alpha[i], &self.y[i], &mut q);
        }
        let gamma = match k {
            0 => self.lr / norm(g).max(1e-300),
            _ => dot(&self.s[k - 1], &self.y[k - 1]) / dot(&self.y[k - 1], &self.y[k - 1]),
        };
        q.iter_mut().for_each(|v| *v *= gamma);
        for (i, a) in alpha.iter().enumerate() {
            let rho = 1.0 / dot(&self.y[i], &self.s[i]);
            let beta = rho * dot(&self.y[i], &q);
            axpy(a - beta, &self.s[i], &mut q);
        }
        q.iter_mut().for_each(|v| *v = -*v);
        q
    }

    /// One iteration from `p` (updated in place) with loss and gradient `g` there;
    /// `eval` computes the loss and gradient at a trial point (an error ends the search).
    pub fn step<E>(
        &mut self,
        p: &mut [f64],
        g: &Gradient,
        mut eval: impl FnMut(&[f64]) -> Result<Gradient, E>,
    ) -> Result<LbfgsStep, E> {
        let mut d = self.direction(&g.grad);
        let mut slope = dot(&d, &g.grad);
        if slope >= 0.0 {
            // Not a descent direction (numerical trouble): restart from steepest descent.
            self.s.clear();
            self.y.clear();
            d = self.direction(&g.grad);
            slope = dot(&d, &g.grad);
        }
        let mut step = 1.0;
        for _ in 0..30 {
            let trial: Vec<f64> = p.iter().zip(&d).map(|(a, b)| a + step * b).collect();
            let new = eval(&trial)?;
            if new.loss.is_finite() && new.loss <= g.loss + 1e-4 * step * slope {
                let s: Vec<f64> = d.iter().map(|v| step * v).collect();
                let y: Vec<f64> = new.grad.iter().zip(&g.grad).map(|(a, b)| a - b).collect();
                if dot(&s, &y) > 1e-12 * norm(&s) * norm(&y) {
                    if self.s.len() == self.memory {
                        self.s.remove(0);
                        self.y.remove(0);
                    }
                    self.s.push(s);
                    self.y.push(y);
                }
                p.copy_from_slice(&trial);
                return Ok(LbfgsStep::Moved(new));
            }
            step *= 0.5;
        }
        Ok(LbfgsStep::Stalled)
    }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn axpy(a: f64, x: &[f64], y: &mut [f64]) {
    for (yi, xi) in y.iter_mut().zip(x) {
        *yi += a * xi;
    }
}

/// The optimiser of a [`fit`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Optimizer {
    Adam {
        lr: f64,
        clip: Option<f64>,
        weight_decay: f64,
    },
    Lbfgs {
        lr: f64,
    },
}

/// Everything a [`fit`] needs besides the model, the data and the solver options.
#[derive(Clone, Debug, PartialEq)]
pub struct FitOptions {
    pub optimizer: Optimizer,
    pub iters: usize,
    pub sensitivity: Sensitivity,
    pub adjoint: AdjointOptions,
    /// L2 penalty weight (0: none).
    pub l2: f64,
    /// Minibatches (Adam only); `None`: the full data every iteration.
    pub minibatch: Option<Minibatch>,
}

/// How an Adam iteration samples the data.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Minibatch {
    /// Windows of consecutive rows of the one observed trajectory.
    Windows(Windows),
    /// `batch` whole trajectories per iteration, drawn uniformly (with replacement) from
    /// the Philox stream (seed, iteration).
    Trajectories { batch: usize, seed: u64 },
}

/// What a fit reports as it goes.
pub enum Event<'a> {
    /// The loss and gradient at the starting params (full data, penalty included).
    First(&'a Gradient),
    /// After iteration `done` (1-based): the params and the loss/gradient that drove it
    /// (a minibatch's with windows, else the full data's at the new params for L-BFGS and
    /// at the old ones for Adam).
    Iter {
        done: usize,
        p: &'a [f64],
        g: &'a Gradient,
    },
    /// L-BFGS found no step along its search direction that lowers the loss; it stops.
    Stalled,
}

#[derive(Debug)]
pub enum FitError {
    Gradient(GradientError),
    /// The loss became non-finite at this iteration; the params are those before it.
    NonFinite {
        iter: usize,
    },
    /// The event callback asked to stop (e.g. it could not save the params).
    Callback(String),
    /// The minibatch windows cannot be drawn from this data (the message says why).
    Windows(String),
}

impl std::error::Error for FitError {}

/// `count` draws from 0..n, uniform with replacement, from the Philox stream (seed, iter).
fn draw_uniform(seed: u64, iter: u64, count: usize, n: usize) -> Vec<usize> {
    let rng = crate::rng::Stream::new(seed, iter);
    (0..count as u64)
        .map(|k| ((rng.uniform(k) * n as f64) as usize).min(n - 1))
        .collect()
}

fn lbfgs_chosen(o: Optimizer) -> bool {
    matches!(o, Optimizer::Lbfgs { .. })
}

impl std::fmt::Display for FitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FitError::Gradient(e) => write!(f, "{e}"),
            FitError::NonFinite { iter } => {
                write!(f, "the loss became non-finite at iteration {iter}")
            }
            FitError::Callback(m) | FitError::Windows(m) => f.write_str(m),
        }
    }
}

/// Timings and the loss curve of a fit.
#[derive(Clone, Debug, Default)]
pub struct FitReport {
    pub iters: usize,
    /// The loss driving each iteration (index 0: the starting params' full loss).
    pub curve: Vec<f64>,
    /// Wall time of each loss+gradient evaluation, ms.
    pub grad_ms: Vec<f64>,
}

/// Fits `p` (updated in place) to `data`: `fit.iters` optimiser iterations from the
/// starting params, reporting through `on_event` (an `Err` there stops the fit).
pub fn fit(
    kernels: &Kernels,
    p: &mut [f64],
    data: &[Data],
    opts: &SolveOptions,
    fit: &FitOptions,
    on_event: impl FnMut(Event) -> Result<(), String>,
) -> Result<FitReport, FitError> {
    let (method, adjoint) = (fit.sensitivity, fit.adjoint);
    let windows = match fit.minibatch {
        Some(Minibatch::Windows(w)) => Some(w),
        _ => None,
    };
    let candidates = windows.map(|w| match data {
        [one] => w.candidates(one, kernels.program().dim()),
        _ => Vec::new(),
    });
    if let (Some(w), Some(c)) = (windows, &candidates)
        && (c.is_empty() || w.batch == 0 || lbfgs_chosen(fit.optimizer))
    {
        return Err(FitError::Windows(format!(
            "minibatch windows of {} rows need adam, a batch size of at least 1, one observed trajectory with every state entry observed, and a row observing every state entry with {} rows (at least 2) from it",
            w.len, w.len
        )));
    }
    if let Some(Minibatch::Trajectories { batch, .. }) = fit.minibatch
        && (batch == 0 || data.is_empty() || lbfgs_chosen(fit.optimizer))
    {
        return Err(FitError::Windows(
            "trajectory minibatches need adam and a batch size of at least 1".into(),
        ));
    }
    let evaluate = |q: &[f64], iter: Option<usize>| {
        let g = match (iter, fit.minibatch) {
            (None, _) | (_, None) => loss_and_gradient(kernels, method, q, data, opts, adjoint),
            (Some(it), Some(Minibatch::Windows(w))) => {
                let c = candidates.as_ref().expect("windows have candidates");
                let starts = w.draw(c, it as u64);
                window_loss_and_gradient(
                    kernels, method, q, &data[0], opts, adjoint, &starts, w.len,
                )
            }
            (Some(it), Some(Minibatch::Trajectories { batch, seed })) => {
                let picks = draw_uniform(seed, it as u64, batch, data.len());
                let sets: Vec<&Data> = picks.iter().map(|&i| &data[i]).collect();
                sets_loss_and_gradient(kernels, method, q, &sets, opts, adjoint)
            }
        };
        g.map_err(FitError::Gradient)
    };
    optimise(p, fit, on_event, evaluate)
}

/// The optimiser loop shared by every kind of fit. `evaluate(p, None)` is the full loss and
/// gradient; `evaluate(p, Some(iteration))` a minibatch's (only called when
/// `fit.minibatch` is set).
pub fn optimise(
    p: &mut [f64],
    fit: &FitOptions,
    mut on_event: impl FnMut(Event) -> Result<(), String>,
    evaluate: impl Fn(&[f64], Option<usize>) -> Result<Gradient, FitError>,
) -> Result<FitReport, FitError> {
    let mut report = FitReport::default();
    let timed = |q: &[f64], iter: Option<usize>, times: &mut Vec<f64>| {
        let t = std::time::Instant::now();
        let mut g = evaluate(q, iter)?;
        add_l2_penalty(fit.l2, q, &mut g);
        times.push(t.elapsed().as_secs_f64() * 1e3);
        Ok::<_, FitError>(g)
    };
    let mut g = timed(p, None, &mut report.grad_ms)?;
    on_event(Event::First(&g)).map_err(FitError::Callback)?;
    report.curve.push(g.loss);
    let mut adam = match fit.optimizer {
        Optimizer::Adam {
            lr,
            clip,
            weight_decay,
        } => {
            let mut a = Adam::new(lr, p.len());
            a.clip = clip;
            a.weight_decay = weight_decay;
            Some(a)
        }
        Optimizer::Lbfgs { .. } => None,
    };
    let mut lbfgs = match fit.optimizer {
        Optimizer::Lbfgs { lr } => Some(Lbfgs::new(lr)),
        Optimizer::Adam { .. } => None,
    };
    while report.iters < fit.iters {
        let done = report.iters;
        if !g.loss.is_finite() {
            return Err(FitError::NonFinite { iter: done });
        }
        if let (Some(adam), Some(_)) = (adam.as_mut(), fit.minibatch) {
            g = timed(p, Some(done), &mut report.grad_ms)?;
            if !g.loss.is_finite() {
                return Err(FitError::NonFinite { iter: done });
            }
            adam.update(p, &g.grad);
        } else if let Some(adam) = adam.as_mut() {
            adam.update(p, &g.grad);
            if done + 1 < fit.iters {
                g = timed(p, None, &mut report.grad_ms)?;
            }
        } else if let Some(lbfgs) = lbfgs.as_mut() {
            let times = &mut report.grad_ms;
            match lbfgs.step(p, &g, |q| timed(q, None, times))? {
                LbfgsStep::Moved(next) => g = next,
                LbfgsStep::Stalled => {
                    on_event(Event::Stalled).map_err(FitError::Callback)?;
                    break;
                }
            }
        }
        report.iters += 1;
        report.curve.push(g.loss);
        on_event(Event::Iter {
            done: report.iters,
            p,
            g: &g,
        })
        .map_err(FitError::Callback)?;
    }
    Ok(report)
}

/// The sample moments of observed paths (an SDE's data: one [`Data`] per path).
#[derive(Clone, Debug, PartialEq)]
pub struct Moments {
    pub times: Vec<f64>,
    /// State entries observed, and their names.
    pub columns: Vec<(usize, String)>,
    /// `mean[row][col]`, `var[row][col]` (unbiased); `None` with fewer than 1 (2) values.
    pub mean: Vec<Vec<Option<f64>>>,
    pub var: Vec<Vec<Option<f64>>>,
}

impl Moments {
    /// Mean and variance per data time and column over the paths that observe it. Only state
    /// entries can be observed.
    pub fn of(paths: &[Data], dim: usize) -> Result<Moments, String> {
        let first = paths.first().ok_or("no observed paths")?;
        if let Some((_, name)) = first.columns.iter().find(|(i, _)| *i >= dim) {
            return Err(format!(
                "`{name}` is an output: SDE moments are fitted on state entries"
            ));
        }
        let mut times: Vec<f64> = paths.iter().flat_map(|d| d.times.iter().copied()).collect();
        times.sort_by(f64::total_cmp);
        times.dedup();
        let cols = first.columns.len();
        let (mut mean, mut var) = (Vec::new(), Vec::new());
        for &t in &times {
            let (mut m_row, mut v_row) = (Vec::new(), Vec::new());
            for c in 0..cols {
                let xs: Vec<f64> = paths
                    .iter()
                    .filter_map(|d| {
                        let r = d.times.iter().position(|s| *s == t)?;
                        d.values[r][c]
                    })
                    .collect();
                let n = xs.len() as f64;
                let m = xs.iter().sum::<f64>() / n;
                m_row.push((!xs.is_empty()).then_some(m));
                let v = xs.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (n - 1.0);
                v_row.push((xs.len() >= 2).then_some(v));
            }
            mean.push(m_row);
            var.push(v_row);
        }
        Ok(Moments {
            times,
            columns: first.columns.clone(),
            mean,
            var,
        })
    }

    fn cells(&self) -> usize {
        self.mean
            .iter()
            .chain(&self.var)
            .flatten()
            .flatten()
            .count()
    }
}

/// The moment-matching loss of an SDE: `paths` trajectories (0, 1, … of `opts.seed`) solved by
/// `opts.method` (euler_maruyama or reversible_heun) on their fixed Brownian paths, and the
/// mean over every observed moment cell of (simulated − observed)², means and variances
/// alike; and its gradient (each path's adjoint by `sensitivity`, see
/// [`crate::sensitivity::sde::supports`], with the cotangents of the ensemble's moments).
pub fn moment_loss_and_gradient(
    prog: &Program,
    kernels: &crate::sensitivity::sde::SdeKernels,
    p: &[f64],
    moments: &Moments,
    opts: &crate::runtime::sde::SdeOptions,
    paths: usize,
    sensitivity: crate::sensitivity::Sensitivity,
) -> Result<Gradient, GradientError> {
    let n = prog.dim();
    if !crate::sensitivity::sde::supports(opts.method, sensitivity) {
        return Err(GradientError::Unsupported(format!(
            "no `{}` gradient through `{}`: use euler_maruyama with discrete, or reversible_heun with reversible or discrete",
            sensitivity.name(),
            opts.method
        )));
    }
    if paths < 2 {
        return Err(GradientError::Unsupported(
            "moment matching needs at least 2 simulated paths".into(),
        ));
    }
    let mut o = opts.clone();
    o.saveat = SaveAt::Times(moments.times.clone());
    o.t1 = *moments.times.last().unwrap_or(&o.t1);
    let u0 = prog.initial_state(p);
    let all: Vec<_> = (0..paths)
        .map(|k| {
            let mut ok = o.clone();
            ok.traj = k as u64;
            ok
        })
        .collect();
    let ps = vec![p; paths];
    let us = vec![u0.as_slice(); paths];
    let sols = prog
        .solve_sde_many(&ps, &us, &all)
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?;
    let denom = moments.cells().max(1) as f64;
    let nf = paths as f64;
    let mut seeds = vec![vec![0.0; moments.times.len() * n]; paths];
    let mut loss = 0.0;
    for (r, _) in moments.times.iter().enumerate() {
        for (c, (i, _)) in moments.columns.iter().enumerate() {
            let xs: Vec<f64> = sols.iter().map(|s| s.sol.row(r)[*i]).collect();
            let m = xs.iter().sum::<f64>() / nf;
            let v = xs.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (nf - 1.0);
            let dm = moments.mean[r][c].map_or(0.0, |obs| m - obs);
            let dv = moments.var[r][c].map_or(0.0, |obs| v - obs);
            loss += dm * dm + dv * dv;
            for (k, x) in xs.iter().enumerate() {
                seeds[k][r * n + i] =
                    (2.0 * dm / nf + 2.0 * dv * 2.0 * (x - m) / (nf - 1.0)) / denom;
            }
        }
    }
    let paths: Vec<(&crate::runtime::sde::SdeOptions, &[f64])> =
        all.iter().zip(seeds.iter().map(Vec::as_slice)).collect();
    let mut total = sum_in_order(p.len(), &paths, |&(opts_k, seeds_k)| {
        let path = sensitivity::Cotangent(seeds_k);
        crate::sensitivity::sde::path_gradient(
            prog,
            kernels,
            p,
            Start::Model,
            opts_k,
            &path,
            sensitivity,
        )
    })?;
    // The path terms' losses are ⟨seed, path⟩, not the moment loss.
    total.loss = loss / denom;
    Ok(total)
}

/// Fits an SDE's params and weights to the moments of observed paths (see
/// [`moment_loss_and_gradient`], with `fit.sensitivity`); `fit.minibatch` must be `None`.
#[allow(clippy::too_many_arguments)]
pub fn fit_sde(
    prog: &Program,
    kernels: &crate::sensitivity::sde::SdeKernels,
    p: &mut [f64],
    moments: &Moments,
    opts: &crate::runtime::sde::SdeOptions,
    paths: usize,
    fit: &FitOptions,
    on_event: impl FnMut(Event) -> Result<(), String>,
) -> Result<FitReport, FitError> {
    if fit.minibatch.is_some() {
        return Err(FitError::Windows(
            "SDE moment fits use every observed path: no minibatches".into(),
        ));
    }
    optimise(p, fit, on_event, |q, _| {
        moment_loss_and_gradient(prog, kernels, q, moments, opts, paths, fit.sensitivity)
            .map_err(FitError::Gradient)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::Stats;

    /// A badly scaled quadratic with its minimum at (1, 2, 3).
    fn quad(p: &[f64]) -> Result<Gradient, ()> {
        let w = [1.0, 10.0, 100.0];
        let c = [1.0, 2.0, 3.0];
        let mut loss = 0.0;
        let mut grad = vec![0.0; 3];
        for k in 0..3 {
            loss += w[k] * (p[k] - c[k]).powi(2);
            grad[k] = 2.0 * w[k] * (p[k] - c[k]);
        }
        Ok(Gradient {
            loss,
            grad,
            start: None,
            stats: Stats::default(),
        })
    }

    #[test]
    fn lbfgs_minimises_a_badly_scaled_quadratic() {
        let mut p = vec![0.0; 3];
        let mut opt = Lbfgs::new(0.1);
        let mut g = quad(&p).unwrap();
        for _ in 0..30 {
            match opt.step(&mut p, &g, quad).unwrap() {
                LbfgsStep::Moved(n) => g = n,
                LbfgsStep::Stalled => break,
            }
        }
        for (k, c) in [1.0, 2.0, 3.0].iter().enumerate() {
            assert!((p[k] - c).abs() < 1e-8, "{p:?}");
        }
    }

    #[test]
    fn adam_clipping_bounds_the_first_step_and_decay_shrinks_weights() {
        // Adam's first step is lr·sign(g) whatever the scale; clipping changes only the
        // moments, so compare two steps with a gradient that shrinks by 1000.
        let mut a = Adam::new(0.1, 1);
        a.clip = Some(1.0);
        let mut p = vec![0.0];
        a.update(&mut p, &[1000.0]);
        a.update(&mut p, &[1.0]);
        let mut b = Adam::new(0.1, 1);
        let mut q = vec![0.0];
        b.update(&mut q, &[1000.0]);
        b.update(&mut q, &[1.0]);
        // Unclipped, the second step stays ≈ lr (the huge first moment dominates); clipped
        // to norm 1 both gradients count the same.
        assert!((p[0] + 0.2).abs() < 1e-6, "{}", p[0]);
        assert!(q[0] > -0.2 + 1e-3 || q[0] < -0.2 - 1e-3, "{}", q[0]);
        let mut w = Adam::new(0.1, 1);
        w.weight_decay = 0.5;
        let mut r = vec![2.0];
        w.update(&mut r, &[0.0]);
        assert!((r[0] - 2.0 * (1.0 - 0.05)).abs() < 1e-12, "{}", r[0]);
        let mut g = Gradient {
            loss: 1.0,
            ..Gradient::zero(2)
        };
        add_l2_penalty(0.5, &[1.0, -2.0], &mut g);
        assert_eq!(g.loss, 1.0 + 0.5 * 5.0);
        assert_eq!(g.grad, vec![1.0, -2.0]);
    }
}
