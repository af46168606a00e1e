"""avrl_jax.allocator: with keep_pages, a freed large block's pages are reused, not faulted in
again; the entry points set it; AVRL_KEEP_PAGES=0 turns it off."""

import os
import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only"
)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# With libc's malloc (as XLA:CPU allocates a step's temporaries): allocates, touches and
# frees a block of {size} bytes 1 + {rounds} times (64 MiB: above glibc's largest adaptive mmap
# threshold, 32 MiB) and prints the minor page faults of the last {rounds}. {setup} runs first.
FAULTS = """
import ctypes, resource
{setup}
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
def round_trip():
    block = libc.malloc({size})
    assert block
    ctypes.memset(block, 1, {size})
    libc.free(block)
round_trip()
before = faults()
for _ in range({rounds}):
    round_trip()
print(faults() - before)
"""
PAGES_PER_BLOCK = (64 << 20) // 4096


def faults_after(setup: str, env: dict | None = None, size: int = 64 << 20, rounds=9) -> int:
    out = subprocess.run(
        [sys.executable, "-c", FAULTS.format(setup=setup, size=size, rounds=rounds)],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
        env={**os.environ, **(env or {})},
    )
    return int(out.stdout.strip().splitlines()[-1])


def test_glibc_default_faults_a_freed_block_in_again():
    # The premise: without the setting each round faults the whole block in again.
    assert faults_after("") > 9 * PAGES_PER_BLOCK // 2


def test_keep_pages_reuses_the_pages():
    setup = "from avrl_jax import allocator\nassert allocator.keep_pages(True)"
    assert faults_after(setup) < PAGES_PER_BLOCK // 4


def test_a_free_heap_top_over_2_gib_is_kept_too():
    # A 224-px step frees blocks of several GiB; mallopt's largest positive int (2 GiB) as the
    # trim threshold would still give them back.
    setup = "from avrl_jax import allocator\nassert allocator.keep_pages(True)"
    size = (2 << 30) + (256 << 20)
    assert faults_after(setup, size=size, rounds=1) < size // 4096 // 8


def test_the_switch_turns_it_off():
    setup = "from avrl_jax import allocator\nassert not allocator.keep_pages()"
    assert faults_after(setup, {"AVRL_KEEP_PAGES": "0"}) > 9 * PAGES_PER_BLOCK // 2


def test_the_entry_points_keep_pages():
    # cli.run (every `python -m avrl_jax.*` program) sets it before the program's main.
    setup = (
        "import absl.app\n"
        "absl.app.run = lambda main, flags_parser=None: None  # the program itself: nothing\n"
        "from avrl_jax import cli\n"
        "cli.run(lambda argv: None)"
    )
    assert faults_after(setup) < PAGES_PER_BLOCK // 4
