//! `ndec train MODEL.nde --data FILE.csv …`: fit params to observations.

use super::{CliResult, Failure, exit, read_model};
use crate::program::{Backend, Program};
use crate::runtime::{Method, SolveOptions};
use crate::sensitivity::{AdjointOptions, GradientError, Kernels, Sensitivity};
use crate::train;
use std::path::PathBuf;
use std::time::Instant;

#[derive(clap::Args, Debug)]
// Negative numbers are values, not flags: `--t0 -5`, `--rtol -1` (refused later with a reason).
#[command(allow_negative_numbers = true)]
pub struct TrainArgs {
    /// The model file (.nde).
    pub model: PathBuf,
    /// Observations: CSV with header t,<state entries>; empty cells are missing.
    #[arg(long, value_name = "FILE.csv")]
    pub data: PathBuf,
    /// Loss: mse (the mean over non-empty cells of (prediction - value)^2); for an SDE model
    /// moments (ensemble mean and variance against the observed paths'). Default: the one
    /// the model allows.
    #[arg(long)]
    pub loss: Option<String>,
    /// SDE models: simulated paths whose moments are fitted (default 100).
    #[arg(long, value_name = "N")]
    pub ensemble: Option<usize>,
    /// Optimiser: adam, or lbfgs (with a backtracking line search; --lr scales its first step).
    #[arg(long, default_value = "adam")]
    pub optimizer: String,
    /// Minibatches of time windows: each iteration fits --batch-size windows of this many
    /// data rows, each started from the observed state at its first row (every state entry
    /// must be observed there). Adam only.
    #[arg(long, value_name = "ROWS")]
    pub batch_time: Option<usize>,
    /// Windows per minibatch with --batch-time (default 20); without it, B whole observed
    /// trajectories per iteration.
    #[arg(long, value_name = "B")]
    pub batch_size: Option<usize>,
    /// Refuse a fit whose estimated memory is above SIZE (GiB, or with a unit: 512M, 8G);
    /// default: this machine's physical memory.
    #[arg(long, value_name = "SIZE")]
    pub max_memory: Option<String>,
    /// Adam: clip the gradient to this global norm.
    #[arg(long, value_name = "NORM")]
    pub clip: Option<f64>,
    /// Adam: decoupled weight decay (AdamW), per unit learning rate.
    #[arg(long, default_value_t = 0.0)]
    pub weight_decay: f64,
    /// Add L2 * (sum of squares of every param and weight) to the loss.
    #[arg(long, default_value_t = 0.0)]
    pub l2: f64,
    /// Learning rate.
    #[arg(long, default_value_t = 0.01)]
    pub lr: f64,
    /// Optimiser iterations (0: just evaluate the loss and gradient).
    #[arg(long, default_value_t = 100)]
    pub iters: usize,
    /// Gradient method: forward, discrete, backsolve, interpolating, quadrature or auto.
    #[arg(long, default_value = "auto")]
    pub sensitivity: String,
    /// discrete: keep at most this many solver states (recomputing the rest backward);
    /// default: keep every step.
    #[arg(long, value_name = "K")]
    pub checkpoints: Option<usize>,
    /// Continuous adjoints: put the parameter integral into the error norm too (the
    /// default leaves it out: the seminorm of Kidger et al. 2021).
    #[arg(long)]
    pub no_seminorm: bool,
    /// Evaluate the loss and gradient K times at the starting params (timing; see --stats).
    #[arg(long, value_name = "K", default_value_t = 1)]
    pub repeat: usize,
    /// With a `traj` column in the data: trajectory k's params and initial values from row k
    /// of this CSV (header: param or state names), as `ndec run --vary-file`.
    #[arg(long, value_name = "FILE.csv")]
    pub vary_file: Option<PathBuf>,
    /// Start from these params (JSON params file).
    #[arg(long = "params", value_name = "FILE.json")]
    pub params_file: Option<PathBuf>,
    /// Write the final params here.
    #[arg(long, value_name = "FILE.json")]
    pub save_params: Option<PathBuf>,
    /// Write the gradient of the loss at the starting params here (params-file layout).
    #[arg(long, value_name = "FILE.json")]
    pub dump_gradient: Option<PathBuf>,
    /// Write an SVG with the loss curve and the fit (data points, the model at the final params).
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
    /// Step size: required by fixed-step methods, the first step of adaptive ones.
    #[arg(long)]
    pub dt: Option<f64>,
    /// Print a JSON line with iters, final_loss, compile_ms, first_gradient_ms, grad_ms_median.
    #[arg(long)]
    pub stats: bool,
}

pub fn run(a: TrainArgs) -> CliResult {
    let started = Instant::now();
    super::check_step_flags(a.dt, None, a.rtol)?;
    let src = read_model(&a.model)?;
    let prog =
        Program::compile(&src, Backend::Jit).map_err(|e| super::run::compile_failure(&src, e))?;
    let sde = prog.sde.is_some();
    match (a.loss.as_deref(), sde) {
        (None | Some("mse"), false) | (None | Some("moments"), true) => {}
        (Some(other), _) => {
            return Err(Failure::usage(format!(
                "error: unknown loss `{other}` (available: {})",
                if sde {
                    "moments, for an SDE model"
                } else {
                    "mse"
                }
            )));
        }
    }
    match a.optimizer.as_str() {
        "adam" | "lbfgs" => {}
        other => {
            return Err(Failure::usage(format!(
                "error: unknown optimizer `{other}` (adam, lbfgs)"
            )));
        }
    }
    let requested = match a.sensitivity.as_str() {
        "auto" => None,
        name => Some(Sensitivity::from_name(name).ok_or_else(|| {
            Failure::usage(format!(
                "error: unknown sensitivity method `{name}` (forward, discrete, backsolve, interpolating, quadrature, reversible, auto)"
            ))
        })?),
    };
    if a.repeat == 0 {
        return Err(Failure::usage("error: --repeat must be at least 1"));
    }
    for (flag, v, ok) in [
        ("--lr", a.lr, a.lr > 0.0),
        ("--l2", a.l2, a.l2 >= 0.0),
        ("--weight-decay", a.weight_decay, a.weight_decay >= 0.0),
        (
            "--clip",
            a.clip.unwrap_or(1.0),
            a.clip.is_none_or(|c| c > 0.0),
        ),
    ] {
        if !(ok && v.is_finite()) {
            return Err(Failure::usage(format!(
                "error: {flag} {v} is out of range (a finite number, positive for --lr and --clip, non-negative otherwise)"
            )));
        }
    }
    let name = a.data.display().to_string();
    let text =
        crate::files::read_text_capped(&a.data, crate::limits::MAX_INPUT_FILE_BYTES, "data file")
            .map_err(|e| Failure::usage(format!("error: cannot read data file `{name}`: {e}")))?;
    let data = train::parse_data(&text, &prog.model.row_names())
        .map_err(|e| Failure::usage(format!("error: data file `{name}`: {e}")))?;
    check_memory(&a, &prog, &data)?;
    let mut p = prog.default_params();
    if let Some(path) = &a.params_file {
        super::apply_params_file(path, &prog.layout, &mut p)?;
    }
    let adjoint = AdjointOptions {
        checkpoints: a.checkpoints,
        seminorm: !a.no_seminorm,
    };
    if sde {
        let (obj, sensitivity) = sde_problem(&a, &prog, &name, data, requested)?;
        let compile_ms = started.elapsed().as_secs_f64() * 1e3;
        let fit_options = fit_options(&a, sensitivity, adjoint);
        return drive(&a, &prog.layout, started, compile_ms, p, fit_options, &obj);
    }
    let mut data = data;
    if let Some(path) = &a.vary_file {
        let table = super::run::read_vary_file(path, &prog)?;
        for set in &mut data {
            let k = set.traj.unwrap_or(0);
            let row = table.rows.get(k).ok_or_else(|| {
                Failure::usage(format!(
                    "error: data file `{name}`: trajectory {k} has no row in vary file `{}` ({} rows)",
                    path.display(),
                    table.rows.len()
                ))
            })?;
            set.fixed = table
                .targets
                .iter()
                .copied()
                .zip(row.iter().copied())
                .collect();
        }
    }
    let defaults = &prog.model.solve;
    let method_name = a
        .method
        .clone()
        .or_else(|| defaults.method.clone())
        .unwrap_or_else(|| "tsit5".into());
    let method = Method::from_name(&method_name)
        .ok_or_else(|| Failure::usage(format!("error: unknown method `{method_name}`")))?;
    let t0 = a.t0.or(defaults.t0).unwrap_or(0.0);
    if let Some(t) = data.iter().flat_map(|d| &d.times).find(|t| **t < t0) {
        return Err(Failure::usage(format!(
            "error: data file `{name}`: time {t} is before t0 = {t0}"
        )));
    }
    let t_last = data
        .iter()
        .filter_map(|d| d.times.last().copied())
        .fold(t0, f64::max);
    let mut opts = SolveOptions::new(method, t0, t_last);
    opts.rtol = a.rtol.or(defaults.rtol).unwrap_or(1e-6);
    // --atol, else the model's `solve { atol = … }` (a number or one per state), else 1e-8.
    opts.atol = match a.atol {
        Some(x) => vec![x],
        None => defaults.atol.clone().unwrap_or_else(|| vec![1e-8]),
    };

    if let Some(dt) = a.dt.or(defaults.dt) {
        opts.dt = Some(dt);
    }
    opts.validate(prog.dim())
        .map_err(|e| Failure::usage(format!("error: {e}")))?;
    if prog.is_dde() {
        check_dde_training(&a, &prog, &p, &data, &opts, requested)?;
    }
    let sensitivity = requested.unwrap_or_else(|| Sensitivity::auto_for(&prog, method, false));
    let kernels = Kernels::new(prog);
    kernels.prepare(sensitivity).map_err(gradient_failure)?;
    let compile_ms = started.elapsed().as_secs_f64() * 1e3;
    let obj = OdeProblem {
        kernels,
        data,
        opts,
        sensitivity,
        adjoint,
    };
    let fit_options = fit_options(&a, sensitivity, adjoint);
    let layout = &obj.kernels.program().layout;
    drive(&a, layout, started, compile_ms, p, fit_options, &obj)
}

/// What training a delay model needs beyond a run (exit 4 where it is not available here):
/// forward sensitivities or the discrete adjoint, observed states (not outputs, which may read lagged states), and
/// whole trajectories (a window would start without its history).
fn check_dde_training(
    a: &TrainArgs,
    prog: &Program,
    p: &[f64],
    data: &[train::Data],
    opts: &SolveOptions,
    requested: Option<Sensitivity>,
) -> CliResult {
    super::run::check_dde(prog, p, opts)?;
    if let Some(m) =
        requested.filter(|m| !matches!(m, Sensitivity::Forward | Sensitivity::Discrete))
    {
        return Err(Failure::unavailable(format!(
            "error: --sensitivity {}: a delay model's gradient is by forward sensitivities or the discrete adjoint through the method of steps; use --sensitivity forward or discrete (or auto)",
            m.name()
        )));
    }
    if data
        .iter()
        .any(|d| d.columns.iter().any(|(i, _)| *i >= prog.dim()))
    {
        return Err(Failure::unavailable(
            "error: the data observes outputs of a delay model, which training cannot differentiate yet; observe states",
        ));
    }
    if a.batch_time.is_some() {
        return Err(Failure::unavailable(
            "error: --batch-time windows start without the solution's history, so they do not apply to delay models; use --batch-size over trajectories",
        ));
    }
    Ok(())
}

/// Refuses a fit whose estimated memory is over the limit (exit 2) before it allocates: a
/// minibatch's picks and per-window gradients, the data's solutions and the SDE paths.
fn check_memory(a: &TrainArgs, prog: &Program, data: &[train::Data]) -> CliResult {
    let limit = match &a.max_memory {
        Some(text) => crate::limits::parse_memory(text)
            .map_err(|e| Failure::usage(format!("error: --max-memory: {e}")))?,
        None => crate::limits::default_memory_limit(),
    };
    let np = prog.layout.len as u64;
    let dim = prog.dim() as u64;
    let rows: u64 = data.iter().map(|d| d.times.len() as u64).sum();
    let batch = a.batch_size.map_or(0, |b| b as u64);
    let paths = a.ensemble.map_or(0, |e| e as u64);
    let mut est = crate::limits::MemoryEstimate::new();
    est.add("minibatch windows", batch, 8 * (np + 4 * dim) + 64)
        .add("solutions of the data", rows, 8 * (4 * dim + np))
        .add("SDE paths", paths, 8 * (np + 8 * dim));
    est.check(limit).map_err(|e| {
        Failure::usage(format!(
            "error: {e}; use a smaller --batch-size or --ensemble, or raise the limit with --max-memory"
        ))
    })
}

/// The optimiser settings from the flags.
fn fit_options(
    a: &TrainArgs,
    sensitivity: Sensitivity,
    adjoint: AdjointOptions,
) -> train::FitOptions {
    let optimizer = match a.optimizer.as_str() {
        "lbfgs" => train::Optimizer::Lbfgs { lr: a.lr },
        _ => train::Optimizer::Adam {
            lr: a.lr,
            clip: a.clip,
            weight_decay: a.weight_decay,
        },
    };
    train::FitOptions {
        optimizer,
        iters: a.iters,
        sensitivity,
        adjoint,
        l2: a.l2,
        minibatch: match (a.batch_time, a.batch_size) {
            (Some(len), batch) => Some(train::Minibatch::Windows(train::Windows {
                len,
                batch: batch.unwrap_or(20),
                seed: a.seed,
            })),
            (None, Some(batch)) => Some(train::Minibatch::Trajectories {
                batch,
                seed: a.seed,
            }),
            (None, None) => None,
        },
    }
}

/// What `drive` needs from a problem: fitting, one more gradient (timing), the final
/// loss and the plot.
trait Objective {
    fn fit(
        &self,
        p: &mut [f64],
        fit: &train::FitOptions,
        on_event: &mut dyn FnMut(train::Event) -> Result<(), String>,
    ) -> Result<train::FitReport, train::FitError>;
    fn gradient(&self, p: &[f64]) -> Result<(), Failure>;
    fn final_loss(&self, p: &[f64]) -> Result<f64, String>;
    fn plot(&self, path: &std::path::Path, curve: &[f64], p: &[f64]) -> CliResult;
}

/// An ODE (or stiff, or neural) model against observed trajectories.
struct OdeProblem {
    kernels: Kernels,
    data: Vec<train::Data>,
    opts: SolveOptions,
    sensitivity: Sensitivity,
    adjoint: AdjointOptions,
}

impl Objective for OdeProblem {
    fn fit(
        &self,
        p: &mut [f64],
        fit: &train::FitOptions,
        on_event: &mut dyn FnMut(train::Event) -> Result<(), String>,
    ) -> Result<train::FitReport, train::FitError> {
        train::fit(&self.kernels, p, &self.data, &self.opts, fit, on_event)
    }

    fn gradient(&self, p: &[f64]) -> Result<(), Failure> {
        let (s, adj) = (self.sensitivity, self.adjoint);
        train::loss_and_gradient(&self.kernels, s, p, &self.data, &self.opts, adj)
            .map(|_| ())
            .map_err(gradient_failure)
    }

    fn final_loss(&self, p: &[f64]) -> Result<f64, String> {
        train::loss(self.kernels.program(), p, &self.data, &self.opts).map_err(|e| e.to_string())
    }

    fn plot(&self, path: &std::path::Path, curve: &[f64], p: &[f64]) -> CliResult {
        // The first observed trajectory.
        let fit = train::predictions(self.kernels.program(), p, &self.data[0], &self.opts)
            .map_err(|e| Failure {
                code: exit::SOLVER,
                message: format!("error: {e}"),
            })?;
        super::plot::training(path, curve, &self.data[0], &fit)
    }
}

/// An SDE model against the moments of observed paths (one per `traj`).
struct SdeProblem<'a> {
    prog: &'a Program,
    sensitivity: Sensitivity,
    kernels: crate::sensitivity::sde::SdeKernels,
    moments: train::Moments,
    opts: crate::runtime::sde::SdeOptions,
    paths: usize,
}

fn sde_problem<'a>(
    a: &TrainArgs,
    prog: &'a Program,
    name: &str,
    data: Vec<train::Data>,
    requested: Option<Sensitivity>,
) -> Result<(SdeProblem<'a>, Sensitivity), Failure> {
    use crate::runtime::sde::{SdeMethod, SdeOptions};
    if a.vary_file.is_some() || a.plot.is_some() {
        return Err(Failure::unavailable(
            "error: --vary-file and --plot are not available for SDE models yet",
        ));
    }
    let defaults = &prog.model.solve;
    let name_of_method = a
        .method
        .clone()
        .or_else(|| defaults.method.clone())
        .unwrap_or_else(|| "euler_maruyama".into());
    let method = SdeMethod::from_name(&name_of_method)
        .ok_or_else(|| Failure::usage(format!("error: unknown method `{name_of_method}`")))?;
    let sensitivity = requested
        .or_else(|| crate::sensitivity::sde::auto(method))
        .ok_or_else(|| {
            Failure::unavailable(format!(
                "error: training an SDE runs euler_maruyama or reversible_heun on fixed Brownian paths, not `{method}`"
            ))
        })?;
    if !crate::sensitivity::sde::supports(method, sensitivity) {
        return Err(Failure::unavailable(format!(
            "error: no `{}` gradient through {method} on fixed Brownian paths: use --sensitivity discrete with euler_maruyama, or reversible (or discrete) with reversible_heun",
            sensitivity.name()
        )));
    }
    let dt = a.dt.or(defaults.dt).ok_or_else(|| {
        Failure::usage("error: training an SDE needs a step: --dt DT (or dt in the solve block)")
    })?;
    let t0 = a.t0.or(defaults.t0).unwrap_or(0.0);
    if let Some(t) = data.iter().flat_map(|d| &d.times).find(|t| **t < t0) {
        return Err(Failure::usage(format!(
            "error: data file `{name}`: time {t} is before t0 = {t0}"
        )));
    }
    let moments = train::Moments::of(&data, prog.dim())
        .map_err(|e| Failure::usage(format!("error: data file `{name}`: {e}")))?;
    let mut opts = SdeOptions::new(method, t0, *moments.times.last().unwrap_or(&t0));
    opts.dt = Some(dt);
    opts.seed = a.seed;
    let paths = a.ensemble.unwrap_or(100);
    if paths < 2 {
        return Err(Failure::usage(
            "error: --ensemble must be at least 2 for an SDE fit",
        ));
    }
    let kernels = crate::sensitivity::sde::SdeKernels::compile(prog)
        .map_err(|e| Failure::unavailable(format!("error: cannot compile the SDE adjoint: {e}")))?;
    let problem = SdeProblem {
        prog,
        sensitivity,
        kernels,
        moments,
        opts,
        paths,
    };
    Ok((problem, sensitivity))
}

impl Objective for SdeProblem<'_> {
    fn fit(
        &self,
        p: &mut [f64],
        fit: &train::FitOptions,
        on_event: &mut dyn FnMut(train::Event) -> Result<(), String>,
    ) -> Result<train::FitReport, train::FitError> {
        let (prog, k, m) = (self.prog, &self.kernels, &self.moments);
        train::fit_sde(prog, k, p, m, &self.opts, self.paths, fit, on_event)
    }

    fn gradient(&self, p: &[f64]) -> Result<(), Failure> {
        self.moment_loss(p).map(|_| ()).map_err(gradient_failure)
    }

    fn final_loss(&self, p: &[f64]) -> Result<f64, String> {
        self.moment_loss(p)
            .map(|g| g.loss)
            .map_err(|e| e.to_string())
    }

    fn plot(&self, _path: &std::path::Path, _curve: &[f64], _p: &[f64]) -> CliResult {
        Err(Failure::unavailable(
            "error: --plot is not available for SDE models yet",
        ))
    }
}

impl SdeProblem<'_> {
    fn moment_loss(
        &self,
        p: &[f64],
    ) -> Result<crate::sensitivity::Gradient, crate::sensitivity::GradientError> {
        let (prog, k, m) = (self.prog, &self.kernels, &self.moments);
        let s = self.sensitivity;
        train::moment_loss_and_gradient(prog, k, p, m, &self.opts, self.paths, s)
    }
}

/// The fit and its outputs, the same for every kind of model: progress, saving, Ctrl-C,
/// the final loss, the plot and the stats line.
fn drive(
    a: &TrainArgs,
    layout: &crate::ir::ParamLayout,
    started: Instant,
    compile_ms: f64,
    mut p: Vec<f64>,
    fit_options: train::FitOptions,
    obj: &dyn Objective,
) -> CliResult {
    let p_start = p.clone();
    let progress = Progress::new(a.iters as u64);
    let mut first_gradient_ms = 0.0;
    // The newest params whose loss was finite: saved at most once a second while the fit
    // runs, and whatever ends the fit, so that an interrupted run loses little and a failed
    // one leaves no bad params on disk.
    let mut last_good = p.clone();
    let mut last_save = Instant::now();
    let save = |q: &[f64]| -> Result<(), Failure> {
        match &a.save_params {
            Some(path) => {
                let json = crate::params::to_json(layout, q).to_string();
                super::write_output(Some(path), &(json + "\n"))
            }
            None => Ok(()),
        }
    };
    // Ctrl-C (or SIGTERM) stops the fit at the end of the current iteration; the params are
    // then saved like at any other end. A second one ends the process (cli::interrupts).
    super::interrupts::stop_gracefully();
    let on_event = |e: train::Event| -> Result<(), String> {
        match e {
            train::Event::First(g) => {
                first_gradient_ms = started.elapsed().as_secs_f64() * 1e3;
                if let Some(path) = &a.dump_gradient {
                    let json = crate::params::to_json(layout, &g.grad).to_string();
                    super::write_output(Some(path), &(json + "\n")).map_err(|f| f.message)?;
                }
            }
            train::Event::Iter { done, p, g } => {
                if g.loss.is_finite() {
                    last_good.copy_from_slice(p);
                    if last_save.elapsed().as_secs_f64() >= 1.0 {
                        save(p).map_err(|f| f.message)?;
                        last_save = Instant::now();
                    }
                }
                progress.update(done as u64, g.loss, train::norm(&g.grad));
                if super::interrupts::requested() {
                    return Err(format!("interrupted after {done} iterations"));
                }
            }
            train::Event::Stalled => progress
                .note("L-BFGS: no step along the search direction lowers the loss; stopping"),
        }
        Ok(())
    };
    let mut on_event = on_event;
    let fitted = obj.fit(&mut p, &fit_options, &mut on_event);
    progress.finish();
    if fitted.is_err() {
        save(&last_good)?;
    }
    if super::interrupts::requested() {
        let kept = match &a.save_params {
            Some(path) => format!(
                "; the last params with a finite loss are in `{}`",
                path.display()
            ),
            None => " (no --save-params given: nothing saved)".into(),
        };
        let why = fitted.err().map(|e| e.to_string()).unwrap_or_default();
        return Err(Failure {
            code: exit::INTERRUPTED,
            message: format!("error: {why}{kept}"),
        });
    }
    let report = fitted.map_err(|e| match e {
        train::FitError::Gradient(g) => gradient_failure(g),
        train::FitError::NonFinite { .. } => Failure {
            code: exit::SOLVER,
            message: format!("error: {e}"),
        },
        train::FitError::Callback(m) => Failure::usage(m),
        train::FitError::Windows(m) => Failure::usage(format!(
            "error: minibatches (--batch-time/--batch-size): {m}"
        )),
    })?;
    let (done, mut curve) = (report.iters, report.curve);
    let mut grad_times = report.grad_ms;
    // --repeat: more evaluations at the starting params, after the fit so that
    // first_gradient_ms stays the time to the first gradient.
    for _ in 1..a.repeat {
        let t = Instant::now();
        obj.gradient(&p_start)?;
        grad_times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let final_loss = match obj.final_loss(&p) {
        Ok(l) if l.is_finite() => l,
        other => {
            save(&last_good)?;
            let why = match other {
                Err(e) => e,
                Ok(_) => "the final loss is non-finite".into(),
            };
            return Err(Failure {
                code: exit::SOLVER,
                message: format!("error: {why} (the last params with a finite loss are saved)"),
            });
        }
    };
    if done > 0 {
        *curve.last_mut().expect("not empty") = final_loss;
    }
    save(&p)?;
    if let Some(path) = &a.plot {
        obj.plot(path, &curve, &p)?;
    }
    super::note(format_args!(
        "final loss {final_loss:.6e} after {done} iterations"
    ));
    if a.stats {
        grad_times.sort_by(f64::total_cmp);
        let v = serde_json::json!({
            "iters": done,
            "final_loss": final_loss,
            "compile_ms": compile_ms,
            "first_gradient_ms": first_gradient_ms,
            "grad_ms_median": grad_times[grad_times.len() / 2],
            "gradients": grad_times.len(),
            "sensitivity": fit_options.sensitivity.name(),
            "optimizer": a.optimizer,
        });
        super::print_line(v)?;
    }
    Ok(())
}

/// A progress bar (loss, gradient norm, it/s) on a terminal; elsewhere a line every tenth
/// of the run.
struct Progress {
    bar: indicatif::ProgressBar,
    every: u64,
}

impl Progress {
    fn new(iters: u64) -> Progress {
        let bar = indicatif::ProgressBar::with_draw_target(
            Some(iters),
            indicatif::ProgressDrawTarget::stderr(),
        );
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{bar:30} {pos}/{len} {msg} {per_sec} eta {eta}",
        ) {
            bar.set_style(style);
        }
        Progress {
            bar,
            every: (iters / 10).max(1),
        }
    }

    fn update(&self, done: u64, loss: f64, grad_norm: f64) {
        let msg = format!("loss {loss:.6e} |grad| {grad_norm:.3e}");
        if self.bar.is_hidden() {
            if done.is_multiple_of(self.every) {
                super::note(format_args!("iter {done:6}  {msg}"));
            }
        } else {
            self.bar.set_position(done);
            self.bar.set_message(msg);
        }
    }

    fn note(&self, msg: &str) {
        self.bar.suspend(|| super::note(msg));
    }

    fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

/// Exit 3 for a solver failure, 4 for what the method cannot do or compile.
fn gradient_failure(e: GradientError) -> Failure {
    match e {
        GradientError::Solve(e) => Failure {
            code: exit::SOLVER,
            message: format!("error: {e}"),
        },
        other => Failure::unavailable(format!("error: {other}")),
    }
}
