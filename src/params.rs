//! The parameter vector: defaults, network initialisation, and the params file
//! (`--params`, `--save-params`, `--dump-gradient`):
//! `{"alpha": 1.3, "nn": {"layers": [{"weight": [[…], …], "bias": […]}, …]}}`.
//! Each `weight` is a list of rows, one per output (OUT×IN). A file may name only some
//! entries; the rest keep their values. Pure functions: no IO here.

use crate::ir::ParamLayout;
use crate::rng::Stream;
use crate::sema::model::{InitKind, Model};
use serde_json::{Map, Value, json};

/// The default parameter vector: each param's default, each net initialised from its seed
/// (glorot: uniform(−a, a) with a = √(6/(in+out)); he: normal(0, √(2/in)); biases 0).
pub fn defaults(model: &Model, layout: &ParamLayout) -> Vec<f64> {
    let mut p = vec![0.0; layout.len];
    for (name, i) in &layout.scalars {
        if let Some(d) = model.params.iter().find(|q| &q.name == name) {
            p[*i] = d.default;
        }
    }
    for (net, block) in model.nets.iter().zip(&layout.nets) {
        for (l, layer) in block.layers.iter().enumerate() {
            let stream = Stream::new(net.seed, l as u64);
            let (fan_in, fan_out) = (layer.cols as f64, layer.rows as f64);
            for k in 0..layer.rows * layer.cols {
                p[layer.weight + k] = match net.init {
                    InitKind::Glorot => {
                        let a = (6.0 / (fan_in + fan_out)).sqrt();
                        a * (2.0 * stream.uniform(k as u64) - 1.0)
                    }
                    InitKind::He => (2.0 / fan_in).sqrt() * stream.normal(k as u64),
                };
            }
        }
    }
    p
}

/// Sets `name = value` for a scalar param.
pub fn set_scalar(
    layout: &ParamLayout,
    p: &mut [f64],
    name: &str,
    value: f64,
) -> Result<(), String> {
    match layout.scalars.iter().find(|(n, _)| n == name) {
        Some((_, i)) => {
            p[*i] = value;
            Ok(())
        }
        None => {
            let names: Vec<&str> = layout.scalars.iter().map(|(n, _)| n.as_str()).collect();
            Err(format!(
                "unknown param `{name}` (the model's params: {})",
                if names.is_empty() {
                    "none".to_string()
                } else {
                    names.join(", ")
                }
            ))
        }
    }
}

/// Applies a params file's JSON text to `p`. Errors name the entry that is wrong.
pub fn apply_json(text: &str, layout: &ParamLayout, p: &mut [f64]) -> Result<(), String> {
    let v: Value = serde_json::from_str(text).map_err(|e| {
        format!(
            "invalid JSON at line {}, column {}: {e}",
            e.line(),
            e.column()
        )
    })?;
    let Value::Object(obj) = v else {
        return Err("the params file must be a JSON object".to_string());
    };
    // Applied to a copy: a file refused half way changes nothing.
    let mut q = p.to_vec();
    for (name, value) in &obj {
        if let Some((_, i)) = layout.scalars.iter().find(|(n, _)| n == name) {
            q[*i] = number(value).ok_or_else(|| format!("`{name}` must be a number"))?;
        } else if let Some(block) = layout.nets.iter().find(|b| &b.net == name) {
            apply_net(name, value, block, &mut q)?;
        } else {
            return Err(format!(
                "unknown name `{name}`: not a param or net of this model"
            ));
        }
    }
    p.copy_from_slice(&q);
    Ok(())
}

fn number(v: &Value) -> Option<f64> {
    v.as_f64()
}

fn apply_net(
    name: &str,
    v: &Value,
    block: &crate::ir::ParamBlock,
    p: &mut [f64],
) -> Result<(), String> {
    let layers = v
        .get("layers")
        .and_then(Value::as_array)
        .ok_or_else(|| format!("`{name}` must be an object with a `layers` list"))?;
    if layers.len() != block.layers.len() {
        return Err(format!(
            "`{name}` has {} layers, the file gives {}",
            block.layers.len(),
            layers.len()
        ));
    }
    if let Some(key) = v
        .as_object()
        .and_then(|o| o.keys().find(|k| *k != "layers"))
    {
        return Err(format!(
            "`{name}`: unknown key `{key}` (a net's value is {{\"layers\": [...]}})"
        ));
    }
    for (l, (lv, layout)) in layers.iter().zip(&block.layers).enumerate() {
        let obj = lv.as_object().ok_or_else(|| {
            format!("`{name}` layer {l} must be an object with `weight` and/or `bias`, not {lv}")
        })?;
        if let Some(key) = obj.keys().find(|k| *k != "weight" && *k != "bias") {
            return Err(format!(
                "`{name}` layer {l}: unknown key `{key}` (a layer has `weight` and `bias`)"
            ));
        }
        if let Some(w) = lv.get("weight") {
            let rows = w
                .as_array()
                .ok_or_else(|| format!("`{name}` layer {l}: `weight` must be a list of rows"))?;
            if rows.len() != layout.rows {
                return Err(format!(
                    "`{name}` layer {l}: `weight` needs {} rows (one per output), got {}",
                    layout.rows,
                    rows.len()
                ));
            }
            for (r, row) in rows.iter().enumerate() {
                let row = row
                    .as_array()
                    .ok_or_else(|| format!("`{name}` layer {l}: weight row {r} must be a list"))?;
                if row.len() != layout.cols {
                    return Err(format!(
                        "`{name}` layer {l}: weight row {r} needs {} entries (one per input), got {}",
                        layout.cols,
                        row.len()
                    ));
                }
                for (c, x) in row.iter().enumerate() {
                    p[layout.weight + r * layout.cols + c] = number(x).ok_or_else(|| {
                        format!("`{name}` layer {l}: weight[{r}][{c}] must be a number")
                    })?;
                }
            }
        }
        if let Some(b) = lv.get("bias") {
            let b = b
                .as_array()
                .ok_or_else(|| format!("`{name}` layer {l}: `bias` must be a list"))?;
            if b.len() != layout.rows {
                return Err(format!(
                    "`{name}` layer {l}: `bias` needs {} entries, got {}",
                    layout.rows,
                    b.len()
                ));
            }
            for (r, x) in b.iter().enumerate() {
                p[layout.bias + r] = number(x)
                    .ok_or_else(|| format!("`{name}` layer {l}: bias[{r}] must be a number"))?;
            }
        }
    }
    Ok(())
}

/// `p` (or a gradient laid out like it) as a params-file JSON value.
pub fn to_json(layout: &ParamLayout, p: &[f64]) -> Value {
    let mut obj = Map::new();
    for (name, i) in &layout.scalars {
        obj.insert(name.clone(), json!(p[*i]));
    }
    for block in &layout.nets {
        let layers: Vec<Value> = block
            .layers
            .iter()
            .map(|l| {
                let weight: Vec<Vec<f64>> = (0..l.rows)
                    .map(|r| p[l.weight + r * l.cols..l.weight + (r + 1) * l.cols].to_vec())
                    .collect();
                json!({"weight": weight, "bias": p[l.bias..l.bias + l.rows].to_vec()})
            })
            .collect();
        obj.insert(block.net.clone(), json!({ "layers": layers }));
    }
    Value::Object(obj)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::{self, Source};

    fn model(text: &str) -> (Model, ParamLayout) {
        let m = driver::check(&Source::new("m.nde", text)).expect("valid model");
        let l = ParamLayout::of(&m);
        (m, l)
    }

    #[test]
    fn glorot_weights_are_seeded_and_bounded() {
        let (m, l) = model(
            "param k = 2\nnet nn = mlp(2 -> 8 -> 3, tanh, init = glorot(seed = 7))\nstate u[2] = 1\nu' = nn(u)[0..2]*k\n",
        );
        let p = defaults(&m, &l);
        assert_eq!(p[0], 2.0);
        let a1 = (6.0f64 / 10.0).sqrt();
        let w1 = &p[l.nets[0].layers[0].weight..l.nets[0].layers[0].weight + 16];
        assert!(w1.iter().all(|w| w.abs() <= a1) && w1.iter().any(|w| w.abs() > 0.1 * a1));
        let b1 = &p[l.nets[0].layers[0].bias..l.nets[0].layers[0].bias + 8];
        assert!(b1.iter().all(|b| *b == 0.0));
        assert_eq!(p, defaults(&m, &l), "same seed, same weights");
        let (m2, l2) = model(
            "param k = 2\nnet nn = mlp(2 -> 8 -> 3, tanh, init = glorot(seed = 8))\nstate u[2] = 1\nu' = nn(u)[0..2]*k\n",
        );
        assert_ne!(p, defaults(&m2, &l2), "another seed, other weights");
    }

    #[test]
    fn json_round_trips_and_rejects_bad_entries() {
        let (m, l) = model(
            "param a = 1\nnet f = mlp(2 -> 3 -> 1, relu)\nstate u[2] = 1\nu' = f(u)[0] - a*u\n",
        );
        let p = defaults(&m, &l);
        let text = to_json(&l, &p).to_string();
        let mut q = vec![0.0; l.len];
        apply_json(&text, &l, &mut q).unwrap();
        assert_eq!(p, q);
        let mut r = p.clone();
        apply_json(r#"{"a": 5}"#, &l, &mut r).unwrap();
        assert_eq!(r[0], 5.0);
        assert_eq!(&r[1..], &p[1..], "a partial file leaves the rest alone");
        assert!(
            apply_json(r#"{"nope": 1}"#, &l, &mut r)
                .unwrap_err()
                .contains("nope")
        );
        assert!(
            apply_json(
                r#"{"f": {"layers": [{"weight": [[1, 2]]}, {}]}}"#,
                &l,
                &mut r
            )
            .unwrap_err()
            .contains("3 rows")
        );
        assert!(apply_json("{", &l, &mut r).unwrap_err().contains("line 1"));
        let before = r.clone();
        for (bad, says) in [
            (r#"{"f": {"layers": [5, {}]}}"#, "layer 0 must be an object"),
            (
                r#"{"f": {"layers": [{}, "x"]}}"#,
                "layer 1 must be an object",
            ),
            (
                r#"{"f": {"layers": [{"weights": []}, {}]}}"#,
                "unknown key `weights`",
            ),
            (
                r#"{"f": {"layers": [{}, {}], "extra": 1}}"#,
                "unknown key `extra`",
            ),
            (
                r#"{"a": 7, "f": {"layers": [{"bias": [1, 2, 3]}, 5]}}"#,
                "layer 1",
            ),
        ] {
            let e = apply_json(bad, &l, &mut r).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
        assert_eq!(r, before, "a refused file changes nothing");
    }
}
