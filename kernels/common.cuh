/* ndec stepper templates: what every template shares.
 *
 * The instantiation (src/backend/cuda/stepper.rs) defines before this file:
 *   ndec_real                 double or float
 *   NDEC_EXP, NDEC_LOG, NDEC_SQRT, NDEC_POW, NDEC_FABS, NDEC_FMAX
 *                             the math functions of that type
 *   NDEC_N, NDEC_P            state and parameter lengths
 * and after it the model's __device__ functions (ndec_<kernel>) and thin wrappers with
 * fixed arguments (ndec_rhs, ndec_sde_ito).
 *
 * One thread solves one trajectory from start to end: no host round-trip per step.
 * Per-trajectory arrays are trajectory-major: trajectory k's state is u0[k*NDEC_N ...].
 */

/* Status of a trajectory (the CPU's FailReason). */
#define NDEC_OK 0
#define NDEC_MAX_STEPS 1
#define NDEC_UNDERFLOW 2
#define NDEC_NONFINITE 3

/* Work counters per trajectory, in this order (the CPU's Stats). */
#define NDEC_STAT_STEPS 0
#define NDEC_STAT_ACCEPTED 1
#define NDEC_STAT_REJECTED 2
#define NDEC_STAT_RHS 3
#define NDEC_NSTATS 4

#define NDEC_R(x) ((ndec_real)(x))

/* Whether every entry is finite: x*0 is 0 for finite x and NaN for inf/NaN (as the CPU). */
__device__ __forceinline__ int ndec_all_finite(const ndec_real* x, int n) {
    ndec_real acc = NDEC_R(0.0);
    for (int i = 0; i < n; i++) acc += x[i] * NDEC_R(0.0);
    return acc == NDEC_R(0.0);
}

/* Rust's f64::clamp: NaN passes through. */
__device__ __forceinline__ ndec_real ndec_clamp(ndec_real x, ndec_real lo, ndec_real hi) {
    if (x < lo) x = lo;
    if (x > hi) x = hi;
    return x;
}

/* The trajectory this thread solves, or -1 past the end. */
__device__ __forceinline__ long long ndec_traj(long long n_traj) {
    const long long k = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    return k < n_traj ? k : -1;
}
