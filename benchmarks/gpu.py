"""Early exit on a CUDA GPU: the full network, route_batch and the fast path, per batch size.

    python -m benchmarks.gpu [--batch-sizes 1 64 256 1024 4096] [--repeats 30]

Times are synchronised (``torch.cuda.synchronize`` before the clock is read) and
interleaved (``earlyexit.timing``); the operating point is the book's
(``earlyexit.operating_point``). Prints the device, versions and date, to be recorded beside the
table. Exits with a message when no GPU is present.
"""

from __future__ import annotations

import argparse
import datetime

import torch

from earlyexit.data import load_splits
from earlyexit.fast import FastEarlyExit
from earlyexit.inference import route_batch
from earlyexit.operating_point import book_operating_point
from earlyexit.timing import speedup, time_interleaved


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 64, 256, 1024, 4096])
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("no CUDA GPU on this machine: nothing to measure")
        return 1
    data = load_splits()
    op = book_operating_point(data)
    rule = op.rule
    device = torch.device("cuda")
    gpu_model = op.model.to(device).eval()
    fast = FastEarlyExit(gpu_model, rule).to(device)
    images = data.test_images.to(device)
    print(f"{torch.cuda.get_device_name(0)}, torch {torch.__version__}, {datetime.date.today()}; "
          f"{op.chosen.test.exit_fraction:.1%} of test images leave at exit 1")
    for b in args.batch_sizes:
        batch = images[:b] if b <= len(images) else images.repeat(b // len(images) + 1, 1, 1, 1)[:b]

        @torch.no_grad()
        def full_network():
            return gpu_model.final_logits(batch)

        t = time_interleaved({"full": full_network, "route_batch": lambda: route_batch(gpu_model, batch, rule),
                              "fast": lambda: fast(batch)}, repeats=args.repeats, warmup=5, device=device)
        cells = "  ".join(f"{k} {v.median / b * 1e6:.2f} µs/img" for k, v in t.items())
        print(f"batch {b:>5}: {cells}; route_batch vs full: {speedup(t['full'], t['route_batch']).verdict()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
