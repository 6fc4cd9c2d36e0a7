"""What bounds early exit at batch 1, and what raises it: candidate designs served in two stages.

    python -m benchmarks.ceiling [--repeats 15] [--images 256]

Chapter 9 serves one image at a time as two ONNX Runtime graphs: the first stage (block 1,
exit 1, the exit score) for every image, the second (the rest of the network) for those
that go on. With the three graphs timed alone, ``full / (first + share_going_on * second)``
estimates what that design can reach against its one-thread full graph: its ceiling (an
estimate from medians, without an interval; what a request adds is not in it). Each
candidate has trained weights, its threshold chosen on validation to spend the book's
budget (25% of its own full network's FLOPs: the share going on differs between designs,
and the three-block designs spend about twice the book's FLOPs per image), and is judged
on test:

* **book**: the book's two-block model, Chapter 9's operating point (asserted);
* **pooled head**: the same model, exit 1's head replaced by one on 2x2-average-pooled
  features (784 inputs instead of 3,136; SDN reduces features before its internal
  classifiers, by mixed max and average pooling), trained here on the frozen block 1 until
  its validation loss stops improving;
* **three blocks**: the shipped three-block model (16, 32, 64), served as exit 1 or the
  end: the second stage runs blocks 2 and 3 and the last exit (exit 2 is not used), so the
  deep part costs about twice the book's;
* **three blocks, pooled head**: both changes at once (the pooled head trained on the
  three-block model's frozen block 1).

Three tables. Per design, in one interleaved run each: the share leaving at exit 1 (on test,
and on the timed images, which the ceiling uses), accuracy on test (early exit minus its
own full network, paired, McNemar), each graph's median time alone, the ceiling, and the
two-stage server against the faster of that network's full graph on one thread and on two
(picked by median in the same run, which can flatter only the baseline). Then what decides
which design to serve: every design's two-stage server in one interleaved race, against the
book's, with its early exit's accuracy against the book's early exit on the same test images
(McNemar). Last, batch size 256 (``--batch``), with one thread and with two: the first stage
on a batch, the second on the images of it that go on, the full graph on it, each alone, the
ceiling they set at each thread count, and the faster two stages (routing in NumPy) against
the faster full graph.
Rounds run in three blocks (``earlyexit.timing``). Nothing else should run on the machine
meanwhile.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from earlyexit.data import load_splits
from earlyexit.evaluation import ExitRecord, collect
from earlyexit.exits import exit_scores
from earlyexit.export import FullNetwork, export_onnx
from earlyexit.flops import count_flops, full_network_flops, stage_flops
from earlyexit.models import IMAGE_SHAPE, EarlyExitCNN
from earlyexit.operating_point import book_operating_point
from earlyexit.recipes import THREE_BLOCKS
from earlyexit.report import table
from earlyexit.serving import BoundSession, OneGraphServer, TwoStageServer, session
from earlyexit.speed import MIN_TIMED_IMAGES, timing_sample
from earlyexit.stats import mcnemar
from earlyexit.thresholds import BUDGET_SHARE, choose_on_validation
from earlyexit.timing import machine_info, speedup, time_interleaved
from earlyexit.training import TrainConfig, train_cached
from earlyexit.utils import repo_root


class PooledExit(nn.Module):
    """Exit 1 on 2x2-average-pooled block-1 features."""

    def __init__(self, channels: int, size: int, classes: int) -> None:
        super().__init__()
        self.linear = nn.Linear(channels * (size // 2) ** 2, classes)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.linear(F.avg_pool2d(features, 2).flatten(1))


class FirstOf(nn.Module):
    """Block 1 and an exit head: logits, max-softmax score, features (as :class:`FirstStage`)."""

    output_names = ("logits", "score", "features")

    def __init__(self, model: EarlyExitCNN, head: nn.Module) -> None:
        super().__init__()
        self.model, self.head = model.eval(), head.eval()

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        features = self.model.blocks[0](images)
        logits = self.head(features)
        return logits, exit_scores("max_softmax", logits), features


class ToTheEnd(nn.Module):
    """Every block after the first, then the last exit, from block 1's features."""

    input_names = ("features",)
    output_names = ("logits",)

    def __init__(self, model: EarlyExitCNN) -> None:
        super().__init__()
        self.model = model.eval()

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        for block in self.model.blocks[1:]:
            features = block(features)
        return self.model.exits[-1](features)


def block1_features(model: EarlyExitCNN, images: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([model.blocks[0](images[i:i + 1000]) for i in range(0, len(images), 1000)])


def train_pooled_head(model: EarlyExitCNN, data, patience: int = 3, max_epochs: int = 60) -> tuple[nn.Module, int]:
    """Train :class:`PooledExit` on frozen block-1 features (seeded); stop when the validation loss
    has not improved for ``patience`` epochs and keep the best epoch's weights."""
    torch.manual_seed(0)
    train, val = (block1_features(model, x) for x in (data.train_images, data.val_images))
    head = PooledExit(train.shape[1], train.shape[2], model.num_classes)
    optimiser = torch.optim.Adam(head.parameters(), lr=1e-3)
    best, best_state, best_epoch = float("inf"), None, 0
    for epoch in range(1, max_epochs + 1):
        for rows in torch.randperm(len(train)).split(256):
            optimiser.zero_grad()
            F.cross_entropy(head(train[rows]), data.train_labels[rows]).backward()
            optimiser.step()
        with torch.no_grad():
            loss = float(F.cross_entropy(head(val), data.val_labels))
        if loss < best:
            best, best_epoch = loss, epoch
            best_state = {k: v.clone() for k, v in head.state_dict().items()}
        elif epoch - best_epoch >= patience:
            break
    head.load_state_dict(best_state)
    return head.eval(), best_epoch


def candidate(name: str, model: EarlyExitCNN, head: nn.Module, data, folder) -> dict:
    """Export one design's three graphs and choose its threshold on validation."""

    def record(images, labels):
        full = collect(model, images, labels)
        if head is model.exits[0]:  # the model's own exit 1: the very logits Chapter 9 uses
            early = full.exit_logits[0]
        else:  # the features the pooled head was trained on, computed the same way
            with torch.no_grad():
                early = head(block1_features(model, images))
        return ExitRecord((early, full.exit_logits[-1]), (), labels)

    stages = stage_flops(model)
    one = torch.zeros(1, *IMAGE_SHAPE)
    early_flops = stages["block 1"] + count_flops(head, model.blocks[0](one))
    full_flops = full_network_flops(model)
    deep_flops = early_flops + full_flops - stages["block 1"]
    val, test = record(data.val_images, data.val_labels), record(data.test_images, data.test_labels)
    chosen = choose_on_validation(val, test, "max_softmax", early_flops, deep_flops,
                                  target_flops=BUDGET_SHARE * full_flops)
    leaves = test.scores("max_softmax") > chosen.threshold
    gap = mcnemar(torch.where(leaves, test.correct(1), test.correct(2)), test.correct(2))
    slug = name.replace(" ", "_")
    paths = {"first": export_onnx(FirstOf(model, head), folder / f"{slug}_first.onnx"),
             "second": export_onnx(ToTheEnd(model), folder / f"{slug}_second.onnx"),
             "full": export_onnx(FullNetwork(model), folder / f"{slug}_full.onnx")}
    early_exit_correct = torch.where(leaves, test.correct(1), test.correct(2))
    return {"name": name, "model": model, "head": head, "chosen": chosen, "gap": gap, "paths": paths,
            "flops": (early_flops, full_flops), "correct": early_exit_correct}


def time_candidate(c: dict, images: list[np.ndarray], repeats: int) -> dict:
    """Each graph alone, and the two-stage server against the full graph on one and two threads."""
    paths, threshold = c["paths"], c["chosen"].threshold
    alone = {name: BoundSession(path) for name, path in paths.items()}
    features = [FirstOf(c["model"], c["head"])(torch.from_numpy(x))[2].detach().numpy() for x in images]
    servers = {"full, 1 thread": OneGraphServer(paths["full"], check=False),
               "full, 2 threads": OneGraphServer(paths["full"], threads=2, check=False),
               "two stages": TwoStageServer(paths["first"], paths["second"], threshold, check=False)}
    goes_on = float(np.mean([servers["two stages"](x)[1] == 2 for x in images]))
    calls = {"first alone": lambda: [alone["first"](x) for x in images],
             "second alone": lambda: [alone["second"](f) for f in features],
             "full alone": lambda: [alone["full"](x) for x in images]}
    calls |= {name: (lambda s=s: [s(x) for x in images]) for name, s in servers.items()}
    t = time_interleaved(calls, repeats=repeats, warmup=1)
    per = {name: timing.median / len(images) for name, timing in t.items()}
    ceiling = per["full alone"] / (per["first alone"] + goes_on * per["second alone"])
    baseline = min(("full, 1 thread", "full, 2 threads"), key=lambda n: t[n].median)
    return {"per": per, "goes_on": goes_on, "ceiling": ceiling, "baseline": baseline,
            "speedup": speedup(t[baseline], t["two stages"])}


def time_batch(c: dict, batch: torch.Tensor, repeats: int) -> dict:
    """At batch size ``len(batch)``, with one thread and with two: each graph alone (the second
    on the images of the batch that go on), the ceiling they set, and the two stages with the
    routing between them in NumPy against the faster of the full graph on one thread and on two."""
    threshold = np.float32(c["chosen"].threshold)  # as TwoStageServer compares it
    sessions = {(name, t): session(path, threads=t) for name, path in c["paths"].items() for t in (1, 2)}
    inputs = {key: s.get_inputs()[0].name for key, s in sessions.items()}  # looked up once, not in timed calls

    def call(name: str, x: np.ndarray, threads: int = 1) -> list[np.ndarray]:
        return sessions[name, threads].run(None, {inputs[name, threads]: x})

    def goes_on(score: np.ndarray) -> np.ndarray:
        return ~(score.reshape(-1) > threshold)  # the servers' rule: not above the threshold (NaN) goes on

    images = batch.numpy()
    _, score, features = call("first", images)
    onward = goes_on(score)
    deep = np.ascontiguousarray(features[onward])

    def two_stages(threads: int) -> np.ndarray:
        logits, score, features = call("first", images, threads)
        on = goes_on(score)
        if on.any():
            logits[on] = call("second", np.ascontiguousarray(features[on]), threads)[0]
        return logits

    calls = {}
    for n in (1, 2):
        label = f"{n} thread{'s' * (n > 1)}"
        calls |= {f"first alone, {label}": lambda n=n: call("first", images, n),
                  f"second alone, {label}": lambda n=n: call("second", deep, n),
                  f"full, {label}": lambda n=n: call("full", images, n),
                  f"two stages, {label}": lambda n=n: two_stages(n)}
    t = time_interleaved(calls, repeats=repeats, warmup=1)
    per = {name: timing.median / len(batch) for name, timing in t.items()}
    ceilings = {n: per[f"full, {n}"] / (per[f"first alone, {n}"] + per[f"second alone, {n}"])
                for n in ("1 thread", "2 threads")}
    baseline = min(("full, 1 thread", "full, 2 threads"), key=lambda n: t[n].median)
    best = min(("two stages, 1 thread", "two stages, 2 threads"), key=lambda n: t[n].median)
    return {"per": per, "goes_on": float(onward.mean()), "ceilings": ceilings, "baseline": baseline,
            "best": best, "speedup": speedup(t[baseline], t[best])}


def race(candidates: list[dict], images: list[np.ndarray], repeats: int) -> dict:
    """Every design's two-stage server in one interleaved run: {name: speedup over the book's server}."""
    servers = {c["name"]: TwoStageServer(c["paths"]["first"], c["paths"]["second"], c["chosen"].threshold,
                                         check=False) for c in candidates}
    t = time_interleaved({name: (lambda s=s: [s(x) for x in images]) for name, s in servers.items()},
                         repeats=repeats, warmup=1)
    book = candidates[0]["name"]
    return {name: (timing.median / len(images), speedup(t[book], timing)) for name, timing in t.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15, help="timed rounds, in three blocks")
    parser.add_argument("--images", type=int, default=256, help="test images per round, one at a time")
    parser.add_argument("--batch", type=int, default=256, help="the batch size of the last table (0: none)")
    args = parser.parse_args(argv)
    if args.images < MIN_TIMED_IMAGES or args.repeats < 3:
        parser.error(f"--images needs at least {MIN_TIMED_IMAGES} and --repeats at least 3 (one round per block)")
    torch.set_num_threads(1)
    data = load_splits()
    folder = repo_root() / ".cache" / "onnx"
    for key, value in machine_info().items():
        print(f"{key}: {value}")

    op = book_operating_point(data)
    book = op.model
    three = train_cached(TrainConfig(channels=THREE_BLOCKS), data).model
    pooled = {}
    for name, model in (("book", book), ("three blocks", three)):
        pooled[name], epochs = train_pooled_head(model, data, patience=3, max_epochs=60)
        print(f"pooled head on {name}'s block 1: lowest validation loss at epoch {epochs} "
              "(training stops 3 epochs without improvement, or at 60)")
    candidates = [candidate("book", book, book.exits[0], data, folder),
                  candidate("pooled head", book, pooled["book"], data, folder),
                  candidate("three blocks", three, three.exits[0], data, folder),
                  candidate("three blocks, pooled head", three, pooled["three blocks"], data, folder)]
    assert candidates[0]["chosen"].threshold == op.chosen.threshold, "the book row is not Chapter 9's operating point"
    images = [x.numpy() for x in timing_sample(data.test_images, args.images).split(1)]
    rows = []
    for c in candidates:
        m = time_candidate(c, images, args.repeats)
        chosen, per = c["chosen"], m["per"]
        rows.append([c["name"], f"{c['flops'][0] / c['flops'][1]:.1%}", f"{chosen.test.exit_fraction:.1%}",
                     f"{1 - m['goes_on']:.1%}", f"{chosen.test.accuracy:.2%}", f"{chosen.test_final_accuracy:.2%}",
                     c["gap"].verdict(),
                     *(f"{per[k] * 1e6:.1f}" for k in ("first alone", "second alone", "full alone")),
                     f"{m['ceiling']:.2f}x", f"{per['two stages'] * 1e6:.1f}",
                     f"{m['speedup'].verdict()} vs {m['baseline']}"])
    print(table(["design", "exit 1 FLOPs share", "leave at exit 1 (test)", "leave (timed images)",
                 "early exit (test)", "its full network", "early exit minus full", "first (µs)", "second (µs)",
                 "full (µs)", "ceiling (over full, 1 thread)", "two stages (µs)",
                 "two stages against the faster full graph"], rows)._repr_markdown_())
    print("\nA ratio over a slower full network is not a faster server. Which server is faster, and at "
          "what accuracy: every design against the book's, servers in one race, accuracy paired on test "
          "(three exploratory comparisons each, 95% intervals not adjusted for multiplicity).")
    raced = race(candidates, images, args.repeats)
    print(table(["design", "two stages (µs)", "its server against the book's", "its early exit minus the book's"],
                [[c["name"], f"{raced[c['name']][0] * 1e6:.1f}",
                  "" if i == 0 else raced[c["name"]][1].verdict(),
                  "" if i == 0 else mcnemar(c["correct"], candidates[0]["correct"]).verdict()]
                 for i, c in enumerate(candidates)])._repr_markdown_())
    if args.batch:
        batch = timing_sample(data.test_images, args.batch)
        print(f"\nBatch size {args.batch}, the same {args.batch} test images for every design, one thread and two: "
              "the first stage on the batch, the second on the images that go on, the full graph on the batch "
              "(each alone), the ceiling they set at each thread count (routing free), and the faster two "
              "stages, with the routing in NumPy between them, against the faster full graph (each picked by "
              "median in the same run, which flatters the pick).")
        rows = []
        for c in candidates:
            m = time_batch(c, batch, args.repeats)
            per = m["per"]
            rows.append([c["name"], f"{1 - m['goes_on']:.1%}",
                         *(f"{per[f'{k}, 1 thread'] * 1e6:.1f} / {per[f'{k}, 2 threads'] * 1e6:.1f}"
                           for k in ("first alone", "second alone", "full", "two stages")),
                         " / ".join(f"{x:.2f}x" for x in m["ceilings"].values()),
                         f"{m['best']}: {m['speedup'].verdict()} vs {m['baseline']}"])
        print(table(["design", "leave at exit 1 (batch)", "first (µs per image, 1 / 2 threads)", "second",
                     "full", "two stages", "ceiling (1 / 2 threads)",
                     "the faster two stages against the faster full graph"], rows)._repr_markdown_())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
