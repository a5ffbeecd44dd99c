//! Random IR functions compiled by the Cranelift JIT agree with the interpreter bit for bit.

use ndec::backend::cranelift;
use ndec::backend::{Kernel, interp};
use ndec::ir::{Builder, Function, Node, NodeId};
use ndec::sema::model::{Cmp, Func1, Op2};
use proptest::prelude::*;

const FUNCS: [Func1; 12] = [
    Func1::Neg,
    Func1::Exp,
    Func1::Log,
    Func1::Sqrt,
    Func1::Sin,
    Func1::Cos,
    Func1::Tan,
    Func1::Tanh,
    Func1::Sigmoid,
    Func1::Softplus,
    Func1::Relu,
    Func1::Abs,
];
const OPS: [Op2; 7] = [
    Op2::Add,
    Op2::Sub,
    Op2::Mul,
    Op2::Div,
    Op2::Pow,
    Op2::Min,
    Op2::Max,
];
const CMPS: [Cmp; 4] = [Cmp::Lt, Cmp::Le, Cmp::Gt, Cmp::Ge];
const SPECIAL: [f64; 16] = [
    0.0,
    -0.0,
    f64::INFINITY,
    f64::NEG_INFINITY,
    f64::NAN,
    1e308,
    -1e308,
    5e-324,
    -5e-324,
    1e-300,
    1.0,
    -1.0,
    0.5,
    2.0,
    -2.5,
    700.0,
];

/// xorshift64*: deterministic from the proptest seed.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next() % (hi - lo + 1) as u64) as i64
    }
    fn chance(&mut self, pct: u64) -> bool {
        self.next() % 100 < pct
    }
    fn value(&mut self) -> f64 {
        if self.chance(25) {
            SPECIAL[self.below(SPECIAL.len())]
        } else {
            (self.next() >> 11) as f64 / (1u64 << 53) as f64 * 6.0 - 3.0
        }
    }
}

struct RandomFn {
    r: Rng,
    b: Builder,
    pool: Vec<NodeId>,
    u: NodeId,
    p: NodeId,
}

impl RandomFn {
    fn len(&self, id: NodeId) -> usize {
        self.b.len_of(id)
    }

    fn any(&mut self) -> NodeId {
        // Prefer recent nodes so chains get deep.
        let n = self.pool.len();
        if self.r.chance(60) {
            let k = self.r.below(n.min(6));
            self.pool[n - 1 - k]
        } else {
            self.pool[self.r.below(n)]
        }
    }

    fn scalar(&mut self) -> NodeId {
        let c: Vec<NodeId> = self
            .pool
            .iter()
            .copied()
            .filter(|&i| self.len(i) == 1)
            .collect();
        if c.is_empty() || self.r.chance(20) {
            let v = self.r.value();
            self.b.constant(v)
        } else {
            c[self.r.below(c.len())]
        }
    }

    /// A node of length `len`: an existing one, or a fresh gather / iota / broadcast.
    fn of_len(&mut self, len: usize) -> NodeId {
        if len == 1 {
            return self.scalar();
        }
        let c: Vec<NodeId> = self
            .pool
            .iter()
            .copied()
            .filter(|&i| self.len(i) == len)
            .collect();
        if !c.is_empty() && self.r.chance(70) {
            return c[self.r.below(c.len())];
        }
        match self.r.below(4) {
            0 => {
                let start = self.r.range(-5, 5);
                self.b.push(Node::Iota {
                    start,
                    len: len as u32,
                })
            }
            1 => {
                let s = self.scalar();
                self.b.push(Node::Broadcast(s, len as u32))
            }
            _ => {
                let src = if self.r.chance(50) { self.u } else { self.p };
                self.gather_of(src, len).unwrap_or_else(|| {
                    let s = self.scalar();
                    self.b.push(Node::Broadcast(s, len as u32))
                })
            }
        }
    }

    /// A gather of exactly `len` entries from `v`, with a random stride, if one fits.
    fn gather_of(&mut self, v: NodeId, len: usize) -> Option<NodeId> {
        let n = self.len(v) as i64;
        let len = len as i64;
        for _ in 0..8 {
            let stride = self.r.range(-3, 3);
            let span = stride.abs() * (len - 1);
            if span >= n {
                continue;
            }
            let lo = if stride < 0 { span } else { 0 };
            let hi = if stride > 0 { n - 1 - span } else { n - 1 };
            let start = self.r.range(lo, hi);
            return Some(self.b.push(Node::Gather {
                v,
                start: start as u32,
                stride: stride as i32,
                len: len as u32,
            }));
        }
        None
    }

    fn step(&mut self) {
        let node = match self.r.below(18) {
            0 => {
                let v = self.r.value();
                self.b.constant(v)
            }
            1 => {
                let len = self.r.range(1, 40) as usize;
                self.of_len(len)
            }
            2 => {
                let v = self.any();
                let k = self.r.below(self.len(v).max(1)) as u32;
                if self.len(v) == 0 {
                    return;
                }
                self.b.push(Node::Index { v, k })
            }
            3 => {
                let v = self.any();
                let len = self.r.range(1, 40) as usize;
                match self.gather_of(v, len) {
                    Some(g) => g,
                    None => return,
                }
            }
            4 => {
                let k = self.r.range(2, 4);
                let parts = (0..k).map(|_| self.any()).collect();
                self.b.push(Node::Concat(parts))
            }
            5 | 6 => {
                let x = self.any();
                let f = FUNCS[self.r.below(FUNCS.len())];
                self.b.push(Node::Unary(f, x))
            }
            7..=9 => {
                let a = self.any();
                let l = self.len(a);
                let b = if self.r.chance(30) {
                    self.scalar()
                } else {
                    self.of_len(l)
                };
                let (a, b) = if self.r.chance(50) { (a, b) } else { (b, a) };
                let op = OPS[self.r.below(OPS.len())];
                self.b.push(Node::Binary(op, a, b))
            }
            10 => {
                let x = self.any();
                let n = self.r.range(-5, 8) as i32;
                self.b.push(Node::PowI(x, n))
            }
            11 => {
                let a = self.any();
                let l = self.len(a);
                let b = if self.r.chance(30) {
                    self.scalar()
                } else {
                    self.of_len(l)
                };
                let c = CMPS[self.r.below(4)];
                self.b.push(Node::Compare(c, a, b))
            }
            12 => {
                let a = self.any();
                let l = self.len(a);
                let c = if self.r.chance(30) {
                    self.scalar()
                } else {
                    self.of_len(l)
                };
                let b = if self.r.chance(30) {
                    self.scalar()
                } else {
                    self.of_len(l)
                };
                self.b.push(Node::Select(c, a, b))
            }
            13 => {
                let x = self.any();
                self.b.push(Node::Sum(x))
            }
            14 => {
                let a = self.any();
                let l = self.len(a);
                let b = self.of_len(l);
                self.b.push(Node::Dot(a, b))
            }
            16 => {
                let a = self.any();
                let b = self.any();
                if self.len(a) * self.len(b) > 200 {
                    return;
                }
                self.b.push(Node::Outer(a, b))
            }
            17 => {
                let rows = self.r.range(1, 12) as u32;
                let cols = self.r.range(1, 12) as u32;
                let m = match self.gather_of(self.p, (rows * cols) as usize) {
                    Some(g) => g,
                    None => return,
                };
                let y = self.of_len(rows as usize);
                self.b.push(Node::MatTVec { m, y, rows, cols })
            }
            _ => {
                let rows = self.r.range(1, 12) as u32;
                let cols = self.r.range(1, 12) as u32;
                let mlen = (rows * cols) as usize;
                let mut m = match self.gather_of(self.p, mlen) {
                    Some(g) => g,
                    None => return,
                };
                if self.r.chance(30) {
                    // A computed (fused) matrix.
                    let s = self.scalar();
                    m = self.b.push(Node::Binary(Op2::Mul, m, s));
                }
                let x = self.of_len(cols as usize);
                self.b.push(Node::MatVec { m, x, rows, cols })
            }
        };
        if self.len(node) > 0 {
            self.pool.push(node);
        }
    }
}

fn random_function(seed: u64) -> Function {
    let mut r = Rng::new(seed);
    let nu = r.range(1, 40) as usize;
    let np = r.range(150, 200) as usize;
    let mut b = Builder::new("random");
    let t = b.arg("t", 1);
    let u = b.arg("u", nu);
    let p = b.arg("p", np);
    let steps = r.range(4, 30);
    let mut g = RandomFn {
        r,
        b,
        pool: vec![t, u, p],
        u,
        p,
    };
    for _ in 0..steps {
        g.step();
    }
    let nout = g.r.range(1, 3);
    for k in 0..nout {
        let o = g.any();
        g.b.output(&format!("o{k}"), o);
    }
    g.b.finish()
}

fn same(a: f64, b: f64) -> bool {
    (a.is_nan() && b.is_nan()) || a.to_bits() == b.to_bits()
}

fn check(f: &Function, seed: u64) -> Result<(), TestCaseError> {
    ndec::ir::validate(f)
        .map_err(|e| TestCaseError::fail(format!("generator made invalid IR: {e}")))?;
    let k = cranelift::compile(f).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let mut r = Rng::new(seed ^ 0xDEAD_BEEF);
    let mut scratch = Vec::new();
    for _ in 0..3 {
        let args: Vec<Vec<f64>> = f
            .args
            .iter()
            .map(|a| (0..a.len).map(|_| r.value()).collect())
            .collect();
        let arefs: Vec<&[f64]> = args.iter().map(|a| a.as_slice()).collect();
        let want = interp::eval(f, &arefs);
        let mut got: Vec<Vec<f64>> = f.outputs.iter().map(|(b, _)| vec![0.125; b.len]).collect();
        let mut orefs: Vec<&mut [f64]> = got.iter_mut().map(|o| o.as_mut_slice()).collect();
        k.call(&arefs, &mut orefs, &mut scratch);
        for (o, (w, g)) in want.iter().zip(&got).enumerate() {
            for (i, (x, y)) in w.iter().zip(g).enumerate() {
                if !same(*x, *y) {
                    return Err(TestCaseError::fail(format!(
                        "output {o}[{i}]: interpreter {x:e} ({:#x}), jit {y:e} ({:#x})\nargs {args:?}\n{}",
                        x.to_bits(),
                        y.to_bits(),
                        f.to_text()
                    )));
                }
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    #[test]
    fn jit_matches_interpreter_on_random_ir(seed in any::<u64>()) {
        let f = random_function(seed);
        check(&f, seed)?;
    }
}

/// The generator reaches every kind of node (so the property above covers them).
#[test]
fn generator_covers_every_node_kind() {
    let mut seen = [false; 17];
    for seed in 0..400u64 {
        let f = random_function(seed);
        for n in &f.nodes {
            let k = match n {
                Node::Const(_) => 0,
                Node::Arg(_) => 1,
                Node::Iota { .. } => 2,
                Node::Index { .. } => 3,
                Node::Gather { stride, .. } if *stride < 0 => 4,
                Node::Gather { .. } => 5,
                Node::Concat(_) => 6,
                Node::Broadcast(..) => 7,
                Node::Unary(..) => 8,
                Node::Binary(..) => 9,
                Node::PowI(..) => 10,
                Node::Compare(..) => 11,
                Node::Select(..) => 12,
                Node::Sum(_) | Node::Dot(..) => 13,
                Node::MatVec { .. } => 14,
                Node::MatTVec { .. } => 15,
                Node::Outer(..) => 16,
            };
            seen[k] = true;
        }
    }
    assert!(seen.iter().all(|s| *s), "{seen:?}");
}

/// Hand-picked special values through every scalar operation, vectorised (looped) and not.
#[test]
fn every_op_on_special_values() {
    for len in [1usize, 5, 16] {
        let n = SPECIAL.len();
        let mut b = Builder::new("ops");
        let x = b.arg("x", n * n);
        let y = b.arg("y", n * n);
        let (xs, ys) = if len == 1 {
            (
                b.push(Node::Index { v: x, k: 3 }),
                b.push(Node::Index { v: y, k: 7 }),
            )
        } else {
            (
                b.push(Node::Gather {
                    v: x,
                    start: 0,
                    stride: 1,
                    len: len as u32,
                }),
                b.push(Node::Gather {
                    v: y,
                    start: (n * n - 1) as u32,
                    stride: -1,
                    len: len as u32,
                }),
            )
        };
        let mut outs = Vec::new();
        for f in FUNCS {
            outs.push(b.push(Node::Unary(f, xs)));
        }
        for op in OPS {
            outs.push(b.push(Node::Binary(op, xs, ys)));
        }
        for c in CMPS {
            outs.push(b.push(Node::Compare(c, xs, ys)));
        }
        outs.push(b.push(Node::Select(xs, ys, xs)));
        for e in -5..=8 {
            outs.push(b.push(Node::PowI(xs, e)));
        }
        for (i, o) in outs.into_iter().enumerate() {
            b.output(&format!("o{i}"), o);
        }
        let f = b.finish();
        let k = cranelift::compile(&f).unwrap();
        // Every pair of special values, in windows of `len`.
        let xv: Vec<f64> = (0..n * n).map(|i| SPECIAL[i / n]).collect();
        let yv: Vec<f64> = (0..n * n).map(|i| SPECIAL[n - 1 - (i % n)]).collect();
        let mut start = 0;
        while start + len <= n * n {
            let mut xw = xv.clone();
            xw.rotate_left(start);
            let mut yw = yv.clone();
            yw.rotate_right(start);
            let args: [&[f64]; 2] = [&xw, &yw];
            let want = interp::eval(&f, &args);
            let mut got: Vec<Vec<f64>> = f.outputs.iter().map(|(b, _)| vec![0.0; b.len]).collect();
            let mut orefs: Vec<&mut [f64]> = got.iter_mut().map(|o| o.as_mut_slice()).collect();
            k.call(&args, &mut orefs, &mut Vec::new());
            for (o, (w, g)) in want.iter().zip(&got).enumerate() {
                for (i, (a, c)) in w.iter().zip(g).enumerate() {
                    assert!(
                        same(*a, *c),
                        "len {len}, output {o}[{i}] at {start}: {a:e} vs {c:e}"
                    );
                }
            }
            start += len.max(3);
        }
    }
}
