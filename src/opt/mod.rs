//! Optimisations over IR functions. Folding and CSE happen by construction in
//! `ir::Builder` (hash-consing); this module removes what no output needs.
//! Every pass here is IEEE-safe: it never changes a result bit.

use crate::ir::{Function, NodeId};

/// Dead-code removal: keeps only nodes some output depends on, renumbered in order
/// (so the arena stays topologically sorted). Arguments are kept even if unused: they
/// are the kernel's ABI.
pub fn dce(f: &Function) -> Function {
    let mut live = vec![false; f.nodes.len()];
    for (_, id) in &f.outputs {
        live[id.index()] = true;
    }
    for i in (0..f.nodes.len()).rev() {
        if live[i] {
            for c in f.nodes[i].children() {
                live[c.index()] = true;
            }
        }
    }
    let mut remap = vec![NodeId(u32::MAX); f.nodes.len()];
    let mut out = Function {
        name: f.name.clone(),
        args: f.args.clone(),
        outputs: Vec::new(),
        nodes: Vec::new(),
        lens: Vec::new(),
        spans: Vec::new(),
    };
    for i in 0..f.nodes.len() {
        if !live[i] {
            continue;
        }
        remap[i] = NodeId(out.nodes.len() as u32);
        out.nodes
            .push(f.nodes[i].map_children(|c| remap[c.index()]));
        out.lens.push(f.lens[i]);
        out.spans.push(f.spans[i]);
    }
    out.outputs = f
        .outputs
        .iter()
        .map(|(b, id)| (b.clone(), remap[id.index()]))
        .collect();
    out
}
