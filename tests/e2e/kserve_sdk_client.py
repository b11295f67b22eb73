"""Run the KServe SDK's V2 REST client against a server, in its own process.

kserve and tritonclient's gRPC module both register the `inference.*` protobuf
messages, and protobuf refuses the same symbol twice in one process; a user never
imports both, so the test runs the SDK here, as a user would:

    python kserve_sdk_client.py BASE_URL MODEL REQUESTS.npz RESULTS.npz

REQUESTS.npz holds `<case>/<input>` arrays and a `cases` list of "<case>:json|binary";
RESULTS.npz gets `<case>/<output>` arrays, or `<case>/status` and `<case>/error` for a
request the server refused, and `ready/error` where the SDK's readiness calls failed to
read the health answer (Triton's has no body); the requests are sent all the same.
"""

from __future__ import annotations

import asyncio
import sys

import httpx
import numpy as np
from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig

DATATYPES = {np.dtype("float32"): "FP32", np.dtype("float64"): "FP64", np.dtype("int64"): "INT64"}


async def main(base: str, model: str, requests_path: str, results_path: str) -> int:
    requests = np.load(requests_path)
    results: dict[str, np.ndarray] = {}
    async with InferenceRESTClient(RESTConfig(protocol="v2", timeout=30)) as client:
        try:
            ready = await client.is_server_ready(base) and await client.is_model_ready(base, model)
        except ValueError as error:  # a health answer without the protocol's {"ready": ...} body
            results["ready/error"] = np.array(f"{type(error).__name__}: {error}")
        else:
            if not ready:
                print("server or model not ready", file=sys.stderr)
                return 1
        for case in (str(c) for c in requests["cases"]):
            name, encoding = case.split(":")
            inputs = []
            for key in requests.files:
                if key.startswith(f"{name}/"):
                    array = requests[key]
                    tensor = InferInput(
                        name=key.split("/", 1)[1], shape=list(array.shape), datatype=DATATYPES[array.dtype]
                    )
                    tensor.set_data_from_numpy(array, binary_data=encoding == "binary")
                    inputs.append(tensor)
            try:
                response = await client.infer(base, InferRequest(model, inputs), model_name=model)
            except httpx.HTTPStatusError as error:
                results[f"{name}/status"] = np.array(error.response.status_code)
                results[f"{name}/error"] = np.array(error.response.json().get("error", ""))
                continue
            for output in response.outputs:
                results[f"{name}/{output.name}"] = output.as_numpy()
    np.savez(results_path, **results)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(*sys.argv[1:5])))
