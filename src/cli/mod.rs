//! The `ndec` command line: argument parsing, file IO, printing and exit statuses.
//!
//! The only module that prints or exits. Each subcommand is a thin shell over the library:
//! it reads files, calls `driver`, and turns results into output and an exit status
//! (LANGUAGE.md §6: 0 ok, 1 model error, 2 usage or input file, 3 solver failure,
//! 4 not available here).

mod check;
mod compile;
mod plot;
mod run;
mod train;

use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};

use crate::diag::{self, Diagnostic};
use crate::driver::Source;

/// Exit statuses of `ndec`.
pub mod exit {
    pub const OK: i32 = 0;
    pub const MODEL: i32 = 1;
    pub const USAGE: i32 = 2;
    pub const SOLVER: i32 = 3;
    pub const UNAVAILABLE: i32 = 4;
    /// `ndec train` stopped by an interrupt (SIGINT), its last good params saved.
    pub const INTERRUPTED: i32 = 130;
}

/// A failure that ends the command: the message goes to stderr, the code is the exit status.
#[derive(Debug)]
pub struct Failure {
    pub code: i32,
    pub message: String,
}

impl Failure {
    pub fn usage(message: impl Into<String>) -> Failure {
        Failure {
            code: exit::USAGE,
            message: message.into(),
        }
    }
    pub fn model(message: impl Into<String>) -> Failure {
        Failure {
            code: exit::MODEL,
            message: message.into(),
        }
    }
    pub fn unavailable(message: impl Into<String>) -> Failure {
        Failure {
            code: exit::UNAVAILABLE,
            message: message.into(),
        }
    }
}

pub type CliResult = Result<(), Failure>;

#[derive(Parser, Debug)]
#[command(
    name = "ndec",
    version,
    about = "A compiler for neural differential equations",
    long_about = "ndec compiles models written in the .nde language (states, params, equations and \
embedded neural networks) to native code and solves them.\n\n\
Start with `ndec check MODEL.nde`, then `ndec run MODEL.nde --t1 10`.\n\
The language is described in docs/language.md."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Parse and check a model; print diagnostics only.
    Check(check::CheckArgs),
    /// Compile a model and print an intermediate form (AST, IR, …).
    Compile(compile::CompileArgs),
    /// Solve a model (or an ensemble) and write its trajectory as CSV.
    Run(Box<run::RunArgs>),
    /// Fit params to data by gradient descent through the solver.
    Train(Box<train::TrainArgs>),
}

/// SIGINT and SIGTERM. By default they end the process at once (exit 130) after removing
/// any output temporary still being written, so an interrupted `run --out` leaves nothing
/// behind; while `train` fits, the first one only asks it to stop after the current
/// iteration and save its params.
pub mod interrupts {
    use std::sync::atomic::{AtomicBool, Ordering};

    static GRACEFUL: AtomicBool = AtomicBool::new(false);
    static REQUESTED: AtomicBool = AtomicBool::new(false);

    /// Installs the handler (once per process; later calls do nothing).
    pub fn install() {
        let _ = ctrlc::set_handler(|| {
            if GRACEFUL.load(Ordering::SeqCst) && !REQUESTED.swap(true, Ordering::SeqCst) {
                return;
            }
            crate::files::remove_pending();
            super::note("interrupted");
            std::process::exit(super::exit::INTERRUPTED);
        });
    }

    /// From now on the first interrupt is a request ([`requested`]), not an exit.
    pub fn stop_gracefully() {
        GRACEFUL.store(true, Ordering::SeqCst);
    }

    /// Has an interrupt asked the fit to stop?
    pub fn requested() -> bool {
        REQUESTED.load(Ordering::SeqCst)
    }
}

/// Runs the command line and returns the process exit status.
pub fn main_with_args(args: impl IntoIterator<Item = std::ffi::OsString>) -> i32 {
    interrupts::install();
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            };
            let _ = e.print();
            return code;
        }
    };
    let result = match cli.command {
        Command::Check(a) => check::run(a),
        Command::Compile(a) => compile::run(a),
        Command::Run(a) => run::run(*a),
        Command::Train(a) => train::run(*a),
    };
    match result {
        Ok(()) => exit::OK,
        Err(f) => {
            if !f.message.is_empty() {
                note(f.message.trim_end());
            }
            f.code
        }
    }
}

/// Reads and decodes a model file. A missing file is a usage error (2); bad bytes are a
/// model error (1) with a diagnostic.
pub fn read_model(path: &Path) -> Result<Source, Failure> {
    let bytes = crate::files::read_capped(path, crate::limits::MAX_MODEL_BYTES, "model file")
        .map_err(|e| {
            Failure::usage(format!(
                "error: cannot read model file `{}`: {e}",
                path.display()
            ))
        })?;
    Source::from_bytes(path.display().to_string(), &bytes)
        .map_err(|(src, d)| diagnostics_failure(&src, &[d]))
}

/// Applies a params file to `p`; a missing or malformed file is a usage error naming it.
pub fn apply_params_file(path: &Path, layout: &crate::ir::ParamLayout, p: &mut [f64]) -> CliResult {
    let text =
        crate::files::read_text_capped(path, crate::limits::MAX_INPUT_FILE_BYTES, "params file")
            .map_err(|e| {
                Failure::usage(format!(
                    "error: cannot read params file `{}`: {e}",
                    path.display()
                ))
            })?;
    crate::params::apply_json(&text, layout, p)
        .map_err(|e| Failure::usage(format!("error: params file `{}`: {e}", path.display())))
}

/// The step and tolerance flags every solving command shares: `--dt` and `--saveat` must be
/// positive, `--rtol` non-negative (0 asks for absolute error control only; the solver
/// refuses it with a zero atol). One check, so `run` and `train` accept the same values.
pub fn check_step_flags(dt: Option<f64>, saveat: Option<f64>, rtol: Option<f64>) -> CliResult {
    for (flag, v) in [("--saveat", saveat), ("--dt", dt)] {
        if let Some(x) = v
            && !(x > 0.0 && x.is_finite())
        {
            return Err(Failure::usage(format!(
                "error: {flag} must be a positive number (got {x})"
            )));
        }
    }
    if let Some(r) = rtol
        && !(r >= 0.0 && r.is_finite())
    {
        return Err(Failure::usage(format!(
            "error: --rtol must be a finite number ≥ 0 (got {r})"
        )));
    }
    Ok(())
}

/// Writes one line to stderr. A closed or full stderr is ignored: there is nowhere left to
/// report it, and the exit status still says how the command ended (`eprintln!` would
/// panic).
pub fn note(line: impl std::fmt::Display) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

/// Writes one line to stdout; a closed or full stdout is a usage failure (exit 2).
pub fn print_line(line: impl std::fmt::Display) -> CliResult {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")
        .and_then(|_| out.flush())
        .map_err(|e| Failure::usage(format!("error: cannot write to stdout: {e}")))
}

/// Renders diagnostics into a model-error failure.
pub fn diagnostics_failure(src: &Source, diags: &[Diagnostic]) -> Failure {
    let errors = diags.iter().filter(|d| d.is_error()).count();
    let mut text = diag::render(&src.name, &src.text, diags);
    if errors > 0 {
        let s = if errors == 1 { "" } else { "s" };
        text.push_str(&format!("error: {} has {errors} error{s}\n", src.name));
    }
    Failure::model(text)
}

/// Writes `contents` to `path` atomically (a temporary file renamed into place), or to
/// stdout when there is no path or the path is `-`.
pub fn write_output(path: Option<&PathBuf>, contents: &str) -> CliResult {
    use std::io::Write;
    match path {
        Some(p) if p.as_os_str() != "-" => crate::files::atomic_write(p, contents.as_bytes())
            .map_err(|e| Failure::usage(format!("error: cannot write `{}`: {e}", p.display()))),
        _ => {
            let mut out = std::io::stdout().lock();
            out.write_all(contents.as_bytes())
                .and_then(|_| out.flush())
                .map_err(|e| Failure::usage(format!("error: cannot write to stdout: {e}")))
        }
    }
}
