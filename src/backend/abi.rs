//! The kernel ABI as a list: every IR function a model's solvers and sensitivities call,
//! under one stable name each, derived the way the CPU path derives it.
//!
//! Owns *which* functions make up a model's kernel set and how each is obtained from the
//! lowered IR (the same derivative calls, with the same arguments, as `program`,
//! `sensitivity` and `stochastic` make), so that every back end that compiles "all of a
//! model" compiles the same set. It must never generate code or evaluate anything.

use crate::ir::{Function, Lowered};

/// Systems up to this many states always get a dense Jacobian (as `program::Program`).
pub const DENSE_JACOBIAN_MAX: usize = 48;
/// Above [`DENSE_JACOBIAN_MAX`], a structurally sparse Jacobian is compressed by colouring
/// when fewer than this fraction of its entries can be non-zero (as `program::Program`).
pub const SPARSE_JACOBIAN_DENSITY: f64 = 0.25;

/// The Jacobian ∂f/∂u of a vector field as the CPU solvers compile it: dense (column-major,
/// unfused) for small or dense systems, else the colour-compressed sparse kernel.
pub fn state_jacobian(f: &Function) -> Function {
    let Some(u) = f.arg_index("u") else {
        return crate::diff::jacobian_dense(f, "u", false);
    };
    if f.args[u].len > DENSE_JACOBIAN_MAX
        && let Some(sj) = crate::diff::jacobian_sparse(f, "u")
        && sj.pattern.density() < SPARSE_JACOBIAN_DENSITY
    {
        return sj.function;
    }
    crate::diff::jacobian_dense(f, "u", false)
}

/// One kernel of the set: its ABI name (a C identifier) and its IR.
#[derive(Clone, Debug)]
pub struct AbiKernel {
    pub name: &'static str,
    pub function: Function,
}

/// Every kernel of a lowered model, in a fixed order:
/// - `vector_field` (an SDE's drift in its own calculus), `initial`, `outputs`;
/// - when the field has a state argument: `jacobian` ([`state_jacobian`]), `jvp` and `vjp`
///   with respect to `u` and `p` (unfused, as the sensitivities call them), `outputs_vjp`
///   (u, p) and `initial_vjp` (p);
/// - for a delay model: `delays` and `history`;
/// - for an SDE: `drift_ito`, `drift_stratonovich`, `diffusion`, `sde_ito`,
///   `sde_stratonovich`, `sde_milstein`, `sde_diffusion` (drift and diffusion together)
///   and `sde_ito_vjp` (u, p; the SDE adjoint's kernel).
pub fn kernels(l: &Lowered) -> Vec<AbiKernel> {
    let k = |name: &'static str, function: Function| AbiKernel { name, function };
    let f = &l.vector_field;
    let mut ks = vec![
        k("vector_field", f.clone()),
        k("initial", l.initial.clone()),
        k("outputs", l.outputs.clone()),
    ];
    let wrt = |g: &Function, names: &[&'static str]| -> Vec<&'static str> {
        names
            .iter()
            .copied()
            .filter(|a| g.arg_index(a).is_some())
            .collect()
    };
    if f.arg_index("u").is_some() {
        let up = wrt(f, &["u", "p"]);
        ks.push(k("jacobian", state_jacobian(f)));
        ks.push(k("jvp", crate::diff::jvp(f, &up, false)));
        ks.push(k("vjp", crate::diff::vjp(f, &up, false)));
        let o = &l.outputs;
        ks.push(k(
            "outputs_vjp",
            crate::diff::vjp(o, &wrt(o, &["u", "p"]), false),
        ));
        let i = &l.initial;
        ks.push(k(
            "initial_vjp",
            crate::diff::vjp(i, &wrt(i, &["p"]), false),
        ));
    }
    if l.delays.outputs.first().is_some_and(|(b, _)| b.len > 0) {
        ks.push(k("delays", l.delays.clone()));
        ks.push(k("history", l.history.clone()));
    }
    if let Some(sde) = &l.sde {
        ks.push(k("drift_ito", sde.drift_ito.clone()));
        ks.push(k("drift_stratonovich", sde.drift_stratonovich.clone()));
        ks.push(k("diffusion", sde.diffusion.clone()));
        ks.push(k("sde_ito", sde.step_ito.clone()));
        ks.push(k("sde_stratonovich", sde.step_stratonovich.clone()));
        ks.push(k("sde_milstein", sde.step_milstein.clone()));
        ks.push(k("sde_diffusion", sde.drift_diffusion.clone()));
        let s = &sde.step_ito;
        ks.push(k(
            "sde_ito_vjp",
            crate::diff::vjp(s, &wrt(s, &["u", "p"]), false),
        ));
    }
    ks
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::{self, Source};

    fn lower(text: &str) -> Lowered {
        let src = Source::new("m.nde", text);
        driver::lower(&driver::check(&src).expect("checks")).expect("lowers")
    }

    #[test]
    fn an_ode_has_the_derivative_kernels_and_an_sde_its_noise_kernels() {
        let ode = lower("param a = 1\nstate x = 1\nx' = -a*x\n");
        let names: Vec<_> = kernels(&ode).iter().map(|k| k.name).collect();
        assert_eq!(
            names,
            [
                "vector_field",
                "initial",
                "outputs",
                "jacobian",
                "jvp",
                "vjp",
                "outputs_vjp",
                "initial_vjp"
            ]
        );
        let sde = lower("param a = 1\nbrownian W\nstate x = 1\nx' = -a*x + 0.5*x*W\n");
        let names: Vec<_> = kernels(&sde).iter().map(|k| k.name).collect();
        assert_eq!(names.len(), 16, "{names:?}");
        assert!(names.ends_with(&["sde_diffusion", "sde_ito_vjp"]));
    }

    #[test]
    fn the_jacobian_is_the_one_the_solvers_compile() {
        let l = lower("param a = 1\nstate x = 1\nstate y = 2\nx' = -a*x*y\ny' = x\n");
        let jac = kernels(&l)
            .into_iter()
            .find(|k| k.name == "jacobian")
            .unwrap();
        assert_eq!(
            jac.function,
            crate::diff::jacobian_dense(&l.vector_field, "u", false)
        );
        // A 200-state chain is sparse: the compressed kernel (3 colours for a tridiagonal).
        let text = "const N = 200\nstate u[N] = 1\nu[0]' = -u[0]\n\
                    u[i]' = u[i-1] - 2*u[i] + u[i+1] for i in 1..N-1\nu[N-1]' = -u[N-1]\n";
        let l = lower(text);
        let jac = state_jacobian(&l.vector_field);
        assert_eq!(jac.args.last().map(|a| a.name.as_str()), Some("seeds"));
        assert_eq!(jac.outputs[0].0.len, 3 * 200);
    }
}
