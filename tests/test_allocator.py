"""The allocator's policy: applied where glibc is, refused or reported elsewhere, and shown to
change what a freed buffer costs the next time (page faults counted in a fresh process)."""

from __future__ import annotations

import json
import platform
import subprocess
import sys

import pytest

from earlyexit import allocator
from earlyexit.timing import machine_info

GLIBC = allocator._mallopt() is not None  # the module's own test for glibc

# A fresh process sets the policy first, then runs a network-like step (a 64 MiB activation and a
# buffer whose size changes every round) twenty times, and prints the minor page faults of the
# last ten rounds: after warming up, "keep" serves every buffer from memory it holds.
FAULTS = """
import json, resource, sys
import torch
from earlyexit.allocator import set_allocator
set_allocator(sys.argv[1])
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
x = torch.ones(16 << 20)
for step in range(20):
    if step == 10:
        before = faults()
    y = (x * 2).relu(); z = torch.ones((3 << 20) + 1000 * step); del y, z
print(json.dumps(faults() - before))
"""


def page_faults(policy: str) -> int:
    done = subprocess.run([sys.executable, "-c", FAULTS, policy], capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not GLIBC, reason="the policies are glibc's")
def test_keep_reuses_a_freed_buffer_and_return_maps_it_fresh_each_time():
    # 64 MiB is 16,384 pages of 4 KiB: each of ten rounds maps two such buffers fresh. Kept
    # memory may still grow once while its holes settle (Python 3.13 once faulted in 3,090
    # pages, the size of the changing buffer), but not by one large buffer's pages in all.
    assert page_faults("return") > 10 * 2 * 16384 * 0.9
    assert page_faults("keep") < 16384


@pytest.mark.skipif(not GLIBC, reason="the policies are glibc's")
def test_the_policy_set_is_the_one_every_timing_prints(monkeypatch):
    monkeypatch.setattr(allocator, "_current", allocator._current)  # restored after the test
    assert machine_info()["allocator"] == allocator.allocator_policy()
    said = allocator.set_allocator("keep")
    assert said.startswith("glibc") and machine_info()["allocator"] == said


def test_an_unknown_policy_is_refused():
    with pytest.raises(ValueError, match="policy must be one of"):
        allocator.set_allocator("fast")


def test_another_c_library_is_left_alone_and_says_so(monkeypatch):
    monkeypatch.setattr(allocator, "_current", allocator._current)
    monkeypatch.setattr(platform, "libc_ver", lambda: ("", ""))
    assert "not applied" in allocator.set_allocator("keep")
    assert "not glibc" in allocator.allocator_policy()


def test_a_refused_threshold_is_an_error_not_a_silent_default(monkeypatch):
    monkeypatch.setattr(allocator, "_current", allocator._current)
    monkeypatch.setattr(allocator, "_mallopt", lambda: lambda parameter, value: 0)
    with pytest.raises(OSError, match="refused the 'keep' policy"):
        allocator.set_allocator("keep")
