//! The facade's typed errors: what went wrong, with what a caller needs to report it.

use crate::diag::Diagnostic;
use crate::driver::Source;
use crate::runtime::{FailReason, SolveError, Stats};
use crate::sensitivity::GradientError;

/// Everything the facade can refuse or fail with.
#[derive(Debug)]
pub enum Error {
    /// The model text has errors (or uses something this version cannot compile).
    Model(ModelError),
    /// An argument or option that cannot be used: a wrong shape, a NaN parameter, an
    /// unknown method name, save times that do not increase. Nothing was solved.
    Input(String),
    /// A feature this version does not offer for this model or method (the message names
    /// what to use instead).
    Unsupported(String),
    /// A solve (forward or backward) failed.
    Solve(SolveFailure),
    /// A file could not be read or written.
    Io {
        /// The file.
        path: String,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// Code generation failed: an internal error.
    Backend(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Model(e) => write!(f, "{e}"),
            Error::Input(m) | Error::Unsupported(m) => f.write_str(m),
            Error::Solve(e) => write!(f, "{e}"),
            Error::Io { path, source } => write!(f, "`{path}`: {source}"),
            Error::Backend(m) => write!(f, "code generation failed: {m}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl Error {
    /// The error of a failed solve of trajectory `trajectory` (`None` outside a batch).
    /// An unusable option (the solver's `InvalidInput`) is an [`Error::Input`].
    pub(crate) fn solve(e: SolveError, trajectory: Option<usize>) -> Error {
        match e.reason {
            FailReason::InvalidInput(m) => Error::Input(m),
            reason => Error::Solve(SolveFailure {
                t: e.t,
                reason,
                trajectory,
                stats: e.stats,
            }),
        }
    }

    /// The error of a failed gradient of trajectory `trajectory`.
    pub(crate) fn gradient(e: GradientError, trajectory: Option<usize>) -> Error {
        match e {
            GradientError::Solve(e) => Error::solve(e, trajectory),
            GradientError::Unsupported(m) => Error::Unsupported(m),
            GradientError::Compile(m) => Error::Backend(m),
        }
    }
}

/// A model that does not compile: its diagnostics, rendered as `ndec check` shows them.
#[derive(Debug)]
pub struct ModelError {
    diagnostics: Vec<Diagnostic>,
    rendered: String,
    file: String,
    /// (line, column), 1-based, of each diagnostic's primary span.
    locations: Vec<(usize, usize)>,
}

impl ModelError {
    /// Renders `diagnostics` against the source they point into.
    pub(crate) fn new(src: &Source, diagnostics: Vec<Diagnostic>) -> ModelError {
        let errors = diagnostics.iter().filter(|d| d.is_error()).count();
        let mut rendered = crate::diag::render(&src.name, &src.text, &diagnostics);
        if errors > 0 {
            let s = if errors == 1 { "" } else { "s" };
            rendered.push_str(&format!("error: {} has {errors} error{s}\n", src.name));
        }
        let locations = diagnostics
            .iter()
            .map(|d| crate::diag::line_col(&src.text, d.span.start as usize))
            .collect();
        ModelError {
            diagnostics,
            rendered,
            file: src.name.clone(),
            locations,
        }
    }

    /// The file name the diagnostics point into.
    pub fn file(&self) -> &str {
        &self.file
    }

    /// The 1-based (line, column) of diagnostic `i`'s caret.
    pub fn location(&self, i: usize) -> (usize, usize) {
        self.locations[i]
    }

    /// The diagnostics, errors and warnings, in source order.
    pub fn diagnostics(&self) -> &[Diagnostic] {
        &self.diagnostics
    }

    /// The diagnostics rendered with `file:line:col`, the source line, a caret and the
    /// hint: the same text `ndec check` prints.
    pub fn rendered(&self) -> &str {
        &self.rendered
    }
}

impl std::fmt::Display for ModelError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.rendered.trim_end())
    }
}

/// A solve that failed: where, why, and in which trajectory of a batch.
#[derive(Clone, Debug, PartialEq)]
pub struct SolveFailure {
    t: f64,
    reason: FailReason,
    trajectory: Option<usize>,
    stats: Stats,
}

impl SolveFailure {
    /// The last time the solver reached.
    pub fn t(&self) -> f64 {
        self.t
    }

    /// Why it stopped.
    pub fn reason(&self) -> &FailReason {
        &self.reason
    }

    /// The trajectory of a batch that failed (the first one, when several did); `None`
    /// for an unbatched solve.
    pub fn trajectory(&self) -> Option<usize> {
        self.trajectory
    }

    /// The work done before the failure.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// A short stable name of the reason: `step_size_underflow`, `non_finite_state`,
    /// `max_steps`, `singular_matrix` or `newton_failure`.
    pub fn kind(&self) -> &'static str {
        match self.reason {
            FailReason::StepSizeUnderflow { .. } => "step_size_underflow",
            FailReason::NonFiniteState => "non_finite_state",
            FailReason::MaxSteps { .. } => "max_steps",
            FailReason::InvalidInput(_) => "invalid_input",
            FailReason::SingularMatrix => "singular_matrix",
            FailReason::NewtonFailure { .. } => "newton_failure",
        }
    }

    /// The reason in words, without the time (e.g. "reached the maximum of 10 steps").
    pub fn reason_text(&self) -> String {
        match &self.reason {
            FailReason::StepSizeUnderflow { dt } => {
                format!(
                    "step size underflow (dt = {dt:e}); the problem may be stiff or singular here"
                )
            }
            FailReason::NonFiniteState => {
                "the state became non-finite (NaN or infinity)".to_string()
            }
            FailReason::MaxSteps { max_steps } => {
                format!("reached the maximum of {max_steps} steps")
            }
            FailReason::InvalidInput(m) => m.clone(),
            FailReason::SingularMatrix => {
                "the implicit method's iteration matrix I - gamma*h*J is singular".to_string()
            }
            FailReason::NewtonFailure { dt } => format!(
                "the Newton iteration did not converge (dt = {dt:e}); the Jacobian may be wrong or the problem singular here"
            ),
        }
    }
}

impl std::fmt::Display for SolveFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let which = self
            .trajectory
            .map(|k| format!(" (trajectory {k})"))
            .unwrap_or_default();
        write!(
            f,
            "solver failed{which} at t = {}: {}",
            crate::runtime::shortest(self.t),
            self.reason_text()
        )
    }
}

impl From<crate::program::DdeRefusal> for Error {
    fn from(e: crate::program::DdeRefusal) -> Error {
        match e {
            crate::program::DdeRefusal::Unavailable(m) => Error::Unsupported(m),
            crate::program::DdeRefusal::Invalid(m) => Error::Input(m),
        }
    }
}
