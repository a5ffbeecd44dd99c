//! Snapshots of emitted CUDA C: a scalar model (Lotka–Volterra, f64 and f32), a neural
//! layer (the MLP of lotka_ude) and a stencil family with strided gathers (heat1d).

use expect_test::{Expect, expect};
use ndec::backend::cuda::{self, Precision};
use ndec::driver::{self, Source};
use ndec::ir::Lowered;

fn lower_file(path: &str) -> Lowered {
    let full = format!("{}/{path}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&full).unwrap();
    let src = Source::new(path, &text);
    let model = driver::check(&src).unwrap_or_else(|_| panic!("{path} does not check"));
    driver::lower(&model).unwrap_or_else(|e| panic!("{path} does not lower: {e}"))
}

fn vector_field(path: &str, p: Precision) -> String {
    let l = lower_file(path);
    cuda::device_function(&l.vector_field, "ndec_vector_field", p).0
}

fn check(path: &str, p: Precision, want: Expect) {
    want.assert_eq(&vector_field(path, p));
}

#[test]
fn lotka_volterra_f64() {
    check(
        "tests/data/ok/lotka_volterra.nde",
        Precision::F64,
        expect![[r#"
        /* vector_field: (du[2]) = f(t[1], u[2], p[4]); scratch 0 */
        __device__ void ndec_vector_field(const double* const* args, double* const* outs, double* scratch) {
            (void)scratch;
            const double* const t = args[0]; /* 1 */
            const double* const u = args[1]; /* 2 */
            const double* const p = args[2]; /* 4 */
            double* const out_du = outs[0]; /* 2 */
            const double v2 = p[0];
            const double v3 = u[0];
            const double v4 = (v2 * v3);
            const double v5 = p[1];
            const double v6 = (v5 * v3);
            const double v7 = u[1];
            const double v8 = (v6 * v7);
            const double v9 = (v4 - v8);
            const double v10 = p[2];
            const double v11 = -(v10);
            const double v12 = (v11 * v7);
            const double v13 = p[3];
            const double v14 = (v13 * v3);
            const double v15 = (v14 * v7);
            const double v16 = (v12 + v15);
            double* const v17 = out_du;
            v17[0] = v9;
            v17[1] = v16;
        }
    "#]],
    );
}

#[test]
fn lotka_volterra_f32() {
    check(
        "tests/data/ok/lotka_volterra.nde",
        Precision::F32,
        expect![[r#"
        /* vector_field: (du[2]) = f(t[1], u[2], p[4]); scratch 0 */
        __device__ void ndec_vector_field(const float* const* args, float* const* outs, float* scratch) {
            (void)scratch;
            const float* const t = args[0]; /* 1 */
            const float* const u = args[1]; /* 2 */
            const float* const p = args[2]; /* 4 */
            float* const out_du = outs[0]; /* 2 */
            const float v2 = p[0];
            const float v3 = u[0];
            const float v4 = (v2 * v3);
            const float v5 = p[1];
            const float v6 = (v5 * v3);
            const float v7 = u[1];
            const float v8 = (v6 * v7);
            const float v9 = (v4 - v8);
            const float v10 = p[2];
            const float v11 = -(v10);
            const float v12 = (v11 * v7);
            const float v13 = p[3];
            const float v14 = (v13 * v3);
            const float v15 = (v14 * v7);
            const float v16 = (v12 + v15);
            float* const v17 = out_du;
            v17[0] = v9;
            v17[1] = v16;
        }
    "#]],
    );
}

#[test]
fn mlp_layer() {
    check(
        "tests/data/ok/lotka_ude.nde",
        Precision::F64,
        expect![[r#"
        /* vector_field: (du[2]) = f(t[1], u[2], p[356]); scratch 48 */
        __device__ void ndec_vector_field(const double* const* args, double* const* outs, double* scratch) {
            const double* const t = args[0]; /* 1 */
            const double* const u = args[1]; /* 2 */
            const double* const p = args[2]; /* 356 */
            double* const out_du = outs[0]; /* 2 */
            const double v2 = p[0];
            const double v3 = u[0];
            const double v4 = (v2 * v3);
            const double v5 = 0.9;
            const double v6 = (v5 * v3);
            const double v7 = u[1];
            const double v8 = (v6 * v7);
            const double v9 = (v4 - v8);
            double v12[16];
            for (int r = 0; r < 16; r++) {
                double acc;
                acc = p[2*r + 2] * u[0];
                for (int c = 1; c < 2; c++) {
                    acc += p[2*r + c + 2] * u[c];
                }
                v12[r] = acc;
            }
            double* const v14 = scratch + 32;
            for (int i = 0; i < 16; i++) {
                v14[i] = ndec_tanh((v12[i] + p[i + 34]));
            }
            double* const v17 = scratch + 16;
            for (int r = 0; r < 16; r++) {
                double acc;
                acc = p[16*r + 50] * v14[0];
                for (int c = 1; c < 16; c++) {
                    acc += p[16*r + c + 50] * v14[c];
                }
                v17[r] = acc;
            }
            double* const v19 = scratch;
            for (int i = 0; i < 16; i++) {
                v19[i] = ndec_tanh((v17[i] + p[i + 306]));
            }
            double v22[2];
            for (int r = 0; r < 2; r++) {
                double acc;
                acc = p[16*r + 322] * v19[0];
                for (int c = 1; c < 16; c++) {
                    acc += p[16*r + c + 322] * v19[c];
                }
                v22[r] = acc;
            }
            double v23[2];
            for (int i = 0; i < 2; i++) {
                v23[i] = (v22[i] + p[i + 354]);
            }
            const double v24 = v23[0];
            const double v25 = (v9 + v24);
            const double v26 = 0.8;
            const double v27 = (v26 * v3);
            const double v28 = (v27 * v7);
            const double v29 = p[1];
            const double v30 = (v29 * v7);
            const double v31 = (v28 - v30);
            const double v32 = v23[1];
            const double v33 = (v31 + v32);
            double* const v34 = out_du;
            v34[0] = v25;
            v34[1] = v33;
        }
    "#]],
    );
}

#[test]
fn stencil_family() {
    check(
        "tests/data/ok/heat1d.nde",
        Precision::F64,
        expect![[r#"
        /* vector_field: (du[100]) = f(t[1], u[100], p[0]); scratch 0 */
        __device__ void ndec_vector_field(const double* const* args, double* const* outs, double* scratch) {
            (void)scratch;
            const double* const t = args[0]; /* 1 */
            const double* const u = args[1]; /* 100 */
            const double* const p = args[2]; /* 0 */
            double* const out_du = outs[0]; /* 100 */
            const double v1 = 0.01;
            const double v2 = 2.0;
            const double v3 = (-2.0);
            const double v4 = u[0];
            const double v5 = (v3 * v4);
            const double v6 = u[1];
            const double v7 = (v5 + v6);
            const double v8 = (v1 * v7);
            const double v9 = 9.80296049406921e-5;
            const double v10 = (v8 / v9);
            const double v19 = u[98];
            const double v20 = u[99];
            const double v21 = (v2 * v20);
            const double v22 = (v19 - v21);
            const double v23 = (v1 * v22);
            const double v24 = (v23 / v9);
            double* const v25 = out_du;
            v25[0] = v10;
            for (int i = 0; i < 98; i++) {
                v25[i + 1] = ((v1 * ((u[i] - (v2 * u[i + 1])) + u[i + 2])) / v9);
            }
            v25[99] = v24;
        }
    "#]],
    );
}

#[test]
fn jvp_of_lotka_volterra() {
    let l = lower_file("tests/data/ok/lotka_volterra.nde");
    let f = ndec::diff::jvp(&l.vector_field, &["u", "p"], true);
    expect![[r#"
        /* vector_field_jvp: (du[2], ddu[2]) = f(t[1], u[2], p[4], du[2], dp[4]); scratch 0 */
        __device__ void ndec_jvp(const double* const* args, double* const* outs, double* scratch) {
            (void)scratch;
            const double* const t = args[0]; /* 1 */
            const double* const u = args[1]; /* 2 */
            const double* const p = args[2]; /* 4 */
            const double* const du = args[3]; /* 2 */
            const double* const dp = args[4]; /* 4 */
            double* const out_du = outs[0]; /* 2 */
            double* const out_ddu = outs[1]; /* 2 */
            const double v2 = p[0];
            const double v3 = u[0];
            const double v4 = (v2 * v3);
            const double v5 = p[1];
            const double v6 = (v5 * v3);
            const double v7 = u[1];
            const double v8 = (v6 * v7);
            const double v9 = (v4 - v8);
            const double v10 = p[2];
            const double v11 = -(v10);
            const double v12 = (v11 * v7);
            const double v13 = p[3];
            const double v14 = (v13 * v3);
            const double v15 = (v14 * v7);
            const double v16 = (v12 + v15);
            double* const v17 = out_du;
            v17[0] = v9;
            v17[1] = v16;
            const double v20 = dp[0];
            const double v21 = du[0];
            const double v22 = (v20 * v3);
            const double v23 = (v21 * v2);
            const double v24 = (v22 + v23);
            const double v25 = dp[1];
            const double v26 = (v25 * v3);
            const double v27 = (v21 * v5);
            const double v28 = (v26 + v27);
            const double v29 = du[1];
            const double v30 = (v28 * v7);
            const double v31 = (v29 * v6);
            const double v32 = (v30 + v31);
            const double v33 = -(v32);
            const double v34 = (v24 + v33);
            const double v35 = dp[2];
            const double v36 = -(v35);
            const double v37 = (v36 * v7);
            const double v38 = (v29 * v11);
            const double v39 = (v37 + v38);
            const double v40 = dp[3];
            const double v41 = (v40 * v3);
            const double v42 = (v21 * v13);
            const double v43 = (v41 + v42);
            const double v44 = (v43 * v7);
            const double v45 = (v29 * v14);
            const double v46 = (v44 + v45);
            const double v47 = (v39 + v46);
            double* const v48 = out_ddu;
            v48[0] = v34;
            v48[1] = v47;
        }
    "#]]
    .assert_eq(&cuda::device_function(&f, "ndec_jvp", Precision::F64).0);
}

#[test]
fn emission_is_deterministic_and_f32_has_no_double() {
    for path in ["tests/data/ok/lotka_ude.nde", "tests/data/ok/heat1d.nde"] {
        let l = lower_file(path);
        let ks = cuda::model_kernels(&l);
        let a = cuda::module_source("m", &ks, Precision::F32);
        let b = cuda::module_source("m", &cuda::model_kernels(&lower_file(path)), Precision::F32);
        assert_eq!(a, b, "{path}: emission is not deterministic");
        assert!(!a.contains("double"), "{path}: f32 source mentions double");
        assert!(
            !a.replace("ndec_tanh(", "").contains("tanh("),
            "{path}: must use ndec_tanh, not the library tanh"
        );
        // Every float literal in f32 code (outside comments) carries its suffix.
        let code: String = a
            .split("/*")
            .map(|part| part.split_once("*/").map_or(part, |(_, rest)| rest))
            .collect();
        // Tokens: identifiers and numbers, an exponent's sign included (`9.8e-5f`).
        let mut toks: Vec<String> = vec![String::new()];
        for c in code.chars() {
            let cur = toks.last_mut().unwrap();
            let number = cur.starts_with(|d: char| d.is_ascii_digit());
            let exponent_sign = (c == '-' || c == '+') && number && cur.ends_with('e');
            if c.is_ascii_alphanumeric() || c == '.' || c == '_' || exponent_sign {
                cur.push(c);
            } else if !cur.is_empty() {
                toks.push(String::new());
            }
        }
        for tok in &toks {
            if tok.contains('.') && tok.starts_with(|c: char| c.is_ascii_digit()) {
                assert!(tok.ends_with('f'), "{path}: unsuffixed literal {tok}");
            }
        }
    }
}

#[test]
fn literals_round_trip() {
    for x in [0.1, -2.5, 1e-300, 6.02214076e23, 1.0 / 3.0] {
        let s = Precision::F64.literal(x);
        let t = s.trim_start_matches('(').trim_end_matches(')');
        assert_eq!(t.parse::<f64>().unwrap(), x, "{s}");
        let s = Precision::F32.literal(x);
        let t = s
            .trim_start_matches('(')
            .trim_end_matches(')')
            .trim_end_matches('f');
        assert_eq!(t.parse::<f32>().unwrap(), x as f32, "{s}");
    }
    assert_eq!(Precision::F64.literal(f64::INFINITY), "(1.0 / 0.0)");
    assert_eq!(Precision::F32.literal(-1.0), "(-1.0f)");
}
