"""The Python alternative a user would write: `torch._inductor.aoti_load_package`
behind FastAPI + uvicorn, serving the KServe V2 JSON inference route (no batching).

    python bench/python_baseline.py --package model.pt2 --port 8001

bench/server_bench.py starts it as baseline (b).
"""

from __future__ import annotations

import argparse

import torch
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

DTYPES = {
    "BOOL": torch.bool,
    "UINT8": torch.uint8,
    "INT8": torch.int8,
    "INT16": torch.int16,
    "INT32": torch.int32,
    "INT64": torch.int64,
    "FP16": torch.float16,
    "BF16": torch.bfloat16,
    "FP32": torch.float32,
    "FP64": torch.float64,
}
KSERVE_NAMES = {dtype: name for name, dtype in DTYPES.items()}


def build_app(package: str) -> FastAPI:
    model = torch._inductor.aoti_load_package(package)
    import json

    metadata = model.get_metadata()
    name = metadata.get("trtaoti.model_name", "model")
    output_names = [o["name"] for o in json.loads(metadata["trtaoti.outputs"])]
    # A CUDA package's runner takes device tensors; the user copies in and out.
    device = "cuda" if metadata.get("trtaoti.device") == "cuda" else "cpu"
    app = FastAPI()

    @app.get("/v2/health/ready")
    async def ready():
        return {"ready": True}

    @app.post("/v2/models/{model_name}/infer")
    async def infer(model_name: str, request: Request):
        if model_name != name:
            return JSONResponse({"error": f"unknown model '{model_name}'"}, status_code=404)
        body = await request.json()
        inputs = [
            torch.tensor(i["data"], dtype=DTYPES[i["datatype"]]).reshape(i["shape"]).to(device) for i in body["inputs"]
        ]
        with torch.inference_mode():
            outputs = [o.cpu() for o in model(*inputs)]
        return {
            "model_name": name,
            "outputs": [
                {"name": n, "datatype": KSERVE_NAMES[o.dtype], "shape": list(o.shape), "data": o.flatten().tolist()}
                for n, o in zip(output_names, outputs, strict=True)
            ],
        }

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--package", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    args = parser.parse_args()
    uvicorn.run(build_app(args.package), host=args.host, port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
