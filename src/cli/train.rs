//! `ndec train MODEL.nde --data FILE.csv …`: fit params to observations.

use super::{CliResult, Failure, exit, read_model};
use crate::program::{Backend, Program};
use crate::runtime::{Method, SolveOptions};
use crate::train::{self, Adam, SensitivityKernels};
use std::path::PathBuf;
use std::time::Instant;

#[derive(clap::Args, Debug)]
pub struct TrainArgs {
    /// The model file (.nde).
    pub model: PathBuf,
    /// Observations: CSV with header t,<state entries>; empty cells are missing.
    #[arg(long, value_name = "FILE.csv")]
    pub data: PathBuf,
    /// Loss: mse (the mean over non-empty cells of (prediction - value)^2).
    #[arg(long, default_value = "mse")]
    pub loss: String,
    /// Optimiser: adam (lbfgs is not available yet).
    #[arg(long, default_value = "adam")]
    pub optimizer: String,
    /// Learning rate.
    #[arg(long, default_value_t = 0.01)]
    pub lr: f64,
    /// Optimiser iterations (0: just evaluate the loss and gradient).
    #[arg(long, default_value_t = 100)]
    pub iters: usize,
    /// Gradient method: auto or forward (the adjoints are not available yet).
    #[arg(long, default_value = "auto")]
    pub sensitivity: String,
    /// Start from these params (JSON params file).
    #[arg(long = "params", value_name = "FILE.json")]
    pub params_file: Option<PathBuf>,
    /// Write the final params here.
    #[arg(long, value_name = "FILE.json")]
    pub save_params: Option<PathBuf>,
    /// Write the gradient of the loss at the starting params here (params-file layout).
    #[arg(long, value_name = "FILE.json")]
    pub dump_gradient: Option<PathBuf>,
    /// Loss-curve plot (not available yet).
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<PathBuf>,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[arg(long)]
    pub t0: Option<f64>,
    #[arg(long)]
    pub method: Option<String>,
    #[arg(long)]
    pub rtol: Option<f64>,
    #[arg(long)]
    pub atol: Option<f64>,
    /// Print a JSON line with iters, final_loss, compile_ms, first_gradient_ms, grad_ms_median.
    #[arg(long)]
    pub stats: bool,
}

pub fn run(a: TrainArgs) -> CliResult {
    let started = Instant::now();
    let src = read_model(&a.model)?;
    let prog =
        Program::compile(&src, Backend::Jit).map_err(|e| super::run::compile_failure(&src, e))?;
    if prog.sde.is_some() {
        return Err(Failure::unavailable(
            "error: training SDE models is not available yet (ndec run solves them)",
        ));
    }
    if a.loss != "mse" {
        return Err(Failure::usage(format!(
            "error: unknown loss `{}` (available: mse)",
            a.loss
        )));
    }
    match a.optimizer.as_str() {
        "adam" => {}
        "lbfgs" => {
            return Err(Failure::unavailable(
                "error: --optimizer lbfgs is not available yet; use adam",
            ));
        }
        other => {
            return Err(Failure::usage(format!(
                "error: unknown optimizer `{other}` (adam, lbfgs)"
            )));
        }
    }
    match a.sensitivity.as_str() {
        "auto" | "forward" => {}
        "discrete" | "backsolve" | "interpolating" | "quadrature" => {
            return Err(Failure::unavailable(format!(
                "error: --sensitivity {} is not available yet; use forward (or auto)",
                a.sensitivity
            )));
        }
        other => {
            return Err(Failure::usage(format!(
                "error: unknown sensitivity method `{other}`"
            )));
        }
    }
    if a.plot.is_some() {
        return Err(Failure::unavailable("error: --plot is not available yet"));
    }
    let name = a.data.display().to_string();
    let text = std::fs::read_to_string(&a.data)
        .map_err(|e| Failure::usage(format!("error: cannot read data file `{name}`: {e}")))?;
    let data = train::parse_data(&text, &prog.model.state_names())
        .map_err(|e| Failure::usage(format!("error: data file `{name}`: {e}")))?;
    let defaults = &prog.model.solve;
    let method_name = a
        .method
        .clone()
        .or_else(|| defaults.method.clone())
        .unwrap_or_else(|| "tsit5".into());
    let method = Method::from_name(&method_name)
        .ok_or_else(|| Failure::usage(format!("error: unknown method `{method_name}`")))?;
    if method.is_implicit() || method.is_fixed_step_only() {
        return Err(Failure::unavailable(format!(
            "error: training with `{method_name}` is not available yet; use an adaptive explicit method (tsit5, dopri5, vern7, bosh3)"
        )));
    }
    let t0 = a.t0.or(defaults.t0).unwrap_or(0.0);
    if let Some(t) = data.times.iter().find(|t| **t < t0) {
        return Err(Failure::usage(format!(
            "error: data file `{name}`: time {t} is before t0 = {t0}"
        )));
    }
    let mut opts = SolveOptions::new(method, t0, *data.times.last().unwrap_or(&t0));
    opts.rtol = a.rtol.or(defaults.rtol).unwrap_or(1e-6);
    opts.atol = vec![a.atol.unwrap_or(1e-8)];

    let mut p = prog.default_params();
    if let Some(path) = &a.params_file {
        super::apply_params_file(path, &prog.layout, &mut p)?;
    }
    let kernels = SensitivityKernels::compile(&prog).map_err(|e| {
        Failure::unavailable(format!("error: cannot compile the sensitivity system: {e}"))
    })?;
    let compile_ms = started.elapsed().as_secs_f64() * 1e3;
    let solver_failure = |e: crate::runtime::SolveError| Failure {
        code: exit::SOLVER,
        message: format!("error: {e}"),
    };
    let mut grad_times = Vec::new();
    let t = Instant::now();
    let first =
        train::loss_and_gradient(&prog, &kernels, &p, &data, &opts).map_err(solver_failure)?;
    grad_times.push(t.elapsed().as_secs_f64() * 1e3);
    let first_gradient_ms = started.elapsed().as_secs_f64() * 1e3;
    if let Some(path) = &a.dump_gradient {
        let json = crate::params::to_json(&prog.layout, &first.grad).to_string();
        super::write_output(Some(path), &(json + "\n"))?;
    }
    let mut adam = Adam::new(a.lr, p.len());
    let mut g = first;
    let mut done = 0;
    while done < a.iters {
        if !g.loss.is_finite() {
            return Err(Failure {
                code: exit::SOLVER,
                message: format!("error: the loss became non-finite at iteration {done}"),
            });
        }
        adam.update(&mut p, &g.grad);
        done += 1;
        if let Some(path) = &a.save_params {
            // Keep the last good params on disk: an interrupted run loses nothing.
            let json = crate::params::to_json(&prog.layout, &p).to_string();
            super::write_output(Some(path), &(json + "\n"))?;
        }
        if done < a.iters {
            let t = Instant::now();
            g = train::loss_and_gradient(&prog, &kernels, &p, &data, &opts)
                .map_err(solver_failure)?;
            grad_times.push(t.elapsed().as_secs_f64() * 1e3);
            eprintln!("iter {done:5}  loss {:.6e}", g.loss);
        }
    }
    let final_loss = train::loss(&prog, &p, &data, &opts).map_err(solver_failure)?;
    if !final_loss.is_finite() {
        return Err(Failure {
            code: exit::SOLVER,
            message: "error: the final loss is non-finite".to_string(),
        });
    }
    if let Some(path) = &a.save_params {
        let json = crate::params::to_json(&prog.layout, &p).to_string();
        super::write_output(Some(path), &(json + "\n"))?;
    }
    eprintln!("final loss {final_loss:.6e} after {done} iterations");
    if a.stats {
        grad_times.sort_by(f64::total_cmp);
        let v = serde_json::json!({
            "iters": done,
            "final_loss": final_loss,
            "compile_ms": compile_ms,
            "first_gradient_ms": first_gradient_ms,
            "grad_ms_median": grad_times[grad_times.len() / 2],
            "sensitivity": "forward",
        });
        println!("{v}");
    }
    Ok(())
}
