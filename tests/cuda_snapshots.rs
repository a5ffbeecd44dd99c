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
    check("tests/data/ok/lotka_volterra.nde", Precision::F64, expect![[]]);
}

#[test]
fn lotka_volterra_f32() {
    check("tests/data/ok/lotka_volterra.nde", Precision::F32, expect![[]]);
}

#[test]
fn mlp_layer() {
    check("tests/data/ok/lotka_ude.nde", Precision::F64, expect![[]]);
}

#[test]
fn stencil_family() {
    check("tests/data/ok/heat1d.nde", Precision::F64, expect![[]]);
}

#[test]
fn jvp_of_lotka_volterra() {
    let l = lower_file("tests/data/ok/lotka_volterra.nde");
    let f = ndec::diff::jvp(&l.vector_field, &["u", "p"], true);
    expect![[]].assert_eq(&cuda::device_function(&f, "ndec_jvp", Precision::F64).0);
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
        assert!(!a.contains("tanh("), "{path}: must use ndec_tanh, not the library tanh");
        // Every float literal in f32 code carries its suffix.
        for tok in a.split(|c: char| !(c.is_ascii_alphanumeric() || c == '.' || c == '_')) {
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
        let t = s.trim_start_matches('(').trim_end_matches(')').trim_end_matches('f');
        assert_eq!(t.parse::<f32>().unwrap(), x as f32, "{s}");
    }
    assert_eq!(Precision::F64.literal(f64::INFINITY), "(1.0 / 0.0)");
    assert_eq!(Precision::F32.literal(-1.0), "(-1.0f)");
}
