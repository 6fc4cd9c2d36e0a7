"""Argument and file checks shared by every module: one place for what the package refuses.

Each check raises a ``ValueError`` (or a ``TypeError`` for a value of the wrong kind) whose
message names the argument and the value it got, so that a wrong call fails at the door
with a sentence, not deep inside torch with a shape or dtype error. Nothing is silently
truncated, flattened or coerced. A file the package reads is refused the same way, with an
error that names the file and what is wrong with it (:func:`read_json_file`, :func:`damaged_file`).
"""

from __future__ import annotations

import json
import math
import numbers
from pathlib import Path

import torch


def check_int(name: str, value: object, minimum: int = 1, maximum: int | None = None) -> int:
    """``value`` if it is an int (not a bool) of at least ``minimum`` (and at most ``maximum``);
    a ValueError naming ``name`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum \
            or (maximum is not None and value > maximum):
        bound = f">= {minimum}" if maximum is None else f"from {minimum} to {maximum}"
        raise ValueError(f"{name} must be an int {bound}, got {value!r}")
    return value


SEED_MAX = 2**63 - 1  # the largest seed every generator the package uses accepts (torch's, NumPy's)


def check_seed(name: str, value: object) -> int:
    """``value`` if it is an int from 0 to ``SEED_MAX`` (2**63 - 1) (a seed); a ValueError naming ``name`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= SEED_MAX:
        raise ValueError(f"{name} must be an int >= 0 (a seed, at most 2**63 - 1), got {value!r}")
    return value


def check_type(name: str, value: object, kind: type | tuple[type, ...], what: str) -> object:
    """``value`` if it is an instance of ``kind``; a TypeError naming ``name`` and ``what`` was expected otherwise."""
    if not isinstance(value, kind):
        raise TypeError(f"{name} must be {what}, got {type(value).__name__}")
    return value


def check_bool(name: str, value: object) -> bool:
    """``value`` if it is True or False; a TypeError naming ``name`` otherwise (no truthy strings or numbers)."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return value


def check_number(name: str, value: object, low: float = 0.0, high: float = math.inf,
                 open_low: bool = False, open_high: bool = False) -> float:
    """``value`` as a float if it is a finite real number (Python's, NumPy's, or a one-element tensor)
    in [low, high] (ends excluded where asked); a ValueError naming ``name`` otherwise."""
    if isinstance(value, torch.Tensor) and value.numel() == 1 and not value.is_complex():
        value = float(value.detach())  # a loss that still carries its graph is fine to read
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) \
            or value < low or value > high or (open_low and value == low) or (open_high and value == high):
        left, right = "(" if open_low else "[", ")" if open_high else "]"
        bound = f" in {left}{low}, {high}{right}" if high < math.inf \
            else (f" > {low}" if open_low else f" >= {low}") if low > -math.inf else ""
        raise ValueError(f"{name} must be a finite number{bound}, got {value!r}")
    return float(value)


def _tensor(name: str, values: object, dtype: torch.dtype | None = None, ndim: int | None = None) -> torch.Tensor:
    """``values`` as a tensor; with ``ndim``, only if it has that many dimensions (no silent flattening)."""
    if isinstance(values, torch.Tensor):
        tensor = values.detach()
    else:
        try:
            tensor = torch.as_tensor(values, dtype=dtype)
        except (TypeError, ValueError, RuntimeError):
            raise TypeError(f"{name} must be a tensor or a sequence of numbers, got {type(values).__name__}") \
                from None
    if ndim is not None and tensor.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {tuple(tensor.shape)} (it is not flattened)")
    return tensor


def _as_tensor(name: str, values: object, dtype: torch.dtype | None = None,
               ndim: int | None = None) -> torch.Tensor:
    return _tensor(name, values, dtype, ndim).flatten()


def check_flags(name: str, values: object, ndim: int | None = None) -> torch.Tensor:
    """``values`` as a flat boolean tensor, if it holds only booleans or the numbers 0 and 1
    (one right/wrong flag per sample); a TypeError or ValueError naming ``name`` otherwise.

    Class indices are refused, not read as "right": ``tensor([3, 0])`` is not a flag per sample.
    With ``ndim``, values of another number of dimensions are refused rather than flattened.
    """
    flags = _as_tensor(name, values, ndim=ndim)
    if flags.dtype == torch.bool:
        return flags
    if flags.is_complex() or not ((flags == 0) | (flags == 1)).all():
        other = flags[~((flags == 0) | (flags == 1))][:3].tolist()
        raise ValueError(f"{name} must hold one right/wrong flag per sample (booleans, or 0 and 1), "
                         f"got values such as {other}")
    return flags.bool()


def check_real(name: str, values: object, ndim: int | None = None,
               list_dtype: torch.dtype | None = torch.float64) -> torch.Tensor:
    """``values`` as a flat tensor of real numbers (NaN and infinities allowed), in its own floating-point
    dtype (integers become float64; a list becomes ``list_dtype``, None for torch's default); a TypeError
    (or ValueError, for another number of dimensions than ``ndim``) naming ``name`` otherwise."""
    tensor = _as_tensor(name, values, None if isinstance(values, torch.Tensor) else list_dtype, ndim)
    if tensor.is_complex() or tensor.dtype == torch.bool:
        raise TypeError(f"{name} must hold real numbers, got dtype {tensor.dtype}")
    return tensor if tensor.is_floating_point() else tensor.double()


def check_finite(name: str, values: object, ndim: int | None = None) -> torch.Tensor:
    """``values`` as a flat float64 tensor, if every entry is a finite real number; a ValueError
    (or TypeError) naming ``name`` and how many entries are NaN or infinite otherwise.
    With ``ndim``, values of another number of dimensions are refused rather than flattened."""
    tensor = check_real(name, values, ndim).double()
    bad = int((~torch.isfinite(tensor)).sum())
    if bad:
        raise ValueError(f"{name} must hold finite numbers; {bad} of {len(tensor)} are NaN or infinite")
    return tensor


def check_token_ids(name: str, ids: object, vocab_size: int, ndim: int | tuple[int, ...],
                    what: str = "token ids", first: int = 0) -> torch.Tensor:
    """``ids`` as an int64 tensor of indices from ``first`` to ``vocab_size - 1`` (``what`` they are:
    token ids by default), of ``ndim`` dimensions (one of them, for a tuple); a TypeError or
    ValueError naming ``name`` otherwise.

    Floating-point and boolean ids are refused, not truncated; a batch is not flattened.
    """
    tensor = _tensor(name, ids)
    if not isinstance(ids, torch.Tensor) and tensor.numel() == 0:
        tensor = tensor.long()  # torch reads an empty list as float32: it holds no float
    if tensor.is_floating_point() or tensor.is_complex() or tensor.dtype == torch.bool:
        raise TypeError(f"{name} must hold integer {what}, got dtype {tensor.dtype}")
    dims = (ndim,) if isinstance(ndim, int) else ndim
    if tensor.ndim not in dims:
        shapes = " or ".join(f"{d}-D" for d in dims)
        raise ValueError(f"{name} must be a {shapes} tensor of {what}, got shape {tuple(tensor.shape)}")
    if tensor.numel():
        low, high = (int(v) for v in torch.aminmax(tensor))
        if low < first or high >= vocab_size:
            raise ValueError(f"{name} must hold {what} from {first} to {vocab_size - 1}, "
                             f"got values from {low} to {high}")
    return tensor.long()


def damaged_file(path: str | Path, what: str, problem: str) -> ValueError:
    """The error for a file the package cannot use: it names the file, what it should be, and what is wrong."""
    return ValueError(f"{path}: this {what} {problem}")


def read_json_file(path: str | Path, what: str, expect: type | None = dict) -> object:
    """The JSON in ``path`` (a ``what``, e.g. "results file"), if it is a ``expect`` (a JSON object by
    default); a ValueError naming the file and what is wrong with it otherwise (empty, not UTF-8,
    not JSON, truncated, or of another structure). A missing file raises FileNotFoundError."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise damaged_file(path, what, f"is not UTF-8 text ({error.reason} at byte {error.start})") from None
    if not text.strip():
        raise damaged_file(path, what, "is empty")
    try:
        payload = json.loads(text)
    except json.JSONDecodeError as error:
        raise damaged_file(path, what, f"is not valid JSON (damaged or truncated: {error})") from None
    if expect is not None and not isinstance(payload, expect):
        raise damaged_file(path, what, f"must hold a JSON {_JSON_KINDS.get(expect, expect.__name__)}, "
                                       f"got a JSON {_JSON_KINDS.get(type(payload), type(payload).__name__)}")
    return payload


_JSON_KINDS = {dict: "object", list: "array", str: "string", int: "number", float: "number", bool: "boolean",
               type(None): "null"}
