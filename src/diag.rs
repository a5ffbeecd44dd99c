//! Diagnostics: errors and warnings as values with spans, rendered once.
//!
//! Every stage returns `Diagnostic`s; only the CLI decides to print them, through
//! [`render`] (codespan-reporting). A diagnostic has a primary span (the caret), an
//! optional secondary label, and a one-line hint.

use crate::span::Span;
use codespan_reporting::diagnostic::{Diagnostic as CsDiag, Label};
use codespan_reporting::files::SimpleFile;
use codespan_reporting::term;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Diagnostic {
    pub severity: Severity,
    /// A short stable code, e.g. `E0101`, used in tests and docs.
    pub code: &'static str,
    pub message: String,
    pub span: Span,
    /// What the caret means, shown under it.
    pub label: String,
    /// Other places that explain the error (e.g. the earlier declaration).
    pub secondary: Vec<(Span, String)>,
    /// One line telling the user what to do.
    pub hint: Option<String>,
}

impl Diagnostic {
    pub fn error(code: &'static str, span: Span, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Error,
            code,
            message: message.into(),
            span,
            label: String::new(),
            secondary: Vec::new(),
            hint: None,
        }
    }
    pub fn label(mut self, l: impl Into<String>) -> Self {
        self.label = l.into();
        self
    }
    pub fn hint(mut self, h: impl Into<String>) -> Self {
        self.hint = Some(h.into());
        self
    }
    pub fn also(mut self, span: Span, l: impl Into<String>) -> Self {
        self.secondary.push((span, l.into()));
        self
    }
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// Renders diagnostics as `file:line:col` headers with the source line, a caret under the
/// span and the hint, as plain text (the same text for terminals, files and snapshots).
pub fn render(file_name: &str, source: &str, diags: &[Diagnostic]) -> String {
    let file = SimpleFile::new(file_name, source);
    let config = term::Config::default();
    let mut out = String::new();
    for d in diags {
        let cs = to_codespan(d, source.len());
        match term::emit_into_string(&config, &file, &cs) {
            Ok(text) => out.push_str(&text),
            Err(_) => {
                let (l, c) = line_col(source, d.span.start as usize);
                out.push_str(&format!(
                    "error[{}]: {}\n  --> {file_name}:{l}:{c}\n",
                    d.code, d.message
                ));
            }
        }
    }
    out
}

fn clamp(span: Span, len: usize) -> std::ops::Range<usize> {
    let s = (span.start as usize).min(len);
    let e = (span.end as usize).clamp(s, len);
    s..e
}

fn to_codespan(d: &Diagnostic, len: usize) -> CsDiag<()> {
    let base = match d.severity {
        Severity::Error => CsDiag::error(),
        Severity::Warning => CsDiag::warning(),
    };
    let mut labels = vec![Label::primary((), clamp(d.span, len)).with_message(d.label.clone())];
    for (s, l) in &d.secondary {
        labels.push(Label::secondary((), clamp(*s, len)).with_message(l.clone()));
    }
    let mut notes = Vec::new();
    if let Some(h) = &d.hint {
        notes.push(format!("hint: {h}"));
    }
    base.with_code(d.code)
        .with_message(d.message.clone())
        .with_labels(labels)
        .with_notes(notes)
}

/// 1-based line and column of a byte offset (columns count characters).
pub fn line_col(source: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(source.len());
    let before = &source[..floor_char_boundary(source, offset)];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}
