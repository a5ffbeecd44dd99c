//! Delay models through the whole pipeline (`.nde` → IR → JIT → method of steps): the unit
//! delay against its exact piecewise-polynomial solution, Mackey–Glass against a
//! tight-tolerance reference, what discontinuity tracking buys, vector states with several
//! delays against a hand-written right-hand side, lagged outputs, the interpreter against
//! the JIT, and gradients (forward sensitivities through the method of steps) against
//! central differences.

use ndec::driver::Source;
use ndec::program::{Backend, Program};
use ndec::runtime::dde::{self, DdeOptions, FnDde};
use ndec::runtime::{Method, SaveAt, Solution, SolveOptions};
use ndec::sensitivity::{AdjointOptions, Gradient, GradientError, Kernels, Sensitivity};
use ndec::train;

fn compile(text: &str) -> Program {
    Program::compile(&Source::new("m.nde", text), Backend::Jit).unwrap()
}

fn options(m: Method, t1: f64, rtol: f64, every: f64) -> SolveOptions {
    let mut o = SolveOptions::new(m, 0.0, t1);
    o.rtol = rtol;
    o.atol = vec![rtol * 1e-2];
    o.saveat = SaveAt::Every(every);
    o.max_steps = 10_000_000;
    o
}

fn solve(prog: &Program, o: &SolveOptions, track: bool) -> Solution {
    let p = prog.default_params();
    let u0 = prog.initial_state(&p);
    let dopts = DdeOptions {
        track_discontinuities: track,
    };
    prog.solve_dde(&p, &u0, o, &dopts).unwrap().0
}

fn max_diff(a: &Solution, b: &Solution) -> f64 {
    assert_eq!(a.t, b.t);
    a.u.iter()
        .zip(&b.u)
        .fold(0.0, |m, (x, y)| f64::max(m, (x - y).abs()))
}

/// x'(t) = −x(t − 1) with x = h0 before 0 and x(0) = 1: on [k, k+1] a polynomial p_k(s),
/// s = t − k, with p_{k+1}(s) = p_k(1) − ∫_0^s p_k.
fn exact_unit_delay(h0: f64, t: f64) -> f64 {
    let mut p = vec![1.0, -h0];
    let k = (t.floor() as usize).min(9);
    for _ in 0..k {
        let mut q = vec![p.iter().sum::<f64>()];
        q.extend(p.iter().enumerate().map(|(m, c)| -c / (m as f64 + 1.0)));
        p = q;
    }
    let s = t - k as f64;
    p.iter().rev().fold(0.0, |acc, c| acc * s + c)
}

const UNIT: &str = "
    param h0 = 1
    state x = 1
    history x = h0
    x' = -x(t - 1)
    output lagged = x(t - 1)
";

fn unit_error(m: Method, rtol: f64, h0: f64, track: bool) -> f64 {
    let prog = compile(&UNIT.replace("h0 = 1", &format!("h0 = {h0}")));
    let sol = solve(&prog, &options(m, 10.0, rtol, 0.05), track);
    assert_eq!(sol.len(), 201);
    sol.t
        .iter()
        .zip(&sol.u)
        .map(|(t, u)| (u - exact_unit_delay(h0, *t)).abs())
        .fold(0.0, f64::max)
}

#[test]
fn the_unit_delay_matches_its_exact_solution_to_t_10() {
    for (m, rtol, bound) in [
        (Method::Tsit5, 1e-10, 1e-8),
        (Method::Dopri5, 1e-10, 1e-8),
        (Method::Rodas5, 1e-9, 1e-7),
        (Method::Bdf, 1e-9, 1e-5),
    ] {
        let e = unit_error(m, rtol, 1.0, true);
        eprintln!("{m} rtol {rtol:e}: max error {e:.3e} on [0, 10]");
        assert!(e < bound, "{m}: {e}");
    }
}

#[test]
fn discontinuity_tracking_matters() {
    // A history that jumps at t0 (φ = 0, x(0) = 1): without stepping onto t = 1, 2, … the
    // kinks sit inside steps and the error stalls far above the tolerance.
    // (rodas5's error estimate catches the kinks by rejecting steps: there tracking saves
    // work rather than accuracy.)
    for m in [Method::Tsit5, Method::Dopri5] {
        let with = unit_error(m, 1e-9, 0.0, true);
        let without = unit_error(m, 1e-9, 0.0, false);
        eprintln!("{m}: max error {with:.3e} tracked, {without:.3e} untracked");
        assert!(with < 1e-7, "{m}: {with}");
        assert!(without > 30.0 * with, "{m}: {without} vs {with}");
    }
}

#[test]
fn mackey_glass_matches_a_tight_reference() {
    let prog = compile(
        "
        param beta = 0.2, gamma = 0.1, tau = 17
        state x = 0.5
        x' = beta*x(t - tau)/(1 + x(t - tau)^10) - gamma*x
        ",
    );
    let reference = solve(&prog, &options(Method::Tsit5, 300.0, 1e-12, 1.0), true);
    for (m, rtol, bound) in [
        (Method::Tsit5, 1e-8, 1e-6),
        (Method::Dopri5, 1e-8, 1e-6),
        (Method::Rodas5, 1e-8, 1e-6),
    ] {
        let sol = solve(&prog, &options(m, 300.0, rtol, 1.0), true);
        let e = max_diff(&sol, &reference);
        eprintln!("Mackey–Glass {m} rtol {rtol:e}: max diff {e:.3e} on [0, 300]");
        assert!(e < bound, "{m}: {e}");
    }
    // Chaotic, not settled: the reference moves over the whole range.
    let lo = reference.u.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = reference.u.iter().copied().fold(0.0, f64::max);
    assert!(hi - lo > 0.5, "[{lo}, {hi}]");
}

const TWO_DELAYS: &str = "
    param a = 0.5, tau = 0.7
    const tau2 = 1.3
    state u[2] = [1, 0.5]
    history u = [cos(t), 0.5 + t]
    u[0]' = -a*u(t - tau)[1] + 0.1*u[0]*u(t - tau2)[0]
    u[1]' = u(t - tau)[0] - a*u[1]
    output lag_sum = u(t - tau)[0] + u(t - tau2)[1]
";

/// The same model written by hand.
fn two_delays_by_hand() -> Solution {
    let (a, tau, tau2) = (0.5, 0.7, 1.3);
    let mut f = FnDde {
        dim: 2,
        tau: vec![tau, tau2],
        history: |t: f64, u: &mut [f64]| {
            u[0] = t.cos();
            u[1] = 0.5 + t;
        },
        f: |_t: f64, u: &[f64], lags: &[f64], du: &mut [f64]| {
            let (l1, l2) = (&lags[..2], &lags[2..]);
            du[0] = -a * l1[1] + 0.1 * u[0] * l2[0];
            du[1] = l1[0] - a * u[1];
        },
    };
    let o = options(Method::Tsit5, 8.0, 1e-9, 0.5);
    dde::solve_dde(&mut f, &[1.0, 0.5], &o, &DdeOptions::default()).unwrap()
}

#[test]
fn vector_states_with_two_delays_match_a_hand_written_rhs() {
    let prog = compile(TWO_DELAYS);
    assert_eq!(prog.delays(&prog.default_params()), vec![0.7, 1.3]);
    let sol = solve(&prog, &options(Method::Tsit5, 8.0, 1e-9, 0.5), true);
    let by_hand = two_delays_by_hand();
    // The same steps through the same arithmetic, up to the JIT's operation order.
    let d = max_diff(&sol, &by_hand);
    assert!(d < 1e-12, "{d}");
}

#[test]
fn the_interpreter_and_the_jit_agree() {
    let jit = compile(TWO_DELAYS);
    let interp = Program::compile(&Source::new("m.nde", TWO_DELAYS), Backend::Interpreter).unwrap();
    let o = options(Method::Dopri5, 8.0, 1e-8, 0.25);
    let (a, b) = (solve(&jit, &o, true), solve(&interp, &o, true));
    assert_eq!(a.stats.accepted, b.stats.accepted);
    let d = max_diff(&a, &b);
    assert!(d < 1e-12, "{d}");
}

#[test]
fn lagged_outputs_read_the_history_and_the_solution() {
    let prog = compile(UNIT);
    let p = prog.default_params();
    let o = options(Method::Tsit5, 5.0, 1e-10, 0.5);
    let (sol, hist) = prog
        .solve_dde(&p, &[1.0], &o, &DdeOptions::default())
        .unwrap();
    let outs = prog.dde_outputs_of(&sol, &hist, &p);
    for (i, &t) in sol.t.iter().enumerate() {
        // x(t − 1): the history (1) before 0, else the saved row two back (every 0.5).
        let expect = if t < 1.0 { 1.0 } else { sol.u[i - 2] };
        assert!(
            (outs[i] - expect).abs() < 1e-9,
            "t = {t}: {} vs {expect}",
            outs[i]
        );
    }
    // Two delays: the output sums lagged entries of both.
    let prog = compile(TWO_DELAYS);
    let p = prog.default_params();
    let o = options(Method::Tsit5, 3.0, 1e-10, 0.1);
    let (sol, hist) = prog
        .solve_dde(&p, &[1.0, 0.5], &o, &DdeOptions::default())
        .unwrap();
    let outs = prog.dde_outputs_of(&sol, &hist, &p);
    let i = 20; // t = 2.0: u(1.3)[0] + u(0.7)[1]
    let row = |t: f64| sol.row((t * 10.0f64).round() as usize).to_vec();
    let expect = row(1.3)[0] + row(0.7)[1];
    assert!((outs[i] - expect).abs() < 1e-8, "{} vs {expect}", outs[i]);
}

// ---- gradients ----

fn truth_data(prog: &Program, p: &[f64], t1: f64, every: f64) -> Vec<train::Data> {
    let o = options(Method::Tsit5, t1, 1e-12, every);
    let (sol, _) = prog
        .solve_dde(p, &prog.initial_state(p), &o, &DdeOptions::default())
        .unwrap();
    let names = prog.model.row_names();
    let n = prog.dim();
    let mut csv = format!("t,{}\n", names[..n].join(","));
    for i in 1..sol.len() {
        let row: Vec<String> = sol
            .row(i)
            .iter()
            .map(|x| format!("{:?}", x * 1.1))
            .collect();
        csv.push_str(&format!("{:?},{}\n", sol.t[i], row.join(",")));
    }
    train::parse_data(&csv, &names).unwrap()
}

/// The MSE loss's gradient by sensitivity method `s`.
fn grad(
    kernels: &Kernels,
    s: Sensitivity,
    p: &[f64],
    data: &[train::Data],
    o: &SolveOptions,
) -> Result<Gradient, GradientError> {
    train::loss_and_gradient(kernels, s, p, data, o, AdjointOptions::default())
}

fn central_differences(
    prog: &Program,
    p: &[f64],
    data: &[train::Data],
    o: &SolveOptions,
) -> Vec<f64> {
    (0..p.len())
        .map(|k| {
            let h = 1e-5 * p[k].abs().max(1e-2);
            let (mut pp, mut pm) = (p.to_vec(), p.to_vec());
            pp[k] += h;
            pm[k] -= h;
            (train::loss(prog, &pp, data, o).unwrap() - train::loss(prog, &pm, data, o).unwrap())
                / (2.0 * h)
        })
        .collect()
}

fn rel(a: &[f64], b: &[f64]) -> f64 {
    let scale = b.iter().fold(0.0f64, |m, x| m.max(x.abs()));
    a.iter()
        .zip(b)
        .fold(0.0f64, |m, (x, y)| m.max((x - y).abs()))
        / scale
}

const DECAY: &str = "
    param k = 0.8, h0 = 0.3, x0 = 1.2
    const tau = 0.9
    state x = x0
    state y = 0.1
    history x = h0*cos(t)
    history y = 0
    x' = -k*x(t - tau) + 0.2*y
    y' = x(t - tau)^2/(1 + y(t - tau)^2) - 0.5*y
";

#[test]
fn dde_gradients_agree_with_central_differences() {
    // Params in the vector field, the history and the initial state; explicit and stiff.
    let prog = compile(DECAY);
    let p = prog.default_params();
    let data = truth_data(&prog, &p, 6.0, 0.5);
    let kernels = Kernels::new(prog);
    let prog = kernels.program();
    for (m, tol) in [
        (Method::Tsit5, 1e-7),
        (Method::Dopri5, 1e-7),
        (Method::Rodas5, 1e-5),
    ] {
        let mut o = SolveOptions::new(m, 0.0, 0.0);
        o.rtol = 1e-11;
        o.atol = vec![1e-13];
        let g = grad(&kernels, Sensitivity::Forward, &p, &data, &o).unwrap();
        let fd = central_differences(prog, &p, &data, &o);
        let r = rel(&g.grad, &fd);
        eprintln!(
            "{m}: gradient {:?} vs central differences {:?}: rel {r:.2e}",
            g.grad, fd
        );
        assert!(g.grad.iter().all(|x| x.abs() > 1e-6), "{:?}", g.grad);
        assert!(r < tol, "{m}: {r}");
    }
}

#[test]
fn an_mlp_in_a_delay_model_gets_exact_weight_gradients() {
    let prog = compile(
        "
        const tau = 0.5
        net f = mlp(2 -> 6 -> 1, tanh, init = glorot(seed = 3))
        state x = 0.8
        x' = f([x, x(t - tau)])[0] - 0.1*x
        ",
    );
    let p = prog.default_params();
    assert!(p.len() > 20);
    let data = truth_data(&prog, &p, 3.0, 0.25);
    let kernels = Kernels::new(prog);
    let prog = kernels.program();
    let mut o = SolveOptions::new(Method::Tsit5, 0.0, 0.0);
    o.rtol = 1e-11;
    o.atol = vec![1e-13];
    let g = grad(&kernels, Sensitivity::Forward, &p, &data, &o).unwrap();
    let fd = central_differences(prog, &p, &data, &o);
    let r = rel(&g.grad, &fd);
    eprintln!("neural DDE, {} weights: rel {r:.2e}", p.len());
    assert!(r < 1e-6, "{r}");
}

#[test]
fn the_discrete_adjoint_equals_forward_sensitivities() {
    // Same steps, same interpolants: the two differentiate the same computation.
    let two = TWO_DELAYS.replace("param a = 0.5, tau = 0.7", "param a = 0.5\nconst tau = 0.7");
    let mlp = "
        const tau = 0.5
        net f = mlp(2 -> 6 -> 1, tanh, init = glorot(seed = 3))
        state x = 0.8
        x' = f([x, x(t - tau)])[0] - 0.1*x
    ";
    for (text, t1, every) in [
        (DECAY, 6.0, 0.5),
        (two.as_str(), 5.0, 0.25),
        (mlp, 3.0, 0.25),
    ] {
        let prog = compile(text);
        let p = prog.default_params();
        let data = truth_data(&prog, &p, t1, every);
        let kernels = Kernels::new(prog);
        let prog = kernels.program();
        for (m, rtol) in [(Method::Tsit5, 1e-8), (Method::Dopri5, 1e-6)] {
            let mut o = SolveOptions::new(m, 0.0, 0.0);
            o.rtol = rtol;
            o.atol = vec![rtol * 1e-2];
            let run = |s| grad(&kernels, s, &p, &data, &o).unwrap();
            let (fwd, adj) = (run(Sensitivity::Forward), run(Sensitivity::Discrete));
            let r = rel(&adj.grad, &fwd.grad);
            eprintln!(
                "{m} rtol {rtol:e}, {} params: discrete vs forward rel {r:.2e}",
                p.len()
            );
            assert_eq!(adj.loss, fwd.loss);
            assert!(r < 1e-10, "{m}: {r}");
        }
        // And against central differences of the loss at a tight tolerance.
        let mut o = SolveOptions::new(Method::Tsit5, 0.0, 0.0);
        o.rtol = 1e-11;
        o.atol = vec![1e-13];
        let adj = grad(&kernels, Sensitivity::Discrete, &p, &data, &o).unwrap();
        let fd = central_differences(prog, &p, &data, &o);
        let r = rel(&adj.grad, &fd);
        eprintln!("discrete vs central differences: rel {r:.2e}");
        assert!(r < 1e-6, "{r}");
    }
}

#[test]
fn unsupported_gradients_are_refused_with_a_reason() {
    // A delay that is a param; an adjoint method.
    let prog = compile(
        "
        param tau = 1
        state x = 1
        x' = -x(t - tau)
        ",
    );
    let p = prog.default_params();
    let data = truth_data(&prog, &p, 3.0, 0.5);
    let kernels = Kernels::new(prog);
    let prog = kernels.program();
    let o = SolveOptions::new(Method::Tsit5, 0.0, 0.0);
    let e = grad(&kernels, Sensitivity::Forward, &p, &data, &o).unwrap_err();
    assert!(e.to_string().contains("delay depends on parameter"), "{e}");
    for s in [Sensitivity::Discrete, Sensitivity::Forward] {
        let e = grad(&kernels, s, &p, &data, &o).unwrap_err();
        assert!(e.to_string().contains("delay depends on parameter"), "{e}");
    }
    let e = grad(&kernels, Sensitivity::Backsolve, &p, &data, &o).unwrap_err();
    assert!(e.to_string().contains("forward sensitivities"), "{e}");
    let mut bosh = o.clone();
    bosh.method = Method::Bosh3;
    let e = grad(&kernels, Sensitivity::Discrete, &p, &data, &bosh).unwrap_err();
    assert!(e.to_string().contains("tsit5"), "{e}");
    assert_eq!(
        Sensitivity::auto_for(prog, Method::Tsit5, false),
        Sensitivity::Forward
    );
}
