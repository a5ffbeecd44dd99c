//! Derivative transforms checked against second methods: the dot-product identity
//! ⟨w, J v⟩ = ⟨Jᵀw, v⟩, central differences with a step sweep, dense Jacobians against
//! stacked JVPs, and sparse patterns and values against the dense Jacobian — on every
//! model of the corpus and on random models.

use ndec::backend::interp::eval;
use ndec::diff;
use ndec::driver::{self, Source};
use ndec::ir::{Function, Lowered};
use proptest::prelude::*;

fn lowered(name: &str, text: &str) -> Option<Lowered> {
    let m = driver::check(&Source::new(name, text)).ok()?;
    driver::lower(&m).ok()
}

fn corpus() -> Vec<(String, Lowered)> {
    let mut out = Vec::new();
    for dir in ["tests/data/ok", "examples"] {
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .collect();
        files.sort();
        for p in files {
            if p.extension().and_then(|e| e.to_str()) != Some("nde") {
                continue;
            }
            let text = std::fs::read_to_string(&p).unwrap();
            if let Some(l) = lowered(&p.display().to_string(), &text) {
                out.push((p.display().to_string(), l));
            }
        }
    }
    out
}

/// A deterministic pseudo-random vector in [lo, hi).
fn vector(seed: u64, n: usize, lo: f64, hi: f64) -> Vec<f64> {
    let s = ndec::rng::Stream::new(seed, 99);
    (0..n)
        .map(|k| lo + (hi - lo) * s.uniform(k as u64))
        .collect()
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Arguments of a vector field kernel at a point: t, u, p, then anything else (lags,
/// inputs) set to the state or small values.
fn point(f: &Function, seed: u64) -> Vec<Vec<f64>> {
    f.args
        .iter()
        .enumerate()
        .map(|(k, a)| match a.name.as_str() {
            "t" => vec![0.3],
            "p" => vector(seed + 1, a.len, 0.2, 0.9),
            _ => vector(seed + 10 + k as u64, a.len, 0.3, 1.2),
        })
        .collect()
}

fn refs(v: &[Vec<f64>]) -> Vec<&[f64]> {
    v.iter().map(Vec::as_slice).collect()
}

/// J·v by the JVP kernel, and Jᵀ·w by the VJP kernel, for argument `x`.
fn jvp_vjp(f: &Function, x: &str, at: &[Vec<f64>], v: &[f64], w: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let jf = diff::jvp(f, &[x], false);
    ndec::ir::validate(&jf).unwrap();
    let mut args = at.to_vec();
    args.push(v.to_vec());
    let jv = eval(&jf, &refs(&args)).remove(0);
    let vf = diff::vjp(f, &[x], false);
    ndec::ir::validate(&vf).unwrap();
    let mut args = at.to_vec();
    args.push(w.to_vec());
    let jtw = eval(&vf, &refs(&args)).remove(0);
    (jv, jtw)
}

/// Checks every identity for argument `x` of `f` at a point; returns a description of the
/// first failure.
fn check_derivatives(name: &str, f: &Function, x: &str, seed: u64) -> Result<(), String> {
    let xi = f.arg_index(x).unwrap();
    let n = f.args[xi].len;
    let m = f.outputs[0].0.len;
    if n == 0 || m == 0 {
        return Ok(());
    }
    let at = point(f, seed);
    let v = vector(seed + 2, n, -1.0, 1.0);
    let w = vector(seed + 3, m, -1.0, 1.0);
    let (jv, jtw) = jvp_vjp(f, x, &at, &v, &w);
    let (lhs, rhs) = (dot(&w, &jv), dot(&jtw, &v));
    let scale = w
        .iter()
        .zip(&jv)
        .map(|(a, b)| (a * b).abs())
        .sum::<f64>()
        .max(1e-300);
    if (lhs - rhs).abs() > 1e-12 * scale {
        return Err(format!(
            "{name} d/d{x}: dot-product identity {lhs} vs {rhs}"
        ));
    }
    // Central differences, best over a step sweep.
    let fx = |s: f64| {
        let mut a = at.clone();
        for k in 0..n {
            a[xi][k] += s * v[k];
        }
        eval(f, &refs(&a)).remove(0)
    };
    let norm = jv.iter().map(|x| x.abs()).fold(0.0, f64::max).max(1e-8);
    let mut best = f64::INFINITY;
    for e in 2..8 {
        let h = 10f64.powi(-e);
        let (fp, fm) = (fx(h), fx(-h));
        let err = (0..m)
            .map(|i| ((fp[i] - fm[i]) / (2.0 * h) - jv[i]).abs())
            .fold(0.0, f64::max);
        best = best.min(err / norm);
    }
    if best > 1e-7 {
        return Err(format!(
            "{name} d/d{x}: JVP differs from central differences by {best:e} (relative)"
        ));
    }
    Ok(())
}

#[test]
fn jvp_and_vjp_agree_with_each_other_and_with_finite_differences_on_the_corpus() {
    let mut failures = Vec::new();
    let mut checked = 0;
    for (name, l) in corpus() {
        for x in ["u", "p"] {
            checked += 1;
            if let Err(e) = check_derivatives(&name, &l.vector_field, x, 7) {
                failures.push(e);
            }
        }
    }
    assert!(checked > 40, "only {checked} derivative checks ran");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The dense Jacobian kernel's columns are the JVPs with unit seeds.
fn dense_jacobian(f: &Function, at: &[Vec<f64>]) -> Vec<f64> {
    let jf = diff::jacobian_dense(f, "u", false);
    ndec::ir::validate(&jf).unwrap();
    eval(&jf, &refs(at)).remove(0)
}

#[test]
fn dense_jacobians_equal_stacked_jvps() {
    for (name, l) in corpus() {
        let f = &l.vector_field;
        let n = f.args[f.arg_index("u").unwrap()].len;
        if n == 0 || n > 40 {
            continue;
        }
        let at = point(f, 3);
        let jac = dense_jacobian(f, &at);
        let jf = diff::jvp(f, &["u"], false);
        for k in 0..n {
            let mut e = vec![0.0; n];
            e[k] = 1.0;
            let mut args = at.clone();
            args.push(e);
            let col = eval(&jf, &refs(&args)).remove(0);
            for i in 0..n {
                let (a, b) = (jac[k * n + i], col[i]);
                assert!(
                    (a - b).abs() <= 1e-14 * (1.0 + b.abs()),
                    "{name}: J[{i},{k}] = {a} but the JVP gives {b}"
                );
            }
        }
    }
}

#[test]
fn sparse_patterns_cover_the_true_nonzeros_and_values_match() {
    let mut sparse_checked = 0;
    for (name, l) in corpus() {
        let f = &l.vector_field;
        let n = f.args[f.arg_index("u").unwrap()].len;
        if n == 0 || n > 200 {
            continue;
        }
        let Some(sj) = diff::jacobian_sparse(f, "u") else {
            continue;
        };
        ndec::ir::validate(&sj.function).unwrap();
        let at = point(f, 5);
        let jac = dense_jacobian(f, &at);
        // Every numerically nonzero entry is in the pattern.
        for i in 0..n {
            for k in 0..n {
                if jac[k * n + i] != 0.0 {
                    assert!(
                        sj.pattern.row(i).contains(&k),
                        "{name}: J[{i},{k}] != 0 is missing from the pattern"
                    );
                }
            }
        }
        // Decompressed values equal the dense Jacobian.
        let mut args = at.clone();
        args.push(sj.seeds.clone());
        let comp = eval(&sj.function, &refs(&args)).remove(0);
        let mut nz = 0;
        for i in 0..n {
            for &k in sj.pattern.row(i) {
                let v = comp[sj.gather[nz] as usize];
                let d = jac[k * n + i];
                assert!(
                    (v - d).abs() <= 1e-13 * (1.0 + d.abs()),
                    "{name}: sparse J[{i},{k}] = {v}, dense {d}"
                );
                nz += 1;
            }
        }
        sparse_checked += 1;
    }
    assert!(sparse_checked > 20);
}

#[test]
fn stencil_patterns_are_exact_and_need_three_colours() {
    for n in [10usize, 1000, 100_000] {
        let text = format!(
            "const N = {n}, D = 0.01, dx = 1/(N+1)\nstate u[N] = 0.5\nu[0]' = D*(-2*u[0] + u[1])/dx^2\nu[i]' = D*(u[i-1] - 2*u[i] + u[i+1])/dx^2 for i in 1..N-1\nu[N-1]' = D*(u[N-2] - 2*u[N-1])/dx^2\n"
        );
        let l = lowered("heat.nde", &text).unwrap();
        let sj = diff::jacobian_sparse(&l.vector_field, "u").unwrap();
        assert_eq!(sj.pattern.nnz(), 3 * n - 2, "tridiagonal pattern");
        for i in 0..n {
            let want: Vec<usize> = (i.saturating_sub(1)..(i + 2).min(n)).collect();
            assert_eq!(sj.pattern.row(i), want.as_slice());
        }
        assert_eq!(sj.colours, 3);
        // The kernel stays O(model text): a fixed number of nodes whatever N is.
        assert!(
            sj.function.nodes.len() < 200,
            "{} nodes at N = {n}",
            sj.function.nodes.len()
        );
    }
}

/// Random scalar expressions over three states and two params, kept inside the domains
/// of log and sqrt.
fn expr_strategy() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just("x".to_string()),
        Just("y".to_string()),
        Just("z".to_string()),
        Just("a".to_string()),
        Just("b".to_string()),
        Just("t".to_string()),
        (1..9i32).prop_map(|k| format!("{}", k as f64 / 4.0)),
    ];
    leaf.prop_recursive(5, 40, 3, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a} + {b})")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a} - {b})")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a} * {b})")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a} / (1.5 + sin({b})))")),
            (inner.clone(), 0..5i32).prop_map(|(a, k)| format!("({a})^{k}")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("(1.2 + sin({a}))^({b})")),
            inner.clone().prop_map(|a| format!("-{a}")),
            inner.clone().prop_map(|a| format!("exp(0.3*{a})")),
            inner.clone().prop_map(|a| format!("log(1 + {a}^2)")),
            inner.clone().prop_map(|a| format!("sqrt(1 + {a}^2)")),
            inner.clone().prop_map(|a| format!("sin({a})")),
            inner.clone().prop_map(|a| format!("cos({a})")),
            inner.clone().prop_map(|a| format!("tan(0.3*sin({a}))")),
            inner.clone().prop_map(|a| format!("tanh({a})")),
            inner.clone().prop_map(|a| format!("sigmoid({a})")),
            inner.clone().prop_map(|a| format!("softplus({a})")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("min({a}, {b})")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("max({a}, {b})")),
            (inner.clone(), inner.clone(), inner.clone())
                .prop_map(|(c, a, b)| format!("ifelse({c} < 0.4, {a}, {b})")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("dot([{a}, {b}], [x, y])")),
            (inner.clone(), inner).prop_map(|(a, b)| format!("sum([{a}, {b}, x])")),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn random_models_satisfy_the_dot_product_identity_and_match_differences(
        e1 in expr_strategy(), e2 in expr_strategy(), e3 in expr_strategy(), seed in 0u64..1000
    ) {
        let text = format!(
            "param a = 0.7, b = 1.3\nstate x = 0.5\nstate y = 0.8\nstate z = 1.1\nx' = {e1}\ny' = {e2}\nz' = {e3}\n"
        );
        let l = lowered("r.nde", &text).expect("generated models are valid");
        for x in ["u", "p"] {
            // Kinks of min/max/ifelse can sit near the point; differences are then skipped
            // but the exact identity must still hold.
            if let Err(e) = check_derivatives("random", &l.vector_field, x, seed) {
                prop_assert!(e.contains("central differences"), "{e}\n{text}");
            }
        }
    }
}
