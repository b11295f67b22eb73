"""Benchmark models, built in code with random weights (nothing is downloaded).

Each factory follows the `spec.model.python.factory` contract: it takes no arguments
and returns `(module, example_inputs)`, so `trtaoti compile` can build them like any
user model (`factory: "bench.models:resnet50"`, `pythonPath: ["."]`).

- resnet50: the I/O-heavy case (fp16 image, 301 KB a request).
- encoder: a BERT-base-shaped encoder (12 layers, width 768, 12 heads, seq 128,
  int64 token ids): the compute-heavy, small-payload case.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

SEQ_LEN = 128
VOCAB = 30522


def resnet50() -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
    import torchvision

    torch.manual_seed(0)
    model = torchvision.models.resnet50(weights=None).eval()
    return model, (torch.randn(2, 3, 224, 224),)


class Encoder(nn.Module):
    """Token embedding + positional embedding + a stack of transformer encoder layers."""

    output_names: ClassVar[list[str]] = ["hidden", "pooled"]

    def __init__(self, layers: int = 12, width: int = 768, heads: int = 12, seq_len: int = SEQ_LEN) -> None:
        super().__init__()
        self.tokens = nn.Embedding(VOCAB, width)
        self.positions = nn.Parameter(torch.randn(1, seq_len, width) * 0.02)
        layer = nn.TransformerEncoderLayer(
            width, heads, dim_feedforward=4 * width, activation="gelu", batch_first=True, norm_first=False
        )
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.pool = nn.Linear(width, width)

    def forward(self, input_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = self.encoder(self.tokens(input_ids) + self.positions)
        pooled = torch.tanh(self.pool(hidden[:, 0]))
        return hidden, pooled


def encoder() -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
    torch.manual_seed(0)
    model = Encoder().eval()
    return model, (torch.randint(0, VOCAB, (2, SEQ_LEN), dtype=torch.int64),)


def small_encoder() -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
    """Two layers, width 128: the same graph shape, small enough for CPU smoke runs."""
    torch.manual_seed(0)
    model = Encoder(layers=2, width=128, heads=4).eval()
    return model, (torch.randint(0, VOCAB, (2, SEQ_LEN), dtype=torch.int64),)
