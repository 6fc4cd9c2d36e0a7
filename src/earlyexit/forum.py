"""The forum thread the book starts from, and the numbers its poster printed.

``forum_output.txt`` beside this module is the poster's printed ``Conf`` and ``Pred``
tensors, copied verbatim from the thread: the poster's numbers, from the poster's own model
and data, kept apart from anything the book computes.
"""

from __future__ import annotations

import re
from importlib.resources import files

import torch

from .checks import damaged_file

THREAD_TITLE = "How to implement an early exiting mechanism in a Neural network"

_NUMBER = re.compile(r"\d+\.\d+")


POSTER_SAMPLES = 100  # the poster printed one batch of 100 images


def poster_output() -> tuple[torch.Tensor, torch.Tensor]:
    """The poster's 100 confidences (shape (100,)) and 100 x 10 class probabilities, as printed in the thread.

    A damaged copy of ``forum_output.txt`` (not one "Pred:" part, or another count of numbers)
    raises a ValueError naming the file.
    """
    path = files("earlyexit").joinpath("forum_output.txt")
    parts = path.read_text().split("Pred:")
    confidences = [float(v) for v in _NUMBER.findall(parts[0])]
    probabilities = [float(v) for v in _NUMBER.findall(parts[-1])]
    if len(parts) != 2 or len(confidences) != POSTER_SAMPLES or len(probabilities) != POSTER_SAMPLES * 10:
        raise damaged_file(path, "copy of the poster's output", f"must hold {POSTER_SAMPLES} confidences, then "
                           f"'Pred:' and {POSTER_SAMPLES} x 10 probabilities; it has {len(parts) - 1} 'Pred:', "
                           f"{len(confidences)} and {len(probabilities) if len(parts) == 2 else 0} numbers")
    return torch.tensor(confidences), torch.tensor(probabilities).reshape(-1, 10)
