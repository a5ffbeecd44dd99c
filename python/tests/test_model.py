"""ndec.compile and the Model's description: names, kinds, the θ layout, params files, and
model errors rendered like `ndec check`."""

import json
import subprocess

import numpy as np
import pytest

import ndec
from conftest import DELAY, GBM, LV, NEURAL, ROOT, cli_binary


def test_compile_from_file_and_from_source(tmp_path):
    path = tmp_path / "lotka.nde"
    path.write_text(LV)
    m = ndec.compile(path)
    assert m.name == "lotka"
    assert ndec.compile(str(path)).name == "lotka"
    s = ndec.compile(source=LV, name="m")
    assert s.name == "m"
    assert isinstance(m, ndec.Model)
    np.testing.assert_array_equal(m.default_params(), [1.5, 1.0, 3.0, 1.0])


def test_kinds_states_outputs():
    assert ndec.compile(source=LV).kind == "ode"
    assert ndec.compile(source=GBM).kind == "sde"
    assert ndec.compile(source=DELAY).kind == "dde"
    m = ndec.compile(source=NEURAL + "output r = sqrt(u[0]^2 + u[1]^2)\n")
    assert m.states == ["u[0]", "u[1]"]
    assert m.outputs == ["r"]


def test_param_layout_describes_theta(neural):
    assert neural.num_params == 1 + (5 * 2 + 5) + (2 * 5 + 2)
    layout = neural.param_layout
    assert layout["k"] == (0, ())
    assert layout["f"] == [(1, (5, 2), 11, (5,)), (16, (2, 5), 26, (2,))]
    theta = neural.default_params()
    assert theta.dtype == np.float64 and theta.shape == (28,)
    # The first layer's weight, row-major OUT x IN, is what the params file says.
    params = json.loads(json.dumps({"k": 0.3}))
    assert params["k"] == theta[0]


def test_params_files_round_trip(tmp_path, neural):
    theta = np.linspace(-1, 1, neural.num_params)
    path = tmp_path / "p.json"
    neural.save_params(theta, path)
    np.testing.assert_array_equal(neural.load_params(path), theta)
    data = json.loads(path.read_text())
    w, b = data["f"]["layers"][0]["weight"], data["f"]["layers"][0]["bias"]
    off, (rows, cols), boff, _ = neural.param_layout["f"][0]
    np.testing.assert_array_equal(np.array(w).ravel(), theta[off : off + rows * cols])
    np.testing.assert_array_equal(b, theta[boff : boff + rows])
    # A file that leaves entries out keeps their defaults.
    path.write_text('{"k": 2.5}')
    p = neural.load_params(path)
    assert p[0] == 2.5 and np.array_equal(p[1:], neural.default_params()[1:])
    with pytest.raises(FileNotFoundError):
        neural.load_params(tmp_path / "missing.json")
    path.write_text('{"k": "fast"}')
    with pytest.raises(ValueError, match="`k` must be a number"):
        neural.load_params(path)


def test_initial_state(lv):
    np.testing.assert_array_equal(lv.initial_state(), [1.0, 1.0])
    m = ndec.compile(source="param x0 = 2\nstate x = x0\nx' = -x\n")
    np.testing.assert_array_equal(m.initial_state(np.array([5.0])), [5.0])
    with pytest.raises(ValueError, match="theta has 2 entries"):
        m.initial_state([1.0, 2.0])


BAD = "param k = 1\nstate x = 1\nx' = -q*x\n"


def test_model_error_is_the_rendered_diagnostic():
    with pytest.raises(ndec.ModelError) as info:
        ndec.compile(source=BAD, name="bad")
    e = info.value
    assert isinstance(e, ValueError)
    text = str(e)
    assert "bad.nde:3:7" in text and "^" in text
    [d] = e.diagnostics
    assert (d.severity, d.file, d.line, d.column) == ("error", "bad.nde", 3, 7)
    assert d.code.startswith("E") and "q" in d.message


def test_model_error_matches_ndec_check(tmp_path):
    binary = cli_binary()
    path = tmp_path / "bad.nde"
    path.write_text(BAD)
    out = subprocess.run([binary, "check", path], capture_output=True, text=True)
    assert out.returncode == 1
    with pytest.raises(ndec.ModelError) as info:
        ndec.compile(path)
    assert str(info.value).strip() == out.stderr.strip()


def test_compile_argument_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        ndec.compile(tmp_path / "nope.nde")
    with pytest.raises(TypeError):
        ndec.compile()
    with pytest.raises(TypeError):
        ndec.compile("a.nde", source=LV)
    bad = tmp_path / "latin1.nde"
    bad.write_bytes(b"state x = 1\nx' = -x # \xe9\n")
    with pytest.raises(ndec.ModelError, match="UTF-8"):
        ndec.compile(bad)


def test_examples_compile():
    for path in sorted((ROOT / "examples").glob("*.nde")):
        m = ndec.compile(path)
        assert m.num_params == len(m.default_params())
