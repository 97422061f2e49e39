"""The model a server lists (``GET /v1/models``, ``/health``): a stable id that names the model, and
beside it the precision it runs at (``<dtype>[-<quantisation>]``), so a client can tell a bf16 server
from an int4 one without the id changing under clients and remote episodes that name it. Seed 000
only asks that a request's ``model`` be an id from ``GET /v1/models`` (or omitted)."""

from __future__ import annotations

import pytest

from engine import EngineOptions
from engine.server import EngineBackend, model_id_for, precision_for
from tests.engine.server.conftest import ThreadServer


@pytest.mark.parametrize("options, expected", [
    (EngineOptions(dtype="bfloat16"), "dia-1.6b-0626"),
    (EngineOptions(dtype="float32", quantize="int8"), "dia-1.6b-0626"),
    (EngineOptions(model="nari-labs/Dia-1.6B", dtype="bfloat16", quantize=""), "dia-1.6b"),
    (EngineOptions(model="/models/My-Dia/", dtype="float32"), "my-dia"),
    (EngineOptions(model="/models/My-Dia/model.safetensors", dtype="float32"), "my-dia"),
])
def test_the_id_names_the_model_whatever_its_precision(options, expected):
    assert model_id_for(options) == expected


@pytest.mark.parametrize("options, expected", [
    (EngineOptions(dtype="bfloat16"), "bf16"),
    (EngineOptions(dtype="float32"), "fp32"),
    (EngineOptions(dtype="float16"), "fp16"),
    (EngineOptions(dtype="bfloat16", quantize="int4"), "bf16-int4"),
    (EngineOptions(dtype="float32", quantize="int8"), "fp32-int8"),
    (EngineOptions(dtype="bfloat16", quantize="int8-dynamic"), "bf16-int8-dynamic"),
])
def test_the_precision_names_the_dtype_and_the_quantisation(options, expected):
    assert precision_for(options) == expected


def test_auto_is_named_as_this_machine_resolves_it():
    # on the CPU, auto is bfloat16 (engine.pick_dtype)
    assert precision_for(EngineOptions(device="cpu", dtype="auto")) == "bf16"


def test_a_loaded_models_dtype_is_the_one_named():
    assert precision_for(EngineOptions(dtype="auto"), "torch.float32") == "fp32"


@pytest.fixture
def int8_server(tiny_models, tmp_path):
    """A server whose engine would load the tiny model in bf16 with int8 weights (nothing here renders,
    so it never loads)."""
    backend = EngineBackend(EngineOptions(model=str(tiny_models / "dia"), device="cpu", dtype="bfloat16",
                                          quantize="int8"))
    running = ThreadServer(backend, tmp_path)
    yield running
    running.stop()


def test_the_server_lists_its_model_with_its_precision(int8_server):
    with int8_server.client() as client:
        listed = [(card["id"], card["precision"]) for card in client.get("/v1/models").json()["data"]]
        health = client.get("/health").json()
        one = client.get("/v1/models/dia")
    assert listed == [("dia", "bf16-int8")] and (health["model"], health["precision"]) == ("dia", "bf16-int8")
    assert one.status_code == 200 and one.json()["precision"] == "bf16-int8"
