//! Runs the pipeline's stages in order, without IO: text in, checked model / IR / kernels
//! out, or diagnostics. The CLI and library users both go through here.

use crate::diag::Diagnostic;
use crate::sema::Model;
use crate::span::Span;
use crate::syntax::{self, ast};

/// A model's source text and the name its diagnostics use.
#[derive(Clone, Debug)]
pub struct Source {
    /// Shown in diagnostics (`heat.nde:3:7`).
    pub name: String,
    pub text: String,
}

impl Source {
    pub fn new(name: impl Into<String>, text: impl Into<String>) -> Source {
        Source {
            name: name.into(),
            text: text.into(),
        }
    }

    /// Decodes file bytes. Invalid UTF-8 is a diagnostic at the first bad byte; the
    /// returned source then holds a lossy copy so the diagnostic can show the line.
    #[allow(clippy::result_large_err)] // built once per file; a Box would only add noise
    pub fn from_bytes(
        name: impl Into<String>,
        bytes: &[u8],
    ) -> Result<Source, (Source, Diagnostic)> {
        let name = name.into();
        match std::str::from_utf8(bytes) {
            Ok(text) => Ok(Source::new(name, text)),
            Err(e) => {
                let at = e.valid_up_to();
                let text = String::from_utf8_lossy(bytes).into_owned();
                let d = Diagnostic::error(
                    "E0003",
                    Span::new(at, at + 1),
                    "the file is not valid UTF-8",
                )
                .label("invalid byte here")
                .hint("save the model as UTF-8 text");
                Err((Source::new(name, text), d))
            }
        }
    }

    /// The model's default name: the file stem.
    pub fn stem(&self) -> String {
        std::path::Path::new(&self.name)
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("model")
            .to_string()
    }
}

/// Parses; any syntax diagnostic is an error.
pub fn parse(src: &Source) -> Result<ast::Module, Vec<Diagnostic>> {
    let (module, diags) = syntax::parse(&src.text);
    if diags.iter().any(Diagnostic::is_error) {
        return Err(diags);
    }
    Ok(module)
}

/// Parses and checks a model.
pub fn check(src: &Source) -> Result<Model, Vec<Diagnostic>> {
    on_compiler_stack(|| {
        let module = parse(src)?;
        crate::sema::check(&module, &src.stem())
    })
}

/// Lowers a checked model to IR functions.
pub fn lower(model: &Model) -> Result<crate::ir::Lowered, crate::ir::LowerError> {
    on_compiler_stack(|| {
        let mut l = crate::ir::lower(model)?;
        l.sde = crate::stochastic::derive(&l);
        Ok(l)
    })
}

/// Runs `f` on a thread with `limits::COMPILER_STACK_BYTES` of stack and waits for it.
///
/// The checker and lowering recurse over expression trees up to `limits::MAX_NESTING`
/// deep; the caller's thread (a Python thread, a test thread: 2–8 MiB) may not hold that.
/// The stack is reserved address space, touched only as deep as a model goes. A panic in
/// `f` is resumed on the caller's thread; where no thread can be started, `f` runs here.
pub fn on_compiler_stack<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    let slot = std::sync::Mutex::new(Some(f));
    let take = || {
        let f = slot.lock().unwrap_or_else(|e| e.into_inner()).take();
        f.expect("the compiler closure runs once")
    };
    let spawned = std::thread::scope(|s| {
        std::thread::Builder::new()
            .name("ndec-compiler".into())
            .stack_size(crate::limits::COMPILER_STACK_BYTES)
            .spawn_scoped(s, || take()())
            .map(|h| h.join())
    });
    match spawned {
        Ok(Ok(v)) => v,
        Ok(Err(payload)) => std::panic::resume_unwind(payload),
        Err(_) => take()(),
    }
}

/// The front end's fuzz target (`fuzz/fuzz_targets/front_end.rs`, and the smoke run in
/// tests/fuzz_smoke.rs): decodes, parses, checks and, when the model is accepted, lowers
/// `bytes`. It panics only when a promise breaks: a rejected input must carry an error
/// diagnostic, an accepted model must have a state, and its IR must validate.
pub fn fuzz_front_end(bytes: &[u8]) {
    let src = match Source::from_bytes("fuzz.nde", bytes) {
        Ok(s) => s,
        Err((_, d)) => {
            assert!(d.is_error(), "undecodable input without an error");
            return;
        }
    };
    let model = match check(&src) {
        Ok(m) => m,
        Err(diags) => {
            assert!(
                diags.iter().any(Diagnostic::is_error),
                "rejected without an error diagnostic"
            );
            let _ = crate::diag::render(&src.name, &src.text, &diags);
            return;
        }
    };
    assert!(model.state_len() > 0, "a model without states was accepted");
    if model.entry_count() > 1 << 16 {
        return; // valid, but too large to lower quickly in a fuzz loop
    }
    if let Ok(l) = lower(&model) {
        for f in [&l.vector_field, &l.initial, &l.outputs] {
            if let Err(e) = crate::ir::validate(f) {
                panic!("invalid IR: {e}");
            }
        }
    }
}
