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

/// The model's solution at the distinct data times (the rows the loss compares).
pub fn predictions(
    prog: &Program,
    p: &[f64],
    data: &Data,
    base: &SolveOptions,
) -> Result<crate::runtime::Solution, SolveError> {
    let opts = solve_options(base, data);
    prog.solve(p, &prog.initial_state(p), &opts)
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
        for i in 0..k {
            let rho = 1.0 / dot(&self.y[i], &self.s[i]);
            let beta = rho * dot(&self.y[i], &q);
            axpy(alpha[i] - beta, &self.s[i], &mut q);
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
            grad: vec![0.0, 0.0],
            stats: Stats::default(),
        };
        add_l2_penalty(0.5, &[1.0, -2.0], &mut g);
        assert_eq!(g.loss, 1.0 + 0.5 * 5.0);
        assert_eq!(g.grad, vec![1.0, -2.0]);
    }
}
