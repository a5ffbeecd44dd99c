//! `ndec train`: gradients dumped by every sensitivity method agree, the --stats JSON, saved
//! params that `ndec run` reads back, the plot, several trajectories with a vary file, and
//! the exit status of every kind of bad input.

mod common;

use common::*;
use std::process::{Command, Output};

fn stats(o: &Output) -> serde_json::Value {
    let out = String::from_utf8_lossy(&o.stdout);
    serde_json::from_str(out.lines().last().expect("a stats line")).expect("JSON")
}

/// Every number in a params-file JSON, in document order.
fn numbers(v: &serde_json::Value, out: &mut Vec<f64>) {
    match v {
        serde_json::Value::Number(n) => out.push(n.as_f64().unwrap()),
        serde_json::Value::Array(a) => a.iter().for_each(|x| numbers(x, out)),
        serde_json::Value::Object(o) => o.values().for_each(|x| numbers(x, out)),
        _ => {}
    }
}

const UDE: &str = "param a = 1.3\nnet nn = mlp(2 -> 4 -> 2, tanh, init = glorot(seed = 3))\nstate x = 0.5\nstate y = 1.2\nlet z = nn([x, y])\nx' = a*x - x*y + z[0]\ny' = x*y - y + z[1]\nsolve { t = 0 .. 2, method = tsit5, rtol = 1e-10, atol = 1e-12 }\n";
const DATA: &str = "t,x,y\n0.5,0.6,1.0\n1.0,0.8,\n1.5,,0.9\n2.0,0.9,0.8\n";

#[test]
fn every_sensitivity_dumps_the_same_gradient() {
    let (m, d) = (write("ude.nde", UDE), write("ude.csv", DATA));
    let mut grads = Vec::new();
    for method in [
        "forward",
        "discrete",
        "backsolve",
        "interpolating",
        "quadrature",
    ] {
        let g = tmp(&format!("grad-{method}.json"));
        let o = ndec(&[
            "train",
            s(&m),
            "--data",
            s(&d),
            "--iters",
            "0",
            "--sensitivity",
            method,
            "--dump-gradient",
            s(&g),
            "--stats",
        ]);
        assert!(o.status.success(), "{method}: {}", stderr(&o));
        let st = stats(&o);
        for key in [
            "iters",
            "final_loss",
            "compile_ms",
            "first_gradient_ms",
            "grad_ms_median",
        ] {
            assert!(st.get(key).is_some(), "{method}: no `{key}` in {st}");
        }
        assert_eq!(st["sensitivity"], method);
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&g).unwrap()).unwrap();
        assert!(
            json["a"].is_number() && json["nn"]["layers"].is_array(),
            "{json}"
        );
        let mut v = Vec::new();
        numbers(&json, &mut v);
        assert_eq!(v.len(), 1 + (2 * 4 + 4) + (4 * 2 + 2));
        grads.push(v);
    }
    let scale = grads[0].iter().fold(0.0f64, |m, x| m.max(x.abs()));
    for g in &grads[1..] {
        let d = g
            .iter()
            .zip(&grads[0])
            .fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
        assert!(d < 1e-7 * scale, "{d} vs scale {scale}");
    }
}

#[test]
fn training_lowers_the_loss_and_saves_params_that_run_reads() {
    let (m, d) = (write("fit.nde", UDE), write("fit.csv", DATA));
    let (saved, plot) = (tmp("fitted.json"), tmp("fit.svg"));
    for opt in ["adam", "lbfgs"] {
        let o = ndec(&[
            "train",
            s(&m),
            "--data",
            s(&d),
            "--iters",
            "20",
            "--optimizer",
            opt,
            "--lr",
            "0.01",
            "--save-params",
            s(&saved),
            "--plot",
            s(&plot),
            "--stats",
        ]);
        assert!(o.status.success(), "{opt}: {}", stderr(&o));
        let st = stats(&o);
        let before = ndec(&["train", s(&m), "--data", s(&d), "--iters", "0", "--stats"]);
        let l0 = stats(&before)["final_loss"].as_f64().unwrap();
        let l1 = st["final_loss"].as_f64().unwrap();
        assert!(l1 < 0.5 * l0, "{opt}: loss {l0} -> {l1}");
        let svg = std::fs::read_to_string(&plot).unwrap();
        assert!(svg.contains("<svg") && svg.trim_end().ends_with("</svg>"));
        // The saved params reproduce the final loss when evaluated again.
        let again = ndec(&[
            "train",
            s(&m),
            "--data",
            s(&d),
            "--iters",
            "0",
            "--params",
            s(&saved),
            "--stats",
        ]);
        let l2 = stats(&again)["final_loss"].as_f64().unwrap();
        assert_eq!(l1, l2, "{opt}");
        let run = ndec(&["run", s(&m), "--params", s(&saved)]);
        assert!(run.status.success(), "{}", stderr(&run));
    }
}

#[test]
fn minibatch_windows_and_penalties_run() {
    let rows: String = (0..40)
        .map(|i| {
            let t = i as f64 * 0.05;
            format!("{t},{},{}\n", 0.5 + 0.1 * t, 1.2 - 0.2 * t)
        })
        .collect();
    let (m, d) = (
        write("win.nde", UDE),
        write("win.csv", &format!("t,x,y\n{rows}")),
    );
    let o = ndec(&[
        "train",
        s(&m),
        "--data",
        s(&d),
        "--iters",
        "30",
        "--batch-time",
        "5",
        "--batch-size",
        "4",
        "--clip",
        "1.0",
        "--weight-decay",
        "0.01",
        "--l2",
        "1e-4",
        "--stats",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stats(&o)["iters"], 30);
    // An output column (the CSV `ndec run` writes has one) is fitted too; a window may
    // start where it is empty.
    let mo = write("win-out.nde", &format!("{UDE}output s = x + y\n"));
    let rows: String = (0..12)
        .map(|i| {
            let t = 0.15 * i as f64;
            let s = if i % 4 == 1 {
                String::new()
            } else {
                format!("{}", 1.7 - 0.1 * t)
            };
            format!("{t},{},{},{s}\n", 0.5 + 0.05 * t, 1.2 - 0.1 * t)
        })
        .collect();
    let dout = write("win-out.csv", &format!("t,x,y,s\n{rows}"));
    let args = [
        "--data",
        s(&dout),
        "--iters",
        "5",
        "--batch-time",
        "3",
        "--stats",
    ];
    let o = ndec(&[&["train", s(&mo)][..], &args].concat());
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stats(&o)["final_loss"].as_f64().unwrap().is_finite());
    // Windows need every state observed.
    let only_x = write("onlyx.csv", "t,x\n0,0.5\n0.5,0.6\n1,0.7\n");
    let o = ndec(&["train", s(&m), "--data", s(&only_x), "--batch-time", "2"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("minibatch"), "{}", stderr(&o));
}

#[test]
fn several_trajectories_take_their_starts_from_a_vary_file() {
    let m = write("traj.nde", UDE);
    let d = write(
        "traj.csv",
        "traj,t,x,y\n0,0.5,0.6,1.0\n1,0.5,0.9,0.7\n0,1.0,0.8,\n1,1.0,1.0,0.6\n",
    );
    let vary = write("traj-vary.csv", "x,y\n0.5,1.2\n0.8,0.9\n");
    let o = ndec(&[
        "train",
        s(&m),
        "--data",
        s(&d),
        "--vary-file",
        s(&vary),
        "--iters",
        "5",
        "--stats",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    // Minibatches of whole trajectories.
    let o = ndec(&[
        "train",
        s(&m),
        "--data",
        s(&d),
        "--vary-file",
        s(&vary),
        "--iters",
        "5",
        "--batch-size",
        "1",
        "--stats",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stats(&o)["iters"], 5);
    let short = write("traj-short.csv", "x,y\n0.5,1.2\n");
    let o = ndec(&[
        "train",
        s(&m),
        "--data",
        s(&d),
        "--vary-file",
        s(&short),
        "--iters",
        "1",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("trajectory 1"), "{}", stderr(&o));
}

#[test]
fn bad_input_gets_the_contract_exit_status() {
    let (m, d) = (write("bad.nde", UDE), write("bad.csv", DATA));
    let cases: Vec<(Vec<&str>, i32, &str)> = vec![
        (vec!["--sensitivity", "magic"], 2, "unknown sensitivity"),
        (vec!["--optimizer", "sgd"], 2, "unknown optimizer"),
        (vec!["--lr", "0"], 2, "--lr"),
        (
            vec!["--method", "rodas5", "--sensitivity", "discrete"],
            4,
            "discrete adjoint",
        ),
        (vec!["--method", "nope"], 2, "unknown method"),
    ];
    for (extra, code, needle) in cases {
        let mut args = vec!["train", s(&m), "--data", s(&d), "--iters", "1"];
        args.extend(extra.iter().copied());
        let o = ndec(&args);
        assert_eq!(o.status.code(), Some(code), "{extra:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(needle), "{extra:?}: {}", stderr(&o));
    }
    for (name, text, needle) in [
        (
            "unknown-col.csv",
            "t,x,w\n0.5,1,2\n",
            "`w` is not a state or output",
        ),
        ("bad-cell.csv", "t,x\n0.5,abc\n", "line 2, field `x`"),
        ("early.csv", "t,x\n-1,0.5\n", "before t0"),
        ("empty.csv", "t,x\n", "no data rows"),
    ] {
        let bad = write(name, text);
        let o = ndec(&["train", s(&m), "--data", s(&bad)]);
        assert_eq!(o.status.code(), Some(2), "{name}: {}", stderr(&o));
        assert!(stderr(&o).contains(needle), "{name}: {}", stderr(&o));
    }
    let o = ndec(&["train", s(&m), "--data", "/nonexistent/data.csv"]);
    assert_eq!(o.status.code(), Some(2));
}

/// Ctrl-C (SIGINT) stops a long fit after the current iteration, exit 130, with the last
/// params whose loss was finite on disk (a complete params file `ndec run` reads).
#[test]
fn an_interrupted_fit_keeps_its_last_good_params() {
    let (m, d) = (write("int.nde", UDE), write("int.csv", DATA));
    let saved = tmp("int.json");
    let _ = std::fs::remove_file(&saved);
    let child = Command::new(env!("CARGO_BIN_EXE_ndec"))
        .args([
            "train",
            s(&m),
            "--data",
            s(&d),
            "--iters",
            "100000000",
            "--save-params",
            s(&saved),
        ])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the fit has saved once (at most once a second while it runs).
    let t0 = std::time::Instant::now();
    while !saved.exists() && t0.elapsed().as_secs() < 60 {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(saved.exists(), "no params saved while training");
    let killed = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("interrupted after"),
        "{}",
        stderr(&out)
    );
    let run = ndec(&["run", s(&m), "--params", s(&saved)]);
    assert!(run.status.success(), "{}", stderr(&run));
}

/// An SDE model trains on the moments of observed paths: `ndec run --ensemble` makes the
/// paths (one `traj` each), `ndec train` fits the drift and noise params from other starting
/// values with fixed simulated paths, and the loss falls by orders of magnitude.
#[test]
fn an_sde_trains_on_the_moments_of_observed_paths() {
    let truth = write(
        "ou-true.nde",
        "param theta = 2.0, m = 1.0, s = 0.5\nbrownian W\nstate x = 0\nx' = theta*(m - x) + s*W\n",
    );
    let paths = tmp("ou-paths.csv");
    let o = ndec(&[
        "run",
        s(&truth),
        "--t1",
        "2",
        "--dt",
        "0.01",
        "--saveat",
        "0.25",
        "--ensemble",
        "300",
        "--seed",
        "5",
        "--out",
        s(&paths),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let model = write(
        "ou-fit.nde",
        "param theta = 1.2, m = 0.6, s = 0.3\nbrownian W\nstate x = 0\nx' = theta*(m - x) + s*W\n",
    );
    let saved = tmp("ou-fit.json");
    let o = ndec(&[
        "train",
        s(&model),
        "--data",
        s(&paths),
        "--dt",
        "0.01",
        "--ensemble",
        "200",
        "--optimizer",
        "lbfgs",
        "--lr",
        "0.1",
        "--iters",
        "60",
        "--save-params",
        s(&saved),
        "--stats",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let st = stats(&o);
    assert_eq!(st["sensitivity"], "discrete");
    let before = ndec(&[
        "train",
        s(&model),
        "--data",
        s(&paths),
        "--dt",
        "0.01",
        "--ensemble",
        "200",
        "--iters",
        "0",
        "--stats",
    ]);
    let (l0, l1) = (
        stats(&before)["final_loss"].as_f64().unwrap(),
        st["final_loss"].as_f64().unwrap(),
    );
    assert!(l1 < 1e-3 * l0, "moment loss {l0} -> {l1}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&saved).unwrap()).unwrap();
    for (name, want) in [("theta", 2.0), ("m", 1.0), ("s", 0.5)] {
        let got = json[name].as_f64().unwrap();
        assert!((got - want).abs() < 0.15 * want, "{name} = {got}");
    }
    // Without a step, and with a method it cannot differentiate.
    let o = ndec(&["train", s(&model), "--data", s(&paths)]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let o = ndec(&[
        "train",
        s(&model),
        "--data",
        s(&paths),
        "--method",
        "milstein",
        "--dt",
        "0.01",
    ]);
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
}

/// An SDE trained through reversible_heun: `auto` picks the reversible adjoint, whose dumped
/// gradient agrees with the stored-steps (`discrete`) one to rounding; the fit lowers the
/// moment loss; euler_maruyama has no reversible adjoint (exit 4).
#[test]
fn an_sde_trains_through_the_reversible_heun_adjoint() {
    let truth = write(
        "ou-rh-true.nde",
        "param theta = 2.0, m = 1.0, s = 0.5\nbrownian W\nstate x = 0\nx' = theta*(m - x) + s*W\n",
    );
    let paths = tmp("ou-rh-paths.csv");
    let o = ndec(&[
        "run",
        s(&truth),
        "--t1",
        "2",
        "--dt",
        "0.01",
        "--saveat",
        "0.25",
        "--ensemble",
        "200",
        "--seed",
        "5",
        "--out",
        s(&paths),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let model = write(
        "ou-rh-fit.nde",
        "param theta = 1.2, m = 0.6, s = 0.3\nbrownian W\nstate x = 0\nx' = theta*(m - x) + s*W\n",
    );
    let train = |extra: &[&str]| {
        let mut args = vec![
            "train",
            s(&model),
            "--data",
            s(&paths),
            "--dt",
            "0.01",
            "--ensemble",
            "50",
            "--method",
            "reversible_heun",
            "--stats",
        ];
        args.extend_from_slice(extra);
        ndec(&args)
    };
    let mut grads = Vec::new();
    for (sens, shown) in [("auto", "reversible"), ("discrete", "discrete")] {
        let g = tmp(&format!("rh-grad-{sens}.json"));
        let o = train(&[
            "--iters",
            "0",
            "--sensitivity",
            sens,
            "--dump-gradient",
            s(&g),
        ]);
        assert!(o.status.success(), "{sens}: {}", stderr(&o));
        assert_eq!(stats(&o)["sensitivity"], shown);
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&g).unwrap()).unwrap();
        let mut v = Vec::new();
        numbers(&json, &mut v);
        assert_eq!(v.len(), 3);
        grads.push(v);
    }
    let scale = grads[1].iter().fold(0.0f64, |m, x| m.max(x.abs()));
    assert!(scale > 0.0);
    for (a, b) in grads[0].iter().zip(&grads[1]) {
        assert!(
            (a - b).abs() <= 1e-10 * scale,
            "{:?} vs {:?}",
            grads[0],
            grads[1]
        );
    }
    let o = train(&["--iters", "20", "--optimizer", "lbfgs", "--lr", "0.1"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let before = train(&["--iters", "0"]);
    let (l0, l1) = (
        stats(&before)["final_loss"].as_f64().unwrap(),
        stats(&o)["final_loss"].as_f64().unwrap(),
    );
    assert!(l1 < 1e-2 * l0, "moment loss {l0} -> {l1}");
    let o = ndec(&[
        "train",
        s(&model),
        "--data",
        s(&paths),
        "--dt",
        "0.01",
        "--sensitivity",
        "reversible",
    ]);
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    assert!(stderr(&o).contains("reversible_heun"), "{}", stderr(&o));
}

/// The model's `solve { rtol, atol }` are the defaults of `ndec train` as of `ndec run`
/// (atol used to fall back to 1e-8 whatever the model said): the loss at the model's atol is
/// the loss with the same value given as `--atol`, and not the loss at 1e-8.
#[test]
fn solve_block_tolerances_are_the_defaults() {
    let (m, d) = (write("ude-tol.nde", UDE), write("ude-tol.csv", DATA));
    let loss = |extra: &[&str]| {
        let mut args = vec!["train", s(&m), "--data", s(&d), "--iters", "0", "--stats"];
        args.extend_from_slice(extra);
        let o = ndec(&args);
        assert!(o.status.success(), "{}", stderr(&o));
        stats(&o)["final_loss"].as_f64().unwrap()
    };
    let model = loss(&[]);
    assert_eq!(model, loss(&["--atol", "1e-12"]));
    assert_ne!(model, loss(&["--atol", "1e-8", "--rtol", "1e-6"]));
}
