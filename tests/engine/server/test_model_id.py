"""The model id a server lists (``GET /v1/models``, ``/health``) names the model and how it runs:
``<name>-<dtype>[-<quantisation>]``, so a client can tell a bf16 server from an int4 one. Seed 000
only asks that a request's ``model`` be an id from ``GET /v1/models`` (or omitted), and ``dia``
and OpenAI's names keep working whatever the precision."""

from __future__ import annotations

import httpx
import pytest

from engine import EngineOptions
from engine.server import EngineBackend, model_id_for
from tests.engine.server.conftest import ThreadServer


@pytest.mark.parametrize("options, expected", [
    (EngineOptions(dtype="bfloat16"), "dia-1.6b-0626-bf16"),
    (EngineOptions(dtype="float32"), "dia-1.6b-0626-fp32"),
    (EngineOptions(dtype="float16"), "dia-1.6b-0626-fp16"),
    (EngineOptions(dtype="bfloat16", quantize="int4"), "dia-1.6b-0626-bf16-int4"),
    (EngineOptions(dtype="float32", quantize="int8"), "dia-1.6b-0626-fp32-int8"),
    (EngineOptions(dtype="bfloat16", quantize="int8-dynamic"), "dia-1.6b-0626-bf16-int8-dynamic"),
    (EngineOptions(model="nari-labs/Dia-1.6B", dtype="bfloat16", quantize=""), "dia-1.6b-bf16"),
    (EngineOptions(model="/models/My-Dia/", dtype="float32"), "my-dia-fp32"),
    (EngineOptions(model="/models/My-Dia/model.safetensors", dtype="float32"), "my-dia-fp32"),
])
def test_the_id_names_the_model_its_dtype_and_its_quantisation(options, expected):
    assert model_id_for(options) == expected


def test_auto_is_named_as_this_machine_resolves_it():
    # on the CPU, auto is bfloat16 (engine.pick_dtype)
    assert model_id_for(EngineOptions(device="cpu", dtype="auto")) == "dia-1.6b-0626-bf16"


def test_a_loaded_models_dtype_is_the_one_named():
    assert model_id_for(EngineOptions(dtype="auto"), "torch.float32") == "dia-1.6b-0626-fp32"


@pytest.fixture
def int8_server(tiny_models, tmp_path):
    """A server whose engine would load the tiny model in bf16 with int8 weights (nothing here renders,
    so it never loads)."""
    backend = EngineBackend(EngineOptions(model=str(tiny_models / "dia"), device="cpu", dtype="bfloat16",
                                          quantize="int8"))
    running = ThreadServer(backend, tmp_path)
    yield running
    running.stop()


def test_the_server_lists_and_reports_its_precision(int8_server):
    with int8_server.client() as client:
        listed = [card["id"] for card in client.get("/v1/models").json()["data"]]
        health = client.get("/health").json()
        one = client.get("/v1/models/dia-bf16-int8")
    assert listed == ["dia-bf16-int8"] and health["model"] == "dia-bf16-int8"
    assert one.status_code == 200 and one.json()["id"] == "dia-bf16-int8"


@pytest.mark.parametrize("model", ["dia-fp32", "dia-bf16", "dia-bf16-int4"])
def test_a_request_for_another_precision_is_refused_naming_the_one_served(int8_server, model):
    with int8_server.client() as client:
        response = client.post("/v1/audio/speech", json={"model": model, "input": "Hello."})
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["type"] == "no_provider" and "dia-bf16-int8" in error["message"]


def test_another_precisions_model_card_is_not_found(int8_server):
    response = httpx.get(int8_server.url + "/v1/models/dia-fp32", headers=int8_server.headers, timeout=30)
    assert response.status_code == 404 and response.json()["error"]["type"] == "no_provider"
