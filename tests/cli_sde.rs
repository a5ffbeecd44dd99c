//! `ndec run` and `ndec compile` on SDE models: default methods, ensembles with a `traj`
//! column, `--traj K` replaying one trajectory's rows exactly, `--stats` with
//! `trajectories` and summed work, seeds, and the exit statuses of SDE misuse.

mod common;

use common::*;
use std::process::Output;

fn out(o: &Output) -> String {
    assert!(
        o.status.success(),
        "status {:?}: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout.clone()).unwrap()
}

const GBM: &str = "param mu = 0.5, sigma = 0.4\nbrownian W\nstate x = 1\noutput lx = log(x)\nx' = mu*x + sigma*x*W\n";

#[test]
fn an_ensemble_has_a_traj_column_and_every_trajectory_replays_alone() {
    let m = write("gbm.nde", GBM);
    for method in [
        "euler_maruyama",
        "milstein",
        "reversible_heun",
        "sde_adaptive",
    ] {
        let base = [
            "run",
            s(&m),
            "--t1",
            "1",
            "--dt",
            "0.01",
            "--saveat",
            "0.25",
            "--seed",
            "42",
            "--method",
            method,
        ];
        let all = out(&ndec(&[&base[..], &["--ensemble", "16"]].concat()));
        let mut lines = all.lines();
        assert_eq!(lines.next(), Some("traj,t,x,lx"));
        let rows: Vec<&str> = lines.collect();
        assert_eq!(rows.len(), 16 * 5, "{method}");
        for (i, r) in rows.iter().enumerate() {
            assert!(r.starts_with(&format!("{},", i / 5)), "{method}: {r}");
        }
        for k in [0usize, 7, 15] {
            let one = out(&ndec(
                &[&base[..], &["--ensemble", "16", "--traj", &k.to_string()]].concat(),
            ));
            let mine: Vec<&str> = rows[k * 5..(k + 1) * 5].to_vec();
            assert_eq!(
                one.lines().skip(1).collect::<Vec<_>>(),
                mine,
                "{method} traj {k}"
            );
        }
        // A run without --ensemble is trajectory 0.
        let single = out(&ndec(&base));
        let r0: Vec<String> = rows[..5]
            .iter()
            .map(|r| r.split_once(',').unwrap().1.to_string())
            .collect();
        assert_eq!(single.lines().skip(1).collect::<Vec<_>>(), r0, "{method}");
        // Paths differ between trajectories and between seeds.
        assert_ne!(
            rows[4].split_once(',').unwrap().1,
            rows[9].split_once(',').unwrap().1
        );
        let other = out(&ndec(&[&base[..9], &["43", "--method", method]].concat()));
        assert_ne!(other, single, "{method}");
    }
}

#[test]
fn default_methods_and_stats() {
    let m = write("gbm_stats.nde", GBM);
    // With a dt: euler_maruyama, exactly one kernel call per step.
    let o = out(&ndec(&[
        "run",
        s(&m),
        "--t1",
        "1",
        "--dt",
        "0.01",
        "--ensemble",
        "8",
        "--stats",
    ]));
    let last = o.lines().last().unwrap();
    let v: serde_json::Value = serde_json::from_str(last).unwrap();
    assert_eq!(v["trajectories"], 8);
    assert_eq!(v["steps"], 800);
    assert_eq!(v["accepted"], 800);
    assert_eq!(v["rejected"], 0);
    assert_eq!(v["rhs_evals"], 800);
    for k in [
        "jac_evals",
        "lu_factorizations",
        "newton_iters",
        "compile_ms",
        "solve_ms",
    ] {
        assert!(v.get(k).is_some(), "{k} missing: {last}");
    }
    // Without a dt: sde_adaptive (two evaluations per attempted step).
    let o = out(&ndec(&[
        "run",
        s(&m),
        "--t1",
        "1",
        "--rtol",
        "1e-3",
        "--atol",
        "1e-3",
        "--stats",
    ]));
    let v: serde_json::Value = serde_json::from_str(o.lines().last().unwrap()).unwrap();
    let steps = v["steps"].as_u64().unwrap();
    assert!(steps > 5);
    assert_eq!(v["rhs_evals"].as_u64().unwrap(), 2 * steps);
    assert_eq!(
        v["accepted"].as_u64().unwrap() + v["rejected"].as_u64().unwrap(),
        steps
    );
    assert!(v.get("trajectories").is_none());
}

#[test]
fn sde_misuse_has_the_contract_exit_statuses() {
    let m = write("gbm_err.nde", GBM);
    let code = |args: &[&str]| ndec(args).status.code();
    // A fixed-step method without a dt: usage.
    assert_eq!(
        code(&["run", s(&m), "--t1", "1", "--method", "milstein"]),
        Some(2)
    );
    // An ODE method on an SDE, an SDE method on an ODE: not available.
    assert_eq!(
        code(&["run", s(&m), "--t1", "1", "--method", "rk4", "--dt", "0.1"]),
        Some(4)
    );
    let ode = write("ode.nde", "state x = 1\nx' = -x\n");
    assert_eq!(
        code(&[
            "run",
            s(&ode),
            "--t1",
            "1",
            "--method",
            "euler_maruyama",
            "--dt",
            "0.1"
        ]),
        Some(4)
    );
    // Milstein on non-commutative noise: not available, with the reason.
    let heston = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/ok/sde_heston.nde");
    let o = ndec(&["run", heston, "--method", "milstein"]);
    assert_eq!(o.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&o.stderr).contains("commutative"));
    // Backwards in time: usage.
    assert_eq!(
        code(&["run", s(&m), "--t0", "1", "--t1", "0", "--dt", "0.1"]),
        Some(2)
    );
    // Blow-up: a solver failure naming the time.
    let blow = write("blow.nde", "brownian W\nstate x = 1\nx' = x^2 + 0.1*W\n");
    let o = ndec(&["run", s(&blow), "--t1", "10", "--dt", "0.1"]);
    assert_eq!(o.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&o.stderr).contains("t = "));
}

#[test]
fn the_corpus_models_run_with_their_solve_blocks() {
    for f in [
        "sde_gbm",
        "sde_ou",
        "sde_diagonal",
        "sde_heston",
        "sde_neural",
        "sde_stratonovich",
    ] {
        let path = format!("{}/tests/data/ok/{f}.nde", env!("CARGO_MANIFEST_DIR"));
        let text = out(&ndec(&["run", &path, "--rtol", "1e-3", "--atol", "1e-3"]));
        let rows: Vec<&str> = text.lines().collect();
        assert!(rows.len() >= 3, "{f}: {text}");
        assert!(
            !text.contains("NaN") && !text.contains("inf"),
            "{f}: {text}"
        );
    }
}

#[test]
fn emit_ir_shows_drift_and_diffusion() {
    let m = write("gbm_ir.nde", GBM);
    let text = out(&ndec(&["compile", s(&m), "--emit", "ir"]));
    for want in [
        "fn drift(",
        "# SDE: 1 state entries, 1 Wiener process(es) w = [W], Itô; noise: scalar (commutative)",
        "fn drift_ito(",
        "fn drift_stratonovich(",
        "fn diffusion(t[1], u[1], p[2]) -> (g[1])",
        "fn sde_milstein(t[1], u[1], p[2], dw[1]) -> (f[1], gdw[1], mil[1])",
    ] {
        assert!(text.contains(want), "missing `{want}` in\n{text}");
    }
}
