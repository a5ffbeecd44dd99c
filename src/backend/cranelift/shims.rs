//! The one shim table: every transcendental the generated code calls, each a thin
//! `extern "C"` wrapper around exactly the function in [`crate::math`] that the interpreter
//! uses, so results are bit-identical.

use crate::math;
use crate::sema::model::{Func1, Op2};

extern "C" fn exp(x: f64) -> f64 {
    math::apply1(Func1::Exp, x)
}
extern "C" fn log(x: f64) -> f64 {
    math::apply1(Func1::Log, x)
}
extern "C" fn sin(x: f64) -> f64 {
    math::apply1(Func1::Sin, x)
}
extern "C" fn cos(x: f64) -> f64 {
    math::apply1(Func1::Cos, x)
}
extern "C" fn tan(x: f64) -> f64 {
    math::apply1(Func1::Tan, x)
}
extern "C" fn tanh(x: f64) -> f64 {
    math::apply1(Func1::Tanh, x)
}
extern "C" fn sigmoid(x: f64) -> f64 {
    math::apply1(Func1::Sigmoid, x)
}
extern "C" fn softplus(x: f64) -> f64 {
    math::apply1(Func1::Softplus, x)
}
extern "C" fn pow(a: f64, b: f64) -> f64 {
    math::apply2(Op2::Pow, a, b)
}

/// `xs[k] = f(xs[k])` over a whole materialised vector (a layer's activations): one call
/// instead of one per entry, and the loop over the entries is Rust's. `op` is the
/// function's [`index`] in the table; the values are [`math::apply1`]'s, so the interpreter
/// still agrees bit for bit.
extern "C" fn unary_slice(op: i64, xs: *mut f64, n: i64) {
    let f = match table().get(op as usize).map(|d| d.shim) {
        Some(Shim::Unary(f)) => f,
        _ => return,
    };
    // SAFETY: the generated code passes a pointer to `n` initialised entries of its own
    // scratch or output buffer (a node's slot, which the kernel ABI sized for it), and
    // nothing else reads or writes them during the call.
    let xs = unsafe { std::slice::from_raw_parts_mut(xs, n as usize) };
    math::apply1_slice(f, xs);
}

/// The whole-vector shim ([`unary_slice`]): its symbol name and address.
pub const UNARY_SLICE: (&str, *const u8) = (
    "ndec_unary_slice",
    unary_slice as extern "C" fn(i64, *mut f64, i64) as *const u8,
);

/// `out = m x` for a large layer ([`math::is_large_layer`]), `m` row-major `rows × cols`.
extern "C" fn matvec(m: *const f64, x: *const f64, rows: i64, cols: i64, out: *mut f64) {
    let (r, c) = (rows as usize, cols as usize);
    // SAFETY: the generated code passes pointers to the node's operands and its own slot:
    // `m` has r·c entries, `x` c and `out` r (the IR's validated lengths), `out` is a slot of
    // its own that no operand overlaps, and nothing else touches them during the call.
    let (m, x, out) = unsafe {
        (
            std::slice::from_raw_parts(m, r * c),
            std::slice::from_raw_parts(x, c),
            std::slice::from_raw_parts_mut(out, r),
        )
    };
    math::matvec(m, x, r, c, out);
}

/// `out = mᵀ y` for a large layer, `m` row-major `rows × cols`.
extern "C" fn mat_t_vec(m: *const f64, y: *const f64, rows: i64, cols: i64, out: *mut f64) {
    let (r, c) = (rows as usize, cols as usize);
    // SAFETY: as for `matvec`: `m` has r·c entries, `y` r and `out` c, `out` overlaps neither.
    let (m, y, out) = unsafe {
        (
            std::slice::from_raw_parts(m, r * c),
            std::slice::from_raw_parts(y, r),
            std::slice::from_raw_parts_mut(out, c),
        )
    };
    math::mat_t_vec(m, y, r, c, out);
}

/// The large-layer products ([`matvec`], [`mat_t_vec`]): symbol names and addresses.
pub const LAYER_PRODUCTS: [(&str, *const u8); 2] = [
    (
        "ndec_matvec",
        matvec as extern "C" fn(*const f64, *const f64, i64, i64, *mut f64) as *const u8,
    ),
    (
        "ndec_mat_t_vec",
        mat_t_vec as extern "C" fn(*const f64, *const f64, i64, i64, *mut f64) as *const u8,
    ),
];

/// A function the generated code calls by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shim {
    Unary(Func1),
    Pow,
}

/// Every shim: its index, symbol name, arity and address.
pub struct ShimDef {
    pub shim: Shim,
    pub name: &'static str,
    pub arity: usize,
    pub ptr: *const u8,
}

pub fn table() -> [ShimDef; 9] {
    let u = |f: Func1, name, p: extern "C" fn(f64) -> f64| ShimDef {
        shim: Shim::Unary(f),
        name,
        arity: 1,
        ptr: p as *const u8,
    };
    [
        u(Func1::Exp, "ndec_exp", exp),
        u(Func1::Log, "ndec_log", log),
        u(Func1::Sin, "ndec_sin", sin),
        u(Func1::Cos, "ndec_cos", cos),
        u(Func1::Tan, "ndec_tan", tan),
        u(Func1::Tanh, "ndec_tanh", tanh),
        u(Func1::Sigmoid, "ndec_sigmoid", sigmoid),
        u(Func1::Softplus, "ndec_softplus", softplus),
        ShimDef {
            shim: Shim::Pow,
            name: "ndec_pow",
            arity: 2,
            ptr: pow as extern "C" fn(f64, f64) -> f64 as *const u8,
        },
    ]
}

/// The position of a shim in [`table`].
pub fn index(s: Shim) -> usize {
    debug_assert!(table().iter().any(|d| d.shim == s) || matches!(s, Shim::Unary(_)));
    match s {
        Shim::Unary(Func1::Exp) => 0,
        Shim::Unary(Func1::Log) => 1,
        Shim::Unary(Func1::Sin) => 2,
        Shim::Unary(Func1::Cos) => 3,
        Shim::Unary(Func1::Tan) => 4,
        Shim::Unary(Func1::Tanh) => 5,
        Shim::Unary(Func1::Sigmoid) => 6,
        Shim::Unary(Func1::Softplus) => 7,
        Shim::Pow => 8,
        Shim::Unary(f) => panic!("{f:?} is compiled to instructions, not a shim"),
    }
}
