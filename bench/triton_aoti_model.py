"""The Triton Python-backend model that serves an AOTInductor package: what a Triton
user writes today for a `.pt2` that must batch (Triton's own PyTorch backend serves
AOTInductor packages at batch 1 only, and the wheel that carries tritonserver here
does not ship it).

bench/triton_baseline.py copies this file into a model repository as
`<model>/1/model.py`; it runs inside Triton's Python backend stub, not in this
repository's interpreter. The model configuration's parameters name the package
(`package`), torch's intra-op thread count (`intra_op_threads`) and the device
(`device`).

Triton's dynamic batcher hands `execute` the requests it grouped; the Python backend
does not concatenate them, so this does (as PyTriton's `@batch` does): rows are
stacked per input, padded up to the package's compiled minimum by repeating the last
row (as trtaoti-server does), run once, and split back per request. Only the outputs
the batch's requests asked for are copied back to the host and returned (on a GPU,
the encoder's unrequested `hidden` output is 128 times the size of `pooled`).

Tensors cross into and out of the stub by DLPack, as Triton's Python-backend docs advise
for PyTorch: no copy through numpy. It is also the path that works with numpy 2: the
stub in nvidia-pytriton 0.7.0 was built against numpy 1 and misreads a numpy 2
array's item size, so `pb_utils.Tensor(name, ndarray)` answers "output tensor shape does
not match size of output" (PyTriton itself pins numpy < 2).
"""

from __future__ import annotations

import json

import torch
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args: dict) -> None:
        config = json.loads(args["model_config"])
        parameters = {key: value["string_value"] for key, value in config.get("parameters", {}).items()}
        torch.set_num_threads(int(parameters.get("intra_op_threads", "1")))
        self.device = torch.device(parameters.get("device", "cpu"))
        self.model = torch._inductor.aoti_load_package(parameters["package"])
        metadata = self.model.get_metadata()
        self.input_names = [i["name"] for i in json.loads(metadata["trtaoti.inputs"])]
        self.output_names = [o["name"] for o in json.loads(metadata["trtaoti.outputs"])]
        self.batch_min = int(metadata.get("trtaoti.batch_min", "1"))

    def execute(self, requests: list) -> list:
        columns = [
            [torch.from_dlpack(pb_utils.get_input_tensor_by_name(r, name).to_dlpack()) for r in requests]
            for name in self.input_names
        ]
        rows = [tensor.shape[0] for tensor in columns[0]]
        total = sum(rows)
        batch = [torch.cat(tensors) if len(tensors) > 1 else tensors[0] for tensors in columns]
        if total < self.batch_min:
            batch = [torch.cat([t, t[-1:].expand(self.batch_min - total, *t.shape[1:])]) for t in batch]
        # Only the outputs some request asked for leave the device (Triton names every
        # output as requested when a request names none).
        wanted = [r.requested_output_names() for r in requests]
        needed = set().union(*wanted)
        with torch.inference_mode():
            outputs = self.model(*(t.to(self.device) for t in batch))
            if isinstance(outputs, torch.Tensor):  # a one-output model returns its tensor as is
                outputs = [outputs]
            host = {name: o.cpu() for name, o in zip(self.output_names, outputs, strict=True) if name in needed}
        responses = []
        start = 0
        for count, names in zip(rows, wanted, strict=True):
            tensors = [
                pb_utils.Tensor.from_dlpack(name, host[name][start : start + count].contiguous())
                for name in self.output_names
                if name in names
            ]
            responses.append(pb_utils.InferenceResponse(output_tensors=tensors))
            start += count
        return responses
