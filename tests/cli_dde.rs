//! `ndec run` and `ndec train` on delay models: the unit delay's CSV against its exact
//! solution, lagged outputs, stiff methods, ensembles, the exit status of what a delay model
//! cannot do, and the neural DDE demo (examples/neural_dde) fitted from the command line.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::Output;

fn csv_rows(text: &str) -> (Vec<String>, Vec<Vec<f64>>) {
    let mut lines = text.lines();
    let header = lines.next().unwrap().split(',').map(String::from).collect();
    let rows = lines
        .map(|l| l.split(',').map(|x| x.parse().unwrap()).collect())
        .collect();
    (header, rows)
}

const UNIT: &str = "
state x = 1
history x = 1
x' = -x(t - 1)
output lagged = x(t - 1)
solve { t = 0 .. 10, rtol = 1e-10, atol = 1e-12, saveat = 0.5 }
";

/// x(t) of x' = −x(t − 1), x = 1 before and at 0, from the piecewise polynomials.
fn exact(t: f64) -> f64 {
    let mut p = vec![1.0, -1.0];
    let k = (t.floor() as usize).min(9);
    for _ in 0..k {
        let mut q = vec![p.iter().sum::<f64>()];
        q.extend(p.iter().enumerate().map(|(m, c)| -c / (m as f64 + 1.0)));
        p = q;
    }
    let s = t - k as f64;
    p.iter().rev().fold(0.0, |acc, c| acc * s + c)
}

#[test]
fn run_writes_the_unit_delay_and_its_lagged_output() {
    let m = write("unit.nde", UNIT);
    for method in ["tsit5", "rodas5"] {
        let o = ndec(&["run", s(&m), "--method", method]);
        assert!(o.status.success(), "{method}: {}", stderr(&o));
        let (header, rows) = csv_rows(&stdout(&o));
        assert_eq!(header, ["t", "x", "lagged"]);
        assert_eq!(rows.len(), 21);
        for r in &rows {
            assert!(
                (r[1] - exact(r[0])).abs() < 1e-8,
                "{method} t = {}: {}",
                r[0],
                r[1]
            );
            let lag = if r[0] < 1.0 { 1.0 } else { exact(r[0] - 1.0) };
            assert!((r[2] - lag).abs() < 1e-8, "{method} t = {}: {}", r[0], r[2]);
        }
    }
}

const MG: &str = "
param beta = 0.2, gamma = 0.1, tau = 17
state x = 0.5
x' = beta*x(t - tau)/(1 + x(t - tau)^10) - gamma*x
solve { t = 0 .. 100, saveat = 25 }
";

#[test]
fn ensembles_vary_the_delay() {
    let m = write("mg.nde", MG);
    let o = ndec(&[
        "run",
        s(&m),
        "--ensemble",
        "3",
        "--vary",
        "tau=uniform(10, 20)",
        "--stats",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    let (csv, stats) = text.rsplit_once("\n{").unwrap();
    let (_, rows) = csv_rows(csv);
    assert_eq!(rows.len(), 15);
    let ends: Vec<f64> = rows
        .iter()
        .filter(|r| r[1] == 100.0)
        .map(|r| r[2])
        .collect();
    assert_eq!(ends.len(), 3);
    assert!(ends[0] != ends[1] && ends[1] != ends[2], "{ends:?}");
    let v: serde_json::Value = serde_json::from_str(&format!("{{{stats}")).unwrap();
    assert_eq!(v["trajectories"], 3);
    // Trajectory 1 alone equals trajectory 1 of the ensemble.
    let o = ndec(&[
        "run",
        s(&m),
        "--ensemble",
        "3",
        "--traj",
        "1",
        "--vary",
        "tau=uniform(10, 20)",
    ]);
    let (_, alone) = csv_rows(&stdout(&o));
    assert_eq!(alone[alone.len() - 1][2], ends[1]);
}

#[test]
fn what_a_delay_model_cannot_do_has_an_exit_status_and_a_reason() {
    let m = write("mg2.nde", MG);
    let cases: [(&[&str], i32, &str); 6] = [
        (&["--method", "vern7"], 4, "vern7"),
        (&["--method", "auto"], 4, "auto"),
        (&["--t0", "5", "--t1", "1"], 2, "forward in time"),
        (&["--param", "tau=-1"], 2, "delays must be positive"),
        (&["--method", "rk4", "--dt", "20"], 2, "smallest delay"),
        (
            &[
                "--method",
                "rk4",
                "--dt",
                "0.5",
                "--t1",
                "1e9",
                "--max-steps",
                "10",
            ],
            3,
            "no output",
        ),
    ];
    for (args, code, says) in cases {
        let mut all = vec!["run", s(&m)];
        all.extend_from_slice(args);
        let o = ndec(&all);
        assert_eq!(o.status.code(), Some(code), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(says), "{args:?}: {}", stderr(&o));
        assert!(o.stdout.is_empty(), "{args:?}");
    }
}

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/neural_dde")
        .join(name)
}

fn final_loss(o: &Output) -> f64 {
    let v: serde_json::Value =
        serde_json::from_str(stdout(o).lines().last().expect("stats")).expect("JSON");
    v["final_loss"].as_f64().unwrap()
}

#[test]
fn the_neural_dde_demo_fits_and_extrapolates() {
    let truth = tmp("truth.csv");
    let o = ndec(&["run", s(&example("truth.nde")), "--out", s(&truth)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = std::fs::read_to_string(&truth).unwrap();
    let seen: Vec<&str> = text
        .lines()
        .enumerate()
        .filter(|(i, l)| *i == 0 || l.split(',').next().unwrap().parse::<f64>().unwrap() <= 8.0)
        .map(|(_, l)| l)
        .collect();
    let data = write("data.csv", &(seen.join("\n") + "\n"));
    let model = example("model.nde");
    let start = ndec(&[
        "train",
        s(&model),
        "--data",
        s(&data),
        "--iters",
        "0",
        "--stats",
    ]);
    assert!(start.status.success(), "{}", stderr(&start));
    let (adam, fitted) = (tmp("adam.json"), tmp("fitted.json"));
    let o = ndec(&[
        "train",
        s(&model),
        "--data",
        s(&data),
        "--iters",
        "300",
        "--lr",
        "0.02",
        "--save-params",
        s(&adam),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = ndec(&[
        "train",
        s(&model),
        "--data",
        s(&data),
        "--params",
        s(&adam),
        "--optimizer",
        "lbfgs",
        "--iters",
        "300",
        "--save-params",
        s(&fitted),
        "--stats",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let (l0, l1) = (final_loss(&start), final_loss(&o));
    eprintln!("neural DDE: loss {l0:.3e} -> {l1:.3e}");
    assert!(l1 < 1e-5 * l0, "{l0} -> {l1}");
    // On [0, 12], a third of it never seen, the fit stays close.
    let o = ndec(&[
        "train",
        s(&model),
        "--data",
        s(&truth),
        "--params",
        s(&fitted),
        "--iters",
        "0",
        "--stats",
    ]);
    let l2 = final_loss(&o);
    eprintln!("neural DDE: loss on [0, 12] {l2:.3e}");
    assert!(l2 < 1e-4 * l0, "{l2}");
    // The decay rate is learnt alongside the net (truth: 1).
    let p: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&fitted).unwrap()).unwrap();
    let k = p["k"].as_f64().unwrap();
    assert!((k - 1.0).abs() < 0.05, "k = {k}");
}

#[test]
fn training_refuses_what_it_cannot_differentiate_in_a_delay_model() {
    let model = example("model.nde");
    let data = write("d.csv", "t,x\n1,0.6\n2,0.7\n3,0.8\n");
    for (args, says) in [
        (&["--sensitivity", "backsolve"][..], "forward sensitivities"),
        (&["--batch-time", "2"][..], "history"),
        (&["--method", "vern7"][..], "vern7"),
    ] {
        let mut all = vec!["train", s(&model), "--data", s(&data), "--iters", "1"];
        all.extend_from_slice(args);
        let o = ndec(&all);
        assert_eq!(o.status.code(), Some(4), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(says), "{args:?}: {}", stderr(&o));
    }
}
