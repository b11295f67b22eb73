"""A small MLP classifier: one float input `features` [batch, 64] -> `logits` [batch, 10].

Weights are random but seeded, so every compile of this example sees the same model.
"""

from __future__ import annotations

import torch
from torch import nn

FEATURES = 64
CLASSES = 10


class Mlp(nn.Module):
    # trtaoti reads output names from this attribute (else output__0, ...).
    output_names = ("logits",)

    def __init__(self, features: int = FEATURES, hidden: int = 256, classes: int = CLASSES) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(features, hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Linear(hidden, classes),
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.layers(features)


def build() -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
    """The factory named in trtaotimodel.yaml: (module, example inputs)."""
    torch.manual_seed(0)
    return Mlp().eval(), (torch.randn(4, FEATURES),)
