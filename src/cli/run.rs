//! `ndec run MODEL.nde …`: solve a model (or an ensemble) and write its trajectory CSV.

use super::{CliResult, Failure, diagnostics_failure, exit, read_model, write_output};
use crate::api::Solver as Resolved;
use crate::ensemble::{self, Vary, VaryTable};
use crate::program::{Backend, CompileError, Program};
use crate::runtime::dde::DdeOptions;
use crate::runtime::sde::{SdeMethod, SdeOptions};
use crate::runtime::{SaveAt, Solution, SolveError, SolveOptions, Stats};
use rayon::prelude::*;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Instant;

mod gpu;

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Device {
    Cpu,
    Cuda,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precision {
    F64,
    F32,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendArg {
    Jit,
    Interp,
}

#[derive(clap::Args, Debug)]
// Negative numbers are values, not flags: `--t0 -5`, `--rtol -1` (refused later with a reason).
#[command(allow_negative_numbers = true)]
pub struct RunArgs {
    /// The model file (.nde).
    pub model: PathBuf,
    /// Start time (default: the solve block's, else 0).
    #[arg(long)]
    pub t0: Option<f64>,
    /// End time (required here or in the model's solve block).
    #[arg(long)]
    pub t1: Option<f64>,
    /// Solver: ODE euler midpoint heun rk4 bosh3 dopri5 tsit5 vern7 rosenbrock23 rodas5 bdf
    /// auto (tsit5, switching to rodas5 where stiff) (default tsit5); SDE euler_maruyama milstein reversible_heun sde_adaptive (default
    /// euler_maruyama with a dt, else sde_adaptive).
    #[arg(long)]
    pub method: Option<String>,
    /// Relative tolerance (default 1e-6).
    #[arg(long)]
    pub rtol: Option<f64>,
    /// Absolute tolerance: one number, or one per state entry separated by commas (default 1e-8).
    #[arg(long)]
    pub atol: Option<String>,
    /// Step size: required by fixed-step methods; the first step of adaptive ones.
    #[arg(long)]
    pub dt: Option<f64>,
    /// Run an adaptive method with fixed steps of --dt.
    #[arg(long)]
    pub fixed_step: bool,
    /// Also save every t0 + k*DT between t0 and t1.
    #[arg(long)]
    pub saveat: Option<f64>,
    /// Maximum number of attempted steps per trajectory.
    #[arg(long, default_value_t = 100_000)]
    pub max_steps: u64,
    /// Set a param: NAME=VALUE (repeatable; overrides --params).
    #[arg(long = "param", value_name = "NAME=VALUE")]
    pub params_set: Vec<String>,
    /// Read params (and net weights) from a JSON params file.
    #[arg(long = "params", value_name = "FILE.json")]
    pub params_file: Option<PathBuf>,
    /// Data for the model's inputs (CSV with header t,X[0],…).
    #[arg(long, value_name = "FILE.csv")]
    pub input: Option<PathBuf>,
    /// Seed of every random draw (default 0).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Solve N trajectories (in parallel).
    #[arg(long, value_name = "N")]
    pub ensemble: Option<usize>,
    /// Solve only trajectory K of the ensemble (same draws as in the full ensemble).
    #[arg(long, value_name = "K")]
    pub traj: Option<usize>,
    /// Draw a param or initial state per trajectory: NAME=uniform(A,B) or NAME=normal(M,S).
    #[arg(long = "vary", value_name = "NAME=DIST")]
    pub vary: Vec<String>,
    /// Per-trajectory values: CSV with a header of param/state names, one row per trajectory.
    #[arg(long, value_name = "FILE.csv")]
    pub vary_file: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "cpu")]
    pub device: Device,
    #[arg(long, value_enum, default_value = "f64")]
    pub precision: Precision,
    /// Kernel back end (the interpreter is the slow reference).
    #[arg(long, value_enum, default_value = "jit")]
    pub backend: BackendArg,
    /// Write the trajectory CSV here (atomically) instead of stdout.
    #[arg(long, value_name = "FILE.csv")]
    pub out: Option<PathBuf>,
    /// Print work counts and timings as one JSON line at the end of stdout.
    #[arg(long)]
    pub stats: bool,
    /// Solve K times with one compile (for timing).
    #[arg(long, default_value_t = 1, value_name = "K")]
    pub repeat: u64,
    /// Refuse a run whose estimated memory is above SIZE (GiB, or with a unit: 512M, 8G);
    /// default: this machine's physical memory.
    #[arg(long, value_name = "SIZE")]
    pub max_memory: Option<String>,
}

enum Solver {
    Ode(SolveOptions),
    Sde(SdeOptions),
}

/// Everything decided before solving.
struct Plan {
    solver: Solver,
    base_p: Vec<f64>,
    varies: Vec<Vary>,
    table: Option<VaryTable>,
    /// Trajectories to solve, and whether the output has a `traj` column.
    trajs: Vec<usize>,
    ensemble: bool,
    seed: u64,
}

pub fn run(a: RunArgs) -> CliResult {
    let started = Instant::now();
    let src = read_model(&a.model)?;
    let backend = match a.backend {
        BackendArg::Jit => Backend::Jit,
        BackendArg::Interp => Backend::Interpreter,
    };
    let prog = Program::compile(&src, backend).map_err(|e| compile_failure(&src, e))?;
    let compile_ms = started.elapsed().as_secs_f64() * 1e3;
    let gpu = match a.device {
        Device::Cuda => Some(gpu::open()?),
        Device::Cpu => None,
    };
    if a.precision == Precision::F32 && gpu.is_none() {
        return Err(Failure::unavailable(
            "error: --precision f32 is not available on the CPU yet; use f64",
        ));
    }
    if a.input.is_some() {
        return Err(Failure::unavailable(
            "error: --input is only for models with `input` declarations, which this version cannot solve yet",
        ));
    }
    let plan = plan(&a, &prog)?;
    if let Solver::Ode(opts) = &plan.solver
        && prog.is_dde()
    {
        check_dde(&prog, &plan.base_p, opts)?;
    }
    // Stiff methods need the Jacobian kernel: generate and compile it now, so that
    // compile_ms counts it and solve_ms does not.
    let mut compile_ms = compile_ms;
    if let Solver::Ode(opts) = &plan.solver
        && opts.method.is_implicit()
    {
        let t = Instant::now();
        prog.prepare_method(opts.method)
            .map_err(|e| Failure::unavailable(format!("error: {e}")))?;
        compile_ms += t.elapsed().as_secs_f64() * 1e3;
    }
    let repeat = a.repeat.max(1);
    let mut times = Vec::new();
    let mut results = Vec::new();
    for _ in 0..repeat {
        let t = Instant::now();
        results = match &gpu {
            Some(g) => {
                let prec = match a.precision {
                    Precision::F64 => crate::backend::cuda::Precision::F64,
                    Precision::F32 => crate::backend::cuda::Precision::F32,
                };
                gpu::solve_all(g, &src.stem(), &prog, &plan, prec)?
            }
            None => solve_all(&prog, &plan),
        };
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let mut stats = Stats::default();
    let mut sols = Vec::with_capacity(results.len());
    for (k, r) in plan.trajs.iter().zip(results) {
        match r {
            Ok((sol, outs)) => {
                stats.add(&sol.stats);
                sols.push((*k, sol, outs));
            }
            Err(e) => return Err(solver_failure(&e, plan.ensemble.then_some(*k))),
        }
    }
    let csv = to_csv(&prog, &sols, plan.ensemble);
    write_output(a.out.as_ref(), &csv)?;
    if a.stats {
        super::print_line(stats_json(
            &stats,
            compile_ms,
            &times,
            plan.ensemble.then_some(sols.len()),
        ))?;
    }
    Ok(())
}

/// What a delay model needs of the run before it starts (exit 4 for a method that cannot
/// solve delay equations, exit 2 for unusable options or params).
pub(super) fn check_dde(prog: &Program, p: &[f64], opts: &SolveOptions) -> Result<(), Failure> {
    use crate::program::DdeRefusal;
    prog.check_dde_options(p, opts).map_err(|e| match e {
        DdeRefusal::Unavailable(m) => Failure::unavailable(format!("error: {m}")),
        DdeRefusal::Invalid(m) => Failure::usage(format!("error: {m}")),
    })
}

pub(super) fn compile_failure(src: &crate::driver::Source, e: CompileError) -> Failure {
    match e {
        CompileError::Model(d) => diagnostics_failure(src, &d),
        CompileError::Unsupported(e) => super::compile::lower_failure(src, e),
        CompileError::Backend(msg) => {
            Failure::unavailable(format!("error: code generation failed: {msg}"))
        }
    }
}

fn solver_failure(e: &SolveError, traj: Option<usize>) -> Failure {
    let which = traj
        .map(|k| format!(" (trajectory {k})"))
        .unwrap_or_default();
    Failure {
        code: exit::SOLVER,
        message: format!("error{which}: {e}\nno output was written"),
    }
}

fn plan(a: &RunArgs, prog: &Program) -> Result<Plan, Failure> {
    let solver = if prog.sde.is_some() {
        Solver::Sde(sde_options(a, prog)?)
    } else {
        Solver::Ode(ode_options(a, prog)?)
    };
    let mut base_p = prog.default_params();
    if let Some(path) = &a.params_file {
        super::apply_params_file(path, &prog.layout, &mut base_p)?;
    }
    for set in &a.params_set {
        let (name, value) = set.split_once('=').ok_or_else(|| {
            Failure::usage(format!("error: --param `{set}`: expected NAME=VALUE"))
        })?;
        let value: f64 = value.trim().parse().map_err(|_| {
            Failure::usage(format!("error: --param {name}: `{value}` is not a number"))
        })?;
        crate::params::set_scalar(&prog.layout, &mut base_p, name.trim(), value)
            .map_err(|e| Failure::usage(format!("error: --param: {e}")))?;
    }
    let varies = a
        .vary
        .iter()
        .map(|v| {
            let (name, dist) = v.split_once('=').ok_or_else(|| {
                Failure::usage(format!(
                    "error: --vary `{v}`: expected NAME=uniform(A,B) or NAME=normal(M,S)"
                ))
            })?;
            let target = ensemble::resolve_target(prog, name.trim())
                .map_err(|e| Failure::usage(format!("error: --vary: {e}")))?;
            let dist = ensemble::parse_dist(dist)
                .map_err(|e| Failure::usage(format!("error: --vary {name}: {e}")))?;
            Ok(Vary {
                name: name.trim().to_string(),
                target,
                dist,
            })
        })
        .collect::<Result<Vec<_>, Failure>>()?;
    let table = match &a.vary_file {
        Some(path) => Some(read_vary_file(path, prog)?),
        None => None,
    };
    let n = match (a.ensemble, &table) {
        (Some(n), Some(t)) if t.rows.len() < n => {
            return Err(Failure::usage(format!(
                "error: --vary-file has {} rows but --ensemble asks for {n} trajectories",
                t.rows.len()
            )));
        }
        (Some(0), _) => {
            return Err(Failure::usage(
                "error: --ensemble needs at least 1 trajectory",
            ));
        }
        (Some(n), _) => n,
        (None, Some(t)) => t.rows.len(),
        (None, None) => 1,
    };
    let ensemble = a.ensemble.is_some() || table.is_some();
    let n_solved = if a.traj.is_some() { 1 } else { n };
    check_memory(a, prog, &solver, n_solved, base_p.len())?;
    let trajs = match a.traj {
        Some(k) if k >= n => {
            return Err(Failure::usage(format!(
                "error: --traj {k} is outside the ensemble (0..{n})"
            )));
        }
        Some(k) => vec![k],
        None => (0..n).collect(),
    };
    Ok(Plan {
        solver,
        base_p,
        varies,
        table,
        trajs,
        ensemble,
        seed: a.seed,
    })
}

/// Refuses a run whose estimated memory is over the limit (exit 2), before anything is
/// allocated: the trajectories' saved rows (as numbers and as CSV text), their params, and
/// each thread's workspace.
fn check_memory(
    a: &RunArgs,
    prog: &Program,
    solver: &Solver,
    trajs: usize,
    n_params: usize,
) -> CliResult {
    if a.repeat > crate::limits::MAX_REPEAT {
        return Err(Failure::usage(format!(
            "error: --repeat {} is more than the {} repetitions a run takes",
            a.repeat,
            crate::limits::MAX_REPEAT
        )));
    }
    let limit = match &a.max_memory {
        Some(text) => crate::limits::parse_memory(text)
            .map_err(|e| Failure::usage(format!("error: --max-memory: {e}")))?,
        None => crate::limits::default_memory_limit(),
    };
    let (t0, t1, saveat, dt) = match solver {
        Solver::Ode(o) => (o.t0, o.t1, &o.saveat, o.dt.filter(|_| o.is_fixed_step())),
        Solver::Sde(o) => (o.t0, o.t1, &o.saveat, o.dt),
    };
    let per_span = |h: f64| {
        let n = ((t1 - t0).abs() / h).floor();
        if n.is_finite() && n < 1e19 {
            n as u64
        } else {
            u64::MAX
        }
    };
    let mut rows = 2u64;
    if let SaveAt::Every(h) = saveat {
        rows = rows.saturating_add(per_span(*h));
    }
    if let Some(h) = dt {
        // Fixed steps save each step, but never more than --max-steps of them: a dt too
        // small for the span is the solver's step limit (exit 3), not a memory question.
        rows = rows.saturating_add(per_span(h).min(a.max_steps));
    }
    let cols = (prog.dim() + prog.output_len() + 2) as u64;
    let trajs = trajs as u64;
    let threads = rayon::current_num_threads() as u64;
    let mut est = crate::limits::MemoryEstimate::new();
    est.add(
        "saved rows",
        trajs.saturating_mul(rows).saturating_mul(cols),
        8 + crate::limits::CSV_BYTES_PER_NUMBER,
    )
    .add("params per trajectory", trajs, 8 * n_params as u64 + 64)
    .add(
        "solver workspace",
        threads,
        8 * (32 * prog.dim() as u64 + 4 * n_params as u64),
    );
    est.check(limit).map_err(|e| {
        Failure::usage(format!(
            "error: {e}; solve fewer trajectories or save fewer rows, or raise the limit with --max-memory"
        ))
    })
}

fn ode_options(a: &RunArgs, prog: &Program) -> Result<SolveOptions, Failure> {
    let defaults = &prog.model.solve;
    let method = match resolve_method(prog, a.method.as_deref(), a.dt)? {
        Resolved::Ode(m) => m,
        Resolved::Sde(_) => unreachable!("an ODE model resolves ODE methods"),
    };
    super::check_step_flags(a.dt, a.saveat, a.rtol)?;
    let t0 = a.t0.or(defaults.t0).unwrap_or(0.0);
    let t1 = a.t1.or(defaults.t1).ok_or_else(|| {
        Failure::usage("error: no end time: give --t1 T1, or `solve { t = T0 .. T1 }` in the model")
    })?;
    let mut opts = SolveOptions::new(method, t0, t1);
    if let Some(r) = a.rtol.or(defaults.rtol) {
        opts.rtol = r;
    }
    opts.atol = match &a.atol {
        Some(text) => text
            .split(',')
            .map(|x| {
                x.trim()
                    .parse::<f64>()
                    .map_err(|_| Failure::usage(format!("error: --atol: `{x}` is not a number")))
            })
            .collect::<Result<Vec<_>, _>>()?,
        None => defaults.atol.clone().unwrap_or_else(|| vec![1e-8]),
    };
    opts.dt = a.dt.or(defaults.dt);
    if method.is_fixed_step_only() && opts.dt.is_none() {
        return Err(Failure::usage(format!(
            "error: `{}` is a fixed-step method and needs a step: give --dt DT (or `dt = …` in solve)",
            method.name()
        )));
    }
    if a.fixed_step {
        if opts.dt.is_none() {
            return Err(Failure::usage("error: --fixed-step needs --dt DT"));
        }
        opts.adaptive = false;
    }
    if let Some(s) = a.saveat.or(defaults.saveat) {
        opts.saveat = SaveAt::Every(s);
    }
    opts.max_steps = a.max_steps;
    opts.validate(prog.dim())
        .map_err(|m| Failure::usage(format!("error: {m}")))?;
    Ok(opts)
}

/// The method named by `--method` (else the model's, else the default for its kind): an
/// unknown name is exit 2, one of the wrong kind or not available here exit 4.
fn resolve_method(
    prog: &Program,
    name: Option<&str>,
    dt: Option<f64>,
) -> Result<Resolved, Failure> {
    crate::api::resolve_method(prog, name, dt).map_err(|e| match e {
        crate::api::Error::Unsupported(m) => Failure::unavailable(format!("error: {m}")),
        other => Failure::usage(format!("error: {other}")),
    })
}

/// Options of an SDE solve: the method defaults to euler_maruyama with a dt, else
/// sde_adaptive (LANGUAGE.md §6).
fn sde_options(a: &RunArgs, prog: &Program) -> Result<SdeOptions, Failure> {
    let defaults = &prog.model.solve;
    super::check_step_flags(a.dt, a.saveat, a.rtol)?;
    let dt = a.dt.or(defaults.dt);
    let method = match resolve_method(prog, a.method.as_deref(), dt)? {
        Resolved::Sde(m) => m,
        Resolved::Ode(_) => unreachable!("an SDE model resolves SDE methods"),
    };
    if method.is_fixed_step() && dt.is_none() {
        return Err(Failure::usage(format!(
            "error: `{}` is a fixed-step method and needs a step: give --dt DT (or `dt = …` in solve)",
            method.name()
        )));
    }
    if a.fixed_step {
        return Err(Failure::usage(
            "error: --fixed-step is for adaptive ODE methods; for an SDE use a fixed-step method (euler_maruyama, milstein, reversible_heun) with --dt",
        ));
    }
    let sde = prog.sde.as_ref().expect("an SDE program has SDE kernels");
    if method == SdeMethod::Milstein && !sde.noise.commutative {
        return Err(Failure::unavailable(format!(
            "error: milstein needs commutative noise, and this model's noise is {} (not proved commutative); \
             use euler_maruyama, reversible_heun or sde_adaptive",
            sde.noise
        )));
    }
    let t0 = a.t0.or(defaults.t0).unwrap_or(0.0);
    let t1 = a.t1.or(defaults.t1).ok_or_else(|| {
        Failure::usage("error: no end time: give --t1 T1, or `solve { t = T0 .. T1 }` in the model")
    })?;
    let mut opts = SdeOptions::new(method, t0, t1);
    if let Some(r) = a.rtol.or(defaults.rtol) {
        opts.rtol = r;
    }
    opts.atol = match &a.atol {
        Some(text) => text
            .split(',')
            .map(|x| {
                x.trim()
                    .parse::<f64>()
                    .map_err(|_| Failure::usage(format!("error: --atol: `{x}` is not a number")))
            })
            .collect::<Result<Vec<_>, _>>()?,
        None => defaults.atol.clone().unwrap_or_else(|| vec![1e-8]),
    };
    opts.dt = dt;
    if let Some(s) = a.saveat.or(defaults.saveat) {
        opts.saveat = SaveAt::Every(s);
    }
    opts.max_steps = a.max_steps;
    opts.seed = a.seed;
    opts.validate(prog.dim())
        .map_err(|m| Failure::usage(format!("error: {m}")))?;
    Ok(opts)
}

pub(super) fn read_vary_file(path: &std::path::Path, prog: &Program) -> Result<VaryTable, Failure> {
    let name = path.display().to_string();
    let bad = |m: String| Failure::usage(format!("error: vary file `{name}`: {m}"));
    let text = crate::files::read_capped(path, crate::limits::MAX_INPUT_FILE_BYTES, "vary file")
        .map_err(|e| bad(e.to_string()))?;
    let mut rdr = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(text.as_slice());
    let headers = rdr.headers().map_err(|e| bad(e.to_string()))?.clone();
    let targets = headers
        .iter()
        .map(|h| ensemble::resolve_target(prog, h).map_err(|e| bad(format!("header: {e}"))))
        .collect::<Result<Vec<_>, _>>()?;
    let mut rows = Vec::new();
    for (i, rec) in rdr.records().enumerate() {
        let line = i + 2;
        let rec = rec.map_err(|e| bad(format!("line {line}: {e}")))?;
        let row = rec
            .iter()
            .zip(headers.iter())
            .map(|(x, h)| {
                x.parse::<f64>()
                    .map_err(|_| bad(format!("line {line}, field `{h}`: `{x}` is not a number")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        rows.push(row);
    }
    if rows.is_empty() {
        return Err(bad("no rows".to_string()));
    }
    Ok(VaryTable { targets, rows })
}

/// A trajectory's solution and its outputs at the saved rows (row-major).
type TrajResult = Result<(Solution, Vec<f64>), SolveError>;

fn with_outputs(prog: &Program, sol: Solution, p: &[f64]) -> (Solution, Vec<f64>) {
    let outs = prog.outputs_of(&sol, p);
    (sol, outs)
}

fn solve_all(prog: &Program, plan: &Plan) -> Vec<TrajResult> {
    let solve = |k: &usize| -> TrajResult {
        let (p, u0) = ensemble::trajectory_setup(
            prog,
            &plan.base_p,
            plan.seed,
            *k,
            &plan.varies,
            plan.table.as_ref(),
        );
        match &plan.solver {
            Solver::Ode(opts) if prog.is_dde() => {
                let dopts = DdeOptions::default();
                prog.solve_dde(&p, &u0, opts, &dopts).map(|(sol, hist)| {
                    let outs = prog.dde_outputs_of(&sol, &hist, &p);
                    (sol, outs)
                })
            }
            Solver::Ode(opts) => prog.solve(&p, &u0, opts).map(|s| with_outputs(prog, s, &p)),
            Solver::Sde(opts) => {
                let mut opts = opts.clone();
                opts.traj = *k as u64;
                prog.solve_sde(&p, &u0, &opts)
                    .map(|s| with_outputs(prog, s.sol, &p))
            }
        }
    };
    if let Solver::Sde(opts) = &plan.solver
        && plan.trajs.len() > 1
    {
        // SDE ensembles: a few trajectories per task, solved in lockstep (bit-identical to
        // solving each alone; see `runtime::sde::solve_sde_many`).
        const LANES: usize = 4;
        let chunk = |ks: &[usize]| -> Vec<TrajResult> {
            let setups: Vec<(Vec<f64>, Vec<f64>)> = ks
                .iter()
                .map(|k| {
                    ensemble::trajectory_setup(
                        prog,
                        &plan.base_p,
                        plan.seed,
                        *k,
                        &plan.varies,
                        plan.table.as_ref(),
                    )
                })
                .collect();
            let ps: Vec<&[f64]> = setups.iter().map(|(p, _)| p.as_slice()).collect();
            let u0s: Vec<&[f64]> = setups.iter().map(|(_, u)| u.as_slice()).collect();
            let os: Vec<SdeOptions> = ks
                .iter()
                .map(|k| {
                    let mut o = opts.clone();
                    o.traj = *k as u64;
                    o
                })
                .collect();
            prog.solve_sde_many(&ps, &u0s, &os)
                .into_iter()
                .zip(setups)
                .map(|(r, (p, _))| r.map(|s| with_outputs(prog, s.sol, &p)))
                .collect()
        };
        return plan
            .trajs
            .par_chunks(LANES)
            .map(chunk)
            .collect::<Vec<_>>()
            .into_iter()
            .flatten()
            .collect();
    }
    if plan.trajs.len() > 1 {
        plan.trajs.par_iter().map(solve).collect()
    } else {
        plan.trajs.iter().map(solve).collect()
    }
}

/// The trajectory CSV: `[traj,]t,<states>,<outputs>`, numbers in shortest round-trip form;
/// each solution comes with its outputs.
fn to_csv(prog: &Program, sols: &[(usize, Solution, Vec<f64>)], ensemble: bool) -> String {
    let mut out = String::new();
    let mut header: Vec<String> = Vec::new();
    if ensemble {
        header.push("traj".into());
    }
    header.push("t".into());
    header.extend(prog.model.row_names());
    out.push_str(&header.join(","));
    out.push('\n');
    let mut buf = ryu::Buffer::new();
    let no = prog.output_len();
    for (k, sol, outs) in sols {
        for i in 0..sol.len() {
            if ensemble {
                let _ = write!(out, "{k},");
            }
            out.push_str(buf.format(sol.t[i]));
            for x in sol.row(i) {
                out.push(',');
                out.push_str(buf.format(*x));
            }
            for x in &outs[i * no..(i + 1) * no] {
                out.push(',');
                out.push_str(buf.format(*x));
            }
            out.push('\n');
        }
    }
    out
}

fn stats_json(s: &Stats, compile_ms: f64, times: &[f64], trajectories: Option<usize>) -> String {
    let mut sorted = times.to_vec();
    sorted.sort_by(f64::total_cmp);
    let median = sorted[sorted.len() / 2];
    let mut v = serde_json::json!({
        "steps": s.steps,
        "accepted": s.accepted,
        "rejected": s.rejected,
        "rhs_evals": s.rhs_evals,
        "jac_evals": s.jac_evals,
        "lu_factorizations": s.lu_factorizations,
        "newton_iters": s.newton_iters,
        "compile_ms": compile_ms,
        "solve_ms": median,
    });
    if times.len() > 1 {
        v["solve_ms_min"] = serde_json::json!(sorted[0]);
        v["solve_ms_median"] = serde_json::json!(median);
        v["repeat"] = serde_json::json!(times.len());
    }
    if let Some(n) = trajectories {
        v["trajectories"] = serde_json::json!(n);
    }
    v.to_string()
}
