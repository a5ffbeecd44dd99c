//! Gradients of the MSE loss: every sensitivity method against central differences of the
//! loss itself (tight tolerances) and against each other — the discrete adjoint against
//! forward sensitivities taken with the same steps to ~1e-10, checkpointed against stored
//! — on Lotka–Volterra, a model whose initial state depends on a param, a UDE with an MLP
//! and a stiff model; and a short Adam fit that recovers a decay rate.

use ndec::driver::Source;
use ndec::ensemble::Target;
use ndec::program::{Backend, Program};
use ndec::runtime::{Method, SolveOptions};
use ndec::sensitivity::{AdjointOptions, Gradient, Kernels, Sensitivity};
use ndec::train::{self, Adam};

fn setup(text: &str, data: &str) -> (Program, Vec<train::Data>, SolveOptions) {
    let prog = Program::compile(&Source::new("m.nde", text), Backend::Jit).unwrap();
    let data = train::parse_data(data, &prog.model.row_names()).unwrap();
    let mut opts = SolveOptions::new(Method::Tsit5, 0.0, 0.0);
    opts.rtol = 1e-12;
    opts.atol = vec![1e-12];
    (prog, data, opts)
}

fn grad(
    kernels: &Kernels,
    m: Sensitivity,
    p: &[f64],
    data: &[train::Data],
    opts: &SolveOptions,
    adjoint: AdjointOptions,
) -> Gradient {
    train::loss_and_gradient(kernels, m, p, data, opts, adjoint)
        .unwrap_or_else(|e| panic!("{}: {e}", m.name()))
}

fn rel(a: &[f64], b: &[f64]) -> f64 {
    let scale = b.iter().fold(0.0f64, |m, x| m.max(x.abs())).max(1e-300);
    a.iter()
        .zip(b)
        .fold(0.0f64, |m, (x, y)| m.max((x - y).abs()))
        / scale
}

fn central_differences(
    prog: &Program,
    p: &[f64],
    data: &[train::Data],
    opts: &SolveOptions,
) -> Vec<f64> {
    (0..p.len())
        .map(|k| {
            let h = 1e-5 * p[k].abs().max(1e-2);
            let (mut pp, mut pm) = (p.to_vec(), p.to_vec());
            pp[k] += h;
            pm[k] -= h;
            (train::loss(prog, &pp, data, opts).unwrap()
                - train::loss(prog, &pm, data, opts).unwrap())
                / (2.0 * h)
        })
        .collect()
}

/// Every method agrees with central differences to 1e-6 (componentwise, relative to the
/// larger of the two or 1e-8), and the discrete adjoint with forward sensitivities to 1e-10.
fn check_all_methods(text: &str, data: &str) {
    let (prog, data, opts) = setup(text, data);
    check_methods(prog, &data, &opts);
}

fn check_methods(prog: Program, data: &[train::Data], opts: &SolveOptions) {
    let (data, opts) = (data.to_vec(), opts.clone());
    let kernels = Kernels::new(prog);
    let prog = kernels.program();
    let p = prog.default_params();
    let fd = central_differences(prog, &p, &data, &opts);
    let l0 = train::loss(prog, &p, &data, &opts).unwrap();
    let adj = AdjointOptions::default();
    let mut by_method = Vec::new();
    for m in Sensitivity::ALL {
        let g = grad(&kernels, m, &p, &data, &opts, adj);
        assert!(
            (g.loss - l0).abs() <= 1e-9 * l0.abs().max(1e-12),
            "{}: loss {l0} vs {}",
            m.name(),
            g.loss
        );
        for (k, (gk, fk)) in g.grad.iter().zip(&fd).enumerate() {
            let scale = gk.abs().max(fk.abs()).max(1e-8);
            assert!(
                (gk - fk).abs() / scale < 1e-6,
                "{}: param {k}: {gk} vs central difference {fk}",
                m.name(),
            );
        }
        by_method.push(g.grad);
    }
    let (forward, discrete) = (&by_method[0], &by_method[1]);
    let d = rel(discrete, forward);
    assert!(d < 1e-10, "discrete vs forward: {d:e}");
}

const LV: &str = "param a = 1.5, b = 1.0, c = 3.0, d = 1.0\nstate x = 1.0\nstate y = 1.0\nx' = a*x - b*x*y\ny' = c*x*y - d*y\n";

#[test]
fn lotka_volterra_every_method_agrees() {
    check_all_methods(LV, "t,x,y\n0.5,0.9,1.1\n1.0,,1.3\n2.5,1.7,0.2\n");
}

#[test]
fn a_param_in_the_initial_state_gets_its_sensitivity() {
    check_all_methods(
        "param x0 = 0.7, k = 0.4\nstate x = x0\nstate y = 2*x0\nx' = -k*x + sin(y)\ny' = -y*x\n",
        "t,x,y\n0.0,0.6,\n1.0,0.5,0.8\n3.0,0.2,0.1\n",
    );
}

#[test]
fn a_universal_de_with_an_mlp_gets_exact_weight_gradients() {
    check_all_methods(
        "param a = 1.3\nnet nn = mlp(2 -> 4 -> 2, tanh, init = glorot(seed = 3))\nstate x = 0.5\nstate y = 1.2\nlet z = nn([x, y])\nx' = a*x - x*y + z[0]\ny' = x*y - y + z[1]\n",
        "t,x,y\n0.5,0.6,1.0\n1.0,0.8,0.9\n",
    );
}

/// Several observed trajectories (a `traj` column), each with its own start and fixed
/// params (as a vary file sets them): the loss is the mean over all their cells; a param a
/// trajectory fixes gets no gradient from it.
#[test]
fn several_observed_trajectories_with_their_own_starts() {
    let (prog, mut sets, opts) = setup(
        LV,
        "traj,t,x,y\n1,0.7,1.2,0.8\n0,0.5,0.9,1.1\n0,1.0,,1.3\n1,2.0,0.4,\n",
    );
    assert_eq!(sets.len(), 2);
    assert_eq!((sets[0].traj, sets[1].traj), (Some(0), Some(1)));
    assert_eq!(sets[1].times, vec![0.7, 2.0]);
    sets[0].fixed = vec![(Target::State(0), 0.8)];
    sets[1].fixed = vec![(Target::State(1), 1.4), (Target::Param(3), 0.9)];
    check_methods(prog, &sets, &opts);
}

/// Observed outputs: an output that depends on params directly (its ∂o/∂p enters the
/// gradient) and a vector output, mixed with a state column and missing cells.
#[test]
fn observed_outputs_get_exact_gradients() {
    check_all_methods(
        "param a = 1.5, b = 1.0, c = 3.0, d = 1.0, s = 0.7\nstate x = 1.0\nstate y = 1.0\nx' = a*x - b*x*y\ny' = c*x*y - d*y\noutput m = s*x*y\noutput r = [x + y, x/y]\n",
        "t,m,x,r[1]\n0.5,0.6,0.9,\n1.0,,1.1,0.9\n2.5,0.2,,2.0\n",
    );
}

/// Loose tolerances, many save points between steps: the discrete adjoint is the exact
/// derivative of what was computed (dense output included), so it still matches forward
/// sensitivities taken with the same steps to rounding, for every explicit method and
/// with checkpoints.
#[test]
fn discrete_adjoint_is_the_derivative_of_the_computed_solution() {
    let rows: String = (1..=40)
        .map(|i| format!("{},{},{}\n", i as f64 * 0.1, 1.0 + 0.01 * i as f64, 0.9))
        .collect();
    let (prog, data, mut opts) = setup(
        "param a = 1.5, b = 1.0, c = 3.0, d = 1.0\nnet nn = mlp(2 -> 3 -> 2, tanh, init = glorot(seed = 1))\nstate x = 1.0\nstate y = 1.0\nlet z = nn([x, y])\nx' = a*x - b*x*y + z[0]\ny' = c*x*y - d*y + z[1]\n",
        &format!("t,x,y\n{rows}"),
    );
    let kernels = Kernels::new(prog);
    let prog = kernels.program();
    let p = prog.default_params();
    opts.rtol = 1e-4;
    opts.atol = vec![1e-6];
    for (method, dt) in [
        (Method::Tsit5, None),
        (Method::Dopri5, None),
        (Method::Bosh3, None),
        (Method::Rk4, Some(0.07)),
        (Method::Euler, Some(0.01)),
    ] {
        opts.method = method;
        opts.dt = dt;
        let all = AdjointOptions::default();
        let f = grad(&kernels, Sensitivity::Forward, &p, &data, &opts, all);
        let d = grad(&kernels, Sensitivity::Discrete, &p, &data, &opts, all);
        let e = rel(&d.grad, &f.grad);
        assert!(e < 1e-10, "{method}: discrete vs forward {e:e}");
        assert_eq!(
            d.stats.accepted, f.stats.accepted,
            "{method}: the same steps"
        );
        for k in [1, 3, 1000] {
            let c = AdjointOptions {
                checkpoints: Some(k),
                ..all
            };
            let dc = grad(&kernels, Sensitivity::Discrete, &p, &data, &opts, c);
            let e = rel(&dc.grad, &d.grad);
            assert!(e < 1e-13, "{method}: {k} checkpoints vs all {e:e}");
        }
    }
}

/// The continuous adjoints approximate the continuous gradient: their distance to the
/// discrete one shrinks with the tolerance, and the seminorm changes the work, not the
/// answer.
#[test]
fn continuous_adjoints_converge_to_the_discrete_gradient() {
    let (prog, data, mut opts) = setup(LV, "t,x,y\n0.5,0.9,1.1\n1.0,,1.3\n2.5,1.7,0.2\n");
    let kernels = Kernels::new(prog);
    let prog = kernels.program();
    let p = prog.default_params();
    let adj = AdjointOptions::default();
    for m in [
        Sensitivity::Backsolve,
        Sensitivity::Interpolating,
        Sensitivity::Quadrature,
    ] {
        let mut errs = Vec::new();
        for tol in [1e-5, 1e-8, 1e-11] {
            opts.rtol = tol;
            opts.atol = vec![tol];
            let d = grad(&kernels, Sensitivity::Discrete, &p, &data, &opts, adj);
            let c = grad(&kernels, m, &p, &data, &opts, adj);
            errs.push(rel(&c.grad, &d.grad));
        }
        assert!(
            errs[2] < 1e-8 && errs[2] < errs[0] * 1e-3,
            "{}: {errs:?}",
            m.name()
        );
    }
}

/// The seminorm leaves the parameter integral out of the backward error norm: on a model
/// with many weights that integral dominates the full norm, so the seminorm takes fewer
/// backward steps for the same gradient.
#[test]
fn the_seminorm_saves_backward_steps_on_a_neural_model() {
    let (prog, data, mut opts) = setup(
        "net nn = mlp(2 -> 16 -> 2, tanh, init = glorot(seed = 5))\nstate u[2] = [2, 0]\nu' = nn(u^3)\n",
        "t,u[0],u[1]\n1,1.5,0.5\n2,0.5,1.0\n3,-0.5,1.0\n",
    );
    opts.rtol = 1e-7;
    opts.atol = vec![1e-9];
    let kernels = Kernels::new(prog);
    let prog = kernels.program();
    let p = prog.default_params();
    let semi = AdjointOptions::default();
    let full = AdjointOptions {
        seminorm: false,
        ..semi
    };
    for m in [Sensitivity::Backsolve, Sensitivity::Interpolating] {
        let a = grad(&kernels, m, &p, &data, &opts, semi);
        let b = grad(&kernels, m, &p, &data, &opts, full);
        assert!(rel(&a.grad, &b.grad) < 1e-5, "{}", m.name());
        eprintln!(
            "{}: seminorm {} steps, full {}",
            m.name(),
            a.stats.accepted,
            b.stats.accepted
        );
        assert!(
            a.stats.accepted < b.stats.accepted,
            "{}: seminorm {} steps vs full norm {}",
            m.name(),
            a.stats.accepted,
            b.stats.accepted
        );
    }
}

/// A stiff model (Robertson's kinetics, rates as params): forward sensitivities through
/// rodas5 and bdf, with the generated Jacobian of the sensitivity system, agree with the
/// discrete adjoint through hundreds of tsit5 steps, at tight tolerances.
#[test]
fn a_stiff_model_gets_gradients_from_the_stiff_solvers() {
    let (prog, data, mut opts) = setup(
        "param k1 = 0.04, k2 = 3e7, k3 = 1e4\nstate y1 = 1\nstate y2 = 0\nstate y3 = 0\ny1' = -k1*y1 + k3*y2*y3\ny2' = k1*y1 - k2*y2^2 - k3*y2*y3\ny3' = k2*y2^2\n",
        "t,y1,y2,y3\n0.1,0.995,,0.004\n0.5,0.98,,0.018\n1.0,0.966,3e-5,0.033\n",
    );
    let kernels = Kernels::new(prog);
    let prog = kernels.program();
    let p = prog.default_params();
    let adj = AdjointOptions::default();
    opts.max_steps = 1_000_000;
    let reference = grad(&kernels, Sensitivity::Discrete, &p, &data, &opts, adj);
    assert!(
        reference.stats.accepted > 500,
        "{}",
        reference.stats.accepted
    );
    for (m, tol, agree) in [(Method::Rodas5, 1e-12, 1e-6), (Method::Bdf, 1e-10, 1e-6)] {
        opts.method = m;
        opts.rtol = tol;
        opts.atol = vec![tol];
        let g = grad(&kernels, Sensitivity::Forward, &p, &data, &opts, adj);
        let dl = (g.loss - reference.loss).abs() / reference.loss;
        eprintln!("{m}: loss relative difference {dl:e}");
        assert!(dl < agree, "{m}: loss {dl:e}");
        let e = rel(&g.grad, &reference.grad);
        eprintln!("{m}: {} steps, relative difference {e:e}", g.stats.accepted);
        assert!(e < agree, "{m}: {e:e}");
        // auto picks forward sensitivities for stiff methods.
        assert_eq!(Sensitivity::auto(3, 300, m), Sensitivity::Forward);
    }
}

#[test]
fn adam_recovers_a_decay_rate() {
    // Data from x' = -0.8 x, x(0) = 2; the model starts at k = 0.3.
    let rows: String = (1..=10)
        .map(|i| {
            let t = i as f64 * 0.3;
            format!("{t},{}\n", 2.0 * (-0.8 * t).exp())
        })
        .collect();
    let (prog, data, mut opts) = setup(
        "param k = 0.3\nstate x = 2\nx' = -k*x\n",
        &format!("t,x\n{rows}"),
    );
    opts.rtol = 1e-8;
    opts.atol = vec![1e-10];
    let kernels = Kernels::new(prog);
    let prog = kernels.program();
    let mut p = prog.default_params();
    let mut adam = Adam::new(0.05, p.len());
    let first = train::loss(prog, &p, &data, &opts).unwrap();
    for _ in 0..300 {
        let g = grad(
            &kernels,
            Sensitivity::Discrete,
            &p,
            &data,
            &opts,
            AdjointOptions::default(),
        );
        adam.update(&mut p, &g.grad);
    }
    let last = train::loss(prog, &p, &data, &opts).unwrap();
    assert!(last < 1e-6 * first, "loss {first} -> {last}");
    assert!((p[0] - 0.8).abs() < 1e-3, "k = {}", p[0]);
}

/// A neural model whose sensitivity system is large (2 states, 42 weights and biases: 86
/// augmented entries) gets its stiff-solver Jacobian colour-compressed and sparse, and the
/// forward gradient through rodas5, bdf and auto still agrees with the discrete adjoint of
/// tsit5.
#[test]
fn a_large_sensitivity_system_uses_a_sparse_jacobian_and_stays_exact() {
    let (prog, data, mut opts) = setup(
        "net nn = mlp(2 -> 8 -> 2, tanh, init = glorot(seed = 3))\nstate x = 1\nstate y = 0.5\nlet z = nn([x, y])\nx' = -x + 0.1*z[0]\ny' = -2*y + 0.1*z[1]\n",
        "t,x,y\n0.5,0.62,0.2\n1.0,0.37,0.07\n",
    );
    let kernels = Kernels::new(prog);
    let prog = kernels.program();
    let p = prog.default_params();
    assert_eq!(p.len(), 42);
    let adj = AdjointOptions::default();
    let reference = grad(&kernels, Sensitivity::Discrete, &p, &data, &opts, adj);
    for (m, tol) in [
        (Method::Rodas5, 1e-11),
        (Method::Bdf, 1e-11),
        (Method::Auto, 1e-11),
    ] {
        opts.method = m;
        opts.rtol = tol;
        opts.atol = vec![tol];
        let g = grad(&kernels, Sensitivity::Forward, &p, &data, &opts, adj);
        let e = rel(&g.grad, &reference.grad);
        eprintln!("{m}: relative difference {e:e}");
        assert!(e < 1e-6, "{m}: {e:e}");
    }
}

/// A neural model observed through a state and an output, 60 rows: what the window tests
/// slice.
fn windowed_ude() -> (Program, train::Data, SolveOptions) {
    let rows: String = (0..60)
        .map(|i| {
            let t = 0.05 * i as f64;
            let (x, y) = (1.0 + 0.3 * t.sin(), 0.8 * (-0.2 * t).exp());
            // The output column is missing at some rows, including window starts.
            let m = if i % 7 == 3 {
                String::new()
            } else {
                format!("{}", x * y)
            };
            format!("{t},{x},{y},{m}\n")
        })
        .collect();
    let (prog, mut data, mut opts) = setup(
        "param a = 1.3\nnet nn = mlp(2 -> 6 -> 2, tanh, init = glorot(seed = 5))\nstate x = 0.5\nstate y = 1.2\nlet z = nn([x, y])\nx' = a*x - x*y + z[0]\ny' = x*y - y + z[1]\noutput m = a*x*y\n",
        &format!("t,x,y,m\n{rows}"),
    );
    opts.rtol = 1e-9;
    opts.atol = vec![1e-11];
    (prog, data.remove(0), opts)
}

/// A minibatch of windows (one drawn twice, one starting where an output is missing) is the
/// sum of its windows' gradients taken one at a time, each weighted by its share of the
/// batch's observed cells — to rounding — and the same bits on one thread as on four.
#[test]
fn a_minibatch_gradient_is_the_sum_of_its_windows() {
    let (prog, data, opts) = windowed_ude();
    let kernels = Kernels::new(prog);
    let p = kernels.program().default_params();
    let (adj, len) = (AdjointOptions::default(), 6);
    let starts = [3, 40, 10, 3, 54];
    let batch = |starts: &[usize]| {
        train::window_loss_and_gradient(
            &kernels,
            Sensitivity::Discrete,
            &p,
            &data,
            &opts,
            adj,
            starts,
            len,
        )
        .unwrap()
    };
    let all = batch(&starts);
    let cells = |s: usize| data.window(s, len).count() as f64;
    let total: f64 = starts.iter().map(|&s| cells(s)).sum();
    let mut sum = vec![0.0; p.len()];
    let mut loss = 0.0;
    for &s in &starts {
        let g = batch(&[s]);
        let share = cells(s) / total;
        loss += g.loss * share;
        for (a, b) in sum.iter_mut().zip(&g.grad) {
            *a += b * share;
        }
    }
    assert!(rel(&sum, &all.grad) < 1e-13, "{}", rel(&sum, &all.grad));
    assert!(
        (loss - all.loss).abs() <= 1e-13 * all.loss,
        "{loss} vs {}",
        all.loss
    );
    assert!(all.grad.iter().all(|g| g.is_finite()) && all.grad.iter().any(|g| *g != 0.0));
    let on = |threads: usize| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(|| batch(&starts))
    };
    let (one, four) = (on(1), on(4));
    assert_eq!(one.grad, all.grad);
    assert_eq!(four.grad, all.grad);
    assert_eq!(one.loss.to_bits(), four.loss.to_bits());
}

/// Window gradients by the discrete adjoint equal forward sensitivities (same steps) and
/// central differences of the windowed loss (each window solved from its observed start).
#[test]
fn window_gradients_agree_with_forward_sensitivities_and_differences() {
    let (prog, data, opts) = windowed_ude();
    let kernels = Kernels::new(prog);
    let p = kernels.program().default_params();
    let (adj, len, starts) = (AdjointOptions::default(), 8, [0, 17, 30]);
    let at = |m: Sensitivity, q: &[f64]| {
        train::window_loss_and_gradient(&kernels, m, q, &data, &opts, adj, &starts, len).unwrap()
    };
    let discrete = at(Sensitivity::Discrete, &p);
    let forward = at(Sensitivity::Forward, &p);
    assert!(rel(&discrete.grad, &forward.grad) < 1e-9);
    for k in 0..p.len() {
        let h = 1e-5 * p[k].abs().max(1e-2);
        let (mut pp, mut pm) = (p.clone(), p.clone());
        pp[k] += h;
        pm[k] -= h;
        let fd =
            (at(Sensitivity::Discrete, &pp).loss - at(Sensitivity::Discrete, &pm).loss) / (2.0 * h);
        let scale = fd.abs().max(discrete.grad[k].abs()).max(1e-8);
        assert!(
            (fd - discrete.grad[k]).abs() < 1e-6 * scale,
            "param {k}: {fd} vs {}",
            discrete.grad[k]
        );
    }
}

/// A model with a large layer (64 × 64: the products go through `math::matvec`, see
/// `math::is_large_layer`): the discrete adjoint still equals forward sensitivities taken with
/// the same steps, to 1e-10 relative.
#[test]
fn a_wide_model_gets_the_same_gradient_from_the_discrete_adjoint_and_forward_sensitivities() {
    let (prog, data, opts) = setup(
        "net nn = mlp(1 -> 64 -> 64 -> 1, tanh, init = glorot(seed = 4))\nstate x = 0.5\nx' = 0.5*nn([x])[0] - 0.1*x\n",
        "t,x\n0.1,0.45\n0.2,0.5\n",
    );
    assert!(ndec::math::is_large_layer(64, 64));
    let kernels = Kernels::new(prog);
    let p = kernels.program().default_params();
    let adj = AdjointOptions::default();
    let d = grad(&kernels, Sensitivity::Discrete, &p, &data, &opts, adj);
    let f = grad(&kernels, Sensitivity::Forward, &p, &data, &opts, adj);
    assert!(rel(&d.grad, &f.grad) < 1e-10, "{}", rel(&d.grad, &f.grad));
    assert!(d.grad.iter().filter(|g| **g != 0.0).count() > 4000);
}
