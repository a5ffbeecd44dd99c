//! The Jacobian and the iteration matrix W = I − c·J of the implicit methods.
//!
//! Three back ends, chosen once per solve:
//! - `Small` (n ≤ 16, dense): hand-written LU with partial pivoting on a row-major copy;
//! - `Dense`: faer's blocked partial-pivoting LU, factored in place into a buffer allocated
//!   once per solve;
//! - `Sparse` (the vector field gives `sparsity()`): faer's sparse LU. W's pattern is J's
//!   pattern plus the diagonal, in CSR; read as CSC that is Wᵀ, so the symbolic analysis is
//!   of Wᵀ (once per solve), each refactorisation is numeric only, and a solve with W is a
//!   transposed solve with the factors of Wᵀ — no transposition of values ever happens.
//!
//! W is called singular when a pivot is zero or tiny relative to the scale of W's terms
//! (|p| ≤ 8·ε·max(1, max|c·J_ij|)), or non-finite (dense back ends), or when the sparse numeric
//! factorisation fails; a solve whose result is non-finite for a finite right-hand side also
//! reports it (the sparse back end cannot see its pivots).

use faer::dyn_stack::{MemBuffer, MemStack, StackReq};
use faer::linalg::lu::partial_pivoting::{factor, solve};
use faer::perm::PermRef;
use faer::sparse::linalg::lu::{LuRef, NumericLu, SymbolicLu, factorize_symbolic_lu};
use faer::sparse::{SparseColMatRef, SymbolicSparseColMatRef};
use faer::{Conj, Mat, MatMut, Par};

use super::super::integrate::all_finite;
use super::super::{OdeJacobian, Sparsity, Stats};

/// Largest dimension handled by the hand-written dense LU.
const SMALL_N: usize = 16;

/// W = I − c·J is (numerically) singular.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Singular;

pub(crate) struct LinSys {
    n: usize,
    kind: Kind,
    /// The current Jacobian holds only finite values.
    jac_finite: bool,
}

enum Kind {
    Small {
        jac: Vec<f64>,
        lu: Vec<f64>,
        piv: Vec<usize>,
    },
    Dense {
        jac: Vec<f64>,
        lu: Mat<f64>,
        perm: Vec<usize>,
        perm_inv: Vec<usize>,
        mem: MemBuffer,
    },
    Sparse(Box<SparseSys>),
}

struct SparseSys {
    /// J's values in the order of the vector field's CSR pattern.
    jval: Vec<f64>,
    /// W's CSR pattern (J ∪ diagonal) = Wᵀ's CSC pattern, and W's values.
    w_ptr: Vec<usize>,
    w_idx: Vec<usize>,
    w_val: Vec<f64>,
    /// Position in `w_val` of J's k-th value, and of each diagonal entry.
    jmap: Vec<usize>,
    diag: Vec<usize>,
    symbolic: SymbolicLu<usize>,
    numeric: NumericLu<usize, f64>,
    mem: MemBuffer,
}

impl LinSys {
    /// Sets up the back end for `rhs` (checks a given sparsity pattern).
    pub(crate) fn new<R: OdeJacobian + ?Sized>(rhs: &R) -> Result<LinSys, String> {
        let n = rhs.dim();
        let kind = if let Some(sp) = rhs.sparsity() {
            Kind::Sparse(Box::new(SparseSys::new(sp, n)?))
        } else if n <= SMALL_N {
            Kind::Small {
                jac: vec![0.0; n * n],
                lu: vec![0.0; n * n],
                piv: vec![0; n],
            }
        } else {
            let req = StackReq::any_of(&[
                factor::lu_in_place_scratch::<usize, f64>(n, n, Par::Seq, Default::default()),
                solve::solve_in_place_scratch::<usize, f64>(n, 1, Par::Seq),
            ]);
            Kind::Dense {
                jac: vec![0.0; n * n],
                lu: Mat::zeros(n, n),
                perm: vec![0; n],
                perm_inv: vec![0; n],
                mem: MemBuffer::new(req),
            }
        };
        Ok(LinSys {
            n,
            kind,
            jac_finite: true,
        })
    }

    /// Evaluates J at (t, u) (one counted Jacobian evaluation). Returns whether it is finite.
    pub(crate) fn eval_jac<R: OdeJacobian + ?Sized>(
        &mut self,
        rhs: &mut R,
        t: f64,
        u: &[f64],
        stats: &mut Stats,
    ) -> bool {
        stats.jac_evals += 1;
        let vals: &[f64] = match &mut self.kind {
            Kind::Small { jac, .. } | Kind::Dense { jac, .. } => {
                rhs.jac(t, u, jac);
                jac
            }
            Kind::Sparse(s) => {
                rhs.jac_sparse(t, u, &mut s.jval);
                &s.jval
            }
        };
        self.jac_finite = all_finite(vals);
        self.jac_finite
    }

    /// Factors W = I − c·J with the current J (one counted LU factorisation).
    pub(crate) fn factor(&mut self, c: f64, stats: &mut Stats) -> Result<(), Singular> {
        stats.lu_factorizations += 1;
        if !self.jac_finite {
            return Err(Singular);
        }
        let n = self.n;
        match &mut self.kind {
            Kind::Small { jac, lu, piv } => small_lu(n, c, jac, lu, piv),
            Kind::Dense {
                jac,
                lu,
                perm,
                perm_inv,
                mem,
            } => {
                let mut wmax = 1.0f64;
                for k in 0..n {
                    let col = lu.col_as_slice_mut(k);
                    for (i, x) in col.iter_mut().enumerate() {
                        *x = -c * jac[i * n + k];
                        wmax = wmax.max(x.abs());
                    }
                    col[k] += 1.0;
                }
                factor::lu_in_place(
                    lu.as_mut(),
                    perm,
                    perm_inv,
                    Par::Seq,
                    MemStack::new(mem),
                    Default::default(),
                );
                let tiny = 8.0 * f64::EPSILON * wmax;
                for k in 0..n {
                    let p = lu[(k, k)];
                    if !(p.abs() > tiny) {
                        return Err(Singular);
                    }
                }
                Ok(())
            }
            Kind::Sparse(s) => s.factor(n, c),
        }
    }

    /// Solves W x = b in place with the last factorisation. Returns `Err(Singular)` when
    /// the result is non-finite although `b` was finite.
    pub(crate) fn solve(&mut self, b: &mut [f64]) -> Result<(), Singular> {
        let n = self.n;
        let b_finite = all_finite(b);
        match &mut self.kind {
            Kind::Small { lu, piv, .. } => small_solve(n, lu, piv, b),
            Kind::Dense {
                lu,
                perm,
                perm_inv,
                mem,
                ..
            } => {
                let p = PermRef::new_checked(perm, perm_inv, n);
                solve::solve_in_place(
                    lu.as_ref(),
                    lu.as_ref(),
                    p,
                    MatMut::from_column_major_slice_mut(b, n, 1),
                    Par::Seq,
                    MemStack::new(mem),
                );
            }
            Kind::Sparse(s) => {
                let lu = LuRef::new_unchecked(&s.symbolic, &s.numeric);
                lu.solve_transpose_in_place_with_conj(
                    Conj::No,
                    MatMut::from_column_major_slice_mut(b, n, 1),
                    Par::Seq,
                    MemStack::new(&mut s.mem),
                );
            }
        }
        if b_finite && !all_finite(b) {
            Err(Singular)
        } else {
            Ok(())
        }
    }
}

/// Row-major LU with partial pivoting of W = I − c·J into `lu` (L unit lower, U upper).
fn small_lu(
    n: usize,
    c: f64,
    jac: &[f64],
    lu: &mut [f64],
    piv: &mut [usize],
) -> Result<(), Singular> {
    // Scale of W's terms before cancellation: max(1, max |c·J_ij|).
    let mut wmax = 1.0f64;
    for i in 0..n {
        for k in 0..n {
            let x = -c * jac[i * n + k];
            wmax = wmax.max(x.abs());
            lu[i * n + k] = if i == k { x + 1.0 } else { x };
        }
    }
    let tiny = 8.0 * f64::EPSILON * wmax;
    for k in 0..n {
        // Pivot: the largest |entry| in column k at or below the diagonal.
        let mut p = k;
        let mut pmax = lu[k * n + k].abs();
        for i in k + 1..n {
            let a = lu[i * n + k].abs();
            if a > pmax {
                pmax = a;
                p = i;
            }
        }
        if !(pmax > tiny) {
            return Err(Singular);
        }
        piv[k] = p;
        if p != k {
            for j in 0..n {
                lu.swap(k * n + j, p * n + j);
            }
        }
        let inv = 1.0 / lu[k * n + k];
        for i in k + 1..n {
            let l = lu[i * n + k] * inv;
            lu[i * n + k] = l;
            if l != 0.0 {
                for j in k + 1..n {
                    lu[i * n + j] -= l * lu[k * n + j];
                }
            }
        }
    }
    Ok(())
}

fn small_solve(n: usize, lu: &[f64], piv: &[usize], b: &mut [f64]) {
    for k in 0..n {
        b.swap(k, piv[k]);
    }
    for i in 1..n {
        let mut s = b[i];
        for j in 0..i {
            s -= lu[i * n + j] * b[j];
        }
        b[i] = s;
    }
    for i in (0..n).rev() {
        let mut s = b[i];
        for j in i + 1..n {
            s -= lu[i * n + j] * b[j];
        }
        b[i] = s / lu[i * n + i];
    }
}

impl SparseSys {
    fn new(sp: &Sparsity, n: usize) -> Result<SparseSys, String> {
        if sp.n != n || sp.row_ptr.len() != n + 1 || sp.row_ptr[0] != 0 {
            return Err(format!(
                "the Jacobian sparsity pattern is malformed (n = {}, {} row pointers) for a system of dimension {n}",
                sp.n,
                sp.row_ptr.len()
            ));
        }
        if *sp.row_ptr.last().unwrap() != sp.cols.len() {
            return Err("the Jacobian sparsity pattern's last row pointer is not nnz".into());
        }
        let mut w_ptr = Vec::with_capacity(n + 1);
        let mut w_idx = Vec::with_capacity(sp.nnz() + n);
        let mut jmap = Vec::with_capacity(sp.nnz());
        let mut diag = Vec::with_capacity(n);
        w_ptr.push(0);
        for i in 0..n {
            let (a, b) = (sp.row_ptr[i], sp.row_ptr[i + 1]);
            if a > b {
                return Err("the Jacobian sparsity pattern's row pointers decrease".into());
            }
            let mut have_diag = false;
            for k in a..b {
                let col = sp.cols[k];
                if col >= n || (k > a && sp.cols[k - 1] >= col) {
                    return Err(format!(
                        "the Jacobian sparsity pattern's row {i} has unsorted, duplicate or out-of-range columns"
                    ));
                }
                if !have_diag && col > i {
                    diag.push(w_idx.len());
                    w_idx.push(i);
                    have_diag = true;
                }
                if col == i {
                    diag.push(w_idx.len());
                    have_diag = true;
                }
                jmap.push(w_idx.len());
                w_idx.push(col);
            }
            if !have_diag {
                diag.push(w_idx.len());
                w_idx.push(i);
            }
            w_ptr.push(w_idx.len());
        }
        let symref = SymbolicSparseColMatRef::new_checked(n, n, &w_ptr, None, &w_idx);
        let symbolic = factorize_symbolic_lu(symref, Default::default())
            .map_err(|e| format!("sparse LU analysis failed: {e:?}"))?;
        let req = StackReq::any_of(&[
            symbolic.factorize_numeric_lu_scratch::<f64>(Par::Seq, Default::default()),
            symbolic.solve_in_place_scratch::<f64>(1, Par::Seq),
        ]);
        let nnz_w = w_idx.len();
        Ok(SparseSys {
            jval: vec![0.0; sp.nnz()],
            w_ptr,
            w_idx,
            w_val: vec![0.0; nnz_w],
            jmap,
            diag,
            symbolic,
            numeric: NumericLu::new(),
            mem: MemBuffer::new(req),
        })
    }

    fn factor(&mut self, n: usize, c: f64) -> Result<(), Singular> {
        self.w_val.fill(0.0);
        for (k, &p) in self.jmap.iter().enumerate() {
            self.w_val[p] = -c * self.jval[k];
        }
        for &p in &self.diag {
            self.w_val[p] += 1.0;
        }
        let symref = SymbolicSparseColMatRef::new_checked(n, n, &self.w_ptr, None, &self.w_idx);
        let w = SparseColMatRef::new(symref, &self.w_val);
        self.symbolic
            .factorize_numeric_lu(
                &mut self.numeric,
                w,
                Par::Seq,
                MemStack::new(&mut self.mem),
                Default::default(),
            )
            .map(|_| ())
            .map_err(|_| Singular)
    }
}
