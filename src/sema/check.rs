//! The checker's state and the order of the passes.

use super::model::*;
use crate::diag::Diagnostic;
use crate::span::Span;
use crate::syntax::ast;
use std::collections::HashMap;

/// What a name refers to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Symbol {
    Const(usize),
    Param(ParamId),
    State(StateId),
    Let(LetId),
    Net(NetId),
    Noise(NoiseId),
    Input(InputId),
    Output(usize),
}

impl Symbol {
    pub fn kind_name(self) -> &'static str {
        match self {
            Symbol::Const(_) => "const",
            Symbol::Param(_) => "param",
            Symbol::State(_) => "state",
            Symbol::Let(_) => "let",
            Symbol::Net(_) => "net",
            Symbol::Noise(_) => "brownian",
            Symbol::Input(_) => "input",
            Symbol::Output(_) => "output",
        }
    }
}

/// A lazily resolved declaration: consts and lets may be used before they are declared,
/// and a use while `Busy` is a cycle.
#[derive(Clone, Debug)]
pub(super) enum Slot<T> {
    Pending,
    Busy,
    Done(Option<T>),
}

pub(super) struct ConstSlot<'a> {
    pub name: String,
    pub expr: &'a ast::Expr,
    pub span: Span,
    pub state: Slot<ConstDef>,
}

pub(super) struct LetSlot<'a> {
    pub name: String,
    pub expr: &'a ast::Expr,
    pub span: Span,
    pub state: Slot<TExpr>,
}

pub(super) struct StateSlot<'a> {
    pub decl: &'a ast::StateDecl,
    pub len: Option<usize>,
    /// False when its size was invalid (uses are then not checked further).
    pub ok: bool,
}

/// Which kinds of names an expression may use.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Allow {
    pub time: bool,
    pub states: bool,
    pub params: bool,
    pub lets: bool,
    pub inputs: bool,
    pub noise: bool,
    pub delays: bool,
    pub nets: bool,
}

impl Allow {
    pub const CONSTS: Allow = Allow {
        time: false,
        states: false,
        params: false,
        lets: false,
        inputs: false,
        noise: false,
        delays: false,
        nets: false,
    };
    pub const EVERYTHING: Allow = Allow {
        time: true,
        states: true,
        params: true,
        lets: true,
        inputs: true,
        noise: true,
        delays: true,
        nets: true,
    };
}

/// The family index in scope: `for i in lo..hi`.
#[derive(Clone, Debug)]
pub(super) struct IndexCtx {
    pub name: String,
    pub lo: i64,
    pub hi: i64,
}

#[derive(Clone, Debug)]
pub(super) struct Ctx {
    pub allow: Allow,
    pub index: Option<IndexCtx>,
    /// What is being checked, for messages: "a const", "an initial value", ….
    pub what: &'static str,
}

impl Ctx {
    pub fn new(allow: Allow, what: &'static str) -> Ctx {
        Ctx {
            allow,
            index: None,
            what,
        }
    }
    pub fn with_index(&self, index: IndexCtx) -> Ctx {
        Ctx {
            index: Some(index),
            ..self.clone()
        }
    }
}

pub(crate) struct Checker<'a> {
    pub diags: Vec<Diagnostic>,
    pub symbols: HashMap<String, (Symbol, Span)>,
    pub model_name: Option<String>,
    pub consts: Vec<ConstSlot<'a>>,
    pub params: Vec<ParamDef>,
    pub param_exprs: Vec<&'a ast::Expr>,
    pub states: Vec<StateSlot<'a>>,
    pub lets: Vec<LetSlot<'a>>,
    /// Lets in the order their checking finished: dependencies first.
    pub let_order: Vec<LetId>,
    pub nets: Vec<Option<NetDef>>,
    pub net_decls: Vec<&'a ast::NetDecl>,
    pub noises: Vec<NoiseDef>,
    pub calculus: Option<(Calculus, Span)>,
    pub inputs: Vec<InputDef>,
    pub input_decls: Vec<&'a ast::InputDecl>,
    pub output_decls: Vec<&'a ast::Binding>,
    pub history_items: Vec<(&'a ast::Ident, &'a ast::Expr, Span)>,
    pub equation_items: Vec<(&'a ast::Equation, Span)>,
    pub solve_items: Vec<(&'a [ast::SolveEntry], Span)>,
    /// Some `state` declaration was written (even if it failed to declare).
    pub saw_state: bool,
    /// States whose equation had an error: no coverage errors for them.
    pub failed_eq_states: Vec<String>,
}

impl<'a> Checker<'a> {
    pub fn run(module: &'a ast::Module, default_name: &str) -> Result<Model, Vec<Diagnostic>> {
        let mut c = Checker {
            diags: Vec::new(),
            symbols: HashMap::new(),
            model_name: None,
            consts: Vec::new(),
            params: Vec::new(),
            param_exprs: Vec::new(),
            states: Vec::new(),
            lets: Vec::new(),
            let_order: Vec::new(),
            nets: Vec::new(),
            net_decls: Vec::new(),
            noises: Vec::new(),
            calculus: None,
            inputs: Vec::new(),
            input_decls: Vec::new(),
            output_decls: Vec::new(),
            history_items: Vec::new(),
            equation_items: Vec::new(),
            solve_items: Vec::new(),
            saw_state: false,
            failed_eq_states: Vec::new(),
        };
        c.declare_all(module);
        c.resolve_consts();
        c.resolve_params();
        c.resolve_sizes();
        c.resolve_nets();
        let lets = c.resolve_lets();
        let states = c.resolve_states();
        let histories = c.resolve_histories();
        let outputs = c.resolve_outputs();
        let equations = c.resolve_equations(&states);
        let solve = c.resolve_solve(&states);
        if !c.saw_state {
            c.diags.push(
                Diagnostic::error("E0401", Span::new(0, 0), "the model has no states")
                    .label("a model needs at least one state")
                    .hint("declare one, e.g. `state x = 1.0`, and give it an equation `x' = …`"),
            );
        } else if !states.is_empty() && states.iter().all(|s| s.size() == 0) {
            // Every state is an empty vector: nothing to solve (found by the fuzz smoke run).
            c.diags.push(
                Diagnostic::error("E0401", states[0].span, "the model has no state entries")
                    .label("every state here has size 0")
                    .hint("give a state at least one entry"),
            );
        }
        c.check_noise_affine(&lets, &equations);
        if c.diags.iter().any(Diagnostic::is_error) {
            c.diags.sort_by_key(|d| (d.span.start, d.code));
            c.diags
                .dedup_by(|a, b| a.span == b.span && a.message == b.message);
            return Err(c.diags);
        }
        let consts = c
            .consts
            .iter()
            .filter_map(|s| match &s.state {
                Slot::Done(Some(d)) => Some(d.clone()),
                _ => None,
            })
            .collect();
        Ok(Model {
            name: c
                .model_name
                .clone()
                .unwrap_or_else(|| default_name.to_string()),
            consts,
            params: c.params.clone(),
            states,
            lets,
            let_order: c.let_order.clone(),
            nets: c.nets.iter().flatten().cloned().collect(),
            calculus: c.calculus.map_or(Calculus::Ito, |(k, _)| k),
            noises: c.noises.clone(),
            inputs: c.inputs.clone(),
            outputs,
            histories,
            equations,
            solve,
        })
    }

    pub fn error(&mut self, d: Diagnostic) {
        self.diags.push(d);
    }
}
