//! Fitting params to data: the MSE loss at observation times, its gradient by forward
//! sensitivities, and the Adam optimiser.
//!
//! The loss is exactly the mean, over every non-empty data cell, of (prediction − value)².
//! Predictions at data times come from the solver's dense output (the solver does not step
//! onto each data time). The gradient differentiates the continuous problem: the solver
//! integrates u and its sensitivities S_k = ∂u/∂p_k together (`diff::forward_sensitivity_system`)
//! with S(t0) = ∂u0/∂p, under the same error control.

use crate::backend::Kernel;
use crate::program::Program;
use crate::runtime::{self, OdeRhs, SaveAt, SolveError, SolveOptions, Stats};
use std::sync::Arc;

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

/// The kernels forward sensitivities need: the augmented vector field and ∂u0/∂p.
pub struct SensitivityKernels {
    pub system: Arc<dyn Kernel>,
    /// Column-major n × np.
    pub initial_jacobian: Arc<dyn Kernel>,
}

impl SensitivityKernels {
    pub fn compile(prog: &Program) -> Result<SensitivityKernels, String> {
        let sys = crate::diff::forward_sensitivity_system(&prog.ir.vector_field);
        let init = crate::diff::jacobian_dense(&prog.ir.initial, "p", false);
        let ks =
            crate::backend::cranelift::compile_all(&[&sys, &init]).map_err(|e| e.to_string())?;
        let mut ks = ks.into_iter().map(|k| Arc::new(k) as Arc<dyn Kernel>);
        Ok(SensitivityKernels {
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

/// The loss, its gradient with respect to every entry of `p`, and the solver's work.
#[derive(Clone, Debug)]
pub struct LossGrad {
    pub loss: f64,
    pub grad: Vec<f64>,
    pub stats: Stats,
}

fn solve_opts(base: &SolveOptions, data: &Data, dim: usize) -> SolveOptions {
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
    if opts.atol.len() > 1 && opts.atol.len() != dim {
        let per = opts.atol.clone();
        opts.atol = (0..dim).map(|i| per[i % per.len()]).collect();
    }
    opts
}

/// The row of the solution that holds time `t` (save times are the distinct data times).
fn row_of(sol_t: &[f64], t: f64) -> usize {
    sol_t
        .iter()
        .position(|s| *s == t)
        .expect("every data time is a save time")
}

/// The MSE loss and its gradient at params `p`, by forward sensitivities.
pub fn loss_and_gradient(
    prog: &Program,
    kernels: &SensitivityKernels,
    p: &[f64],
    data: &Data,
    base: &SolveOptions,
) -> Result<LossGrad, SolveError> {
    let n = prog.dim();
    let np = p.len();
    let dim = n * (1 + np);
    let u0 = prog.initial_state(p);
    let mut big = vec![0.0; dim];
    big[..n].copy_from_slice(&u0);
    let mut s0 = vec![0.0; n * np];
    kernels
        .initial_jacobian
        .call(&[p], &mut [&mut s0], &mut Vec::new());
    big[n..].copy_from_slice(&s0);
    let opts = solve_opts(base, data, dim);
    let mut rhs = KernelRhs {
        kernel: kernels.system.as_ref(),
        p,
        t: [0.0],
        scratch: Vec::new(),
        dim,
    };
    let sol = runtime::solve_with(&mut rhs, &big, &opts)?;
    let count = data.count().max(1) as f64;
    let mut loss = 0.0;
    let mut grad = vec![0.0; np];
    for (r, &t) in data.times.iter().enumerate() {
        let row = sol.row(row_of(&sol.t, t));
        for (c, (i, _)) in data.columns.iter().enumerate() {
            if let Some(v) = data.values[r][c] {
                let resid = row[*i] - v;
                loss += resid * resid;
                for (k, g) in grad.iter_mut().enumerate() {
                    *g += 2.0 * resid * row[n * (1 + k) + i];
                }
            }
        }
    }
    grad.iter_mut().for_each(|g| *g /= count);
    Ok(LossGrad {
        loss: loss / count,
        grad,
        stats: sol.stats,
    })
}

/// The MSE loss alone (one plain solve).
pub fn loss(
    prog: &Program,
    p: &[f64],
    data: &Data,
    base: &SolveOptions,
) -> Result<f64, SolveError> {
    let n = prog.dim();
    let opts = solve_opts(base, data, n);
    let u0 = prog.initial_state(p);
    let sol = prog.solve(p, &u0, &opts)?;
    let mut loss = 0.0;
    for (r, &t) in data.times.iter().enumerate() {
        let row = sol.row(row_of(&sol.t, t));
        for (c, (i, _)) in data.columns.iter().enumerate() {
            if let Some(v) = data.values[r][c] {
                loss += (row[*i] - v).powi(2);
            }
        }
    }
    Ok(loss / data.count().max(1) as f64)
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
