//! ndec: a compiler for neural differential equations.
//!
//! The pipeline, one module per stage, data flowing one way:
//! `syntax` (text → AST) → `sema` (AST → checked model) → `ir` (model → arena DAG) →
//! `opt` → `backend` (interpreter, Cranelift JIT) → `runtime` (the stepping loop).
//! `driver` runs the stages without doing IO; `cli` is the only module that prints.

pub mod api;
pub mod backend;
pub mod cli;
pub mod diag;
pub mod diff;
pub mod driver;
pub mod ensemble;
pub mod files;
pub mod ir;
pub mod limits;
pub mod math;
pub mod opt;
pub mod params;
pub mod program;
pub mod rng;
pub mod runtime;
pub mod sema;
pub mod sensitivity;
pub mod span;
pub mod stochastic;
pub mod syntax;
pub mod train;

pub use api::{
    Cotangents, Error, Kind, LayerEntry, Model, ModelError, Options, ParamEntry, Pullback,
    SolveFailure, Solved, Values, compile, compile_source,
};
