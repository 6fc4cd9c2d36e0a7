"""A small decoder-only transformer with an exit after every layer (Part V), its training and cache.

The model is nanoGPT's shape, small enough to read on one screen: token and position
embeddings, pre-norm blocks (causal self-attention, then an MLP), one final norm and one LM
head. The **exit after layer l** is that final norm and head applied to layer l's output:
every exit shares them (as LayerSkip does), so an exit adds no parameters.

Attention keeps a **KV cache**: each layer stores the keys and values of the positions it has
seen, so generating a token processes one position instead of the whole sequence.
:class:`KVCache` holds them, layer by layer, and can be cut back (speculative decoding
rejects drafted tokens). A layer's cache can also *lag* behind the sequence, which is
exactly the missing-KV problem of per-token early exit (:mod:`earlyexit.decoding`).

:func:`train_lm` trains with the **early-exit loss**: the weighted sum of every exit's
cross-entropy. :func:`train_lm_cached` caches the result under ``.cache/`` like the CNNs.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.std import tqdm

from .checkpoints import load_or_train
from .checks import check_int, check_number, check_token_ids, check_type
from .losses import check_weights
from .resume import Progress, Resumable
from .text import KINDS, VOCAB, TextSplits
from .utils import progress_enabled, resolve_device, seed_everything

LM_CACHE_FORMAT = 1  # bump when the training code changes what a configuration produces


@dataclass(frozen=True)
class LMConfig:
    """Everything that determines a trained model; its hash names the checkpoint."""

    layers: int = 6
    width: int = 64
    heads: int = 4
    context: int = 48
    exit_weights: tuple[float, ...] | None = None  # None: 1 for every layer
    steps: int = 96000  # the ladder's choice (recipes.lm_ladder), see Chapter 11
    batch_size: int = 32
    lr: float = 5e-3
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("layers", "width", "heads", "context", "steps", "batch_size"):
            check_int(name, getattr(self, name))
        check_int("seed", self.seed, 0)
        if self.width % self.heads:
            raise ValueError(f"width ({self.width}) must be a multiple of heads ({self.heads})")
        object.__setattr__(self, "lr", check_number("lr", self.lr, open_low=True))  # 1 and 1.0: one key
        weights = (1.0,) * self.layers if self.exit_weights is None else tuple(self.exit_weights)
        if len(weights) != self.layers:
            raise ValueError(f"exit_weights needs one weight per layer ({self.layers}), got {len(weights)}")
        weights = tuple(check_number(f"exit_weights[{i}]", w) for i, w in enumerate(weights))
        if not any(weights):
            raise ValueError("at least one exit weight must be above 0")
        object.__setattr__(self, "exit_weights", weights)

    def key(self) -> str:
        """A short hash of the full configuration (and of the cache format)."""
        text = json.dumps({"format": LM_CACHE_FORMAT, **asdict(self)}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def name(self) -> str:
        """The model's name in the manifest and the cache."""
        return f"lm-{self.key()}"

    def as_json(self) -> dict:
        """The configuration as JSON reads it back (tuples as lists)."""
        return json.loads(json.dumps(asdict(self)))


class KVCache:
    """Keys and values per layer, each (1, heads, positions, head size); a layer's length may lag."""

    def __init__(self, layers: int) -> None:
        check_int("layers", layers)
        self.keys: list[torch.Tensor | None] = [None] * layers
        self.values: list[torch.Tensor | None] = [None] * layers

    def length(self, layer: int) -> int:
        k = self.keys[layer]
        return 0 if k is None else k.shape[2]

    def append(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Add positions to a layer; return all of that layer's keys and values."""
        if self.keys[layer] is not None:
            k, v = torch.cat([self.keys[layer], k], 2), torch.cat([self.values[layer], v], 2)
        self.keys[layer], self.values[layer] = k, v
        return k, v

    def truncate(self, length: int) -> None:
        """Forget every position from ``length`` on, in every layer."""
        for layer in range(len(self.keys)):
            if self.keys[layer] is not None:
                self.keys[layer] = self.keys[layer][:, :, :length]
                self.values[layer] = self.values[layer][:, :, :length]


@functools.lru_cache(maxsize=256)
def causal_mask(past: int, new: int) -> torch.Tensor:
    """Which keys each of ``new`` positions after ``past`` cached ones may see: new position i
    (absolute ``past + i``) sees every key up to and including itself. Built once per shape
    (every layer of a pass, and every later pass of the same shape, reuses it); never modify it."""
    return torch.arange(past + new)[None, :] <= torch.arange(past, past + new)[:, None]


class Attention(nn.Module):
    """Causal multi-head self-attention that reads and extends a layer's KV cache."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.out = nn.Linear(width, width)

    def forward(self, x: torch.Tensor, cache: KVCache | None = None,
                layer: int = 0) -> torch.Tensor:
        b, t, c = x.shape
        q, k, v = (z.view(b, t, self.heads, c // self.heads).transpose(1, 2)
                   for z in self.qkv(x).split(c, 2))
        if cache is None:  # the whole sequence at once (training)
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            past = cache.length(layer)
            k, v = cache.append(layer, k, v)
            # a single new position sees every key: no mask
            mask = None if t == 1 else causal_mask(past, t)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.out(y.transpose(1, 2).reshape(b, t, c))


class Block(nn.Module):
    """Pre-norm transformer block: x + attention(norm(x)), then x + MLP(norm(x))."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.norm1, self.attention = nn.LayerNorm(width), Attention(width, heads)
        self.norm2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width))

    def forward(self, x: torch.Tensor, cache: KVCache | None = None, layer: int = 0) -> torch.Tensor:
        x = x + self.attention(self.norm1(x), cache, layer)
        return x + self.mlp(self.norm2(x))


class EarlyExitLM(nn.Module):
    """A character-level language model with an exit after every layer, all exits sharing one head."""

    def __init__(self, config: LMConfig) -> None:
        super().__init__()
        self.config = config
        self.token = nn.Embedding(len(VOCAB), config.width)
        self.position = nn.Embedding(config.context, config.width)
        self.blocks = nn.ModuleList(Block(config.width, config.heads) for _ in range(config.layers))
        self.norm = nn.LayerNorm(config.width)
        self.head = nn.Linear(config.width, len(VOCAB), bias=False)

    @property
    def num_layers(self) -> int:
        return len(self.blocks)

    def embed(self, ids: torch.Tensor, start: int = 0) -> torch.Tensor:
        """Token plus position embeddings of ``ids`` (batch, time), the first at position ``start``.

        ``ids`` must be integer token ids of the vocabulary, in a 2-D batch; anything else is refused
        with a ValueError or TypeError naming it (never truncated, flattened or left to ``nn.Embedding``).
        """
        ids = check_token_ids("ids", ids, self.token.num_embeddings, 2)
        check_int("start", start, 0)
        if start + ids.shape[1] > self.config.context:
            raise ValueError(f"positions {start} to {start + ids.shape[1] - 1} exceed the context "
                             f"of {self.config.context}")
        return self._embed(ids, start)

    def _embed(self, ids: torch.Tensor, start: int = 0) -> torch.Tensor:
        # a slice of the position table: the same rows as an embedding lookup, without building indices
        return self.token(ids) + self.position.weight[start:start + ids.shape[1]]

    def exit_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """The shared exit: final norm and LM head, applied to any layer's output."""
        return self.head(self.norm(hidden))

    def forward(self, ids: torch.Tensor) -> list[torch.Tensor]:
        """Every exit's logits for every position: a list of (batch, time, vocab), one per layer.

        ``ids`` is a (batch, time) tensor of token ids, checked by :meth:`embed`."""
        return self._exits(self.embed(ids))

    def _exits(self, x: torch.Tensor) -> list[torch.Tensor]:
        # unchecked: checking ids reads them back to the host, which a CUDA graph cannot do
        outs = []
        for block in self.blocks:
            x = block(x)
            outs.append(self.exit_logits(x))
        return outs


def _checked(exit_logits: object, targets: object, weights: object) -> tuple[list, torch.Tensor, tuple]:
    """The loss's inputs, checked: at least one exit's (batch, time, vocab) logits, (batch, time)
    next-token ids, one finite weight >= 0 per exit (fewer would silently leave exits out)."""
    exit_logits = list(check_type("exit_logits", exit_logits, (list, tuple), "a list of each exit's logits"))
    if not exit_logits:
        raise ValueError("exit_logits must hold at least one exit's logits, got none")
    weights = check_weights(check_type("weights", weights, (list, tuple), "a sequence of weights"),
                            len(exit_logits))
    for k, logits in enumerate(exit_logits):
        check_type(f"exit_logits[{k}]", logits, torch.Tensor, "a tensor of (batch, time, vocab) logits")
        if logits.ndim != 3:
            raise ValueError(f"exit_logits[{k}] must be (batch, time, vocab), got shape {tuple(logits.shape)}")
    shape = tuple(exit_logits[0].shape)
    targets = check_token_ids("targets", targets, shape[2], 2)
    if any(tuple(logits.shape) != shape for logits in exit_logits) or tuple(targets.shape) != shape[:2]:
        raise ValueError(f"every exit's logits must be (batch, time, vocab) and targets (batch, time) of the same "
                         f"batch and time, got {[tuple(x.shape) for x in exit_logits]} and {tuple(targets.shape)}")
    return exit_logits, targets, weights


def early_exit_loss(exit_logits: list[torch.Tensor], targets: torch.Tensor,
                    weights: tuple[float, ...]) -> torch.Tensor:
    """Weighted sum over layers of each exit's mean next-token cross-entropy."""
    return _weighted_loss(*_checked(exit_logits, targets, weights))


def _weighted_loss(exit_logits: list[torch.Tensor], targets: torch.Tensor,
                   weights: tuple[float, ...]) -> torch.Tensor:
    return sum(w * F.cross_entropy(logits.flatten(0, 1), targets.flatten())
               for w, logits in zip(weights, exit_logits) if w)


@dataclass
class TrainedLM:
    """A language model with its training log (the loss every few steps, validation accuracy at the end)."""

    model: EarlyExitLM
    config: LMConfig
    log: dict[str, Any] = field(default_factory=dict)
    train_seconds: float = 0.0
    from_cache: bool = False

    @property
    def losses(self) -> list[float]:
        """The training loss, averaged over every ``log["loss_every"]`` steps."""
        return list(self.log.get("loss", []))


LOG_POINTS = 100  # training-loss points kept per run


def train_lm(config: LMConfig, data: TextSplits, progress: bool | None = None,
             stop_after: int | None = None, device: torch.device | str | None = None,
             cuda_graph: bool = True, resume: str | Path | None = None) -> TrainedLM:
    """AdamW with a one-cycle schedule, on random windows of the training text.

    The log keeps the mean training loss over every ``loss_every`` steps and, at the end,
    each exit's next-token accuracy on the validation text, per token kind. ``stop_after``
    ends training after that many steps of the full schedule (a prefix, for provenance checks).
    Training runs on ``device`` (the GPU when there is one, else the CPU); the windows are drawn
    on the CPU whatever the device, and the model is scored and returned on the CPU. On a GPU
    each step (forward, backward, AdamW, the loss's running sum) is replayed as one CUDA graph
    unless ``cuda_graph`` is False: the same arithmetic, without launching each small kernel from
    Python (a model this small spends most of an eager step doing that).

    ``resume`` names a file that keeps the run's whole state (:mod:`earlyexit.resume`), saved
    every few minutes: a run that finds it carries on from where it was saved, so a training
    longer than one session can be finished in the next. It needs eager steps (not a CUDA graph).
    The log then says which machine trained which steps (``segments``).
    """
    if not isinstance(data, TextSplits):
        raise TypeError(f"data must be the TextSplits of earlyexit.text.make_splits, got {type(data).__name__}")
    tokens, window = data.train, config.context + 1
    if len(tokens) <= window:
        raise ValueError(f"the training text has {len(tokens)} tokens, fewer than one window of {window}")
    steps = config.steps if stop_after is None else min(check_int("stop_after", stop_after), config.steps)
    device = resolve_device(device)
    seed_everything(config.seed)
    model = EarlyExitLM(config).to(device)  # initialised on the CPU, as on every device
    draw = _WindowDrawer(tokens, window, config)
    every = max(1, config.steps // LOG_POINTS)
    start = time.perf_counter()
    bar = tqdm(total=steps, unit="step", mininterval=1.0, desc=f"LM seed {config.seed}",
               disable=not progress_enabled(progress))
    model.train()
    graphed = device.type == "cuda" and cuda_graph
    if graphed and resume is not None:
        raise ValueError("resume needs eager steps: pass cuda_graph=False to resume on a GPU")
    saver = None if resume is None else Resumable(resume, config.as_json(), config.steps)
    if graphed:
        losses, segments = _train_graphed(model, config, draw, steps, every, bar), []
    else:
        losses, segments = _train_eager(model, config, draw, steps, every, bar, device, saver)
    bar.close()
    seconds = time.perf_counter() - start if saver is None else saver.seconds()
    model = model.cpu().eval()
    accuracy = exit_accuracy(model, data.validation, data.validation_kinds, len(KINDS))
    log = {"loss_every": every, "loss": losses, "steps": steps, "validation_scored_with": "exit_logits_over",
           "validation_accuracy": {kind: [None if math.isnan(a) else round(float(a), 5) for a in accuracy[:, k]]
                                   for k, kind in enumerate(KINDS)}}  # None: a kind the text lacks
    if len(segments) > 1:
        log["segments"] = segments  # resumed: which machine trained from which step
    return TrainedLM(model, config, log, seconds)


def train_lm_cached(config: LMConfig, data: TextSplits, progress: bool | None = None,
                    cache_dir: str | Path | None = None) -> TrainedLM:
    """``config``'s model: shipped with the book (verified), else cached on this machine, else trained and cached."""
    def fresh() -> tuple[nn.Module, dict, float]:
        trained = train_lm(config, data, progress)
        return trained.model, trained.log, trained.train_seconds

    loaded = load_or_train(config.name(), "lm", config.as_json(), lambda: EarlyExitLM(config), fresh,
                           cache=Path(cache_dir) if cache_dir is not None else None)
    return TrainedLM(loaded.model, config, loaded.log or {}, loaded.train_seconds, loaded.source != "trained")


class _WindowDrawer:
    """The training batches: ``batch_size`` random windows of ``context + 1`` tokens per step, drawn
    one step at a time from the seeded generator (the same windows, in the same order, however
    many steps are drawn at once)."""

    def __init__(self, tokens: torch.Tensor, window: int, config: LMConfig) -> None:
        self.windows = tokens.unfold(0, window, 1)  # every window, as a view: row s is tokens[s:s + window]
        self.count, self.batch_size = len(tokens) - window, config.batch_size
        self.generator = torch.Generator().manual_seed(config.seed)

    def one(self) -> torch.Tensor:
        """The next batch, (batch_size, window)."""
        return self.windows[torch.randint(self.count, (self.batch_size,), generator=self.generator)]

    def __call__(self, steps: int = 1) -> torch.Tensor:
        """The next ``steps`` batches, (steps, batch_size, window)."""
        return torch.stack([self.one() for _ in range(steps)])


WEIGHT_DECAY = 0.01  # AdamW's, in every training loop of the language models


def _adamw(params: list, lr: float | torch.Tensor, **options: object) -> torch.optim.AdamW:
    return torch.optim.AdamW(params, lr=lr, weight_decay=WEIGHT_DECAY, **options)


def _mean_loss(losses: list[float], total: float, every: int) -> None:
    """Log the mean training loss of the last ``every`` steps."""
    losses.append(round(total / every, 5))


def _schedule(optimiser: torch.optim.Optimizer, config: LMConfig) -> torch.optim.lr_scheduler.OneCycleLR:
    return torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=config.lr, total_steps=config.steps)


def _train_eager(model: EarlyExitLM, config: LMConfig, draw: _WindowDrawer, steps: int, every: int,
                 bar: tqdm, device: torch.device, saver: Resumable | None = None
                 ) -> tuple[list[float], list[dict[str, Any]]]:
    """The training steps, one at a time; the logged losses and, if resumed, each session's first step."""
    optimiser = _adamw(list(model.parameters()), config.lr)
    schedule = _schedule(optimiser, config)
    done = Progress() if saver is None else saver.restore(model, optimiser, schedule, draw.generator, device)
    bar.update(done.step)
    for step in range(done.step, steps):
        batch = draw.one().to(device)
        loss = early_exit_loss(model(batch[:, :-1]), batch[:, 1:], config.exit_weights)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        schedule.step()
        done.running += float(loss.detach())
        if (step + 1) % every == 0:
            _mean_loss(done.losses, done.running, every)
            done.running = 0.0
        done.step = step + 1
        if saver is not None:
            saver.save(model, optimiser, schedule, draw.generator, force=done.step == steps)
        bar.update()
    return done.losses, done.segments


GRAPH_CHUNK = 512  # steps of windows copied to the GPU at once
GRAPH_WARMUP = 3  # eager steps before capture (on a side stream, as CUDA graphs require)


def _flat_parameters(model: nn.Module) -> nn.Parameter:
    """Every parameter of ``model`` moved into one flat parameter (returned), each parameter's data
    and gradient becoming views of it and of its gradient: AdamW's update, elementwise, then takes
    a few kernels instead of a few per parameter. Backward adds into the views, so zero the flat
    gradient before each backward (instead of setting gradients to None)."""
    params = list(model.parameters())
    flat = nn.Parameter(torch.cat([p.detach().reshape(-1) for p in params]))
    flat.grad = torch.zeros_like(flat)
    offset = 0
    for p in params:
        p.data = flat.data[offset:offset + p.numel()].view_as(p)
        p.grad = flat.grad[offset:offset + p.numel()].view_as(p)
        offset += p.numel()
    return flat


def _train_graphed(model: EarlyExitLM, config: LMConfig, draw: _WindowDrawer, steps: int, every: int,
                   bar: tqdm) -> list[float]:
    """:func:`_train_eager`'s steps on a GPU, each replayed as one CUDA graph.

    A graph replays fixed memory, so the learning rate and AdamW's first beta (which the one-cycle
    schedule moves every step) live in GPU tensors refilled before each step from a schedule
    stepped on a stand-in optimiser: OneCycleLR would replace a tensor beta with a float, which
    the graph would never see. The batch is copied into one fixed tensor, and the parameters are
    one flat tensor (:func:`_flat_parameters`): the same AdamW, elementwise, in a few kernels.
    """
    device = next(model.parameters()).device
    stand_in = _adamw([torch.zeros(1, requires_grad=True)], config.lr)
    schedule, group = _schedule(stand_in, config), stand_in.param_groups[0]
    lr = torch.tensor(float(group["lr"]), device=device)
    beta1 = torch.tensor(float(group["betas"][0]), device=device)
    flat = _flat_parameters(model)
    optimiser = _adamw([flat], lr, capturable=True, foreach=False)
    # only beta1 moves; a tensor beta2 (AdamW wants both or neither) would be read back to the host,
    # which capture forbids, and so would either in the multi-tensor path (foreach=False)
    optimiser.param_groups[0]["betas"] = (beta1, optimiser.param_groups[0]["betas"][1])
    batch = torch.zeros((config.batch_size, config.context + 1), dtype=torch.long, device=device)
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)

    def one_step() -> None:
        flat.grad.zero_()
        loss = _weighted_loss(model._exits(model._embed(batch[:, :-1])), batch[:, 1:], config.exit_weights)
        loss.backward()
        optimiser.step()
        loss_sum.add_(loss.detach().double())

    graph, side, losses = torch.cuda.CUDAGraph(), torch.cuda.Stream(), []
    chunk = batch[None]  # replaced at step 0
    for step in range(steps):
        if step % GRAPH_CHUNK == 0:
            chunk = draw(min(GRAPH_CHUNK, steps - step)).to(device)
        batch.copy_(chunk[step % GRAPH_CHUNK])
        lr.fill_(float(group["lr"]))
        beta1.fill_(float(group["betas"][0]))
        if step < GRAPH_WARMUP:
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                one_step()
            torch.cuda.current_stream().wait_stream(side)
        else:
            if step == GRAPH_WARMUP:  # capture records the step without running it
                with torch.cuda.graph(graph):
                    one_step()
            graph.replay()
        stand_in.step()  # no gradients: only keeps the schedule's bookkeeping in order
        schedule.step()
        if (step + 1) % every == 0:
            _mean_loss(losses, float(loss_sum), every)
            loss_sum.zero_()
        bar.update()
    torch.cuda.synchronize(device)
    return losses


@torch.no_grad()
def exit_logits_over(model: EarlyExitLM, tokens: torch.Tensor) -> list[torch.Tensor]:
    """Every exit's logits for the next token at every position of a text: a list (one per layer)
    of (len(tokens) - 1, vocab) tensors, row i predicting ``tokens[i + 1]``.

    The text is longer than the model's context, so it is read in overlapping windows, and every
    prediction but the text's first ones sees at least half a context of the text before it.
    Windows that do not overlap would predict each window's first tokens blind (a line whose
    question lies in the window before), which caps any score well below what the model can do.
    """
    check_type("model", model, EarlyExitLM, "an EarlyExitLM")
    tokens = check_token_ids("tokens", tokens, len(VOCAB), 1)
    if len(tokens) < 2:
        raise ValueError(f"tokens must hold at least 2 tokens, got {len(tokens)}")
    context = model.config.context
    warm = context // 2  # the text each scored prediction sees before it, at least
    stride = context - warm
    spans = []  # (start, window length, first row scored, last row scored)
    for start in range(0, len(tokens) - 1, stride):
        length = min(context, len(tokens) - start)
        first = 0 if start == 0 else warm  # rows already predicted by the window before
        if first >= length or start + first >= len(tokens) - 1:
            break
        last = min(length, len(tokens) - 1 - start)  # row i predicts tokens[start + i + 1]
        spans.append((start, length, first, last))
    pieces: list[list[torch.Tensor]] = [[] for _ in range(model.num_layers)]
    with torch.no_grad():  # windows of one length (all but the last), up to 64 in one batch
        for _, same in itertools.groupby(spans, key=lambda span: span[1]):
            same = list(same)
            for i in range(0, len(same), 64):
                batch = same[i:i + 64]
                windows = torch.stack([tokens[a:a + n] for a, n, _, _ in batch])
                for layer, logits in enumerate(model(windows)):
                    pieces[layer] += [logits[j, first:last] for j, (_, _, first, last) in enumerate(batch)]
    return [torch.cat(p) for p in pieces]


def exit_accuracy(model: EarlyExitLM, tokens: torch.Tensor, kinds: torch.Tensor, num_kinds: int) -> torch.Tensor:
    """Next-token accuracy of every exit on a text, per kind of the predicted token: a (layers,
    kinds) tensor, each prediction made with context before it (:func:`exit_logits_over`).

    ``tokens`` is one text (a 1-D tensor of token ids, not a batch), ``kinds`` the kind of every
    token (``0`` to ``num_kinds - 1``, as long as ``tokens``). A kind that never occurs among the
    predicted tokens has no accuracy: its column is NaN, not 0.0 (which would read as "always wrong").
    """
    check_type("model", model, EarlyExitLM, "an EarlyExitLM")
    num_kinds = check_int("num_kinds", num_kinds)
    tokens = check_token_ids("tokens", tokens, len(VOCAB), 1)
    kinds = check_token_ids("kinds", kinds, num_kinds, 1, "kind indices")
    if len(kinds) != len(tokens) or len(tokens) < 2:
        raise ValueError(f"tokens and kinds must be as long as each other, at least 2 tokens; "
                         f"got {len(tokens)} and {len(kinds)}")
    targets, target_kinds = tokens[1:], kinds[1:]
    right = torch.stack([torch.bincount(target_kinds, weights=(logits.argmax(-1) == targets).float(),
                                        minlength=num_kinds) for logits in exit_logits_over(model, tokens)])
    count = torch.bincount(target_kinds, minlength=num_kinds).float()
    return torch.where(count > 0, right / count.clamp(min=1), math.nan)
