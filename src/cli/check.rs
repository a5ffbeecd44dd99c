//! `ndec check MODEL.nde`

use super::{CliResult, diagnostics_failure, read_model};
use crate::driver;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct CheckArgs {
    /// The model file (.nde).
    pub model: PathBuf,
}

pub fn run(a: CheckArgs) -> CliResult {
    let src = read_model(&a.model)?;
    match driver::check(&src) {
        Ok(model) => {
            let n = model.state_len();
            let p = model.params.len();
            super::note(format_args!(
                "{}: ok (model `{}`: {n} state entr{}, {p} param{})",
                src.name,
                model.name,
                if n == 1 { "y" } else { "ies" },
                if p == 1 { "" } else { "s" }
            ));
            Ok(())
        }
        Err(diags) => Err(diagnostics_failure(&src, &diags)),
    }
}
