"""Generating text with an early-exit transformer (Part V): greedy decoding with and without a KV
cache, per-token early exit and the keys and values it leaves missing, and self-speculative
decoding.

Every function decodes greedily (the most likely next token, no sampling) from one prompt,
one sequence at a time, and returns the generated token ids with a :class:`DecodeStats` that
counts the work done, in *layer-positions*: one layer run for one position.

* :func:`greedy` runs the full model for every token, with or without a KV cache.
* :func:`early_exit_generate` leaves at the first layer whose exit is confident enough
  (max softmax above a threshold). The layers above that one then hold no keys and values
  for this position, which later positions attend to: ``missing="error"`` raises
  :class:`MissingKVError` when that happens, ``"copy"`` fills them at once from the exited
  hidden state (CALM's state copying: only the key and value projections run), and
  ``"recompute"`` runs the skipped layers for those positions later, batched with the next
  token that goes that deep.
* :func:`sums_right` asks a model questions ``"a+b="`` and checks its greedy answers.
* :func:`speculative_generate` drafts ``k`` tokens with the first ``draft_layers`` layers
  (their own KV cache), verifies them in one pass of the full model, and keeps the longest
  agreeing prefix plus the full model's next token: the output is the full model's greedy
  output, for fewer full passes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import torch

from .checks import check_bool, check_int, check_token_ids, check_type
from .exits import check_threshold
from .text import decode, encode
from .transformer import EarlyExitLM, KVCache

MISSING = ("error", "copy", "recompute")


class MissingKVError(RuntimeError):
    """A position attends to a layer that holds no keys and values for an earlier position (it exited)."""


@dataclass
class DecodeStats:
    """What a generation computed: full layer-positions, key-value projections alone, passes, drafts."""

    layer_positions: int = 0  # one transformer layer run for one position
    kv_projections: int = 0  # keys and values computed for one position of one layer, nothing else
    passes: int = 0  # calls into the model (each a forward over one or more positions)
    exit_layers: list[int] = field(default_factory=list)  # per generated token, 1-based
    drafted: int = 0
    accepted: int = 0


def _check_prompt(model: EarlyExitLM, prompt: torch.Tensor, steps: int) -> torch.Tensor:
    """The prompt as a 1-D int64 tensor. One sequence of token ids: 1-D, or a batch of one; a batch of
    several prompts is refused (every function here decodes one sequence), never flattened into one."""
    check_type("model", model, EarlyExitLM, "an EarlyExitLM")
    prompt = check_token_ids("prompt", prompt, model.token.num_embeddings, (1, 2))
    if prompt.ndim == 2:
        if len(prompt) != 1:
            raise ValueError(f"prompt must be one sequence of token ids, got a batch of {len(prompt)} "
                             f"(shape {tuple(prompt.shape)}): decode the prompts one at a time")
        prompt = prompt[0]
    check_int("steps", steps, 0)
    if len(prompt) == 0:
        raise ValueError("the prompt needs at least one token")
    if len(prompt) + steps > model.config.context:
        raise ValueError(f"a prompt of {len(prompt)} tokens and {steps} more exceed the model's context "
                         f"of {model.config.context}")
    return prompt


def _layers(model: EarlyExitLM, x: torch.Tensor, cache: KVCache, start: int, stop: int) -> torch.Tensor:
    for layer in range(start, stop):
        x = model.blocks[layer](x, cache, layer)
    return x


@torch.no_grad()
def greedy(model: EarlyExitLM, prompt: torch.Tensor, steps: int, cache: bool = True) -> tuple[list[int],
                                                                                            DecodeStats]:
    """The full model's greedy continuation of ``prompt``: with a KV cache (one new position per
    step), or without one (the whole sequence again at every step)."""
    ids = _check_prompt(model, prompt, steps).tolist()
    stats, layers = DecodeStats(), model.num_layers
    kv = KVCache(layers) if check_bool("cache", cache) else None
    for _ in range(steps):
        if kv is None:
            sequence = torch.tensor([ids])
            x = _layers(model, model.embed(sequence), KVCache(layers), 0, layers)
            stats.layer_positions += layers * len(ids)
        else:
            start = kv.length(0)
            x = _layers(model, model.embed(torch.tensor([ids[start:]]), start), kv, 0, layers)
            stats.layer_positions += layers * (len(ids) - start)
        stats.passes += 1
        ids.append(int(model.exit_logits(x[0, -1]).argmax()))
        stats.exit_layers.append(layers)
    return ids[-steps:] if steps else [], stats


_QUESTION = re.compile(r"(\d+)\+(\d+)=")


def sums_right(model: EarlyExitLM, questions: list[str]) -> torch.Tensor:
    """Whether the model's greedy continuation of each question ``"a+b="`` is the sum and the
    line's end, ``f"{a + b};"``: one bool per question."""
    right = []
    for question in check_type("questions", questions, list, "a list of strings like '12+34='"):
        match = _QUESTION.fullmatch(question) if isinstance(question, str) else None
        if match is None:
            raise ValueError(f"a question must read 'a+b=' with whole numbers a and b, got {question!r}")
        answer = f"{int(match[1]) + int(match[2])};"
        right.append(decode(greedy(model, encode(question), len(answer))[0]) == answer)
    return torch.tensor(right, dtype=torch.bool)


@torch.no_grad()
def early_exit_generate(model: EarlyExitLM, prompt: torch.Tensor, steps: int, threshold: float,
                        missing: str = "recompute") -> tuple[list[int], DecodeStats]:
    """Greedy decoding in which each token leaves at the first layer whose exit's max softmax is
    above ``threshold`` (the last layer takes every token); see the module for ``missing``.

    The prompt runs through every layer, so the first generated token comes from the last one.
    """
    if missing not in MISSING:
        raise ValueError(f"missing must be one of {MISSING}, got {missing!r}")
    threshold = check_threshold(threshold)
    prompt = _check_prompt(model, prompt, steps)
    layers, stats, kv = model.num_layers, DecodeStats(), KVCache(model.num_layers)
    states = _layers(model, model.embed(prompt[None]), kv, 0, layers)[0]  # each position's latest state
    stats.layer_positions += layers * len(prompt)
    stats.passes += 1
    logits, exit_layer, generated = model.exit_logits(states[-1]), layers, []
    for step in range(steps):
        generated.append(int(logits.argmax()))
        stats.exit_layers.append(exit_layer)
        if step == steps - 1:
            break
        position = len(prompt) + step
        states = torch.cat([states, model.embed(torch.tensor([generated[-1:]]), position)[0]])
        stats.passes += 1
        for layer in range(layers):
            lag = kv.length(layer)
            if lag < position and missing == "error":
                raise MissingKVError(f"position {position} needs layer {layer + 1}'s keys and values for "
                                     f"positions {lag} to {position - 1}, which left at an earlier exit")
            # run this layer for the new position and any earlier ones that skipped it, in one batch
            states[lag:position + 1] = model.blocks[layer](states[None, lag:position + 1], kv, layer)[0]
            stats.layer_positions += position + 1 - lag
            logits = model.exit_logits(states[position])
            if layer == layers - 1 or float(logits.softmax(-1).max()) > threshold:
                break
        exit_layer = layer + 1
        if missing == "copy":  # fill the skipped layers' keys and values from the exited state
            for skipped in range(layer + 1, layers):
                _project_kv(model.blocks[skipped], states[position], kv, skipped)
                stats.kv_projections += 1
    return generated, stats


def _project_kv(block: torch.nn.Module, hidden: torch.Tensor, kv: KVCache, layer: int) -> None:
    """Append one position's keys and values at ``layer``, computed from ``hidden`` alone."""
    attention = block.attention
    width = hidden.shape[-1]
    _, k, v = attention.qkv(block.norm1(hidden[None, None])).split(width, 2)
    shape = (1, 1, attention.heads, width // attention.heads)
    kv.append(layer, k.view(shape).transpose(1, 2), v.view(shape).transpose(1, 2))


@torch.no_grad()
def speculative_generate(model: EarlyExitLM, prompt: torch.Tensor,
                         steps: int, draft_layers: int, k: int,
                         stop_below: float | None = None
                         ) -> tuple[list[int], DecodeStats]:
    """Self-speculative greedy decoding: the same tokens as :func:`greedy`,
    in fewer full passes.

    With ``stop_below``, a round stops drafting after a draft whose max
    softmax is not above it (the draft is unsure: the next ones would likely
    be rejected), so rounds draft up to ``k`` tokens.
    """
    check_type("model", model, EarlyExitLM, "an EarlyExitLM")
    layers = model.num_layers
    check_int("draft_layers", draft_layers)
    check_int("k", k)
    stop = None if stop_below is None else check_threshold(stop_below,
                                                           "stop_below")
    if draft_layers >= layers:
        raise ValueError(f"draft_layers must be fewer than the model's "
                         f"{layers} layers, got {draft_layers}")
    ids = _check_prompt(model, prompt, steps).tolist()
    goal = len(ids) + steps
    full, draft, stats = KVCache(layers), KVCache(draft_layers), DecodeStats()
    while len(ids) < goal:
        # Draft: catch the draft cache up with the sequence, then k tokens
        # through the first layers.
        drafted = []
        for _ in range(min(k, goal - len(ids))):
            sequence = ids + drafted
            start = draft.length(0)
            x = model.embed(torch.tensor([sequence[start:]]), start)
            x = _layers(model, x, draft, 0, draft_layers)
            stats.layer_positions += draft_layers * (len(sequence) - start)
            stats.passes += 1
            logits = model.exit_logits(x[0, -1])
            drafted.append(int(logits.argmax()))
            if stop is not None and not float(logits.softmax(-1).max()) > stop:
                break
        # Verify: every undone position and every draft through the full
        # model, in one pass.
        start = full.length(0)
        pending = ids[start:] + drafted
        x = model.embed(torch.tensor([pending]), start)
        x = _layers(model, x, full, 0, layers)
        stats.layer_positions += layers * len(pending)
        stats.passes += 1
        first = len(pending) - len(drafted) - 1
        best = model.exit_logits(x[0]).argmax(-1).tolist()[first:]
        accepted = 0
        while accepted < len(drafted) and drafted[accepted] == best[accepted]:
            accepted += 1
        ids += drafted[:accepted] + [best[accepted]]
        stats.drafted += len(drafted)
        stats.accepted += accepted
        # Forget what the rejected drafts left in both caches.
        full.truncate(len(ids) - 1)
        draft.truncate(min(draft.length(0), len(ids) - 1))
    return ids[goal - steps:goal], stats
