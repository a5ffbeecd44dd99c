/* ndec stepper template: Euler-Maruyama (Ito) and Milstein (commutative noise, in its
 * Stratonovich form) on the grid Brownian path, one trajectory per thread.
 *
 * A transcription of the CPU's fixed-step SDE loop (src/runtime/sde.rs: fixed,
 * solve_lockstep, GridPath, Saver): step k runs from time(k) to time(k+1) with
 * time(k) = t0 + k*dt (t1 for k = n_steps); the increment of noise j over step k is
 * sq * Z(seed, traj | 2^56, k*m + j) with sq = sqrt(dt) (sqrt of the last, shorter step
 * for the last one) and Z the ziggurat normals of rng.cuh, so each trajectory's path is
 * exactly the CPU's and a GPU trajectory replays on the CPU. Save times between the ends
 * of a step are linear interpolations, as on the CPU.
 *
 * The instantiation defines, besides common.cuh's and rng.cuh's requirements:
 *   NDEC_M                                   Wiener processes
 *   NDEC_SCRATCH                             scratch entries of the step kernels
 *   ndec_step_ito(t, u, p, dw, f, gdw, scratch)        Ito drift and G dw
 *   ndec_step_milstein(t, u, p, dw, f, gdw, mil, scratch) Stratonovich drift, G dw and
 *                                            1/2 (d(G dw)/du)(G dw)
 */

#define NDEC_GRID_TAG (1ull << 56)

/* Saves every pending time in (ta, tb] (src/runtime/sde.rs: Saver::between). */
__device__ __forceinline__ void ndec_sde_save(const ndec_real* save_t, int n_save, int* si,
                                              ndec_real* out, ndec_real ta, ndec_real tb,
                                              const ndec_real* ua, const ndec_real* ub) {
    const ndec_real h = tb - ta;
    while (*si < n_save && save_t[*si] <= tb + NDEC_R(1e-9) * h) {
        const ndec_real s = save_t[*si];
        const ndec_real th = (s - ta) / h;
        ndec_real* row = out + (long long)(*si) * NDEC_N;
        if (th >= NDEC_R(1.0) - NDEC_R(1e-9)) {
            for (int i = 0; i < NDEC_N; i++) row[i] = ub[i];
        } else if (th <= NDEC_R(1e-9)) {
            for (int i = 0; i < NDEC_N; i++) row[i] = ua[i];
        } else {
            for (int i = 0; i < NDEC_N; i++) row[i] = ua[i] + th * (ub[i] - ua[i]);
        }
        (*si)++;
    }
}

/* Trajectory k of the launch is trajectory traj0 + k of the ensemble: its noise is keyed by
 * (seed, traj0 + k), so a launch of one trajectory replays any trajectory alone. */
extern "C" __global__ void ndec_sde_fixed(long long n_traj, long long traj0, ndec_u64 seed,
                                          int milstein, const ndec_real* __restrict__ u0,
                                          const ndec_real* __restrict__ p, ndec_real t0,
                                          ndec_real t1, ndec_real dt, long long n_steps,
                                          ndec_real sqrt_dt, ndec_real sqrt_last,
                                          const ndec_real* __restrict__ save_t, int n_save,
                                          long long max_steps, ndec_real* __restrict__ out,
                                          long long* __restrict__ stats,
                                          int* __restrict__ status,
                                          ndec_real* __restrict__ t_end) {
    const long long traj = ndec_traj(n_traj);
    if (traj < 0) return;
    const ndec_u64 stream = (ndec_u64)(traj0 + traj) | NDEC_GRID_TAG;
    ndec_real u[NDEC_N], un[NDEC_N], f[NDEC_N], gdw[NDEC_N], mil[NDEC_N], dw[NDEC_M > 0 ? NDEC_M : 1];
    ndec_real scratch[NDEC_SCRATCH > 0 ? NDEC_SCRATCH : 1];
    const ndec_real* pk = p + traj * NDEC_P;
    ndec_real* o = out + traj * (long long)n_save * NDEC_N;
    long long st_steps = 0, st_rhs = 0;
    int st = NDEC_OK;
    for (int i = 0; i < NDEC_N; i++) u[i] = u0[traj * NDEC_N + i];
    int si = 0;
    while (si < n_save && save_t[si] == t0) {
        for (int i = 0; i < NDEC_N; i++) o[(long long)si * NDEC_N + i] = u[i];
        si++;
    }
    ndec_real t = t0;
    for (long long k = 0; k < n_steps; k++) {
        const ndec_real ta = t0 + (ndec_real)k * dt;
        const ndec_real tb = k + 1 >= n_steps ? t1 : t0 + (ndec_real)(k + 1) * dt;
        const ndec_real h = tb - ta;
        t = ta;
        if (st_steps >= max_steps) {
            st = NDEC_MAX_STEPS;
            break;
        }
        const ndec_real sq = k + 1 < n_steps ? sqrt_dt : sqrt_last;
        for (int j = 0; j < NDEC_M; j++) {
            const double z = ndec_normal(seed, stream, (ndec_u64)k * NDEC_M + j);
            dw[j] = sq * (ndec_real)z;
        }
        if (milstein) {
            ndec_step_milstein(ta, u, pk, dw, f, gdw, mil, scratch);
            for (int i = 0; i < NDEC_N; i++) un[i] = u[i] + f[i] * h + gdw[i] + mil[i];
        } else {
            ndec_step_ito(ta, u, pk, dw, f, gdw, scratch);
            for (int i = 0; i < NDEC_N; i++) un[i] = u[i] + f[i] * h + gdw[i];
        }
        st_rhs++;
        st_steps++;
        int finite = 1;
        for (int i = 0; i < NDEC_N; i++) finite = finite && isfinite(un[i]);
        if (!finite) {
            st = NDEC_NONFINITE;
            break;
        }
        if (si < n_save && save_t[si] <= tb + NDEC_R(1e-9) * h)
            ndec_sde_save(save_t, n_save, &si, o, ta, tb, u, un);
        for (int i = 0; i < NDEC_N; i++) u[i] = un[i];
        t = tb;
    }
    stats[traj * NDEC_NSTATS + NDEC_STAT_STEPS] = st_steps;
    stats[traj * NDEC_NSTATS + NDEC_STAT_ACCEPTED] = st_steps;
    stats[traj * NDEC_NSTATS + NDEC_STAT_REJECTED] = 0;
    stats[traj * NDEC_NSTATS + NDEC_STAT_RHS] = st_rhs;
    status[traj] = st;
    t_end[traj] = t;
}
