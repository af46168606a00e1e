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
# Configs that need an argument, with an example of it.
EXAMPLE_ARGS = {"real_data.py": ["image_folder=/data/photos"]}
LOAD = """
import sys
from ml_collections import config_flags
path = sys.argv[1]
config = config_flags.config_flags._LoadConfigModule("config", path).get_config(*sys.argv[2:])
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
        [sys.executable, "-c", LOAD, path, *EXAMPLE_ARGS.get(os.path.basename(path), [])],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "ConfigDict"


def test_real_data_config_takes_the_source_and_path_as_its_argument(tmp_path):
    """configs/real_data.py:image_folder=DIR,smoke trains on a folder of real images with no
    config file written; a bad argument names the form it needs."""
    import json

    from conftest import module_command, run_command
    from data_builders import write_class_folder

    write_class_folder(str(tmp_path / "images"), per_class=6, size=40)
    workdir = tmp_path / "run"
    config = os.path.join(REPO, "configs", f"real_data.py:image_folder={tmp_path / 'images'},smoke")
    result = run_command(
        module_command("avrl_jax.main", "--config", config, "--workdir", str(workdir))
    )
    assert result.returncode == 0, result.stderr[-3000:]
    saved = json.load(open(workdir / "config.json"))
    assert saved["data"]["name"] == "image_folder"
    assert saved["data"]["source_kwargs"] == {"path": str(tmp_path / "images"), "canvas_size": 32}
    assert saved["total_steps"] == 6 and "step 6/6" in result.stdout
    bad = os.path.join(REPO, "configs", "real_data.py:folder=/x")
    result = run_command(
        module_command("avrl_jax.main", "--config", bad, "--workdir", str(workdir))
    )
    assert result.returncode != 0 and "give SOURCE=PATH first" in result.stderr
    assert "Traceback" not in result.stderr
