import re
import subprocess
import sys
from pathlib import Path

import ndec

CARGO_TOML = Path(__file__).resolve().parents[1] / "Cargo.toml"


def cargo_version() -> str:
    """The `version` of python/Cargo.toml's [package] table."""
    package = CARGO_TOML.read_text().split("[package]", 1)[1].split("\n[", 1)[0]
    m = re.search(r'^version\s*=\s*"([^"]+)"', package, re.MULTILINE)
    assert m, f"no version in {CARGO_TOML}"
    return m.group(1)


def test_version_is_the_crate_version():
    assert ndec._ndec.version() == cargo_version()
    assert ndec.__version__ == cargo_version()


def test_import_needs_neither_torch_nor_jax():
    code = "import sys, ndec; print(sorted({'torch', 'jax'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
