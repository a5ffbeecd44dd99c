#![allow(clippy::approx_constant)] // the models write 3.14159 on purpose; the test mirrors them
//! The interpreter on lowered models against numbers computed by hand: the IR means what
//! the source says.

use ndec::backend::interp::eval;
use ndec::driver::{self, Source};
use ndec::ir::{Function, Lowered};

fn lower(text: &str) -> Lowered {
    let src = Source::new("test.nde", text);
    let model = driver::check(&src).unwrap_or_else(|d| {
        panic!(
            "does not check:\n{}",
            ndec::diag::render("test.nde", text, &d)
        )
    });
    let l = driver::lower(&model).unwrap_or_else(|e| panic!("does not lower: {e}"));
    ndec::ir::validate(&l.vector_field).unwrap();
    ndec::ir::validate(&l.initial).unwrap();
    ndec::ir::validate(&l.outputs).unwrap();
    l
}

fn lower_file(path: &str) -> Lowered {
    lower(&std::fs::read_to_string(format!("{}/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap())
}

/// Calls a kernel with named buffers (every argument must be given).
fn call(f: &Function, named: &[(&str, &[f64])]) -> Vec<Vec<f64>> {
    let args: Vec<&[f64]> = f
        .args
        .iter()
        .map(|b| {
            let (_, v) = named
                .iter()
                .find(|(n, _)| *n == b.name)
                .unwrap_or_else(|| panic!("no value for argument `{}` of {}", b.name, f.name));
            assert_eq!(v.len(), b.len, "argument `{}` of {}", b.name, f.name);
            *v
        })
        .collect();
    assert_eq!(args.len(), named.len(), "{} takes {:?}", f.name, f.args);
    eval(f, &args)
}

#[track_caller]
fn assert_close(got: &[f64], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "lengths: got {got:?}, want {want:?}");
    for (k, (g, w)) in got.iter().zip(want).enumerate() {
        let scale = w.abs().max(1.0);
        assert!(
            (g - w).abs() <= tol * scale,
            "entry {k}: got {g}, want {w}\n got {got:?}\nwant {want:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------

#[test]
fn lotka_volterra_vector_field_and_output() {
    let l = lower_file("tests/data/ok/lotka_volterra.nde");
    // params a, b, c, d in declaration order
    let p = [1.5, 0.5, 3.0, 0.25];
    let u = [2.0, 0.5];
    let du = call(&l.vector_field, &[("t", &[7.0]), ("u", &u), ("p", &p)]);
    // x' = a*x - b*x*y = 3 - 0.5 ; y' = -c*y + d*x*y = -1.5 + 0.25
    assert_eq!(du, vec![vec![2.5, -1.25]]);
    let o = call(&l.outputs, &[("t", &[7.0]), ("u", &u), ("p", &p)]);
    // V = d*x - c*log(x) + b*y - a*log(y) = 0.5 - 3 ln 2 + 0.25 + 1.5 ln 2
    assert_close(&o[0], &[0.75 - 1.5 * std::f64::consts::LN_2], 1e-15);
    let u0 = call(&l.initial, &[("p", &p)]);
    assert_eq!(u0, vec![vec![1.0, 1.0]]);
}

fn heat_source(n: usize) -> String {
    format!(
        "const N = {n}, D = 0.01, dx = 1/(N+1)\n\
         state u[N] = sin(3.14159*(i+1)*dx) for i in 0..N\n\
         u[0]' = D*(-2*u[0] + u[1])/dx^2\n\
         u[i]' = D*(u[i-1] - 2*u[i] + u[i+1])/dx^2 for i in 1..N-1\n\
         u[N-1]' = D*(u[N-2] - 2*u[N-1])/dx^2\n"
    )
}

#[test]
fn heat_stencil_n5_by_hand() {
    let l = lower(&heat_source(5));
    let u = [1.0, 2.0, 4.0, 8.0, 16.0];
    let du = call(&l.vector_field, &[("t", &[0.0]), ("u", &u), ("p", &[])]);
    // D/dx^2 = 0.01 * 36 = 0.36; second differences with zero boundaries:
    // (-2+2, 1-4+4, 2-8+8, 4-16+16, 8-32) = (0, 1, 2, 4, -24)
    assert_close(&du[0], &[0.0, 0.36, 0.72, 1.44, -8.64], 1e-13);
}

#[test]
fn heat_stencil_matches_a_loop() {
    let n = 37;
    let l = lower(&heat_source(n));
    let u: Vec<f64> = (0..n)
        .map(|k| ((k * k) % 11) as f64 - 0.5 * k as f64)
        .collect();
    let du = call(&l.vector_field, &[("t", &[0.0]), ("u", &u), ("p", &[])]);
    let dx = 1.0 / (n as f64 + 1.0);
    let at = |k: isize| {
        if k < 0 || k >= n as isize {
            0.0
        } else {
            u[k as usize]
        }
    };
    let want: Vec<f64> = (0..n as isize)
        .map(|k| 0.01 * (at(k - 1) - 2.0 * at(k) + at(k + 1)) / (dx * dx))
        .collect();
    assert_close(&du[0], &want, 1e-12);
    // The initial value: sin(3.14159*(i+1)*dx) for i in 0..N
    let u0 = call(&l.initial, &[("p", &[])]);
    let want0: Vec<f64> = (0..n)
        .map(|i| (3.14159 * (i as f64 + 1.0) * dx).sin())
        .collect();
    assert_close(&u0[0], &want0, 1e-15);
}

#[test]
fn for_initialisers_broadcasts_and_lists() {
    let l = lower(
        "const N = 4, dx = 0.5\nparam k = 2\n\
         state a[N] = exp(-(i*dx)^2) for i in 0..N\n\
         state b[3] = k\n\
         state c[3] = [1, k, k^2]\n\
         state d = 3*k\n\
         state e[N] = i*k + 1 for i in 0..N\n\
         a' = -a\nb' = -b\nc' = -c\nd' = -d\ne' = -e\n",
    );
    let u0 = call(&l.initial, &[("p", &[3.0])]);
    let mut want: Vec<f64> = (0..4)
        .map(|i| (-((i as f64 * 0.5).powi(2))).exp())
        .collect();
    want.extend([3.0, 3.0, 3.0]);
    want.extend([1.0, 3.0, 9.0]);
    want.push(9.0);
    want.extend([1.0, 4.0, 7.0, 10.0]);
    assert_close(&u0[0], &want, 1e-15);
    // The vector field of `x' = -x` for all of them: -u.
    let u: Vec<f64> = (0..15).map(|k| k as f64).collect();
    let du = call(&l.vector_field, &[("t", &[0.0]), ("u", &u), ("p", &[3.0])]);
    let neg: Vec<f64> = u.iter().map(|x| -x).collect();
    assert_eq!(du[0], neg);
}

/// A dense layer by hand: act(W x + b), W row-major rows x cols starting at `w` in p.
fn dense(
    p: &[f64],
    w: usize,
    b: usize,
    rows: usize,
    cols: usize,
    x: &[f64],
    act: fn(f64) -> f64,
) -> Vec<f64> {
    (0..rows)
        .map(|r| {
            let mut s = 0.0;
            for c in 0..cols {
                s += p[w + r * cols + c] * x[c];
            }
            act(s + p[b + r])
        })
        .collect()
}

#[test]
fn mlp_with_fixed_weights_matches_a_forward_pass() {
    let l = lower(
        "param k = 0.5\n\
         net f = mlp(2 -> 3 -> 3 -> 2, tanh)\n\
         state x = 0.3\nstate y = -0.7\n\
         let z = f([x, y])\n\
         x' = k*z[0]\ny' = z[1] - x\n",
    );
    let layout = &l.layout;
    assert_eq!(layout.scalars, vec![("k".to_string(), 0)]);
    assert_eq!(layout.nets.len(), 1);
    let ls = &layout.nets[0].layers;
    assert_eq!(ls.len(), 3);
    assert_eq!(
        (ls[0].rows, ls[0].cols, ls[0].weight, ls[0].bias),
        (3, 2, 1, 7)
    );
    assert_eq!((ls[1].rows, ls[1].cols), (3, 3));
    assert_eq!((ls[2].rows, ls[2].cols), (2, 3));
    assert_eq!(layout.len, 1 + (6 + 3) + (9 + 3) + (6 + 2));

    // Weights: an irregular pattern so a transposed or shifted layout is caught.
    let mut p: Vec<f64> = (0..layout.len)
        .map(|k| ((k * 7 % 13) as f64 - 6.0) / 10.0)
        .collect();
    p[0] = 0.5; // k
    let u = [0.3, -0.7];
    let du = call(&l.vector_field, &[("t", &[0.0]), ("u", &u), ("p", &p)]);

    let h1 = dense(&p, ls[0].weight, ls[0].bias, 3, 2, &u, f64::tanh);
    let h2 = dense(&p, ls[1].weight, ls[1].bias, 3, 3, &h1, f64::tanh);
    let z = dense(&p, ls[2].weight, ls[2].bias, 2, 3, &h2, |x| x);
    assert_close(&du[0], &[0.5 * z[0], z[1] - u[0]], 1e-14);
}

#[test]
fn mlp_activations_and_act_out() {
    let l = lower(
        "net g = mlp(3 -> 4 -> 2, relu, act_out = sigmoid)\n\
         net h = mlp(2 -> 2, softplus)\n\
         state u[3] = 0\n\
         let z = g(u)\n\
         u' = [z[0], z[1], h(z)[1]]\n",
    );
    let ls_g = &l.layout.nets[0].layers;
    let ls_h = &l.layout.nets[1].layers;
    assert_eq!(
        ls_h[0].weight,
        3 * 4 + 4 + 4 * 2 + 2,
        "net h follows net g in p"
    );
    let p: Vec<f64> = (0..l.layout.len)
        .map(|k| ((k * 5 % 11) as f64 - 5.0) / 7.0)
        .collect();
    let u = [0.9, -1.3, 0.4];
    let du = call(&l.vector_field, &[("t", &[0.0]), ("u", &u), ("p", &p)]);
    let relu = |x: f64| x.max(0.0);
    let sigmoid = |x: f64| 1.0 / (1.0 + (-x).exp());
    let h1 = dense(&p, ls_g[0].weight, ls_g[0].bias, 4, 3, &u, relu);
    let z = dense(&p, ls_g[1].weight, ls_g[1].bias, 2, 4, &h1, sigmoid);
    // A single-layer net: the one layer is the output layer (linear, act_out default).
    let hz = dense(&p, ls_h[0].weight, ls_h[0].bias, 2, 2, &z, |x| x);
    assert_close(&du[0], &[z[0], z[1], hz[1]], 1e-14);
}

#[test]
fn power_precedence_values() {
    let l = lower_file("tests/data/ok/power_precedence.nde");
    let u = [3.0, 2.0, 5.0];
    let du = call(&l.vector_field, &[("t", &[0.0]), ("u", &u), ("p", &[])]);
    let (x, y, z) = (3.0f64, 2.0f64, 5.0f64);
    // x' = -x^2 + 2^-1*y ; y' = -y^2^2 + x*2^-2 ; z' = -2^2*z/4 + (-x)^2 - x^3*y
    let want = [
        -(x * x) + 0.5 * y,
        -(y.powi(4)) + x * 0.25,
        -4.0 * z / 4.0 + x * x - x.powi(3) * y,
    ];
    assert_close(&du[0], &want, 1e-15);
    let o = call(&l.outputs, &[("t", &[0.0]), ("u", &u), ("p", &[])]);
    assert_close(&o[0], &[-9.0, 0.5, 81.0], 1e-15);
}

#[test]
fn vector_operations() {
    let l = lower(
        "param s = 2\n\
         state u[4] = 1\n\
         state m = 0\n\
         let A = reshape([1, 2, 3, 4, 5, 6], 2, 3)\n\
         let w = A @ u[0..3]\n\
         u' = [w[0], w[1], dot(u[0..2], u[2..4]), sum(u)] + s*u^2 - min(u, 1.5) + max(u, m)\n\
         m' = ifelse(sum(u) > 10, 1, -1)\n\
         output big = ifelse(u > 2, u, 0*u)\n",
    );
    let u = [1.0, 2.0, 3.0, 4.0, -0.5];
    let p = [2.0];
    let du = call(&l.vector_field, &[("t", &[0.0]), ("u", &u), ("p", &p)]);
    let w0 = 1.0 * 1.0 + 2.0 * 2.0 + 3.0 * 3.0;
    let w1 = 4.0 * 1.0 + 5.0 * 2.0 + 6.0 * 3.0;
    let head = [w0, w1, 1.0 * 3.0 + 2.0 * 4.0, 10.0];
    let want: Vec<f64> = (0..4)
        .map(|k| head[k] + 2.0 * u[k] * u[k] - u[k].min(1.5) + u[k].max(-0.5))
        .chain([-1.0])
        .collect();
    assert_close(&du[0], &want, 1e-15);
    let o = call(&l.outputs, &[("t", &[0.0]), ("u", &u), ("p", &p)]);
    assert_eq!(o[0], vec![0.0, 0.0, 3.0, 4.0]);
}

#[test]
fn time_and_lets_in_dependency_order() {
    // Lets used before their declaration, chained.
    let l = lower("state x = 1\nx' = c\nlet c = b*2\nlet b = a + t\nlet a = x^2\n");
    let du = call(&l.vector_field, &[("t", &[0.5]), ("u", &[3.0]), ("p", &[])]);
    assert_eq!(du[0], vec![(9.0 + 0.5) * 2.0]);
}

#[test]
fn delayed_state_reads_the_lag_buffer() {
    let l = lower_file("tests/data/ok/dde_mackey_glass.nde");
    let names: Vec<&str> = l
        .vector_field
        .args
        .iter()
        .map(|b| b.name.as_str())
        .collect();
    assert_eq!(names, ["t", "u", "p", "lag0"]);
    let tau = call(&l.delays, &[("p", &[])]);
    assert_eq!(tau, vec![vec![2.0]]);
    // x' = beta*x(t - tau)/(1 + x(t - tau)^10) - gamma*x with beta 2, gamma 1
    let (x, xl) = (0.5f64, 1.2f64);
    let du = call(
        &l.vector_field,
        &[("t", &[3.0]), ("u", &[x]), ("p", &[]), ("lag0", &[xl])],
    );
    assert_close(&du[0], &[2.0 * xl / (1.0 + xl.powi(10)) - x], 1e-15);
}
