//! Property tests of the front end:
//!
//! - no input makes the pipeline panic: random bytes (invalid UTF-8 included), random
//!   token sequences, and random edits of the valid corpus all go through
//!   `Source::from_bytes` → `driver::check` → (if Ok) `ir::lower` → `ir::validate` → the
//!   interpreter on every kernel, and a rejected input always has an error diagnostic that
//!   renders;
//! - a random expression tree printed (minimal or explicit parentheses) parses back to
//!   the same tree.

use ndec::backend::interp;
use ndec::diag::{self, Diagnostic};
use ndec::driver::{self, Source};
use ndec::ir;
use ndec::span::Span;
use ndec::syntax::ast::*;
use ndec::syntax::print::{self, Parens};
use proptest::prelude::*;
use proptest::test_runner::Config;

/// Runs the whole front end on `bytes`; panics (a test failure) on any broken promise.
fn pipeline(bytes: &[u8]) {
    let src = match Source::from_bytes("fuzz.nde", bytes) {
        Ok(s) => s,
        Err((s, d)) => {
            assert!(d.is_error());
            assert!(std::str::from_utf8(bytes).is_err());
            let r = diag::render(&s.name, &s.text, &[d]);
            assert!(r.contains("fuzz.nde:"), "{r}");
            return;
        }
    };
    let model = match driver::check(&src) {
        Err(diags) => {
            assert!(
                diags.iter().any(Diagnostic::is_error),
                "rejected without an error: {diags:?}"
            );
            let r = diag::render(&src.name, &src.text, &diags);
            assert!(r.contains("fuzz.nde:"), "{r}");
            return;
        }
        Ok(m) => m,
    };
    assert!(
        model.state_len() > 0,
        "a model without state entries was accepted"
    );
    let Ok(l) = driver::lower(&model) else { return };
    for f in [
        &l.vector_field,
        &l.initial,
        &l.outputs,
        &l.delays,
        &l.history,
    ] {
        if let Err(e) = ir::validate(f) {
            panic!("invalid IR for\n{}\n{e}", src.text);
        }
    }
    if model.state_len() > 100_000 {
        return; // fine to lower, too big to interpret in a property test
    }
    let p: Vec<f64> = (0..l.layout.len)
        .map(|k| 0.1 * (k % 5) as f64 - 0.2)
        .collect();
    for f in [
        &l.vector_field,
        &l.initial,
        &l.outputs,
        &l.delays,
        &l.history,
    ] {
        let args: Vec<Vec<f64>> = f
            .args
            .iter()
            .map(|b| {
                if b.name == "p" {
                    p.clone()
                } else {
                    vec![0.5; b.len]
                }
            })
            .collect();
        let refs: Vec<&[f64]> = args.iter().map(Vec::as_slice).collect();
        let out = interp::eval(f, &refs);
        for ((b, _), o) in f.outputs.iter().zip(&out) {
            assert_eq!(
                o.len(),
                b.len,
                "{}: output {} has the wrong length",
                f.name,
                b.name
            );
        }
    }
}

const TOKENS: &[&str] = &[
    "model",
    "const",
    "param",
    "state",
    "let",
    "net",
    "brownian",
    "history",
    "input",
    "output",
    "solve",
    "for",
    "in",
    "ito",
    "stratonovich",
    "x",
    "y",
    "u",
    "v",
    "i",
    "t",
    "k",
    "N",
    "W",
    "nn",
    "z",
    "exp",
    "sin",
    "sum",
    "dot",
    "min",
    "max",
    "ifelse",
    "reshape",
    "mlp",
    "tanh",
    "relu",
    "pi",
    "method",
    "rtol",
    "atol",
    "tsit5",
    "0",
    "1",
    "2",
    "3",
    "0.5",
    ".35e0",
    "1e-3",
    "10",
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    ",",
    "=",
    "'",
    "..",
    "->",
    "+",
    "-",
    "*",
    "/",
    "@",
    "^",
    "<",
    "<=",
    ">",
    ">=",
    "\n",
    ";",
    "#",
    "x'",
    "u[i]'",
    "u[0]",
    "u[i-1]",
    "x(t - k)",
    " for i in 0..N",
];

fn token_soup() -> impl Strategy<Value = String> {
    proptest::collection::vec((0..TOKENS.len(), any::<bool>()), 0..60).prop_map(|v| {
        let mut s = String::new();
        for (k, space) in v {
            s.push_str(TOKENS[k]);
            if space {
                s.push(' ');
            }
        }
        s
    })
}

/// Statement-shaped soup: each line starts the way a statement does, so more inputs get
/// past the parser into the checker and lowering.
fn statement_soup() -> impl Strategy<Value = String> {
    const HEADS: &[&str] = &[
        "state x = ",
        "state u[3] = ",
        "state u[N] = ",
        "param k = ",
        "const N = ",
        "let z = ",
        "x' = ",
        "u' = ",
        "y' = ",
        "u[i]' = ",
        "output o = ",
        "history x = ",
        "net nn = mlp(",
        "input X[2]",
        "brownian W",
        "solve { t = 0 .. ",
    ];
    const EXPRS: &[&str] = &[
        "x",
        "-x",
        "u",
        "u[0]",
        "u[i]",
        "u[i+1]",
        "u[0..2]",
        "[1, 2, 3]",
        "k",
        "N",
        "t",
        "2",
        "0.5",
        "sin(x)",
        "sum(u)",
        "dot(u, u)",
        "min(u, 1)",
        "ifelse(x > 0, 1, 2)",
        "nn([x, x])",
        "nn(u)",
        "x(t - k)",
        "u^2",
        "reshape(u, 1, 3) @ u",
        "X'",
        "W",
        "i",
        "2 -> 3 -> 2, tanh)",
        " for i in 0..3",
        " for i in 1..N-1",
        "3",
    ];
    const OPS: &[&str] = &[" + ", " - ", " * ", " / ", " ^ ", " @ ", " < ", ""];
    let line = (
        0..HEADS.len(),
        proptest::collection::vec((0..EXPRS.len(), 0..OPS.len()), 1..4),
    )
        .prop_map(|(h, parts)| {
            let mut s = HEADS[h].to_string();
            for (e, o) in parts {
                s.push_str(EXPRS[e]);
                s.push_str(OPS[o]);
            }
            s
        });
    proptest::collection::vec(line, 1..8).prop_map(|v| v.join("\n"))
}

/// Well-typed random models: a fixed set of declarations and random right sides built
/// from scalar (S) and length-3 vector (V) forms, so most cases reach lowering and the
/// interpreter.
fn scalar_expr() -> impl Strategy<Value = String> + Clone {
    let leaf = prop::sample::select(vec![
        "x",
        "k",
        "t",
        "2",
        "0.5",
        "u[0]",
        "u[2]",
        "N",
        "sum(u)",
        "x(t - k)",
        "u(t - 0.5)[1]",
    ])
    .prop_map(String::from);
    leaf.prop_recursive(4, 24, 3, |s| {
        let v = vector_leaf();
        prop_oneof![
            (
                s.clone(),
                prop::sample::select(vec!["+", "-", "*", "/", "^"]),
                s.clone()
            )
                .prop_map(|(a, op, b)| format!("({a} {op} {b})")),
            s.clone().prop_map(|a| format!("-{a}")),
            (
                prop::sample::select(vec![
                    "sin", "exp", "tanh", "abs", "sigmoid", "softplus", "relu", "cos"
                ]),
                s.clone()
            )
                .prop_map(|(f, a)| format!("{f}({a})")),
            (s.clone(), s.clone()).prop_map(|(a, b)| format!("min({a}, {b})")),
            (s.clone(), s.clone(), s.clone())
                .prop_map(|(a, b, c)| format!("ifelse({a} > {b}, {c}, {a})")),
            (s.clone(), s.clone()).prop_map(|(a, b)| format!("nn([{a}, {b}])[1]")),
            (v.clone(), v.clone()).prop_map(|(a, b)| format!("dot({a}, {b})")),
            v.prop_map(|a| format!("sum({a})")),
        ]
    })
}

fn vector_leaf() -> impl Strategy<Value = String> + Clone {
    prop::sample::select(vec![
        "u",
        "u^3",
        "tanh(u)",
        "[x, k, t]",
        "[u[1..3], x]",
        "min(u, x)",
        "max(u, 0.5)",
        "reshape([1, 2, 3, 4, 5, 6, 7, 8, 9], 3, 3) @ u",
        "ifelse(u > x, u, -u)",
        "nn2(u)",
        "2*u + 1",
        "c3",
        "u - c3 * k",
    ])
    .prop_map(String::from)
}

fn vector_expr() -> impl Strategy<Value = String> {
    let s = scalar_expr();
    prop_oneof![
        vector_leaf(),
        (
            vector_leaf(),
            prop::sample::select(vec!["+", "-", "*", "/"]),
            vector_leaf()
        )
            .prop_map(|(a, op, b)| format!("({a} {op} {b})")),
        (s.clone(), vector_leaf()).prop_map(|(a, b)| format!("{a} * {b}")),
        (s.clone(), s.clone(), s).prop_map(|(a, b, c)| format!("[{a}, {b}, {c}]")),
    ]
}

fn model_soup() -> impl Strategy<Value = String> {
    (
        scalar_expr(),
        vector_expr(),
        proptest::option::of(vector_expr()),
        proptest::option::of(scalar_expr()),
    )
        .prop_map(|(sx, vu, out, lt)| {
            let mut m = String::from(
                "const N = 3, c3 = [1, 2, 3]\nparam k = 0.5\n\
                 net nn = mlp(2 -> 4 -> 2, tanh)\nnet nn2 = mlp(3 -> 3, relu)\n\
                 state x = 1\nstate u[N] = 0.1*i for i in 0..N\n",
            );
            if let Some(l) = lt {
                m.push_str(&format!("let w = {l}\n"));
            }
            m.push_str(&format!("x' = {sx}\nu' = {vu}\n"));
            if let Some(o) = out {
                m.push_str(&format!("output o = {o}\n"));
            }
            m
        })
}

fn corpus() -> Vec<Vec<u8>> {
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut v = Vec::new();
    for dir in ["tests/data/ok", "examples"] {
        let mut files: Vec<_> = std::fs::read_dir(root.join(dir))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "nde"))
            .collect();
        files.sort();
        v.extend(files.iter().map(|p| std::fs::read(p).unwrap()));
    }
    v
}

#[derive(Clone, Debug)]
enum Edit {
    Delete(usize, usize),
    Insert(usize, usize),
    Replace(usize, u8),
    DupLine(usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), 1usize..12).prop_map(|(a, n)| Edit::Delete(a, n)),
        (any::<usize>(), 0..TOKENS.len()).prop_map(|(a, k)| Edit::Insert(a, k)),
        (any::<usize>(), any::<u8>()).prop_map(|(a, b)| Edit::Replace(a, b)),
        any::<usize>().prop_map(Edit::DupLine),
    ]
}

fn apply(mut text: Vec<u8>, edits: &[Edit]) -> Vec<u8> {
    for e in edits {
        let n = text.len().max(1);
        match *e {
            Edit::Delete(a, k) => {
                let a = a % n;
                let b = (a + k).min(text.len());
                if a < b {
                    text.drain(a..b);
                }
            }
            Edit::Insert(a, k) => {
                let a = a % (text.len() + 1);
                let tok = format!(" {} ", TOKENS[k]);
                text.splice(a..a, tok.bytes());
            }
            Edit::Replace(a, byte) => {
                if !text.is_empty() {
                    let a = a % text.len();
                    text[a] = byte;
                }
            }
            Edit::DupLine(a) => {
                let lines: Vec<&[u8]> = text.split(|&c| c == b'\n').collect();
                let k = a % lines.len();
                let mut out = Vec::new();
                for (j, l) in lines.iter().enumerate() {
                    out.extend_from_slice(l);
                    out.push(b'\n');
                    if j == k {
                        out.extend_from_slice(l);
                        out.push(b'\n');
                    }
                }
                text = out;
            }
        }
    }
    text
}

proptest! {
    #![proptest_config(Config { cases: 3000, failure_persistence: None, ..Config::default() })]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        pipeline(&bytes);
    }

    #[test]
    fn random_ascii_never_panics(s in "[ -~\n\t]{0,200}") {
        pipeline(s.as_bytes());
    }

    #[test]
    fn random_token_sequences_never_panic(s in token_soup()) {
        pipeline(s.as_bytes());
    }

    #[test]
    fn random_statements_never_panic(s in statement_soup()) {
        pipeline(s.as_bytes());
    }

    #[test]
    fn random_models_never_panic_and_print_to_the_same_ir(s in model_soup()) {
        pipeline(s.as_bytes());
        // Printing the parsed model and compiling that gives the same IR.
        let src = Source::new("m.nde", s.as_str());
        if let (Ok(module), Ok(model)) = (driver::parse(&src), driver::check(&src))
            && let Ok(l) = driver::lower(&model) {
                let printed = print::module(&module, Parens::Minimal);
                let src2 = Source::new("m.nde", printed.as_str());
                let model2 = driver::check(&src2).map_err(|d| TestCaseError::fail(format!("printed model rejected: {d:?}\n{printed}")))?;
                let l2 = driver::lower(&model2).map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert_eq!(l.vector_field.to_text(), l2.vector_field.to_text());
                prop_assert_eq!(l.outputs.to_text(), l2.outputs.to_text());
            }
    }

    #[test]
    fn edited_corpus_files_never_panic(k in any::<usize>(), edits in proptest::collection::vec(edit(), 1..4)) {
        let files = corpus();
        let text = apply(files[k % files.len()].clone(), &edits);
        pipeline(&text);
    }
}

// ---------------------------------------------------------------------------------------
// Round trip of random expression trees through the printer.

fn zid(i: &Ident) -> Ident {
    Ident {
        name: i.name.clone(),
        span: Span::default(),
    }
}

fn strip(e: &Expr) -> Expr {
    let b = |x: &Expr| Box::new(strip(x));
    let arg = |a: &Arg| match a {
        Arg::Pos(e) => Arg::Pos(strip(e)),
        Arg::Named(n, e) => Arg::Named(zid(n), strip(e)),
    };
    let kind = match &e.kind {
        ExprKind::Number(x) => ExprKind::Number(*x),
        ExprKind::Name(n) => ExprKind::Name(n.clone()),
        ExprKind::Neg(a) => ExprKind::Neg(b(a)),
        ExprKind::Binary(op, x, y) => ExprKind::Binary(*op, b(x), b(y)),
        ExprKind::Call(f, args) => ExprKind::Call(zid(f), args.iter().map(arg).collect()),
        ExprKind::Index(v, i) => ExprKind::Index(b(v), b(i)),
        ExprKind::Slice(v, x, y) => ExprKind::Slice(b(v), b(x), b(y)),
        ExprKind::Prime(v) => ExprKind::Prime(b(v)),
        ExprKind::List(v) => ExprKind::List(v.iter().map(strip).collect()),
        ExprKind::Range(x, y) => ExprKind::Range(b(x), b(y)),
        ExprKind::Chain(v) => ExprKind::Chain(v.iter().map(strip).collect()),
    };
    Expr {
        kind,
        span: Span::default(),
    }
}

fn ex(kind: ExprKind) -> Expr {
    Expr {
        kind,
        span: Span::default(),
    }
}

fn id(n: &str) -> Ident {
    Ident {
        name: n.to_string(),
        span: Span::default(),
    }
}

const OPS: [BinOp; 10] = [
    BinOp::Add,
    BinOp::Sub,
    BinOp::Mul,
    BinOp::Div,
    BinOp::MatMul,
    BinOp::Pow,
    BinOp::Lt,
    BinOp::Le,
    BinOp::Gt,
    BinOp::Ge,
];

fn number() -> impl Strategy<Value = f64> {
    prop_oneof![
        (0u32..1000).prop_map(f64::from),
        (0.0f64..1e6),
        Just(0.35),
        Just(1e-3),
        Just(4.5e10),
        Just(1e300),
        Just(5e-324),
        Just(f64::MAX),
        Just(0.1 + 0.2),
    ]
}

fn expr_tree() -> impl Strategy<Value = Expr> {
    let leaf = prop_oneof![
        number().prop_map(|x| ex(ExprKind::Number(x))),
        prop::sample::select(vec!["x", "u", "t", "k", "alpha_2", "_w"])
            .prop_map(|n| ex(ExprKind::Name(n.into()))),
    ];
    leaf.prop_recursive(6, 48, 4, |inner| {
        prop_oneof![
            inner.clone().prop_map(|a| ex(ExprKind::Neg(Box::new(a)))),
            (0..OPS.len(), inner.clone(), inner.clone())
                .prop_map(|(k, a, b)| ex(ExprKind::Binary(OPS[k], Box::new(a), Box::new(b)))),
            (
                prop::sample::select(vec!["sin", "f", "ifelse", "min"]),
                proptest::collection::vec(inner.clone(), 0..4)
            )
                .prop_map(|(f, args)| ex(ExprKind::Call(
                    id(f),
                    args.into_iter().map(Arg::Pos).collect()
                ))),
            (inner.clone(), inner.clone()).prop_map(|(f, a)| ex(ExprKind::Call(
                id("g"),
                vec![Arg::Pos(f), Arg::Named(id("seed"), a)]
            ))),
            (inner.clone(), inner.clone())
                .prop_map(|(v, i)| ex(ExprKind::Index(Box::new(v), Box::new(i)))),
            (inner.clone(), inner.clone(), inner.clone())
                .prop_map(|(v, a, b)| ex(ExprKind::Slice(Box::new(v), Box::new(a), Box::new(b)))),
            inner.clone().prop_map(|v| ex(ExprKind::Prime(Box::new(v)))),
            proptest::collection::vec(inner.clone(), 0..4).prop_map(|v| ex(ExprKind::List(v))),
        ]
    })
}

fn parse_rhs(text: &str) -> Result<Expr, String> {
    let src = format!("x' = {text}\n");
    let (m, d) = ndec::syntax::parse(&src);
    if !d.is_empty() {
        return Err(format!("{src}\n{}", diag::render("rt.nde", &src, &d)));
    }
    match m.items.as_slice() {
        [
            Item {
                kind: ItemKind::Equation(eq),
                ..
            },
        ] => Ok(eq.rhs.clone()),
        other => Err(format!("{src}: parsed as {other:?}")),
    }
}

proptest! {
    #![proptest_config(Config { cases: 3000, failure_persistence: None, ..Config::default() })]

    #[test]
    fn printed_expressions_parse_back(e in expr_tree()) {
        let want = strip(&e);
        for parens in [Parens::Minimal, Parens::Explicit] {
            let text = print::expr(&e, parens);
            let back = parse_rhs(&text).map_err(TestCaseError::fail)?;
            prop_assert_eq!(strip(&back), want.clone(), "{:?} printing: {}", parens, text);
            prop_assert_eq!(print::expr(&back, parens), text);
        }
    }
}

#[test]
fn number_printing_round_trips() {
    for x in [
        0.0,
        1.0,
        0.1,
        0.35,
        1e-3,
        4.5e10,
        1e21,
        1e22,
        123456789.123,
        5e-324,
        f64::MAX,
        1.0 / 3.0,
    ] {
        let s = print::number(x);
        let (toks, d) = {
            let mut d = Vec::new();
            (ndec::syntax::lexer::tokens(&s, &mut d), d)
        };
        assert!(d.is_empty(), "{s}: {d:?}");
        assert_eq!(
            toks.len(),
            1,
            "{x} prints as {s}, which is {} tokens",
            toks.len()
        );
        assert_eq!(s.parse::<f64>().unwrap(), x, "{x} prints as {s}");
    }
}

/// The statement generator is only worth its cases if some of them get through the
/// checker into lowering and the interpreter; this keeps it from silently degrading.
#[test]
fn model_soup_reaches_lowering() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let strategy = model_soup();
    let (mut checked, mut lowered) = (0, 0);
    for _ in 0..3000 {
        let s = strategy.new_tree(&mut runner).unwrap().current();
        pipeline(s.as_bytes());
        if let Ok(m) = driver::check(&Source::new("s.nde", s.as_str())) {
            checked += 1;
            if driver::lower(&m).is_ok() {
                lowered += 1;
            }
        }
    }
    eprintln!("model soup: {checked} of 3000 checked, {lowered} lowered");
    assert!(
        lowered >= 30,
        "only {lowered} of 3000 generated models lowered ({checked} checked)"
    );
}
