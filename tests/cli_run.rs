//! `ndec run`: every exit status, the trajectory CSV and the --stats JSON, defaults from
//! the solve block, atomic output, ensembles and replay.

mod common;

use common::*;
use std::path::Path;
use std::process::Command;

const LV: &str = "model lv\nparam a = 1.5, b = 1.0, c = 3.0, d = 1.0\nstate x = 1.0\nstate y = 1.0\noutput total = x + y\nx' = a*x - b*x*y\ny' = c*x*y - d*y\n";

fn csv(text: &str) -> (Vec<String>, Vec<Vec<f64>>) {
    let mut lines = text.lines();
    let header = lines
        .next()
        .unwrap()
        .split(',')
        .map(str::to_string)
        .collect();
    let rows = lines
        .map(|l| l.split(',').map(|x| x.parse::<f64>().unwrap()).collect())
        .collect();
    (header, rows)
}

#[test]
fn a_run_writes_states_then_outputs_at_t0_and_t1() {
    let m = write("lv.nde", LV);
    let o = ndec(&["run", s(&m), "--t1", "10"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let (h, rows) = csv(&String::from_utf8(o.stdout).unwrap());
    assert_eq!(h, ["t", "x", "y", "total"]);
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0], [0.0, 1.0, 1.0, 2.0]);
    assert_eq!(rows[1][0], 10.0);
    assert_eq!(
        rows[1][3],
        rows[1][1] + rows[1][2],
        "the output is computed from the saved state"
    );
    // Lotka–Volterra conserves V = c x - d ln x + b y - a ln y (to the tolerance).
    let v = |x: f64, y: f64| 3.0 * x - x.ln() + y - 1.5 * y.ln();
    assert!((v(rows[1][1], rows[1][2]) - v(1.0, 1.0)).abs() < 1e-4);
}

#[test]
fn numbers_are_written_in_shortest_round_trip_form() {
    let m = write("decay.nde", "param k = 0.1\nstate x = 0.1\nx' = -k*x\n");
    let o = ndec(&[
        "run",
        s(&m),
        "--t1",
        "1e-3",
        "--rtol",
        "1e-12",
        "--atol",
        "1e-14",
    ]);
    let text = String::from_utf8(o.stdout).unwrap();
    let last = text.lines().last().unwrap();
    let x: f64 = last.split(',').nth(1).unwrap().parse().unwrap();
    assert_eq!(
        last.split(',').nth(1).unwrap(),
        ryu::Buffer::new().format(x)
    );
    assert!(text.lines().nth(1).unwrap().starts_with("0.0,0.1"));
}

#[test]
fn the_solve_block_gives_defaults_and_flags_override_it() {
    let m = write(
        "blk.nde",
        &format!("{LV}solve {{ t = 0 .. 2, saveat = 0.5, method = dopri5 }}\n"),
    );
    let o = ndec(&["run", s(&m)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let (_, rows) = csv(&String::from_utf8(o.stdout).unwrap());
    let t: Vec<f64> = rows.iter().map(|r| r[0]).collect();
    assert_eq!(t, [0.0, 0.5, 1.0, 1.5, 2.0]);
    let o = ndec(&["run", s(&m), "--t1", "1", "--saveat", "0.25"]);
    let (_, rows) = csv(&String::from_utf8(o.stdout).unwrap());
    assert_eq!(
        rows.iter().map(|r| r[0]).collect::<Vec<_>>(),
        [0.0, 0.25, 0.5, 0.75, 1.0]
    );
}

#[test]
fn stats_are_one_json_line_with_every_field() {
    let m = write("lv2.nde", LV);
    let out = tmp("lv2.csv");
    let o = ndec(&[
        "run",
        s(&m),
        "--t1",
        "10",
        "--out",
        s(&out),
        "--stats",
        "--repeat",
        "3",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let stdout = String::from_utf8(o.stdout).unwrap();
    assert_eq!(
        stdout.lines().count(),
        1,
        "with --out only the stats line goes to stdout"
    );
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    for k in [
        "steps",
        "accepted",
        "rejected",
        "rhs_evals",
        "jac_evals",
        "lu_factorizations",
        "newton_iters",
        "compile_ms",
        "solve_ms",
        "solve_ms_min",
        "solve_ms_median",
    ] {
        assert!(v.get(k).is_some(), "missing {k}");
    }
    assert_eq!(
        v["steps"].as_u64().unwrap(),
        v["accepted"].as_u64().unwrap() + v["rejected"].as_u64().unwrap()
    );
    assert!(v["rhs_evals"].as_u64().unwrap() > 6 * v["accepted"].as_u64().unwrap() / 2);
    assert!(v["solve_ms_min"].as_f64().unwrap() <= v["solve_ms_median"].as_f64().unwrap());
    assert!(out.exists());
}

#[test]
fn exit_statuses_follow_the_contract() {
    let m = write("lv3.nde", LV);
    // 1: model error.
    let bad = write("bad.nde", "state x = 1\nx' = -k*x\n");
    let o = ndec(&["run", s(&bad), "--t1", "1"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("bad.nde:2:"), "{}", stderr(&o));
    // 2: usage and input errors.
    for args in [
        vec!["run", s(&m)],
        vec!["run", s(&m), "--t1", "1", "--method", "nosuch"],
        vec!["run", s(&m), "--t1", "1", "--method", "rk4"],
        vec!["run", s(&m), "--t1", "1", "--param", "nosuch=1"],
        vec!["run", s(&m), "--t1", "1", "--param", "a=abc"],
        vec!["run", s(&m), "--t1", "abc"],
        vec!["run", s(&m), "--t1", "1", "--saveat", "-1"],
        vec!["run", s(&m), "--t1", "1", "--params", "/nonexistent/p.json"],
        vec![
            "run",
            s(&m),
            "--t1",
            "1",
            "--vary",
            "a=triangle(1,2)",
            "--ensemble",
            "2",
        ],
        vec!["run", s(&m), "--t1", "1", "--ensemble", "2", "--traj", "5"],
        vec!["run", "/nonexistent/model.nde", "--t1", "1"],
        vec!["run", s(&m), "--t1", "1", "--no-such-flag"],
    ] {
        let o = ndec(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(!stderr(&o).contains("panicked"));
    }
    // A malformed params file names the file.
    let pj = write("p.json", "{\"a\": }");
    let o = ndec(&["run", s(&m), "--t1", "1", "--params", s(&pj)]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("p.json"));
    // 3: solver failure, with the time reached, and no output file.
    let blow = write("blow.nde", "state x = 1\nx' = x^2\n");
    let out = tmp("blow.csv");
    let o = ndec(&["run", s(&blow), "--t1", "2", "--out", s(&out)]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("t = 0.99") || stderr(&o).contains("t = 1"),
        "{}",
        stderr(&o)
    );
    assert!(!out.exists());
    let o = ndec(&["run", s(&m), "--t1", "100", "--max-steps", "10"]);
    assert_eq!(o.status.code(), Some(3));
    assert!(stderr(&o).contains("maximum"), "{}", stderr(&o));
    // A fixed step so small that the step count overflows is the step limit, not one step.
    for dt in ["5e-324", "1e-310"] {
        let o = ndec(&["run", s(&m), "--t1", "1", "--method", "rk4", "--dt", dt]);
        assert_eq!(o.status.code(), Some(3), "dt {dt}: {}", stderr(&o));
        assert!(stderr(&o).contains("maximum"), "{}", stderr(&o));
    }
    // 4: not available here.
    let sde = write(
        "gbm.nde",
        "param mu = 0.1, sigma = 0.2\nbrownian W\nstate x = 1\nx' = mu*x + sigma*x*W\n",
    );
    // An ODE method on an SDE cannot handle its noise.
    assert_eq!(
        ndec(&["run", s(&sde), "--t1", "1", "--method", "tsit5"])
            .status
            .code(),
        Some(4)
    );
    // `--device cuda` without a driver: tests/cli_gpu.rs (which knows whether one is present).
}

#[test]
fn a_failed_run_keeps_an_earlier_output_file_intact() {
    let m = write("lv4.nde", LV);
    let out = tmp("keep.csv");
    assert!(
        ndec(&["run", s(&m), "--t1", "1", "--out", s(&out)])
            .status
            .success()
    );
    let before = std::fs::read(&out).unwrap();
    let blow = write("blow2.nde", "state x = 1\nx' = x^2\n");
    assert_eq!(
        ndec(&["run", s(&blow), "--t1", "2", "--out", s(&out)])
            .status
            .code(),
        Some(3)
    );
    assert_eq!(std::fs::read(&out).unwrap(), before);
}

#[test]
fn params_come_from_defaults_then_the_file_then_flags() {
    let m = write("lv5.nde", LV);
    let pj = write("p5.json", "{\"a\": 2.0, \"b\": 0.5}");
    let run = |extra: &[&str]| {
        let mut args = vec!["run", s(&m), "--t1", "1"];
        args.extend_from_slice(extra);
        let o = ndec(&args);
        assert!(o.status.success(), "{}", stderr(&o));
        csv(&String::from_utf8(o.stdout).unwrap()).1[1].clone()
    };
    let file = run(&["--params", s(&pj)]);
    let flags = run(&["--param", "a=2", "--param", "b=0.5"]);
    assert_eq!(file, flags);
    let both = run(&["--params", s(&pj), "--param", "a=1.5", "--param", "b=1"]);
    assert_eq!(both, run(&[]));
}

#[test]
fn ensembles_vary_params_and_replay_any_trajectory_exactly() {
    let m = write("lv6.nde", LV);
    let o = ndec(&[
        "run",
        s(&m),
        "--t1",
        "1",
        "--saveat",
        "0.5",
        "--ensemble",
        "5",
        "--vary",
        "a=uniform(1,2)",
        "--vary",
        "x=normal(1,0.1)",
        "--seed",
        "9",
        "--stats",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = String::from_utf8(o.stdout).unwrap();
    let stats: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(stats["trajectories"], 5);
    let body: String = text
        .lines()
        .take(text.lines().count() - 1)
        .map(|l| format!("{l}\n"))
        .collect();
    let (h, rows) = csv(&body);
    assert_eq!(&h[..3], ["traj", "t", "x"]);
    assert_eq!(rows.len(), 15);
    let trajs: Vec<f64> = rows.iter().map(|r| r[0]).collect();
    assert_eq!(
        trajs,
        [0., 0., 0., 1., 1., 1., 2., 2., 2., 3., 3., 3., 4., 4., 4.]
    );
    let x0: Vec<f64> = rows.iter().step_by(3).map(|r| r[2]).collect();
    assert!(
        x0.windows(2).all(|w| w[0] != w[1]),
        "initial x is drawn per trajectory: {x0:?}"
    );
    for k in [0usize, 3] {
        let o = ndec(&[
            "run",
            s(&m),
            "--t1",
            "1",
            "--saveat",
            "0.5",
            "--ensemble",
            "5",
            "--vary",
            "a=uniform(1,2)",
            "--vary",
            "x=normal(1,0.1)",
            "--seed",
            "9",
            "--traj",
            &k.to_string(),
        ]);
        let (_, alone) = csv(&String::from_utf8(o.stdout).unwrap());
        assert_eq!(
            alone,
            rows[3 * k..3 * k + 3].to_vec(),
            "trajectory {k} replays bit for bit"
        );
    }
    let o = ndec(&[
        "run",
        s(&m),
        "--t1",
        "1",
        "--ensemble",
        "5",
        "--vary",
        "a=uniform(1,2)",
        "--seed",
        "10",
    ]);
    assert_ne!(
        String::from_utf8(o.stdout).unwrap(),
        body,
        "another seed, other draws"
    );
}

#[test]
fn a_vary_file_sets_values_per_trajectory() {
    let m = write("lv7.nde", LV);
    let vf = write("vary.csv", "a,y\n1.0,1.0\n2.0,0.5\n");
    let o = ndec(&["run", s(&m), "--t1", "1", "--vary-file", s(&vf)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let (_, rows) = csv(&String::from_utf8(o.stdout).unwrap());
    assert_eq!(rows.len(), 4);
    assert_eq!(rows[2][3], 0.5, "trajectory 1 starts from y = 0.5");
    let bad = write("vary_bad.csv", "a,y\n1.0,zz\n");
    let o = ndec(&["run", s(&m), "--t1", "1", "--vary-file", s(&bad)]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("vary_bad.csv") && stderr(&o).contains("line 2"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn vector_states_expand_to_indexed_columns() {
    let m = write(
        "vec.nde",
        "const N = 3\nstate u[N] = [1.0, 2.0, 3.0]\nu[i]' = -u[i] for i in 0..N\noutput s = sum(u)\n",
    );
    let o = ndec(&[
        "run",
        s(&m),
        "--t1",
        "1",
        "--rtol",
        "1e-10",
        "--atol",
        "1e-12",
    ]);
    let (h, rows) = csv(&String::from_utf8(o.stdout).unwrap());
    assert_eq!(h, ["t", "u[0]", "u[1]", "u[2]", "s"]);
    for k in 0..3 {
        let exact = (k as f64 + 1.0) * (-1f64).exp();
        assert!((rows[1][k + 1] - exact).abs() < 1e-9);
    }
}

#[test]
fn out_dash_is_stdout_and_special_files_and_links_are_written_in_place() {
    let m = write("lv_special.nde", LV);
    let plain = ndec(&["run", s(&m), "--t1", "1"]);
    assert!(plain.status.success(), "{}", stderr(&plain));
    // `--out -` is stdout (no file named "-").
    let dash = ndec(&["run", s(&m), "--t1", "1", "--out", "-"]);
    assert!(dash.status.success(), "{}", stderr(&dash));
    assert_eq!(dash.stdout, plain.stdout);
    assert!(!Path::new("-").exists());
    // A FIFO (as /dev/null or /dev/stdout would be) gets the CSV and stays a FIFO: renaming a
    // temporary file over it would have replaced it with a plain file.
    let fifo = tmp("out.fifo");
    let _ = std::fs::remove_file(&fifo);
    let made = Command::new("mkfifo").arg(&fifo).status();
    if made.map(|st| st.success()).unwrap_or(false) {
        let reader = {
            let fifo = fifo.clone();
            std::thread::spawn(move || std::fs::read(&fifo).unwrap())
        };
        let o = ndec(&["run", s(&m), "--t1", "1", "--out", s(&fifo)]);
        assert!(o.status.success(), "{}", stderr(&o));
        assert_eq!(reader.join().unwrap(), plain.stdout);
        use std::os::unix::fs::FileTypeExt;
        assert!(
            std::fs::symlink_metadata(&fifo)
                .unwrap()
                .file_type()
                .is_fifo()
        );
    }
    // A symbolic link stays a link; its target gets the new contents.
    let target = tmp("link_target.csv");
    let link = tmp("link.csv");
    std::fs::write(&target, "old").unwrap();
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let o = ndec(&["run", s(&m), "--t1", "1", "--out", s(&link)]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(std::fs::read(&target).unwrap(), plain.stdout);
}

#[test]
fn method_auto_solves_stiff_and_non_stiff_models_from_the_flag_or_the_solve_block() {
    let rober = write(
        "rober_auto.nde",
        "param k1 = 0.04, k2 = 3e7, k3 = 1e4\nstate y1 = 1.0\nstate y2 = 0.0\nstate y3 = 0.0\ny1' = -k1*y1 + k3*y2*y3\ny2' = k1*y1 - k2*y2^2 - k3*y2*y3\ny3' = k2*y2^2\nsolve { t = 0 .. 1e5, method = auto, rtol = 1e-6, atol = 1e-10 }\n",
    );
    let o = ndec(&["run", s(&rober), "--stats"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = String::from_utf8(o.stdout).unwrap();
    let (csv_part, stats_line) = text.trim_end().rsplit_once('\n').unwrap();
    let (_, rows) = csv(csv_part);
    let y = &rows[1];
    assert_eq!(y[0], 1e5);
    for (v, r) in y[1..].iter().zip([
        1.786592260209636e-2,
        7.274751015624179e-8,
        0.9821340766967839,
    ]) {
        assert!((v - r).abs() / r < 1e-4, "{v} vs {r}");
    }
    let stats: serde_json::Value = serde_json::from_str(stats_line).unwrap();
    assert!(stats["jac_evals"].as_u64().unwrap() > 0, "{stats}");
    // A non-stiff model: the same rows as tsit5.
    let m = write("lv_auto.nde", LV);
    let auto = ndec(&[
        "run",
        s(&m),
        "--t1",
        "5",
        "--saveat",
        "0.5",
        "--method",
        "auto",
    ]);
    let tsit5 = ndec(&[
        "run",
        s(&m),
        "--t1",
        "5",
        "--saveat",
        "0.5",
        "--method",
        "tsit5",
    ]);
    assert!(auto.status.success(), "{}", stderr(&auto));
    assert_eq!(auto.stdout, tsit5.stdout);
}

#[test]
fn negative_numbers_are_flag_values() {
    let m = write("lv_neg.nde", LV);
    let o = ndec(&["run", s(&m), "--t0", "-1", "--t1", "0.5", "--saveat", "0.5"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let (_, rows) = csv(&String::from_utf8(o.stdout).unwrap());
    let ts: Vec<f64> = rows.iter().map(|r| r[0]).collect();
    assert_eq!(ts, [-1.0, -0.5, 0.0, 0.5]);
    // A negative tolerance is read as a value and refused with its reason (exit 2).
    let o = ndec(&["run", s(&m), "--t1", "1", "--rtol", "-1"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--rtol"), "{}", stderr(&o));
}
