"""Shared by the spiral peers: read data.csv and w0.json (written by make_data.py), write
results in ndec's params-file layout, and compare two such files."""
import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))
T0, T1 = 0.0, 25.0
U0 = [2.0, 0.0]
RTOL, ATOL = 1e-7, 1e-9


def load_data(path=os.path.join(HERE, "data.csv")):
    """-> (ts, values): lists of 1000 floats and of 1000 [u0, u1] rows."""
    lines = open(path).read().split()
    assert lines[0] == "t,u[0],u[1]", lines[0]
    rows = [[float(x) for x in l.split(",")] for l in lines[1:]]
    return [r[0] for r in rows], [r[1:] for r in rows]


def load_params(path=os.path.join(HERE, "w0.json")):
    """-> (W1 50x2, b1 50, W2 2x50, b2 2) as nested lists (weights OUT x IN)."""
    l1, l2 = json.load(open(path))["nn"]["layers"]
    return l1["weight"], l1["bias"], l2["weight"], l2["bias"]


def params_json(w1, b1, w2, b2):
    """Nested lists -> ndec's params-file layout."""
    return {"nn": {"layers": [{"weight": w1, "bias": b1}, {"weight": w2, "bias": b2}]}}


def write_params(path, w1, b1, w2, b2):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(params_json(w1, b1, w2, b2), f)
        f.write("\n")


def flat(path):
    """Every number of a params-layout file, in layer/weight-row/bias order."""
    out = []
    for layer in json.load(open(path))["nn"]["layers"]:
        for row in layer["weight"]:
            out.extend(row)
        out.extend(layer["bias"])
    return out


def rel_diff(path1, path2):
    """max|g1 - g2| / max|g2| over all entries (None if shapes differ)."""
    a, b = flat(path1), flat(path2)
    if len(a) != len(b):
        return None
    return max(abs(x - y) for x, y in zip(a, b)) / max(abs(y) for y in b)
