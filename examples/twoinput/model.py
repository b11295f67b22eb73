"""A small conv net with two inputs of different dtypes and two named outputs.

    image     FP32  [batch, 3, 32, 32]
    class_id  INT64 [batch]            (a conditioning label, an embedding index 0..15)
 -> logits    [batch, 10]
    embedding [batch, 32]

The outputs are returned as a dict: trtaoti names the package outputs after its keys.
The example inputs span the valid label range, which trtaoti uses when it draws
integer inputs for tracing and validation.
"""

from __future__ import annotations

import torch
from torch import nn

CHANNELS = 3
SIZE = 32
LABELS = 16
EMBEDDING = 32
CLASSES = 10


class ConditionedConvNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(CHANNELS, 16, kernel_size=3, padding=1),
            nn.BatchNorm2d(16),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(16, EMBEDDING, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.label = nn.Embedding(LABELS, EMBEDDING)
        self.head = nn.Linear(EMBEDDING, CLASSES)

    def forward(self, image: torch.Tensor, class_id: torch.Tensor) -> dict[str, torch.Tensor]:
        embedding = self.features(image) + self.label(class_id)
        return {"logits": self.head(torch.relu(embedding)), "embedding": embedding}


def build() -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
    torch.manual_seed(0)
    model = ConditionedConvNet().eval()
    image = torch.randn(LABELS, CHANNELS, SIZE, SIZE)
    class_id = torch.arange(LABELS, dtype=torch.int64)
    return model, (image, class_id)
