//! Cranelift IR for one [`Function`], following its [`Schedule`].
//!
//! The generated function is `fn(args: *const *const f64, outs: *const *mut f64,
//! scratch: *mut f64)`. Nodes are emitted in arena order: scalars become SSA values,
//! `Lanes` vectors one SSA value per entry, `Mem` vectors a loop (or unrolled sequence)
//! storing into their slot; `Fused` vectors are expanded lane by lane inside whichever loop
//! reads them. Every reduction (sum, dot, each matrix row) starts from its first term and
//! adds the next ones left to right, exactly as [`crate::math::sum`].

use super::shims::{self, Shim};
use crate::backend::schedule::{Buf, Place, Schedule, Slot};
use crate::ir::{Function, Node, NodeId};
use crate::sema::model::{Cmp, Func1, Op2};
use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::{self, BlockArg, FuncRef, InstBuilder, MemFlagsData, Value, types};
use cranelift_codegen::isa::TargetFrontendConfig;
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};

/// The shims a function calls (indexed as [`shims::table`]).
pub fn needed_shims(f: &Function) -> [bool; 9] {
    let mut need = [false; 9];
    for n in &f.nodes {
        let s = match n {
            Node::Unary(op, _) => match op {
                Func1::Neg | Func1::Abs | Func1::Sqrt | Func1::Relu => None,
                op => Some(Shim::Unary(*op)),
            },
            Node::Binary(Op2::Pow, ..) => Some(Shim::Pow),
            _ => None,
        };
        if let Some(s) = s {
            need[shims::index(s)] = true;
        }
    }
    need
}

/// A lane index: a compile-time constant, or `var * mul + add` for a loop counter `var`.
#[derive(Clone, Copy, Debug)]
enum Ix {
    Const(i64),
    Dyn { var: Value, mul: i64, add: i64 },
}

impl Ix {
    fn var(v: Value) -> Ix {
        Ix::Dyn {
            var: v,
            mul: 1,
            add: 0,
        }
    }
    /// `start + stride * self`.
    fn affine(self, stride: i64, start: i64) -> Ix {
        match self {
            Ix::Const(k) => Ix::Const(start + stride * k),
            Ix::Dyn { var, mul, add } => Ix::Dyn {
                var,
                mul: mul * stride,
                add: start + stride * add,
            },
        }
    }
}

/// Lanes per trip of an elementwise loop.
const LOOP_UNROLL: usize = 8;

/// Rows of a long-row matrix–vector product computed together (independent accumulators).
const ROW_BLOCK: usize = 8;

type Body<'x, 'a, 'b> = &'x mut dyn FnMut(&mut Gen<'a, 'b>, Ix, &[Value]) -> Vec<Value>;

/// The shims a function may call: one per scalar function (indexed as [`shims::table`])
/// and the whole-vector form of the unary ones.
pub struct Calls {
    pub scalar: [Option<FuncRef>; 9],
    pub slice: Option<FuncRef>,
    /// `ndec_matvec`, `ndec_mat_t_vec` ([`shims::LAYER_PRODUCTS`]) when the function has a
    /// large layer.
    pub layers: [Option<FuncRef>; 2],
}

pub struct Gen<'a, 'b> {
    f: &'a Function,
    s: &'a Schedule,
    b: FunctionBuilder<'b>,
    shims: [Option<FuncRef>; 9],
    slice_shim: Option<FuncRef>,
    layer_shims: [Option<FuncRef>; 2],
    scalars: Vec<Option<Value>>,
    lanes: Vec<Vec<Value>>,
    args: Vec<Value>,
    outs: Vec<Value>,
    scratch: Value,
    mem: MemFlagsData,
    /// Output entries stored as soon as their scalar is computed (see [`early_stores`]),
    /// per node, and all of them (the later writes of those entries are skipped).
    early: Vec<Vec<Slot>>,
    stored_early: std::collections::HashSet<Slot>,
    /// Scalars kept in the spill area (see [`spill_slots`]): their entry in it, and the
    /// area's address (taken once in the entry block: one address per entry would itself
    /// be thousands of values live across calls).
    spilled: Vec<Option<u32>>,
    spill_base: Option<Value>,
    /// Two-lane mode (see [`Gen::write`]): every value is an F64X2 holding the entries at
    /// `ix` and at [`second`]`(ix)` of the node being read.
    wide: bool,
}

/// The entry that the second lane of a two-lane value holds: the loop counter's next value,
/// i.e. `ix + mul` (a constant index is the same entry in both lanes).
fn second(ix: Ix) -> Ix {
    match ix {
        Ix::Const(k) => Ix::Const(k),
        Ix::Dyn { var, mul, add } => Ix::Dyn {
            var,
            mul,
            add: add + mul,
        },
    }
}

/// Fills `func` (whose signature is already set) with the code of `f`.
pub fn build(
    func: &mut ir::Function,
    fctx: &mut FunctionBuilderContext,
    f: &Function,
    s: &Schedule,
    calls: Calls,
    config: TargetFrontendConfig,
) {
    let mut b = FunctionBuilder::new(func, fctx);
    let entry = b.create_block();
    b.append_block_params_for_function_params(entry);
    b.switch_to_block(entry);
    let params = b.block_params(entry).to_vec();
    let (argv, outv, scratch) = (params[0], params[1], params[2]);
    let ptr = config.pointer_type();
    let mem = MemFlagsData::trusted();
    let ro = MemFlagsData::trusted().with_readonly();
    let args = (0..f.args.len())
        .map(|k| b.ins().load(ptr, ro, argv, (8 * k) as i32))
        .collect();
    let outs = (0..f.outputs.len())
        .map(|k| b.ins().load(ptr, ro, outv, (8 * k) as i32))
        .collect();
    let mut g = Gen {
        f,
        s,
        b,
        shims: calls.scalar,
        slice_shim: calls.slice,
        layer_shims: calls.layers,
        scalars: vec![None; f.nodes.len()],
        lanes: vec![Vec::new(); f.nodes.len()],
        args,
        outs,
        scratch,
        mem,
        early: early_stores(f, s),
        stored_early: early_stores(f, s).into_iter().flatten().collect(),
        spilled: spill_slots(f, s),
        spill_base: None,
        wide: false,
    };
    let entries = g.spilled.iter().flatten().max().map_or(0, |m| m + 1);
    if entries > 0 {
        use cranelift_codegen::ir::{StackSlotData, StackSlotKind};
        let data = StackSlotData::new(StackSlotKind::ExplicitSlot, 8 * entries, 3);
        let area = g.b.create_sized_stack_slot(data);
        g.spill_base = Some(g.b.ins().stack_addr(ptr, area, 0));
    }
    g.body();
    g.b.ins().return_(&[]);
    g.b.seal_all_blocks();
    g.b.finalize(config);
}

/// Which scalars are held across a call: read (directly or through fused nodes) after a
/// node whose code may call a shim (`sin`, `exp`, `pow`, a large layer). No float register
/// survives a call, so the register allocator would spill each of them around every call;
/// thousands of such split ranges make its work quadratic (a sum of N terms `sin(k*x)`
/// took O(N²) to compile). Storing them once to a stack slot ourselves is the same work at
/// run time and linear to compile.
///
/// Each gets an entry of the spill area, reused once its last reader has run, so the area
/// is as large as the most such values live at once, not their number.
fn spill_slots(f: &Function, s: &Schedule) -> Vec<Option<u32>> {
    // Values held across many calls are left to the register allocator: it spills each
    // once, in linear time (a deep expression's Jacobian keeps thousands of them); the
    // quadratic case is thousands of values that each cross a few calls.
    const SPILL_MAX_CALLS: u32 = 16;
    let n = f.nodes.len();
    let fused = |i: usize| matches!(s.places[i], Place::Fused);
    // Whether computing node i may call: a call op itself, or a fused operand that may.
    let mut may_call = vec![false; n];
    for i in 0..n {
        let own = match &f.nodes[i] {
            Node::Unary(op, _) => Gen::calls_shim(*op),
            Node::Binary(op, ..) => matches!(op, Op2::Pow),
            Node::MatVec { .. } | Node::MatTVec { .. } | Node::Outer(..) => true,
            _ => false,
        };
        may_call[i] = own
            || f.nodes[i]
                .children()
                .iter()
                .any(|c| fused(c.index()) && may_call[c.index()]);
    }
    // Calls at positions before each position (a fused node calls where it is read).
    let mut calls_before = vec![0u32; n + 2];
    for i in 0..n {
        let here = u32::from(may_call[i] && !fused(i));
        calls_before[i + 1] = calls_before[i] + here;
    }
    calls_before[n + 1] = calls_before[n];
    // The last position each node is read at, through fused consumers.
    let mut last = vec![0usize; n];
    for (_, id) in &f.outputs {
        last[id.index()] = n;
    }
    for j in (0..n).rev() {
        let at = if fused(j) { last[j] } else { j };
        for c in f.nodes[j].children() {
            last[c.index()] = last[c.index()].max(at);
        }
    }
    let crosses = |i: usize| {
        matches!(s.places[i], Place::Scalar)
            && last[i] > i + 1
            && (1..=SPILL_MAX_CALLS).contains(&(calls_before[last[i]] - calls_before[i + 1]))
    };
    // Linear scan: entries freed at their node's last read are reused by later nodes.
    let mut frees_at: Vec<Vec<u32>> = vec![Vec::new(); n + 1];
    let mut free: Vec<u32> = Vec::new();
    let mut next = 0u32;
    let mut slots = vec![None; n];
    for i in 0..n {
        free.append(&mut frees_at[i]);
        if crosses(i) {
            let e = free.pop().unwrap_or_else(|| {
                next += 1;
                next - 1
            });
            slots[i] = Some(e);
            frees_at[last[i]].push(e);
        }
    }
    slots
}

/// For each node, the output entries it is stored to the moment it is computed: the scalar
/// parts of an output concatenation. Stored at the end instead, every part would stay live
/// to the end of the function, and register allocation of thousands of live values is
/// quadratic (a model of N scalar states took O(N²) to compile). Outputs never alias the
/// arguments (the kernel ABI's buffers are distinct), so an early store changes no value.
fn early_stores(f: &Function, s: &Schedule) -> Vec<Vec<Slot>> {
    let mut early = vec![Vec::new(); f.nodes.len()];
    for (o, (_, id)) in f.outputs.iter().enumerate() {
        let Node::Concat(parts) = f.node(*id) else {
            continue;
        };
        let dest = Slot {
            buf: Buf::Output(o as u32),
            offset: 0,
        };
        let mut off = 0;
        for &p in parts {
            let n = f.len_of(p);
            if n == 1 && matches!(s.place(p), Place::Scalar) {
                early[p.index()].push(dest.at(off));
            }
            off += n;
        }
    }
    early
}

impl<'a, 'b> Gen<'a, 'b> {
    fn body(&mut self) {
        let f = self.f;
        for i in 0..f.nodes.len() {
            let id = NodeId(i as u32);
            match self.s.places[i] {
                Place::Empty | Place::Arg(_) | Place::Fused => {}
                Place::Scalar if self.reads_arg(id) => {
                    // Loaded where it is read (see `reads_arg`); early stores load it now.
                    for k in 0..self.early[i].len() {
                        let v = self.expand(id, Ix::Const(0));
                        self.store(self.early[i][k], Ix::Const(0), v);
                    }
                }
                Place::Scalar => {
                    let v = match f.node(id) {
                        Node::MatVec { m, x, cols, .. } => {
                            self.matvec_rows(*m, *x, 1, *cols as usize)[0]
                        }
                        _ => self.expand(id, Ix::Const(0)),
                    };
                    for k in 0..self.early[i].len() {
                        self.store(self.early[i][k], Ix::Const(0), v);
                    }
                    if self.spilled[i].is_some() {
                        self.spill(i, v);
                    } else {
                        self.scalars[i] = Some(v);
                    }
                }
                Place::Lanes(slot) => {
                    let vals = match f.node(id) {
                        Node::MatVec { m, x, rows, cols } => {
                            self.matvec_rows(*m, *x, *rows as usize, *cols as usize)
                        }
                        _ => (0..f.len_of(id))
                            .map(|k| self.expand(id, Ix::Const(k as i64)))
                            .collect(),
                    };
                    if let Some(slot) = slot {
                        for (k, v) in vals.iter().enumerate() {
                            if !self.stored_early.contains(&slot.at(k)) {
                                self.store(slot, Ix::Const(k as i64), *v);
                            }
                        }
                    }
                    self.lanes[i] = vals;
                }
                Place::Mem(slot) => self.mem_node(id, slot),
            }
        }
        for (o, (buf, id)) in f.outputs.iter().enumerate() {
            let dest = Slot {
                buf: Buf::Output(o as u32),
                offset: 0,
            };
            if buf.len == 0 || self.s.slot(*id) == Some(dest) {
                continue;
            }
            let id = *id;
            match f.node(id) {
                Node::Concat(parts) => self.write_parts(dest, parts),
                _ => self.write(dest, buf.len, &mut |g, ix| g.elem(id, ix)),
            }
        }
    }

    /// A concatenation's parts into `slot`, skipping those already there: stored early,
    /// or computed in place.
    fn write_parts(&mut self, slot: Slot, parts: &[NodeId]) {
        let f = self.f;
        let mut off = 0;
        for &p in parts {
            let n = f.len_of(p);
            let here = slot.at(off);
            let in_place = matches!(self.s.place(p), Place::Mem(s) if s == here);
            let early = n == 1 && self.stored_early.contains(&here);
            if !in_place && !early && n > 0 {
                self.write(here, n, &mut |g, ix| g.elem(p, ix));
            }
            off += n;
        }
    }

    /// Computes a vector into its memory slot.
    fn mem_node(&mut self, id: NodeId, slot: Slot) {
        let f = self.f;
        match f.node(id) {
            Node::Concat(parts) => self.write_parts(slot, parts),
            Node::MatVec { m, x, rows, cols } => {
                self.matvec_into(*m, *x, *rows as i64, *cols as usize, slot)
            }
            Node::MatTVec { m, y, rows, cols } => {
                self.mat_t_vec_into(*m, *y, *rows as i64, *cols as usize, slot)
            }
            Node::Outer(a, b) => self.outer_into(*a, *b, slot),
            Node::Unary(op, x) if self.slice_shim.is_some() && Self::calls_shim(*op) => {
                // The operand into the slot, then the function over it in one call.
                let (op, x, len) = (*op, *x, f.len_of(id));
                self.write(slot, len, &mut |g, ix| g.elem(x, ix));
                let code = self
                    .b
                    .ins()
                    .iconst(types::I64, shims::index(Shim::Unary(op)) as i64);
                let (p, off) = self.addr(self.base(slot.buf), slot.offset, Ix::Const(0));
                let p = self.b.ins().iadd_imm_s(p, off as i64);
                let n = self.b.ins().iconst(types::I64, len as i64);
                let fr = self.slice_shim.expect("checked");
                self.b.ins().call(fr, &[code, p, n]);
            }
            _ => self.write(slot, f.len_of(id), &mut |g, ix| g.expand(id, ix)),
        }
    }

    /// `m x` into `dest`. Long rows go [`ROW_BLOCK`] at a time: one loop over the columns
    /// carrying one accumulator per row, so the rows' additions overlap instead of waiting
    /// on each other (each row is still summed left to right, as the interpreter sums it).
    fn matvec_into(&mut self, m: NodeId, x: NodeId, rows: i64, cols: usize, dest: Slot) {
        if crate::math::is_large_layer(rows as usize, cols) {
            return self.call_layer_product(0, m, x, rows, cols, dest);
        }
        let block = ROW_BLOCK as i64;
        let blocked = if cols > self.s.unroll {
            rows - rows % block
        } else {
            0
        };
        if blocked > 0 {
            self.for_loop_step(0, blocked, block, &[], &mut |g, r, _| {
                let sums = g.matvec_block(m, x, r, ROW_BLOCK, cols);
                for (q, v) in sums.into_iter().enumerate() {
                    g.store(dest, r.affine(1, q as i64), v);
                }
                vec![]
            });
        }
        if blocked < rows {
            self.for_loop(blocked, rows, &[], &mut |g, r, _| {
                let v = g.matvec_row(m, x, r, cols);
                g.store(dest, r, v);
                vec![]
            });
        }
    }

    /// `mᵀ y` into `dest`, row by row: row 0's terms first, then each later row's added
    /// entry by entry. Entry j still sums over the rows in order (the interpreter's sum),
    /// but the inner loop runs along a contiguous row of `m`, two entries per F64X2.
    fn mat_t_vec_into(&mut self, m: NodeId, y: NodeId, rows: i64, cols: usize, dest: Slot) {
        if crate::math::is_large_layer(rows as usize, cols) {
            return self.call_layer_product(1, m, y, rows, cols, dest);
        }
        let c = cols as i64;
        let y0 = self.elem(y, Ix::Const(0));
        self.write(dest, cols, &mut |g, j| {
            let a = g.elem(m, j);
            let b = g.splat_if_wide(y0);
            g.b.ins().fmul(a, b)
        });
        let add_row = |g: &mut Self, i: Ix| {
            let yi = g.elem(y, i);
            g.write(dest, cols, &mut |g, j| {
                let mi = g.ix_mat(i, c, j);
                let a = g.elem(m, mi);
                let b = g.splat_if_wide(yi);
                let t = g.b.ins().fmul(a, b);
                let base = g.base(dest.buf);
                let acc = g.load(base, dest.offset, j);
                g.b.ins().fadd(acc, t)
            });
        };
        // Few rows: unrolled (`y` is then read at constant indices only).
        if rows as usize <= self.s.unroll {
            for i in 1..rows {
                add_row(self, Ix::Const(i));
            }
        } else {
            self.for_loop(1, rows, &[], &mut |g, i, _| {
                add_row(g, i);
                vec![]
            });
        }
    }

    /// A large layer's product ([`crate::math::is_large_layer`]) by the routine the
    /// interpreter calls too: `k` 0 is `m v`, 1 is `mᵀ v`.
    fn call_layer_product(
        &mut self,
        k: usize,
        m: NodeId,
        v: NodeId,
        rows: i64,
        cols: usize,
        dest: Slot,
    ) {
        let fr = self.layer_shims[k].expect("declared for functions with large layers");
        let pm = self.data_ptr(m);
        let pv = self.data_ptr(v);
        let out = self.slot_ptr(dest);
        let r = self.b.ins().iconst(types::I64, rows);
        let c = self.b.ins().iconst(types::I64, cols as i64);
        self.b.ins().call(fr, &[pm, pv, r, c, out]);
    }

    /// The address of a slot's first entry.
    fn slot_ptr(&mut self, slot: Slot) -> Value {
        let base = self.base(slot.buf);
        self.b.ins().iadd_imm_s(base, (slot.offset * 8) as i64)
    }

    /// The address of a node's entries, which the schedule keeps contiguous in memory (an
    /// argument, a unit-stride gather of one, or a node with a memory slot).
    fn data_ptr(&mut self, id: NodeId) -> Value {
        match (self.s.place(id), self.f.node(id)) {
            (Place::Arg(k), _) => self.args[k as usize],
            (Place::Mem(slot) | Place::Lanes(Some(slot)), _) => self.slot_ptr(slot),
            (
                Place::Fused,
                Node::Gather {
                    v,
                    start,
                    stride: 1,
                    ..
                },
            ) => {
                let (v, start) = (*v, *start);
                let p = self.data_ptr(v);
                self.b.ins().iadd_imm_s(p, start as i64 * 8)
            }
            (place, _) => panic!(
                "schedule: %{} ({place:?}) is a large layer's operand but not contiguous in memory",
                id.0
            ),
        }
    }

    /// A scalar value as the current lane width wants it.
    fn splat_if_wide(&mut self, v: Value) -> Value {
        if self.wide {
            self.b.ins().splat(types::F64X2, v)
        } else {
            v
        }
    }

    /// `dest[r*|b| + c] = a[r] * b[c]`: a loop (or unrolled sequence) over rows, each row
    /// stored like an elementwise vector (two lanes per instruction along the row).
    fn outer_into(&mut self, a: NodeId, b: NodeId, dest: Slot) {
        let (na, nb) = (self.f.len_of(a), self.f.len_of(b));
        let row = |g: &mut Self, r: Ix| {
            let x = g.elem(a, r);
            g.write_row(dest, Some((r, nb as i64)), nb, &mut |g, c| {
                let xs = g.splat_if_wide(x);
                let z = g.elem(b, c);
                g.b.ins().fmul(xs, z)
            });
        };
        if na <= self.s.unroll {
            for r in 0..na {
                row(self, Ix::Const(r as i64));
            }
        } else {
            self.for_loop(0, na as i64, &[], &mut |g, r, _| {
                row(g, r);
                vec![]
            });
        }
    }

    /// Stores `len` lanes computed by `lane` into `dest`: unrolled when short, else a loop
    /// doing [`LOOP_UNROLL`] lanes per trip and an unrolled tail.
    fn write(&mut self, dest: Slot, len: usize, lane: &mut dyn FnMut(&mut Self, Ix) -> Value) {
        self.write_row(dest, None, len, lane)
    }

    /// [`Gen::write`] into row `r` of a row-major matrix with `width` columns at `dest`
    /// (`Some((r, width))`: lane `k` goes to entry `r*width + k`), or into `dest` itself.
    fn write_row(
        &mut self,
        dest: Slot,
        row: Option<(Ix, i64)>,
        len: usize,
        lane: &mut dyn FnMut(&mut Self, Ix) -> Value,
    ) {
        let at = |g: &mut Self, ix: Ix| match row {
            Some((r, width)) => g.ix_mat(r, width, ix),
            None => ix,
        };
        if len <= self.s.unroll {
            for k in 0..len {
                let v = lane(self, Ix::Const(k as i64));
                let ix = at(self, Ix::Const(k as i64));
                self.store(dest, ix, v);
            }
            return;
        }
        let main = len - len % LOOP_UNROLL;
        self.for_loop_step(0, main as i64, LOOP_UNROLL as i64, &[], &mut |g, i, _| {
            let Ix::Dyn { var, .. } = i else {
                unreachable!()
            };
            // Two lanes at a time in F64X2 registers (SSE2 / NEON): the same IEEE operations
            // per lane as the scalar code, so results stay bit-identical to the interpreter.
            for q in (0..LOOP_UNROLL as i64).step_by(2) {
                let ix = Ix::Dyn {
                    var,
                    mul: 1,
                    add: q,
                };
                g.wide = true;
                let v = lane(g, ix);
                let dst = at(g, ix);
                g.store(dest, dst, v);
                g.wide = false;
            }
            vec![]
        });
        for k in main..len {
            let v = lane(self, Ix::Const(k as i64));
            let ix = at(self, Ix::Const(k as i64));
            self.store(dest, ix, v);
        }
    }

    /// A counted loop `for i in start..end` (at least one trip) carrying f64 values.
    fn for_loop(
        &mut self,
        start: i64,
        end: i64,
        carried: &[Value],
        body: Body<'_, 'a, 'b>,
    ) -> Vec<Value> {
        self.for_loop_step(start, end, 1, carried, body)
    }

    /// `for i in (start..end).step_by(step)` (at least one trip) carrying f64 values.
    fn for_loop_step(
        &mut self,
        start: i64,
        end: i64,
        step: i64,
        carried: &[Value],
        body: Body<'_, 'a, 'b>,
    ) -> Vec<Value> {
        debug_assert!(start < end);
        let blk = self.b.create_block();
        self.b.append_block_param(blk, types::I64);
        for _ in carried {
            self.b.append_block_param(blk, types::F64);
        }
        let exit = self.b.create_block();
        for _ in carried {
            self.b.append_block_param(exit, types::F64);
        }
        let i0 = self.b.ins().iconst(types::I64, start);
        let a: Vec<BlockArg> = std::iter::once(i0)
            .chain(carried.iter().copied())
            .map(BlockArg::Value)
            .collect();
        self.b.ins().jump(blk, &a);
        self.b.switch_to_block(blk);
        let params = self.b.block_params(blk).to_vec();
        let next = body(self, Ix::var(params[0]), &params[1..]);
        let i1 = self.b.ins().iadd_imm_s(params[0], step);
        let c = self.b.ins().icmp_imm_s(IntCC::SignedLessThan, i1, end);
        let back: Vec<BlockArg> = std::iter::once(i1)
            .chain(next.iter().copied())
            .map(BlockArg::Value)
            .collect();
        let out: Vec<BlockArg> = next.iter().copied().map(BlockArg::Value).collect();
        self.b.ins().brif(c, blk, &back, exit, &out);
        self.b.switch_to_block(exit);
        self.b.block_params(exit).to_vec()
    }

    /// `term(0) + term(1) + …` accumulated left to right from the first term (0 for none).
    fn reduce(&mut self, len: usize, term: &mut dyn FnMut(&mut Self, Ix) -> Value) -> Value {
        if len == 0 {
            return self.b.ins().f64const(0.0);
        }
        let first = term(self, Ix::Const(0));
        if len <= self.s.unroll {
            let mut acc = first;
            for j in 1..len {
                let t = term(self, Ix::Const(j as i64));
                acc = self.b.ins().fadd(acc, t);
            }
            acc
        } else {
            self.for_loop(1, len as i64, &[first], &mut |g, j, acc| {
                let t = term(g, j);
                vec![g.b.ins().fadd(acc[0], t)]
            })[0]
        }
    }

    /// Row `r` of `m x` (`m` row-major with `cols` columns).
    fn matvec_row(&mut self, m: NodeId, x: NodeId, r: Ix, cols: usize) -> Value {
        self.reduce(cols, &mut |g, j| {
            let mi = g.ix_mat(r, cols as i64, j);
            let a = g.elem(m, mi);
            let b = g.elem(x, j);
            g.b.ins().fmul(a, b)
        })
    }

    /// All `rows` (a small number) rows of `m x`.
    fn matvec_rows(&mut self, m: NodeId, x: NodeId, rows: usize, cols: usize) -> Vec<Value> {
        self.matvec_block(m, x, Ix::Const(0), rows, cols)
    }

    /// Rows `r0 .. r0 + count` of `m x`: unrolled, or one loop over the columns carrying one
    /// accumulator per row (each row still summed left to right).
    fn matvec_block(
        &mut self,
        m: NodeId,
        x: NodeId,
        r0: Ix,
        count: usize,
        cols: usize,
    ) -> Vec<Value> {
        if cols <= self.s.unroll {
            return (0..count)
                .map(|q| self.matvec_row(m, x, r0.affine(1, q as i64), cols))
                .collect();
        }
        let c = cols as i64;
        let x0 = self.elem(x, Ix::Const(0));
        let first: Vec<Value> = (0..count as i64)
            .map(|q| {
                let mi = self.ix_mat(r0.affine(1, q), c, Ix::Const(0));
                let a = self.elem(m, mi);
                self.b.ins().fmul(a, x0)
            })
            .collect();
        self.for_loop(1, c, &first, &mut |g, j, acc| {
            let xj = g.elem(x, j);
            (0..count)
                .map(|q| {
                    let mi = g.ix_mat(r0.affine(1, q as i64), c, j);
                    let a = g.elem(m, mi);
                    let t = g.b.ins().fmul(a, xj);
                    g.b.ins().fadd(acc[q], t)
                })
                .collect()
        })
    }

    /// The flat index `r * cols + j`.
    fn ix_mat(&mut self, r: Ix, cols: i64, j: Ix) -> Ix {
        match (r, j) {
            (Ix::Const(a), j) => j.affine(1, a * cols),
            (r, Ix::Const(b)) => r.affine(cols, b),
            (
                Ix::Dyn {
                    var: v1,
                    mul: m1,
                    add: a1,
                },
                Ix::Dyn {
                    var: v2,
                    mul: m2,
                    add: a2,
                },
            ) => {
                let x = self.b.ins().imul_imm_s(v1, m1 * cols);
                let y = if m2 == 1 {
                    v2
                } else {
                    self.b.ins().imul_imm_s(v2, m2)
                };
                let s = self.b.ins().iadd(x, y);
                Ix::Dyn {
                    var: s,
                    mul: 1,
                    add: a1 * cols + a2,
                }
            }
        }
    }

    fn base(&self, buf: Buf) -> Value {
        match buf {
            Buf::Scratch => self.scratch,
            Buf::Output(o) => self.outs[o as usize],
        }
    }

    /// The address of entry `ix` of a buffer starting `offset` entries after `base`.
    fn addr(&mut self, base: Value, offset: usize, ix: Ix) -> (Value, i32) {
        match ix {
            Ix::Const(k) => (base, ((offset as i64 + k) * 8) as i32),
            Ix::Dyn { mul: 0, add, .. } => (base, ((offset as i64 + add) * 8) as i32),
            Ix::Dyn { var, mul, add } => {
                let scaled = if mul == 1 {
                    self.b.ins().ishl_imm_s(var, 3)
                } else {
                    self.b.ins().imul_imm_s(var, mul * 8)
                };
                let p = self.b.ins().iadd(base, scaled);
                (p, ((offset as i64 + add) * 8) as i32)
            }
        }
    }

    fn load(&mut self, base: Value, offset: usize, ix: Ix) -> Value {
        if self.wide {
            return match ix {
                Ix::Dyn { mul: 1, .. } => {
                    let (p, off) = self.addr(base, offset, ix);
                    let flags = self.unaligned();
                    self.b.ins().load(types::F64X2, flags, p, off)
                }
                _ => {
                    self.wide = false;
                    let a = self.load(base, offset, ix);
                    let b = self.load(base, offset, second(ix));
                    self.wide = true;
                    self.pair(a, b)
                }
            };
        }
        let (p, off) = self.addr(base, offset, ix);
        self.b.ins().load(types::F64, self.mem, p, off)
    }

    fn store(&mut self, slot: Slot, ix: Ix, v: Value) {
        let base = self.base(slot.buf);
        let (p, off) = self.addr(base, slot.offset, ix);
        let flags = if self.wide {
            self.unaligned()
        } else {
            self.mem
        };
        self.b.ins().store(flags, v, p, off);
    }

    /// The buffers are 8-byte aligned only: two-lane accesses must not claim 16.
    fn unaligned(&self) -> MemFlagsData {
        MemFlagsData::new().with_notrap()
    }

    /// An F64X2 of two f64 values.
    fn pair(&mut self, a: Value, b: Value) -> Value {
        if a == b {
            return self.b.ins().splat(types::F64X2, a);
        }
        let v = self.b.ins().scalar_to_vector(types::F64X2, a);
        self.b.ins().insertlane(v, b, 1)
    }

    /// The constant `x`, in both lanes in two-lane mode.
    fn fconst(&mut self, x: f64) -> Value {
        let c = self.b.ins().f64const(x);
        if self.wide {
            self.b.ins().splat(types::F64X2, c)
        } else {
            c
        }
    }

    /// Whether `expand` computes this node on two-lane values directly; every other node
    /// is computed lane by lane and the two results paired.
    fn has_wide_form(node: &Node) -> bool {
        match node {
            Node::Const(_) | Node::Arg(_) | Node::Gather { .. } | Node::PowI(..) => true,
            Node::Unary(op, _) => matches!(op, Func1::Neg | Func1::Abs | Func1::Sqrt),
            Node::Binary(op, ..) => matches!(op, Op2::Add | Op2::Sub | Op2::Mul | Op2::Div),
            _ => false,
        }
    }

    /// Stores scalar `i` to its entry of the spill area.
    fn spill(&mut self, i: usize, v: Value) {
        let base = self.spill_base.expect("made in the entry block");
        let off = 8 * self.spilled[i].expect("a spilled node has an entry");
        self.b.ins().store(self.mem, v, base, off as i32);
    }

    /// Loads spilled scalar `i` back (Cranelift merges repeated loads between calls).
    fn unspill(&mut self, i: usize) -> Value {
        let base = self.spill_base.expect("made in the entry block");
        let off = 8 * self.spilled[i].expect("a spilled node has an entry");
        self.b.ins().load(types::F64, self.mem, base, off as i32)
    }

    /// A scalar that is an argument entry: loaded at each read instead of held in a
    /// register from its first read to its last. Cranelift merges repeated loads where no
    /// call or store intervenes; across calls (every `sin` is one) a held value would be
    /// spilled around each, and thousands of such split ranges make register allocation
    /// quadratic (a sum of N terms `sin(k*x)` took O(N²) to compile).
    fn reads_arg(&self, id: NodeId) -> bool {
        self.f.len_of(id) == 1
            && match self.f.node(id) {
                Node::Arg(_) => true,
                Node::Index { v, .. } => matches!(self.s.place(*v), Place::Arg(_)),
                _ => false,
            }
    }

    /// Entry `ix` of node `id`, wherever it lives.
    fn elem(&mut self, id: NodeId, ix: Ix) -> Value {
        if self.f.len_of(id) == 1 {
            let v = match self.scalars[id.index()] {
                None if self.reads_arg(id) => {
                    // The scalar itself (splat below in two-lane mode).
                    let wide = std::mem::replace(&mut self.wide, false);
                    let v = self.expand(id, Ix::Const(0));
                    self.wide = wide;
                    v
                }
                None if self.spilled[id.index()].is_some() => self.unspill(id.index()),
                v => v.expect("scalar used before it is computed"),
            };
            return if self.wide {
                self.b.ins().splat(types::F64X2, v)
            } else {
                v
            };
        }
        match self.s.place(id) {
            Place::Arg(k) => self.load(self.args[k as usize], 0, ix),
            Place::Mem(slot) => self.load(self.base(slot.buf), slot.offset, ix),
            Place::Lanes(slot) => match (ix, slot) {
                (Ix::Const(k), _) => {
                    let v = self.lanes[id.index()][k as usize];
                    if self.wide { self.pair(v, v) } else { v }
                }
                (_, Some(slot)) => self.load(self.base(slot.buf), slot.offset, ix),
                (_, None) => panic!(
                    "schedule: %{} read at a run-time index but has no memory",
                    id.0
                ),
            },
            Place::Fused => self.expand(id, ix),
            Place::Scalar | Place::Empty => unreachable!("length mismatch at %{}", id.0),
        }
    }

    /// Entry `ix` of node `id`, computed from its operands.
    fn expand(&mut self, id: NodeId, ix: Ix) -> Value {
        let f = self.f;
        if self.wide && !Self::has_wide_form(f.node(id)) {
            self.wide = false;
            let a = self.expand(id, ix);
            let b = match ix {
                Ix::Const(_) => a,
                Ix::Dyn { .. } => self.expand(id, second(ix)),
            };
            self.wide = true;
            return self.pair(a, b);
        }
        match f.node(id) {
            Node::MatTVec { m, y, rows, cols } => {
                // Entry j: Σ_i m[i*cols + j] y[i], over rows in order.
                let (m, y, cols) = (*m, *y, *cols as i64);
                self.reduce(*rows as usize, &mut |g, i| {
                    let mi = g.ix_mat(i, cols, ix);
                    let a = g.elem(m, mi);
                    let b = g.elem(y, i);
                    g.b.ins().fmul(a, b)
                })
            }
            Node::Outer(a, b) => {
                // Entry r*|b| + c is a[r]*b[c]; only read at constant indices (the schedule
                // materialises every longer outer product with `outer_into`).
                let Ix::Const(k) = ix else {
                    panic!("schedule: outer %{} read at a run-time index", id.0)
                };
                let nb = f.len_of(*b) as i64;
                let x = self.elem(*a, Ix::Const(k / nb));
                let z = self.elem(*b, Ix::Const(k % nb));
                self.b.ins().fmul(x, z)
            }
            Node::Const(bits) => self.fconst(f64::from_bits(*bits)),
            Node::Arg(k) => self.load(self.args[*k as usize], 0, ix),
            Node::Iota { start, .. } => match ix {
                Ix::Const(k) => self.b.ins().f64const((start + k) as f64),
                Ix::Dyn { var, mul, add } => {
                    let v = if mul == 1 {
                        var
                    } else {
                        self.b.ins().imul_imm_s(var, mul)
                    };
                    let v = self.b.ins().iadd_imm_s(v, start + add);
                    self.b.ins().fcvt_from_sint(types::F64, v)
                }
            },
            Node::Index { v, k } => self.elem(*v, Ix::Const(*k as i64)),
            Node::Gather {
                v, start, stride, ..
            } => self.elem(*v, ix.affine(*stride as i64, *start as i64)),
            Node::Concat(parts) => {
                let Ix::Const(k) = ix else {
                    panic!("schedule: concat %{} read at a run-time index", id.0)
                };
                let mut off = 0i64;
                for &p in parts {
                    let n = f.len_of(p) as i64;
                    if k < off + n {
                        return self.elem(p, Ix::Const(k - off));
                    }
                    off += n;
                }
                panic!("concat %{}: index {k} out of range", id.0)
            }
            Node::Broadcast(x, _) => self.elem(*x, Ix::Const(0)),
            Node::Unary(op, x) => {
                let v = self.elem(*x, ix);
                self.unary(*op, v)
            }
            Node::Binary(op, a, b) => {
                let x = self.elem(*a, ix);
                let y = self.elem(*b, ix);
                self.binary(*op, x, y)
            }
            Node::PowI(x, n) => {
                let v = self.elem(*x, ix);
                self.powi(v, *n)
            }
            Node::Compare(c, a, b) => {
                let x = self.elem(*a, ix);
                let y = self.elem(*b, ix);
                let cc = match c {
                    Cmp::Lt => FloatCC::LessThan,
                    Cmp::Le => FloatCC::LessThanOrEqual,
                    Cmp::Gt => FloatCC::GreaterThan,
                    Cmp::Ge => FloatCC::GreaterThanOrEqual,
                };
                let t = self.b.ins().fcmp(cc, x, y);
                let one = self.b.ins().f64const(1.0);
                let zero = self.b.ins().f64const(0.0);
                self.b.ins().select(t, one, zero)
            }
            Node::Select(c, a, b) => {
                let m = self.elem(*c, ix);
                let x = self.elem(*a, ix);
                let y = self.elem(*b, ix);
                let zero = self.b.ins().f64const(0.0);
                // NotEqual holds for NaN, like `mask != 0.0`.
                let t = self.b.ins().fcmp(FloatCC::NotEqual, m, zero);
                self.b.ins().select(t, x, y)
            }
            Node::Sum(x) => {
                let x = *x;
                self.reduce(f.len_of(x), &mut |g, j| g.elem(x, j))
            }
            Node::Dot(a, b) => {
                let (a, b) = (*a, *b);
                let n = f.len_of(a).min(f.len_of(b));
                self.reduce(n, &mut |g, j| {
                    let x = g.elem(a, j);
                    let y = g.elem(b, j);
                    g.b.ins().fmul(x, y)
                })
            }
            Node::MatVec { m, x, cols, .. } => self.matvec_row(*m, *x, ix, *cols as usize),
        }
    }

    fn call(&mut self, s: Shim, args: &[Value]) -> Value {
        let fr = self.shims[shims::index(s)].expect("shim declared");
        let inst = self.b.ins().call(fr, args);
        self.b.inst_results(inst)[0]
    }

    /// Whether `op` is computed by a shim (not inline instructions).
    fn calls_shim(op: Func1) -> bool {
        !matches!(op, Func1::Neg | Func1::Abs | Func1::Sqrt | Func1::Relu)
    }

    fn unary(&mut self, op: Func1, x: Value) -> Value {
        match op {
            Func1::Neg => self.b.ins().fneg(x),
            Func1::Abs => self.b.ins().fabs(x),
            Func1::Sqrt => self.b.ins().sqrt(x),
            Func1::Relu => {
                // `if x < 0 { 0 } else { x }`: NaN and -0 pass through.
                let zero = self.b.ins().f64const(0.0);
                let neg = self.b.ins().fcmp(FloatCC::LessThan, x, zero);
                self.b.ins().select(neg, zero, x)
            }
            op => self.call(Shim::Unary(op), &[x]),
        }
    }

    fn binary(&mut self, op: Op2, x: Value, y: Value) -> Value {
        match op {
            Op2::Add => self.b.ins().fadd(x, y),
            Op2::Sub => self.b.ins().fsub(x, y),
            Op2::Mul => self.b.ins().fmul(x, y),
            Op2::Div => self.b.ins().fdiv(x, y),
            // Cranelift's fmin/fmax are IEEE 754-2019 minimum/maximum, like math::fmin/fmax.
            Op2::Min => self.b.ins().fmin(x, y),
            Op2::Max => self.b.ins().fmax(x, y),
            Op2::Pow => self.call(Shim::Pow, &[x, y]),
        }
    }

    /// The multiplication sequence of [`crate::math::powi`].
    fn powi(&mut self, x: Value, n: i32) -> Value {
        let mut e = n.unsigned_abs();
        let mut result: Option<Value> = None;
        let mut base = x;
        while e > 0 {
            if e & 1 == 1 {
                result = Some(match result {
                    None => base,
                    Some(r) => self.b.ins().fmul(r, base),
                });
            }
            e >>= 1;
            if e > 0 {
                base = self.b.ins().fmul(base, base);
            }
        }
        let r = match result {
            Some(r) => r,
            None => self.fconst(1.0),
        };
        if n < 0 {
            let one = self.fconst(1.0);
            self.b.ins().fdiv(one, r)
        } else {
            r
        }
    }
}
