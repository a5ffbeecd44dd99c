//! IR text snapshots of a handful of models, and the size of the IR at scale: an indexed
//! family and a neural layer are whole vector operations, never one node per entry.

use expect_test::{Expect, expect};
use ndec::driver::{self, Source};
use ndec::ir::{self, Lowered};

fn lower_text(name: &str, text: &str) -> Lowered {
    let src = Source::new(name, text);
    let model = driver::check(&src).unwrap_or_else(|d| {
        panic!(
            "{name} does not check:\n{}",
            ndec::diag::render(name, text, &d)
        )
    });
    let l = driver::lower(&model).unwrap_or_else(|e| panic!("{name} does not lower: {e}"));
    for f in [
        &l.vector_field,
        &l.initial,
        &l.outputs,
        &l.delays,
        &l.history,
    ] {
        ir::validate(f).unwrap_or_else(|e| panic!("{name}: invalid IR: {e}"));
    }
    l
}

fn lower_file(path: &str) -> Lowered {
    let full = format!("{}/{path}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&full).unwrap();
    lower_text(path, &text)
}

fn text_of(l: &Lowered) -> String {
    format!(
        "{}{}{}",
        l.vector_field.to_text(),
        l.initial.to_text(),
        l.outputs.to_text()
    )
}

fn check(l: &Lowered, want: Expect) {
    want.assert_eq(&text_of(l));
}

#[test]
fn lotka_volterra() {
    check(
        &lower_file("tests/data/ok/lotka_volterra.nde"),
        expect![[r#"
        fn vector_field(t[1], u[2], p[4]) -> (du[2]) {
          %0 = arg u : 2
          %1 = arg p : 4
          %2 = index %1[0] : 1
          %3 = index %0[0] : 1
          %4 = mul %2, %3 : 1
          %5 = index %1[1] : 1
          %6 = mul %5, %3 : 1
          %7 = index %0[1] : 1
          %8 = mul %6, %7 : 1
          %9 = sub %4, %8 : 1
          %10 = index %1[2] : 1
          %11 = neg %10 : 1
          %12 = mul %11, %7 : 1
          %13 = index %1[3] : 1
          %14 = mul %13, %3 : 1
          %15 = mul %14, %7 : 1
          %16 = add %12, %15 : 1
          %17 = concat %9, %16 : 2
          du = %17
        }
        fn initial(p[4]) -> (u0[2]) {
          %0 = const 1 : 1
          %1 = concat %0, %0 : 2
          u0 = %1
        }
        fn outputs(t[1], u[2], p[4]) -> (o[1]) {
          %0 = arg u : 2
          %1 = arg p : 4
          %2 = index %1[3] : 1
          %3 = index %0[0] : 1
          %4 = mul %2, %3 : 1
          %5 = index %1[2] : 1
          %6 = log %3 : 1
          %7 = mul %5, %6 : 1
          %8 = sub %4, %7 : 1
          %9 = index %1[1] : 1
          %10 = index %0[1] : 1
          %11 = mul %9, %10 : 1
          %12 = add %8, %11 : 1
          %13 = index %1[0] : 1
          %14 = log %10 : 1
          %15 = mul %13, %14 : 1
          %16 = sub %12, %15 : 1
          o = %16
        }
    "#]],
    );
}

#[test]
fn heat1d() {
    check(
        &lower_file("tests/data/ok/heat1d.nde"),
        expect![[r#"
            fn vector_field(t[1], u[100], p[0]) -> (du[100]) {
              %0 = arg u : 100
              %1 = const 0.01 : 1
              %2 = const 2 : 1
              %3 = const -2 : 1
              %4 = index %0[0] : 1
              %5 = mul %3, %4 : 1
              %6 = index %0[1] : 1
              %7 = add %5, %6 : 1
              %8 = mul %1, %7 : 1
              %9 = const 9.80296049406921e-5 : 1
              %10 = div %8, %9 : 1
              %11 = gather %0[0; +1] : 98
              %12 = gather %0[1; +1] : 98
              %13 = mul %2, %12 : 98
              %14 = sub %11, %13 : 98
              %15 = gather %0[2; +1] : 98
              %16 = add %14, %15 : 98
              %17 = mul %1, %16 : 98
              %18 = div %17, %9 : 98
              %19 = index %0[98] : 1
              %20 = index %0[99] : 1
              %21 = mul %2, %20 : 1
              %22 = sub %19, %21 : 1
              %23 = mul %1, %22 : 1
              %24 = div %23, %9 : 1
              %25 = concat %10, %18, %24 : 100
              du = %25
            }
            fn initial(p[0]) -> (u0[100]) {
              %0 = const 3.14159 : 1
              %1 = iota 0 : 100
              %2 = const 1 : 1
              %3 = add %1, %2 : 100
              %4 = mul %0, %3 : 100
              %5 = const 0.009900990099009901 : 1
              %6 = mul %4, %5 : 100
              %7 = sin %6 : 100
              u0 = %7
            }
            fn outputs(t[1], u[100], p[0]) -> (o[0]) {
              %0 = concat : 0
              o = %0
            }
        "#]],
    );
}

#[test]
fn lotka_ude() {
    let l = lower_file("examples/lotka_ude.nde");
    check(
        &l,
        expect![[r#"
            fn vector_field(t[1], u[2], p[356]) -> (du[2]) {
              %0 = arg u : 2
              %1 = arg p : 356
              %2 = index %1[0] : 1
              %3 = index %0[0] : 1
              %4 = mul %2, %3 : 1
              %5 = const 0.9 : 1
              %6 = mul %5, %3 : 1
              %7 = index %0[1] : 1
              %8 = mul %6, %7 : 1
              %9 = sub %4, %8 : 1
              %10 = gather %1[2; +1] : 32
              %11 = gather %1[34; +1] : 16
              %12 = matvec %10[16x2], %0 : 16
              %13 = add %12, %11 : 16
              %14 = tanh %13 : 16
              %15 = gather %1[50; +1] : 256
              %16 = gather %1[306; +1] : 16
              %17 = matvec %15[16x16], %14 : 16
              %18 = add %17, %16 : 16
              %19 = tanh %18 : 16
              %20 = gather %1[322; +1] : 32
              %21 = gather %1[354; +1] : 2
              %22 = matvec %20[2x16], %19 : 2
              %23 = add %22, %21 : 2
              %24 = index %23[0] : 1
              %25 = add %9, %24 : 1
              %26 = const 0.8 : 1
              %27 = mul %26, %3 : 1
              %28 = mul %27, %7 : 1
              %29 = index %1[1] : 1
              %30 = mul %29, %7 : 1
              %31 = sub %28, %30 : 1
              %32 = index %23[1] : 1
              %33 = add %31, %32 : 1
              %34 = concat %25, %33 : 2
              du = %34
            }
            fn initial(p[356]) -> (u0[2]) {
              %0 = const 0.44249296 : 1
              %1 = const 4.6280594 : 1
              %2 = concat %0, %1 : 2
              u0 = %2
            }
            fn outputs(t[1], u[2], p[356]) -> (o[0]) {
              %0 = concat : 0
              o = %0
            }
        "#]],
    );
    // 2 params, then 2x16+16, 16x16+16, 16x2+2 weights and biases.
    assert_eq!(l.layout.len, 2 + (32 + 16) + (256 + 16) + (32 + 2));
}

#[test]
fn ifelse_min_max() {
    check(
        &lower_file("tests/data/ok/ifelse_abs.nde"),
        expect![[r#"
            fn vector_field(t[1], u[2], p[1]) -> (du[2]) {
              %0 = arg t : 1
              %1 = arg u : 2
              %2 = arg p : 1
              %3 = index %1[1] : 1
              %4 = index %1[0] : 1
              %5 = abs %4 : 1
              %6 = const 1 : 1
              %7 = le %5, %6 : 1
              %8 = neg %4 : 1
              %9 = powi %4, 3 : 1
              %10 = neg %9 : 1
              %11 = select %7, %8, %10 : 1
              %12 = const 0 : 1
              %13 = gt %3, %12 : 1
              %14 = neg %2 : 1
              %15 = lt %3, %12 : 1
              %16 = select %15, %2, %12 : 1
              %17 = select %13, %14, %16 : 1
              %18 = add %11, %17 : 1
              %19 = add %0, %6 : 1
              %20 = const 2 : 1
              %21 = mul %20, %4 : 1
              %22 = lt %19, %21 : 1
              %23 = const 0.1 : 1
              %24 = select %22, %23, %12 : 1
              %25 = add %18, %24 : 1
              %26 = const 0.01 : 1
              %27 = ge %4, %20 : 1
              %28 = select %27, %20, %4 : 1
              %29 = mul %26, %28 : 1
              %30 = sub %25, %29 : 1
              %31 = concat %3, %30 : 2
              du = %31
            }
            fn initial(p[1]) -> (u0[2]) {
              %0 = const 1 : 1
              %1 = const 0 : 1
              %2 = concat %0, %1 : 2
              u0 = %2
            }
            fn outputs(t[1], u[2], p[1]) -> (o[0]) {
              %0 = concat : 0
              o = %0
            }
        "#]],
    );
}

#[test]
fn vector_equation_and_slices() {
    check(
        &lower_file("tests/data/ok/slices_reductions.nde"),
        expect![[r#"
            fn vector_field(t[1], u[7], p[0]) -> (du[7]) {
              %0 = arg u : 7
              %1 = gather %0[0; +1] : 6
              %2 = gather %0[0; +1] : 3
              %3 = gather %0[3; +1] : 3
              %4 = min %2, %3 : 3
              %5 = index %4[0] : 1
              %6 = index %4[1] : 1
              %7 = index %4[2] : 1
              %8 = max %2, %3 : 3
              %9 = index %8[0] : 1
              %10 = index %8[1] : 1
              %11 = index %8[2] : 1
              %12 = concat %5, %6, %7, %9, %10, %11 : 6
              %13 = sub %12, %1 : 6
              %14 = const 0.1 : 1
              %15 = dot %2, %3 : 1
              %16 = mul %14, %15 : 1
              %17 = add %13, %16 : 6
              %18 = gather %0[1; +1] : 4
              %19 = sum %18 : 1
              %20 = index %0[6] : 1
              %21 = sub %19, %20 : 1
              %22 = const 1 : 1
              %23 = min %20, %22 : 1
              %24 = add %21, %23 : 1
              %25 = const -1 : 1
              %26 = max %20, %25 : 1
              %27 = sub %24, %26 : 1
              %28 = concat %17, %27 : 7
              du = %28
            }
            fn initial(p[0]) -> (u0[7]) {
              %0 = const 1 : 1
              %1 = iota 0 : 6
              %2 = add %1, %0 : 6
              %3 = div %0, %2 : 6
              %4 = const 0 : 1
              %5 = concat %3, %4 : 7
              u0 = %5
            }
            fn outputs(t[1], u[7], p[0]) -> (o[0]) {
              %0 = concat : 0
              o = %0
            }
        "#]],
    );
}

#[test]
fn scalar_min_max_inline() {
    let l = lower_text(
        "mm.nde",
        "param c = 2\nstate x = 1\nx' = min(x, c) - max(x, -c) + ifelse(x > 0, 1, -1)\n",
    );
    check(
        &l,
        expect![[r#"
            fn vector_field(t[1], u[1], p[1]) -> (du[1]) {
              %0 = arg u : 1
              %1 = arg p : 1
              %2 = min %0, %1 : 1
              %3 = neg %1 : 1
              %4 = max %0, %3 : 1
              %5 = sub %2, %4 : 1
              %6 = const 0 : 1
              %7 = gt %0, %6 : 1
              %8 = const 1 : 1
              %9 = const -1 : 1
              %10 = select %7, %8, %9 : 1
              %11 = add %5, %10 : 1
              du = %11
            }
            fn initial(p[1]) -> (u0[1]) {
              %0 = const 1 : 1
              u0 = %0
            }
            fn outputs(t[1], u[1], p[1]) -> (o[0]) {
              %0 = concat : 0
              o = %0
            }
        "#]],
    );
}

// ---------------------------------------------------------------------------------------
// 6. size of the IR at scale

fn heat(n: usize) -> String {
    format!(
        "const N = {n}, D = 0.01, dx = 1/(N+1)\n\
         state u[N] = sin(3.14159*(i+1)*dx) for i in 0..N\n\
         u[0]' = D*(-2*u[0] + u[1])/dx^2\n\
         u[i]' = D*(u[i-1] - 2*u[i] + u[i+1])/dx^2 for i in 1..N-1\n\
         u[N-1]' = D*(u[N-2] - 2*u[N-1])/dx^2\n\
         output heat = sum(u)*dx\n"
    )
}

fn nodes(l: &Lowered) -> [usize; 3] {
    [
        l.vector_field.nodes.len(),
        l.initial.nodes.len(),
        l.outputs.nodes.len(),
    ]
}

#[test]
fn heat_stencil_ir_size_is_independent_of_n() {
    let small = lower_text("heat100.nde", &heat(100));
    let big = lower_text("heat10000.nde", &heat(10_000));
    assert_eq!(big.vector_field.outputs[0].0.len, 10_000);
    assert_eq!(big.initial.outputs[0].0.len, 10_000);
    assert_eq!(
        nodes(&small),
        nodes(&big),
        "node counts (vector field, initial, outputs) differ"
    );
    assert!(
        nodes(&big)[0] < 60,
        "vector field has {} nodes",
        nodes(&big)[0]
    );
    // The same shape of program: only lengths and constants differ.
    let shape = |l: &Lowered| -> Vec<String> {
        l.vector_field
            .nodes
            .iter()
            .map(|n| format!("{:?}", std::mem::discriminant(n)))
            .collect()
    };
    assert_eq!(shape(&small), shape(&big));
}

fn mlp_model(widths: &[usize]) -> String {
    let chain: Vec<String> = widths.iter().map(|w| w.to_string()).collect();
    let n = widths[0];
    assert_eq!(n, *widths.last().unwrap());
    format!(
        "net f = mlp({}, tanh)\nstate u[{n}] = 0.1\nu' = f(u) - u\n",
        chain.join(" -> ")
    )
}

#[test]
fn mlp_ir_size_is_proportional_to_layers_not_weights() {
    let small = lower_text("mlp_small.nde", &mlp_model(&[2, 4, 4, 2]));
    let big = lower_text("mlp_big.nde", &mlp_model(&[64, 256, 256, 64]));
    let weights = 64 * 256 + 256 + 256 * 256 + 256 + 256 * 64 + 64;
    assert_eq!(big.layout.len, weights);
    assert_eq!(
        nodes(&small)[0],
        nodes(&big)[0],
        "vector field node counts differ"
    );
    let vf = &big.vector_field;
    assert!(vf.nodes.len() < 40, "{} nodes for 3 layers", vf.nodes.len());
    let matvecs = vf
        .nodes
        .iter()
        .filter(|n| matches!(n, ir::Node::MatVec { .. }))
        .count();
    assert_eq!(matvecs, 3, "one MatVec per layer");
    let consts = vf
        .nodes
        .iter()
        .filter(|n| matches!(n, ir::Node::Const(_)))
        .count();
    assert!(
        consts < 5,
        "weights must live in p, not in constants ({consts} constants)"
    );
    // One more layer adds a constant number of nodes.
    let deeper = lower_text("mlp_deeper.nde", &mlp_model(&[64, 256, 256, 256, 64]));
    let per_layer = deeper.vector_field.nodes.len() - vf.nodes.len();
    assert!(
        (1..=6).contains(&per_layer),
        "a layer costs {per_layer} nodes"
    );
}

fn sde_text(path: &str) -> String {
    let full = format!("{}/{path}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&full).unwrap();
    let model = driver::check(&Source::new(path, text.as_str())).unwrap();
    let l = driver::lower(&model).unwrap();
    let sde = l.sde.as_ref().expect("an SDE lowers with its SDE kernels");
    for f in sde.functions() {
        ir::validate(f).unwrap_or_else(|e| panic!("{path}: invalid IR: {e}"));
    }
    format!(
        "{}{}",
        l.vector_field.to_text(),
        ndec::stochastic::ir_text(&model, sde)
    )
}

#[test]
fn sde_gbm_drift_diffusion_and_milstein() {
    expect![[r#"
        fn drift(t[1], u[1], p[2]) -> (du[1]) {
          %0 = arg u : 1
          %1 = arg p : 2
          %2 = index %1[0] : 1
          %3 = mul %2, %0 : 1
          du = %3
        }
        # SDE: 1 state entries, 1 Wiener process(es) w = [W], Itô; noise: scalar (commutative)
        fn drift_ito(t[1], u[1], p[2]) -> (f[1]) {
          %0 = arg u : 1
          %1 = arg p : 2
          %2 = index %1[0] : 1
          %3 = mul %2, %0 : 1
          f = %3
        }
        fn drift_stratonovich(t[1], u[1], p[2]) -> (f[1]) {
          %0 = arg u : 1
          %1 = arg p : 2
          %2 = index %1[0] : 1
          %3 = mul %2, %0 : 1
          %4 = index %1[1] : 1
          %5 = mul %4, %0 : 1
          %6 = mul %5, %4 : 1
          %7 = const 0.5 : 1
          %8 = mul %7, %6 : 1
          %9 = sub %3, %8 : 1
          f = %9
        }
        fn diffusion(t[1], u[1], p[2]) -> (g[1]) {
          %0 = arg u : 1
          %1 = arg p : 2
          %2 = index %1[1] : 1
          %3 = mul %2, %0 : 1
          g = %3
        }
        fn sde_milstein(t[1], u[1], p[2], dw[1]) -> (f[1], gdw[1], mil[1]) {
          %0 = arg u : 1
          %1 = arg p : 2
          %2 = arg dw : 1
          %3 = index %1[0] : 1
          %4 = mul %3, %0 : 1
          %5 = index %1[1] : 1
          %6 = mul %5, %0 : 1
          %7 = mul %6, %5 : 1
          %8 = const 0.5 : 1
          %9 = mul %8, %7 : 1
          %10 = sub %4, %9 : 1
          %11 = mul %2, %6 : 1
          %12 = mul %11, %5 : 1
          %13 = mul %12, %2 : 1
          %14 = mul %8, %13 : 1
          f = %10
          gdw = %11
          mil = %14
        }
    "#]]
    .assert_eq(&sde_text("tests/data/ok/sde_gbm.nde"));
}

#[test]
fn sde_diagonal_noise() {
    expect![[r#"
        fn drift(t[1], u[3], p[2]) -> (du[3]) {
          %0 = arg u : 3
          %1 = arg p : 2
          %2 = index %1[0] : 1
          %3 = neg %2 : 1
          %4 = index %0[0] : 1
          %5 = mul %3, %4 : 1
          %6 = index %0[1] : 1
          %7 = mul %3, %6 : 1
          %8 = index %0[2] : 1
          %9 = mul %3, %8 : 1
          %10 = concat %5, %7, %9 : 3
          du = %10
        }
        # SDE: 3 state entries, 3 Wiener process(es) w = [W1, W2, W3], Itô; noise: diagonal (commutative)
        fn drift_ito(t[1], u[3], p[2]) -> (f[3]) {
          %0 = arg u : 3
          %1 = arg p : 2
          %2 = index %1[0] : 1
          %3 = neg %2 : 1
          %4 = index %0[0] : 1
          %5 = mul %3, %4 : 1
          %6 = index %0[1] : 1
          %7 = mul %3, %6 : 1
          %8 = index %0[2] : 1
          %9 = mul %3, %8 : 1
          %10 = concat %5, %7, %9 : 3
          f = %10
        }
        fn drift_stratonovich(t[1], u[3], p[2]) -> (f[3]) {
          %0 = arg u : 3
          %1 = arg p : 2
          %2 = index %1[0] : 1
          %3 = neg %2 : 1
          %4 = index %0[0] : 1
          %5 = mul %3, %4 : 1
          %6 = index %0[1] : 1
          %7 = mul %3, %6 : 1
          %8 = index %0[2] : 1
          %9 = mul %3, %8 : 1
          %10 = concat %5, %7, %9 : 3
          %11 = const 0 : 1
          %12 = index %1[1] : 1
          %13 = mul %12, %6 : 1
          %14 = mul %11, %12 : 1
          %15 = concat %11, %11, %11, %11, %14, %11, %11, %11, %11 : 9
          %16 = gather %15[0; +1] : 3
          %17 = mul %13, %12 : 1
          %18 = concat %11, %11, %11, %11, %17, %11, %11, %11, %11 : 9
          %19 = gather %18[3; +1] : 3
          %20 = add %16, %19 : 3
          %21 = gather %15[6; +1] : 3
          %22 = add %20, %21 : 3
          %23 = const 0.5 : 1
          %24 = mul %23, %22 : 3
          %25 = sub %10, %24 : 3
          f = %25
        }
        fn diffusion(t[1], u[3], p[2]) -> (g[9]) {
          %0 = arg u : 3
          %1 = arg p : 2
          %2 = const 0 : 1
          %3 = index %1[1] : 1
          %4 = index %0[1] : 1
          %5 = mul %3, %4 : 1
          %6 = const -0.5 : 1
          %7 = concat %3, %2, %2, %2, %5, %2, %2, %2, %6 : 9
          g = %7
        }
        fn sde_milstein(t[1], u[3], p[2], dw[3]) -> (f[3], gdw[3], mil[3]) {
          %0 = arg u : 3
          %1 = arg p : 2
          %2 = arg dw : 3
          %3 = index %1[0] : 1
          %4 = neg %3 : 1
          %5 = index %0[0] : 1
          %6 = mul %4, %5 : 1
          %7 = index %0[1] : 1
          %8 = mul %4, %7 : 1
          %9 = index %0[2] : 1
          %10 = mul %4, %9 : 1
          %11 = concat %6, %8, %10 : 3
          %12 = const 0 : 1
          %13 = index %1[1] : 1
          %14 = mul %13, %7 : 1
          %15 = mul %12, %13 : 1
          %16 = concat %12, %12, %12, %12, %15, %12, %12, %12, %12 : 9
          %17 = gather %16[0; +1] : 3
          %18 = mul %14, %13 : 1
          %19 = concat %12, %12, %12, %12, %18, %12, %12, %12, %12 : 9
          %20 = gather %19[3; +1] : 3
          %21 = add %17, %20 : 3
          %22 = gather %16[6; +1] : 3
          %23 = add %21, %22 : 3
          %24 = const 0.5 : 1
          %25 = mul %24, %23 : 3
          %26 = sub %11, %25 : 3
          %27 = const 2 : 1
          %28 = index %2[0] : 1
          %29 = mul %28, %13 : 1
          %30 = index %2[1] : 1
          %31 = mul %30, %13 : 1
          %32 = mul %31, %7 : 1
          %33 = index %2[2] : 1
          %34 = div %33, %27 : 1
          %35 = neg %34 : 1
          %36 = concat %29, %32, %35 : 3
          %37 = mul %32, %31 : 1
          %38 = concat %12, %37, %12 : 3
          %39 = mul %24, %38 : 3
          f = %26
          gdw = %36
          mil = %39
        }
    "#]].assert_eq(&sde_text("tests/data/ok/sde_diagonal.nde"));
}
