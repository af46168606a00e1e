"""Every config file loads from any working directory (as `--config PATH` loads it), not only
from the repository root."""

import glob
import os
import subprocess
import sys

import pytest
from conftest import REPO

SKIP = {"__init__.py", "probe_common.py", "from_workdir.py"}  # not configs / needs a workdir
FILES = sorted(
    path
    for path in glob.glob(os.path.join(REPO, "configs", "*.py"))
    if os.path.basename(path) not in SKIP
)
LOAD = """
import sys
from ml_collections import config_flags
path = sys.argv[1]
config = config_flags.config_flags._LoadConfigModule("config", path).get_config()
print(type(config).__name__)
"""


@pytest.mark.parametrize("path", FILES, ids=os.path.basename)
def test_config_file_loads_outside_the_repository(tmp_path, path):
    # Only the package is importable (not the repository root, so not `configs.*`).
    packages = tmp_path / "site"
    packages.mkdir()
    (packages / "avrl_jax").symlink_to(os.path.join(REPO, "avrl_jax"))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = dict(os.environ, PYTHONPATH=str(packages))
    result = subprocess.run(
        [sys.executable, "-c", LOAD, path], cwd=elsewhere, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "ConfigDict"
