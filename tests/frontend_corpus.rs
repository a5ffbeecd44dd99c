//! Data-driven front-end tests over the corpus:
//!
//! - every `tests/data/ok/*.nde` and `examples/*.nde` checks clean;
//! - every `tests/data/err/*.nde` is rejected with an error diagnostic whose rendered text is
//!   snapshotted in `tests/snapshots/err/NAME.diag` (`UPDATE_EXPECT=1` regenerates them) and
//!   whose primary location is on the line the file's `# expect:` comment names;
//! - printing every valid AST (minimal and explicit parentheses) and parsing it again gives
//!   the same tree, spans aside;
//! - the IR of every lowerable valid model passes `ir::validate`.

use ndec::diag::{self, Diagnostic};
use ndec::driver::{self, Source};
use ndec::ir;
use ndec::span::Span;
use ndec::syntax::ast::*;
use ndec::syntax::print::{self, Parens};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The `.nde` files of a directory, sorted by name.
fn nde_files(dir: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(root().join(dir))
        .unwrap_or_else(|e| panic!("cannot read {dir}: {e}"))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "nde"))
        .collect();
    v.sort();
    assert!(!v.is_empty(), "no .nde files in {dir}");
    v
}

fn stem(p: &Path) -> String {
    p.file_stem().unwrap().to_string_lossy().into_owned()
}

fn valid_files() -> Vec<PathBuf> {
    let mut v = nde_files("tests/data/ok");
    v.extend(nde_files("examples"));
    v
}

fn load(p: &Path, name: &str) -> Source {
    let bytes = std::fs::read(p).unwrap();
    match Source::from_bytes(name, &bytes) {
        Ok(s) => s,
        Err((_, d)) => panic!("{name}: not UTF-8: {}", d.message),
    }
}

fn short_name(p: &Path) -> String {
    let dir = p
        .parent()
        .unwrap()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    format!("{dir}/{}", p.file_name().unwrap().to_string_lossy())
}

// ---------------------------------------------------------------------------------------
// 1. valid files check clean

#[test]
fn every_valid_model_checks_clean() {
    let mut failures = Vec::new();
    let files = valid_files();
    for p in &files {
        let name = short_name(p);
        let src = load(p, &name);
        match driver::check(&src) {
            Ok(model) => {
                if model.state_len() == 0 {
                    failures.push(format!("{name}: checked, but has no state entries"));
                }
            }
            Err(diags) => failures.push(format!(
                "{name}: rejected\n{}",
                diag::render(&name, &src.text, &diags)
            )),
        }
        // The parser must not report anything either (not even a warning).
        let (_, pdiags) = ndec::syntax::parse(&src.text);
        if !pdiags.is_empty() {
            failures.push(format!("{name}: parser diagnostics {:?}", pdiags));
        }
    }
    assert!(
        files.len() >= 40,
        "expected the whole corpus, found {} files",
        files.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {} valid models fail:\n{}",
        failures.len(),
        files.len(),
        failures.join("\n")
    );
}

// ---------------------------------------------------------------------------------------
// 1. invalid files: rejected, snapshotted, on the right line

/// What running the front end on an invalid file gives: the source (lossy for non-UTF-8)
/// and the diagnostics.
fn diagnose(p: &Path, name: &str) -> Result<(Source, Vec<Diagnostic>), String> {
    let bytes = std::fs::read(p).unwrap();
    match Source::from_bytes(name, &bytes) {
        Err((src, d)) => Ok((src, vec![d])),
        Ok(src) => match driver::check(&src) {
            Ok(_) => Err(format!("{name}: accepted, but it is in err/")),
            Err(d) => Ok((src, d)),
        },
    }
}

/// Line numbers the `# expect:` comment gives for the error: the numbers after
/// `at line(s) N [and M]` / `on line N`; references to an earlier declaration
/// (`declared at line`, `given at line`) only when nothing else is named; otherwise any
/// `line N`. `None` when the comment names no line.
fn expected_lines(comment: &str) -> Option<Vec<usize>> {
    let mut primary = Vec::new();
    let mut secondary = Vec::new();
    let mut loose = Vec::new();
    let bytes = comment.as_bytes();
    let mut i = 0;
    while let Some(k) = comment[i..].find("line") {
        let at = i + k;
        i = at + 4;
        let mut j = i;
        let plural = bytes.get(j) == Some(&b's');
        if plural {
            j += 1;
        }
        if bytes.get(j) != Some(&b' ') {
            continue;
        }
        j += 1;
        let digits: String = comment[j..]
            .chars()
            .take_while(|c| c.is_ascii_digit())
            .collect();
        let Ok(n) = digits.parse::<usize>() else {
            continue;
        };
        let mut nums = vec![n];
        if plural {
            // `lines 3 and 4`, `lines 3 (0..2) and 4 (1..3)`
            let rest = &comment[j + digits.len()..];
            let window: String = rest.chars().take(16).collect();
            if let Some(a) = window.find("and ") {
                let d: String = window[a + 4..]
                    .chars()
                    .take_while(|c| c.is_ascii_digit())
                    .collect();
                if let Ok(m) = d.parse() {
                    nums.push(m);
                }
            }
        }
        let before = &comment[..at];
        if before.ends_with("declared at ") || before.ends_with("given at ") {
            secondary.extend(nums);
        } else if before.ends_with("at ") || before.ends_with("on ") {
            primary.extend(nums);
        } else {
            loose.extend(nums);
        }
    }
    [primary, secondary, loose]
        .into_iter()
        .find(|v| !v.is_empty())
}

#[test]
fn expected_lines_parser() {
    assert_eq!(
        expected_lines("duplicate name 'x' at line 3 (first declared at line 2)"),
        Some(vec![3])
    );
    assert_eq!(
        expected_lines("state 'y' (declared at line 3) has no equation"),
        Some(vec![3])
    );
    assert_eq!(
        expected_lines("state 'x' has two equations, at lines 3 and 4"),
        Some(vec![3, 4])
    );
    assert_eq!(
        expected_lines("by the families at lines 3 (0..2) and 4 (1..3)"),
        Some(vec![3, 4])
    );
    assert_eq!(
        expected_lines("tau = -1 (const, line 2) used in x(t - tau) at line 4"),
        Some(vec![4])
    );
    assert_eq!(
        expected_lines("cycle among lets: a -> b -> a (lines 3 and 4)"),
        Some(vec![3, 4])
    );
    assert_eq!(expected_lines("the model has no states"), None);
}

/// Files whose `# expect:` line cannot be read mechanically, with the reason.
/// (file stem, acceptable lines, why)
const LINE_OVERRIDES: &[(&str, &[usize], &str)] = &[
    // The files that cannot carry an `# expect` line (tests/data/err/README.md).
    ("empty", &[1], "zero bytes: the only position is 1:1"),
    ("non_utf8", &[3], "README: line 3 holds the bytes FF FE"),
    (
        "non_utf8_in_comment",
        &[1],
        "README: byte E9 inside the comment on line 1",
    ),
    // The comment names the line the cycle starts on; a cycle p -> q -> r -> p spans
    // lines 3-5 and any of its members is a correct place to report it.
    (
        "let_cycle_3",
        &[3, 4, 5],
        "a cycle over lines 3-5: any member line is right",
    ),
];

/// The 1-based line of the first `┌─ NAME:L:C` / `--> NAME:L:C` header in rendered text.
fn first_header_line(rendered: &str, name: &str) -> Option<usize> {
    let needle = format!("{name}:");
    for line in rendered.lines() {
        let l = line.trim_start();
        let l = l
            .strip_prefix("┌─")
            .or_else(|| l.strip_prefix("-->"))
            .map(str::trim_start);
        if let Some(rest) = l.and_then(|l| l.strip_prefix(&needle)) {
            return rest.split(':').next().and_then(|n| n.parse().ok());
        }
    }
    None
}

#[test]
fn every_invalid_model_is_rejected_on_the_named_line_with_a_snapshot() {
    let files = nde_files("tests/data/err");
    let mut failures = Vec::new();
    let mut snapshot_failures = Vec::new();
    let snap_dir = root().join("tests/snapshots/err");
    for p in &files {
        let stem = stem(p);
        let name = format!("err/{stem}.nde");
        let (src, diags) = match diagnose(p, &name) {
            Ok(x) => x,
            Err(e) => {
                failures.push(e);
                continue;
            }
        };
        if !diags.iter().any(Diagnostic::is_error) {
            failures.push(format!(
                "{name}: rejected without an error diagnostic: {diags:?}"
            ));
            continue;
        }
        for d in &diags {
            if d.span.end < d.span.start || d.span.start as usize > src.text.len() {
                failures.push(format!(
                    "{name}: diagnostic span {:?} outside the file",
                    d.span
                ));
            }
        }
        let rendered = diag::render(&name, &src.text, &diags);
        if rendered.contains("panicked") || rendered.trim().is_empty() {
            failures.push(format!("{name}: bad rendering:\n{rendered}"));
        }

        // The line the first diagnostic points at.
        let first_line = src.text.lines().next().unwrap_or("");
        let expected = LINE_OVERRIDES
            .iter()
            .find(|(s, ..)| *s == stem)
            .map(|(_, l, _)| l.to_vec())
            .or_else(|| {
                first_line
                    .strip_prefix("# expect:")
                    .and_then(expected_lines)
            });
        match (expected, first_header_line(&rendered, &name)) {
            (Some(lines), Some(got)) if !lines.contains(&got) => failures.push(format!(
                "{name}: diagnostic at line {got}, the comment says line {lines:?}\n  {first_line}\n{rendered}"
            )),
            (_, None) => failures.push(format!("{name}: no `{name}:L:C` header in\n{rendered}")),
            (None, _) if first_line.starts_with("# expect:") => {
                // Comments without a line number: the diagnostic only has to exist.
            }
            _ => {}
        }

        let snap = snap_dir.join(format!("{stem}.diag"));
        let result =
            std::panic::catch_unwind(|| expect_test::expect_file![snap].assert_eq(&rendered));
        if result.is_err() {
            snapshot_failures.push(name);
        }
    }
    assert!(
        files.len() >= 100,
        "expected the whole err corpus, found {}",
        files.len()
    );
    assert!(
        failures.is_empty(),
        "{} invalid-model failures:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
    assert!(
        snapshot_failures.is_empty(),
        "diagnostic snapshots differ (rerun with UPDATE_EXPECT=1 if the change is intended): {snapshot_failures:?}"
    );
}

/// Every err file has exactly one thing wrong, so ideally exactly one error diagnostic.
/// The files listed here currently give a follow-on error as well (a cascade from the one
/// mistake); the test keeps new cascades from creeping in.
const KNOWN_CASCADES: &[&str] = &[
    "dup_net_let",              // + "net `f` must be called" at the use of the let
    "dup_param_state",          // + "an equation is for a state, but `a` is a param"
    "redeclare_sin_state",      // + "unknown name `sin`" on the equation
    "lex_non_ascii_identifier", // + "unexpected `=`" after the skipped character
    "lex_double_quote",         // two `"` characters, each reported
];

#[test]
fn invalid_models_give_one_error_each() {
    let mut extra = Vec::new();
    for p in nde_files("tests/data/err") {
        let stem = stem(&p);
        let name = format!("err/{stem}.nde");
        let Ok((_, diags)) = diagnose(&p, &name) else {
            continue;
        };
        let n = diags.iter().filter(|d| d.is_error()).count();
        if n > 1 && !KNOWN_CASCADES.contains(&stem.as_str()) {
            let msgs: Vec<&str> = diags.iter().map(|d| d.message.as_str()).collect();
            extra.push(format!("{name}: {n} errors: {msgs:?}"));
        }
    }
    assert!(extra.is_empty(), "cascading errors:\n{}", extra.join("\n"));
}

// ---------------------------------------------------------------------------------------
// 3. round trip through the printer

/// The tree with every span zeroed, so two parses of different text compare equal.
pub fn strip_module(m: &Module) -> Module {
    Module {
        items: m.items.iter().map(strip_item).collect(),
    }
}

fn z() -> Span {
    Span::default()
}

fn sid(i: &Ident) -> Ident {
    Ident {
        name: i.name.clone(),
        span: z(),
    }
}

fn sbind(b: &Binding) -> Binding {
    Binding {
        name: sid(&b.name),
        value: strip_expr(&b.value),
    }
}

fn sfor(f: &ForClause) -> ForClause {
    ForClause {
        var: sid(&f.var),
        lo: strip_expr(&f.lo),
        hi: strip_expr(&f.hi),
        span: z(),
    }
}

fn sarg(a: &Arg) -> Arg {
    match a {
        Arg::Pos(e) => Arg::Pos(strip_expr(e)),
        Arg::Named(n, e) => Arg::Named(sid(n), strip_expr(e)),
    }
}

fn strip_item(it: &Item) -> Item {
    let kind = match &it.kind {
        ItemKind::Model(n) => ItemKind::Model(sid(n)),
        ItemKind::Const(b) => ItemKind::Const(b.iter().map(sbind).collect()),
        ItemKind::Param(b) => ItemKind::Param(b.iter().map(sbind).collect()),
        ItemKind::Let(b) => ItemKind::Let(b.iter().map(sbind).collect()),
        ItemKind::Output(b) => ItemKind::Output(b.iter().map(sbind).collect()),
        ItemKind::State(d) => ItemKind::State(
            d.iter()
                .map(|d| StateDecl {
                    name: sid(&d.name),
                    size: d.size.as_ref().map(strip_expr),
                    init: strip_expr(&d.init),
                    family: d.family.as_ref().map(sfor),
                })
                .collect(),
        ),
        ItemKind::Net(n) => ItemKind::Net(NetDecl {
            name: sid(&n.name),
            ctor: sid(&n.ctor),
            args: n.args.iter().map(sarg).collect(),
            args_span: z(),
        }),
        ItemKind::Brownian { calculus, names } => ItemKind::Brownian {
            calculus: *calculus,
            names: names.iter().map(sid).collect(),
        },
        ItemKind::History { state, value } => ItemKind::History {
            state: sid(state),
            value: strip_expr(value),
        },
        ItemKind::Input(d) => ItemKind::Input(
            d.iter()
                .map(|d| InputDecl {
                    name: sid(&d.name),
                    size: d.size.as_ref().map(strip_expr),
                })
                .collect(),
        ),
        ItemKind::Equation(e) => ItemKind::Equation(Equation {
            lhs: strip_expr(&e.lhs),
            rhs: strip_expr(&e.rhs),
            family: e.family.as_ref().map(sfor),
        }),
        ItemKind::Solve(es) => ItemKind::Solve(
            es.iter()
                .map(|e| SolveEntry {
                    key: sid(&e.key),
                    value: strip_expr(&e.value),
                })
                .collect(),
        ),
        ItemKind::Error => ItemKind::Error,
    };
    Item { kind, span: z() }
}

pub fn strip_expr(e: &Expr) -> Expr {
    let b = |x: &Expr| Box::new(strip_expr(x));
    let kind = match &e.kind {
        ExprKind::Number(x) => ExprKind::Number(*x),
        ExprKind::Name(n) => ExprKind::Name(n.clone()),
        ExprKind::Neg(a) => ExprKind::Neg(b(a)),
        ExprKind::Binary(op, x, y) => ExprKind::Binary(*op, b(x), b(y)),
        ExprKind::Call(f, args) => ExprKind::Call(sid(f), args.iter().map(sarg).collect()),
        ExprKind::Index(v, i) => ExprKind::Index(b(v), b(i)),
        ExprKind::Slice(v, x, y) => ExprKind::Slice(b(v), b(x), b(y)),
        ExprKind::Prime(v) => ExprKind::Prime(b(v)),
        ExprKind::List(v) => ExprKind::List(v.iter().map(strip_expr).collect()),
        ExprKind::Range(x, y) => ExprKind::Range(b(x), b(y)),
        ExprKind::Chain(v) => ExprKind::Chain(v.iter().map(strip_expr).collect()),
    };
    Expr { kind, span: z() }
}

fn parse_clean(text: &str, what: &str) -> Result<Module, String> {
    let (m, diags) = ndec::syntax::parse(text);
    if diags.iter().any(Diagnostic::is_error) {
        return Err(format!(
            "{what} does not parse:\n{}",
            diag::render(what, text, &diags)
        ));
    }
    Ok(m)
}

#[test]
fn printed_ast_parses_back_to_the_same_tree() {
    let mut failures = Vec::new();
    let files = valid_files();
    for p in &files {
        let name = short_name(p);
        let src = load(p, &name);
        let m = match parse_clean(&src.text, &name) {
            Ok(m) => m,
            Err(e) => {
                failures.push(e);
                continue;
            }
        };
        let want = strip_module(&m);
        for parens in [Parens::Minimal, Parens::Explicit] {
            let text = print::module(&m, parens);
            match parse_clean(&text, &format!("{name} printed {parens:?}")) {
                Err(e) => failures.push(format!("{e}\n--- printed:\n{text}")),
                Ok(back) => {
                    if strip_module(&back) != want {
                        failures.push(format!(
                            "{name}: {parens:?} printing changes the tree:\n{text}"
                        ));
                        continue;
                    }
                    // Printing is a fixed point.
                    let again = print::module(&back, parens);
                    if again != text {
                        failures.push(format!("{name}: {parens:?} printing is not idempotent"));
                    }
                    // The printed model means the same: it still checks.
                    if parens == Parens::Minimal {
                        let s = Source::new(&name, text.clone());
                        if let Err(d) = driver::check(&s) {
                            failures.push(format!(
                                "{name}: printed model no longer checks:\n{}",
                                diag::render(&name, &text, &d)
                            ));
                        }
                    }
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} round-trip failures:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

#[test]
fn explicit_printing_brackets_every_operation() {
    let src = "state x = 1\nx' = -x^2 + 2*x*x - x/3 ^ 2 ^ -1\n";
    let (m, d) = ndec::syntax::parse(src);
    assert!(d.is_empty(), "{d:?}");
    let minimal = print::module(&m, Parens::Minimal);
    let explicit = print::module(&m, Parens::Explicit);
    expect_test::expect![[r#"
        state x = 1
        x' = -x ^ 2 + 2 * x * x - x / 3 ^ 2 ^ -1
    "#]]
    .assert_eq(&minimal);
    expect_test::expect![[r#"
        state x = 1
        x' = ((-(x ^ 2)) + ((2 * x) * x)) - (x / (3 ^ (2 ^ (-1))))
    "#]]
    .assert_eq(&explicit);
}

// ---------------------------------------------------------------------------------------
// 4. every lowerable model gives valid IR

#[test]
fn ir_of_every_lowerable_valid_model_validates() {
    let mut failures = Vec::new();
    let mut lowered_count = 0;
    for p in valid_files() {
        let name = short_name(&p);
        let src = load(&p, &name);
        let Ok(model) = driver::check(&src) else {
            continue;
        };
        let result = std::panic::catch_unwind(|| driver::lower(&model));
        let l = match result {
            Err(_) => {
                failures.push(format!("{name}: lowering panicked"));
                continue;
            }
            Ok(Err(e)) => {
                failures.push(format!("{name}: not lowered: {e}"));
                continue;
            }
            Ok(Ok(l)) => l,
        };
        lowered_count += 1;
        for f in [
            &l.vector_field,
            &l.initial,
            &l.outputs,
            &l.delays,
            &l.history,
        ] {
            if let Err(e) = ir::validate(f) {
                failures.push(format!("{name}: {e}"));
            }
        }
        let n = model.state_len();
        let du = &l.vector_field.outputs;
        if du.len() != 1 || du[0].0.len != n {
            failures.push(format!(
                "{name}: vector field outputs {du:?}, want one buffer of {n}"
            ));
        }
        if l.initial.outputs[0].0.len != n {
            failures.push(format!("{name}: initial values have the wrong length"));
        }
        if l.layout.len != l.vector_field.args[l.vector_field.arg_index("p").unwrap()].len {
            failures.push(format!("{name}: p length differs from the layout"));
        }
        // Evaluate each kernel once on plausible arguments: nothing may panic, and the
        // initial values must be finite.
        let p0 = default_params(&model, &l.layout);
        let r = std::panic::catch_unwind(|| {
            let u0 = ndec::backend::interp::eval(&l.initial, &[&p0]).remove(0);
            let args: Vec<Vec<f64>> = l
                .vector_field
                .args
                .iter()
                .map(|b| match b.name.as_str() {
                    "t" => vec![0.25],
                    "u" => u0.clone(),
                    "p" => p0.clone(),
                    _ => vec![0.5; b.len],
                })
                .collect();
            let refs: Vec<&[f64]> = args.iter().map(Vec::as_slice).collect();
            let du = ndec::backend::interp::eval(&l.vector_field, &refs);
            (u0, du)
        });
        match r {
            Err(_) => failures.push(format!("{name}: interpreting the kernels panicked")),
            Ok((u0, du)) => {
                if u0.iter().any(|x| !x.is_finite()) {
                    failures.push(format!("{name}: non-finite initial values {u0:?}"));
                }
                if du[0].len() != n {
                    failures.push(format!("{name}: du has length {}", du[0].len()));
                }
            }
        }
    }
    assert!(lowered_count >= 30, "only {lowered_count} models lowered");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Scalar params at their defaults; net weights a small deterministic pattern.
fn default_params(model: &ndec::sema::Model, layout: &ir::ParamLayout) -> Vec<f64> {
    let mut p: Vec<f64> = (0..layout.len)
        .map(|k| ((k % 7) as f64 - 3.0) * 0.05)
        .collect();
    for (name, at) in &layout.scalars {
        p[*at] = model
            .params
            .iter()
            .find(|q| &q.name == name)
            .unwrap()
            .default;
    }
    p
}
