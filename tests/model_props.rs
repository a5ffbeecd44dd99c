//! Random *valid* models compile and run on both back ends with equal results.
//!
//! The generator writes what a user would: scalar and vector states, params, lets, an
//! `mlp`, indexed families, and sometimes one `brownian` in a state-dependent noise term
//! (the shape issue 14's probe found panicking in 53 of 53 cases). Each model runs through
//! the command line with `--backend jit` and `--backend interp`; the CSVs must be equal byte
//! for byte (the back ends agree bit for bit, docs/language.md), and both must exit 0.

use proptest::prelude::*;
use proptest::test_runner::Config;
use std::process::Command;

#[derive(Clone, Debug)]
struct Spec {
    /// Sizes of the states: 0 is a scalar.
    sizes: Vec<usize>,
    /// One expression template per state (indices into TERMS).
    terms: Vec<(usize, usize)>,
    coef: Vec<i32>,
    with_param: bool,
    with_let: bool,
    with_net: bool,
    with_family: bool,
    noise: Option<usize>,
}

/// Scalar terms in a state `s` (scalar form) and the first state `a`.
const TERMS: &[&str] = &[
    "sin(S)",
    "S*A",
    "tanh(S - A)",
    "exp(-S*S)",
    "S/(1 + A*A)",
    "max(S, A)",
    "ifelse(S > A, S, -A)",
    "cos(t)*S",
    "S^2",
    "sqrt(1 + S*S)",
];

fn spec() -> impl Strategy<Value = Spec> {
    (1usize..4).prop_flat_map(|n| {
        (
            proptest::collection::vec(prop_oneof![Just(0usize), 2usize..5], n),
            proptest::collection::vec((0..TERMS.len(), 0..TERMS.len()), n),
            proptest::collection::vec(-9i32..10, n),
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
            prop_oneof![Just(None), (0..n).prop_map(Some)],
        )
            .prop_map(
                |(sizes, terms, coef, with_param, with_let, with_net, with_family, noise)| Spec {
                    sizes,
                    terms,
                    coef,
                    with_param,
                    with_let,
                    with_net,
                    with_family,
                    noise,
                },
            )
    })
}

fn term(k: usize, s: &str, a: &str) -> String {
    TERMS[k].replace('S', s).replace('A', a)
}

/// The model text of a spec: every right side is −x + 0.5·tanh(…), so solutions stay
/// bounded whatever the terms.
fn model(sp: &Spec) -> String {
    let mut m = String::new();
    let name = |i: usize| format!("s{i}");
    // The first state read as a scalar everywhere.
    let a = if sp.sizes[0] == 0 {
        name(0)
    } else {
        "s0[0]".to_string()
    };
    if sp.with_param {
        m += "param k = 0.7\n";
    }
    let k = if sp.with_param { "k" } else { "0.7" };
    if sp.noise.is_some() {
        m += "brownian W\n";
    }
    for (i, &n) in sp.sizes.iter().enumerate() {
        if n == 0 {
            m += &format!("state {} = {}\n", name(i), 0.1 * (i as f64 + 1.0));
        } else {
            let init: Vec<String> = (0..n)
                .map(|j| format!("{}", 0.1 * (j as f64 + 1.0)))
                .collect();
            m += &format!("state {}[{n}] = [{}]\n", name(i), init.join(", "));
        }
    }
    if sp.with_let {
        m += &format!("let g = tanh({a}) * {k}\n");
    }
    let g = if sp.with_let { "g" } else { "1" };
    let vec_state = sp.sizes.iter().position(|&n| n > 0);
    if sp.with_net
        && let Some(v) = vec_state
    {
        let n = sp.sizes[v];
        m += &format!("net f = mlp({n} -> 3 -> {n}, tanh)\n");
    }
    for (i, &n) in sp.sizes.iter().enumerate() {
        let (t1, t2) = sp.terms[i];
        let c = f64::from(sp.coef[i]) / 10.0;
        let noise = match sp.noise {
            Some(j) if j == i => format!(" + 0.2*{}*W", name(i)),
            _ => String::new(),
        };
        if n == 0 {
            let s = name(i);
            let body = format!("{} + {c}*{}", term(t1, &s, &a), term(t2, &s, g));
            m += &format!("{s}' = -{s} + 0.5*tanh({body}){noise}\n");
        } else if sp.with_family && Some(i) != sp.noise && n > 1 {
            let s = format!("{}[i]", name(i));
            let prev = format!("{}[i-1]", name(i));
            let body = format!("{} + {c}*{}", term(t1, &s, &a), term(t2, &prev, g));
            m += &format!("{}[0]' = -{}[0]\n", name(i), name(i));
            m += &format!("{s}' = -{s} + {k}*tanh({body}) for i in 1..{n}\n");
        } else {
            let s = name(i);
            let net = if sp.with_net && Some(i) == vec_state {
                format!(" + 0.3*f({s})")
            } else {
                String::new()
            };
            let body = format!("{} + {c}*{}", term(t1, &s, &a), term(t2, &s, g));
            m += &format!("{s}' = -{s} + 0.5*tanh({body}){net}{noise}\n");
        }
    }
    m
}

fn run(path: &std::path::Path, backend: &str, sde: bool) -> (Option<i32>, String, String) {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ndec"));
    c.arg("run")
        .arg(path)
        .args(["--t1", "1", "--backend", backend]);
    if sde {
        c.args([
            "--method",
            "euler_maruyama",
            "--dt",
            "0.01",
            "--saveat",
            "0.1",
            "--seed",
            "5",
        ]);
    } else {
        c.args(["--saveat", "0.1"]);
    }
    let o = c.output().unwrap();
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

proptest! {
    #![proptest_config(Config { cases: 128, failure_persistence: None, ..Config::default() })]
    #[test]
    fn random_valid_models_run_the_same_on_both_back_ends(sp in spec()) {
        let text = model(&sp);
        let dir = std::env::temp_dir().join(format!("ndec-model-props-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("m.nde");
        std::fs::write(&path, &text).unwrap();
        let sde = sp.noise.is_some();
        let (jc, jout, jerr) = run(&path, "jit", sde);
        let (ic, iout, ierr) = run(&path, "interp", sde);
        prop_assert_eq!(jc, Some(0), "jit failed on\n{}\n{}", text, jerr);
        prop_assert_eq!(ic, Some(0), "interpreter failed on\n{}\n{}", text, ierr);
        prop_assert!(jout.lines().count() >= 11, "{}", jout);
        prop_assert!(jout == iout, "back ends differ on\n{}\njit:\n{}\ninterp:\n{}", text, jout, iout);
    }
}
