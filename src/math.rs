//! The scalar semantics of every operation in the language, in one place.
//!
//! Constant folding, the reference interpreter and the Cranelift JIT (through its shim
//! table) all call these functions, which is what makes their results bit-identical.
//! Nothing here may use fused multiply-add or reassociate.

use crate::sema::model::{Cmp, Func1, Op2};

/// `x^n` for an integer constant exponent: binary powering by repeated multiplication.
/// The order of multiplications is part of the semantics (the JIT emits the same sequence).
pub fn powi(x: f64, n: i32) -> f64 {
    if n < 0 {
        return 1.0 / powi(x, n.unsigned_abs() as i32);
    }
    let mut n = n as u32;
    let mut result: Option<f64> = None;
    let mut base = x;
    while n > 0 {
        if n & 1 == 1 {
            result = Some(match result {
                None => base,
                Some(r) => r * base,
            });
        }
        n >>= 1;
        if n > 0 {
            base *= base;
        }
    }
    result.unwrap_or(1.0)
}

/// Largest |n| for which `x^n` with a literal integer n uses [`powi`].
pub const POWI_LIMIT: i32 = 64;

/// An integer exponent that `x^e` computes by [`powi`], if `e` is one.
pub fn as_powi_exponent(e: f64) -> Option<i32> {
    (e.fract() == 0.0 && e.abs() <= POWI_LIMIT as f64).then_some(e as i32)
}

/// `x^e` for an exponent known at compile time: [`powi`] for an integer |e| <= 64,
/// else `powf`. (`x^e` with a run-time exponent is always `powf`.)
pub fn pow_const(x: f64, e: f64) -> f64 {
    match as_powi_exponent(e) {
        Some(n) => powi(x, n),
        None => x.powf(e),
    }
}

pub fn sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// log(1 + exp(x)), without overflow for large x.
pub fn softplus(x: f64) -> f64 {
    if x > 0.0 {
        x + (-x).exp().ln_1p()
    } else {
        x.exp().ln_1p()
    }
}

/// max(x, 0) that lets NaN through.
pub fn relu(x: f64) -> f64 {
    if x < 0.0 { 0.0 } else { x }
}

/// IEEE 754-2019 `minimum`: NaN if either is NaN, and -0 < +0.
pub fn fmin(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        return f64::NAN;
    }
    if a == b {
        // Equal values differ only in the sign of zero: min takes the negative one.
        return f64::from_bits(a.to_bits() | b.to_bits());
    }
    if a < b { a } else { b }
}

/// IEEE 754-2019 `maximum`: NaN if either is NaN, and +0 > -0.
pub fn fmax(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        return f64::NAN;
    }
    if a == b {
        return f64::from_bits(a.to_bits() & b.to_bits());
    }
    if a > b { a } else { b }
}

/// tanh: for |x| ≤ 0.625 x + x³·P(x²)/Q(x²) with the classic Cephes rational
/// coefficients, beyond it 1 − 2/(e^{2|x|} + 1) with the sign restored; ±0 and tiny |x|
/// return x, |x| > 22 returns ±1 (tanh(22) rounds to 1), NaN stays NaN. Within 2 ulp of
/// glibc's tanh (see the test) and about twice as fast: MLP vector fields spend most of
/// their time here.
#[allow(clippy::excessive_precision)]
pub fn tanh(x: f64) -> f64 {
    let a = x.abs();
    if a > 0.625 {
        if a > 22.0 {
            return 1.0f64.copysign(x);
        }
        let z = (2.0 * a).exp();
        return (1.0 - 2.0 / (z + 1.0)).copysign(x);
    }
    if a < 1e-8 {
        return x;
    }
    let z = x * x;
    let p =
        (-9.64399179425052238628E-1 * z - 9.92877231001918586564E1) * z - 1.61468768441708447952E3;
    let q = ((z + 1.12811678491632931402E2) * z + 2.23548839060100448583E3) * z
        + 4.84406305325125486048E3;
    x + x * z * (p / q)
}

/// Whether a `rows × cols` matrix–vector product (or its transpose) is a *large layer*,
/// computed by [`matvec`] / [`mat_t_vec`] with faer's kernel (SIMD, fused multiply-add, its
/// own order of summation) instead of one left-to-right sum per entry. The rule depends on
/// the shape only, so every CPU back end — the interpreter and the JIT, which both call these
/// two functions — gives the same bits. (Both dimensions at least 16 keeps such a product in
/// memory in the JIT's schedule.)
pub fn is_large_layer(rows: usize, cols: usize) -> bool {
    rows >= 16 && cols >= 16 && rows * cols >= 4096
}

/// `out = m x` for a large layer: `m` row-major `rows × cols`, `x` of length `cols`.
pub fn matvec(m: &[f64], x: &[f64], rows: usize, cols: usize, out: &mut [f64]) {
    let m = faer::MatRef::from_row_major_slice(&m[..rows * cols], rows, cols);
    let x = faer::MatRef::from_column_major_slice(&x[..cols], cols, 1);
    let out = faer::MatMut::from_column_major_slice_mut(&mut out[..rows], rows, 1);
    faer::linalg::matmul::matmul(out, faer::Accum::Replace, m, x, 1.0, faer::Par::Seq);
}

/// `out = mᵀ y` for a large layer: `m` row-major `rows × cols`, `y` of length `rows`.
pub fn mat_t_vec(m: &[f64], y: &[f64], rows: usize, cols: usize, out: &mut [f64]) {
    let m = faer::MatRef::from_row_major_slice(&m[..rows * cols], rows, cols);
    let y = faer::MatRef::from_column_major_slice(&y[..rows], rows, 1);
    let out = faer::MatMut::from_column_major_slice_mut(&mut out[..cols], cols, 1);
    faer::linalg::matmul::matmul(
        out,
        faer::Accum::Replace,
        m.transpose(),
        y,
        1.0,
        faer::Par::Seq,
    );
}

/// `xs[k] = apply1(f, xs[k])` for every entry (the function chosen once, not per entry).
pub fn apply1_slice(f: Func1, xs: &mut [f64]) {
    match f {
        Func1::Tanh => xs.iter_mut().for_each(|x| *x = tanh(*x)),
        f => xs.iter_mut().for_each(|x| *x = apply1(f, *x)),
    }
}

pub fn apply1(f: Func1, x: f64) -> f64 {
    match f {
        Func1::Neg => -x,
        Func1::Exp => x.exp(),
        Func1::Log => x.ln(),
        Func1::Sqrt => x.sqrt(),
        Func1::Sin => x.sin(),
        Func1::Cos => x.cos(),
        Func1::Tan => x.tan(),
        Func1::Tanh => tanh(x),
        Func1::Sigmoid => sigmoid(x),
        Func1::Softplus => softplus(x),
        Func1::Relu => relu(x),
        Func1::Abs => x.abs(),
    }
}

pub fn apply2(op: Op2, a: f64, b: f64) -> f64 {
    match op {
        Op2::Add => a + b,
        Op2::Sub => a - b,
        Op2::Mul => a * b,
        Op2::Div => a / b,
        Op2::Pow => a.powf(b),
        Op2::Min => fmin(a, b),
        Op2::Max => fmax(a, b),
    }
}

/// A comparison as a number: 1 if it holds, 0 otherwise (NaN compares false).
pub fn compare(c: Cmp, a: f64, b: f64) -> f64 {
    let holds = match c {
        Cmp::Lt => a < b,
        Cmp::Le => a <= b,
        Cmp::Gt => a > b,
        Cmp::Ge => a >= b,
    };
    if holds { 1.0 } else { 0.0 }
}

/// `ifelse`: a mask entry of 0 picks `b`, anything else `a`.
pub fn select(mask: f64, a: f64, b: f64) -> f64 {
    if mask != 0.0 { a } else { b }
}

/// The sum of a sequence, left to right from its first entry (0 for none). `sum`, `dot`
/// and each row of a matrix–vector product accumulate in exactly this order.
pub fn sum(mut xs: impl Iterator<Item = f64>) -> f64 {
    match xs.next() {
        None => 0.0,
        Some(first) => xs.fold(first, |s, x| s + x),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn powi_matches_multiplication() {
        let x = 1.1_f64;
        assert_eq!(powi(x, 0), 1.0);
        assert_eq!(powi(x, 1), x);
        assert_eq!(powi(x, 2), x * x);
        assert_eq!(powi(x, 3), x * (x * x));
        assert_eq!(powi(x, -2), 1.0 / (x * x));
        assert!((powi(x, 7) - x.powi(7)).abs() < 1e-15);
    }

    #[test]
    fn min_max_follow_ieee_2019() {
        assert!(fmin(f64::NAN, 1.0).is_nan());
        assert!(fmax(1.0, f64::NAN).is_nan());
        assert!(fmin(0.0, -0.0).is_sign_negative());
        assert!(fmax(-0.0, 0.0).is_sign_positive());
        assert_eq!(fmin(2.0, 3.0), 2.0);
        assert_eq!(fmax(2.0, 3.0), 3.0);
    }

    #[test]
    fn activations_are_stable() {
        assert_eq!(softplus(1000.0), 1000.0);
        assert!(softplus(-1000.0) >= 0.0);
        assert!((softplus(0.0) - 2f64.ln()).abs() < 1e-16);
        assert_eq!(sigmoid(-1000.0), 0.0);
        assert_eq!(sigmoid(1000.0), 1.0);
        assert!(relu(f64::NAN).is_nan());
    }
}

#[cfg(test)]
mod tanh_tests {
    use super::tanh;

    fn ulps(a: f64, b: f64) -> f64 {
        ((a - b) / (b.abs() * f64::EPSILON).max(f64::MIN_POSITIVE)).abs()
    }

    #[test]
    fn tanh_is_within_two_ulp_of_libm_and_keeps_special_values() {
        let mut worst = 0.0f64;
        let mut x = -25.0;
        while x < 25.0 {
            worst = worst.max(ulps(tanh(x), x.tanh()));
            x += 3.1e-4;
        }
        for k in 0..4000 {
            let x = 1e-9 * k as f64 + 0.6249;
            worst = worst.max(ulps(tanh(x), x.tanh()));
            let y = 1e-10 * k as f64;
            worst = worst.max(ulps(tanh(y), y.tanh()));
        }
        assert!(worst <= 2.0, "{worst} ulp");
        assert!(tanh(-0.0).is_sign_negative() && tanh(-0.0) == 0.0);
        assert_eq!(tanh(f64::INFINITY), 1.0);
        assert_eq!(tanh(f64::NEG_INFINITY), -1.0);
        assert!(tanh(f64::NAN).is_nan());
    }
}
