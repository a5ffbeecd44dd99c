//! `ndec._ndec`: the native extension of the Python package `ndec`, a thin binding of the
//! library facade (`ndec::Model`, `ndec::Options`, `ndec::Pullback`).
//!
//! Arrays come in as anything numpy can read as float64 (a float64 C-contiguous array is
//! read in place, without a copy) and go out as float64 arrays that own the solver's buffers
//! (no copy either). Solves and pullbacks release the GIL. Errors become the exceptions of
//! `ndec._errors` (ModelError, SolveError, UnsupportedError) or ValueError / TypeError /
//! OSError.

use ndec::{Error, Values};
use numpy::PyArrayDescrMethods;
use numpy::{
    AllowTypeChange, PyArray1, PyArrayLikeDyn, PyArrayMethods, PyUntypedArray,
    PyUntypedArrayMethods,
};
use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};
use std::path::PathBuf;

/// The version of the native extension (`python/Cargo.toml`'s `version`).
#[pyfunction]
fn version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}

/// Compiles the model in the file at `path`.
#[pyfunction]
fn compile_file(py: Python<'_>, path: PathBuf) -> PyResult<Model> {
    let model = py
        .detach(|| ndec::compile(&path))
        .map_err(|e| to_py(py, e))?;
    Ok(Model { inner: model })
}

/// Compiles a model from its text; `name` names it in diagnostics.
#[pyfunction]
fn compile_source(py: Python<'_>, source: &str, name: &str) -> PyResult<Model> {
    let model = py
        .detach(|| ndec::compile_source(name, source))
        .map_err(|e| to_py(py, e))?;
    Ok(Model { inner: model })
}

/// A compiled model (from `ndec.compile`).
#[pyclass(frozen, module = "ndec")]
struct Model {
    inner: ndec::Model,
}

/// The pullback of one `Model.solve_vjp`: `pullback(y_bar) -> (g_u0, g_theta)`.
#[pyclass(frozen, module = "ndec")]
struct Pullback {
    inner: ndec::Pullback,
    y_shape: Vec<usize>,
    theta_shape: Vec<usize>,
    u0_shape: Option<Vec<usize>>,
}

/// A float64 array read from any array-like (C-contiguous float64 arrays are not copied).
struct F64Array<'py> {
    array: numpy::PyReadonlyArrayDyn<'py, f64>,
}

impl<'py> F64Array<'py> {
    fn new(ob: &Bound<'py, PyAny>, what: &str) -> PyResult<F64Array<'py>> {
        if let Ok(a) = ob.cast::<PyUntypedArray>() {
            let kind = a.dtype().kind();
            if !matches!(kind, b'f' | b'i' | b'u' | b'b') {
                return Err(PyTypeError::new_err(format!(
                    "{what} must hold real numbers; got an array of dtype {}",
                    a.dtype()
                )));
            }
        }
        let like: PyArrayLikeDyn<'py, f64, AllowTypeChange> = ob.extract().map_err(|e| {
            PyTypeError::new_err(format!("{what} must be an array of real numbers: {e}"))
        })?;
        Ok(F64Array {
            array: like.readonly(),
        })
    }

    fn shape(&self) -> Vec<usize> {
        self.array.shape().to_vec()
    }

    /// The values in row-major order: borrowed when the array is C-contiguous.
    fn values(&self) -> std::borrow::Cow<'_, [f64]> {
        match self.array.as_slice() {
            Ok(s) => std::borrow::Cow::Borrowed(s),
            Err(_) => std::borrow::Cow::Owned(self.array.as_array().iter().copied().collect()),
        }
    }
}

/// An optional argument that is absent when `None`.
fn optional<'a, 'py>(ob: Option<&'a Bound<'py, PyAny>>) -> Option<&'a Bound<'py, PyAny>> {
    ob.filter(|o| !o.is_none())
}

/// A row argument: `(width,)` or `(B, width)`; returns its values and batch rows.
fn rows_of(a: &F64Array<'_>, what: &str, width: usize, unit: &str) -> PyResult<Option<usize>> {
    let shape = a.shape();
    match shape.as_slice() {
        [w] if *w == width => Ok(None),
        [b, w] if *w == width && *b > 0 => Ok(Some(*b)),
        _ => Err(PyValueError::new_err(format!(
            "{what} must have shape ({width},) or (B, {width}) for this model ({width} {unit}); got {shape:?}"
        ))),
    }
}

fn values<'a>(data: &'a [f64], rows: Option<usize>) -> Values<'a> {
    match rows {
        Some(b) => Values::batch(data, b),
        None => Values::one(data),
    }
}

fn array_out<'py>(py: Python<'py>, data: Vec<f64>, shape: &[usize]) -> PyResult<Bound<'py, PyAny>> {
    let flat = PyArray1::from_vec(py, data);
    Ok(flat.reshape(shape.to_vec())?.into_any())
}

/// The solve options from keyword arguments.
#[allow(clippy::too_many_arguments)]
fn options(
    method: Option<String>,
    rtol: Option<f64>,
    atol: Option<&Bound<'_, PyAny>>,
    dt: Option<f64>,
    max_steps: Option<i64>,
    seed: i64,
    sensitivity: Option<String>,
    checkpoints: Option<i64>,
) -> PyResult<ndec::Options> {
    let atol = match optional(atol) {
        None => None,
        Some(a) => Some(match a.extract::<f64>() {
            Ok(x) => vec![x],
            Err(_) => a.extract::<Vec<f64>>().map_err(|_| {
                PyTypeError::new_err(
                    "atol must be a number or a sequence of numbers (one per state entry)",
                )
            })?,
        }),
    };
    let positive = |name: &str, v: Option<i64>| -> PyResult<Option<u64>> {
        match v {
            Some(x) if x < 1 => Err(PyValueError::new_err(format!(
                "{name} must be at least 1 (got {x})"
            ))),
            Some(x) => Ok(Some(x as u64)),
            None => Ok(None),
        }
    };
    if seed < 0 {
        return Err(PyValueError::new_err(format!(
            "seed must not be negative (got {seed})"
        )));
    }
    Ok(ndec::Options {
        method,
        rtol,
        atol,
        dt,
        max_steps: positive("max_steps", max_steps)?,
        seed: seed as u64,
        sensitivity,
        checkpoints: positive("checkpoints", checkpoints)?.map(|c| c as usize),
    })
}

/// The arguments of one solve, read from Python.
struct Call<'py> {
    ts: F64Array<'py>,
    theta: Option<F64Array<'py>>,
    theta_rows: Option<usize>,
    u0: Option<F64Array<'py>>,
    u0_rows: Option<usize>,
}

impl<'py> Call<'py> {
    /// Runs `f` on the arguments (θ defaulting to the model's params) with the GIL released.
    fn run<R: Send>(
        &self,
        py: Python<'py>,
        m: &ndec::Model,
        f: impl FnOnce(&[f64], Values, Option<Values>) -> Result<R, Error> + Send,
    ) -> PyResult<R> {
        let defaults;
        let theta = match &self.theta {
            Some(t) => t.values(),
            None => {
                defaults = m.default_params();
                std::borrow::Cow::Borrowed(defaults.as_slice())
            }
        };
        let u0 = self.u0.as_ref().map(|u| u.values());
        let ts = self.ts.values();
        let (theta_rows, u0_rows) = (self.theta_rows, self.u0_rows);
        py.detach(|| {
            f(
                &ts,
                values(&theta, theta_rows),
                u0.as_deref().map(|u| values(u, u0_rows)),
            )
        })
        .map_err(|e| to_py(py, e))
    }

    fn new(
        m: &ndec::Model,
        ts: &Bound<'py, PyAny>,
        theta: Option<&Bound<'py, PyAny>>,
        u0: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Call<'py>> {
        let ts = F64Array::new(ts, "ts")?;
        if ts.shape().len() != 1 {
            return Err(PyValueError::new_err(format!(
                "ts must be one-dimensional; got shape {:?}",
                ts.shape()
            )));
        }
        let theta = optional(theta)
            .map(|t| F64Array::new(t, "theta"))
            .transpose()?;
        let theta_rows = match &theta {
            Some(t) => rows_of(t, "theta", m.num_params(), "parameters")?,
            None => None,
        };
        let u0 = optional(u0).map(|u| F64Array::new(u, "u0")).transpose()?;
        let u0_rows = match &u0 {
            Some(u) => rows_of(u, "u0", m.dim(), "state entries")?,
            None => None,
        };
        Ok(Call {
            ts,
            theta,
            theta_rows,
            u0,
            u0_rows,
        })
    }
}

#[pymethods]
impl Model {
    /// The model's name.
    #[getter]
    fn name(&self) -> &str {
        self.inner.name()
    }

    /// "ode", "sde" or "dde".
    #[getter]
    fn kind(&self) -> &'static str {
        self.inner.kind().name()
    }

    /// The trajectory's column names (state entries, vectors expanded: "u[0]").
    #[getter]
    fn states(&self) -> Vec<String> {
        self.inner.states().to_vec()
    }

    /// The output column names.
    #[getter]
    fn outputs(&self) -> Vec<String> {
        self.inner.outputs().to_vec()
    }

    /// P, the length of the flat parameter vector θ.
    #[getter]
    fn num_params(&self) -> usize {
        self.inner.num_params()
    }

    /// Where each name lives in θ: a scalar param maps to `(offset, ())`; a net to a list of
    /// `(weight_offset, (OUT, IN), bias_offset, (OUT,))`, one per layer.
    #[getter]
    fn param_layout<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for e in self.inner.param_layout() {
            match e {
                ndec::ParamEntry::Scalar { name, offset } => {
                    d.set_item(name, (offset, PyTuple::empty(py)))?;
                }
                ndec::ParamEntry::Net { name, layers } => {
                    let list = PyList::empty(py);
                    for l in layers {
                        list.append((l.weight_offset, (l.rows, l.cols), l.bias_offset, (l.rows,)))?;
                    }
                    d.set_item(name, list)?;
                }
            }
        }
        Ok(d)
    }

    /// θ with the defaults and the nets' seeded initialisation, float64 (P,).
    fn default_params<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<f64>> {
        PyArray1::from_vec(py, self.inner.default_params())
    }

    /// θ from a params file (the CLI's `--params` JSON); entries it leaves out keep their
    /// defaults.
    fn load_params<'py>(
        &self,
        py: Python<'py>,
        path: PathBuf,
    ) -> PyResult<Bound<'py, PyArray1<f64>>> {
        let p = self.inner.load_params(&path).map_err(|e| to_py(py, e))?;
        Ok(PyArray1::from_vec(py, p))
    }

    /// Writes θ as a params file (atomically).
    fn save_params(&self, py: Python<'_>, theta: &Bound<'_, PyAny>, path: PathBuf) -> PyResult<()> {
        let theta = F64Array::new(theta, "theta")?;
        if theta.shape().len() != 1 {
            return Err(PyValueError::new_err(format!(
                "theta must have shape ({},); got {:?}",
                self.inner.num_params(),
                theta.shape()
            )));
        }
        self.inner
            .save_params(&theta.values(), &path)
            .map_err(|e| to_py(py, e))
    }

    /// The model's initial state at θ (default: `default_params()`), float64 (n,).
    #[pyo3(signature = (theta=None))]
    fn initial_state<'py>(
        &self,
        py: Python<'py>,
        theta: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyArray1<f64>>> {
        let u0 = match optional(theta) {
            None => self.inner.initial_state(&self.inner.default_params()),
            Some(t) => {
                let t = F64Array::new(t, "theta")?;
                self.inner.initial_state(&t.values())
            }
        }
        .map_err(|e| to_py(py, e))?;
        Ok(PyArray1::from_vec(py, u0))
    }

    /// Solves at the save times `ts` from `u0` (default: the initial state at θ); returns
    /// (len(ts), n), or (B, len(ts), n) when θ or u0 has a batch axis.
    #[pyo3(signature = (ts, theta=None, u0=None, *, method=None, rtol=None, atol=None, dt=None, max_steps=None, seed=0))]
    #[allow(clippy::too_many_arguments)]
    fn solve<'py>(
        &self,
        py: Python<'py>,
        ts: &Bound<'py, PyAny>,
        theta: Option<&Bound<'py, PyAny>>,
        u0: Option<&Bound<'py, PyAny>>,
        method: Option<String>,
        rtol: Option<f64>,
        atol: Option<&Bound<'py, PyAny>>,
        dt: Option<f64>,
        max_steps: Option<i64>,
        seed: i64,
    ) -> PyResult<Bound<'py, PyAny>> {
        let opts = options(method, rtol, atol, dt, max_steps, seed, None, None)?;
        let call = Call::new(&self.inner, ts, theta, u0)?;
        let m = &self.inner;
        let solved = call.run(py, m, |ts, theta, u0| m.solve(ts, theta, u0, &opts))?;
        let shape = solved.shape();
        array_out(py, solved.into_values(), &shape)
    }

    /// `solve`, and the pullback of the solve map (θ, u0) ↦ y: returns `(y, pullback)` where
    /// `pullback(y_bar)` returns `(g_u0, g_theta)` shaped like `u0` and `theta` as given
    /// (`g_u0` is None when no u0 was given).
    #[pyo3(signature = (ts, theta=None, u0=None, *, sensitivity=None, method=None, rtol=None, atol=None, dt=None, max_steps=None, seed=0, checkpoints=None))]
    #[allow(clippy::too_many_arguments)]
    fn solve_vjp<'py>(
        &self,
        py: Python<'py>,
        ts: &Bound<'py, PyAny>,
        theta: Option<&Bound<'py, PyAny>>,
        u0: Option<&Bound<'py, PyAny>>,
        sensitivity: Option<String>,
        method: Option<String>,
        rtol: Option<f64>,
        atol: Option<&Bound<'py, PyAny>>,
        dt: Option<f64>,
        max_steps: Option<i64>,
        seed: i64,
        checkpoints: Option<i64>,
    ) -> PyResult<(Bound<'py, PyAny>, Pullback)> {
        let opts = options(
            method,
            rtol,
            atol,
            dt,
            max_steps,
            seed,
            sensitivity,
            checkpoints,
        )?;
        let call = Call::new(&self.inner, ts, theta, u0)?;
        let m = &self.inner;
        let (solved, pullback) =
            call.run(py, m, |ts, theta, u0| m.solve_vjp(ts, theta, u0, &opts))?;
        let y_shape = solved.shape();
        let np = self.inner.num_params();
        let pullback = Pullback {
            inner: pullback,
            y_shape: y_shape.clone(),
            theta_shape: match call.theta_rows {
                Some(b) => vec![b, np],
                None => vec![np],
            },
            u0_shape: call.u0.as_ref().map(|u| u.shape()),
        };
        Ok((array_out(py, solved.into_values(), &y_shape)?, pullback))
    }

    fn __repr__(&self) -> String {
        format!(
            "<ndec.Model {:?}: {}, {} states, {} params>",
            self.inner.name(),
            self.inner.kind().name(),
            self.inner.dim(),
            self.inner.num_params()
        )
    }
}

#[pymethods]
impl Pullback {
    /// `(g_u0, g_theta)` for the cotangent `y_bar` of the solve's result (same shape).
    fn __call__<'py>(
        &self,
        py: Python<'py>,
        y_bar: &Bound<'py, PyAny>,
    ) -> PyResult<(Option<Bound<'py, PyAny>>, Bound<'py, PyAny>)> {
        let y_bar = F64Array::new(y_bar, "y_bar")?;
        if y_bar.shape() != self.y_shape {
            return Err(PyValueError::new_err(format!(
                "y_bar must have the solution's shape {:?}; got {:?}",
                self.y_shape,
                y_bar.shape()
            )));
        }
        let data = y_bar.values();
        let pb = &self.inner;
        let g = py.detach(|| pb.apply(&data)).map_err(|e| to_py(py, e))?;
        let (g_theta, g_u0) = g.into_parts();
        let g_theta = array_out(py, g_theta, &self.theta_shape)?;
        let g_u0 = match (g_u0, &self.u0_shape) {
            (Some(g), Some(shape)) => Some(array_out(py, g, shape)?),
            _ => None,
        };
        Ok((g_u0, g_theta))
    }

    fn __repr__(&self) -> String {
        format!("<ndec.Pullback {:?}>", self.y_shape)
    }
}

/// The Python exception of a facade error.
fn to_py(py: Python<'_>, e: Error) -> PyErr {
    exception(py, e).unwrap_or_else(|err| err)
}

fn exception(py: Python<'_>, e: Error) -> PyResult<PyErr> {
    let errors = py.import("ndec._errors")?;
    let raise = |name: &str, args: Bound<'_, PyTuple>| -> PyResult<PyErr> {
        Ok(PyErr::from_value(errors.getattr(name)?.call1(args)?))
    };
    Ok(match e {
        Error::Model(m) => {
            let list = diagnostics(py, &m)?;
            raise("ModelError", (m.to_string(), list).into_pyobject(py)?)?
        }
        Error::Solve(f) => {
            let args = (
                f.to_string(),
                f.t(),
                f.reason_text(),
                f.kind(),
                f.trajectory(),
            );
            raise("SolveError", args.into_pyobject(py)?)?
        }
        Error::Unsupported(m) => raise("UnsupportedError", (m,).into_pyobject(py)?)?,
        Error::Input(m) => PyValueError::new_err(m),
        Error::Io { path, source } => PyErr::from(std::io::Error::new(
            source.kind(),
            format!("`{path}`: {source}"),
        )),
        Error::Backend(m) => PyRuntimeError::new_err(format!("code generation failed: {m}")),
    })
}

/// The model error's diagnostics as `ndec._errors.Diagnostic` objects.
fn diagnostics<'py>(py: Python<'py>, m: &ndec::ModelError) -> PyResult<Bound<'py, PyList>> {
    let cls = py.import("ndec._errors")?.getattr("Diagnostic")?;
    let list = PyList::empty(py);
    for (i, d) in m.diagnostics().iter().enumerate() {
        let (line, column) = m.location(i);
        let severity = if d.is_error() { "error" } else { "warning" };
        let obj = cls.call1((
            severity,
            d.code,
            d.message.as_str(),
            m.file(),
            line,
            column,
            d.label.as_str(),
            d.hint.as_deref(),
        ))?;
        list.append(obj)?;
    }
    Ok(list)
}

#[pymodule]
fn _ndec(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(version, m)?)?;
    m.add_function(wrap_pyfunction!(compile_file, m)?)?;
    m.add_function(wrap_pyfunction!(compile_source, m)?)?;
    m.add_class::<Model>()?;
    m.add_class::<Pullback>()?;
    Ok(())
}
