/* ndec random numbers on the device: Philox4x32-10 and Doornik's ziggurat normals, a
 * transcription of src/rng.rs (Stream::block, Gaussians::at, Gaussians::slow, split,
 * to_unit). Normal number q of stream (seed, stream) is the same double as on the CPU, so
 * a GPU trajectory replays on the CPU. Always in double, whatever ndec_real is.
 *
 * The instantiation defines the ziggurat tables computed by the CPU (src/rng.rs):
 *   ndec_zig_x[129], ndec_zig_r[128], NDEC_ZIG_R.
 */

typedef unsigned int ndec_u32;
typedef unsigned long long ndec_u64;

struct ndec_block { ndec_u32 w[4]; };

/* Philox4x32 with 10 rounds (Salmon et al. 2011). */
__device__ __forceinline__ ndec_block ndec_philox(ndec_u32 c0, ndec_u32 c1, ndec_u32 c2,
                                                  ndec_u32 c3, ndec_u32 k0, ndec_u32 k1) {
    for (int round = 0; round < 10; round++) {
        if (round > 0) {
            k0 += 0x9E3779B9u;
            k1 += 0xBB67AE85u;
        }
        const ndec_u64 p0 = (ndec_u64)0xD2511F53u * c0;
        const ndec_u64 p1 = (ndec_u64)0xCD9E8D57u * c2;
        const ndec_u32 hi0 = (ndec_u32)(p0 >> 32), lo0 = (ndec_u32)p0;
        const ndec_u32 hi1 = (ndec_u32)(p1 >> 32), lo1 = (ndec_u32)p1;
        c0 = hi1 ^ c1 ^ k0;
        c1 = lo1;
        c2 = hi0 ^ c3 ^ k1;
        c3 = lo0;
    }
    ndec_block b;
    b.w[0] = c0;
    b.w[1] = c1;
    b.w[2] = c2;
    b.w[3] = c3;
    return b;
}

/* Block `index` of stream (seed, stream): counter (index, stream), key seed. */
__device__ __forceinline__ ndec_block ndec_stream_block(ndec_u64 seed, ndec_u64 stream,
                                                        ndec_u64 index) {
    return ndec_philox((ndec_u32)index, (ndec_u32)(index >> 32), (ndec_u32)stream,
                       (ndec_u32)(stream >> 32), (ndec_u32)seed, (ndec_u32)(seed >> 32));
}

/* A uniform in (0, 1) from 53 of the 64 bits (a, b). */
__device__ __forceinline__ double ndec_to_unit(ndec_u32 a, ndec_u32 b) {
    const ndec_u64 bits = ((ndec_u64)a << 21) ^ ((ndec_u64)b >> 11);
    return ((double)(bits & ((1ull << 53) - 1)) + 0.5) / 9007199254740992.0;
}

/* A layer (low 7 bits) and an abscissa in (-1, 1) (top 53 bits). */
__device__ __forceinline__ int ndec_zig_split(ndec_u64 w, double* u) {
    const double unit = ((double)(w >> 11) + 0.5) / 9007199254740992.0;
    *u = 2.0 * unit - 1.0;
    return (int)(w & 0x7F);
}

/* The wedge and tail tests, on blocks of side streams (src/rng.rs: Gaussians::slow). */
__device__ __noinline__ double ndec_zig_slow(ndec_u64 seed, ndec_u64 stream, ndec_u64 q, int i,
                                             double u) {
    ndec_u64 attempt = 0;
    for (;;) {
        const ndec_u64 side = stream | (1ull << 63) | ((attempt & 31) << 58);
        const ndec_block b =
            ndec_stream_block(seed, side, q + (attempt >> 5) * 0x9E3779B97F4A7C15ull);
        attempt++;
        if (i == 0) {
            const double x = log(ndec_to_unit(b.w[0], b.w[1])) / NDEC_ZIG_R;
            const double y = log(ndec_to_unit(b.w[2], b.w[3]));
            if (-2.0 * y >= x * x) return u < 0.0 ? x - NDEC_ZIG_R : NDEC_ZIG_R - x;
            continue;
        }
        const double x = u * ndec_zig_x[i];
        const double f0 = exp(-0.5 * (ndec_zig_x[i] * ndec_zig_x[i] - x * x));
        const double f1 = exp(-0.5 * (ndec_zig_x[i + 1] * ndec_zig_x[i + 1] - x * x));
        if (f1 + ndec_to_unit(b.w[0], b.w[1]) * (f0 - f1) < 1.0) return x;
        i = ndec_zig_split(((ndec_u64)b.w[2] << 32) | b.w[3], &u);
        if (fabs(u) < ndec_zig_r[i]) return u * ndec_zig_x[i];
    }
}

/* Standard normal number q of stream (seed, stream) (src/rng.rs: Gaussians::at). */
__device__ __forceinline__ double ndec_normal(ndec_u64 seed, ndec_u64 stream, ndec_u64 q) {
    const ndec_block b = ndec_stream_block(seed, stream, q >> 1);
    const ndec_u64 w = (q & 1) == 0 ? (((ndec_u64)b.w[0] << 32) | b.w[1])
                                    : (((ndec_u64)b.w[2] << 32) | b.w[3]);
    double u;
    const int i = ndec_zig_split(w, &u);
    if (fabs(u) < ndec_zig_r[i]) return u * ndec_zig_x[i];
    return ndec_zig_slow(seed, stream, q, i, u);
}

/* Normals keyed by a normal number, for tests and host replays: out[j] = normal q0 + j. */
extern "C" __global__ void ndec_normals(ndec_u64 seed, ndec_u64 stream, ndec_u64 q0,
                                        long long n, double* __restrict__ out) {
    const long long j = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (j < n) out[j] = ndec_normal(seed, stream, q0 + (ndec_u64)j);
}
