//! Every model in examples/ and tests/data/ok/ that lowers: the JIT-compiled vector field,
//! initial values, outputs, delays and history agree bit for bit with the interpreter.

use ndec::backend::cranelift;
use ndec::backend::{Kernel, interp};
use ndec::driver::{Source, check, lower};
use ndec::ir::{Function, LowerError};

fn model_files() -> Vec<std::path::PathBuf> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut v = Vec::new();
    for dir in ["examples", "tests/data/ok"] {
        for e in std::fs::read_dir(root.join(dir)).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "nde") {
                v.push(p);
            }
        }
    }
    v.sort();
    v
}

fn same(a: f64, b: f64) -> bool {
    (a.is_nan() && b.is_nan()) || a.to_bits() == b.to_bits()
}

struct Rng(u64);
impl Rng {
    fn value(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        let x = (self.0 >> 11) as f64 / (1u64 << 53) as f64;
        match self.0 % 50 {
            0 => 0.0,
            1 => -0.0,
            2 => 1e10,
            _ => x * 4.0 - 2.0,
        }
    }
}

fn agree(f: &Function, k: &cranelift::JitKernel, r: &mut Rng, what: &str) {
    let mut scratch = Vec::new();
    for _ in 0..25 {
        let args: Vec<Vec<f64>> = f
            .args
            .iter()
            .map(|a| (0..a.len).map(|_| r.value()).collect())
            .collect();
        let arefs: Vec<&[f64]> = args.iter().map(|a| a.as_slice()).collect();
        let want = interp::eval(f, &arefs);
        let mut got: Vec<Vec<f64>> = f
            .outputs
            .iter()
            .map(|(b, _)| vec![f64::NAN; b.len])
            .collect();
        let mut orefs: Vec<&mut [f64]> = got.iter_mut().map(|o| o.as_mut_slice()).collect();
        k.call(&arefs, &mut orefs, &mut scratch);
        for (w, g) in want.iter().zip(&got) {
            for (i, (x, y)) in w.iter().zip(g).enumerate() {
                assert!(
                    same(*x, *y),
                    "{what}: entry {i}: interpreter {x:e}, jit {y:e}"
                );
            }
        }
    }
}

#[test]
fn models_agree_with_the_interpreter() {
    let mut compiled = 0;
    let mut r = Rng(0x1234_5678_9abc_def1);
    for path in model_files() {
        let name = path.display().to_string();
        let src = Source::new(name.clone(), std::fs::read_to_string(&path).unwrap());
        let model = check(&src).unwrap_or_else(|d| panic!("{name} does not check: {d:?}"));
        let lowered = match lower(&model) {
            Ok(l) => l,
            Err(LowerError::Unsupported { .. }) => continue,
        };
        let mut fs = vec![
            &lowered.vector_field,
            &lowered.initial,
            &lowered.outputs,
            &lowered.delays,
            &lowered.history,
        ];
        if let Some(sde) = &lowered.sde {
            fs.extend(sde.functions());
        }
        let ks = cranelift::compile_all(&fs).unwrap_or_else(|e| panic!("{name}: {e}"));
        for (f, k) in fs.iter().zip(&ks) {
            agree(f, k, &mut r, &format!("{name}: {}", f.name));
        }
        compiled += 1;
    }
    assert!(compiled >= 30, "only {compiled} models lowered");
}

#[test]
fn clif_text_is_cranelift_ir() {
    let src = Source::new(
        "heat.nde",
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/heat.nde")).unwrap(),
    );
    let lowered = lower(&check(&src).unwrap()).unwrap();
    let text = cranelift::clif_text(&lowered.vector_field).unwrap();
    assert!(text.contains("function"), "{text}");
    assert!(text.contains("fadd") && text.contains("brif"), "{text}");
}

#[test]
fn disassembly_of_heat() {
    let src = Source::new(
        "heat.nde",
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/heat.nde")).unwrap(),
    );
    let lowered = lower(&check(&src).unwrap()).unwrap();
    let text = cranelift::disassembly(&lowered.vector_field).unwrap();
    if std::env::var("NDEC_SHOW_ASM").is_ok() {
        println!("{text}");
    }
    assert!(!text.is_empty());
}

#[test]
fn unit_stride_elementwise_loops_run_two_lanes_per_instruction_and_stay_exact() {
    // The chain's u[i-1] - u[i] is a loop of contiguous loads, subtractions and stores: the
    // JIT does it on F64X2 pairs; the libm call in the same loop is made lane by lane and its
    // results paired. The result must still equal the interpreter bit for bit.
    let text = "const N = 64\nstate u[N] = 1.0\nu[0]' = -u[0]\nu[i]' = u[i-1] - u[i] + sin(u[i]) for i in 1..N\n";
    let src = Source::new("chain.nde", text);
    let lowered = lower(&check(&src).unwrap()).unwrap();
    let f = &lowered.vector_field;
    let clif = cranelift::clif_text(f).unwrap();
    assert!(clif.contains("load.f64x2"), "{clif}");
    assert!(clif.contains("insertlane"), "{clif}");
    let jit = cranelift::compile(f).unwrap();
    let int = interp::Interpreted::new(f.clone());
    let u: Vec<f64> = (0..64).map(|i| (i as f64 * 0.37).sin() * 3.0).collect();
    let (mut a, mut b) = (vec![0.0; 64], vec![0.0; 64]);
    let mut s = Vec::new();
    jit.call(&[&[0.0], &u, &[]], &mut [&mut a], &mut s);
    int.call(&[&[0.0], &u, &[]], &mut [&mut b], &mut s);
    for i in 0..64 {
        assert_eq!(a[i].to_bits(), b[i].to_bits(), "du[{i}]");
    }
    assert_eq!(
        a[5].to_bits(),
        (u[4] - u[5] + ndec::math::apply1(ndec::sema::model::Func1::Sin, u[5])).to_bits()
    );
}

/// Wide neural layers take the blocked matrix–vector loops, the row-by-row transposed
/// products, the whole-layer activation call and the outer products of weight gradients:
/// the vector field, its VJP (what the adjoints call) and its JVP still agree with the
/// interpreter bit for bit, at the widths users train (8 → 64 → 64 → 8 and
/// 64 → 256 → 256 → 64, tanh and softplus).
#[test]
fn wide_layers_agree_with_the_interpreter_bit_for_bit() {
    let mut r = Rng(0x0bad_cafe_f00d_1234);
    for (n, h, act) in [(8, 64, "tanh"), (64, 256, "tanh"), (12, 37, "softplus")] {
        let text = format!(
            "net nn = mlp({n} -> {h} -> {h} -> {n}, {act}, init = glorot(seed = 2))\nstate u[{n}] = 0.5\nu' = 0.2*nn(u) - 0.1*u\n"
        );
        let src = Source::new("wide.nde", text);
        let lowered = lower(&check(&src).unwrap()).unwrap();
        let f = &lowered.vector_field;
        let vjp = ndec::diff::vjp(f, &["u", "p"], false);
        let jvp = ndec::diff::jvp(f, &["u", "p"], false);
        let fs = [f, &vjp, &jvp];
        let ks = cranelift::compile_all(&fs).unwrap();
        for (f, k) in fs.iter().zip(&ks) {
            agree(f, k, &mut r, &format!("{n}->{h} {act}: {}", f.name));
        }
    }
}
