//! Helpers the command-line test files share: run the `ndec` binary, and write inputs into a
//! temporary folder of the test binary's own (named after it and the process, so test
//! binaries running side by side never share files).

// Each test binary uses some of these.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Runs the `ndec` binary built for these tests.
pub fn ndec(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ndec"))
        .args(args)
        .output()
        .expect("ndec runs")
}

/// A path in this test binary's temporary folder.
pub fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "ndec-{}-{}",
        env!("CARGO_CRATE_NAME"),
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// Writes `text` to `tmp(name)` and returns the path.
pub fn write(name: &str, text: &str) -> PathBuf {
    let p = tmp(name);
    std::fs::write(&p, text).unwrap();
    p
}

pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}
