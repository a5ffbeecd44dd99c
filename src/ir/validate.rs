//! Checks a function's invariants: topological order, lengths, bounds.
//! Every function a later stage receives has passed this.

use super::{Function, Node};

/// `Err` names the first broken invariant (an internal compiler error, not a user error).
pub fn validate(f: &Function) -> Result<(), String> {
    if f.lens.len() != f.nodes.len() || f.spans.len() != f.nodes.len() {
        return Err("side tables differ in length from the arena".into());
    }
    for (i, n) in f.nodes.iter().enumerate() {
        let here = |msg: String| Err(format!("{}: node %{i}: {msg}", f.name));
        for c in n.children() {
            if c.index() >= i {
                return here(format!("operand %{} does not come before it", c.0));
            }
        }
        let len = f.lens[i] as usize;
        let l = |id: &super::NodeId| f.len_of(*id);
        let fits = |a: usize| a == 1 || a == len;
        match n {
            Node::Const(_) | Node::Index { .. } | Node::Sum(_) | Node::Dot(..) if len != 1 => {
                return here("a scalar node must have length 1".into());
            }
            Node::Arg(a) if f.args.get(*a as usize).map(|b| b.len) != Some(len) => {
                return here("argument length mismatch".into());
            }
            Node::Index { v, k } if *k as usize >= l(v) => {
                return here(format!("index {k} out of range"));
            }
            Node::Gather {
                v,
                start,
                stride,
                len: n,
            } => {
                let last = *start as i64 + (*n as i64 - 1) * *stride as i64;
                if *n as usize != len
                    || last < 0
                    || last as usize >= l(v)
                    || *start as usize >= l(v)
                {
                    return here("gather out of range".into());
                }
            }
            Node::Concat(parts) if parts.iter().map(l).sum::<usize>() != len => {
                return here("concat length mismatch".into());
            }
            Node::Broadcast(x, _) if l(x) != 1 => return here("broadcast of a vector".into()),
            Node::Unary(_, x) | Node::PowI(x, _) if l(x) != len => {
                return here("length mismatch".into());
            }
            Node::Binary(_, a, b) | Node::Compare(_, a, b) if !fits(l(a)) || !fits(l(b)) => {
                return here("operand lengths do not broadcast".into());
            }
            Node::Select(c, a, b) if !fits(l(c)) || !fits(l(a)) || !fits(l(b)) => {
                return here("operand lengths do not broadcast".into());
            }
            Node::Dot(a, b) if l(a) != l(b) => return here("dot of unequal lengths".into()),
            Node::MatVec { m, x, rows, cols }
                if (l(m) != (*rows * *cols) as usize
                    || l(x) != *cols as usize
                    || len != *rows as usize) =>
            {
                return here("matvec shape mismatch".into());
            }
            Node::MatTVec { m, y, rows, cols }
                if (l(m) != (*rows * *cols) as usize
                    || l(y) != *rows as usize
                    || len != *cols as usize) =>
            {
                return here("mattvec shape mismatch".into());
            }
            Node::Outer(a, b) if len != l(a) * l(b) => return here("outer length mismatch".into()),
            _ => {}
        }
    }
    for (b, id) in &f.outputs {
        if id.index() >= f.nodes.len() || f.len_of(*id) != b.len {
            return Err(format!(
                "{}: output {} has the wrong node or length",
                f.name, b.name
            ));
        }
    }
    Ok(())
}
