/* Host emulation of the CUDA C that ndec emits (tests only): with this header first, a
 * generated module compiles as plain C++ on the host (`c++ -ffp-contract=off`), and a
 * `__global__` kernel runs one "thread" per call with threadIdx.x set by the caller. In f64
 * the host's libm is the one the CPU solvers call, so results must match them bit for bit:
 * that checks the templates' transcription of the CPU loops without a GPU. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define __device__
#define __global__
#define __forceinline__ inline
#define __noinline__
#define __constant__

struct ndec_dim3 {
    unsigned int x, y, z;
};
static ndec_dim3 blockIdx = {0, 0, 0}, blockDim = {1, 1, 1}, threadIdx = {0, 0, 0};

static inline long long __double_as_longlong(double x) {
    long long r;
    memcpy(&r, &x, sizeof r);
    return r;
}
static inline double __longlong_as_double(long long x) {
    double r;
    memcpy(&r, &x, sizeof r);
    return r;
}
static inline int __float_as_int(float x) {
    int r;
    memcpy(&r, &x, sizeof r);
    return r;
}
static inline float __int_as_float(int x) {
    float r;
    memcpy(&r, &x, sizeof r);
    return r;
}

/* Runs `call` for threads 0..n-1 of one block. */
#define NDEC_HOST_LAUNCH(n, call)                                \
    do {                                                         \
        blockDim.x = (unsigned int)(n);                          \
        for (unsigned int th = 0; th < (unsigned int)(n); th++) { \
            threadIdx.x = th;                                    \
            call;                                                \
        }                                                        \
    } while (0)

static void ndec_print_bits(const double* x, long long n) {
    for (long long i = 0; i < n; i++) {
        unsigned long long b;
        memcpy(&b, &x[i], sizeof b);
        printf("%016llx\n", b);
    }
}
