"""The exported graph routes per sample exactly as route_batch does (a tiny untrained model, exported here)."""

from pathlib import Path

import pytest
import torch

from earlyexit.exits import PatienceRule, ThresholdRule, max_softmax
from earlyexit.export import (
    EarlyExitModule,
    FirstStage,
    FullNetwork,
    OneImageEarlyExit,
    export_onnx,
    export_program,
)
from earlyexit.inference import route_batch
from earlyexit.serving import profile_by_operator, run_session, session
from helpers import assert_same_result, logits_tolerance, sharpened_model, threshold_between

pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def model_and_images():
    model = sharpened_model((8, 16))
    images = torch.randn(37, 1, 28, 28, generator=torch.Generator().manual_seed(3))
    return model, images


def rules(model, images):
    middle = threshold_between(max_softmax(model(images).exit_logits[0].detach()))
    return {"none exit": ThresholdRule(1.0), "all exit": ThresholdRule(0.0), "some exit": ThresholdRule(middle),
            "learned": ThresholdRule(0.5, "learned")}


@pytest.mark.parametrize("name", ["none exit", "all exit", "some exit", "learned"])
def test_onnx_runtime_equals_route_batch(model_and_images, tmp_path, name):
    model, images = model_and_images
    rule = rules(model, images)[name]
    sess = session(export_onnx(EarlyExitModule(model, rule), tmp_path / "ee.onnx"))
    atol = logits_tolerance(model, images)
    for size in (1, 2, 7, 37):
        assert_same_result(run_session(sess, images[:size]), route_batch(model, images[:size], rule), atol)
    empty = run_session(sess, images[:0])  # a batch of 0 runs and returns empty results
    assert empty.logits.shape == (0, 10) and empty.exit_number.shape == (0,)


def test_torch_export_program_equals_route_batch_and_shows_the_routing_ops(model_and_images):
    model, images = model_and_images
    rule = rules(model, images)["some exit"]
    program = export_program(EarlyExitModule(model, rule))
    logits, exit_number = program.module()(images)
    expected = route_batch(model, images, rule)
    assert torch.equal(exit_number, expected.exit_number)
    torch.testing.assert_close(logits, expected.logits, rtol=0, atol=logits_tolerance(model, images))
    ops = {str(node.target) for node in program.graph.nodes if node.op == "call_function"}
    assert {"aten.nonzero.default", "aten.index_select.default", "aten.index_copy.default"} <= ops


def test_patience_exports_too(model_and_images, tmp_path):
    model, images = sharpened_model((8, 8, 8)), model_and_images[1]
    rule = PatienceRule(2)
    sess = session(export_onnx(EarlyExitModule(model, rule), tmp_path / "patience.onnx"))
    assert_same_result(run_session(sess, images), route_batch(model, images, rule), logits_tolerance(model, images))


def test_the_full_network_export_and_the_profiler(model_and_images, tmp_path):
    model, images = model_and_images
    sess = session(export_onnx(FullNetwork(model), tmp_path / "full.onnx"), threads=2, optimization="basic")
    (logits,) = sess.run(None, {"images": images.numpy()})
    torch.testing.assert_close(torch.from_numpy(logits), model(images).exit_logits[-1].detach(), rtol=0,
                               atol=logits_tolerance(model, images))
    profiled = session(tmp_path / "full.onnx", profile=True)
    by_op, run = profile_by_operator(profiled, images[:4], runs=3)
    assert "Conv" in by_op and all(v >= 0 for v in by_op.values())
    assert 0 < sum(by_op.values()) <= run


def test_bad_inputs_and_options_fail_clearly(model_and_images, tmp_path):
    model, images = model_and_images
    sess = session(export_onnx(EarlyExitModule(model, ThresholdRule(0.5)), tmp_path / "ee.onnx"))
    bad = images[:2].clone()
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        run_session(sess, bad)
    with pytest.raises(TypeError, match=r"images must be float32.*images.float\(\)"):  # not ORT's own error
        run_session(sess, images[:2].double())
    with pytest.raises(ValueError, match="optimization must be one of"):
        session(tmp_path / "ee.onnx", optimization="max")
    with pytest.raises(ValueError, match="needs 2 thresholds"):
        EarlyExitModule(sharpened_model((8, 8, 8)), ThresholdRule([0.5]))


@pytest.mark.parametrize("threads", [0, -1, 1.5, True])
def test_a_session_needs_a_thread_count_of_at_least_one(model_and_images, tmp_path, threads):
    path = export_onnx(FullNetwork(model_and_images[0]), tmp_path / "full.onnx")
    with pytest.raises(ValueError, match="threads must be an int >= 1"):  # ONNX Runtime reads 0 as every core
        session(path, threads=threads)


@pytest.mark.parametrize("content", [b"", b"not a graph", b"\x08\x07" * 50])
def test_a_missing_or_damaged_onnx_file_is_refused_with_its_name(tmp_path, content):
    with pytest.raises(FileNotFoundError, match=r"absent\.onnx: no such ONNX file"):
        session(tmp_path / "absent.onnx")
    (tmp_path / "damaged.onnx").write_bytes(content)
    with pytest.raises(ValueError, match=r"damaged\.onnx: this ONNX file cannot be loaded"):
        session(tmp_path / "damaged.onnx")


def test_the_profiler_checks_its_images_runs_and_session_as_run_session_does(model_and_images, tmp_path):
    model, images = model_and_images
    path = export_onnx(FullNetwork(model), tmp_path / "full.onnx")
    profiled = session(path, profile=True)
    with pytest.raises(ValueError, match="runs must be an int >= 1"):  # it returned a result for no run
        profile_by_operator(profiled, images[:2], runs=0)
    with pytest.raises(TypeError, match=r"images must be float32.*images.float\(\)"):
        profile_by_operator(profiled, images[:2].double())
    with pytest.raises(ValueError, match="add a batch dimension"):
        profile_by_operator(profiled, images[0])
    Path(profiled.end_profiling()).unlink()  # nothing ran: the session is still the caller's to end
    with pytest.raises(ValueError, match="sess must be created with profile=True"):
        profile_by_operator(session(path), images[:2])
    with pytest.raises(ValueError, match=r"sess must be a graph taking \['images'\] and giving \['logits', "
                                         r"'exit_number'\]"):
        run_session(session(path), images[:2])  # the full network's graph has no exit numbers


def test_the_one_image_graph_refuses_a_batch_rather_than_deciding_it_by_its_first_image(model_and_images, tmp_path):
    model, images = model_and_images
    graph = OneImageEarlyExit(model, ThresholdRule(0.5))
    logits, exit_number = graph(images[:1])
    assert logits.shape == (1, 10) and exit_number.shape == (1,)
    with pytest.raises(ValueError, match="images must be a batch of exactly one image for the one-image graph, got 2"):
        graph(images[:2])
    with pytest.raises(ValueError, match="OneImageEarlyExit takes exactly 1 image.*example_batch=1, dynamic_batch=Fal"):
        export_onnx(graph, tmp_path / "one.onnx")  # the default dynamic batch exported the first-image decision
    with pytest.raises(ValueError, match="OneImageEarlyExit takes exactly 1 image"):
        export_program(graph)
    sess = session(export_onnx(graph, tmp_path / "one.onnx", example_batch=1, dynamic_batch=False))
    logits, exit_number = sess.run(None, {"images": images[:1].numpy()})
    expected = route_batch(model, images[:1], ThresholdRule(0.5))
    assert int(exit_number[0]) == int(expected.exit_number[0])
    torch.testing.assert_close(torch.from_numpy(logits), expected.logits, rtol=0, atol=logits_tolerance(model, images))
    with pytest.raises(Exception, match="images"):  # ONNX Runtime's own error names the input and its size
        sess.run(None, {"images": images[:2].numpy()})


def test_a_stage_needs_a_known_criterion(model_and_images):
    with pytest.raises(ValueError, match="unknown exit criterion 'margin'"):
        FirstStage(model_and_images[0], "margin")  # it failed only at export
    with pytest.raises(TypeError, match="model must be an EarlyExitCNN"):
        FullNetwork(object())
