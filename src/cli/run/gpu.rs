//! `ndec run --device cuda`: the ensemble of a plan solved on a GPU, one trajectory per
//! thread, returned in the CPU path's shape so the CSV and `--stats` are written the same way.
//!
//! Owns the translation between the CLI's plan and the GPU runtime
//! (`backend::cuda::launch`): per-trajectory parameters and initial states from the same
//! `ensemble::trajectory_setup` draws as the CPU, and each GPU error as the contract's exit
//! status (4 for a missing driver, device or libnvrtc, or a model/method without a GPU
//! stepper). Must never print: the caller writes the output.

use super::{Failure, Plan, Solver, TrajResult};
use crate::backend::cuda::Precision;
use crate::backend::cuda::launch::{self, Ensemble, Gpu, GpuError};
use crate::ensemble;
use crate::program::Program;
use crate::runtime::{FailReason, Solution, SolveError, Stats};

/// A GPU error as a CLI failure: resource and capability errors are exit 4.
pub(super) fn failure(e: GpuError) -> Failure {
    match e {
        GpuError::OutOfMemory { .. } => Failure::unavailable(format!("error: {e}")),
        e => Failure::unavailable(format!("error: --device cuda: {e}")),
    }
}

/// Opens the first device (exit 4 with the reason when there is none).
pub(super) fn open() -> Result<Gpu, Failure> {
    Gpu::open(0).map_err(failure)
}

/// Every trajectory's parameters and initial state, trajectory-major.
fn setups(prog: &Program, plan: &Plan) -> (Vec<f64>, Vec<f64>) {
    let (mut ps, mut us) = (vec![], vec![]);
    for &k in &plan.trajs {
        let (p, u0) = ensemble::trajectory_setup(
            prog,
            &plan.base_p,
            plan.seed,
            k,
            &plan.varies,
            plan.table.as_ref(),
        );
        ps.extend(p);
        us.extend(u0);
    }
    (ps, us)
}

/// Solves the plan's trajectories on `gpu`. The trajectories of one launch must be
/// consecutive (`--traj K` is one trajectory; an ensemble is 0..N).
pub(super) fn solve_all(
    gpu: &Gpu,
    model: &str,
    prog: &Program,
    plan: &Plan,
    prec: Precision,
) -> Result<Vec<TrajResult>, Failure> {
    let (ps, us) = setups(prog, plan);
    let first = plan.trajs.first().copied().unwrap_or(0);
    debug_assert!(plan.trajs.iter().enumerate().all(|(i, &k)| k == first + i));
    let e = match &plan.solver {
        Solver::Ode(opts) => launch::solve_erk(gpu, model, &prog.ir, opts, prec, &ps, &us),
        Solver::Sde(opts) => {
            launch::solve_sde(gpu, model, &prog.ir, opts, prec, first as u64, &ps, &us)
        }
    }
    .map_err(failure)?;
    Ok(split(e, prog, &ps, plan))
}

/// The ensemble's rows as one `Solution` (or `SolveError`) per trajectory.
fn split(e: Ensemble, prog: &Program, ps: &[f64], plan: &Plan) -> Vec<TrajResult> {
    let (dim, ns, np) = (e.dim, e.save_t.len(), prog.layout.len);
    let max_steps = match &plan.solver {
        Solver::Ode(o) => o.max_steps,
        Solver::Sde(o) => o.max_steps,
    };
    (0..plan.trajs.len())
        .map(|k| {
            let [steps, accepted, rejected, rhs_evals] = e.stats[k];
            let stats = Stats {
                steps,
                accepted,
                rejected,
                rhs_evals,
                ..Stats::default()
            };
            let reason = match e.status[k] {
                0 => {
                    let u = e.out[k * ns * dim..(k + 1) * ns * dim].to_vec();
                    let sol = Solution {
                        t: e.save_t.clone(),
                        u,
                        stats,
                        dim,
                    };
                    return Ok((sol, ps[k * np..(k + 1) * np].to_vec()));
                }
                1 => FailReason::MaxSteps { max_steps },
                2 => FailReason::StepSizeUnderflow { dt: 0.0 },
                _ => FailReason::NonFiniteState,
            };
            Err(SolveError {
                t: e.t_end[k],
                reason,
                stats,
            })
        })
        .collect()
}
