//! `ndec compile MODEL.nde --emit …`

use super::{CliResult, diagnostics_failure, read_model, write_output};
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
            let _model = driver::check(&src).map_err(|d| diagnostics_failure(&src, &d))?;
            String::from("(IR not implemented yet)\n")
        }
    };
    write_output(a.output.as_ref(), &text)
}
