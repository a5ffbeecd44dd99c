//! The library facade: compile a model once, then solve it and pull cotangents back through
//! its solves, one trajectory or a batch at a time. This is what the Python package binds,
//! and what a Rust user should reach for first.
//!
//! ```no_run
//! let m = ndec::compile_source("decay", "param k = 0.5\nstate x = 1\nx' = -k*x\n")?;
//! let theta = m.default_params();
//! let ts = [0.0, 0.5, 1.0];
//! let opts = ndec::Options::default();
//! let (y, pullback) = m.solve_vjp(&ts, ndec::Values::one(&theta), None, &opts)?;
//! assert_eq!(y.shape(), vec![3, 1]);
//! // d/dθ of Σ y: the cotangent is all ones.
//! let g = pullback.apply(&vec![1.0; y.values().len()])?;
//! println!("dΣy/dk = {}", g.theta()[0]);
//! # Ok::<(), ndec::Error>(())
//! ```
//!
//! A [`Model`] owns its compiled kernels (and the derivative kernels, compiled on first
//! use) behind a shared handle: it is cheap to clone and is `Send + Sync`. Every array is a
//! flat row-major `f64` slice with an optional leading batch axis ([`Values`]).
//!
//! Must not print or exit; failures are [`Error`] values.

#![deny(missing_docs)]

mod batch;
mod error;
mod options;

pub use batch::{Cotangents, Pullback, Solved, Values};
pub use error::{Error, ModelError, SolveFailure};
pub use options::Options;
pub(crate) use options::{Solver, resolve_method};

use crate::driver::Source;
use crate::program::{CompileError, Program};
use crate::sensitivity::Kernels;
use std::path::Path;
use std::sync::Arc;

/// The equation kind of a model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// An ordinary differential equation.
    Ode,
    /// A stochastic differential equation (the model declares `brownian` noise).
    Sde,
    /// A delay differential equation (the model reads delayed states).
    Dde,
}

impl Kind {
    /// `"ode"`, `"sde"` or `"dde"`.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Ode => "ode",
            Kind::Sde => "sde",
            Kind::Dde => "dde",
        }
    }
}

/// Where one named parameter lives in the flat parameter vector θ.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParamEntry {
    /// A scalar `param`.
    Scalar {
        /// Its name.
        name: String,
        /// Its index in θ.
        offset: usize,
    },
    /// A net's weights: its layers in order.
    Net {
        /// Its name.
        name: String,
        /// One entry per layer, input side first.
        layers: Vec<LayerEntry>,
    },
}

/// One layer of a net in θ: the weight matrix row-major (`rows` = OUT × `cols` = IN), then
/// the bias (length `rows`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LayerEntry {
    /// Index of the weight matrix's first entry.
    pub weight_offset: usize,
    /// Output width (OUT).
    pub rows: usize,
    /// Input width (IN).
    pub cols: usize,
    /// Index of the bias's first entry.
    pub bias_offset: usize,
}

/// A compiled model: owns its kernels; clone it freely (clones share them).
#[derive(Clone)]
pub struct Model {
    inner: Arc<Inner>,
}

struct Inner {
    kernels: Kernels,
    name: String,
    states: Vec<String>,
    outputs: Vec<String>,
    layout: Vec<ParamEntry>,
}

/// Compiles the model in the file at `path`.
pub fn compile(path: impl AsRef<Path>) -> Result<Model, Error> {
    let path = path.as_ref();
    let bytes = crate::files::read_capped(path, crate::limits::MAX_MODEL_BYTES, "model file")
        .map_err(|source| Error::Io {
            path: path.display().to_string(),
            source,
        })?;
    let src = Source::from_bytes(path.display().to_string(), &bytes)
        .map_err(|(src, d)| Error::Model(ModelError::new(&src, vec![d])))?;
    Model::from_source(&src)
}

/// Compiles a model from its text; `name` is what diagnostics call the file (and the
/// model's name when it has no `model` line).
pub fn compile_source(name: &str, text: &str) -> Result<Model, Error> {
    Model::from_source(&Source::new(name, text))
}

impl Model {
    fn from_source(src: &Source) -> Result<Model, Error> {
        let prog = Program::compile(src, crate::program::Backend::Jit).map_err(|e| match e {
            CompileError::Model(d) => Error::Model(ModelError::new(src, d)),
            CompileError::Unsupported(crate::ir::LowerError::Unsupported { what, span }) => {
                let d = crate::diag::Diagnostic::error(
                    "E0901",
                    span,
                    format!("not supported yet: {what}"),
                )
                .label("this construct");
                Error::Model(ModelError::new(src, vec![d]))
            }
            CompileError::Backend(m) => Error::Backend(m),
        })?;
        Ok(Model::from_program(prog))
    }

    /// Wraps a compiled program.
    pub fn from_program(prog: impl Into<Arc<Program>>) -> Model {
        let prog: Arc<Program> = prog.into();
        let inner = Inner {
            name: prog.model.name.clone(),
            states: prog.model.state_names(),
            outputs: prog.model.output_names(),
            layout: param_entries(&prog.layout),
            kernels: Kernels::new(prog),
        };
        Model {
            inner: Arc::new(inner),
        }
    }

    /// The compiled program (its IR, kernels and the lower-level solve and gradient API).
    pub fn program(&self) -> &Program {
        self.inner.kernels.program()
    }

    /// The program with its derivative kernels, for the lower-level `sensitivity` and
    /// `train` APIs.
    pub fn kernels(&self) -> &Kernels {
        &self.inner.kernels
    }

    /// The model's name (its `model` line, else the file stem).
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// ODE, SDE or DDE.
    pub fn kind(&self) -> Kind {
        let prog = self.program();
        if prog.sde.is_some() {
            Kind::Sde
        } else if prog.is_dde() {
            Kind::Dde
        } else {
            Kind::Ode
        }
    }

    /// The trajectory's column names: state entries, vectors expanded (`u[0]`).
    pub fn states(&self) -> &[String] {
        &self.inner.states
    }

    /// The output column names.
    pub fn outputs(&self) -> &[String] {
        &self.inner.outputs
    }

    /// Number of state entries, n.
    pub fn dim(&self) -> usize {
        self.inner.states.len()
    }

    /// Length of the flat parameter vector θ, P.
    pub fn num_params(&self) -> usize {
        self.program().layout.len
    }

    /// Where each named param and net lives in θ: scalars in declaration order, then each
    /// net's layers.
    pub fn param_layout(&self) -> &[ParamEntry] {
        &self.inner.layout
    }

    /// θ with every default and every net initialised from its seed.
    pub fn default_params(&self) -> Vec<f64> {
        self.program().default_params()
    }

    /// θ from params-file JSON (the CLI's `--params` format), starting from the defaults:
    /// entries the file leaves out keep their defaults.
    pub fn params_from_json(&self, text: &str) -> Result<Vec<f64>, Error> {
        let mut p = self.default_params();
        crate::params::apply_json(text, &self.program().layout, &mut p).map_err(Error::Input)?;
        Ok(p)
    }

    /// θ from a params file (see [`Model::params_from_json`]).
    pub fn load_params(&self, path: impl AsRef<Path>) -> Result<Vec<f64>, Error> {
        let path = path.as_ref();
        let text = crate::files::read_text_capped(
            path,
            crate::limits::MAX_INPUT_FILE_BYTES,
            "params file",
        )
        .map_err(|source| Error::Io {
            path: path.display().to_string(),
            source,
        })?;
        self.params_from_json(&text)
            .map_err(|e| Error::Input(format!("params file `{}`: {e}", path.display())))
    }

    /// θ as params-file JSON.
    pub fn params_to_json(&self, theta: &[f64]) -> Result<String, Error> {
        self.check_theta(theta, None)?;
        let v = crate::params::to_json(&self.program().layout, theta);
        Ok(serde_json::to_string_pretty(&v).expect("JSON values serialise") + "\n")
    }

    /// Writes θ as a params file, atomically (a partial file never has the final name).
    pub fn save_params(&self, theta: &[f64], path: impl AsRef<Path>) -> Result<(), Error> {
        let path = path.as_ref();
        let text = self.params_to_json(theta)?;
        crate::files::atomic_write(path, text.as_bytes()).map_err(|source| Error::Io {
            path: path.display().to_string(),
            source,
        })
    }

    /// The model's initial state at θ.
    pub fn initial_state(&self, theta: &[f64]) -> Result<Vec<f64>, Error> {
        self.check_theta(theta, None)?;
        Ok(self.program().initial_state(theta))
    }

    /// θ has P finite entries (`row` names the batch row in the message).
    pub(crate) fn check_theta(&self, theta: &[f64], row: Option<usize>) -> Result<(), Error> {
        let np = self.num_params();
        if theta.len() != np {
            return Err(Error::Input(format!(
                "theta has {} entries; this model has {np} parameters",
                theta.len()
            )));
        }
        if let Some(i) = theta.iter().position(|x| !x.is_finite()) {
            let at = row.map(|b| format!(" (batch row {b})")).unwrap_or_default();
            return Err(Error::Input(format!(
                "theta[{i}]{at} is {}: every parameter must be finite ({} is {})",
                theta[i],
                self.param_name(i),
                theta[i]
            )));
        }
        Ok(())
    }

    /// The name of θ's entry `i` (`k`, `nn layer 1 weight[2][0]`, `nn layer 2 bias[1]`).
    pub fn param_name(&self, i: usize) -> String {
        for e in self.param_layout() {
            match e {
                ParamEntry::Scalar { name, offset } if *offset == i => return name.clone(),
                ParamEntry::Scalar { .. } => {}
                ParamEntry::Net { name, layers } => {
                    for (l, layer) in layers.iter().enumerate() {
                        let w = layer.weight_offset..layer.weight_offset + layer.rows * layer.cols;
                        let b = layer.bias_offset..layer.bias_offset + layer.rows;
                        if w.contains(&i) {
                            let k = i - layer.weight_offset;
                            let (r, c) = (k / layer.cols, k % layer.cols);
                            return format!("{name} layer {} weight[{r}][{c}]", l + 1);
                        }
                        if b.contains(&i) {
                            return format!("{name} layer {} bias[{}]", l + 1, i - b.start);
                        }
                    }
                }
            }
        }
        format!("entry {i}")
    }
}

fn param_entries(layout: &crate::ir::ParamLayout) -> Vec<ParamEntry> {
    let scalars = layout.scalars.iter().map(|(name, i)| ParamEntry::Scalar {
        name: name.clone(),
        offset: *i,
    });
    let nets = layout.nets.iter().map(|b| ParamEntry::Net {
        name: b.net.clone(),
        layers: b
            .layers
            .iter()
            .map(|l| LayerEntry {
                weight_offset: l.weight,
                rows: l.rows,
                cols: l.cols,
                bias_offset: l.bias,
            })
            .collect(),
    });
    scalars.chain(nets).collect()
}
