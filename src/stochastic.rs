//! The kernels an SDE solver needs, derived symbolically from the lowered model.
//!
//! Lowering gives the equations as one function `sde_field(t, u, p, w)`, affine in the
//! noise argument `w` (one entry per `brownian`), and the drift (that function with `w` a
//! structural zero). From these, with the derivative transforms of [`crate::diff`]:
//!
//! - the diffusion matrix G (n × m, column j = g_j = ∂f/∂w_j), and G·dw as the JVP of the
//!   field in `w` (so diagonal noise costs n products, not n·m);
//! - the calculus conversion: Itô drift = Stratonovich drift + ½ Σ_j (∂g_j/∂u) g_j, where
//!   each (∂g_j/∂u) g_j is a JVP of column j along itself;
//! - the Milstein product ½ (∂(G dw)/∂u)(G dw) = ½ Σ_{j,k} dw_j dw_k (∂g_k/∂u) g_j, one JVP
//!   of G·dw along itself: with commutative noise this is the whole Milstein correction
//!   in Stratonovich form (u += f_S h + G ΔW + ½ (∂(GΔW)/∂u)(GΔW));
//! - the noise class (scalar, diagonal, commutative, general; additive or not), decided
//!   structurally — commutativity is *proved* (scalar noise; additive noise; diagonal noise
//!   whose g_i depends only on u_i; or every pair L^j g_k, L^k g_j hash-consing to the same
//!   IR node), never guessed from numbers, so a model that is commutative in a way the
//!   structure does not show is classed `general`.
//!
//! The solver kernels fuse what a step needs into one call each: `sde_ito(t,u,p,dw) ->
//! (f_ito, G dw)`, `sde_stratonovich(t,u,p,dw) -> (f_strat, G dw)`, `sde_milstein(t,u,p,dw)
//! -> (f_strat, G dw, ½(∂(G dw)/∂u)(G dw))` and `sde_diffusion(t,u,p) -> (f_strat, G)` (G as
//! its diagonal for diagonal noise, else column-major n × m).

use crate::diff;
use crate::ir::noise::{inline, is_zero, zero};
use crate::ir::{Builder, Function, Lowered, Node, NodeId};
use crate::sema::model::{Calculus, Op2};

/// How the noise enters (LANGUAGE.md §4; the classes SDE solvers distinguish).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoiseClass {
    /// One Wiener process.
    Scalar,
    /// One Wiener process per state entry, each entering only its own equation.
    Diagonal,
    /// Several Wiener processes whose diffusion columns commute (L^j g_k = L^k g_j).
    Commutative,
    /// Anything else.
    General,
}

impl NoiseClass {
    pub fn name(self) -> &'static str {
        match self {
            NoiseClass::Scalar => "scalar",
            NoiseClass::Diagonal => "diagonal",
            NoiseClass::Commutative => "commutative",
            NoiseClass::General => "general",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NoiseInfo {
    pub class: NoiseClass,
    /// L^j g_k = L^k g_j for every pair (proved structurally); Milstein needs it.
    pub commutative: bool,
    /// The diffusion does not depend on the state.
    pub additive: bool,
}

impl std::fmt::Display for NoiseInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.class.name())?;
        let mut tags = Vec::new();
        if self.additive {
            tags.push("additive");
        }
        if self.commutative && self.class != NoiseClass::Commutative {
            tags.push("commutative");
        }
        if !tags.is_empty() {
            write!(f, " ({})", tags.join(", "))?;
        }
        Ok(())
    }
}

/// The IR of every SDE kernel, and the noise class.
#[derive(Clone, Debug, PartialEq)]
pub struct SdeIr {
    pub calculus: Calculus,
    /// State entries.
    pub n: usize,
    /// Wiener processes.
    pub m: usize,
    pub noise: NoiseInfo,
    /// `f = drift_ito(t, u, p)`.
    pub drift_ito: Function,
    /// `f = drift_stratonovich(t, u, p)`.
    pub drift_stratonovich: Function,
    /// `g = diffusion(t, u, p)`: G column-major (n × m), column j the coefficient of W_j.
    pub diffusion: Function,
    /// `(f, gdw) = sde_ito(t, u, p, dw)`: Itô drift and G·dw.
    pub step_ito: Function,
    /// `(f, gdw) = sde_stratonovich(t, u, p, dw)`.
    pub step_stratonovich: Function,
    /// `(f, gdw, mil) = sde_milstein(t, u, p, dw)`: Stratonovich drift, G·dw and
    /// ½ (∂(G dw)/∂u)(G dw).
    pub step_milstein: Function,
    /// `(f, g) = sde_diffusion(t, u, p)`: Stratonovich drift and G (its diagonal, length n,
    /// for diagonal noise; else column-major n × m).
    pub drift_diffusion: Function,
}

impl SdeIr {
    /// Every function, in the order `ndec compile --emit ir` prints them.
    pub fn functions(&self) -> [&Function; 7] {
        [
            &self.drift_ito,
            &self.drift_stratonovich,
            &self.diffusion,
            &self.step_ito,
            &self.step_stratonovich,
            &self.step_milstein,
            &self.drift_diffusion,
        ]
    }

    /// Whether the diffusion of `drift_diffusion` is stored as its diagonal.
    pub fn diagonal(&self) -> bool {
        self.noise.class == NoiseClass::Diagonal
    }
}

/// The text `ndec compile --emit ir` prints after the model's drift, initial values and
/// outputs: a header naming the noises, calculus and class, then both drifts, the
/// diffusion and the Milstein kernel.
pub fn ir_text(model: &crate::sema::Model, sde: &SdeIr) -> String {
    let names: Vec<&str> = model.noises.iter().map(|w| w.name.as_str()).collect();
    let mut text = format!(
        "# SDE: {} state entries, {} Wiener process(es) w = [{}], {}; noise: {}\n",
        sde.n,
        sde.m,
        names.join(", "),
        match sde.calculus {
            Calculus::Ito => "Itô",
            Calculus::Stratonovich => "Stratonovich",
        },
        sde.noise
    );
    for f in [
        &sde.drift_ito,
        &sde.drift_stratonovich,
        &sde.diffusion,
        &sde.step_milstein,
    ] {
        text.push_str(&f.to_text());
    }
    text
}

/// Derives the SDE kernels of a lowered SDE model (`None` for an ODE).
pub fn derive(l: &Lowered) -> Option<SdeIr> {
    let field = l.noise_field.as_ref()?;
    let n = field.args[field.arg_index("u")?].len;
    let m = field.args[field.arg_index("w")?].len;
    let np = field.args[field.arg_index("p")?].len;
    let drift_decl = &l.vector_field;

    // G column-major, as a function of (t, u, p).
    let jac = diff::jacobian_dense(field, "w", false);
    let diffusion = {
        let mut b = Builder::new("diffusion");
        let [t, u, p] = tup_args(&mut b, n, np);
        let w0 = zero(&mut b, m);
        let g = inline(&jac, &mut b, &[t, u, p, w0])[0];
        b.output("g", g);
        crate::opt::dce(&b.finish())
    };
    // G·dw, as a function of (t, u, p, dw).
    let gdw_fn = {
        let j = diff::jvp(field, &["w"], false);
        let mut b = Builder::new("diffusion_apply");
        let [t, u, p] = tup_args(&mut b, n, np);
        let dw = b.arg("dw", m);
        let w0 = zero(&mut b, m);
        let g = inline(&j, &mut b, &[t, u, p, w0, dw])[0];
        b.output("gdw", g);
        crate::opt::dce(&b.finish())
    };
    // Column j of G as its own function, and its JVP in u.
    let column_jvps: Vec<Function> = (0..m)
        .map(|j| {
            let mut b = Builder::new(format!("g{j}"));
            let [t, u, p] = tup_args(&mut b, n, np);
            let g = inline(&diffusion, &mut b, &[t, u, p])[0];
            let col = column(&mut b, g, n, j);
            b.output("g", col);
            diff::jvp(&crate::opt::dce(&b.finish()), &["u"], false)
        })
        .collect();

    // L^j g_k = (∂g_k/∂u) g_j in builder `b`; `None` when structurally zero.
    let lie = |b: &mut Builder,
               t: NodeId,
               u: NodeId,
               p: NodeId,
               g: NodeId,
               j: usize,
               k: usize|
     -> Option<NodeId> {
        let gj = column(b, g, n, j);
        let v = inline(&column_jvps[k], b, &[t, u, p, gj])[0];
        (!is_zero(b, v)).then_some(v)
    };

    // Drifts in both calculi: c = ½ Σ_j L^j g_j.
    let drift = |name: &str, to: Calculus| -> Function {
        let mut b = Builder::new(name);
        let [t, u, p] = tup_args(&mut b, n, np);
        let d = inline(drift_decl, &mut b, &[t, u, p])[0];
        let out = if to == l.calculus {
            d
        } else {
            let g = inline(&diffusion, &mut b, &[t, u, p])[0];
            let mut sum: Option<NodeId> = None;
            for j in 0..m {
                if let Some(v) = lie(&mut b, t, u, p, g, j, j) {
                    sum = Some(match sum {
                        None => v,
                        Some(s) => b.push(Node::Binary(Op2::Add, s, v)),
                    });
                }
            }
            match sum {
                None => d,
                Some(s) => {
                    let half = b.constant(0.5);
                    let c = b.push(Node::Binary(Op2::Mul, half, s));
                    let op = if to == Calculus::Ito {
                        Op2::Add
                    } else {
                        Op2::Sub
                    };
                    b.push(Node::Binary(op, d, c))
                }
            }
        };
        b.output("f", out);
        crate::opt::dce(&b.finish())
    };
    let drift_ito = drift("drift_ito", Calculus::Ito);
    let drift_stratonovich = drift("drift_stratonovich", Calculus::Stratonovich);

    let noise = classify(&diffusion, &gdw_fn, n, m, np, &lie);

    let step = |name: &str, d: &Function, milstein: bool| -> Function {
        let mut b = Builder::new(name);
        let [t, u, p] = tup_args(&mut b, n, np);
        let dw = b.arg("dw", m);
        let f = inline(d, &mut b, &[t, u, p])[0];
        let gdw = inline(&gdw_fn, &mut b, &[t, u, p, dw])[0];
        b.output("f", f);
        b.output("gdw", gdw);
        if milstein {
            let j = diff::jvp(&gdw_fn, &["u"], false);
            let jv = inline(&j, &mut b, &[t, u, p, dw, gdw])[0];
            let mil = if is_zero(&b, jv) {
                jv
            } else {
                let half = b.constant(0.5);
                b.push(Node::Binary(Op2::Mul, half, jv))
            };
            b.output("mil", mil);
        }
        crate::opt::dce(&b.finish())
    };
    let step_ito = step("sde_ito", &drift_ito, false);
    let step_stratonovich = step("sde_stratonovich", &drift_stratonovich, false);
    let step_milstein = step("sde_milstein", &drift_stratonovich, true);
    let drift_diffusion = {
        let mut b = Builder::new("sde_diffusion");
        let [t, u, p] = tup_args(&mut b, n, np);
        let f = inline(&drift_stratonovich, &mut b, &[t, u, p])[0];
        let g = inline(&diffusion, &mut b, &[t, u, p])[0];
        let g = if noise.class == NoiseClass::Diagonal {
            // Entry (i, i) of the column-major n × n matrix: stride n + 1.
            b.push(Node::Gather {
                v: g,
                start: 0,
                stride: n as i32 + 1,
                len: n as u32,
            })
        } else {
            g
        };
        b.output("f", f);
        b.output("g", g);
        crate::opt::dce(&b.finish())
    };
    Some(SdeIr {
        calculus: l.calculus,
        n,
        m,
        noise,
        drift_ito,
        drift_stratonovich,
        diffusion,
        step_ito,
        step_stratonovich,
        step_milstein,
        drift_diffusion,
    })
}

type Lie<'a> =
    dyn Fn(&mut Builder, NodeId, NodeId, NodeId, NodeId, usize, usize) -> Option<NodeId> + 'a;

fn classify(
    diffusion: &Function,
    gdw_fn: &Function,
    n: usize,
    m: usize,
    np: usize,
    lie: &Lie<'_>,
) -> NoiseInfo {
    let u_arg = diffusion.arg_index("u").expect("diffusion has u");
    let dep_u = diff::sparsity::pattern(diffusion, 0, u_arg);
    let additive = dep_u.as_ref().is_some_and(|p| p.nnz() == 0);
    let dw_arg = gdw_fn.arg_index("dw").expect("G·dw has dw");
    let dep_w = diff::sparsity::pattern(gdw_fn, 0, dw_arg);
    let diagonal = m == n
        && dep_w
            .as_ref()
            .is_some_and(|p| (0..n).all(|i| p.row(i).iter().all(|&j| j == i)));
    let commutative = if m == 1 || additive {
        true
    } else if diagonal {
        // g_i (entry i + i·n of G) may depend only on u_i.
        dep_u
            .as_ref()
            .is_some_and(|p| (0..n).all(|i| p.row(i + i * n).iter().all(|&k| k == i)))
    } else if m <= 16 {
        let mut b = Builder::new("commutator");
        let [t, u, p] = tup_args(&mut b, n, np);
        let g = inline(diffusion, &mut b, &[t, u, p])[0];
        (0..m).all(|j| {
            (j + 1..m).all(|k| lie(&mut b, t, u, p, g, j, k) == lie(&mut b, t, u, p, g, k, j))
        })
    } else {
        false
    };
    let class = if m == 1 {
        NoiseClass::Scalar
    } else if diagonal {
        NoiseClass::Diagonal
    } else if commutative {
        NoiseClass::Commutative
    } else {
        NoiseClass::General
    };
    NoiseInfo {
        class,
        commutative,
        additive,
    }
}

fn tup_args(b: &mut Builder, n: usize, np: usize) -> [NodeId; 3] {
    [b.arg("t", 1), b.arg("u", n), b.arg("p", np)]
}

/// Column j of a column-major n × m matrix.
fn column(b: &mut Builder, g: NodeId, n: usize, j: usize) -> NodeId {
    b.push(Node::Gather {
        v: g,
        start: (j * n) as u32,
        stride: 1,
        len: n as u32,
    })
}
