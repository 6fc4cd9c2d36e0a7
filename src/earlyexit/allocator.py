"""The C allocator's policy for large buffers, fixed so that every timed run meets the same one.

Every call of a network allocates its activations and frees them. On Linux, glibc's
``malloc`` serves a large request either from memory the process already holds, or by mapping
fresh pages from the system (which the system must fault in and zero on first touch), and
unmaps them when they are freed. By default it decides by a threshold that it moves as the
process runs (the ``mallopt(3)`` manual page, ``M_MMAP_THRESHOLD``): it starts at 128 KiB, and
when a mapped buffer is freed it rises to that buffer's size, up to 32 MiB on a 64-bit
machine. Which buffers are mapped fresh therefore depends on what the process did before, and
two runs of the same code can time a large batch differently. Setting the threshold turns
the adjustment off. Chapter 7 times what the choice is worth.

* ``"keep"``: every buffer comes from memory the process keeps, and freed memory stays with
  the process for the next call (the book's timed chapters run this way);
* ``"return"``: every buffer of 128 KiB or more is mapped fresh and returned when freed.

Freed memory at the top of the heap is never handed back in either policy, so the two differ
in that one threshold. Elsewhere than glibc (macOS, Windows, musl), nothing is changed, and
:func:`set_allocator` says so.
"""

from __future__ import annotations

import ctypes
import platform
from collections.abc import Callable

POLICIES = ("keep", "return")
# mallopt's parameter numbers (glibc's malloc.h) and the thresholds each policy sets, in bytes.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_THRESHOLDS = {"keep": 1 << 30, "return": 128 * 1024}
_NEVER_TRIM = 2**31 - 1  # mallopt takes a C int

_current = "the C library's default"


def _mallopt() -> Callable[[int, int], int] | None:
    """glibc's ``mallopt``, or None on another C library."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        return ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return None


def set_allocator(policy: str = "keep") -> str:
    """Fix the C allocator's policy for large buffers (``"keep"`` or ``"return"``, see the module
    docstring) and return it in words; on a C library other than glibc, change nothing and say
    so. Cheap enough (well under a microsecond) to set before every timed call."""
    global _current
    if policy not in POLICIES:
        raise ValueError(f"policy must be one of {POLICIES}, got {policy!r}")
    mallopt = _mallopt()
    if mallopt is None:
        _current = f"the C library's default (not glibc: {policy!r} not applied)"
        return _current
    if not (mallopt(_M_TRIM_THRESHOLD, _NEVER_TRIM) and mallopt(_M_MMAP_THRESHOLD, _THRESHOLDS[policy])):
        raise OSError(f"glibc's mallopt refused the {policy!r} policy's thresholds")
    _current = {"keep": "glibc, every buffer from memory the process keeps",
                "return": "glibc, buffers of 128 KiB or more mapped fresh"}[policy]
    return _current


def allocator_policy() -> str:
    """The policy :func:`set_allocator` last set in this process, in words (or the default)."""
    return _current
