//! Issue 14's probe, kept: the command lines of tests/data/hardening/cases.txt end with
//! their documented status and message, never a panic; plus the cases a line cannot say
//! (closed and full streams, deep nesting, `--out` links and temporaries, equal SDE paths).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn ndec() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ndec"))
}

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/hardening")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn every_probe_case_ends_with_its_status_and_message() {
    let cases = std::fs::read_to_string(dir().join("cases.txt")).unwrap();
    let mut bad = Vec::new();
    let mut n = 0;
    for line in cases
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
    {
        let mut parts = line.splitn(3, '|');
        let code: i32 = parts.next().unwrap().trim().parse().unwrap();
        let want = parts.next().unwrap().trim();
        let args: Vec<&str> = parts.next().unwrap().split_whitespace().collect();
        let o = ndec().args(&args).current_dir(dir()).output().unwrap();
        let out = text(&o);
        n += 1;
        if o.status.code() != Some(code) || !out.contains(want) || out.contains("panicked") {
            bad.push(format!(
                "`ndec {}`: want exit {code} with {want:?}, got {:?}:\n{}",
                args.join(" "),
                o.status.code(),
                out.lines().rev().take(4).collect::<Vec<_>>().join("\n")
            ));
        }
    }
    assert!(n >= 30, "cases.txt went missing");
    assert!(bad.is_empty(), "{}", bad.join("\n\n"));
}

#[test]
fn a_vector_sde_with_one_brownian_has_the_paths_of_its_scalar_form() {
    let run = |model: &str| {
        let o = ndec()
            .args([
                "run",
                model,
                "--t1",
                "1",
                "--method",
                "euler_maruyama",
                "--dt",
                "0.01",
            ])
            .args(["--seed", "7", "--saveat", "0.01"])
            .arg("--backend")
            .arg("interp")
            .current_dir(dir())
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        let csv = String::from_utf8(o.stdout).unwrap();
        csv.lines().skip(1).map(str::to_string).collect::<Vec<_>>()
    };
    let vector = run("sde_vector_one_brownian.nde");
    let scalar = run("sde_vector_one_brownian_scalar.nde");
    assert!(vector.len() > 50);
    assert_eq!(vector, scalar, "one W drives both entries in both forms");
}

#[test]
fn closed_and_full_streams_end_with_a_status_not_a_panic() {
    let full = || std::fs::OpenOptions::new().write(true).open("/dev/full");
    let Ok(dev_full) = full() else {
        return; // not a Linux machine: nothing to say
    };
    let o = ndec()
        .args(["run", "lin.nde", "--t1", "1", "--stats"])
        .current_dir(dir())
        .stdout(dev_full)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("cannot write to stdout"));
    let o = ndec()
        .args(["check", "lin.nde"])
        .current_dir(dir())
        .stderr(full().unwrap())
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "a full stderr loses the note, not the result"
    );
    let o = ndec()
        .args(["check", "index_overflow_div.nde"])
        .current_dir(dir())
        .stderr(full().unwrap())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    // A reader that goes away: `run` of a 1000-state model writes ~2 MB into a closed pipe.
    let mut child = ndec()
        .args(["run", "wide.nde", "--t1", "1", "--saveat", "0.01"])
        .current_dir(dir())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(!text(&o).contains("panicked"));
}

#[test]
fn nesting_beyond_the_documented_depth_is_a_diagnostic_and_below_it_compiles() {
    let tmp = tempdir("nesting");
    let limit = ndec::limits::MAX_NESTING as usize;
    let cases = [
        (
            "neg.nde",
            format!("state x = 1\nx' = {}x\n", "-".repeat(1_000_000)),
            1,
        ),
        (
            "pow.nde",
            format!("state x = 1\nx' = {}0.5\n", "x^".repeat(limit + 1)),
            1,
        ),
        (
            "call.nde",
            format!(
                "state x = 1\nx' = {}x{}\n",
                "sin(".repeat(limit + 1),
                ")".repeat(limit + 1)
            ),
            1,
        ),
        (
            "sum.nde",
            format!("state x = 1\nx' = {}x\n", "x + ".repeat(limit)),
            1,
        ),
        (
            "sum_ok.nde",
            format!("state x = 1\nx' = {}x\n", "x + ".repeat(limit - 1)),
            0,
        ),
        (
            "parens.nde",
            format!(
                "state x = 1\nx' = {}x{}\n",
                "(".repeat(1_000_000),
                ")".repeat(1_000_000)
            ),
            0,
        ),
    ];
    for (name, model, code) in cases {
        std::fs::write(tmp.join(name), model).unwrap();
        let o = ndec()
            .args(["check", name])
            .current_dir(&tmp)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(code), "{name}: {}", text(&o));
        if code == 1 {
            assert!(text(&o).contains("E0013"), "{name}: {}", text(&o));
        }
    }
}

#[test]
fn the_library_compiles_a_deep_model_on_a_small_stack() {
    // A test thread has 2 MiB of stack; check and lowering move to the compiler stack and
    // the trees are dropped without recursion, so this returns instead of overflowing.
    let depth = ndec::limits::MAX_NESTING as usize - 1;
    for text in [
        format!("state x = 1\nx' = {}x\n", "-".repeat(depth)),
        format!("state x = 1\nx' = {}x\n", "x + ".repeat(depth - 1)),
    ] {
        let model = std::thread::Builder::new()
            .stack_size(256 << 10)
            .spawn(move || ndec::compile_source("deep.nde", &text).map(|_| ()))
            .unwrap()
            .join()
            .unwrap();
        assert!(model.is_ok(), "{:?}", model.err());
    }
}

fn tempdir(what: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ndec-hardening-{what}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[cfg(unix)]
#[test]
fn out_files_never_follow_a_planted_link_and_keep_their_target() {
    use std::os::unix::fs::{PermissionsExt, symlink};
    let d = tempdir("out");
    let model = dir().join("lin.nde");
    let run_out = |out: &Path| {
        ndec()
            .arg("run")
            .arg(&model)
            .args(["--t1", "1", "--out"])
            .arg(out)
            .output()
            .unwrap()
    };
    // A link named --out is followed: the link stays, its target gets the CSV.
    std::fs::write(d.join("target.csv"), "old\n").unwrap();
    std::fs::set_permissions(d.join("target.csv"), std::fs::Permissions::from_mode(0o640)).unwrap();
    symlink("target.csv", d.join("link.csv")).unwrap();
    let o = run_out(&d.join("link.csv"));
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        std::fs::symlink_metadata(d.join("link.csv"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert!(
        std::fs::read_to_string(d.join("target.csv"))
            .unwrap()
            .starts_with("t,x\n")
    );
    let mode = std::fs::metadata(d.join("target.csv"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o640, "the target keeps its permissions");
    // A dangling link is refused, and nothing is created where it points.
    symlink("nowhere.csv", d.join("dangling.csv")).unwrap();
    let o = run_out(&d.join("dangling.csv"));
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("leads nowhere"));
    assert!(!d.join("nowhere.csv").exists());
    // Links planted at every temporary name the old scheme used (.NAME.tmp-PID-K) lead
    // nowhere harmful: the temporary is created with O_EXCL under a random name.
    std::fs::write(d.join("victim"), "precious\n").unwrap();
    for pid in 0..64 {
        let _ = symlink(d.join("victim"), d.join(format!(".out.csv.tmp-{pid}-0")));
    }
    let o = run_out(&d.join("out.csv"));
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(
        std::fs::read_to_string(d.join("victim")).unwrap(),
        "precious\n"
    );
    let leftovers: Vec<_> = std::fs::read_dir(&d)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp-") && !n.ends_with("-0"))
        .collect();
    assert!(leftovers.is_empty(), "temporaries left: {leftovers:?}");
}

#[cfg(unix)]
#[test]
fn an_interrupted_run_leaves_no_temporary_behind() {
    let d = tempdir("sigint");
    let mut interrupted = 0;
    for delay_ms in [100u64, 300, 500, 700] {
        let child = ndec()
            .arg("run")
            .arg(dir().join("wide.nde"))
            .args(["--t1", "1", "--saveat", "0.0005", "--out"])
            .arg(d.join("big.csv"))
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        let _ = Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status();
        let o = child.wait_with_output().unwrap();
        if o.status.code() == Some(130) {
            interrupted += 1;
        } else {
            assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        }
        let tmps: Vec<_> = std::fs::read_dir(&d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(".tmp-"))
            .collect();
        assert!(tmps.is_empty(), "after SIGINT at {delay_ms} ms: {tmps:?}");
    }
    assert!(
        interrupted > 0,
        "no run was interrupted: the model solves too fast"
    );
}
