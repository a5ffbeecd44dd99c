//! Ensembles: many trajectories of one model, each with its own params and initial state.
//!
//! Trajectory k's draws depend only on (seed, k) (Philox streams), so `--traj K` replays
//! trajectory K alone, bit for bit. Draw j (the j-th `--vary`) of trajectory k uses block j
//! of stream (seed, k).

use crate::program::Program;
use crate::rng::Stream;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Dist {
    Uniform(f64, f64),
    Normal(f64, f64),
}

/// What a `--vary` or a vary-file column sets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// Position in the parameter vector.
    Param(usize),
    /// Position in the state vector (initial value).
    State(usize),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Vary {
    pub name: String,
    pub target: Target,
    pub dist: Dist,
}

/// Finds what a name refers to: a scalar param, a scalar state, or a vector entry `u[3]`.
pub fn resolve_target(prog: &Program, name: &str) -> Result<Target, String> {
    if let Some((_, i)) = prog.layout.scalars.iter().find(|(n, _)| n == name) {
        return Ok(Target::Param(*i));
    }
    let names = prog.model.state_names();
    if let Some(i) = names.iter().position(|n| n == name) {
        return Ok(Target::State(i));
    }
    Err(format!(
        "unknown name `{name}`: not a param or state entry of this model (params: {}; states: {})",
        list(prog.layout.scalars.iter().map(|(n, _)| n.as_str())),
        list(names.iter().map(String::as_str)),
    ))
}

fn list<'a>(it: impl Iterator<Item = &'a str>) -> String {
    let v: Vec<&str> = it.collect();
    if v.is_empty() {
        "none".to_string()
    } else if v.len() > 12 {
        format!("{}, …", v[..12].join(", "))
    } else {
        v.join(", ")
    }
}

/// Parses `uniform(A,B)` or `normal(M,S)`.
pub fn parse_dist(text: &str) -> Result<Dist, String> {
    let t = text.trim();
    let (kind, rest) = t
        .split_once('(')
        .ok_or_else(|| format!("`{t}` is not a distribution: use uniform(A,B) or normal(M,S)"))?;
    let args = rest
        .strip_suffix(')')
        .ok_or_else(|| format!("`{t}`: missing `)`"))?;
    let nums: Vec<f64> = args
        .split(',')
        .map(|a| {
            a.trim()
                .parse::<f64>()
                .map_err(|_| format!("`{t}`: `{}` is not a number", a.trim()))
        })
        .collect::<Result<_, _>>()?;
    if nums.len() != 2 || nums.iter().any(|x| !x.is_finite()) {
        return Err(format!("`{t}`: a distribution takes two finite numbers"));
    }
    match kind.trim() {
        "uniform" if nums[0] <= nums[1] => Ok(Dist::Uniform(nums[0], nums[1])),
        "uniform" => Err(format!("`{t}`: uniform(A,B) needs A <= B")),
        "normal" if nums[1] >= 0.0 => Ok(Dist::Normal(nums[0], nums[1])),
        "normal" => Err(format!("`{t}`: normal(M,S) needs S >= 0")),
        other => Err(format!(
            "unknown distribution `{other}`: use uniform(A,B) or normal(M,S)"
        )),
    }
}

impl Dist {
    pub fn draw(self, stream: &Stream, index: u64) -> f64 {
        match self {
            Dist::Uniform(a, b) => a + (b - a) * stream.uniform(index),
            Dist::Normal(m, s) => m + s * stream.normal(index),
        }
    }
}

/// Values set per trajectory from a vary file: `targets[j]` gets `rows[k][j]`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct VaryTable {
    pub targets: Vec<Target>,
    pub rows: Vec<Vec<f64>>,
}

/// The params and initial state of trajectory `k`: base params, then vary-file values and
/// draws for params; the initial state computed from those params; then state overrides.
pub fn trajectory_setup(
    prog: &Program,
    base_p: &[f64],
    seed: u64,
    k: usize,
    varies: &[Vary],
    table: Option<&VaryTable>,
) -> (Vec<f64>, Vec<f64>) {
    let stream = Stream::new(seed, k as u64);
    let draws: Vec<(Target, f64)> = varies
        .iter()
        .enumerate()
        .map(|(j, v)| (v.target, v.dist.draw(&stream, j as u64)))
        .collect();
    let fixed: Vec<(Target, f64)> = match table {
        Some(t) => t
            .targets
            .iter()
            .copied()
            .zip(t.rows[k].iter().copied())
            .collect(),
        None => Vec::new(),
    };
    let mut p = base_p.to_vec();
    for (target, x) in fixed.iter().chain(&draws) {
        if let Target::Param(i) = target {
            p[*i] = *x;
        }
    }
    let mut u0 = prog.initial_state(&p);
    for (target, x) in fixed.iter().chain(&draws) {
        if let Target::State(i) = target {
            u0[*i] = *x;
        }
    }
    (p, u0)
}
