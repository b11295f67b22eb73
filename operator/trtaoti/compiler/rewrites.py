"""Module rewrites applied before export: each computes what the module computes, in a
form that exports to a faster graph.

`nn.MultiheadAttention(batch_first=True)` keeps its math in the sequence-first layout
PyTorch had before `batch_first` existed: its forward transposes every input to
(seq, batch, embed), projects, reshapes to (batch * heads, seq, head_dim), and
transposes back at the end. Eager inference never pays for that: it takes the fused
fast path (`torch._transformer_encoder_layer_fwd`, `torch._native_multi_head_attention`),
which tracing cannot take, so an exported encoder runs every layout copy. On an H200
they were 5.2 of 17.2 ms of a BERT-base batch of 256 and left the AOTInductor package
slower than eager at batch 64 and 256 (BENCHMARKS.md). The rewrite computes the same
attention batch-first: the QKV projection, a view to (batch, heads, seq, head_dim),
`scaled_dot_product_attention` (which Inductor lowers to a fused attention kernel) and
the output projection, with the masks merged the way `F.multi_head_attention_forward`
merges them.

`nn.TransformerEncoderLayer`'s feed-forward block is the other half of that fast path:
eager inference computes `linear1` and its ReLU/GELU as one cuBLASLt GEMM with the bias
and activation in its epilogue (`torch._addmm_activation`), while the traced block is a
GEMM and then a pointwise kernel that reads and writes the 4x-wide activation once more
(~200 MB a layer at batch 256 of BERT-base). The rewrite calls `_addmm_activation`
itself, which Inductor keeps as that one cuBLASLt call. On CUDA its GELU is the tanh
approximation, as in eager inference's fast path; the exact GELU the module would
compute outside that path differs by less than 1e-3.

The compiler validates the package against the model as given, before any rewrite, so
a rewrite that changed the numbers beyond the precision's tolerance fails the compile.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn


class BatchFirstAttention(nn.MultiheadAttention):
    """`nn.MultiheadAttention` with the batch-first inference path above; anything else
    (attention weights asked for, training, unbatched inputs) runs the original forward."""

    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        key_padding_mask: torch.Tensor | None = None,
        need_weights: bool = True,
        attn_mask: torch.Tensor | None = None,
        average_attn_weights: bool = True,
        is_causal: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        if need_weights or self.training or query.dim() != 3:
            return super().forward(
                query, key, value, key_padding_mask=key_padding_mask, need_weights=need_weights,
                attn_mask=attn_mask, average_attn_weights=average_attn_weights, is_causal=is_causal,
            )  # fmt: skip
        batch, target_len, embed = query.shape
        source_len = key.shape[1]
        heads = self.num_heads
        if query is key and key is value:  # self-attention: one GEMM for Q, K and V
            q, k, v = F.linear(query, self.in_proj_weight, self.in_proj_bias).chunk(3, dim=-1)
        else:
            weights = self.in_proj_weight.chunk(3)
            biases = self.in_proj_bias.chunk(3) if self.in_proj_bias is not None else (None, None, None)
            q, k, v = (F.linear(x, w, b) for x, w, b in zip((query, key, value), weights, biases, strict=True))
        q = q.view(batch, target_len, heads, self.head_dim).transpose(1, 2)
        k = k.view(batch, source_len, heads, self.head_dim).transpose(1, 2)
        v = v.view(batch, source_len, heads, self.head_dim).transpose(1, 2)
        mask, causal = self._sdpa_mask(query, key_padding_mask, attn_mask, is_causal, batch, target_len, source_len)
        attended = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal)
        merged = attended.transpose(1, 2).reshape(batch, target_len, embed)
        return F.linear(merged, self.out_proj.weight, self.out_proj.bias), None

    def _sdpa_mask(
        self,
        query: torch.Tensor,
        key_padding_mask: torch.Tensor | None,
        attn_mask: torch.Tensor | None,
        is_causal: bool,
        batch: int,
        target_len: int,
        source_len: int,
    ) -> tuple[torch.Tensor | None, bool]:
        """One additive mask for SDPA, as F.multi_head_attention_forward builds it: boolean
        masks mean "True is masked out" there (SDPA's booleans mean the opposite), so both
        are made additive floats first; `is_causal` is only a hint that `attn_mask` is the
        causal mask, usable alone when there is no padding mask."""
        if is_causal and attn_mask is None:
            raise RuntimeError("is_causal needs attn_mask (nn.MultiheadAttention's contract)")
        if is_causal and key_padding_mask is None:
            return None, True
        attn = F._canonical_mask(
            mask=attn_mask, mask_name="attn_mask", other_type=None, other_name="", target_type=query.dtype,
            check_other=False,
        )  # fmt: skip
        padding = F._canonical_mask(
            mask=key_padding_mask, mask_name="key_padding_mask", other_type=F._none_or_dtype(attn_mask),
            other_name="attn_mask", target_type=query.dtype,
        )  # fmt: skip
        mask = None
        if attn is not None:
            mask = (
                attn.view(1, 1, target_len, source_len)
                if attn.dim() == 2
                else attn.view(batch, self.num_heads, target_len, source_len)
            )
        if padding is not None:
            padding = padding.view(batch, 1, 1, source_len)
            mask = padding if mask is None else mask + padding
        return mask, False


class FusedFeedForwardLayer(nn.TransformerEncoderLayer):
    """`nn.TransformerEncoderLayer` whose feed-forward block runs as eager inference runs
    it; in training the block is the original."""

    def _ff_block(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            return super()._ff_block(x)
        rows = x.reshape(-1, x.shape[-1])
        hidden = torch._addmm_activation(
            self.linear1.bias, rows, self.linear1.weight.t(), use_gelu=self.activation_relu_or_gelu == 2
        )
        out = F.linear(hidden, self.linear2.weight, self.linear2.bias)
        return out.view(*x.shape[:-1], out.shape[-1])


def _rewritable(module: nn.Module) -> bool:
    # Exactly the stock module in the configuration the rewrite reproduces; a subclass
    # may have changed forward, and separate or extra K/V projections take another path.
    return (
        type(module) is nn.MultiheadAttention
        and module.batch_first
        and module._qkv_same_embed_dim
        and module.bias_k is None
        and module.bias_v is None
        and not module.add_zero_attn
    )


def _switch(model: nn.Module, eligible: Callable[[nn.Module], bool], to: type[nn.Module]) -> int:
    """Swap the class of every eligible module in place: the subclass adds no state, so
    parameters, buffers and state_dict names stay as they were. Returns how many."""
    switched = 0
    for module in model.modules():
        if eligible(module):
            module.__class__ = to
            switched += 1
    return switched


def rewrite_attention(model: nn.Module) -> int:
    """Every eligible `nn.MultiheadAttention` becomes a `BatchFirstAttention`."""
    return _switch(model, _rewritable, BatchFirstAttention)


def _fusable_feed_forward(module: nn.Module) -> bool:
    return (
        type(module) is nn.TransformerEncoderLayer
        and module.activation_relu_or_gelu in (1, 2)  # ReLU or GELU, what the epilogue computes
        and module.linear1.bias is not None
    )


def rewrite_feed_forward(model: nn.Module) -> int:
    """Every eligible `nn.TransformerEncoderLayer` becomes a `FusedFeedForwardLayer`."""
    return _switch(model, _fusable_feed_forward, FusedFeedForwardLayer)


def rewrite_for_export(model: nn.Module, backend: str) -> dict[str, int]:
    """The rewrites for `backend`, applied in place; {rewrite: modules changed}.

    AOTInductor only: Torch-TensorRT has its own attention converters, and its output
    with the rewrite has not been measured (TensorRT does not run on this project's
    machines), so its graphs stay as the user wrote them."""
    if backend != "inductor":
        return {}
    counts = {"attention-batch-first": rewrite_attention(model), "fused-feed-forward": rewrite_feed_forward(model)}
    return {name: count for name, count in counts.items() if count}
