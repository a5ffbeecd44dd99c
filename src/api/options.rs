//! One options type for every equation kind, resolved against a model and its save times.
//!
//! What is not given comes from the model's `solve { … }` block, then from the CLI's
//! defaults (LANGUAGE.md §6): tsit5 for ODEs and delay models; for SDEs euler_maruyama
//! when a step is given, else sde_adaptive; rtol 1e-6, atol 1e-8, 100 000 steps.

use super::Error;
use crate::program::Program;
use crate::runtime::sde::{SdeMethod, SdeOptions};
use crate::runtime::{Method, SaveAt, SolveOptions};
use crate::sensitivity::Sensitivity;

/// How to solve (and differentiate): every field optional, checked when used.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Options {
    /// A method name of LANGUAGE.md §6 (`tsit5`, `rodas5`, `euler_maruyama`, …).
    pub method: Option<String>,
    /// Relative tolerance of adaptive methods.
    pub rtol: Option<f64>,
    /// Absolute tolerance: one value, or one per state entry.
    pub atol: Option<Vec<f64>>,
    /// The step of a fixed-step method; the first step of an adaptive one.
    pub dt: Option<f64>,
    /// The most attempted steps per trajectory.
    pub max_steps: Option<u64>,
    /// The noise seed of an SDE: trajectory b of a batch uses the stream (seed, b).
    pub seed: u64,
    /// The sensitivity method of gradients (`auto`, `forward`, `discrete`, `backsolve`,
    /// `interpolating`, `quadrature`, `reversible`); `None` is `auto`.
    pub sensitivity: Option<String>,
    /// The discrete adjoint keeps at most this many checkpoints (`None`: every step).
    pub checkpoints: Option<usize>,
}

/// The options of one solve, resolved for the model's kind.
#[derive(Clone, Debug)]
pub(crate) enum Plan {
    /// An ODE or a delay model.
    Ode(SolveOptions),
    /// An SDE (its `traj` set per trajectory).
    Sde(SdeOptions),
}

/// A method name resolved for a model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Solver {
    Ode(Method),
    Sde(SdeMethod),
}

/// The method `name` (else the model's, else the default for its kind) for `prog`.
/// Unknown names are [`Error::Input`]; a name of the wrong kind, or a method this version
/// does not offer, is [`Error::Unsupported`].
pub(crate) fn resolve_method(
    prog: &Program,
    name: Option<&str>,
    dt: Option<f64>,
) -> Result<Solver, Error> {
    let defaults = &prog.model.solve;
    let is_sde = prog.sde.is_some();
    let name = match name.map(str::to_string).or_else(|| defaults.method.clone()) {
        Some(n) => n,
        None if !is_sde => "tsit5".to_string(),
        None if dt.is_some() => "euler_maruyama".to_string(),
        None => "sde_adaptive".to_string(),
    };
    let list = |names: Vec<&str>| names.join(", ");
    let ode_names = || list(Method::ALL.iter().map(|m| m.name()).collect());
    let sde_names = || list(SdeMethod::ALL.iter().map(|m| m.name()).collect());
    match (
        is_sde,
        Method::from_name(&name),
        SdeMethod::from_name(&name),
    ) {
        (false, Some(m), _) => Ok(Solver::Ode(m)),
        (true, _, Some(m)) => Ok(Solver::Sde(m)),
        (false, None, Some(_)) => Err(Error::Unsupported(format!(
            "`{name}` is an SDE method and this model has no `brownian` noise (ODE methods: {})",
            ode_names()
        ))),
        (true, Some(_), None) => Err(Error::Unsupported(format!(
            "`{name}` is an ODE method and this model is an SDE (it declares `brownian` noise); SDE methods: {}",
            sde_names()
        ))),
        _ if crate::sema::solve::METHODS.contains(&name.as_str()) => Err(Error::Unsupported(
            format!("method `{name}` is not available in this version"),
        )),
        _ => Err(Error::Input(format!(
            "unknown method `{name}` (methods: {})",
            if is_sde { sde_names() } else { ode_names() }
        ))),
    }
}

/// Save times as the facade takes them: finite, strictly increasing, at least two.
pub(crate) fn check_times(ts: &[f64]) -> Result<(), Error> {
    if ts.len() < 2 {
        return Err(Error::Input(format!(
            "ts must hold at least two times (t0 and a later save time); got {}",
            ts.len()
        )));
    }
    if let Some(i) = ts.iter().position(|t| !t.is_finite()) {
        return Err(Error::Input(format!(
            "ts[{i}] is {}: times must be finite",
            ts[i]
        )));
    }
    if let Some(i) = (1..ts.len()).find(|&i| ts[i] <= ts[i - 1]) {
        return Err(Error::Input(format!(
            "ts must be strictly increasing: ts[{}] = {} is not after ts[{}] = {}",
            i,
            ts[i],
            i - 1,
            ts[i - 1]
        )));
    }
    Ok(())
}

impl Options {
    /// The solve options for `prog` over the save times `ts` (checked with
    /// [`check_times`] first).
    pub(crate) fn plan(&self, prog: &Program, ts: &[f64]) -> Result<Plan, Error> {
        check_times(ts)?;
        self.check_numbers(prog)?;
        let defaults = &prog.model.solve;
        let dt = self.dt.or(defaults.dt);
        let (t0, t1) = (ts[0], ts[ts.len() - 1]);
        let rtol = self.rtol.or(defaults.rtol).unwrap_or(1e-6);
        let atol = self
            .atol
            .clone()
            .or_else(|| defaults.atol.clone())
            .unwrap_or_else(|| vec![1e-8]);
        let max_steps = self.max_steps.unwrap_or(100_000);
        let saveat = SaveAt::Times(ts.to_vec());
        let plan = match resolve_method(prog, self.method.as_deref(), dt)? {
            Solver::Ode(method) => {
                if method.is_fixed_step_only() && dt.is_none() {
                    return Err(fixed_step_needs_dt(method.name()));
                }
                let mut o = SolveOptions::new(method, t0, t1);
                (o.rtol, o.atol, o.dt, o.max_steps, o.saveat) = (rtol, atol, dt, max_steps, saveat);
                o.validate(prog.dim()).map_err(Error::Input)?;
                Plan::Ode(o)
            }
            Solver::Sde(method) => {
                if method.is_fixed_step() && dt.is_none() {
                    return Err(fixed_step_needs_dt(method.name()));
                }
                let noise = &prog.sde.as_ref().expect("an SDE model").noise;
                if method == SdeMethod::Milstein && !noise.commutative {
                    return Err(Error::Unsupported(format!(
                        "milstein needs commutative noise, and this model's noise is {noise} (not proved commutative); use euler_maruyama, reversible_heun or sde_adaptive"
                    )));
                }
                let mut o = SdeOptions::new(method, t0, t1);
                (o.rtol, o.atol, o.dt, o.max_steps, o.saveat) = (rtol, atol, dt, max_steps, saveat);
                o.seed = self.seed;
                o.validate(prog.dim()).map_err(Error::Input)?;
                Plan::Sde(o)
            }
        };
        Ok(plan)
    }

    /// Tolerances and steps are positive and finite; atol has one entry or one per state.
    fn check_numbers(&self, prog: &Program) -> Result<(), Error> {
        for (name, v) in [("rtol", self.rtol), ("dt", self.dt)] {
            if let Some(x) = v
                && !(x > 0.0 && x.is_finite())
            {
                return Err(Error::Input(format!(
                    "{name} must be a positive finite number (got {x})"
                )));
            }
        }
        if let Some(atol) = &self.atol {
            let n = prog.dim();
            if atol.len() != 1 && atol.len() != n {
                return Err(Error::Input(format!(
                    "atol needs one value or one per state entry ({n}); got {}",
                    atol.len()
                )));
            }
            if let Some(x) = atol.iter().find(|x| !(**x >= 0.0 && x.is_finite())) {
                return Err(Error::Input(format!(
                    "atol must be finite and not negative (got {x})"
                )));
            }
        }
        if self.max_steps == Some(0) {
            return Err(Error::Input("max_steps must be at least 1".into()));
        }
        if self.checkpoints == Some(0) {
            return Err(Error::Input("checkpoints must be at least 1".into()));
        }
        Ok(())
    }

    /// The sensitivity method for gradients of `plan`'s solves of `prog` (`auto` chosen per
    /// model, method and whether the start state is differentiated too).
    pub(crate) fn sensitivity(
        &self,
        prog: &Program,
        plan: &Plan,
        start_is_input: bool,
    ) -> Result<Sensitivity, Error> {
        let name = self.sensitivity.as_deref().unwrap_or("auto");
        let named = match name {
            "auto" => None,
            n => Some(Sensitivity::from_name(n).ok_or_else(|| {
                Error::Input(format!(
                    "unknown sensitivity `{n}` (auto, forward, discrete, backsolve, interpolating, quadrature, reversible)"
                ))
            })?),
        };
        match plan {
            Plan::Ode(o) => {
                if named == Some(Sensitivity::Reversible) {
                    return Err(Error::Unsupported(
                        "`reversible` is the reversible-Heun adjoint of an SDE; for this model use discrete, forward, backsolve, interpolating or quadrature".into(),
                    ));
                }
                Ok(named.unwrap_or_else(|| Sensitivity::auto_for(prog, o.method, start_is_input)))
            }
            Plan::Sde(o) => {
                let s = match named {
                    Some(s) => s,
                    None => crate::sensitivity::sde::auto(o.method).ok_or_else(|| {
                        Error::Unsupported(format!(
                            "no gradient through `{}`: SDE gradients run on fixed Brownian paths through euler_maruyama (discrete) or reversible_heun (reversible, discrete)",
                            o.method
                        ))
                    })?,
                };
                if !crate::sensitivity::sde::supports(o.method, s) {
                    return Err(Error::Unsupported(format!(
                        "no `{}` gradient through `{}`: use euler_maruyama with discrete, or reversible_heun with reversible or discrete",
                        s.name(),
                        o.method
                    )));
                }
                Ok(s)
            }
        }
    }
}

fn fixed_step_needs_dt(method: &str) -> Error {
    Error::Input(format!(
        "`{method}` is a fixed-step method and needs a step: give dt (or `dt = …` in the model's solve block)"
    ))
}
