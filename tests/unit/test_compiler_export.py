"""torch.export with the profile's batch range, and the errors that name inputs and ranges."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from compiler_fixtures import example_factory, example_model, plan_for
from trtaoti.compiler.errors import InvalidInput
from trtaoti.compiler.export import SignatureAdapter, export_model, output_names_from, prepare_module
from trtaoti.compiler.samples import SampleInputs
from trtaoti.compiler.source import LoadedModel, check_examples


def mlp_plan(min_: int, opt: int, max_: int, **updates):
    model = example_model("mlp", batchProfiles=[{"name": "p", "min": min_, "opt": opt, "max": max_}], **updates)
    return plan_for(model)


@pytest.mark.parametrize(
    ("profile", "trace_batch"),
    [((1, 1, 32), 2), ((1, 4, 32), 4), ((1, 1, 1), 1), ((8, 8, 8), 8), ((1, 1, 2), 2), ((3, 3, 9), 3)],
)
def test_trace_batch_avoids_0_1_specialization(profile, trace_batch: int) -> None:
    plan = mlp_plan(*profile)
    assert plan.trace_batch == trace_batch
    assert profile[0] <= plan.trace_batch <= profile[2]


def test_profile_starting_at_batch_1_exports_the_whole_range() -> None:
    plan = mlp_plan(1, 1, 32)
    module, examples = example_factory("mlp.model:build")()
    samples = SampleInputs(plan.inputs, examples)
    exported = export_model(prepare_module(module, plan), plan, samples.make(plan.trace_batch), None)
    (value_range,) = exported.program.range_constraints.values()
    assert (int(value_range.lower), int(value_range.upper)) == (1, 32)
    runner = exported.program.module()
    for batch in (1, 32):
        (x,) = samples.make(batch)
        torch.testing.assert_close(runner(x), module(x))
    assert [(o.name, o.datatype, o.shape) for o in exported.outputs] == [("output__0", "FP32", [-1, 10])]


class FixedBatch(torch.nn.Module):
    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features.reshape(4, -1) * 2  # a literal batch: cannot serve other sizes


def test_model_that_fixes_the_batch_fails_naming_input_and_range() -> None:
    plan = mlp_plan(1, 4, 32)
    samples = SampleInputs(plan.inputs, None)
    with pytest.raises(InvalidInput) as error:
        export_model(prepare_module(FixedBatch(), plan), plan, samples.make(plan.trace_batch), None)
    message = str(error.value)
    assert "'features'" in message and "[1, 32]" in message and "profile 'p'" in message


class SumsOverBatch(torch.nn.Module):
    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features.sum(0)


def test_outputs_must_keep_the_batch_first() -> None:
    plan = mlp_plan(1, 4, 32)
    samples = SampleInputs(plan.inputs, None)
    with pytest.raises(
        InvalidInput, match=r"output 'output__0' has shape \[64\]: every output's first dimension must be the batch"
    ):
        export_model(prepare_module(SumsOverBatch(), plan), plan, samples.make(plan.trace_batch), None)


def test_example_inputs_must_match_the_spec() -> None:
    plan = plan_for(example_model("twoinput"))
    module, (image, class_id) = example_factory("twoinput.model:build")()

    def check(*examples: torch.Tensor) -> None:
        check_examples(LoadedModel(module, examples, None, "factory twoinput.model:build"), plan.inputs)

    check(image, class_id)
    with pytest.raises(
        InvalidInput, match=r"input 'class_id': .* gives torch.int32 but spec.inputs declares torch.int64"
    ):
        check(image, class_id.int())
    with pytest.raises(
        InvalidInput, match=r"input 'image': spec.inputs declares shape \[-1, 3, 32, 32\] .* \[16, 3, 28, 28\]"
    ):
        check(image[:, :, :28, :28], class_id)
    with pytest.raises(InvalidInput, match=r"takes 1 inputs but spec\.inputs declares 2"):
        check(image)


def test_integer_inputs_stay_integers_within_the_examples_range() -> None:
    plan = plan_for(example_model("twoinput", precision="fp16"))
    _, examples = example_factory("twoinput.model:build")()
    samples = SampleInputs(plan.inputs, examples)
    image, class_id = samples.make(64)
    assert image.dtype == torch.float32 and class_id.dtype == torch.int64
    assert int(class_id.min()) >= 0 and int(class_id.max()) <= 15 and len(set(class_id.tolist())) > 4
    assert torch.equal(samples.make(64)[0], image)  # seeded
    assert not torch.equal(samples.make(63)[0], image[:63])


def test_fp16_inductor_casts_weights_and_float_inputs_but_not_integers() -> None:
    plan = dataclasses.replace(plan_for(example_model("twoinput", precision="fp16")), device="cpu")
    module, _ = example_factory("twoinput.model:build")()
    adapter = prepare_module(module, plan)
    assert adapter.casts == [torch.float16, None]
    assert next(adapter.model.parameters()).dtype == torch.float16


def test_output_names() -> None:
    assert output_names_from({"logits": torch.ones(1), "embedding": torch.ones(1)}, 2, None) == ["logits", "embedding"]
    assert output_names_from((torch.ones(1), torch.ones(1)), 2, None) == ["output__0", "output__1"]
    assert output_names_from(torch.ones(1), 1, ["scores"]) == ["scores"]
    with pytest.raises(InvalidInput, match="2 outputs but 1 output names"):
        output_names_from((torch.ones(1), torch.ones(1)), 2, ["only"])
    assert isinstance(SignatureAdapter(torch.nn.Identity(), [None]), torch.nn.Module)
