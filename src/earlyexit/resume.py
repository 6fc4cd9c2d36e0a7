"""Training that outlives a session: a run's whole state, saved every few minutes and restored.

Chapter 12's twelve-layer language model takes hours on two CPU cores, longer than one
working session. :class:`Resumable` keeps one file per run, rewritten every ``every_seconds``:
the weights, the optimiser's moments, the schedule's position, the batch drawer's generator,
the losses logged so far and which machine trained which steps. A run that finds the file
carries on from it; on the same machine the result is the weights an unbroken run gives, bit
for bit (``tests/test_resume.py``). The file is read with ``torch.load(weights_only=True)``,
so loading it runs no pickled code.
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .checkpoints import CheckpointError, machine
from .checks import check_number
from .utils import atomic_write

RESUME_FORMAT = 1


@dataclass
class Progress:
    """Where a run stands: the next step, the losses logged so far and the loss summed since."""

    step: int = 0
    losses: list[float] = field(default_factory=list)
    running: float = 0.0
    seconds: float = 0.0  # training time of the earlier sessions
    segments: list[dict[str, Any]] = field(default_factory=list)  # {"from_step", "machine"} per session


class Resumable:
    """The state of one run in ``path``, for a configuration given as a string (its JSON).

    Call :meth:`restore` once, after building the model, optimiser and schedule; :meth:`save`
    after every step (it writes only every ``every_seconds``, or when ``force``); :meth:`finish`
    when the run is shipped.
    """

    def __init__(self, path: str | Path, config: str, steps: int, every_seconds: float = 120.0) -> None:
        self.path, self.config, self.steps = Path(path), config, steps
        self.every = check_number("every_seconds", every_seconds)
        self.start = self.last = time.perf_counter()
        self.progress = Progress()

    def restore(self, model: nn.Module, optimiser: torch.optim.Optimizer,
                schedule: torch.optim.lr_scheduler.LRScheduler, generator: torch.Generator,
                device: torch.device | str = "cpu") -> Progress:
        """Load the saved state into the objects given and return the progress; a fresh
        :class:`Progress` when there is no file yet."""
        here = {"from_step": 0, "machine": machine(device)}
        if not self.path.is_file():
            self.progress = Progress(segments=[here])
            return self.progress
        try:
            state = torch.load(self.path, map_location="cpu", weights_only=True)
            if state["format"] != RESUME_FORMAT or state["config"] != self.config:
                raise CheckpointError(f"{self.path} holds a run of another configuration or format; delete it to "
                                      "start this run from step 0")
            if not 0 < state["step"] <= self.steps:
                raise ValueError(f"step {state['step']} is outside 1..{self.steps}")
            model.load_state_dict(state["model"])
            optimiser.load_state_dict(state["optimiser"])
            schedule.load_state_dict(state["schedule"])
            generator.set_state(state["generator"])
            torch.random.set_rng_state(state["rng"])
        except CheckpointError:
            raise
        except Exception as error:  # a truncated or tampered file: say which, never half-load it silently
            raise CheckpointError(f"{self.path} is damaged ({type(error).__name__}: {error}); delete it to start "
                                  "this run from step 0") from error
        here["from_step"] = state["step"]
        self.progress = Progress(state["step"], list(state["losses"]), state["running"], state["seconds"],
                                 list(state["segments"]) + [here])
        return self.progress

    def seconds(self) -> float:
        """Training time so far, this session's included."""
        return self.progress.seconds + time.perf_counter() - self.start

    def save(self, model: nn.Module, optimiser: torch.optim.Optimizer,
             schedule: torch.optim.lr_scheduler.LRScheduler, generator: torch.Generator,
             force: bool = False) -> bool:
        """Write the state (after ``self.progress.step`` steps) if ``every_seconds`` have passed (or
        ``force``); whether it wrote."""
        now, progress = time.perf_counter(), self.progress
        if not force and now - self.last < self.every:
            return False
        state = {"format": RESUME_FORMAT, "config": self.config, "step": progress.step,
                 "losses": list(progress.losses), "running": progress.running,
                 "seconds": self.seconds(), "segments": progress.segments,
                 "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
                 "optimiser": optimiser.state_dict(), "schedule": schedule.state_dict(),
                 "generator": generator.get_state(), "rng": torch.random.get_rng_state()}
        buffer = io.BytesIO()
        torch.save(state, buffer)
        atomic_write(self.path, buffer.getvalue())  # a kill while writing leaves the previous state
        self.last = now
        return True

    def finish(self) -> None:
        """The run is complete and shipped: remove its state."""
        self.path.unlink(missing_ok=True)
