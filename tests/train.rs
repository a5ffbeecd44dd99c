//! Gradients of the MSE loss by forward sensitivities against central differences of the
//! loss itself (tight tolerances), on Lotka–Volterra, a model whose initial state depends
//! on a param, and a UDE with an MLP; and a short Adam fit that recovers a decay rate.

use ndec::driver::Source;
use ndec::program::{Backend, Program};
use ndec::runtime::{Method, SolveOptions};
use ndec::train::{self, Adam, SensitivityKernels};

fn setup(text: &str, data: &str) -> (Program, train::Data, SolveOptions) {
    let prog = Program::compile(&Source::new("m.nde", text), Backend::Jit).unwrap();
    let data = train::parse_data(data, &prog.model.state_names()).unwrap();
    let mut opts = SolveOptions::new(Method::Vern7, 0.0, 0.0);
    opts.rtol = 1e-12;
    opts.atol = vec![1e-12];
    (prog, data, opts)
}

fn check_gradient(text: &str, data: &str) {
    let (prog, data, opts) = setup(text, data);
    let kernels = SensitivityKernels::compile(&prog).unwrap();
    let p = prog.default_params();
    let lg = train::loss_and_gradient(&prog, &kernels, &p, &data, &opts).unwrap();
    let l0 = train::loss(&prog, &p, &data, &opts).unwrap();
    assert!(
        (lg.loss - l0).abs() <= 1e-9 * l0.abs().max(1e-12),
        "loss {l0} vs {}",
        lg.loss
    );
    for k in 0..p.len() {
        let h = 1e-5 * p[k].abs().max(1e-2);
        let (mut pp, mut pm) = (p.clone(), p.clone());
        pp[k] += h;
        pm[k] -= h;
        let fd = (train::loss(&prog, &pp, &data, &opts).unwrap()
            - train::loss(&prog, &pm, &data, &opts).unwrap())
            / (2.0 * h);
        let g = lg.grad[k];
        let scale = g.abs().max(fd.abs()).max(1e-8);
        assert!(
            (g - fd).abs() / scale < 1e-6,
            "param {k}: sensitivity {g} vs central difference {fd}"
        );
    }
}

const LV: &str = "param a = 1.5, b = 1.0, c = 3.0, d = 1.0\nstate x = 1.0\nstate y = 1.0\nx' = a*x - b*x*y\ny' = c*x*y - d*y\n";

#[test]
fn lotka_volterra_gradient_matches_central_differences() {
    check_gradient(LV, "t,x,y\n0.5,0.9,1.1\n1.0,,1.3\n2.5,1.7,0.2\n");
}

#[test]
fn a_param_in_the_initial_state_gets_its_sensitivity() {
    check_gradient(
        "param x0 = 0.7, k = 0.4\nstate x = x0\nstate y = 2*x0\nx' = -k*x + sin(y)\ny' = -y*x\n",
        "t,x,y\n0.0,0.6,\n1.0,0.5,0.8\n3.0,0.2,0.1\n",
    );
}

#[test]
fn a_universal_de_with_an_mlp_gets_exact_weight_gradients() {
    check_gradient(
        "param a = 1.3\nnet nn = mlp(2 -> 4 -> 2, tanh, init = glorot(seed = 3))\nstate x = 0.5\nstate y = 1.2\nlet z = nn([x, y])\nx' = a*x - x*y + z[0]\ny' = x*y - y + z[1]\n",
        "t,x,y\n0.5,0.6,1.0\n1.0,0.8,0.9\n",
    );
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
    opts.method = Method::Tsit5;
    opts.rtol = 1e-8;
    opts.atol = vec![1e-10];
    let kernels = SensitivityKernels::compile(&prog).unwrap();
    let mut p = prog.default_params();
    let mut adam = Adam::new(0.05, p.len());
    let first = train::loss(&prog, &p, &data, &opts).unwrap();
    for _ in 0..300 {
        let g = train::loss_and_gradient(&prog, &kernels, &p, &data, &opts).unwrap();
        adam.update(&mut p, &g.grad);
    }
    let last = train::loss(&prog, &p, &data, &opts).unwrap();
    assert!(last < 1e-6 * first, "loss {first} -> {last}");
    assert!((p[0] - 0.8).abs() < 1e-3, "k = {}", p[0]);
}
