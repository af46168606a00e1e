"""Nothing in the package imports a command-line module: their flags are defined at import,
and a library import must not define (or clash with) flags."""

import ast
import glob
import os

from conftest import REPO

CLI_MODULES = {
    "avrl_jax.main",
    "avrl_jax.probe",
    "avrl_jax.study",
    "avrl_jax.export",
    "avrl_jax.preflight",
}


def _imports(path):
    tree = ast.parse(open(path).read())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


def test_no_module_imports_a_cli():
    offenders = []
    for path in glob.glob(os.path.join(REPO, "avrl_jax", "**", "*.py"), recursive=True):
        for name in _imports(path):
            if name in CLI_MODULES:
                offenders.append((os.path.relpath(path, REPO), name))
    assert offenders == []
