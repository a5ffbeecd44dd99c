/* Hand-written CUDA tsit5 for the Lorenz ensemble: the practical limit ndec's generated
 * stepper is measured against (bench/gpu_lorenz.sh). One trajectory per thread, state in
 * registers, end state only, rho = rhos[k]; fixed dt (ndec_hw_fixed) or adaptive with the
 * same PI controller as ndec (ndec_hw_adaptive). REAL is double or float (-DREAL=...). */
#ifndef REAL
#define REAL double
#endif
typedef REAL real;

#define A21 ((real)0.161)
#define A31 ((real)-0.008480655492356989)
#define A32 ((real)0.335480655492357)
#define A41 ((real)2.8971530571054935)
#define A42 ((real)-6.359448489975075)
#define A43 ((real)4.3622954328695815)
#define A51 ((real)5.325864828439257)
#define A52 ((real)-11.748883564062828)
#define A53 ((real)7.4955393428898365)
#define A54 ((real)-0.09249506636175525)
#define A61 ((real)5.86145544294642)
#define A62 ((real)-12.92096931784711)
#define A63 ((real)8.159367898576159)
#define A64 ((real)-0.071584973281401)
#define A65 ((real)-0.028269050394068383)
#define B1 ((real)0.09646076681806523)
#define B2 ((real)0.01)
#define B3 ((real)0.4798896504144996)
#define B4 ((real)1.379008574103742)
#define B5 ((real)-3.290069515436081)
#define B6 ((real)2.324710524099774)
#define E1 ((real)0.001780011052225777)
#define E2 ((real)0.0008164344596567469)
#define E3 ((real)-0.007880878010261995)
#define E4 ((real)0.1447110071732629)
#define E5 ((real)-0.5823571654525552)
#define E6 ((real)0.45808210592918697)
#define E7 ((real)(-1.0 / 66.0))

struct v3 { real x, y, z; };

__device__ __forceinline__ v3 f(v3 u, real rho) {
    const real sigma = (real)10.0, beta = (real)(8.0 / 3.0);
    v3 d;
    d.x = sigma * (u.y - u.x);
    d.y = u.x * (rho - u.z) - u.y;
    d.z = u.x * u.y - beta * u.z;
    return d;
}


/* One tsit5 step; returns the new state, k7 = f(t + h, new) and the error estimate terms. */
__device__ __forceinline__ v3 step(v3 u, v3 k1, real h, real rho, v3* k7, v3* err) {
    v3 t, k2, k3, k4, k5, k6, un;
#define S(dst, expr) dst.x = u.x + h * (expr(x)); dst.y = u.y + h * (expr(y)); dst.z = u.z + h * (expr(z));
#define E2_(c) (A21 * k1.c)
    S(t, E2_); k2 = f(t, rho);
#define E3_(c) (A31 * k1.c + A32 * k2.c)
    S(t, E3_); k3 = f(t, rho);
#define E4_(c) (A41 * k1.c + A42 * k2.c + A43 * k3.c)
    S(t, E4_); k4 = f(t, rho);
#define E5_(c) (A51 * k1.c + A52 * k2.c + A53 * k3.c + A54 * k4.c)
    S(t, E5_); k5 = f(t, rho);
#define E6_(c) (A61 * k1.c + A62 * k2.c + A63 * k3.c + A64 * k4.c + A65 * k5.c)
    S(t, E6_); k6 = f(t, rho);
#define E7_(c) (B1 * k1.c + B2 * k2.c + B3 * k3.c + B4 * k4.c + B5 * k5.c + B6 * k6.c)
    S(un, E7_); *k7 = f(un, rho);
#define ER(c) (h * (E1 * k1.c + E2 * k2.c + E3 * k3.c + E4 * k4.c + E5 * k5.c + E6 * k6.c + E7 * k7->c))
    err->x = ER(x); err->y = ER(y); err->z = ER(z);
    return un;
}

extern "C" __global__ void ndec_hw_fixed(long long n, const real* rhos, real dt, long long n_steps,
                                         real* out) {
    const long long k = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (k >= n) return;
    const real rho = rhos[k];
    v3 u = {(real)1.0, (real)0.0, (real)0.0};
    v3 k1 = f(u, rho), k7, err;
    real t = (real)0.0;
    for (long long s = 1; s <= n_steps; s++) {
        const real t_new = s == n_steps ? (real)1.0 : (real)s * dt;
        u = step(u, k1, t_new - t, rho, &k7, &err);
        k1 = k7;
        t = t_new;
    }
    out[3 * k] = u.x; out[3 * k + 1] = u.y; out[3 * k + 2] = u.z;
}

extern "C" __global__ void ndec_hw_adaptive(long long n, const real* rhos, real tol, real* out,
                                            long long* steps) {
    const long long k = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (k >= n) return;
    const real rho = rhos[k];
    v3 u = {(real)1.0, (real)0.0, (real)0.0};
    v3 k1 = f(u, rho), k7, err;
    real t = (real)0.0, h = (real)1e-3, ln_prev = (real)-9.210340371976182;
    int rejected = 0;
    long long n_steps = 0;
    const real b1 = (real)0.7 / (real)5.0, b2 = (real)0.4 / (real)5.0;
    while (t < (real)1.0 && n_steps < 1000000) {
        int last = 0;
        if (t + h >= (real)1.0) { h = (real)1.0 - t; last = 1; }
        const v3 un = step(u, k1, h, rho, &k7, &err);
        n_steps++;
        const real sx = err.x / (tol + tol * fmax(fabs(u.x), fabs(un.x)));
        const real sy = err.y / (tol + tol * fmax(fabs(u.y), fabs(un.y)));
        const real sz = err.z / (tol + tol * fmax(fabs(u.z), fabs(un.z)));
        const real e = sqrt((sx * sx + sz * sz + sy * sy) / (real)3.0);
        if (e <= (real)1.0) {
            const real le = log(e);
            real fac = (real)0.9 * exp(b2 * ln_prev - b1 * le);
            fac = fmin(fmax(fac, (real)0.2), (real)10.0);
            if (rejected) fac = fmin(fac, (real)1.0);
            ln_prev = fmax(le, (real)-9.210340371976182);
            rejected = 0;
            u = un; k1 = k7; t = last ? (real)1.0 : t + h;
            h *= fac;
        } else {
            h *= fmin(fmax((real)0.9 * exp(-b1 * log(e)), (real)0.2), (real)1.0);
            rejected = 1;
        }
    }
    out[3 * k] = u.x; out[3 * k + 1] = u.y; out[3 * k + 2] = u.z;
    steps[k] = n_steps;
}
