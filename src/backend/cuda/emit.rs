//! CUDA C text for one IR [`Function`], placed by [`crate::backend::schedule`].
//!
//! Layout of the emitted function (one statement per node or loop, in arena order):
//! - arguments and outputs become named pointers (`u`, `p`, `out_du`);
//! - a length-1 node is a `const` scalar `vN`;
//! - a node the schedule fuses (views and elementwise chains) has no statement: it is
//!   written inline, as an expression at an index, wherever it is read;
//! - any other vector is materialised by a loop: into its schedule slot (an output, a
//!   range of a `Concat` destination, or `scratch`), else into a local array `vN[len]`.
//!   `Concat`, `MatVec`, `MatTVec` and `Outer` are always materialised.
//!
//! Scalar semantics follow [`crate::math`]: `tanh`, `sigmoid`, `softplus`, `relu`,
//! IEEE 754-2019 `min`/`max` and integer powers are emitted as helper functions with the
//! same formulas; sums, dots and matrix rows accumulate from the first term in order.

use super::Precision;
use crate::backend::schedule::{Buf, Place, Schedule, Slot, UNROLL, schedule};
use crate::ir::{Function, Node, NodeId};
use crate::sema::model::{Cmp, Func1, Op2};
use std::fmt::Write;

/// An affine index `Σ coeff·var + add` (vars are loop counters).
#[derive(Clone, Debug, PartialEq)]
struct Ix {
    terms: Vec<(&'static str, i64)>,
    add: i64,
}

impl Ix {
    fn constant(k: i64) -> Ix {
        Ix {
            terms: vec![],
            add: k,
        }
    }
    fn var(v: &'static str) -> Ix {
        Ix {
            terms: vec![(v, 1)],
            add: 0,
        }
    }
    fn scale_add(&self, mul: i64, add: i64) -> Ix {
        Ix {
            terms: self
                .terms
                .iter()
                .map(|&(v, c)| (v, c * mul))
                .filter(|&(_, c)| c != 0)
                .collect(),
            add: self.add * mul + add,
        }
    }
    fn plus(&self, other: &Ix) -> Ix {
        let mut terms = self.terms.clone();
        for &(v, c) in &other.terms {
            match terms.iter_mut().find(|(w, _)| *w == v) {
                Some(t) => t.1 += c,
                None => terms.push((v, c)),
            }
        }
        terms.retain(|&(_, c)| c != 0);
        Ix {
            terms,
            add: self.add + other.add,
        }
    }
    fn render(&self) -> String {
        let mut s = String::new();
        for &(v, c) in &self.terms {
            let (neg, mag) = (c < 0, c.unsigned_abs());
            if s.is_empty() {
                if neg {
                    s.push('-');
                }
            } else {
                s.push_str(if neg { " - " } else { " + " });
            }
            if mag != 1 {
                let _ = write!(s, "{mag}*");
            }
            s.push_str(v);
        }
        if s.is_empty() {
            return self.add.to_string();
        }
        if self.add > 0 {
            let _ = write!(s, " + {}", self.add);
        } else if self.add < 0 {
            let _ = write!(s, " - {}", self.add.unsigned_abs());
        }
        s
    }
}

struct Emitter<'a> {
    f: &'a Function,
    s: Schedule,
    p: Precision,
    /// Whether a vector node is read through an inline expression (no storage).
    fused: Vec<bool>,
    arg_names: Vec<String>,
    out_names: Vec<String>,
    body: String,
}

/// A C identifier from an IR name (`u_bar`, `du`; anything else becomes `_`).
fn ident(name: &str) -> String {
    let mut s: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if s.is_empty() || s.starts_with(|c: char| c.is_ascii_digit()) {
        s.insert(0, '_');
    }
    s
}

/// Names that are unique and clash with nothing the emitter declares.
fn unique_names(raw: impl Iterator<Item = String>, taken: &mut Vec<String>) -> Vec<String> {
    let reserved = ["args", "outs", "scratch", "i", "r", "c", "acc", "n", "b"];
    raw.map(|n| {
        let mut name = n.clone();
        let mut k = 1;
        while taken.contains(&name)
            || reserved.contains(&name.as_str())
            || (name.starts_with('v') && name[1..].chars().all(|c| c.is_ascii_digit()))
        {
            name = format!("{n}_{k}");
            k += 1;
        }
        taken.push(name.clone());
        name
    })
    .collect()
}

impl<'a> Emitter<'a> {
    fn new(f: &'a Function, p: Precision) -> Self {
        let s = schedule(f, UNROLL);
        let fused = (0..f.nodes.len())
            .map(|i| {
                s.places[i] == Place::Fused
                    && !matches!(
                        f.nodes[i],
                        Node::Concat(_)
                            | Node::MatVec { .. }
                            | Node::MatTVec { .. }
                            | Node::Outer(..)
                    )
            })
            .collect();
        let mut taken = vec![];
        let arg_names = unique_names(f.args.iter().map(|a| ident(&a.name)), &mut taken);
        let out_names = unique_names(
            f.outputs
                .iter()
                .map(|(b, _)| format!("out_{}", ident(&b.name))),
            &mut taken,
        );
        Emitter {
            f,
            s,
            p,
            fused,
            arg_names,
            out_names,
            body: String::new(),
        }
    }

    fn ty(&self) -> &'static str {
        self.p.c_type()
    }

    fn lit(&self, x: f64) -> String {
        self.p.literal(x)
    }

    fn buf(&self, slot: Slot) -> String {
        let base = match slot.buf {
            Buf::Scratch => "scratch".to_string(),
            Buf::Output(o) => self.out_names[o as usize].clone(),
        };
        if slot.offset == 0 {
            base
        } else {
            format!("{base} + {}", slot.offset)
        }
    }

    /// The value of node `id` at index `ix` (any index for a scalar).
    fn at(&self, id: NodeId, ix: &Ix) -> String {
        let i = id.index();
        match self.f.node(id) {
            Node::Arg(k) => {
                let ix = if self.f.len_of(id) == 1 {
                    Ix::constant(0)
                } else {
                    ix.clone()
                };
                format!("{}[{}]", self.arg_names[*k as usize], ix.render())
            }
            _ if self.f.len_of(id) == 1 => format!("v{i}"),
            _ if self.fused[i] => self.elem(id, ix),
            _ => format!("v{i}[{}]", ix.render()),
        }
    }

    /// The expression of an elementwise or view node at `ix`, over its operands' values.
    fn elem(&self, id: NodeId, ix: &Ix) -> String {
        let f = self.f;
        match f.node(id) {
            Node::Const(b) => self.lit(f64::from_bits(*b)),
            Node::Arg(_) => self.at(id, ix),
            Node::Iota { start, .. } => {
                format!("({})({})", self.ty(), ix.scale_add(1, *start).render())
            }
            Node::Index { v, k } => self.at(*v, &Ix::constant(*k as i64)),
            Node::Gather {
                v, start, stride, ..
            } => self.at(*v, &ix.scale_add(*stride as i64, *start as i64)),
            Node::Broadcast(x, _) => self.at(*x, ix),
            Node::Unary(op, x) => {
                let x = self.at(*x, ix);
                let sfx = self.p.suffix();
                match op {
                    Func1::Neg => format!("-({x})"),
                    Func1::Exp => format!("exp{sfx}({x})"),
                    Func1::Log => format!("log{sfx}({x})"),
                    Func1::Sqrt => format!("sqrt{sfx}({x})"),
                    Func1::Sin => format!("sin{sfx}({x})"),
                    Func1::Cos => format!("cos{sfx}({x})"),
                    Func1::Tan => format!("tan{sfx}({x})"),
                    Func1::Abs => format!("fabs{sfx}({x})"),
                    Func1::Tanh => format!("ndec_tanh({x})"),
                    Func1::Sigmoid => format!("ndec_sigmoid({x})"),
                    Func1::Softplus => format!("ndec_softplus({x})"),
                    Func1::Relu => format!("ndec_relu({x})"),
                }
            }
            Node::Binary(op, a, b) => {
                let (a, b) = (self.at(*a, ix), self.at(*b, ix));
                match op {
                    Op2::Add => format!("({a} + {b})"),
                    Op2::Sub => format!("({a} - {b})"),
                    Op2::Mul => format!("({a} * {b})"),
                    Op2::Div => format!("({a} / {b})"),
                    Op2::Pow => format!("pow{}({a}, {b})", self.p.suffix()),
                    Op2::Min => format!("ndec_fmin({a}, {b})"),
                    Op2::Max => format!("ndec_fmax({a}, {b})"),
                }
            }
            Node::PowI(x, n) => format!("ndec_powi({}, {n})", self.at(*x, ix)),
            Node::Compare(c, a, b) => {
                let op = match c {
                    Cmp::Lt => "<",
                    Cmp::Le => "<=",
                    Cmp::Gt => ">",
                    Cmp::Ge => ">=",
                };
                format!(
                    "({} {op} {} ? {} : {})",
                    self.at(*a, ix),
                    self.at(*b, ix),
                    self.lit(1.0),
                    self.lit(0.0)
                )
            }
            Node::Select(c, a, b) => format!(
                "({} != {} ? {} : {})",
                self.at(*c, ix),
                self.lit(0.0),
                self.at(*a, ix),
                self.at(*b, ix)
            ),
            Node::Sum(_)
            | Node::Dot(..)
            | Node::Concat(_)
            | Node::MatVec { .. }
            | Node::MatTVec { .. }
            | Node::Outer(..) => unreachable!("materialised by a statement"),
        }
    }

    fn line(&mut self, indent: usize, text: &str) {
        for _ in 0..indent {
            self.body.push_str("    ");
        }
        self.body.push_str(text);
        self.body.push('\n');
    }

    /// `for (int var = from; var < to; var++)`.
    fn for_head(var: &str, from: usize, to: usize) -> String {
        format!("for (int {var} = {from}; {var} < {to}; {var}++) {{")
    }

    /// Emits `acc = Σ_k term(k)` in order from the first term (`0` when there are none).
    fn reduction(
        &mut self,
        indent: usize,
        acc: &str,
        n: usize,
        var: &'static str,
        term: impl Fn(&Self, &Ix) -> String,
    ) {
        if n == 0 {
            let z = self.lit(0.0);
            self.line(indent, &format!("{acc} = {z};"));
            return;
        }
        let first = term(self, &Ix::constant(0));
        self.line(indent, &format!("{acc} = {first};"));
        if n > 1 {
            let t = term(self, &Ix::var(var));
            self.line(indent, &Self::for_head(var, 1, n));
            self.line(indent + 1, &format!("{acc} += {t};"));
            self.line(indent, "}");
        }
    }

    /// The statement(s) computing node `id` into `dst` (`vN` for a scalar, else a
    /// pointer or array named `vN`).
    fn node(&mut self, id: NodeId) {
        let f = self.f;
        let i = id.index();
        let len = f.len_of(id);
        let ty = self.ty();
        let scalar = len == 1;
        let name = format!("v{i}");
        if scalar {
            match f.node(id) {
                Node::Sum(_) | Node::Dot(..) | Node::MatVec { .. } | Node::MatTVec { .. } => {
                    self.line(1, &format!("{ty} {name};"));
                }
                Node::Concat(parts) => {
                    let p = parts.iter().find(|p| f.len_of(**p) == 1).copied();
                    let e = p.map_or_else(|| self.lit(0.0), |p| self.at(p, &Ix::constant(0)));
                    self.line(1, &format!("const {ty} {name} = {e};"));
                    return;
                }
                Node::Outer(a, b) => {
                    let z = Ix::constant(0);
                    let e = format!("({} * {})", self.at(*a, &z), self.at(*b, &z));
                    self.line(1, &format!("const {ty} {name} = {e};"));
                    return;
                }
                _ => {
                    let e = self.elem(id, &Ix::constant(0));
                    self.line(1, &format!("const {ty} {name} = {e};"));
                    return;
                }
            }
        } else {
            match self.s.slot(id) {
                Some(slot) => {
                    let b = self.buf(slot);
                    self.line(1, &format!("{ty}* const {name} = {b};"));
                }
                None => self.line(1, &format!("{ty} {name}[{len}];")),
            }
        }
        let dst = |ix: &str| {
            if scalar {
                name.clone()
            } else {
                format!("{name}[{ix}]")
            }
        };
        match f.node(id).clone() {
            Node::Sum(x) => {
                let n = f.len_of(x);
                self.reduction(1, &name, n, "i", |e, k| e.at(x, k));
            }
            Node::Dot(a, b) => {
                let n = f.len_of(a);
                self.reduction(1, &name, n, "i", |e, k| {
                    format!("{} * {}", e.at(a, k), e.at(b, k))
                });
            }
            Node::MatVec { m, x, rows, cols } => {
                let (rows, cols) = (rows as usize, cols as usize);
                let row = if rows == 1 {
                    Ix::constant(0)
                } else {
                    Ix::var("r")
                };
                if rows > 1 {
                    self.line(1, &Self::for_head("r", 0, rows));
                }
                let ind = if rows > 1 { 2 } else { 1 };
                let acc = if rows > 1 { "acc" } else { name.as_str() }.to_string();
                if rows > 1 {
                    self.line(ind, &format!("{ty} acc;"));
                }
                let base = row.scale_add(cols as i64, 0);
                self.reduction(ind, &acc, cols, "c", |e, k| {
                    format!("{} * {}", e.at(m, &base.plus(k)), e.at(x, k))
                });
                if rows > 1 {
                    self.line(ind, &format!("{} = acc;", dst("r")));
                    self.line(1, "}");
                }
            }
            Node::MatTVec { m, y, rows, cols } => {
                let (rows, cols) = (rows as usize, cols as usize);
                let col = if cols == 1 {
                    Ix::constant(0)
                } else {
                    Ix::var("c")
                };
                if cols > 1 {
                    self.line(1, &Self::for_head("c", 0, cols));
                }
                let ind = if cols > 1 { 2 } else { 1 };
                let acc = if cols > 1 { "acc" } else { name.as_str() }.to_string();
                if cols > 1 {
                    self.line(ind, &format!("{ty} acc;"));
                }
                self.reduction(ind, &acc, rows, "r", |e, k| {
                    let mix = k.scale_add(cols as i64, 0).plus(&col);
                    format!("{} * {}", e.at(m, &mix), e.at(y, k))
                });
                if cols > 1 {
                    self.line(ind, &format!("{} = acc;", dst("c")));
                    self.line(1, "}");
                }
            }
            Node::Outer(a, b) => {
                let nb = f.len_of(b);
                self.line(1, &Self::for_head("r", 0, f.len_of(a)));
                self.line(2, &Self::for_head("c", 0, nb));
                let e = format!(
                    "{} * {}",
                    self.at(a, &Ix::var("r")),
                    self.at(b, &Ix::var("c"))
                );
                self.line(3, &format!("{name}[{nb}*r + c] = {e};"));
                self.line(2, "}");
                self.line(1, "}");
            }
            Node::Concat(parts) => {
                let dest = self.s.slot(id);
                let mut off = 0;
                for p in parts {
                    let pl = f.len_of(p);
                    let in_place = dest.is_some() && self.s.slot(p) == dest.map(|d| d.at(off));
                    if pl == 1 {
                        let e = self.at(p, &Ix::constant(0));
                        self.line(1, &format!("{name}[{off}] = {e};"));
                    } else if pl > 1 && !in_place {
                        let e = self.at(p, &Ix::var("i"));
                        let d = Ix::var("i").scale_add(1, off as i64).render();
                        self.line(1, &Self::for_head("i", 0, pl));
                        self.line(2, &format!("{name}[{d}] = {e};"));
                        self.line(1, "}");
                    }
                    off += pl;
                }
            }
            _ => {
                let e = self.elem(id, &Ix::var("i"));
                self.line(1, &Self::for_head("i", 0, len));
                self.line(2, &format!("{name}[i] = {e};"));
                self.line(1, "}");
            }
        }
    }

    fn emit(mut self, fn_name: &str) -> (String, usize) {
        let f = self.f;
        let ty = self.ty();
        for (k, a) in f.args.iter().enumerate() {
            let n = &self.arg_names[k];
            self.line(
                1,
                &format!("const {ty}* const {n} = args[{k}]; /* {} */", a.len),
            );
        }
        for (k, (b, _)) in f.outputs.iter().enumerate() {
            let n = self.out_names[k].clone();
            self.line(1, &format!("{ty}* const {n} = outs[{k}]; /* {} */", b.len));
        }
        for i in 0..f.nodes.len() {
            let id = NodeId(i as u32);
            let len = f.len_of(id);
            if len == 0 || matches!(f.node(id), Node::Arg(_)) || (len > 1 && self.fused[i]) {
                continue;
            }
            self.node(id);
        }
        // Outputs not computed in place.
        for (k, (b, id)) in f.outputs.iter().enumerate() {
            let out = self.out_names[k].clone();
            let home = Slot {
                buf: Buf::Output(k as u32),
                offset: 0,
            };
            if b.len == 0 || (b.len > 1 && self.s.slot(*id) == Some(home)) {
                continue;
            }
            if b.len == 1 {
                let e = self.at(*id, &Ix::constant(0));
                self.line(1, &format!("{out}[0] = {e};"));
            } else {
                let e = self.at(*id, &Ix::var("i"));
                self.line(1, &Self::for_head("i", 0, b.len));
                self.line(2, &format!("{out}[i] = {e};"));
                self.line(1, "}");
            }
        }
        let mut text = format!("/* {}: ", f.name);
        let sig = |bs: Vec<(&str, usize)>| {
            bs.iter()
                .map(|(n, l)| format!("{n}[{l}]"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let _ = writeln!(
            text,
            "({}) = f({}); scratch {} */",
            sig(f
                .outputs
                .iter()
                .map(|(b, _)| (b.name.as_str(), b.len))
                .collect()),
            sig(f.args.iter().map(|b| (b.name.as_str(), b.len)).collect()),
            self.s.scratch_len
        );
        let _ = writeln!(
            text,
            "__device__ void {fn_name}(const {ty}* const* args, {ty}* const* outs, {ty}* scratch) {{"
        );
        if self.s.scratch_len == 0 {
            text.push_str("    (void)scratch;\n");
        }
        text.push_str(&self.body);
        text.push_str("}\n");
        (text, self.s.scratch_len)
    }
}

/// The `__device__` function of `f`, named `fn_name`, and its scratch length (entries).
pub fn device_function(f: &Function, fn_name: &str, p: Precision) -> (String, usize) {
    Emitter::new(f, p).emit(fn_name)
}

/// A `__global__` wrapper running `fn_name` once per batch entry `b < n` (one thread each):
/// argument `k` of entry `b` starts at `args[k] + b*len_k`, likewise the outputs; scratch is
/// a per-thread local array.
pub fn batch_kernel(f: &Function, fn_name: &str, scratch_len: usize, p: Precision) -> String {
    let ty = p.c_type();
    let mut s = String::new();
    let _ = writeln!(
        s,
        "extern \"C\" __global__ void {fn_name}_batch(const {ty}* const* args, {ty}* const* outs, int n) {{"
    );
    s.push_str("    const int b = blockIdx.x * blockDim.x + threadIdx.x;\n");
    s.push_str("    if (b >= n) return;\n");
    let na = f.args.len().max(1);
    let no = f.outputs.len().max(1);
    let _ = writeln!(s, "    const {ty}* a[{na}];");
    for (k, a) in f.args.iter().enumerate() {
        let _ = writeln!(s, "    a[{k}] = args[{k}] + (long long)b * {};", a.len);
    }
    let _ = writeln!(s, "    {ty}* o[{no}];");
    for (k, (o, _)) in f.outputs.iter().enumerate() {
        let _ = writeln!(s, "    o[{k}] = outs[{k}] + (long long)b * {};", o.len);
    }
    let _ = writeln!(s, "    {ty} scratch[{}];", scratch_len.max(1));
    let _ = writeln!(s, "    {fn_name}(a, o, scratch);");
    s.push_str("}\n");
    s
}

/// The coefficients of [`crate::math::tanh`], written as there.
#[allow(clippy::excessive_precision)]
const TANH_P: [f64; 3] = [
    -9.64399179425052238628E-1,
    9.92877231001918586564E1,
    1.61468768441708447952E3,
];
#[allow(clippy::excessive_precision)]
const TANH_Q: [f64; 3] = [
    1.12811678491632931402E2,
    2.23548839060100448583E3,
    4.84406305325125486048E3,
];

/// The helper functions every emitted kernel may call: [`crate::math`] in CUDA C.
pub fn prelude(p: Precision) -> String {
    let t = p.c_type();
    let l = |x: f64| p.literal(x);
    let sfx = p.suffix();
    let (to_bits, from_bits) = match p {
        Precision::F64 => ("__double_as_longlong", "__longlong_as_double"),
        Precision::F32 => ("__float_as_int", "__int_as_float"),
    };
    let mut s = String::new();
    let _ = write!(
        s,
        "/* ndec scalar semantics (src/math.rs) in {t}. */
__device__ __forceinline__ {t} ndec_powi({t} x, int n) {{
    if (n < 0) return {one} / ndec_powi(x, -n);
    {t} result = {one};
    int have = 0;
    {t} base = x;
    while (n > 0) {{
        if (n & 1) {{ result = have ? result * base : base; have = 1; }}
        n >>= 1;
        if (n > 0) base *= base;
    }}
    return result;
}}
__device__ __forceinline__ {t} ndec_sigmoid({t} x) {{
    if (x >= {zero}) return {one} / ({one} + exp{sfx}(-x));
    const {t} e = exp{sfx}(x);
    return e / ({one} + e);
}}
__device__ __forceinline__ {t} ndec_softplus({t} x) {{
    return x > {zero} ? x + log1p{sfx}(exp{sfx}(-x)) : log1p{sfx}(exp{sfx}(x));
}}
__device__ __forceinline__ {t} ndec_relu({t} x) {{ return x < {zero} ? {zero} : x; }}
__device__ __forceinline__ {t} ndec_fmin({t} a, {t} b) {{
    if (isnan(a) || isnan(b)) return a + b;
    if (a == b) return {from_bits}({to_bits}(a) | {to_bits}(b));
    return a < b ? a : b;
}}
__device__ __forceinline__ {t} ndec_fmax({t} a, {t} b) {{
    if (isnan(a) || isnan(b)) return a + b;
    if (a == b) return {from_bits}({to_bits}(a) & {to_bits}(b));
    return a > b ? a : b;
}}
/* Cephes rational form for |x| <= 0.625, else 1 - 2/(e^(2|x|) + 1) with the sign of x. */
__device__ __forceinline__ {t} ndec_tanh({t} x) {{
    const {t} a = fabs{sfx}(x);
    if (a > {c0625}) {{
        if (a > {c22}) return copysign{sfx}({one}, x);
        const {t} z = exp{sfx}({two} * a);
        return copysign{sfx}({one} - {two} / (z + {one}), x);
    }}
    if (a < {tiny}) return x;
    const {t} z = x * x;
    const {t} p = ({p0} * z - {p1}) * z - {p2};
    const {t} q = ((z + {q0}) * z + {q1}) * z + {q2};
    return x + x * z * (p / q);
}}
",
        zero = l(0.0),
        one = l(1.0),
        two = l(2.0),
        c0625 = l(0.625),
        c22 = l(22.0),
        tiny = l(1e-8),
        p0 = l(TANH_P[0]),
        p1 = l(TANH_P[1]),
        p2 = l(TANH_P[2]),
        q0 = l(TANH_Q[0]),
        q1 = l(TANH_Q[1]),
        q2 = l(TANH_Q[2]),
    );
    s
}
