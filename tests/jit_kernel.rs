//! The JIT kernel's calling contract: lengths are checked, kernels are shareable.

use ndec::backend::cranelift::{self, JitKernel};
use ndec::backend::{Kernel, interp};
use ndec::ir::{Builder, Function, Node};
use ndec::sema::model::{Func1, Op2};

/// `o = tanh(M u + b)` with a 20×20 M (looped, needs scratch), and `s = sum(u*u)`.
fn layer() -> Function {
    let mut b = Builder::new("layer");
    let u = b.arg("u", 20);
    let p = b.arg("p", 420);
    let m = b.push(Node::Gather {
        v: p,
        start: 0,
        stride: 1,
        len: 400,
    });
    let bias = b.push(Node::Gather {
        v: p,
        start: 400,
        stride: 1,
        len: 20,
    });
    let mv = b.push(Node::MatVec {
        m,
        x: u,
        rows: 20,
        cols: 20,
    });
    let z = b.push(Node::Binary(Op2::Add, mv, bias));
    let t = b.push(Node::Unary(Func1::Tanh, z));
    let m2 = b.push(Node::MatVec {
        m,
        x: t,
        rows: 20,
        cols: 20,
    });
    b.output("o", m2);
    let uu = b.push(Node::Binary(Op2::Mul, u, u));
    let s = b.push(Node::Sum(uu));
    b.output("s", s);
    b.finish()
}

fn kernel() -> (Function, JitKernel) {
    let f = layer();
    let k = cranelift::compile(&f).unwrap();
    (f, k)
}

fn call(k: &JitKernel, u: &[f64], p: &[f64]) -> (Vec<f64>, f64) {
    let mut o = vec![0.0; 20];
    let mut s = [0.0];
    k.call(&[u, p], &mut [&mut o, &mut s], &mut Vec::new());
    (o, s[0])
}

#[test]
fn lengths_and_scratch_are_reported() {
    let (_, k) = kernel();
    assert_eq!(k.arg_lens(), &[20, 420]);
    assert_eq!(k.out_lens(), &[20, 1]);
    assert!(k.scratch_len() >= 20);
}

#[test]
#[should_panic(expected = "argument 0 must have length 20")]
fn short_argument_panics() {
    let (_, k) = kernel();
    call(&k, &[0.0; 19], &[0.0; 420]);
}

#[test]
#[should_panic(expected = "output 1 must have length 1")]
fn long_output_panics() {
    let (_, k) = kernel();
    let mut o = vec![0.0; 20];
    let mut s = [0.0; 2];
    k.call(
        &[&[0.0; 20], &[0.0; 420]],
        &mut [&mut o, &mut s],
        &mut Vec::new(),
    );
}

#[test]
#[should_panic(expected = "expected 2 argument buffers")]
fn missing_argument_panics() {
    let (_, k) = kernel();
    let mut o = vec![0.0; 20];
    let mut s = [0.0];
    k.call(&[&[0.0; 20]], &mut [&mut o, &mut s], &mut Vec::new());
}

#[test]
fn small_scratch_is_grown() {
    let (f, k) = kernel();
    let u: Vec<f64> = (0..20).map(|i| i as f64 * 0.1 - 1.0).collect();
    let p: Vec<f64> = (0..420)
        .map(|i| ((i * 37) % 11) as f64 * 0.05 - 0.25)
        .collect();
    let mut scratch = vec![0.0; 1];
    let mut o = vec![0.0; 20];
    let mut s = [0.0];
    k.call(&[&u, &p], &mut [&mut o, &mut s], &mut scratch);
    assert!(scratch.len() >= k.scratch_len());
    let want = interp::eval(&f, &[&u, &p]);
    assert_eq!(want[0], o);
    assert_eq!(want[1][0].to_bits(), s[0].to_bits());
}

#[test]
fn one_kernel_from_many_threads() {
    let (f, k) = kernel();
    let inputs: Vec<(Vec<f64>, Vec<f64>)> = (0..16)
        .map(|t| {
            let u = (0..20).map(|i| ((i + t) as f64).sin()).collect();
            let p = (0..420)
                .map(|i| ((i * (t + 3)) as f64).cos() * 0.1)
                .collect();
            (u, p)
        })
        .collect();
    let want: Vec<(Vec<f64>, f64)> = inputs
        .iter()
        .map(|(u, p)| {
            let r = interp::eval(&f, &[u, p]);
            (r[0].clone(), r[1][0])
        })
        .collect();
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                let mut scratch = Vec::new();
                for _ in 0..200 {
                    for ((u, p), (wo, ws)) in inputs.iter().zip(&want) {
                        let mut o = vec![0.0; 20];
                        let mut sum = [0.0];
                        k.call(&[u, p], &mut [&mut o, &mut sum], &mut scratch);
                        assert_eq!(&o, wo);
                        assert_eq!(sum[0].to_bits(), ws.to_bits());
                    }
                }
            });
        }
    });
}

#[test]
fn kernels_outlive_each_other_and_move_between_threads() {
    let f = layer();
    let mut ks = cranelift::compile_all(&[&f, &f]).unwrap();
    let k2 = ks.pop().unwrap();
    drop(ks); // the module stays alive for k2
    let u = vec![0.5; 20];
    let p = vec![0.01; 420];
    let want = interp::eval(&f, &[&u, &p]);
    let got = std::thread::spawn(move || call(&k2, &u, &p))
        .join()
        .unwrap();
    assert_eq!(got.0, want[0]);
}

fn assert_send_sync<T: Send + Sync>() {}

#[test]
fn kernel_is_send_and_sync() {
    assert_send_sync::<JitKernel>();
}
