"""Fuzzing the inference route with 10,300 malformed requests (loopback only, bounded
in count, the same cases every run): the server answers every one with a 4xx or a
declared 503, never a 500, never a crash, and serves correctly afterwards. A mutation
the server accepts (200) must be one that left the request meaning something: its
answer is checked against the model run eagerly on the inputs as the protocol reads
them, so a request misread into a plausible answer fails as surely as a crash."""

from __future__ import annotations

import json

import numpy as np
import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import server_support as support

pytestmark = [pytest.mark.e2e, pytest.mark.faults]

ALLOWED = {200, 400, 404, 413, 503}
FUZZ_SETTINGS = settings(
    max_examples=5000,  # per fuzzer: 10,000 malformed bodies and framings in all
    # Seeded: the same cases every run, so a run fails only when the server changed.
    derandomize=True,
    deadline=None,
    database=None,  # nothing written into the checkout
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda children: st.lists(children, max_size=6) | st.dictionaries(st.text(max_size=8), children, max_size=5),
    max_leaves=25,
)
field_values = (
    json_values
    | st.sampled_from(["FP32", "INT64", "FP16", "BF16", "BOOL", "BYTES", "x", "mask", "", "logits"])
    | st.lists(st.integers(-3, 2**40), max_size=5)
)


def valid_body(batch: int = 2) -> dict:
    x, mask = (t.numpy() for t in support.example_inputs(batch))
    return {
        "id": "fuzz",
        "inputs": [
            {"name": "x", "datatype": "FP32", "shape": list(x.shape), "data": x.flatten().tolist()},
            {"name": "mask", "datatype": "INT64", "shape": list(mask.shape), "data": mask.flatten().tolist()},
        ],
        "outputs": [{"name": "logits"}],
    }


@st.composite
def mutated_bodies(draw) -> bytes:
    body = valid_body(draw(st.integers(1, 3)))
    for _ in range(draw(st.integers(1, 4))):
        target = draw(st.sampled_from(["root", "input", "output", "params"]))
        if target == "root":
            key = draw(st.sampled_from(["inputs", "outputs", "id", "parameters", "extra"]))
            if draw(st.booleans()):
                body.pop(key, None)
            else:
                body[key] = draw(field_values)
        elif target == "params":
            inputs = body.get("inputs")
            candidates = inputs if isinstance(inputs, list) and inputs else [{}]
            holder = body if draw(st.booleans()) else draw(st.sampled_from(candidates))
            if isinstance(holder, dict):
                holder["parameters"] = {
                    draw(st.sampled_from(["binary_data_size", "binary_data_output", "binary_data"])): draw(field_values)
                }
        else:
            items = body.get("inputs" if target == "input" else "outputs")
            if isinstance(items, list) and items and isinstance(items[0], dict):
                item = items[draw(st.integers(0, len(items) - 1))]
                if isinstance(item, dict):
                    key = draw(st.sampled_from(["name", "datatype", "shape", "data", "parameters"]))
                    if draw(st.booleans()):
                        item.pop(key, None)
                    else:
                        item[key] = draw(field_values)
    text = json.dumps(body, allow_nan=False).encode()
    if draw(st.booleans()):  # break the JSON itself
        cut = draw(st.integers(0, len(text)))
        text = text[:cut] + draw(st.binary(max_size=8)) + text[cut + draw(st.integers(0, 3)) :]
    return text


@pytest.fixture(scope="module")
def server():
    support.build_server()
    with support.run_server(support.build_package(2, 4, 8), "--max-body-bytes", "1000000") as running:
        yield running


@pytest.fixture(scope="module")
def session():
    with requests.Session() as s:
        yield s


def post(server, session, body: bytes, headers: dict | None = None) -> requests.Response:
    return session.post(f"{server.base}/v2/models/{support.MODEL_NAME}/infer", data=body, headers=headers, timeout=30)


DTYPES = {"FP32": np.float32, "INT64": np.int64}
OUTPUT_NAMES = ("logits", "label")


def tensors(items: list[dict], blob: bytes) -> dict[str, np.ndarray]:
    """Tensors of a request's `inputs` or a response's `outputs`, as the protocol reads
    them: JSON `data`, or the next `binary_data_size` bytes after the JSON header."""
    read, offset = {}, 0
    for item in items:
        dtype = DTYPES[item["datatype"]]  # another datatype accepted would be a wrong 200
        parameters = item.get("parameters", {})
        assert isinstance(parameters, dict), f"accepted {item['name']!r} with parameters {parameters!r}"
        size = parameters.get("binary_data_size")
        if size is None:
            array = np.array(item["data"], dtype=dtype)
        else:
            array = np.frombuffer(blob[offset : offset + size], dtype=dtype)
            offset += size
        read[item["name"]] = array.reshape(item["shape"])
    assert offset == len(blob), "binary bytes left over after the last tensor"
    return read


def split_binary(raw: bytes, header_length: int | None) -> tuple[dict, bytes]:
    if header_length is None:
        return json.loads(raw), b""
    return json.loads(raw[:header_length]), raw[header_length:]


def check(response: requests.Response, body: bytes, header_length: str | None = None) -> None:
    assert response.status_code in ALLOWED, (response.status_code, response.text[:300])
    if response.status_code != 200:
        assert isinstance(response.json()["error"], str)
        return
    # Accepted: the answer must be the model's on the inputs as sent.
    request, blob = split_binary(body, None if header_length is None else int(header_length))
    assert isinstance(request.get("parameters", {}), dict), f"accepted request parameters {request['parameters']!r}"
    for output in request.get("outputs") or []:
        assert isinstance(output.get("parameters", {}), dict), f"accepted output parameters {output['parameters']!r}"
    inputs = tensors(request["inputs"], blob)
    answer_length = response.headers.get("Inference-Header-Content-Length")
    answer, answer_blob = split_binary(response.content, None if answer_length is None else int(answer_length))
    outputs = tensors(answer["outputs"], answer_blob)
    asked = [o["name"] for o in request.get("outputs") or []] or list(OUTPUT_NAMES)
    assert sorted(outputs) == sorted(asked), (asked, list(outputs))
    for name, expected in zip(OUTPUT_NAMES, support.eager_outputs(inputs["x"], inputs["mask"]), strict=True):
        if name in outputs:
            np.testing.assert_allclose(outputs[name], expected, rtol=1e-5, atol=1e-5, err_msg=name)
    if "id" in request:
        assert answer.get("id") == request["id"]


@FUZZ_SETTINGS
@given(body=mutated_bodies())
def test_mutated_json_requests(server, session, body):
    check(post(server, session, body), body)


@FUZZ_SETTINGS
@given(
    header=st.binary(max_size=200) | mutated_bodies(),
    payload=st.binary(max_size=300),
    length=st.one_of(
        st.none(), st.integers(-5, 600).map(str), st.text(alphabet="0123456789abcxyz+-.e", min_size=1, max_size=24)
    ),
)
def test_binary_framing(server, session, header, payload, length):
    headers = {} if length is None else {"Inference-Header-Content-Length": length}
    check(post(server, session, header + payload, headers), header + payload, length)


@settings(max_examples=300, derandomize=True, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(
    path=st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), max_size=40),
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE"]),
)
def test_random_routes(server, session, path, method):
    # No body on GET: cpp-httplib does not read one there, so a body would be parsed
    # as the connection's next request (a 400 for it, on this keep-alive session).
    data = None if method == "GET" else b"{}"
    response = session.request(method, f"{server.base}/v2/{path}", data=data, timeout=30)
    assert response.status_code < 500 or response.status_code == 503, (path, response.status_code)


def test_server_survives_and_still_serves(server, session):
    # Runs after the fuzzers in file order; also meaningful alone.
    assert server.process.poll() is None, "".join(server.raw[-20:])
    assert session.get(f"{server.base}/v2/health/ready", timeout=10).status_code == 200
    body = valid_body(3)
    response = post(server, session, json.dumps(body).encode())
    assert response.status_code == 200, response.text
    x = np.array(body["inputs"][0]["data"], dtype=np.float32).reshape(3, -1)
    mask = np.array(body["inputs"][1]["data"], dtype=np.int64).reshape(3, -1)
    got = np.array(response.json()["outputs"][0]["data"]).reshape(3, -1)
    np.testing.assert_allclose(got, support.eager_outputs(x, mask)[0], rtol=1e-5, atol=1e-5)
