"""Running exported graphs: ONNX Runtime sessions, one request at a time, latency per request, and a
queue (Chapters 8-9).

* :func:`session` opens an exported graph in ONNX Runtime (threads stated, no spinning);
  :func:`run_session` runs a routing graph on a batch, :func:`profile_by_operator` asks ORT's
  profiler where the time goes.

* :class:`BoundSession` is an ONNX Runtime session for one image whose input and outputs
  live in buffers bound once (ONNX Runtime's I/O binding): a call copies the image in and
  runs, with no per-call allocation of inputs or outputs.
* :class:`TwoStageServer` is early exit with the branch in the caller: the first stage
  (block 1, exit 1 and the score) for every image, the second stage only for the images that
  go on, reading the first stage's features from its output buffer without a copy.
  :class:`OneGraphServer` runs any single graph (the full network, the one-image ``If``
  graph, the routing graph) the same way, so that all of them pay the same call overhead.
* :func:`request_latencies` times requests one by one, the servers interleaved request by
  request; :func:`latency_summary` gives percentiles with bootstrap intervals.
* :func:`simulate_queue` replays measured service times in a single-server queue with
  random (Poisson) arrivals: what a service with a latency target would see under load.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy import stats

from .checks import (
    check_bool,
    check_finite,
    check_int,
    check_number,
    check_seed,
    check_type,
    damaged_file,
    read_json_file,
)
from .exits import check_threshold
from .export import EarlyExitModule
from .inference import EarlyExitResult, check_finite_images
from .models import IMAGE_SHAPE
from .stats import LEVEL, Interval

ONE_IMAGE = (1, *IMAGE_SHAPE)


def session(path: str | Path, threads: int = 1, optimization: str = "all", profile: bool = False):
    """An ONNX Runtime CPU session with ``threads`` intra-op threads (an int >= 1: ONNX Runtime would
    read 0 as "every core").

    Spinning is off: by default ORT's idle threads keep spinning after a run, which on a
    small machine steals the cores from whatever runs next (another session, PyTorch).
    ``optimization`` is "disable", "basic", "extended" or "all" (graph optimisation level).
    A missing file raises FileNotFoundError, a damaged one a ValueError, both naming the file.
    """
    import onnxruntime as ort

    check_int("threads", threads)
    check_bool("profile", profile)
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such ONNX file (export it with earlyexit.export.export_onnx)")
    level = ort.GraphOptimizationLevel
    levels = {"disable": level.ORT_DISABLE_ALL, "basic": level.ORT_ENABLE_BASIC,
              "extended": level.ORT_ENABLE_EXTENDED, "all": level.ORT_ENABLE_ALL}
    if optimization not in levels:
        raise ValueError(f"optimization must be one of {sorted(levels)}, got {optimization!r}")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = levels[optimization]
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.enable_profiling = profile
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as error:  # ONNX Runtime's own exception types derive from Exception only
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise damaged_file(path, "ONNX file", f"cannot be loaded ({reason}): export it again with "
                                              "earlyexit.export.export_onnx") from None


def check_session_io(sess, inputs: tuple[str, ...], outputs: tuple[str, ...], what: str) -> None:
    """A ValueError naming ``what`` unless ``sess`` (an ONNX Runtime session) takes ``inputs`` and gives
    ``outputs``, by name: a graph exported from another module is refused before it runs."""
    if not (hasattr(sess, "get_inputs") and hasattr(sess, "get_outputs")):
        raise TypeError(f"{what} must be an ONNX Runtime session (earlyexit.serving.session), "
                        f"got {type(sess).__name__}")
    got_in = tuple(i.name for i in sess.get_inputs())
    got_out = tuple(o.name for o in sess.get_outputs())
    if got_in != inputs or not set(outputs) <= set(got_out):
        raise ValueError(f"{what} must be a graph taking {list(inputs)} and giving {list(outputs)}, "
                         f"got one taking {list(got_in)} and giving {list(got_out)}")


def run_session(sess, images: torch.Tensor) -> EarlyExitResult:
    """Run an exported early-exit session (an :class:`~earlyexit.export.EarlyExitModule` graph) on a batch; results as
    :func:`~earlyexit.inference.route_batch` gives them."""
    check_session_io(sess, ("images",), EarlyExitModule.output_names, "sess")
    check_finite_images(images)
    logits, exit_number = sess.run(None, {"images": images.detach().cpu().contiguous().numpy()})
    logits, exit_number = torch.from_numpy(logits), torch.from_numpy(exit_number)
    return EarlyExitResult(logits.argmax(dim=1), exit_number, logits)


def profile_by_operator(sess, images: torch.Tensor, runs: int = 20) -> tuple[dict[str, float], float]:
    """Microseconds per run spent in each ONNX operator type, and in the whole run, from ORT's profiler.

    ``sess`` must have been created with ``profile=True``; it is ended here (profiling
    stops). The profiler costs time itself, per operator: compare operators with each
    other and with the profiled run, not with an unprofiled call. ``images`` are checked as
    :func:`run_session` checks them; ``runs`` is an int >= 1.
    """
    check_session_io(sess, ("images",), (), "sess")
    if not sess.get_session_options().enable_profiling:
        raise ValueError("sess must be created with profile=True (earlyexit.serving.session(path, profile=True))")
    check_int("runs", runs)
    check_finite_images(images)
    feed = {"images": images.detach().cpu().contiguous().numpy()}
    for _ in range(runs):
        sess.run(None, feed)
    trace = Path(sess.end_profiling())
    totals: dict[str, float] = defaultdict(float)
    run_total = 0.0
    for event in read_json_file(trace, "ONNX Runtime profile", list):
        if event.get("cat") == "Node" and event.get("name", "").endswith("_kernel_time"):
            totals[event["args"]["op_name"]] += event["dur"] / runs
        elif event.get("cat") == "Session" and event.get("name") == "model_run":
            run_total += event["dur"] / runs
    trace.unlink()
    return dict(sorted(totals.items(), key=lambda item: -item[1])), run_total


def one_image(image: np.ndarray | torch.Tensor) -> np.ndarray:
    """``image`` as a C-contiguous float32 array of shape (1, 1, 28, 28); a TypeError or ValueError otherwise."""
    if isinstance(image, torch.Tensor):
        if image.dtype != torch.float32:  # checked here: NumPy has no bfloat16 to convert to
            raise TypeError(f"image must be float32 (the exported graph's input), got {image.dtype}: "
                            "convert it with .float()")
        image = image.detach().cpu().numpy()
    if not isinstance(image, np.ndarray):
        raise TypeError(f"image must be a numpy array or a torch tensor, got {type(image).__name__}")
    if image.dtype != np.float32:
        raise TypeError(f"image must be float32 (the exported graph's input), got {image.dtype}: "
                        "convert it with .astype(np.float32)")
    if image.shape != ONE_IMAGE:
        raise ValueError(f"a server takes one image of shape {ONE_IMAGE}, got {image.shape}")
    if not np.isfinite(image).all():
        raise ValueError("image contains NaN or infinite values")
    return np.ascontiguousarray(image)


class BoundSession:
    """An ONNX Runtime session for batches of one, its input and outputs bound to fixed buffers.

    ``session(image)`` copies ``image`` into the input buffer, runs, and returns the output
    buffers by name (overwritten by the next call: copy what you keep).
    """

    def __init__(self, path: str | Path, threads: int = 1) -> None:
        self.session = session(path, threads=check_int("threads", threads))
        self.binding = self.session.io_binding()
        first = self.session.get_inputs()[0]
        self.input = np.zeros([1] + [int(d) for d in first.shape[1:]], np.float32)
        self.binding.bind_cpu_input(first.name, self.input)
        self.outputs: dict[str, np.ndarray] = {}
        for out in self.session.get_outputs():
            dtype = np.int64 if "int64" in out.type else np.float32
            shape = [1] + [int(d) if not isinstance(d, str) else 1 for d in out.shape[1:]]
            self.outputs[out.name] = buffer = np.zeros(shape, dtype)
            self.binding.bind_output(out.name, "cpu", 0, dtype, shape, buffer.ctypes.data)

    def bind_input(self, buffer: np.ndarray) -> None:
        """Read the input from ``buffer`` (e.g. another session's output) instead of the own input buffer."""
        self.input = buffer
        self.binding.bind_cpu_input(self.session.get_inputs()[0].name, buffer)

    def run(self) -> dict[str, np.ndarray]:
        """Run on whatever the input buffer holds."""
        self.session.run_with_iobinding(self.binding)
        return self.outputs

    def __call__(self, image: np.ndarray) -> dict[str, np.ndarray]:
        np.copyto(self.input, image)
        return self.run()


class OneGraphServer:
    """One exported graph, one image per call: ``server(image) -> (logits, exit number)``.

    For the full network the exit number is that of the last exit, ``last_exit``.
    """

    def __init__(self, path: str | Path, threads: int = 1, last_exit: int = 2, check: bool = True) -> None:
        self.bound = BoundSession(path, threads)
        check_session_io(self.bound.session, ("images",), ("logits",), str(path))
        self.last_exit, self.check = check_int("last_exit", last_exit), check_bool("check", check)

    def __call__(self, image: np.ndarray) -> tuple[np.ndarray, int]:
        out = self.bound(one_image(image) if self.check else image)
        exit_number = int(out["exit_number"][0]) if "exit_number" in out else self.last_exit
        return out["logits"].copy(), exit_number


class TwoStageServer:
    """Early exit for one image with the branch in the caller: stage 1 always, stage 2 when the
    image's score is not above ``threshold`` (float32, NaN goes on, as everywhere in the book).

    ``first`` is the :class:`~earlyexit.export.FirstStage` graph, ``second`` the
    :class:`~earlyexit.export.SecondStage` one; the two given the other way round are refused with
    a ValueError that says so (as is any other graph).
    """

    def __init__(self, first: str | Path, second: str | Path, threshold: float, threads: int = 1,
                 second_threads: int | None = None, check: bool = True) -> None:
        self.threshold = np.float32(check_threshold(threshold))
        self.check = check_bool("check", check)
        self.first = BoundSession(first, threads)
        self.second = BoundSession(second, threads if second_threads is None else second_threads)
        takes = [s.session.get_inputs()[0].name for s in (self.first, self.second)]
        if takes == ["features", "images"]:
            raise ValueError(f"the stage files are in swapped order: {first} is the second stage and {second} "
                             "the first; pass the first stage's file first")
        check_session_io(self.first.session, ("images",), ("logits", "score", "features"), f"first ({first})")
        check_session_io(self.second.session, ("features",), ("logits",), f"second ({second})")
        self.second.bind_input(self.first.outputs["features"])  # stage 2 reads stage 1's buffer

    def __call__(self, image: np.ndarray) -> tuple[np.ndarray, int]:
        out = self.first(one_image(image) if self.check else image)
        if out["score"][0] > self.threshold:
            return out["logits"].copy(), 1
        return self.second.run()["logits"].copy(), 2


def request_latencies(servers: dict[str, Callable[[np.ndarray], object]], images: Sequence[np.ndarray],
                      warmup: int = 20, passes: int = 1) -> dict[str, np.ndarray]:
    """Seconds per request for every server, request by request: each image goes to every server
    in turn (the order rotates), so a slow moment of the machine hits them alike.

    Returns one array per server, ``passes * len(images)`` long, in request order.
    """
    check_int("warmup", warmup, 0)
    check_int("passes", passes)
    check_type("servers", servers, dict, "a dict of name -> server")
    check_type("images", images, (list, tuple, np.ndarray, torch.Tensor), "a sequence of images")
    if not servers or len(images) == 0:
        raise ValueError("need at least one server and one image")
    for name, server in servers.items():
        if not callable(server):
            raise TypeError(f"servers[{name!r}] must be callable with one image, got {type(server).__name__}")
    names = list(servers)
    for name in names:
        for image in images[:warmup]:
            servers[name](image)
    clock = time.perf_counter_ns
    times: dict[str, list[int]] = {name: [] for name in names}
    for p in range(passes):
        for i, image in enumerate(images):
            shift = (i + p) % len(names)
            for name in names[shift:] + names[:shift]:
                server = servers[name]
                start = clock()
                server(image)
                times[name].append(clock() - start)
    return {name: np.asarray(values, dtype=np.float64) * 1e-9 for name, values in times.items()}


@dataclass(frozen=True)
class Percentile:
    """A latency percentile with a 95% bootstrap interval (seconds)."""

    q: float
    value: float
    low: float
    high: float

    def __str__(self) -> str:
        return f"{self.value * 1e6:.1f} µs ({self.low * 1e6:.1f}-{self.high * 1e6:.1f})"


def check_latencies(name: str, values: object, minimum: int = 1) -> np.ndarray:
    """``values`` as a 1-D float64 array of at least ``minimum`` times in seconds, every one finite
    and > 0 (a request takes time: a zero or negative latency is a measuring mistake); a ValueError
    (or TypeError) naming ``name`` otherwise. Every function of this module that takes measured
    times checks them here, the same way."""
    times = check_finite(name, values, ndim=1).numpy()
    if len(times) < minimum:
        raise ValueError(f"{name} must hold at least {minimum} time(s), got {len(times)}")
    if (times <= 0).any():
        raise ValueError(f"{name} must be times in seconds, every one > 0; got {int((times <= 0).sum())} "
                         f"that are not, such as {times[times <= 0][0]!r}")
    return times


def _requests(name: str, values: np.ndarray, passes: int) -> np.ndarray:
    """``passes`` rounds of the same requests, in order, as a (passes, requests) array."""
    passes = check_int("passes", passes)
    if len(values) % passes:
        raise ValueError(f"{name} holds {len(values)} times, not a whole number of {passes} passes")
    return values.reshape(passes, -1)


def _bootstrap(statistic: Callable[[np.ndarray], float], requests: int, resamples: int,
               seed: int) -> tuple[float, float]:
    """95% percentile-bootstrap interval (scipy) of ``statistic(rows)`` over requests drawn with replacement."""
    result = stats.bootstrap((np.arange(requests),), statistic, n_resamples=check_int("resamples", resamples),
                             vectorized=False, method="percentile", confidence_level=LEVEL,
                             random_state=np.random.default_rng(check_seed("seed", seed)))
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def latency_summary(latencies: np.ndarray, qs: Sequence[float] = (50, 90, 99), resamples: int = 1000,
                    seed: int = 0, passes: int = 1) -> dict[str, Percentile | float]:
    """Percentiles (with 95% bootstrap intervals over requests), the mean and the maximum of one server's
    latencies (at least two, each > 0 seconds: :func:`check_latencies`).

    With ``passes`` > 1 the latencies are that many rounds of the same requests, in order (as
    :func:`request_latencies` returns them): the bootstrap draws requests, each with its times
    from every pass, since two measurements of one request are not two independent requests.
    """
    values = check_latencies("latencies", latencies, 2)
    by_request = _requests("latencies", values, passes)
    for q in qs:
        check_number("q", q, 0.0, 100.0)
    summary: dict[str, Percentile | float] = {}
    for q in qs:
        low, high = _bootstrap(lambda rows, q=q: np.percentile(by_request[:, rows], q), by_request.shape[1],
                               resamples, seed)
        summary[f"p{q:g}"] = Percentile(q, float(np.percentile(values, q)), low, high)
    summary["mean"], summary["max"] = float(values.mean()), float(values.max())
    return summary


def simulate_queue(service_times: np.ndarray, rate: float, requests: int = 20000, seed: int = 0) -> np.ndarray:
    """Response times of a single server taking requests first come, first served, one at a time.

    Requests arrive at random (exponential gaps, ``rate`` per second); each takes a service
    time drawn from ``service_times`` (measured latencies). A request's response time is its
    wait in the queue plus its service: what a client sees. Returns one per request.
    ``service_times`` must hold at least one time, each > 0 (:func:`check_latencies`).
    """
    service = check_latencies("service_times", service_times)
    rate = check_number("rate", rate, open_low=True)
    rng = np.random.default_rng(check_seed("seed", seed))
    arrivals = np.cumsum(rng.exponential(1.0 / rate, check_int("requests", requests)))
    work = rng.choice(service, size=requests)
    finish = np.empty(requests)
    free = 0.0
    for i in range(requests):  # Lindley's recursion: start when both the request and the server are there
        free = max(free, arrivals[i]) + work[i]
        finish[i] = free
    return finish - arrivals


def percentile_ratio(a: np.ndarray, b: np.ndarray, q: float, resamples: int = 1000, seed: int = 0,
                     passes: int = 1) -> Interval:
    """The q-th percentile of latencies ``a`` over that of ``b``, for requests served in pairs
    (request i went to both servers), as a ratio :class:`~earlyexit.stats.Interval`: a paired
    percentile bootstrap over requests (scipy) gives the 95% interval. With ``passes`` > 1, both
    hold that many rounds of the same requests (see :func:`latency_summary`). Both hold the same
    number of times, at least two, each > 0 (:func:`check_latencies`). Its verdict says
    "shorter" or "longer": ``ratio.verdict(above="longer", below="shorter")``."""
    a, b = check_latencies("a", a, 2), check_latencies("b", b, 2)
    if len(a) != len(b):
        raise ValueError(f"need the same requests on both sides (at least two), got {len(a)} and {len(b)}")
    q = check_number("q", q, 0.0, 100.0)
    a2, b2 = _requests("a", a, passes), _requests("b", b, passes)

    def ratio(rows: np.ndarray) -> float:
        return float(np.percentile(a2[:, rows], q) / np.percentile(b2[:, rows], q))

    low, high = _bootstrap(ratio, a2.shape[1], resamples, seed)
    return Interval(float(np.percentile(a, q) / np.percentile(b, q)), low, high, 1.0)
