//! The Jacobian and the iteration matrix W = I − c·J of the implicit methods.
//!
//! Three back ends, chosen once per solve:
//! - `Small` (n ≤ 16, dense): hand-written LU with partial pivoting on a row-major copy,
//!   specialised per size up to 8 (`with_const_n!`) and solved in registers: for a 3-state
//!   chemistry problem the solve, not the model, is most of a Rosenbrock step;
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
        /// Row permutation: (P b)_k = b[perm[k]].
        perm: Vec<usize>,
        /// 1 / U's diagonal (back substitution multiplies: a division's latency would sit
        /// on the solve's critical path n times).
        dinv: Vec<f64>,
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
                perm: vec![0; n],
                dinv: vec![0.0; n],
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
            Kind::Small {
                jac,
                lu,
                perm,
                dinv,
            } => small_lu(n, c, jac, lu, perm, dinv),
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
        if let Kind::Small { lu, perm, dinv, .. } = &self.kind {
            return match small_solve(n, lu, perm, dinv, b) {
                true => Ok(()),
                false => Err(Singular),
            };
        }
        let b_finite = all_finite(b);
        match &mut self.kind {
            Kind::Small { .. } => unreachable!("solved above"),
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
    perm: &mut [usize],
    dinv: &mut [f64],
) -> Result<(), Singular> {
    with_const_n!(n, |n| small_lu_n(n, c, jac, lu, perm, dinv))
}

#[inline(always)]
fn small_lu_n(
    n: usize,
    c: f64,
    jac: &[f64],
    lu: &mut [f64],
    perm: &mut [usize],
    dinv: &mut [f64],
) -> Result<(), Singular> {
    let (jac, lu, perm, dinv) = (
        &jac[..n * n],
        &mut lu[..n * n],
        &mut perm[..n],
        &mut dinv[..n],
    );
    for (k, p) in perm.iter_mut().enumerate() {
        *p = k;
    }
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
        if p != k {
            perm.swap(k, p);
            for j in 0..n {
                lu.swap(k * n + j, p * n + j);
            }
        }
        let inv = 1.0 / lu[k * n + k];
        dinv[k] = inv;
        for i in k + 1..n {
            let l = lu[i * n + k] * inv;
            lu[i * n + k] = l;
            for j in k + 1..n {
                lu[i * n + j] -= l * lu[k * n + j];
            }
        }
    }
    Ok(())
}

/// Solves W x = b in place; false when b was finite and x is not.
fn small_solve(n: usize, lu: &[f64], perm: &[usize], dinv: &[f64], b: &mut [f64]) -> bool {
    with_const_n!(n, |n| small_solve_n(n, lu, perm, dinv, b))
}

#[inline(always)]
fn small_solve_n(n: usize, lu: &[f64], perm: &[usize], dinv: &[f64], b: &mut [f64]) -> bool {
    let (lu, perm, dinv) = (&lu[..n * n], &perm[..n], &dinv[..n]);
    // Both substitutions run on a local copy, which stays in registers once n is a constant.
    let mut x = [0.0f64; SMALL_N];
    // x·0 is 0 for finite x and NaN otherwise.
    let (mut probe_in, mut probe_out) = (0.0, 0.0);
    for i in 0..n {
        let bi = b[perm[i]];
        probe_in += bi * 0.0;
        let mut s = bi;
        for j in 0..i {
            s -= lu[i * n + j] * x[j];
        }
        x[i] = s;
    }
    for i in (0..n).rev() {
        let mut s = x[i];
        for j in i + 1..n {
            s -= lu[i * n + j] * x[j];
        }
        x[i] = s * dinv[i];
        probe_out += x[i] * 0.0;
    }
    b[..n].copy_from_slice(&x[..n]);
    probe_out == 0.0 || probe_in != 0.0
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

#[cfg(test)]
mod tests {
    use super::super::super::{OdeJacobian, OdeRhs, Stats};
    use super::{LinSys, SMALL_N, Singular};

    /// A constant Jacobian (row-major), given to the linear solver as a vector field's.
    struct ConstJac(usize, Vec<f64>);
    impl OdeRhs for ConstJac {
        fn dim(&self) -> usize {
            self.0
        }
        fn eval(&mut self, _t: f64, _u: &[f64], du: &mut [f64]) {
            du.fill(0.0);
        }
    }
    impl OdeJacobian for ConstJac {
        fn jac(&mut self, _t: f64, _u: &[f64], j: &mut [f64]) {
            j.copy_from_slice(&self.1);
        }
    }

    fn factored(n: usize, jac: Vec<f64>, c: f64) -> Result<LinSys, Singular> {
        let mut rhs = ConstJac(n, jac);
        let mut lin = LinSys::new(&rhs).unwrap();
        let mut stats = Stats::default();
        assert!(lin.eval_jac(&mut rhs, 0.0, &vec![0.0; n], &mut stats));
        lin.factor(c, &mut stats)?;
        Ok(lin)
    }

    #[test]
    fn small_and_faer_lu_solve_w_to_rounding_for_every_size() {
        // Sizes on the specialised path (1..=8), the generic small path (9..=16) and faer's;
        // J is a deterministic pseudo-random matrix whose rows are permuted so that pivoting
        // is needed, and the answer is checked by the residual of W x = b.
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 11) as f64 / (1u64 << 53) as f64 - 0.5
        };
        for n in (1..=SMALL_N + 4).chain([40]) {
            let jac: Vec<f64> = (0..n * n).map(|_| 10.0 * next()).collect();
            let c = 0.7;
            let mut lin = factored(n, jac.clone(), c).unwrap();
            let b: Vec<f64> = (0..n).map(|_| next()).collect();
            let mut x = b.clone();
            lin.solve(&mut x).unwrap();
            let mut worst: f64 = 0.0;
            for i in 0..n {
                let mut wx = x[i];
                for k in 0..n {
                    wx -= c * jac[i * n + k] * x[k];
                }
                worst = worst.max((wx - b[i]).abs());
            }
            let scale = x.iter().fold(1.0f64, |m, v| m.max(v.abs())) * (1.0 + 7.0 * n as f64);
            assert!(worst <= 1e-12 * scale, "n = {n}: residual {worst:e}");
        }
    }

    #[test]
    fn small_solve_reports_a_non_finite_result_only_for_a_finite_right_hand_side() {
        // W = I − c J = diag(0.5, 0.25): regular, but W⁻¹ b overflows for b near f64::MAX.
        let mut lin = factored(2, vec![0.5, 0.0, 0.0, 0.75], 1.0).unwrap();
        let mut x = [1.0, 1e308];
        assert_eq!(lin.solve(&mut x), Err(Singular));
        let mut y = [f64::NAN, 1.0];
        assert_eq!(lin.solve(&mut y), Ok(()));
        assert!(y[0].is_nan());
        let mut z = [1.0, 2.0];
        assert_eq!(lin.solve(&mut z), Ok(()));
        assert_eq!(z, [2.0, 8.0]);
    }
}
