//! A record of an explicit solve's accepted steps: enough to replay each step and to
//! differentiate it (the discrete adjoint in `sensitivity::discrete`).
//!
//! Owns recording only; must never step, interpolate or differentiate.
//!
//! Memory: with no checkpoint limit every step's start state and stages are kept (no
//! recomputation in the backward pass). With a limit of `m` checkpoints only the start
//! states of steps at multiples of a stride are kept: the stride starts at 1 and doubles
//! (dropping every other checkpoint) whenever more than `m` would be held, so at most
//! `m + 1` states are stored whatever the number of steps, and the backward pass
//! recomputes at most `stride` steps at a time. Step times are always kept (two numbers
//! per step, independent of the state size).

/// The accepted steps of one solve (see the module doc).
#[derive(Clone, Debug, Default)]
pub struct Trace {
    pub dim: usize,
    /// Stages per step (`k` rows recorded per step when stages are kept).
    pub stages: usize,
    /// Start time of each accepted step.
    pub t: Vec<f64>,
    /// Signed step size (the step's stages are at t + c_i h).
    pub h: Vec<f64>,
    /// End time of each step (the last one is exactly t1, not t + h).
    pub t_end: Vec<f64>,
    /// Steps whose start state is kept, ascending; always starts with step 0.
    pub ckpt_step: Vec<usize>,
    /// The kept start states, `dim` each, in `ckpt_step` order.
    pub ckpt_u: Vec<f64>,
    /// Every step's stages (`stages × dim` per step, stage-major) when no limit is set.
    pub k: Vec<f64>,
    /// The state after the last step.
    pub u_end: Vec<f64>,
    max_checkpoints: Option<usize>,
    stride: usize,
}

impl Trace {
    /// A trace that keeps everything (`None`) or at most `max + 1` start states.
    pub fn new(max_checkpoints: Option<usize>) -> Trace {
        Trace {
            max_checkpoints: max_checkpoints.map(|m| m.max(1)),
            stride: 1,
            ..Trace::default()
        }
    }

    /// Whether every step's start state and stages are stored.
    pub fn keeps_stages(&self) -> bool {
        self.max_checkpoints.is_none()
    }

    pub fn len(&self) -> usize {
        self.t.len()
    }

    pub fn is_empty(&self) -> bool {
        self.t.is_empty()
    }

    /// Clears the record for a new solve of a `dim`-state system with `stages` stages.
    pub(crate) fn start(&mut self, dim: usize, stages: usize) {
        self.dim = dim;
        self.stages = stages;
        self.stride = 1;
        for v in [
            &mut self.t,
            &mut self.h,
            &mut self.t_end,
            &mut self.ckpt_u,
            &mut self.k,
            &mut self.u_end,
        ] {
            v.clear();
        }
        self.ckpt_step.clear();
    }

    /// Records an accepted step from (t, u) with stages `k` (before the state advances).
    #[inline]
    pub(crate) fn record(&mut self, t: f64, h: f64, t_end: f64, u: &[f64], k: &[f64]) {
        let n = self.t.len();
        self.t.push(t);
        self.h.push(h);
        self.t_end.push(t_end);
        match self.max_checkpoints {
            None => {
                self.ckpt_step.push(n);
                self.ckpt_u.extend_from_slice(u);
                self.k.extend_from_slice(&k[..self.stages * self.dim]);
            }
            Some(max) if n.is_multiple_of(self.stride) => {
                self.ckpt_step.push(n);
                self.ckpt_u.extend_from_slice(u);
                if self.ckpt_step.len() > max {
                    self.thin();
                }
            }
            Some(_) => {}
        }
    }

    /// Doubles the stride: keeps the checkpoints at multiples of the new stride.
    fn thin(&mut self) {
        self.stride *= 2;
        let dim = self.dim;
        let mut kept = 0;
        for i in 0..self.ckpt_step.len() {
            if self.ckpt_step[i].is_multiple_of(self.stride) {
                self.ckpt_step[kept] = self.ckpt_step[i];
                self.ckpt_u.copy_within(i * dim..(i + 1) * dim, kept * dim);
                kept += 1;
            }
        }
        self.ckpt_step.truncate(kept);
        self.ckpt_u.truncate(kept * dim);
    }

    /// The checkpoint index holding the latest kept state at or before `step`.
    pub fn checkpoint_before(&self, step: usize) -> usize {
        self.ckpt_step.partition_point(|&s| s <= step) - 1
    }

    /// Number of start states currently stored.
    pub fn checkpoints(&self) -> usize {
        self.ckpt_step.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_limit_bounds_the_stored_states_and_keeps_step_zero() {
        let mut tr = Trace::new(Some(4));
        tr.start(1, 1);
        for n in 0..100 {
            tr.record(n as f64, 1.0, n as f64 + 1.0, &[n as f64], &[0.0]);
            assert!(tr.checkpoints() <= 5, "{} at step {n}", tr.checkpoints());
        }
        assert_eq!(tr.ckpt_step[0], 0);
        // Each kept state is the one recorded at its step.
        for (i, &s) in tr.ckpt_step.iter().enumerate() {
            assert_eq!(tr.ckpt_u[i], s as f64);
        }
        // Evenly spaced: the stride is the gap between checkpoints.
        let gaps: Vec<usize> = tr.ckpt_step.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(gaps.iter().all(|g| *g == gaps[0]), "{gaps:?}");
        assert_eq!(tr.checkpoint_before(99), tr.checkpoints() - 1);
        assert_eq!(tr.checkpoint_before(0), 0);
        assert!(tr.k.is_empty());
    }

    #[test]
    fn no_limit_keeps_every_state_and_stage() {
        let mut tr = Trace::new(None);
        tr.start(2, 3);
        for n in 0..10 {
            tr.record(n as f64, 1.0, n as f64 + 1.0, &[1.0, 2.0], &[0.5; 6]);
        }
        assert_eq!(tr.checkpoints(), 10);
        assert_eq!(tr.k.len(), 10 * 6);
        assert_eq!(tr.checkpoint_before(7), 7);
    }
}
