"""The forum thread the book starts from, and the numbers its poster printed.

``forum_output.txt`` beside this module is the poster's printed ``Conf`` and ``Pred``
tensors, copied verbatim from the thread: the poster's numbers, from the poster's own model
and data, kept apart from anything the book computes.
"""

from __future__ import annotations

import re
from importlib.resources import files

import torch

THREAD_TITLE = "How to implement an early exiting mechanism in a Neural network"

_NUMBER = re.compile(r"\d+\.\d+")


def poster_output() -> tuple[torch.Tensor, torch.Tensor]:
    """The poster's 100 confidences (shape (100,)) and 100 x 10 class probabilities, as printed in the thread."""
    text = files("earlyexit").joinpath("forum_output.txt").read_text()
    conf_text, pred_text = text.split("Pred:")
    confidences = torch.tensor([float(v) for v in _NUMBER.findall(conf_text)])
    probabilities = torch.tensor([float(v) for v in _NUMBER.findall(pred_text)]).reshape(-1, 10)
    return confidences, probabilities
