"""The compiler's module rewrites (trtaoti.compiler.rewrites): each must compute what
the module it replaces computes, for every argument combination nn.MultiheadAttention
takes, and leave alone the modules it cannot reproduce."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from trtaoti.compiler.rewrites import (
    BatchFirstAttention,
    FusedFeedForwardLayer,
    rewrite_attention,
    rewrite_feed_forward,
    rewrite_for_export,
)

EMBED, HEADS, BATCH, TARGET, SOURCE = 32, 4, 3, 5, 7


def attention(**options) -> tuple[nn.MultiheadAttention, nn.MultiheadAttention]:
    torch.manual_seed(0)
    original = nn.MultiheadAttention(EMBED, HEADS, batch_first=True, **options).eval()
    rewritten = copy.deepcopy(original)
    assert rewrite_attention(rewritten) == 1
    return original, rewritten


def bool_mask(*shape: int) -> torch.Tensor:
    mask = torch.rand(*shape, generator=torch.Generator().manual_seed(1)) < 0.3
    mask[..., 0] = False  # no row masked out entirely (both would give NaN there)
    return mask


@pytest.mark.parametrize(
    "case",
    [
        "self",
        "self, padding mask",
        "self, float padding mask",
        "self, 2-D bool attn_mask",
        "self, per-head float attn_mask",
        "self, attn_mask and padding mask",
        "self, causal hint",
        "self, causal hint and float padding mask",
        "cross",
        "cross, padding mask",
        "no bias",
    ],
)
@torch.no_grad()
def test_batch_first_attention_matches_the_module(case):
    original, rewritten = attention(bias=case != "no bias")
    x = torch.randn(BATCH, TARGET, EMBED)
    memory = torch.randn(BATCH, SOURCE, EMBED)
    cross = case.startswith("cross")
    query, key = (x, memory) if cross else (x, x)
    source = SOURCE if cross else TARGET
    kwargs: dict = {"need_weights": False}
    if "padding mask" in case:
        padding = bool_mask(BATCH, source)
        kwargs["key_padding_mask"] = padding.float().masked_fill(padding, -1e4) if "float" in case else padding
    if "2-D bool attn_mask" in case or "attn_mask and" in case:
        kwargs["attn_mask"] = bool_mask(TARGET, source)
    if "per-head" in case:
        kwargs["attn_mask"] = torch.randn(BATCH * HEADS, TARGET, source)
    if "causal" in case:
        kwargs["attn_mask"] = nn.Transformer.generate_square_subsequent_mask(TARGET)
        kwargs["is_causal"] = True

    expected, _ = original(query, key, key, **kwargs)
    got, weights = rewritten(query, key, key, **kwargs)
    assert weights is None
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


@torch.no_grad()
def test_attention_weights_asked_for_take_the_original_path():
    original, rewritten = attention()
    x = torch.randn(BATCH, TARGET, EMBED)
    expected = original(x, x, x, need_weights=True)
    got = rewritten(x, x, x, need_weights=True)
    torch.testing.assert_close(got[0], expected[0])
    torch.testing.assert_close(got[1], expected[1])


@pytest.mark.parametrize(
    "options",
    [
        {"batch_first": False},  # already in the layout the module computes in
        {"kdim": 16, "vdim": 16},  # separate K/V projections
        {"add_bias_kv": True},
        {"add_zero_attn": True},
    ],
    ids=["seq-first", "kdim", "bias_kv", "zero_attn"],
)
def test_configurations_it_cannot_reproduce_are_left_alone(options):
    module = nn.MultiheadAttention(EMBED, HEADS, **{"batch_first": True, **options})
    assert rewrite_attention(module) == 0
    assert type(module) is nn.MultiheadAttention


def test_a_subclass_is_left_alone():
    class Custom(nn.MultiheadAttention):
        pass

    assert rewrite_attention(Custom(EMBED, HEADS, batch_first=True)) == 0


def encoder() -> nn.Module:
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(EMBED, HEADS, dim_feedforward=64, batch_first=True)
    return nn.TransformerEncoder(layer, 2, enable_nested_tensor=False).eval()


@torch.no_grad()
def test_an_encoder_stack_exports_without_the_sequence_first_copies():
    original = encoder()
    rewritten = copy.deepcopy(original)
    assert rewrite_for_export(rewritten, "inductor") == {"attention-batch-first": 2, "fused-feed-forward": 2}
    assert rewritten.state_dict().keys() == original.state_dict().keys()
    assert isinstance(rewritten.layers[0].self_attn, BatchFirstAttention)

    x = torch.randn(BATCH, TARGET, EMBED)
    padding = bool_mask(BATCH, TARGET)

    def ops(module: nn.Module) -> list[str]:
        program = torch.export.export(module, (x,), {"src_key_padding_mask": padding}, strict=False)
        torch.testing.assert_close(
            program.module()(x, src_key_padding_mask=padding),
            original(x, src_key_padding_mask=padding),
            rtol=1e-5,
            atol=1e-5,
        )
        return [str(n.target) for n in program.graph.nodes if n.op == "call_function"]

    before, after = ops(original), ops(rewritten)
    assert any("scaled_dot_product" in op for op in after)
    assert sum("_addmm_activation" in op for op in after) == 2
    layout_ops = ("aten.transpose", "aten.permute", "aten.clone", "aten.contiguous")
    count = lambda names: sum(op.startswith(layout_ops) for op in names)  # noqa: E731
    assert count(after) < count(before), (count(before), count(after))


def test_tensorrt_graphs_are_not_rewritten():
    model = encoder()
    assert rewrite_for_export(model, "tensorrt") == {}
    assert type(model.layers[0].self_attn) is nn.MultiheadAttention


@pytest.mark.parametrize("activation", ["relu", "gelu"])
@pytest.mark.parametrize("norm_first", [False, True])
@torch.no_grad()
def test_fused_feed_forward_matches_eager_inference(activation, norm_first):
    torch.manual_seed(0)
    original = nn.TransformerEncoderLayer(
        EMBED, HEADS, dim_feedforward=64, activation=activation, batch_first=True, norm_first=norm_first
    ).eval()
    rewritten = copy.deepcopy(original)
    assert rewrite_feed_forward(rewritten) == 1
    assert isinstance(rewritten, FusedFeedForwardLayer)
    x = torch.randn(BATCH, TARGET, EMBED)
    # What eager inference runs (the fused fast path), and the block as the module writes it.
    with torch.inference_mode():
        fast = original(x)
    slow = original._ff_block(x)
    torch.testing.assert_close(rewritten._ff_block(x), slow, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(rewritten(x), fast, rtol=1e-5, atol=1e-5)


def test_feed_forward_in_training_is_the_original():
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(EMBED, HEADS, dim_feedforward=64, dropout=0.0, batch_first=True)
    rewritten = copy.deepcopy(layer)
    rewrite_feed_forward(rewritten)
    x = torch.randn(BATCH, TARGET, EMBED)
    torch.testing.assert_close(rewritten.train()._ff_block(x), layer.train()._ff_block(x))


@pytest.mark.parametrize(
    "options",
    [{"activation": torch.tanh}, {"bias": False}],
    ids=["other activation", "no bias"],
)
def test_feed_forward_the_epilogue_cannot_compute_is_left_alone(options):
    layer = nn.TransformerEncoderLayer(EMBED, HEADS, dim_feedforward=64, batch_first=True, **options)
    assert rewrite_feed_forward(layer) == 0
    assert type(layer) is nn.TransformerEncoderLayer
