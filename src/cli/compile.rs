//! `ndec compile MODEL.nde --emit …`

use super::{CliResult, Failure, diagnostics_failure, read_model, write_output};
use crate::ir::LowerError;
use crate::driver::Source;
use crate::driver;
use crate::syntax::print;
use std::path::PathBuf;

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Emit {
    /// The parsed model, every operation bracketed.
    Ast,
    /// The IR of the vector field, initial values and outputs.
    Ir,
}

#[derive(clap::Args, Debug)]
pub struct CompileArgs {
    /// The model file (.nde).
    pub model: PathBuf,
    /// What to print.
    #[arg(long, value_enum, default_value = "ir")]
    pub emit: Emit,
    /// Write to this file instead of stdout.
    #[arg(short = 'o', long = "output")]
    pub output: Option<PathBuf>,
}

pub fn run(a: CompileArgs) -> CliResult {
    let src = read_model(&a.model)?;
    let text = match a.emit {
        Emit::Ast => {
            let module = driver::parse(&src).map_err(|d| diagnostics_failure(&src, &d))?;
            // The AST is printed only for a model that also checks.
            crate::sema::check(&module, &src.stem()).map_err(|d| diagnostics_failure(&src, &d))?;
            print::module(&module, print::Parens::Explicit)
        }
        Emit::Ir => {
            let model = driver::check(&src).map_err(|d| diagnostics_failure(&src, &d))?;
            let lowered = driver::lower(&model).map_err(|e| lower_failure(&src, e))?;
            let mut text = String::new();
            for f in [&lowered.vector_field, &lowered.initial, &lowered.outputs] {
                text.push_str(&f.to_text());
            }
            if lowered.delays.outputs[0].0.len > 0 {
                text.push_str(&lowered.delays.to_text());
                text.push_str(&lowered.history.to_text());
            }
            text
        }
    };
    write_output(a.output.as_ref(), &text)
}

/// A construct a later stage cannot compile yet: exit 4 with a diagnostic at its span.
pub fn lower_failure(src: &Source, e: LowerError) -> Failure {
    let LowerError::Unsupported { what, span } = &e;
    let d = crate::diag::Diagnostic::error("E0901", *span, format!("not supported yet: {what}"))
        .label("this construct");
    let mut f = diagnostics_failure(src, &[d]);
    f.code = super::exit::UNAVAILABLE;
    f
}
