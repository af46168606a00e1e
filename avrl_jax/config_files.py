"""Config files that build on each other, loadable from any working directory.

`--config` loads a config file by its path; a config file that imports a sibling as
`configs.<name>` would then only work from the repository root. `sibling(__file__, name)`
loads `<name>.py` from the caller's own folder instead, wherever the process runs.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from types import ModuleType


def sibling(path: str, name: str) -> ModuleType:
    """The module `<name>.py` in the folder of the file at `path` (loaded once per process)."""
    file = os.path.join(os.path.dirname(os.path.abspath(path)), f"{name}.py")
    key = f"_avrl_config_{os.path.abspath(file)}"
    if key not in sys.modules:
        spec = importlib.util.spec_from_file_location(key, file)
        if spec is None or spec.loader is None:
            raise FileNotFoundError(f"config file {file} not found (needed by {path})")
        module = importlib.util.module_from_spec(spec)
        sys.modules[key] = module
        spec.loader.exec_module(module)
    return sys.modules[key]
