//! Structural sparsity: which entries of an output can depend on which entries of an
//! argument, read off the IR (no numeric probing), and a column colouring for compressed
//! Jacobian evaluation.
//!
//! Each node gets, per entry, the sorted set of argument entries it may depend on. The
//! sets are explicit, so the cost is O(nonzeros), not O(n²) — an n = 10⁵ stencil has
//! 3·10⁵ of them. A node with a derivative that is identically zero (a comparison) has none.

use crate::ir::{Function, Node};

/// A pattern in compressed sparse row form.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pattern {
    pub n_rows: usize,
    pub n_cols: usize,
    pub row_ptr: Vec<usize>,
    pub cols: Vec<usize>,
}

impl Pattern {
    pub fn nnz(&self) -> usize {
        self.cols.len()
    }
    pub fn density(&self) -> f64 {
        self.nnz() as f64 / ((self.n_rows * self.n_cols).max(1)) as f64
    }
    pub fn row(&self, i: usize) -> &[usize] {
        &self.cols[self.row_ptr[i]..self.row_ptr[i + 1]]
    }
}

/// Dependencies of one node: per entry, or one set shared by every entry.
#[derive(Clone, Debug)]
enum Deps {
    None,
    Uniform(Vec<u32>),
    Entries(Vec<Vec<u32>>),
}

impl Deps {
    fn at(&self, k: usize) -> &[u32] {
        match self {
            Deps::None => &[],
            Deps::Uniform(v) => v,
            // A one-entry operand of an elementwise node broadcasts (`u * W` with W scalar).
            Deps::Entries(e) if e.len() == 1 => &e[0],
            Deps::Entries(e) => &e[k],
        }
    }
    fn all(&self) -> Vec<u32> {
        match self {
            Deps::None => Vec::new(),
            Deps::Uniform(v) => v.clone(),
            Deps::Entries(e) => union_all(e.iter().map(Vec::as_slice)),
        }
    }
    fn size(&self) -> usize {
        match self {
            Deps::None => 0,
            Deps::Uniform(v) => v.len(),
            Deps::Entries(e) => e.iter().map(Vec::len).sum(),
        }
    }
}

fn union_all<'a>(sets: impl Iterator<Item = &'a [u32]>) -> Vec<u32> {
    let mut v: Vec<u32> = sets.flat_map(|s| s.iter().copied()).collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// Above this many (entry, dependency) pairs in one node the analysis gives up (dense).
const BUDGET: usize = 20_000_000;

/// The pattern of output `out` with respect to argument `arg`, or `None` if it is too
/// large to represent (treat the Jacobian as dense).
pub fn pattern(f: &Function, out: usize, arg: usize) -> Option<Pattern> {
    let mut deps: Vec<Deps> = Vec::with_capacity(f.nodes.len());
    for (i, n) in f.nodes.iter().enumerate() {
        let len = f.lens[i] as usize;
        let d = |id: &crate::ir::NodeId| &deps[id.index()];
        let elementwise = |ids: &[crate::ir::NodeId]| -> Deps {
            if ids.iter().all(|x| matches!(deps[x.index()], Deps::None)) {
                return Deps::None;
            }
            if ids
                .iter()
                .all(|x| !matches!(deps[x.index()], Deps::Entries(_)))
            {
                return Deps::Uniform(union_all(ids.iter().map(|x| deps[x.index()].at(0))));
            }
            Deps::Entries(
                (0..len)
                    .map(|k| union_all(ids.iter().map(|x| deps[x.index()].at(k))))
                    .collect(),
            )
        };
        let entry = match n {
            Node::Const(_) | Node::Iota { .. } | Node::Compare(..) => Deps::None,
            Node::Arg(k) if *k as usize == arg => {
                Deps::Entries((0..len as u32).map(|j| vec![j]).collect())
            }
            Node::Arg(_) => Deps::None,
            Node::Index { v, k } => match d(v) {
                Deps::None => Deps::None,
                other => Deps::Uniform(other.at(*k as usize).to_vec()),
            },
            Node::Gather {
                v,
                start,
                stride,
                len,
            } => match d(v) {
                Deps::None => Deps::None,
                Deps::Uniform(s) => Deps::Uniform(s.clone()),
                Deps::Entries(e) => Deps::Entries(
                    (0..*len as i64)
                        .map(|k| e[(*start as i64 + *stride as i64 * k) as usize].clone())
                        .collect(),
                ),
            },
            Node::Concat(parts) => {
                if parts.iter().all(|q| matches!(d(q), Deps::None)) {
                    Deps::None
                } else {
                    let mut e = Vec::with_capacity(len);
                    for q in parts {
                        for k in 0..f.len_of(*q) {
                            e.push(d(q).at(k).to_vec());
                        }
                    }
                    Deps::Entries(e)
                }
            }
            Node::Broadcast(x, _) | Node::Sum(x) => match d(x) {
                Deps::None => Deps::None,
                other => Deps::Uniform(other.all()),
            },
            Node::Unary(_, x) | Node::PowI(x, _) => d(x).clone(),
            Node::Binary(_, a, b) => elementwise(&[*a, *b]),
            Node::Select(_, a, b) => elementwise(&[*a, *b]),
            Node::Dot(a, b)
            | Node::MatVec { m: a, x: b, .. }
            | Node::MatTVec { m: a, y: b, .. }
            | Node::Outer(a, b) => {
                let all = union_all([d(a).all(), d(b).all()].iter().map(Vec::as_slice));
                if all.is_empty() {
                    Deps::None
                } else {
                    Deps::Uniform(all)
                }
            }
        };
        if entry.size() > BUDGET {
            return None;
        }
        deps.push(entry);
    }
    let (buf, id) = &f.outputs[out];
    let rows = buf.len;
    let n_cols = f.args[arg].len;
    let mut row_ptr = Vec::with_capacity(rows + 1);
    let mut cols = Vec::new();
    row_ptr.push(0);
    let od = &deps[id.index()];
    for k in 0..rows {
        cols.extend(od.at(k).iter().map(|&j| j as usize));
        row_ptr.push(cols.len());
        if cols.len() > BUDGET {
            return None;
        }
    }
    Some(Pattern {
        n_rows: rows,
        n_cols,
        row_ptr,
        cols,
    })
}

/// A greedy distance-2 colouring of the columns: two columns that share a row never get
/// the same colour, so one forward sweep per colour recovers every nonzero.
pub fn colour_columns(p: &Pattern) -> Vec<u32> {
    // Rows of each column (CSC).
    let mut col_rows: Vec<Vec<u32>> = vec![Vec::new(); p.n_cols];
    for i in 0..p.n_rows {
        for &j in p.row(i) {
            col_rows[j].push(i as u32);
        }
    }
    let mut colour = vec![u32::MAX; p.n_cols];
    let mut mark: Vec<usize> = Vec::new(); // mark[c] == j+1: colour c is taken for column j
    for j in 0..p.n_cols {
        for &i in &col_rows[j] {
            for &other in p.row(i as usize) {
                let c = colour[other];
                if c != u32::MAX {
                    if mark.len() <= c as usize {
                        mark.resize(c as usize + 1, 0);
                    }
                    mark[c as usize] = j + 1;
                }
            }
        }
        let c = (0..)
            .find(|&c| mark.get(c).is_none_or(|&m| m != j + 1))
            .unwrap_or(0);
        colour[j] = c as u32;
    }
    colour
}
