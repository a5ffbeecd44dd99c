//! Fitting params to data: observations, the MSE loss at observation times, and the
//! optimisers. Gradients come from `sensitivity`.
//!
//! The loss is exactly the mean, over every non-empty data cell, of (prediction − value)².
//! Predictions at data times come from the solver's dense output (the solver does not step
//! onto each data time).

use crate::program::Program;
use crate::runtime::{SaveAt, SolveError, SolveOptions};
use crate::sensitivity::{
    self, AdjointOptions, Gradient, GradientError, Kernels, RowLoss, Sensitivity,
};

/// Observations: rows at `times` (sorted ascending), one column per observed state entry.
#[derive(Clone, Debug, PartialEq)]
pub struct Data {
    pub times: Vec<f64>,
    /// The state entry (index in the state vector) of each column, and its name.
    pub columns: Vec<(usize, String)>,
    /// `values[row][col]`; `None` is a missing observation.
    pub values: Vec<Vec<Option<f64>>>,
}

impl Data {
    /// Number of observed (non-empty) cells.
    pub fn count(&self) -> usize {
        self.values.iter().flatten().filter(|v| v.is_some()).count()
    }
}

/// Reads a data CSV: header `t,<state entry names>`, empty cells allowed. Errors name the
/// line and field (the caller adds the file name).
pub fn parse_data(text: &str, state_names: &[String]) -> Result<Data, String> {
    let mut rdr = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .flexible(false)
        .from_reader(text.as_bytes());
    let headers = rdr.headers().map_err(|e| format!("header: {e}"))?.clone();
    if headers.get(0) != Some("t") {
        if headers.get(0) == Some("traj") {
            return Err(
                "a `traj` column (several observed trajectories) is not supported yet".to_string(),
            );
        }
        return Err("the header must start with `t`".to_string());
    }
    let mut columns = Vec::new();
    for h in headers.iter().skip(1) {
        match state_names.iter().position(|n| n == h) {
            Some(i) => columns.push((i, h.to_string())),
            None => {
                return Err(format!(
                    "header: `{h}` is not a state entry of the model (outputs cannot be fitted yet); states: {}",
                    state_names.join(", ")
                ));
            }
        }
    }
    let mut rows: Vec<(f64, Vec<Option<f64>>)> = Vec::new();
    for (i, rec) in rdr.records().enumerate() {
        let line = i + 2;
        let rec = rec.map_err(|e| format!("line {line}: {e}"))?;
        let t: f64 = rec
            .get(0)
            .and_then(|x| x.parse().ok())
            .ok_or_else(|| format!("line {line}, field `t`: not a number"))?;
        let mut vals = Vec::with_capacity(columns.len());
        for (j, (_, name)) in columns.iter().enumerate() {
            let cell = rec.get(j + 1).unwrap_or("");
            vals.push(if cell.is_empty() {
                None
            } else {
                Some(cell.parse::<f64>().map_err(|_| {
                    format!("line {line}, field `{name}`: `{cell}` is not a number")
                })?)
            });
        }
        rows.push((t, vals));
    }
    if rows.is_empty() {
        return Err("no data rows".to_string());
    }
    rows.sort_by(|a, b| a.0.total_cmp(&b.0));
    Ok(Data {
        times: rows.iter().map(|r| r.0).collect(),
        columns,
        values: rows.into_iter().map(|r| r.1).collect(),
    })
}

/// The mean squared error of a solution saved at the distinct data times (see
/// [`solve_options`]) against the data.
pub struct Mse<'a> {
    pub data: &'a Data,
}

impl Mse<'_> {
    /// The solution row of each data row (both ascending in time; the solution holds every
    /// distinct data time).
    fn rows(&self, sol_t: &[f64]) -> Vec<usize> {
        let mut out = Vec::with_capacity(self.data.times.len());
        let mut r = 0;
        for &t in &self.data.times {
            while sol_t[r] != t {
                r += 1;
            }
            out.push(r);
        }
        out
    }
}

impl RowLoss for Mse<'_> {
    fn eval(&self, t: &[f64], u: &[f64], dim: usize, grad: &mut [f64]) -> f64 {
        let count = self.data.count().max(1) as f64;
        let mut loss = 0.0;
        for (d, r) in self.rows(t).into_iter().enumerate() {
            for (c, (i, _)) in self.data.columns.iter().enumerate() {
                if let Some(v) = self.data.values[d][c] {
                    let resid = u[r * dim + i] - v;
                    loss += resid * resid;
                    grad[r * dim + i] += 2.0 * resid / count;
                }
            }
        }
        loss / count
    }
}

/// `base` set up to save at the distinct data times (from t0 on) and to end at the last.
pub fn solve_options(base: &SolveOptions, data: &Data) -> SolveOptions {
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

/// The MSE loss at `p` and its gradient by `method`.
pub fn loss_and_gradient(
    kernels: &Kernels,
    method: Sensitivity,
    p: &[f64],
    data: &Data,
    base: &SolveOptions,
    adjoint: AdjointOptions,
) -> Result<Gradient, GradientError> {
    let opts = solve_options(base, data);
    sensitivity::gradient(kernels, method, p, &opts, &Mse { data }, adjoint)
}

/// The MSE loss alone (one plain solve).
pub fn loss(
    prog: &Program,
    p: &[f64],
    data: &Data,
    base: &SolveOptions,
) -> Result<f64, SolveError> {
    let opts = solve_options(base, data);
    let u0 = prog.initial_state(p);
    let sol = prog.solve(p, &u0, &opts)?;
    let mut scratch = vec![0.0; sol.u.len()];
    Ok(Mse { data }.eval(&sol.t, &sol.u, prog.dim(), &mut scratch))
}

/// Adam (Kingma & Ba 2015) with bias correction.
pub struct Adam {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
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
        for k in 0..p.len() {
            self.m[k] = b1 * self.m[k] + (1.0 - b1) * g[k];
            self.v[k] = b2 * self.v[k] + (1.0 - b2) * g[k] * g[k];
            p[k] -= self.lr * (self.m[k] / c1) / ((self.v[k] / c2).sqrt() + self.eps);
        }
    }
}
