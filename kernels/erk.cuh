/* ndec stepper template: explicit Runge-Kutta, one trajectory per thread, fixed steps
 * (ndec_erk_fixed) or adaptive steps under the PI controller (ndec_erk_adaptive), saving
 * the state at given times by the method's dense output.
 *
 * A line-by-line transcription of the CPU loop (src/runtime/integrate.rs: run_fixed,
 * run_adaptive, trial, error_estimate, accept; src/runtime/controller.rs: PiController,
 * initial_step), in the same operation order, so that in f64 without fused multiply-add
 * the GPU takes the same steps as the CPU (the transcendental functions of the controller
 * may differ by an ulp from the host's libm).
 *
 * The instantiation defines, besides common.cuh's requirements:
 *   NDEC_S, NDEC_FSAL, NDEC_HERMITE       stages; first-same-as-last; cubic Hermite
 *                                         dense output (else stage weights)
 *   NDEC_ORDER                            order (for the starting step)
 *   NDEC_BETA1, NDEC_BETA2, NDEC_SAFETY,  the PI controller's constants and ln 1e-4, the
 *   NDEC_QMIN, NDEC_QMAX, NDEC_LN_1E_4    floor of ln E_prev (src/runtime/controller.rs)
 *   NDEC_SCRATCH                          scratch entries of ndec_rhs
 *   ndec_rhs(t, u, p, du, scratch)        the vector field
 *   ndec_stage_input(s, h, u, k, dst)     dst = u + h * sum_j a[s][j] k_j (nonzero a only)
 *   ndec_solution(h, u, k, dst)           dst = u + h * sum_j b_j k_j (non-FSAL methods)
 *   ndec_error_term(i, k)                 sum_j e_j k_j[i] (nonzero e only)
 *   ndec_dense_weights(theta, w)          stage weights of the interpolant (!NDEC_HERMITE)
 *   ndec_c[NDEC_S]                        the nodes c_s
 */

struct ndec_erk_work {
    ndec_real u[NDEC_N];
    ndec_real un[NDEC_N];
    ndec_real tmp[NDEC_N];
    ndec_real k[NDEC_S * NDEC_N];
#if NDEC_HERMITE && !NDEC_FSAL
    ndec_real fnext[NDEC_N];
#endif
    ndec_real scratch[NDEC_SCRATCH > 0 ? NDEC_SCRATCH : 1];
    const ndec_real* p;
    long long stats[NDEC_NSTATS];
    /* Save times, the next one to fill, and this trajectory's rows. */
    const ndec_real* save_t;
    int n_save;
    int si;
    ndec_real* out;
    ndec_real dir;
};

/* Stages 1..S-1 of a trial step of size h from (t, u), k_0 = f(t, u) in place; then u_{n+1}. */
__device__ __forceinline__ void ndec_erk_trial(ndec_erk_work* w, ndec_real t, ndec_real h) {
#pragma unroll
    for (int s = 1; s < NDEC_S; s++) {
        ndec_real* dst = (NDEC_FSAL && s == NDEC_S - 1) ? w->un : w->tmp;
        ndec_stage_input(s, h, w->u, w->k, dst);
        ndec_rhs(t + ndec_c[s] * h, dst, w->p, w->k + s * NDEC_N, w->scratch);
    }
    w->stats[NDEC_STAT_RHS] += NDEC_S - 1;
#if !NDEC_FSAL
    ndec_solution(h, w->u, w->k, w->un);
#endif
}

/* The scaled RMS error of the trial step: even and odd components in two accumulators,
 * as the CPU pairs them; NaN/inf when the trial is non-finite. */
__device__ __forceinline__ ndec_real ndec_erk_error(const ndec_erk_work* w, ndec_real h,
                                                    ndec_real rtol, const ndec_real* atol) {
    if (NDEC_N == 0) return NDEC_R(0.0);
    ndec_real acc0 = NDEC_R(0.0), acc1 = NDEC_R(0.0), poison = NDEC_R(0.0);
    int i = 0;
    for (; i + 2 <= NDEC_N; i += 2) {
        const ndec_real e0 = ndec_error_term(i, w->k);
        const ndec_real e1 = ndec_error_term(i + 1, w->k);
        const ndec_real sc0 = atol[i] + rtol * NDEC_FMAX(NDEC_FABS(w->u[i]), NDEC_FABS(w->un[i]));
        const ndec_real sc1 =
            atol[i + 1] + rtol * NDEC_FMAX(NDEC_FABS(w->u[i + 1]), NDEC_FABS(w->un[i + 1]));
        const ndec_real r0 = h * e0 / sc0, r1 = h * e1 / sc1;
        acc0 += r0 * r0;
        acc1 += r1 * r1;
        poison += w->un[i] * NDEC_R(0.0) + w->un[i + 1] * NDEC_R(0.0);
    }
    if (i < NDEC_N) {
        const ndec_real e0 = ndec_error_term(i, w->k);
        const ndec_real sc0 = atol[i] + rtol * NDEC_FMAX(NDEC_FABS(w->u[i]), NDEC_FABS(w->un[i]));
        const ndec_real r0 = h * e0 / sc0;
        acc0 += r0 * r0;
        poison += w->un[i] * NDEC_R(0.0);
    }
    return NDEC_SQRT((acc0 + acc1) / NDEC_R(NDEC_N)) + poison;
}

/* After an accepted step (t, u) -> (t_new, un): fills the save rows in (t, t_new], makes
 * (t_new, un) current, and returns whether k_0 = f(t_new, un) is in place (-1: that
 * evaluation was needed and is non-finite). */
__device__ __forceinline__ int ndec_erk_accept(ndec_erk_work* w, ndec_real t, ndec_real h,
                                               ndec_real t_new) {
#if NDEC_HERMITE && !NDEC_FSAL
    int have_fnext = 0;
#endif
    while (w->si < w->n_save) {
        const ndec_real ts = w->save_t[w->si];
        if ((ts - t_new) * w->dir > NDEC_R(0.0)) break;
        ndec_real* row = w->out + (long long)w->si * NDEC_N;
        if (ts == t_new) {
            for (int i = 0; i < NDEC_N; i++) row[i] = w->un[i];
        } else {
            const ndec_real theta = (ts - t) / h;
#if NDEC_HERMITE
#if NDEC_FSAL
            const ndec_real* f1 = w->k + (NDEC_S - 1) * NDEC_N;
#else
            if (!have_fnext) {
                ndec_rhs(t_new, w->un, w->p, w->fnext, w->scratch);
                w->stats[NDEC_STAT_RHS] += 1;
                have_fnext = 1;
                if (!ndec_all_finite(w->fnext, NDEC_N)) return -1;
            }
            const ndec_real* f1 = w->fnext;
#endif
            /* Cubic Hermite (src/runtime/dense.rs: hermite). */
            const ndec_real a = theta * (theta - NDEC_R(1.0));
            for (int i = 0; i < NDEC_N; i++) {
                const ndec_real d = w->un[i] - w->u[i];
                row[i] = (NDEC_R(1.0) - theta) * w->u[i] + theta * w->un[i] +
                         a * ((NDEC_R(1.0) - NDEC_R(2.0) * theta) * d +
                              (theta - NDEC_R(1.0)) * h * w->k[i] + theta * h * f1[i]);
            }
#else
            ndec_real wt[NDEC_S];
            ndec_dense_weights(theta, wt);
            for (int i = 0; i < NDEC_N; i++) {
                ndec_real acc = NDEC_R(0.0);
                for (int j = 0; j < NDEC_S; j++) acc += wt[j] * w->k[j * NDEC_N + i];
                row[i] = w->u[i] + h * acc;
            }
#endif
        }
        w->si++;
    }
    for (int i = 0; i < NDEC_N; i++) w->u[i] = w->un[i];
#if NDEC_FSAL
    for (int i = 0; i < NDEC_N; i++) w->k[i] = w->k[(NDEC_S - 1) * NDEC_N + i];
    return 1;
#elif NDEC_HERMITE
    if (have_fnext) {
        for (int i = 0; i < NDEC_N; i++) w->k[i] = w->fnext[i];
        return 1;
    }
    return 0;
#else
    return 0;
#endif
}

/* k_0 = f(t, u); 0 when it is non-finite. */
__device__ __forceinline__ int ndec_erk_refresh(ndec_erk_work* w, ndec_real t) {
    ndec_rhs(t, w->u, w->p, w->k, w->scratch);
    w->stats[NDEC_STAT_RHS] += 1;
    return ndec_all_finite(w->k, NDEC_N);
}

/* Loads trajectory `traj`, saves the rows at t0 and evaluates k_0. Returns the status so
 * far (NDEC_OK to go on). */
__device__ __forceinline__ int ndec_erk_start(ndec_erk_work* w, long long traj,
                                              const ndec_real* u0, const ndec_real* p,
                                              ndec_real t0, ndec_real t1,
                                              const ndec_real* save_t, int n_save,
                                              ndec_real* out) {
    for (int i = 0; i < NDEC_N; i++) w->u[i] = u0[traj * NDEC_N + i];
    w->p = p + traj * NDEC_P;
    for (int s = 0; s < NDEC_NSTATS; s++) w->stats[s] = 0;
    w->save_t = save_t;
    w->n_save = n_save;
    w->si = 0;
    w->out = out + traj * (long long)n_save * NDEC_N;
    w->dir = t1 < t0 ? NDEC_R(-1.0) : NDEC_R(1.0);
    if (!ndec_all_finite(w->u, NDEC_N)) return NDEC_NONFINITE;
    while (w->si < n_save && save_t[w->si] == t0) {
        for (int i = 0; i < NDEC_N; i++) w->out[(long long)w->si * NDEC_N + i] = w->u[i];
        w->si++;
    }
    if (t0 == t1) {
        while (w->si < n_save) {
            for (int i = 0; i < NDEC_N; i++) w->out[(long long)w->si * NDEC_N + i] = w->u[i];
            w->si++;
        }
        return NDEC_OK;
    }
    if (!ndec_erk_refresh(w, t0)) return NDEC_NONFINITE;
    return NDEC_OK;
}

__device__ __forceinline__ void ndec_erk_finish(const ndec_erk_work* w, long long traj,
                                                int status_v, ndec_real t, long long* stats,
                                                int* status, ndec_real* t_end) {
    for (int s = 0; s < NDEC_NSTATS; s++) stats[traj * NDEC_NSTATS + s] = w->stats[s];
    status[traj] = status_v;
    t_end[traj] = t;
}

/* Fixed steps: step j (1-based) ends at t0 + dir*j*dt, the last (j = n_steps) at t1 (the
 * host computes n_steps as the CPU does). */
extern "C" __global__ void ndec_erk_fixed(long long n_traj, const ndec_real* __restrict__ u0,
                                          const ndec_real* __restrict__ p, ndec_real t0,
                                          ndec_real t1, ndec_real dt, long long n_steps,
                                          const ndec_real* __restrict__ save_t, int n_save,
                                          long long max_steps, ndec_real* __restrict__ out,
                                          long long* __restrict__ stats,
                                          int* __restrict__ status,
                                          ndec_real* __restrict__ t_end) {
    const long long traj = ndec_traj(n_traj);
    if (traj < 0) return;
    ndec_erk_work w;
    int st = ndec_erk_start(&w, traj, u0, p, t0, t1, save_t, n_save, out);
    ndec_real t = t0;
    if (st != NDEC_OK || t0 == t1) {
        ndec_erk_finish(&w, traj, st, t, stats, status, t_end);
        return;
    }
    int k0_valid = 1;
    for (long long step = 1; step <= n_steps; step++) {
        if (w.stats[NDEC_STAT_STEPS] >= max_steps) {
            st = NDEC_MAX_STEPS;
            break;
        }
        const ndec_real t_new = step == n_steps ? t1 : t0 + w.dir * (ndec_real)step * dt;
        const ndec_real h = t_new - t;
        if (!k0_valid && !ndec_erk_refresh(&w, t)) {
            st = NDEC_NONFINITE;
            break;
        }
        ndec_erk_trial(&w, t, h);
        w.stats[NDEC_STAT_STEPS] += 1;
        if (!ndec_all_finite(w.un, NDEC_N)) {
            w.stats[NDEC_STAT_REJECTED] += 1;
            st = NDEC_NONFINITE;
            break;
        }
        w.stats[NDEC_STAT_ACCEPTED] += 1;
        const int a = ndec_erk_accept(&w, t, h, t_new);
        if (a < 0) {
            t = t_new;
            st = NDEC_NONFINITE;
            break;
        }
        k0_valid = a;
        t = t_new;
    }
    ndec_erk_finish(&w, traj, st, t, stats, status, t_end);
}

/* Hairer's starting step size (src/runtime/controller.rs: initial_step); k_0 = f(t0, u0)
 * is in place. Uses tmp and un as scratch. */
__device__ __forceinline__ ndec_real ndec_erk_initial_step(ndec_erk_work* w, ndec_real t0,
                                                           ndec_real rtol,
                                                           const ndec_real* atol,
                                                           ndec_real hmax) {
    if (NDEC_N == 0) return hmax;
    ndec_real d0 = NDEC_R(0.0), d1 = NDEC_R(0.0);
    for (int i = 0; i < NDEC_N; i++) {
        const ndec_real sc = atol[i] + rtol * NDEC_FABS(w->u[i]);
        const ndec_real x = w->u[i] / sc, y = w->k[i] / sc;
        d0 += x * x;
        d1 += y * y;
    }
    d0 = NDEC_SQRT(d0 / NDEC_R(NDEC_N));
    d1 = NDEC_SQRT(d1 / NDEC_R(NDEC_N));
    ndec_real h0 = (d0 < NDEC_R(1e-5) || d1 < NDEC_R(1e-5)) ? NDEC_R(1e-6) : NDEC_R(0.01) * d0 / d1;
    if (!isfinite(h0)) h0 = NDEC_R(1e-6);
    h0 = NDEC_FMIN(h0, hmax);
    for (int i = 0; i < NDEC_N; i++) w->tmp[i] = w->u[i] + w->dir * h0 * w->k[i];
    ndec_rhs(t0 + w->dir * h0, w->tmp, w->p, w->un, w->scratch);
    w->stats[NDEC_STAT_RHS] += 1;
    ndec_real d2 = NDEC_R(0.0);
    for (int i = 0; i < NDEC_N; i++) {
        const ndec_real sc = atol[i] + rtol * NDEC_FABS(w->u[i]);
        const ndec_real x = (w->un[i] - w->k[i]) / sc;
        d2 += x * x;
    }
    d2 = NDEC_SQRT(d2 / NDEC_R(NDEC_N)) / h0;
    const ndec_real dmax = NDEC_FMAX(d1, d2);
    ndec_real h1;
    if (!isfinite(d2)) {
        h1 = h0;
    } else if (dmax <= NDEC_R(1e-15)) {
        h1 = NDEC_FMAX(h0 * NDEC_R(1e-3), NDEC_R(1e-6));
    } else {
        h1 = NDEC_POW(NDEC_R(0.01) / dmax, NDEC_R(1.0) / (NDEC_R(NDEC_ORDER) + NDEC_R(1.0)));
    }
    const ndec_real h = NDEC_FMIN(NDEC_FMIN(NDEC_R(100.0) * h0, h1), hmax);
    return h > NDEC_R(0.0) ? h : NDEC_FMIN(hmax, NDEC_R(1e-6));
}

/* Adaptive steps. dt0 > 0: the first step (capped at hmax); else Hairer's starting step. */
extern "C" __global__ void ndec_erk_adaptive(long long n_traj, const ndec_real* __restrict__ u0,
                                             const ndec_real* __restrict__ p, ndec_real t0,
                                             ndec_real t1, ndec_real dt0, ndec_real rtol,
                                             const ndec_real* __restrict__ atol,
                                             ndec_real hmax, ndec_real dtmin,
                                             const ndec_real* __restrict__ save_t, int n_save,
                                             long long max_steps, ndec_real* __restrict__ out,
                                             long long* __restrict__ stats,
                                             int* __restrict__ status,
                                             ndec_real* __restrict__ t_end) {
    const long long traj = ndec_traj(n_traj);
    if (traj < 0) return;
    ndec_erk_work w;
    int st = ndec_erk_start(&w, traj, u0, p, t0, t1, save_t, n_save, out);
    ndec_real t = t0;
    if (st != NDEC_OK || t0 == t1) {
        ndec_erk_finish(&w, traj, st, t, stats, status, t_end);
        return;
    }
    const ndec_real dir = w.dir;
    /* PI controller state (src/runtime/controller.rs: PiController). */
    ndec_real ln_err_prev = NDEC_LN_1E_4;
    int last_rejected = 0;
    ndec_real h = (dt0 > NDEC_R(0.0) ? NDEC_FMIN(dt0, hmax)
                                      : ndec_erk_initial_step(&w, t0, rtol, atol, hmax)) *
                  dir;
    int k0_valid = 1;
    for (;;) {
        int last = 0;
        if ((t + h - t1) * dir >= NDEC_R(0.0)) {
            h = t1 - t;
            last = 1;
        }
        if (w.stats[NDEC_STAT_STEPS] >= max_steps) {
            st = NDEC_MAX_STEPS;
            break;
        }
        if (!k0_valid) {
            if (!ndec_erk_refresh(&w, t)) {
                st = NDEC_NONFINITE;
                break;
            }
            k0_valid = 1;
        }
        ndec_erk_trial(&w, t, h);
        w.stats[NDEC_STAT_STEPS] += 1;
        const ndec_real e = ndec_erk_error(&w, h, rtol, atol);
        const int nonfinite = !isfinite(e);
        int accept;
        ndec_real factor;
        if (nonfinite) {
            last_rejected = 1;
            accept = 0;
            factor = NDEC_QMIN;
        } else if (e <= NDEC_R(1.0)) {
            const ndec_real ln_e = NDEC_LOG(e);
            factor = NDEC_SAFETY * NDEC_EXP(NDEC_BETA2 * ln_err_prev - NDEC_BETA1 * ln_e);
            factor = ndec_clamp(factor, NDEC_QMIN, NDEC_QMAX);
            if (last_rejected) factor = NDEC_FMIN(factor, NDEC_R(1.0));
            ln_err_prev = NDEC_FMAX(ln_e, NDEC_LN_1E_4);
            last_rejected = 0;
            accept = 1;
        } else {
            factor = ndec_clamp(NDEC_SAFETY * NDEC_EXP(-NDEC_BETA1 * NDEC_LOG(e)), NDEC_QMIN,
                                NDEC_R(1.0));
            last_rejected = 1;
            accept = 0;
        }
        if (accept) {
            w.stats[NDEC_STAT_ACCEPTED] += 1;
            const ndec_real t_new = last ? t1 : t + h;
            const int a = ndec_erk_accept(&w, t, h, t_new);
            t = t_new;
            if (a < 0) {
                st = NDEC_NONFINITE;
                break;
            }
            k0_valid = a;
            if (last) break;
            h *= factor;
            if (NDEC_FABS(h) > hmax) h = hmax * dir;
        } else {
            w.stats[NDEC_STAT_REJECTED] += 1;
            h *= factor;
        }
        if (NDEC_FABS(h) < dtmin || t + h == t) {
            st = nonfinite ? NDEC_NONFINITE : NDEC_UNDERFLOW;
            break;
        }
    }
    ndec_erk_finish(&w, traj, st, t, stats, status, t_end);
}
