"""Keep freed memory mapped, so that XLA:CPU's per-step temporaries reuse their pages.

XLA:CPU allocates a step's temporaries with malloc. glibc serves a block above its mmap
threshold (128 KiB, adapting up to 32 MiB) by a fresh `mmap` and returns it with `munmap` when it
is freed, so every step faults its activations in again, page by page: at 224 px (ViT-S/16, 64
crops) about 2.8 M page faults per step, with 30% of the process's CPU time spent in the kernel.
`keep_pages()` tells glibc to serve every block from its heap (`M_MMAP_MAX` = 0) and never to
give freed heap back (`M_TRIM_THRESHOLD` = SIZE_MAX), the same as starting the process with
`MALLOC_MMAP_MAX_=0` and a `MALLOC_TRIM_THRESHOLD_` larger than any heap. The pages of one
step are then reused by the next; the process's resident size stays at its high-water mark
instead of going up and down.

The project's entry points call it (`avrl_jax.cli.run`, benchmarks/train_step.py), so no user
sets anything. `AVRL_KEEP_PAGES=0` in the environment turns it off. On a C library other than
glibc (macOS, musl) it does nothing. Accelerator memory is untouched: this is host malloc only.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform

# glibc's mallopt parameters (malloc.h).
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
# mallopt takes an int and glibc stores it as a size_t: -1 is SIZE_MAX, so the heap's top is never
# trimmed. (2**31 - 1, the largest positive int, still trims a free top above 2 GiB, and a 224-px
# step frees several: measured, a 3 GiB block freed and taken again faulted all its 786k pages
# in again with 2**31 - 1 and none with -1.)
NEVER_TRIM = -1

ENV_SWITCH = "AVRL_KEEP_PAGES"


def _libc() -> ctypes.CDLL | None:
    """The process's glibc, or None on another C library."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def keep_pages(enabled: bool | None = None) -> bool:
    """Serve large blocks from the heap and keep freed pages (see the module). `enabled` None
    reads `AVRL_KEEP_PAGES` (default on). Returns whether the setting is now in effect."""
    if enabled is None:
        enabled = os.environ.get(ENV_SWITCH, "1").strip().lower() not in ("0", "false", "no")
    libc = _libc() if enabled else None
    if libc is None:
        return False
    # mallopt returns 1 on success, 0 on error.
    return bool(libc.mallopt(M_MMAP_MAX, 0)) and bool(libc.mallopt(M_TRIM_THRESHOLD, NEVER_TRIM))
