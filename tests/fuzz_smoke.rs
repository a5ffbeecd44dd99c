//! The front end's fuzz target (fuzz/), run on stable for a fixed number of iterations:
//! every corpus file, then seeded mutations of them. Deterministic, so a failure names the
//! iteration and reproduces; the open-ended run is `cargo +nightly fuzz run front_end`.

use ndec::driver::fuzz_front_end;

fn corpus() -> Vec<Vec<u8>> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for dir in [
        "tests/data/ok",
        "tests/data/err",
        "tests/data/hardening",
        "examples",
    ] {
        let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
            continue;
        };
        for e in entries {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "nde") {
                files.push(std::fs::read(&p).unwrap());
            }
        }
    }
    files.sort();
    assert!(files.len() > 100, "the corpus went missing");
    files
}

/// xorshift64*: a fixed stream, so iteration K is the same input on every machine.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Bytes that mean something to the lexer, so mutations reach the parser and checker.
const TOKENS: &[&[u8]] = &[
    b"(",
    b")",
    b"[",
    b"]",
    b"{",
    b"}",
    b",",
    b"=",
    b"'",
    b"..",
    b"->",
    b"+",
    b"-",
    b"*",
    b"/",
    b"@",
    b"^",
    b"<",
    b">=",
    b"\n",
    b";",
    b"state ",
    b"param ",
    b"let ",
    b"net ",
    b"brownian ",
    b"for i in 0..3",
    b"u[i]",
    b"x",
    b"t",
    b"1e308",
    b"4294967296",
    b"0",
    b"mlp(2 -> 3 -> 2, tanh)",
    b"sum(",
    b"x(t - 1)",
    b"\xff",
    b"solve { t = 0 .. 1 }",
];

fn mutate(r: &mut Rng, corpus: &[Vec<u8>]) -> Vec<u8> {
    let mut v = corpus[r.below(corpus.len())].clone();
    for _ in 0..1 + r.below(4) {
        let at = r.below(v.len() + 1);
        match r.below(5) {
            0 if !v.is_empty() => {
                let i = at.min(v.len() - 1);
                v[i] ^= 1 << r.below(8);
            }
            1 => {
                let tok = TOKENS[r.below(TOKENS.len())];
                v.splice(at..at, tok.iter().copied());
            }
            2 => {
                let end = (at + r.below(16)).min(v.len());
                v.drain(at..end);
            }
            3 => {
                let other = &corpus[r.below(corpus.len())];
                let from = r.below(other.len() + 1);
                let end = (from + r.below(64)).min(other.len());
                v.splice(at..at, other[from..end].iter().copied());
            }
            _ => {
                let tok = TOKENS[r.below(TOKENS.len())];
                let n = r.below(200);
                for _ in 0..n {
                    v.splice(at..at, tok.iter().copied());
                }
            }
        }
    }
    v
}

#[test]
fn the_front_end_fuzz_target_holds_on_the_corpus_and_its_mutations() {
    let corpus = corpus();
    for input in &corpus {
        fuzz_front_end(input);
    }
    let mut r = Rng(0x9e37_79b9_7f4a_7c15);
    for k in 0..20_000 {
        let input = mutate(&mut r, &corpus);
        let result = std::panic::catch_unwind(|| fuzz_front_end(&input));
        assert!(
            result.is_ok(),
            "iteration {k} broke a promise on:\n{}",
            String::from_utf8_lossy(&input)
        );
    }
}
