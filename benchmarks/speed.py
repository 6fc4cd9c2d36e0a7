"""Speed of early exit against the full network: Chapters 7 and 8 as a benchmark that prints tables.

    python -m benchmarks.speed [--batch-sizes 1 16 256 1024] [--repeats 15] [--threads N] [--no-onnx]

Trains (or loads from ``.cache/``) the book's joint-loss model and chooses the operating
point on the validation split (spend 25% of the full network's FLOPs). Then, per batch
size, in one interleaved run each: the reference and fast implementations against their
own full networks, and (unless ``--no-onnx``) ONNX Runtime's full network and early-exit
graph against the fastest full network measured. Speedups are medians of per-round
ratios with 95% intervals (``earlyexit.timing``).
"""

from __future__ import annotations

import argparse

import torch

from earlyexit.calibration import calibrate
from earlyexit.data import load_splits
from earlyexit.evaluation import collect
from earlyexit.exits import ThresholdRule
from earlyexit.fast import FastEarlyExit
from earlyexit.flops import exit_costs, full_network_flops
from earlyexit.inference import route_batch
from earlyexit.speed import (
    BATCH_SIZES,
    fast_implementation,
    measure_speed,
    reference_implementation,
    speed_table,
    timing_images,
)
from earlyexit.timing import machine_info, speedup, time_interleaved
from earlyexit.training import TrainConfig, train_cached
from earlyexit.utils import repo_root


def onnx_rows(model, rule, images: torch.Tensor, batch_sizes, repeats: int) -> str:
    from earlyexit.export import EarlyExitModule, FullNetwork, export_onnx, session

    folder = repo_root() / ".cache" / "onnx"
    paths = {"full": export_onnx(FullNetwork(model), folder / "bench_full.onnx"),
             "early exit": export_onnx(EarlyExitModule(model, rule), folder / "bench_early_exit.onnx")}
    sessions = {f"ORT {k}, {t}t": session(p, threads=t) for k, p in paths.items() for t in (1, 2)}
    fast = FastEarlyExit(model, rule)
    lines = []
    for b in batch_sizes:
        batches = timing_images(images, b).split(b)
        arrays = [x.numpy() for x in batches]
        candidates = {"eager full": lambda: [fast.full(x) for x in batches],
                      "eager early exit": lambda: [fast(x) for x in batches]}
        for name, s in sessions.items():
            candidates[name] = lambda s=s: [s.run(None, {"images": a}) for a in arrays]
        timings = time_interleaved(candidates, repeats=repeats)
        n = sum(len(x) for x in batches)
        fulls = {k: t for k, t in timings.items() if "full" in k}
        baseline = min(fulls, key=lambda k: fulls[k].median)
        early = {k: t for k, t in timings.items() if "early exit" in k}
        best = min(early, key=lambda k: early[k].median)
        cells = "  ".join(f"{k} {t.median / n * 1e6:.1f}" for k, t in timings.items())
        lines.append(f"batch {b:>4} (µs/image): {cells}\n"
                     f"           best early exit ({best}) vs fastest full ({baseline}): "
                     f"{speedup(timings[baseline], timings[best]).verdict()}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=list(BATCH_SIZES))
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--no-onnx", action="store_true", help="skip the ONNX Runtime comparison")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    data = load_splits()
    model = train_cached(TrainConfig(), data).model
    costs, full = exit_costs(model), full_network_flops(model)
    test = collect(model, data.test_images, data.test_labels)
    point = calibrate(collect(model, data.val_images, data.val_labels), test, "max_softmax", *costs,
                      target_flops=0.25 * full)
    rule = ThresholdRule(point.threshold)
    for name, value in machine_info().items():
        print(f"{name}: {value}")
    print(f"threshold {point.threshold:.4f} (spends 25% of the full network's FLOPs on validation); "
          f"test: {point.test.exit_fraction:.1%} leave at exit 1, accuracy {point.test.accuracy:.2%} "
          f"(full network {point.test_final_accuracy:.2%})")
    fast = FastEarlyExit(model, rule)
    assert torch.equal(fast(data.test_images).exit_number, route_batch(model, data.test_images, rule).exit_number)
    print("fast path: the reference's exits on the whole test set\n")
    for impl in (reference_implementation(model, rule), fast_implementation(fast)):
        rows = [measure_speed(impl, timing_images(data.test_images, b), b, costs, full, repeats=args.repeats)
                for b in args.batch_sizes]
        print(f"{impl.name} implementation (speedups over the same implementation's full network)")
        print(speed_table(rows)._repr_markdown_() + "\n")
    if not args.no_onnx:
        print("ONNX Runtime (speedup of the best early exit over the fastest full network)")
        print(onnx_rows(model, rule, data.test_images, args.batch_sizes, args.repeats))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
