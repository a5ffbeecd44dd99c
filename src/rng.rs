//! Counter-based random numbers (Philox4x32-10, Salmon et al. 2011).
//!
//! A draw is a pure function of (key, counter): trajectory k of an ensemble keys its
//! draws by (seed, k), so any trajectory can be replayed alone, on any thread or device,
//! and get the same numbers.

const M0: u32 = 0xD251_1F53;
const M1: u32 = 0xCD9E_8D57;
const W0: u32 = 0x9E37_79B9;
const W1: u32 = 0xBB67_AE85;

/// Philox4x32 with 10 rounds: four 32-bit outputs for a 128-bit counter and a 64-bit key.
#[inline]
pub fn philox4x32(counter: [u32; 4], key: [u32; 2]) -> [u32; 4] {
    let mut c = counter;
    let mut k = key;
    for round in 0..10 {
        if round > 0 {
            k[0] = k[0].wrapping_add(W0);
            k[1] = k[1].wrapping_add(W1);
        }
        let p0 = (M0 as u64) * (c[0] as u64);
        let p1 = (M1 as u64) * (c[2] as u64);
        let (hi0, lo0) = ((p0 >> 32) as u32, p0 as u32);
        let (hi1, lo1) = ((p1 >> 32) as u32, p1 as u32);
        c = [hi1 ^ c[1] ^ k[0], lo1, hi0 ^ c[3] ^ k[1], lo0];
    }
    c
}

/// A stream of draws for one (seed, stream) pair; `index` selects independent blocks.
#[derive(Clone, Copy, Debug)]
pub struct Stream {
    pub seed: u64,
    pub stream: u64,
}

impl Stream {
    pub fn new(seed: u64, stream: u64) -> Stream {
        Stream { seed, stream }
    }

    #[inline]
    fn block(&self, index: u64) -> [u32; 4] {
        let counter = [
            index as u32,
            (index >> 32) as u32,
            self.stream as u32,
            (self.stream >> 32) as u32,
        ];
        philox4x32(counter, [self.seed as u32, (self.seed >> 32) as u32])
    }

    /// Two uniforms in (0, 1) (never exactly 0 or 1), 53 bits each, from block `index`.
    pub fn uniforms(&self, index: u64) -> (f64, f64) {
        let b = self.block(index);
        (to_unit(b[0], b[1]), to_unit(b[2], b[3]))
    }

    /// A uniform in (0, 1) from block `index`.
    pub fn uniform(&self, index: u64) -> f64 {
        self.uniforms(index).0
    }

    /// A standard normal from block `index` (Box–Muller on the block's two uniforms).
    pub fn normal(&self, index: u64) -> f64 {
        let (u1, u2) = self.uniforms(index);
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// Two independent standard normals from block `index` (both Box–Muller outputs; the
    /// first equals [`Stream::normal`]).
    pub fn normals(&self, index: u64) -> (f64, f64) {
        let (u1, u2) = self.uniforms(index);
        let r = (-2.0 * u1.ln()).sqrt();
        let (s, c) = (std::f64::consts::TAU * u2).sin_cos();
        (r * c, r * s)
    }
}

/// Normals by Doornik's ZIGNOR ziggurat (128 layers; "An improved ziggurat method to
/// generate normal random samples", 2005), fed by Philox: normal number `q` of a stream is a
/// pure function of (seed, stream, q). The fast path (98.8% of draws) takes the 64-bit half
/// `q mod 2` of block `q / 2`: 7 bits pick the layer, the top 53 bits the abscissa. The rest
/// (wedge and tail tests) take block q of a side stream (the stream id with bit 63 and the
/// attempt number set), so they never collide with fast-path blocks. Stream ids must stay
/// below 2⁵⁸.
#[derive(Clone, Debug)]
pub struct Gaussians {
    stream: Stream,
    /// The block last fetched, and its index.
    cached: (u64, [u32; 4]),
}

const ZIG_C: usize = 128;
/// The ziggurat's tail boundary R (the CUDA steppers embed it, see [`ziggurat_tables`]).
pub const ZIG_R: f64 = 3.442_619_855_899;
const ZIG_V: f64 = 9.912_563_035_262_17e-3;

struct ZigTables {
    x: [f64; ZIG_C + 1],
    r: [f64; ZIG_C],
}

/// The ziggurat's layer abscissae x[0..=128] and ratios r[i] = x[i+1]/x[i], as this process
/// computed them: the CUDA steppers embed these exact numbers so their normals are the CPU's.
pub fn ziggurat_tables() -> (&'static [f64; ZIG_C + 1], &'static [f64; ZIG_C]) {
    let t = zig_tables();
    (&t.x, &t.r)
}

fn zig_tables() -> &'static ZigTables {
    static T: std::sync::OnceLock<ZigTables> = std::sync::OnceLock::new();
    T.get_or_init(|| {
        let mut x = [0.0; ZIG_C + 1];
        let mut f = (-0.5 * ZIG_R * ZIG_R).exp();
        x[0] = ZIG_V / f;
        x[1] = ZIG_R;
        x[ZIG_C] = 0.0;
        for i in 2..ZIG_C {
            x[i] = (-2.0 * (ZIG_V / x[i - 1] + f).ln()).sqrt();
            f = (-0.5 * x[i] * x[i]).exp();
        }
        let mut r = [0.0; ZIG_C];
        for i in 0..ZIG_C {
            r[i] = x[i + 1] / x[i];
        }
        ZigTables { x, r }
    })
}

impl Gaussians {
    pub fn new(stream: Stream) -> Gaussians {
        Gaussians {
            stream,
            cached: (u64::MAX, stream.block(u64::MAX)),
        }
    }

    /// Normals number q0, q0 + 1, … into `out` (the same values as [`Gaussians::at`]), the
    /// Philox blocks first in one tight loop the compiler can vectorise, then the ziggurat.
    pub fn fill(&mut self, q0: u64, out: &mut [f64]) {
        const CH: usize = 64;
        let mut words = [0u64; 2 * CH];
        let t = zig_tables();
        let mut q = q0;
        for chunk in out.chunks_mut(2 * CH - 2) {
            let b0 = q >> 1;
            let nb = ((q + chunk.len() as u64 - 1) >> 1) - b0 + 1;
            for k in 0..nb as usize {
                let b = self.stream.block(b0 + k as u64);
                words[2 * k] = ((b[0] as u64) << 32) | b[1] as u64;
                words[2 * k + 1] = ((b[2] as u64) << 32) | b[3] as u64;
            }
            let off = (q & 1) as usize;
            for (j, o) in chunk.iter_mut().enumerate() {
                let (i, u) = split(words[off + j]);
                *o = if u.abs() < t.r[i] {
                    u * t.x[i]
                } else {
                    self.slow(q + j as u64, i, u, t)
                };
            }
            q += chunk.len() as u64;
        }
    }

    /// Standard normal number `q`.
    pub fn at(&mut self, q: u64) -> f64 {
        let bi = q >> 1;
        if self.cached.0 != bi {
            self.cached = (bi, self.stream.block(bi));
        }
        let b = self.cached.1;
        let w = if q & 1 == 0 {
            ((b[0] as u64) << 32) | b[1] as u64
        } else {
            ((b[2] as u64) << 32) | b[3] as u64
        };
        let t = zig_tables();
        let (i, u) = split(w);
        if u.abs() < t.r[i] {
            return u * t.x[i];
        }
        self.slow(q, i, u, t)
    }

    #[cold]
    fn slow(&self, q: u64, mut i: usize, mut u: f64, t: &ZigTables) -> f64 {
        let mut attempt = 0u64;
        loop {
            // Slow-path blocks: stream word with bit 63 and the attempt (mod 32) in bits
            // 58..63 (stream ids stay below 2⁵⁸), the index q (mixed after 32 attempts).
            let side = Stream::new(
                self.stream.seed,
                self.stream.stream | (1 << 63) | ((attempt & 31) << 58),
            );
            let b = side.block(q.wrapping_add((attempt >> 5).wrapping_mul(0x9E37_79B9_7F4A_7C15)));
            attempt += 1;
            if i == 0 {
                // The tail beyond R (Marsaglia's method), on this block's two uniforms.
                let x = to_unit(b[0], b[1]).ln() / ZIG_R;
                let y = to_unit(b[2], b[3]).ln();
                if -2.0 * y >= x * x {
                    return if u < 0.0 { x - ZIG_R } else { ZIG_R - x };
                }
                continue;
            }
            let x = u * t.x[i];
            let f0 = (-0.5 * (t.x[i] * t.x[i] - x * x)).exp();
            let f1 = (-0.5 * (t.x[i + 1] * t.x[i + 1] - x * x)).exp();
            if f1 + to_unit(b[0], b[1]) * (f0 - f1) < 1.0 {
                return x;
            }
            // A fresh candidate from the block's other half.
            (i, u) = split(((b[2] as u64) << 32) | b[3] as u64);
            if u.abs() < t.r[i] {
                return u * t.x[i];
            }
        }
    }
}

/// A layer (low 7 bits) and an abscissa in (−1, 1) (top 53 bits) from 64 random bits.
fn split(w: u64) -> (usize, f64) {
    let i = (w & 0x7F) as usize;
    let unit = ((w >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
    (i, 2.0 * unit - 1.0)
}

fn to_unit(a: u32, b: u32) -> f64 {
    let bits = ((a as u64) << 21) ^ (b as u64 >> 11); // 53 random bits
    ((bits & ((1u64 << 53) - 1)) as f64 + 0.5) / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn philox_matches_the_published_known_answers() {
        // Known-answer vectors from the Random123 distribution (kat_vectors, philox4x32_10).
        assert_eq!(
            philox4x32([0, 0, 0, 0], [0, 0]),
            [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]
        );
        assert_eq!(
            philox4x32([u32::MAX; 4], [u32::MAX; 2]),
            [0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd]
        );
        assert_eq!(
            philox4x32(
                [0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344],
                [0xa4093822, 0x299f31d0]
            ),
            [0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1]
        );
    }

    #[test]
    fn uniforms_and_normals_have_the_right_moments() {
        let s = Stream::new(42, 7);
        let n = 200_000;
        let (mut m, mut m2, mut nm, mut nm2) = (0.0, 0.0, 0.0, 0.0);
        for i in 0..n {
            let u = s.uniform(i);
            assert!(u > 0.0 && u < 1.0);
            m += u;
            m2 += u * u;
            let z = s.normal(i);
            nm += z;
            nm2 += z * z;
        }
        let nf = n as f64;
        // Standard errors: 0.29/sqrt(n) ≈ 6.5e-4 for the uniform mean; 5 sigma bounds.
        assert!((m / nf - 0.5).abs() < 5.0 * 0.2887 / nf.sqrt());
        assert!((m2 / nf - 1.0 / 3.0).abs() < 5.0 * 0.2981 / nf.sqrt());
        assert!((nm / nf).abs() < 5.0 / nf.sqrt());
        assert!((nm2 / nf - 1.0).abs() < 5.0 * 2f64.sqrt() / nf.sqrt());
    }

    #[test]
    fn ziggurat_normals_have_the_normal_moments_and_tails() {
        // 10⁶ draws: mean, variance, 4th moment, and the tail masses P(|Z| > 2) = 0.0455 and
        // P(|Z| > 3.442…) (the ziggurat's tail region) = 5.76e-4, each within 5 standard errors.
        let s = Stream::new(9, 1);
        let mut g = Gaussians::new(s);
        let n = 1_000_000u64;
        let (mut m1, mut m2, mut m4, mut t2, mut tr) = (0.0, 0.0, 0.0, 0.0, 0.0);
        for q in 0..n {
            let z = g.at(q);
            m1 += z;
            m2 += z * z;
            m4 += z * z * z * z;
            t2 += (z.abs() > 2.0) as u8 as f64;
            tr += (z.abs() > ZIG_R) as u8 as f64;
        }
        let nf = n as f64;
        assert!((m1 / nf).abs() < 5.0 / nf.sqrt());
        assert!((m2 / nf - 1.0).abs() < 5.0 * 2f64.sqrt() / nf.sqrt());
        assert!((m4 / nf - 3.0).abs() < 5.0 * 96f64.sqrt() / nf.sqrt());
        let p2 = 0.045_500_263_896_358_4;
        assert!((t2 / nf - p2).abs() < 5.0 * (p2 * (1.0 - p2) / nf).sqrt());
        let pr = 5.761_085e-4;
        assert!((tr / nf - pr).abs() < 5.0 * (pr / nf).sqrt(), "{}", tr / nf);
        // `fill` gives the same numbers as `at`, from any start.
        let mut f = vec![0.0; 1000];
        Gaussians::new(s).fill(37, &mut f);
        for (j, z) in f.iter().enumerate() {
            assert_eq!(z.to_bits(), g.at(37 + j as u64).to_bits());
        }
        // Pure function of q: any order, any cache state.
        let mut h = Gaussians::new(s);
        for q in [77u64, 3, 999_999, 3, 12] {
            assert_eq!(h.at(q).to_bits(), Gaussians::new(s).at(q).to_bits());
        }
    }

    #[test]
    fn streams_are_independent_of_evaluation_order() {
        let a = Stream::new(1, 3);
        let forward: Vec<f64> = (0..10).map(|i| a.uniform(i)).collect();
        let backward: Vec<f64> = (0..10).rev().map(|i| a.uniform(i)).collect();
        assert_eq!(forward, backward.into_iter().rev().collect::<Vec<_>>());
        assert_ne!(Stream::new(1, 3).uniform(0), Stream::new(1, 4).uniform(0));
        assert_ne!(Stream::new(1, 3).uniform(0), Stream::new(2, 3).uniform(0));
    }
}
