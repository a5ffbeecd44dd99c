//! `ndec compile MODEL.nde --emit …`

use super::{CliResult, Failure, diagnostics_failure, read_model, write_output};
use crate::backend::cuda::{self, Precision};
use crate::driver;
use crate::driver::Source;
use crate::ir::LowerError;
use crate::syntax::print;
use std::path::PathBuf;

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Emit {
    /// The parsed model, every operation bracketed.
    Ast,
    /// The IR of the vector field, initial values and outputs.
    Ir,
    /// The IR of the Jacobian ∂f/∂u (dense column-major, or compressed by colouring).
    Jacobian,
    /// The IR of the forward-mode derivative (J·v for u and p).
    Jvp,
    /// The IR of the reverse-mode derivative (Jᵀ·w for u and p).
    Vjp,
    /// The Cranelift IR of the vector field.
    Clif,
    /// CUDA C of every kernel of the model (`--target cuda`).
    Cuda,
    /// PTX of every kernel, compiled from the CUDA C by NVRTC (`--target cuda`; needs libnvrtc).
    Ptx,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// Native code through Cranelift.
    Cpu,
    /// CUDA C for NVIDIA GPUs (emitted text and PTX only; nothing runs on a GPU yet).
    Cuda,
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
    /// The back end the emitted code is for (`--emit cuda|ptx` imply `cuda`).
    #[arg(long, value_enum)]
    pub target: Option<Target>,
    /// Floating-point type of emitted CUDA C.
    #[arg(long, value_enum, default_value = "f64")]
    pub precision: Precision,
}

pub fn run(a: CompileArgs) -> CliResult {
    let gpu_emit = matches!(a.emit, Emit::Cuda | Emit::Ptx);
    if gpu_emit && a.target == Some(Target::Cpu) {
        return Err(Failure::usage(
            "error: --emit cuda and --emit ptx are CUDA output: use --target cuda",
        ));
    }
    if a.target == Some(Target::Cuda) && a.emit == Emit::Clif {
        return Err(Failure::usage(
            "error: --emit clif is Cranelift IR, for --target cpu; use --emit cuda or ptx",
        ));
    }
    if a.precision != Precision::F64 && !gpu_emit {
        return Err(Failure::usage(
            "error: --precision applies to --emit cuda and --emit ptx only",
        ));
    }
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
            if let Some(sde) = &lowered.sde {
                text.push_str(&crate::stochastic::ir_text(&model, sde));
            }
            if lowered.delays.outputs[0].0.len > 0 {
                text.push_str(&lowered.delays.to_text());
                text.push_str(&lowered.history.to_text());
            }
            text
        }
        Emit::Cuda | Emit::Ptx => {
            let model = driver::check(&src).map_err(|d| diagnostics_failure(&src, &d))?;
            let lowered = driver::lower(&model).map_err(|e| lower_failure(&src, e))?;
            let name = src.stem();
            let text = cuda::module_source(&name, &cuda::model_kernels(&lowered), a.precision);
            if a.emit == Emit::Ptx {
                cuda::compile_ptx(&text, &name).map_err(|e| match e {
                    cuda::NvrtcError::Missing(m) => Failure::unavailable(format!("error: {m}")),
                    e @ cuda::NvrtcError::Compile(_) => {
                        Failure::unavailable(format!("error: internal: {e}"))
                    }
                })?
            } else {
                text
            }
        }
        Emit::Jacobian | Emit::Jvp | Emit::Vjp | Emit::Clif => {
            let model = driver::check(&src).map_err(|d| diagnostics_failure(&src, &d))?;
            let lowered = driver::lower(&model).map_err(|e| lower_failure(&src, e))?;
            derived(&lowered, a.emit)?
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

/// The text of a derived kernel of the vector field.
fn derived(l: &crate::ir::Lowered, emit: Emit) -> Result<String, Failure> {
    let f = &l.vector_field;
    Ok(match emit {
        Emit::Jvp => crate::diff::jvp(f, &["u", "p"], true).to_text(),
        Emit::Vjp => crate::diff::vjp(f, &["u", "p"], true).to_text(),
        Emit::Jacobian => {
            let n = f.args[f.arg_index("u").unwrap_or(1)].len;
            match (n > 48)
                .then(|| crate::diff::jacobian_sparse(f, "u"))
                .flatten()
            {
                Some(sj) => format!(
                    "# sparse Jacobian: {} nonzeros in {n}x{n}, {} colours; output `compressed` holds J·seed per colour\n{}",
                    sj.pattern.nnz(),
                    sj.colours,
                    sj.function.to_text()
                ),
                None => format!(
                    "# dense Jacobian, output `jac` column-major ({n}x{n})\n{}",
                    crate::diff::jacobian_dense(f, "u", true).to_text()
                ),
            }
        }
        Emit::Clif => crate::backend::cranelift::clif_text(f)
            .map_err(|e| Failure::unavailable(format!("error: code generation failed: {e}")))?,
        Emit::Ast | Emit::Ir | Emit::Cuda | Emit::Ptx => unreachable!("handled by the caller"),
    })
}
