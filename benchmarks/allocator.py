"""What the C allocator's policy does to a large batch: Chapter 7's allocator section as a benchmark.

    python -m benchmarks.allocator [--processes 3] [--batch-size 1024] [--repeats 11]

The policy belongs to the whole process and matters from its first allocation on
(``earlyexit.allocator``), so each run is a fresh process: under glibc's default, "keep" and
"return", ``--processes`` each. Every process times, in one interleaved run at the batch size,
the reference implementation and the fast path without and with chunks of 256 images, and
prints its medians; the table shows every process, so a policy under which processes disagree
shows as such.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

from earlyexit import allocator

POLICIES = ("default", *allocator.POLICIES)


def child(policy: str, batch_size: int, repeats: int) -> dict:
    """One process's timings (the policy set before anything is allocated)."""
    if policy != "default":
        allocator.set_allocator(policy)
    from earlyexit.data import load_splits
    from earlyexit.fast import FastEarlyExit
    from earlyexit.inference import route_batch
    from earlyexit.operating_point import book_operating_point
    from earlyexit.speed import threads_for, timing_sample
    from earlyexit.timing import speedup, time_interleaved, torch_threads

    data = load_splits()
    op = book_operating_point(data)
    paths = {"reference": lambda x: route_batch(op.model, x, op.rule),
             "fast, one batch": FastEarlyExit(op.model, op.rule, chunk_size=None),
             "fast, chunks of 256": FastEarlyExit(op.model, op.rule, chunk_size=256)}
    batches = timing_sample(data.test_images, batch_size).split(batch_size)
    images = sum(len(x) for x in batches)
    with torch_threads(threads_for(batch_size)):
        times = time_interleaved({name: (lambda run=run: [run(x) for x in batches]) for name, run in paths.items()},
                                 repeats=repeats)
    gain = speedup(times["fast, one batch"], times["fast, chunks of 256"])
    return {"policy": allocator.allocator_policy(), **{name: t.median / images * 1e6 for name, t in times.items()},
            "chunks": [gain.estimate, gain.low, gain.high]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=11)
    parser.add_argument("--child", choices=POLICIES, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.batch_size, args.repeats)))
        return 0
    from earlyexit.report import table
    from earlyexit.stats import Interval
    from earlyexit.timing import machine_info

    for name, value in machine_info().items():
        if name != "allocator":
            print(f"{name}: {value}")
    rows = []
    for policy in POLICIES:
        for process in range(1, args.processes + 1):
            done = subprocess.run([sys.executable, "-m", "benchmarks.allocator", "--child", policy,
                                   "--batch-size", str(args.batch_size), "--repeats", str(args.repeats)],
                                  capture_output=True, text=True, check=True)
            got = json.loads(done.stdout.strip().splitlines()[-1])
            chunks = Interval(*got["chunks"], null=1.0)
            rows.append([policy, str(process), *(f"{got[name]:.1f}" for name in
                                                 ("reference", "fast, one batch", "fast, chunks of 256")),
                         chunks.verdict()])
    print(f"\nbatch size {args.batch_size}, µs per image (medians); each row a fresh process")
    print(table(["allocator", "process", "reference", "fast, one batch", "fast, chunks of 256",
                 "chunks against one batch (95% CI)"], rows)._repr_markdown_())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
