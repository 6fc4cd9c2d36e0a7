"""Speed of early exit against the full network, before and after the optimisations of Chapter 7.

    python -m benchmarks.speed [--batch-sizes 1 16 64 256 1024] [--repeats 15] [--threads N]

Trains (or loads from ``.cache/``) the book's joint-loss model, chooses the threshold on the
validation split (accuracy no worse than the full network's), and prints, per batch size:
per-image time of the full network and of early exit, the measured speedup, the FLOPs-ideal
and latency-ideal speedups, and the routing overhead; then the test accuracy of both.
"""

from __future__ import annotations

import argparse

import torch

from earlyexit.bench import (SpeedRow, fast_pipeline, machine_info, measure_speed, reference_pipeline)
from earlyexit.data import load_splits
from earlyexit.fast import FastEarlyExit
from earlyexit.flops import path_flops
from earlyexit.inference import route_batch
from earlyexit.metrics import calibrate, collect
from earlyexit.training import TrainConfig, train_cached

BATCH_SIZES = (1, 16, 64, 256, 1024)


def images_for(batch_size: int, test_images: torch.Tensor) -> torch.Tensor:
    """Enough test images for a stable exit fraction, without making batch size 1 take minutes."""
    return test_images[: max(4 * batch_size, 512)]


def format_rows(rows: list[SpeedRow]) -> str:
    header = (f"{'batch':>5} {'exit@1':>7} {'full µs/img':>12} {'early-exit':>11} {'measured':>9} "
              f"{'FLOPs-ideal':>12} {'latency-ideal':>14} {'overhead':>9} {'mask-all':>9}")
    lines = [header, "-" * len(header)]
    for r in rows:
        lines.append(f"{r.batch_size:>5} {r.exit_fraction:>7.1%} {r.full.median * 1e6:>12.1f} "
                     f"{r.early_exit.median * 1e6:>11.1f} {r.measured_speedup:>8.2f}x {r.flops_ideal:>11.2f}x "
                     f"{r.latency_ideal_speedup:>13.2f}x {r.routing_overhead:>+9.1%} "
                     f"{r.full.median / r.masked.median:>8.2f}x")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=list(BATCH_SIZES))
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    data = load_splits()
    model = train_cached(TrainConfig(), data).model
    flops = path_flops(model)
    val, test = collect(model, data.val_images, data.val_labels), collect(model, data.test_images, data.test_labels)
    point = calibrate(val, test, "max_softmax", flops["early"], flops["deep"], max_accuracy_drop=0.0)
    threshold = point.val.threshold
    fast = FastEarlyExit(model, threshold)
    for name, value in machine_info().items():
        print(f"{name}: {value}")
    print(f"threshold {threshold:.4f} (chosen on validation: accuracy no worse than the full network)")
    print(f"test accuracy: full network {point.test_final_accuracy:.2%}, early exit {point.test.accuracy:.2%}, "
          f"{point.test.exit_fraction:.1%} leave at exit 1")
    assert torch.equal(fast(data.test_images).predictions, route_batch(model, data.test_images, threshold).predictions)
    print("fast path predictions identical to the reference on the whole test set\n")
    for pipeline in (reference_pipeline(model, threshold), fast_pipeline(fast)):
        rows = [measure_speed(pipeline, images_for(b, data.test_images), b, flops["early"], flops["deep"],
                              flops["full"], repeats=args.repeats) for b in args.batch_sizes]
        print(f"{pipeline.name} implementation (speedups relative to the same implementation's full network)")
        print(format_rows(rows) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
