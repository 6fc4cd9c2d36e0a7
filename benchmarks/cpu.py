"""Speed of early exit against the full network on this CPU: Chapters 7 and 8 as a benchmark that prints tables.

    python -m benchmarks.cpu [--batch-sizes 1 16 256 1024] [--repeats 15] [--threads N] [--no-onnx]
                             [--allocator keep|return|default]

Sets the allocator's policy first (``earlyexit.allocator``; "keep", as every timed chapter
does), then starts from the book's operating point (``earlyexit.operating_point``). Then, per batch
size, in one interleaved run each: the reference and fast implementations against their
own full networks, and (unless ``--no-onnx``) every runtime the book compares (eager
PyTorch and ONNX Runtime, 1 and 2 threads), the fastest early exit against the fastest full
network. Speedups are medians of per-round ratios with 95% intervals (``earlyexit.timing``).
"""

from __future__ import annotations

import argparse

import torch

from earlyexit.allocator import POLICIES, set_allocator
from earlyexit.data import load_splits
from earlyexit.fast import FastEarlyExit
from earlyexit.inference import route_batch
from earlyexit.operating_point import book_operating_point
from earlyexit.speed import (
    BATCH_SIZES,
    compare_runtimes,
    eager_candidates,
    fast_implementation,
    measure_speed,
    reference_implementation,
    runtime_table,
    session_candidates,
    speed_table,
    timing_sample,
)
from earlyexit.timing import machine_info
from earlyexit.utils import repo_root


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=list(BATCH_SIZES))
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--no-onnx", action="store_true", help="skip the runtime comparison with ONNX Runtime")
    parser.add_argument("--allocator", choices=(*POLICIES, "default"), default="keep",
                        help="the C allocator's policy for large buffers (default: keep, as the book)")
    args = parser.parse_args(argv)
    if args.allocator != "default":
        set_allocator(args.allocator)
    if args.threads:
        torch.set_num_threads(args.threads)

    data = load_splits()
    op = book_operating_point(data)
    for name, value in machine_info().items():
        print(f"{name}: {value}")
    print(f"threshold {op.chosen.threshold:.4f} (spends 25% of the full network's FLOPs on validation); "
          f"test: {op.chosen.test.exit_fraction:.1%} leave at exit 1, accuracy {op.chosen.test.accuracy:.2%} "
          f"(full network {op.chosen.test_final_accuracy:.2%}); early exit minus full: {op.accuracy_gap().verdict()}")
    fast = FastEarlyExit(op.model, op.rule)
    assert torch.equal(fast(data.test_images).exit_number,
                       route_batch(op.model, data.test_images, op.rule).exit_number)
    print("fast path: the reference's exits on the whole test set\n")
    for impl in (reference_implementation(op.model, op.rule), fast_implementation(fast)):
        rows = [measure_speed(impl, timing_sample(data.test_images, b), b, op.exit_costs, op.full_flops,
                              repeats=args.repeats) for b in args.batch_sizes]
        print(f"{impl.name} implementation (speedups over the same implementation's full network)")
        print(speed_table(rows)._repr_markdown_() + "\n")
    if not args.no_onnx:
        from earlyexit.export import EarlyExitModule, FullNetwork, export_onnx

        folder = repo_root() / ".cache" / "onnx"
        paths = {"full": export_onnx(FullNetwork(op.model), folder / "bench_full.onnx"),
                 "early exit": export_onnx(EarlyExitModule(op.model, op.rule), folder / "bench_early_exit.onnx")}
        candidates = eager_candidates(fast) + session_candidates(paths)
        rows = [compare_runtimes(candidates, timing_sample(data.test_images, b), b,
                                 lambda x: fast(x).exit_number, op.exit_costs, op.full_flops, repeats=args.repeats)
                for b in args.batch_sizes]
        print("Runtimes (µs per image): the fastest early exit against the fastest full network")
        print(runtime_table(rows)._repr_markdown_())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
