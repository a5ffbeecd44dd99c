//! The library facade (`ndec::compile`, `Model::solve`, `Model::solve_vjp`): vector–Jacobian
//! products of the solve map against central differences and against each other, batches
//! against single solves bit for bit, and every error kind.

use ndec::{Error, Kind, Model, Options, Values};

const LV: &str = "param a = 1.5, b = 1.0, c = 3.0, d = 1.0
state x = 1.0
state y = 1.0
x' = a*x - b*x*y
y' = c*x*y - d*y
";

/// A small neural ODE: tanh MLP plus a decay rate (29 params).
const NEURAL: &str = "param k = 0.3
state u[2] = [1.0, -0.5]
net f = mlp(2 -> 5 -> 2, tanh, init = glorot(seed = 3))
u' = f(u) - k*u
";

const DELAY: &str = "param k = 1.2, a = 0.4
state x = 1.0
history x = 1.0 + 0.5*t
x' = -k*x(t - 1) + a*x
";

const GBM: &str = "param mu = 0.4, sigma = 0.3
state x = 1.0
brownian W
x' = mu*x + sigma*x*W
";

const ROBER: &str = "param k1 = 0.04, k2 = 3e7, k3 = 1e4
state y[3] = [1, 0, 0]
y[0]' = -k1*y[0] + k3*y[1]*y[2]
y[1]' = k1*y[0] - k3*y[1]*y[2] - k2*y[1]^2
y[2]' = k2*y[1]^2
";

fn model(text: &str) -> Model {
    ndec::compile_source("m.nde", text).unwrap_or_else(|e| panic!("{e}"))
}

fn opts(method: &str, sensitivity: &str) -> Options {
    Options {
        method: Some(method.into()),
        rtol: Some(1e-10),
        atol: Some(vec![1e-12]),
        sensitivity: Some(sensitivity.into()),
        ..Options::default()
    }
}

/// A fixed, non-trivial cotangent of `len` entries.
fn cotangent(len: usize) -> Vec<f64> {
    (0..len)
        .map(|i| ((i * 7 + 3) % 11) as f64 / 5.0 - 1.0)
        .collect()
}

/// ⟨ȳ, y(θ, u0)⟩.
fn pairing(m: &Model, ts: &[f64], theta: &[f64], u0: &[f64], ybar: &[f64], o: &Options) -> f64 {
    let y = m
        .solve(ts, Values::one(theta), Some(Values::one(u0)), o)
        .unwrap();
    y.values().iter().zip(ybar).map(|(a, b)| a * b).sum()
}

/// Central differences of ⟨ȳ, y⟩ in every entry of θ, then of u0.
fn central(
    m: &Model,
    ts: &[f64],
    theta: &[f64],
    u0: &[f64],
    ybar: &[f64],
    o: &Options,
) -> Vec<f64> {
    let mut out = Vec::new();
    for which in 0..2 {
        let base = if which == 0 { theta } else { u0 };
        for k in 0..base.len() {
            let h = 1e-6 * base[k].abs().max(1e-1);
            let (mut plus, mut minus) = (base.to_vec(), base.to_vec());
            plus[k] += h;
            minus[k] -= h;
            let f = |x: &[f64]| match which {
                0 => pairing(m, ts, x, u0, ybar, o),
                _ => pairing(m, ts, theta, x, ybar, o),
            };
            out.push((f(&plus) - f(&minus)) / (2.0 * h));
        }
    }
    out
}

fn max_rel(a: &[f64], b: &[f64]) -> f64 {
    let scale = b.iter().fold(0.0f64, |m, x| m.max(x.abs())).max(1e-300);
    a.iter()
        .zip(b)
        .fold(0.0f64, |m, (x, y)| m.max((x - y).abs()))
        / scale
}

/// (θ̄, ū0) by the facade's pullback.
fn vjp(m: &Model, ts: &[f64], theta: &[f64], u0: &[f64], ybar: &[f64], o: &Options) -> Vec<f64> {
    let (_, pb) = m
        .solve_vjp(ts, Values::one(theta), Some(Values::one(u0)), o)
        .unwrap_or_else(|e| panic!("{e}"));
    let g = pb.apply(ybar).unwrap_or_else(|e| panic!("{e}"));
    let mut out = g.theta().to_vec();
    out.extend_from_slice(g.u0().expect("u0 was given"));
    out
}

/// Every ODE sensitivity gives θ̄ and ū0 of the solve map equal to central differences.
#[test]
fn every_ode_sensitivity_matches_central_differences() {
    let ts = [0.0, 0.3, 1.1, 2.0];
    for (text, method) in [(LV, "tsit5"), (NEURAL, "dopri5")] {
        let m = model(text);
        let theta = m.default_params();
        let u0: Vec<f64> = m
            .initial_state(&theta)
            .unwrap()
            .iter()
            .map(|x| x * 1.1)
            .collect();
        let ybar = cotangent(ts.len() * m.dim());
        let fd = central(&m, &ts, &theta, &u0, &ybar, &opts(method, "discrete"));
        for s in [
            "forward",
            "discrete",
            "backsolve",
            "interpolating",
            "quadrature",
        ] {
            let g = vjp(&m, &ts, &theta, &u0, &ybar, &opts(method, s));
            let err = max_rel(&g, &fd);
            assert!(
                err < 1e-6,
                "{method} {s}: relative error {err:e}\n{g:?}\n{fd:?}"
            );
        }
    }
}

/// Forward sensitivities (with the state columns) and the discrete adjoint are both the
/// derivative of the computed solution: they agree to rounding.
#[test]
fn forward_and_discrete_agree_to_rounding() {
    let m = model(NEURAL);
    let ts = [0.0, 0.5, 1.0, 3.0];
    let theta = m.default_params();
    let u0 = [0.7, 0.2];
    let ybar = cotangent(ts.len() * 2);
    let mut o = opts("tsit5", "forward");
    o.rtol = Some(1e-5);
    let fwd = vjp(&m, &ts, &theta, &u0, &ybar, &o);
    o.sensitivity = Some("discrete".into());
    let disc = vjp(&m, &ts, &theta, &u0, &ybar, &o);
    assert!(max_rel(&fwd, &disc) < 1e-11, "{}", max_rel(&fwd, &disc));
}

/// Without u0 the gradient flows into θ through the model's initial state: here u0 = [1,
/// -0.5] is constant, so it equals the u0-given gradient's θ part, and a model whose
/// initial state reads a param gets that path too.
#[test]
fn without_u0_the_initial_state_is_differentiated_through_theta() {
    let m = model("param k = 0.7, x0 = 2.0\nstate x = x0\nx' = -k*x\n");
    let ts = [0.0, 1.0, 2.0];
    let theta = m.default_params();
    for s in ["forward", "discrete", "interpolating"] {
        let (_, pb) = m
            .solve_vjp(&ts, Values::one(&theta), None, &opts("tsit5", s))
            .unwrap();
        let g = pb.apply(&[0.0, 1.0, 1.0]).unwrap();
        assert!(g.u0().is_none());
        // y = x0 e^{-kt}: d/dk Σ = -x0 (e^{-k} + 2 e^{-2k}), d/dx0 = 1·0 + e^{-k} + e^{-2k}.
        let (k, x0) = (0.7f64, 2.0f64);
        let dk = -x0 * ((-k).exp() + 2.0 * (-2.0 * k).exp());
        let dx0 = (-k).exp() + (-2.0 * k).exp();
        assert!(
            (g.theta()[0] - dk).abs() < 1e-8,
            "{s}: {} vs {dk}",
            g.theta()[0]
        );
        assert!(
            (g.theta()[1] - dx0).abs() < 1e-8,
            "{s}: {} vs {dx0}",
            g.theta()[1]
        );
    }
}

/// A batch of 64 is 64 single solves, bit for bit, forward and backward; θ's gradient is
/// summed over the batch when θ is one shared row and stacked when it has a batch axis.
#[test]
fn batch_equals_single_solves_bit_for_bit() {
    let m = model(NEURAL);
    let ts = [0.0, 0.25, 1.0, 2.5];
    let b = 64;
    let theta = m.default_params();
    let np = theta.len();
    let u0s: Vec<f64> = (0..b * 2).map(|i| (i as f64 * 0.37).sin()).collect();
    let thetas: Vec<f64> = (0..b)
        .flat_map(|r| theta.iter().map(move |x| x * (1.0 + 0.01 * r as f64)))
        .collect();
    let o = Options {
        sensitivity: Some("discrete".into()),
        ..Options::default()
    };
    let per = ts.len() * 2;
    let ybar = cotangent(b * per);
    // Shared θ, batched u0.
    let (y, pb) = m
        .solve_vjp(&ts, Values::one(&theta), Some(Values::batch(&u0s, b)), &o)
        .unwrap();
    assert_eq!(y.shape(), vec![b, ts.len(), 2]);
    let g = pb.apply(&ybar).unwrap();
    assert_eq!((g.theta().len(), g.u0().unwrap().len()), (np, b * 2));
    let mut sum = vec![0.0; np];
    for r in 0..b {
        let u0 = &u0s[r * 2..r * 2 + 2];
        let (y1, pb1) = m
            .solve_vjp(&ts, Values::one(&theta), Some(Values::one(u0)), &o)
            .unwrap();
        assert_eq!(y1.values(), &y.values()[r * per..(r + 1) * per]);
        let g1 = pb1.apply(&ybar[r * per..(r + 1) * per]).unwrap();
        assert_eq!(g1.u0().unwrap(), &g.u0().unwrap()[r * 2..r * 2 + 2]);
        for (s, x) in sum.iter_mut().zip(g1.theta()) {
            *s += x;
        }
    }
    assert_eq!(sum, g.theta());
    // Batched θ, no u0: stacked θ cotangents.
    let (y, pb) = m
        .solve_vjp(&ts, Values::batch(&thetas, b), None, &o)
        .unwrap();
    let g = pb.apply(&ybar).unwrap();
    assert_eq!(g.theta_rows(), Some(b));
    for r in [0, 17, 63] {
        let th = &thetas[r * np..(r + 1) * np];
        let (y1, pb1) = m.solve_vjp(&ts, Values::one(th), None, &o).unwrap();
        assert_eq!(y1.values(), &y.values()[r * per..(r + 1) * per]);
        let g1 = pb1.apply(&ybar[r * per..(r + 1) * per]).unwrap();
        assert_eq!(g1.theta(), &g.theta()[r * np..(r + 1) * np]);
    }
}

/// A pullback may be applied again: the same cotangent gives the same result, and it is
/// linear in the cotangent.
#[test]
fn pullback_is_repeatable_and_linear() {
    let m = model(LV);
    let ts = [0.0, 1.0, 2.0];
    let theta = m.default_params();
    let (_, pb) = m
        .solve_vjp(
            &ts,
            Values::one(&theta),
            Some(Values::one(&[1.0, 1.0])),
            &Options::default(),
        )
        .unwrap();
    let (a, b) = (cotangent(6), vec![0.5, -1.0, 2.0, 0.0, 1.0, 1.5]);
    let ga = pb.apply(&a).unwrap();
    assert_eq!(ga, pb.apply(&a).unwrap());
    let gb = pb.apply(&b).unwrap();
    let ab: Vec<f64> = a.iter().zip(&b).map(|(x, y)| 2.0 * x + y).collect();
    let gab = pb.apply(&ab).unwrap();
    let lin: Vec<f64> = ga
        .theta()
        .iter()
        .zip(gb.theta())
        .map(|(x, y)| 2.0 * x + y)
        .collect();
    assert!(max_rel(gab.theta(), &lin) < 1e-12);
}

/// A stiff model (ROBER, rodas5): forward sensitivities with an implicit method through the
/// sparse/dense augmented Jacobian, θ̄ and ū0 against central differences.
#[test]
fn stiff_vjp_matches_central_differences() {
    let m = model(ROBER);
    let ts = [0.0, 1.0, 10.0, 40.0];
    let theta = m.default_params();
    let u0 = [1.0, 0.0, 0.0];
    let ybar = cotangent(ts.len() * 3);
    let mut o = opts("rodas5", "auto");
    o.rtol = Some(1e-11);
    o.atol = Some(vec![1e-14]);
    let g = vjp(&m, &ts, &theta, &u0, &ybar, &o);
    let fd = central(&m, &ts, &theta, &u0, &ybar, &o);
    // Per entry, relative to each entry's own size (they span ten orders of magnitude).
    for (i, (a, b)) in g.iter().zip(&fd).enumerate() {
        assert!(
            (a - b).abs() <= 1e-5 * b.abs().max(1e-9),
            "entry {i}: {a} vs {b}"
        );
    }
}

/// Delay models: forward sensitivities and the discrete adjoint through the method of
/// steps, θ̄ and ū0 against central differences and each other.
#[test]
fn dde_vjp_matches_central_differences() {
    let m = model(DELAY);
    assert_eq!(m.kind(), Kind::Dde);
    let ts = [0.0, 0.7, 1.5, 3.2];
    let theta = m.default_params();
    let u0 = [1.3];
    let ybar = cotangent(ts.len());
    let fd = central(&m, &ts, &theta, &u0, &ybar, &opts("tsit5", "discrete"));
    let fwd = vjp(&m, &ts, &theta, &u0, &ybar, &opts("tsit5", "forward"));
    let disc = vjp(&m, &ts, &theta, &u0, &ybar, &opts("tsit5", "discrete"));
    assert!(max_rel(&fwd, &fd) < 1e-6, "{fwd:?} {fd:?}");
    assert!(max_rel(&disc, &fwd) < 1e-10, "{disc:?} {fwd:?}");
}

/// SDEs: row b of a batch is noise stream (seed, b), the same path as `ndec run --ensemble`'s
/// trajectory b; gradients on that fixed path against central differences, for
/// Euler–Maruyama and reversible Heun.
#[test]
fn sde_batches_replay_paths_and_their_gradients_match() {
    let m = model(GBM);
    assert_eq!(m.kind(), Kind::Sde);
    let ts = [0.0, 0.5, 1.0];
    let theta = m.default_params();
    for method in ["euler_maruyama", "reversible_heun"] {
        let o = Options {
            method: Some(method.into()),
            dt: Some(0.01),
            seed: 7,
            ..Options::default()
        };
        let thetas: Vec<f64> = (0..5).flat_map(|_| theta.clone()).collect();
        let batch = m.solve(&ts, Values::batch(&thetas, 5), None, &o).unwrap();
        // The CLI's path of trajectory 3 under seed 7.
        let prog = m.program();
        let mut so = ndec::runtime::sde::SdeOptions::new(
            ndec::runtime::sde::SdeMethod::from_name(method).unwrap(),
            0.0,
            1.0,
        );
        (so.dt, so.seed, so.traj) = (Some(0.01), 7, 3);
        so.saveat = ndec::runtime::SaveAt::Times(ts.to_vec());
        let alone = prog
            .solve_sde(&theta, &prog.initial_state(&theta), &so)
            .unwrap();
        assert_eq!(&batch.values()[9..12], alone.sol.u.as_slice());
        // Different rows are different paths.
        assert_ne!(batch.values()[..3], batch.values()[3..6]);
        // Unbatched is stream (seed, 0).
        let one = m.solve(&ts, Values::one(&theta), None, &o).unwrap();
        assert_eq!(one.values(), &batch.values()[..3]);
        let u0 = [1.2];
        let ybar = [0.3, -1.0, 2.0];
        let g = vjp(&m, &ts, &theta, &u0, &ybar, &o);
        let fd = central(&m, &ts, &theta, &u0, &ybar, &o);
        assert!(max_rel(&g, &fd) < 1e-6, "{method}: {g:?} {fd:?}");
    }
}

/// A failed solve in trajectory 17 of a batch names it; with several failures, the first.
#[test]
fn failed_trajectory_is_named() {
    let m = model("param k = 1.0\nstate x = 1.0\nx' = k*x^2\n");
    let ts = [0.0, 0.5, 2.0];
    let mut thetas = vec![0.1; 32];
    thetas[17] = 1.0; // blows up at t = 1
    thetas[25] = 2.0;
    let err = m
        .solve(&ts, Values::batch(&thetas, 32), None, &Options::default())
        .unwrap_err();
    let Error::Solve(f) = err else {
        panic!("expected a solve failure, got {err:?}")
    };
    assert_eq!(f.trajectory(), Some(17));
    assert!(f.t() > 0.9 && f.t() < 1.01, "t = {}", f.t());
    assert!(f.to_string().contains("trajectory 17"), "{f}");
    // The same through the pullback's forward solve.
    let (_, pb) = m
        .solve_vjp(
            &ts,
            Values::batch(&vec![0.1; 32], 32),
            None,
            &Options::default(),
        )
        .unwrap();
    assert!(pb.apply(&vec![1.0; 32 * 3]).is_ok());
}

/// Bad input is a typed error naming what is wrong; nothing panics.
#[test]
fn bad_input_is_a_clear_error() {
    let m = model(LV);
    let theta = m.default_params();
    let ts = [0.0, 1.0];
    let o = Options::default();
    let input = |e: Error| match e {
        Error::Input(msg) => msg,
        other => panic!("expected an input error, got {other:?}"),
    };
    let msg = input(
        m.solve(&ts, Values::one(&theta[..3]), None, &o)
            .unwrap_err(),
    );
    assert!(
        msg.contains("theta has 3 entries") && msg.contains("4 parameters"),
        "{msg}"
    );
    let msg = input(
        m.solve(&ts, Values::batch(&[0.0; 7], 2), None, &o)
            .unwrap_err(),
    );
    assert!(msg.contains("2 batch rows"), "{msg}");
    let msg = input(
        m.solve(&ts, Values::one(&theta), Some(Values::one(&[1.0])), &o)
            .unwrap_err(),
    );
    assert!(msg.contains("u0 has 1 entries"), "{msg}");
    let mut nan = theta.clone();
    nan[2] = f64::NAN;
    let msg = input(m.solve(&ts, Values::one(&nan), None, &o).unwrap_err());
    assert!(
        msg.contains("theta[2]") && msg.contains("`c`".trim_matches('`')),
        "{msg}"
    );
    let msg = input(
        m.solve(&[0.0, 1.0, 1.0], Values::one(&theta), None, &o)
            .unwrap_err(),
    );
    assert!(msg.contains("strictly increasing"), "{msg}");
    let msg = input(m.solve(&[0.0], Values::one(&theta), None, &o).unwrap_err());
    assert!(msg.contains("at least two"), "{msg}");
    let bad = Options {
        method: Some("rk45".into()),
        ..Options::default()
    };
    let msg = input(m.solve(&ts, Values::one(&theta), None, &bad).unwrap_err());
    assert!(msg.contains("unknown method `rk45`"), "{msg}");
    let sde_method = Options {
        method: Some("euler_maruyama".into()),
        ..Options::default()
    };
    assert!(matches!(
        m.solve(&ts, Values::one(&theta), None, &sde_method),
        Err(Error::Unsupported(_))
    ));
    let bad_sens = Options {
        sensitivity: Some("magic".into()),
        ..Options::default()
    };
    let msg = input(
        m.solve_vjp(&ts, Values::one(&theta), None, &bad_sens)
            .unwrap_err(),
    );
    assert!(msg.contains("unknown sensitivity `magic`"), "{msg}");
    let (_, pb) = m.solve_vjp(&ts, Values::one(&theta), None, &o).unwrap();
    let msg = input(pb.apply(&[1.0; 3]).unwrap_err());
    assert!(msg.contains("(2, 2)"), "{msg}");
    let neg = Options {
        rtol: Some(-1.0),
        ..Options::default()
    };
    assert!(matches!(
        m.solve(&ts, Values::one(&theta), None, &neg),
        Err(Error::Input(_))
    ));
}

/// A model error carries the same rendered diagnostics as `ndec check`; a missing file is
/// an I/O error naming it.
#[test]
fn model_errors_render_like_check() {
    let Err(Error::Model(e)) = ndec::compile_source("bad.nde", "state x = 1\nx' = -k*x\n") else {
        panic!("expected a model error")
    };
    assert!(e.rendered().contains("bad.nde:2:7"), "{}", e.rendered());
    assert_eq!(e.diagnostics().len(), 1);
    assert!(e.diagnostics()[0].is_error());
    let Err(Error::Io { path, .. }) = ndec::compile("/no/such/model.nde") else {
        panic!("expected an I/O error")
    };
    assert_eq!(path, "/no/such/model.nde");
}

/// The parameter layout as data, and params files round-tripping through JSON.
#[test]
fn layout_and_params_files() {
    let m = model(NEURAL);
    assert_eq!(m.num_params(), 1 + (2 * 5 + 5) + (5 * 2 + 2));
    let layout = m.param_layout();
    assert_eq!(
        layout[0],
        ndec::ParamEntry::Scalar {
            name: "k".into(),
            offset: 0
        }
    );
    let ndec::ParamEntry::Net { name, layers } = &layout[1] else {
        panic!("a net")
    };
    assert_eq!(name, "f");
    assert_eq!(
        layers[0],
        ndec::LayerEntry {
            weight_offset: 1,
            rows: 5,
            cols: 2,
            bias_offset: 11
        }
    );
    assert_eq!((layers[1].weight_offset, layers[1].bias_offset), (16, 26));
    assert_eq!(m.param_name(12), "f layer 1 bias[1]");
    assert_eq!(m.param_name(3), "f layer 1 weight[1][0]");
    let theta: Vec<f64> = (0..m.num_params()).map(|i| i as f64 * 0.1).collect();
    let dir = std::env::temp_dir().join(format!("ndec-api-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("p.json");
    m.save_params(&theta, &path).unwrap();
    assert_eq!(m.load_params(&path).unwrap(), theta);
    assert!(matches!(
        m.load_params(dir.join("missing.json")),
        Err(Error::Io { .. })
    ));
    std::fs::write(&path, "{\"k\": \"x\"}").unwrap();
    assert!(matches!(m.load_params(&path), Err(Error::Input(_))));
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(m.states(), ["u[0]", "u[1]"]);
    assert_eq!(m.kind().name(), "ode");
}

/// The discrete adjoint's pullback keeps the forward solve's tape: its solution is the plain
/// solve's, bit for bit, and applying it is the library's discrete gradient of ⟨ȳ, y⟩.
#[test]
fn discrete_pullback_reverses_the_recorded_solve() {
    use ndec::sensitivity::{self, AdjointOptions, Cotangent, Sensitivity, Start};
    let m = model(NEURAL);
    let ts = [0.0, 0.4, 1.3, 2.0];
    let theta = m.default_params();
    let u0 = [0.3, 0.9];
    let o = opts("tsit5", "discrete");
    let plain = m
        .solve(&ts, Values::one(&theta), Some(Values::one(&u0)), &o)
        .unwrap();
    let (y, pb) = m
        .solve_vjp(&ts, Values::one(&theta), Some(Values::one(&u0)), &o)
        .unwrap();
    assert_eq!(y.values(), plain.values());
    let ybar = cotangent(8);
    let g = pb.apply(&ybar).unwrap();
    let mut so = ndec::runtime::SolveOptions::new(ndec::runtime::Method::Tsit5, 0.0, 2.0);
    (so.rtol, so.atol, so.saveat) = (
        1e-10,
        vec![1e-12],
        ndec::runtime::SaveAt::Times(ts.to_vec()),
    );
    let direct = sensitivity::gradient(
        m.kernels(),
        Sensitivity::Discrete,
        &theta,
        Start::Input(&u0),
        &so,
        &Cotangent(&ybar),
        AdjointOptions::default(),
    )
    .unwrap();
    assert_eq!(g.theta(), direct.grad.as_slice());
    assert_eq!(g.u0(), direct.start.as_deref());
    // With a checkpoint limit the segments are recomputed: the same numbers.
    let limited = Options {
        checkpoints: Some(3),
        ..o
    };
    let (_, pb) = m
        .solve_vjp(&ts, Values::one(&theta), Some(Values::one(&u0)), &limited)
        .unwrap();
    assert_eq!(pb.apply(&ybar).unwrap(), g);
}

/// A result too large to allocate is refused before any work, not an allocation abort.
#[test]
fn huge_results_are_refused_quickly() {
    let m = model(LV);
    let theta = m.default_params();
    let ts: Vec<f64> = (0..1_000_000).map(|i| i as f64 * 1e-6).collect();
    let u0 = vec![1.0; 2 * 1000];
    let started = std::time::Instant::now();
    let Err(Error::Input(msg)) = m.solve(
        &ts,
        Values::one(&theta),
        Some(Values::batch(&u0, 1000)),
        &Options::default(),
    ) else {
        panic!("expected an input error")
    };
    assert!(msg.contains("1000 × 1000000 × 2"), "{msg}");
    assert!(started.elapsed().as_secs_f64() < 1.0);
}
