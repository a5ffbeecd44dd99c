//! The stable text form of a function: one node per line, `%id = op operands : len`.

use super::{Function, Node};
use crate::syntax::print::number;
use std::fmt::Write;

pub fn function(f: &Function) -> String {
    let mut o = String::new();
    let args: Vec<String> = f
        .args
        .iter()
        .map(|a| format!("{}[{}]", a.name, a.len))
        .collect();
    let outs: Vec<String> = f
        .outputs
        .iter()
        .map(|(b, _)| format!("{}[{}]", b.name, b.len))
        .collect();
    let _ = writeln!(
        o,
        "fn {}({}) -> ({}) {{",
        f.name,
        args.join(", "),
        outs.join(", ")
    );
    for (i, n) in f.nodes.iter().enumerate() {
        let _ = writeln!(o, "  %{i} = {} : {}", node(f, n), f.lens[i]);
    }
    for (b, id) in &f.outputs {
        let _ = writeln!(o, "  {} = %{}", b.name, id.0);
    }
    o.push_str("}\n");
    o
}

fn node(f: &Function, n: &Node) -> String {
    let r = |id: &super::NodeId| format!("%{}", id.0);
    match n {
        Node::Const(_) => format!("const {}", number(n.as_const().unwrap_or(f64::NAN))),
        Node::Arg(i) => format!("arg {}", f.args[*i as usize].name),
        Node::Iota { start, .. } => format!("iota {start}"),
        Node::Index { v, k } => format!("index {}[{k}]", r(v)),
        Node::Gather {
            v, start, stride, ..
        } => format!("gather {}[{start}; {stride:+}]", r(v)),
        Node::Concat(parts) if parts.is_empty() => "concat".to_string(),
        Node::Concat(parts) => format!(
            "concat {}",
            parts.iter().map(r).collect::<Vec<_>>().join(", ")
        ),
        Node::Broadcast(x, _) => format!("broadcast {}", r(x)),
        Node::Unary(op, x) => format!("{} {}", op.name(), r(x)),
        Node::Binary(op, a, b) => {
            format!("{} {}, {}", format!("{op:?}").to_lowercase(), r(a), r(b))
        }
        Node::PowI(x, k) => format!("powi {}, {k}", r(x)),
        Node::Compare(c, a, b) => format!("{} {}, {}", format!("{c:?}").to_lowercase(), r(a), r(b)),
        Node::Select(c, a, b) => format!("select {}, {}, {}", r(c), r(a), r(b)),
        Node::Sum(x) => format!("sum {}", r(x)),
        Node::Dot(a, b) => format!("dot {}, {}", r(a), r(b)),
        Node::MatVec { m, x, rows, cols } => format!("matvec {}[{rows}x{cols}], {}", r(m), r(x)),
        Node::MatTVec { m, y, rows, cols } => format!("mattvec {}[{rows}x{cols}], {}", r(m), r(y)),
        Node::Outer(a, b) => format!("outer {}, {}", r(a), r(b)),
    }
}
