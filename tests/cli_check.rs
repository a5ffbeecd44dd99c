//! The `ndec` binary: `check` and `compile` exit statuses, diagnostics on stderr and the
//! files `--emit … -o FILE` writes.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn ndec(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ndec"))
        .args(args)
        .output()
        .expect("run ndec")
}

fn run(args: &[&str]) -> Output {
    let a: Vec<&std::ffi::OsStr> = args.iter().map(|s| std::ffi::OsStr::new(*s)).collect();
    ndec(&a)
}

fn data(p: &str) -> String {
    format!("{}/{p}", env!("CARGO_MANIFEST_DIR"))
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[track_caller]
fn assert_code(o: &Output, code: i32) {
    assert_eq!(
        o.status.code(),
        Some(code),
        "exit status {:?}, want {code}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        stdout(o),
        stderr(o)
    );
    let e = stderr(o);
    assert!(
        !e.contains("panicked") && !e.contains("overflowed its stack"),
        "stderr:\n{e}"
    );
}

/// A scratch directory unique to this test process and name.
fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ndec-cli-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> String {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p.display().to_string()
}

/// `file:line:col` for the given file appears in the text.
fn has_location(text: &str, file: &str, line: usize) -> bool {
    text.contains(&format!("{file}:{line}:"))
}

#[test]
fn check_valid_models_exit_0() {
    for f in [
        "examples/lotka_volterra.nde",
        "examples/heat.nde",
        "examples/lotka_ude.nde",
        "tests/data/ok/sir.nde",
    ] {
        let o = run(&["check", &data(f)]);
        assert_code(&o, 0);
        assert!(!stderr(&o).contains("error"), "{f}: {}", stderr(&o));
    }
}

#[test]
fn check_invalid_models_exit_1_with_location() {
    for (f, line) in [
        ("tests/data/err/unknown_name.nde", 4),
        ("tests/data/err/dup_state.nde", 3),
        ("tests/data/err/syn_missing_equals.nde", 2),
        ("tests/data/err/index_family_plus1_oob.nde", 4),
        ("tests/data/err/lex_dollar.nde", 3),
    ] {
        let path = data(f);
        let o = run(&["check", &path]);
        assert_code(&o, 1);
        let e = stderr(&o);
        assert!(
            has_location(&e, &path, line),
            "{f}: no `{path}:{line}:col` in\n{e}"
        );
        assert!(e.contains('^'), "{f}: no caret in\n{e}");
        assert!(e.contains("hint"), "{f}: no hint in\n{e}");
        assert!(stdout(&o).is_empty(), "{f}: check printed to stdout");
    }
}

#[test]
fn every_err_file_exits_1_from_the_cli() {
    let mut bad = Vec::new();
    let dir = data("tests/data/err");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "nde"))
        .collect();
    files.sort();
    for p in &files {
        let o = ndec(&["check".as_ref(), p.as_os_str()]);
        let e = stderr(&o);
        let path = p.display().to_string();
        if o.status.code() != Some(1) || e.contains("panicked") || !e.contains(&format!("{path}:"))
        {
            bad.push(format!("{path}: status {:?}\n{e}", o.status.code()));
        }
        // compile must not produce code either
        let o = ndec(&[
            "compile".as_ref(),
            p.as_os_str(),
            "--emit".as_ref(),
            "ir".as_ref(),
        ]);
        if o.status.code() != Some(1) || !o.stdout.is_empty() {
            bad.push(format!(
                "{path}: compile status {:?}, {} bytes on stdout",
                o.status.code(),
                o.stdout.len()
            ));
        }
    }
    assert!(files.len() >= 100);
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[test]
fn check_missing_file_exits_2() {
    let o = run(&["check", "/nonexistent/dir/model.nde"]);
    assert_code(&o, 2);
    assert!(
        stderr(&o).contains("/nonexistent/dir/model.nde"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn check_empty_and_non_utf8_files_exit_1() {
    let d = scratch("bytes");
    let empty = write(&d, "empty.nde", b"");
    let o = run(&["check", &empty]);
    assert_code(&o, 1);
    assert!(has_location(&stderr(&o), &empty, 1), "{}", stderr(&o));

    let bad = write(&d, "bad.nde", b"state x = 1\nx' = -x\n\xff\xfe\n");
    let o = run(&["check", &bad]);
    assert_code(&o, 1);
    assert!(has_location(&stderr(&o), &bad, 3), "{}", stderr(&o));
    assert!(stderr(&o).contains("UTF-8"), "{}", stderr(&o));

    let only_comment = write(&d, "c.nde", b"# nothing here\n");
    assert_code(&run(&["check", &only_comment]), 1);
}

#[test]
fn usage_errors_exit_2_and_help_exits_0() {
    assert_code(&run(&["--help"]), 0);
    let o = run(&["--help"]);
    assert!(
        stdout(&o).contains("check") && stdout(&o).contains("compile"),
        "{}",
        stdout(&o)
    );
    assert_code(&run(&["check", "--help"]), 0);
    assert_code(&run(&["compile", "--help"]), 0);
    assert_code(&run(&[]), 2);
    assert_code(&run(&["frobnicate"]), 2);
    assert_code(&run(&["check"]), 2);
    assert_code(
        &run(&[
            "compile",
            &data("examples/spiral.nde"),
            "--emit",
            "nonsense",
        ]),
        2,
    );
    assert_code(
        &run(&["check", &data("examples/spiral.nde"), "--no-such-flag"]),
        2,
    );
}

#[test]
fn compile_emit_ast_prints_the_parsed_model() {
    let o = run(&[
        "compile",
        &data("tests/data/ok/lotka_volterra.nde"),
        "--emit",
        "ast",
    ]);
    assert_code(&o, 0);
    let text = stdout(&o);
    // Explicit parentheses: every operation bracketed.
    assert!(text.contains("x' = (a * x) - ((b * x) * y)"), "{text}");
    assert!(text.contains("model lotka_volterra"), "{text}");
    // The printed AST is itself a valid model.
    let d = scratch("ast");
    let again = write(&d, "again.nde", text.as_bytes());
    assert_code(&run(&["check", &again]), 0);
    // An invalid model prints no AST.
    let o = run(&[
        "compile",
        &data("tests/data/err/unknown_name.nde"),
        "--emit",
        "ast",
    ]);
    assert_code(&o, 1);
    assert!(o.stdout.is_empty());
}

#[test]
fn compile_emit_ir_to_a_file() {
    let d = scratch("ir");
    let out = d.join("heat.ir");
    let out_s = out.display().to_string();
    let o = run(&[
        "compile",
        &data("examples/heat.nde"),
        "--emit",
        "ir",
        "-o",
        &out_s,
    ]);
    assert_code(&o, 0);
    assert!(
        o.stdout.is_empty(),
        "with -o nothing goes to stdout: {}",
        stdout(&o)
    );
    let text = std::fs::read_to_string(&out).expect("the IR file was written");
    for want in [
        "fn vector_field(t[1], u[100], p[0]) -> (du[100]) {",
        "fn initial(p[0]) -> (u0[100]) {",
        "fn outputs(t[1], u[100], p[0]) -> (o[1]) {",
        "gather",
        "iota 0",
    ] {
        assert!(text.contains(want), "missing `{want}` in\n{text}");
    }
    // The same text as stdout, and no temporary file left behind.
    let o = run(&["compile", &data("examples/heat.nde"), "--emit", "ir"]);
    assert_code(&o, 0);
    assert_eq!(stdout(&o), text);
    let names: Vec<_> = std::fs::read_dir(&d)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");
    // A failing compile does not create or clobber the output file.
    let o = run(&[
        "compile",
        &data("tests/data/err/unknown_name.nde"),
        "--emit",
        "ir",
        "-o",
        &out_s,
    ]);
    assert_code(&o, 1);
    assert_eq!(std::fs::read_to_string(&out).unwrap(), text);
    let fresh = d.join("never.ir");
    let o = run(&[
        "compile",
        &data("tests/data/err/unknown_name.nde"),
        "-o",
        &fresh.display().to_string(),
    ]);
    assert_code(&o, 1);
    assert!(!fresh.exists());
}

#[test]
fn compile_emit_ir_of_a_delay_model_includes_delays() {
    let o = run(&[
        "compile",
        &data("tests/data/ok/dde_mackey_glass.nde"),
        "--emit",
        "ir",
    ]);
    assert_code(&o, 0);
    let t = stdout(&o);
    assert!(t.contains("fn delays(") && t.contains("fn history("), "{t}");
}

// ---------------------------------------------------------------------------------------
// Inputs that found bugs (see the report): valid or invalid, they must never crash.

fn check_text(name: &str, text: &str) -> Output {
    let d = scratch(name);
    let p = write(&d, &format!("{name}.nde"), text.as_bytes());
    run(&["compile", &p, "--emit", "ir"])
}

#[test]
fn zero_length_vector_state_does_not_crash() {
    // `state u[0]`: 0 is a non-negative integer size (LANGUAGE.md §5).
    let o = check_text(
        "zero_len",
        "state u[0] = 0\nstate x = 1\nx' = -x\nu' = -u\n",
    );
    let code = o.status.code();
    assert!(
        code == Some(0) || code == Some(1),
        "status {code:?}\n{}",
        stderr(&o)
    );
    assert_code(&o, code.unwrap());
}

#[test]
fn huge_state_size_is_a_diagnostic_not_a_crash() {
    // 1e12 entries do not fit the IR's 32-bit lengths.
    let o = check_text("huge", "state u[1e12] = 0\nu' = -u\n");
    let code = o.status.code();
    assert!(
        code == Some(1) || code == Some(4),
        "status {code:?}\n{}",
        stderr(&o)
    );
    assert_code(&o, code.unwrap());
}

#[test]
fn long_sums_and_deep_nesting_do_not_overflow_the_stack() {
    // A 10,001-term sum, 2,000 nested parentheses, a 2,000-deep chain of unary minus and
    // of `^`: ordinary generated models, well inside what a compiler should take.
    let cases = [
        (
            "long_sum",
            format!("state x = 1\nx' = {}x\n", "x + ".repeat(10_000)),
        ),
        (
            "parens",
            format!(
                "state x = 1\nx' = {}x{}\n",
                "(".repeat(2_000),
                ")".repeat(2_000)
            ),
        ),
        (
            "negs",
            format!("state x = 1\nx' = {}x\n", "-".repeat(2_000)),
        ),
        (
            "pows",
            format!("state x = 1\nx' = {}0.5\n", "x^".repeat(2_000)),
        ),
    ];
    let mut bad = Vec::new();
    for (name, text) in &cases {
        let o = check_text(name, text);
        let e = stderr(&o);
        if o.status.code() != Some(0) || e.contains("overflow") || e.contains("panicked") {
            bad.push(format!(
                "{name}: status {:?}: {}",
                o.status.code(),
                e.lines().last().unwrap_or("")
            ));
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}
