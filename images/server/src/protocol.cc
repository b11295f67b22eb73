#include "protocol.h"

#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string_view>
#include <type_traits>

#include "json_overflow.h"
#include "status.h"

namespace trtaoti {
namespace {

using nlohmann::json;

const json* Find(const json& object, const char* key) {
  auto it = object.find(key);
  return it == object.end() ? nullptr : &*it;
}

std::string Describe(const json& value) {
  std::string text = value.dump();
  if (text.size() > 40) text = text.substr(0, 37) + "...";
  return text;
}

// One JSON element -> one native element of the tensor's datatype, range-checked.
template <typename T>
T JsonToElement(const json& value, const std::string& input, DataType dtype) {
  auto fail = [&](const char* why) {
    return BadRequest("input '" + input + "': element " + Describe(value) + " " + why + " for " +
                      std::string(DataTypeName(dtype)));
  };
  if constexpr (std::is_same_v<T, bool>) {
    if (!value.is_boolean()) throw fail("is not a boolean");
    return value.get<bool>();
  } else if constexpr (std::is_integral_v<T>) {
    if (value.is_number_unsigned()) {
      auto v = value.get<uint64_t>();
      if (v > static_cast<uint64_t>(std::numeric_limits<T>::max())) throw fail("is out of range");
      return static_cast<T>(v);
    }
    if (value.is_number_integer()) {
      auto v = value.get<int64_t>();
      if (v < static_cast<int64_t>(std::numeric_limits<T>::min()) ||
          (v > 0 && static_cast<uint64_t>(v) > static_cast<uint64_t>(std::numeric_limits<T>::max()))) {
        throw fail("is out of range");
      }
      return static_cast<T>(v);
    }
    throw fail("is not an integer");
  } else {
    // Floating types, FP16/BF16 included: a JSON number that stays finite in T (what
    // rounds to T's largest value does). JSON has no NaN/Infinity literals, and a
    // number that would become infinity is a client's mistake, not a value to serve.
    if (!value.is_number()) throw fail("is not a number");
    const T converted = static_cast<T>(value.get<double>());
    if (std::isinf(static_cast<double>(converted))) throw fail("is out of range");
    return converted;
  }
}

template <typename T>
void FillFromJson(const std::vector<const json*>& elements, const std::string& input, DataType dtype, std::byte* out) {
  for (const json* element : elements) {
    T v = JsonToElement<T>(*element, input, dtype);
    std::memcpy(out, &v, sizeof(T));
    out += sizeof(T);
  }
}

// Nested `data` arrays are accepted up to the tensor's rank (row-major order); the
// depth bound also keeps hostile nesting from recursing deep.
void Flatten(const json& data, size_t depth, size_t max_depth, const std::string& input,
             std::vector<const json*>& out) {
  if (!data.is_array()) {
    out.push_back(&data);
    return;
  }
  if (depth >= max_depth) throw BadRequest("input '" + input + "': 'data' is nested deeper than the tensor's rank");
  for (const json& item : data) Flatten(item, depth + 1, max_depth, input, out);
}

HostTensor DecodeJsonData(const json& data, const TensorSpec& spec, const Shape& shape) {
  if (!data.is_array()) throw BadRequest("input '" + spec.name + "': 'data' must be an array");
  std::vector<const json*> elements;
  elements.reserve(static_cast<size_t>(NumElements(shape)));
  Flatten(data, 0, shape.size(), spec.name, elements);
  if (static_cast<int64_t>(elements.size()) != NumElements(shape)) {
    throw BadRequest("input '" + spec.name + "': 'data' has " + std::to_string(elements.size()) +
                     " elements but shape " + ShapeString(shape) + " needs " + std::to_string(NumElements(shape)));
  }
  HostTensor tensor = HostTensor::Allocate(spec.dtype, shape);
  std::byte* out = tensor.mutable_data();
  switch (spec.dtype) {
    case DataType::kBool: FillFromJson<bool>(elements, spec.name, spec.dtype, out); break;
    case DataType::kUint8: FillFromJson<uint8_t>(elements, spec.name, spec.dtype, out); break;
    case DataType::kInt8: FillFromJson<int8_t>(elements, spec.name, spec.dtype, out); break;
    case DataType::kInt16: FillFromJson<int16_t>(elements, spec.name, spec.dtype, out); break;
    case DataType::kInt32: FillFromJson<int32_t>(elements, spec.name, spec.dtype, out); break;
    case DataType::kInt64: FillFromJson<int64_t>(elements, spec.name, spec.dtype, out); break;
    case DataType::kFp16: FillFromJson<c10::Half>(elements, spec.name, spec.dtype, out); break;
    case DataType::kBf16: FillFromJson<c10::BFloat16>(elements, spec.name, spec.dtype, out); break;
    case DataType::kFp32: FillFromJson<float>(elements, spec.name, spec.dtype, out); break;
    case DataType::kFp64: FillFromJson<double>(elements, spec.name, spec.dtype, out); break;
  }
  return tensor;
}

Shape ParseShapeJson(const json& input, const std::string& name) {
  const json* shape_json = Find(input, "shape");
  if (!shape_json || !shape_json->is_array()) throw BadRequest("input '" + name + "' lacks a 'shape' array");
  Shape shape;
  for (const json& d : *shape_json) {
    if (!d.is_number_integer() || d.get<int64_t>() < 0) {
      throw BadRequest("input '" + name + "': shape entries must be non-negative integers, got " +
                       Describe(*shape_json));
    }
    shape.push_back(d.get<int64_t>());
  }
  return shape;
}

void CheckShape(const TensorSpec& spec, const Shape& shape) {
  for (int64_t d : shape) {
    if (d < 0) throw BadRequest("input '" + spec.name + "': shape " + ShapeString(shape) + " has a negative dimension");
  }
  if (shape.size() != spec.shape.size()) {
    throw BadRequest("input '" + spec.name + "': shape " + ShapeString(shape) + " has rank " +
                     std::to_string(shape.size()) + ", the model expects " + ShapeString(spec.shape));
  }
  if (shape[0] == 0) throw BadRequest("input '" + spec.name + "': batch size 0 (shape " + ShapeString(shape) + ")");
  for (size_t i = 1; i < shape.size(); ++i) {
    if (spec.shape[i] != kDynamicDim && shape[i] != spec.shape[i]) {
      throw BadRequest("input '" + spec.name + "': dimension " + std::to_string(i) + " is " + std::to_string(shape[i]) +
                       ", the model expects " + ShapeString(spec.shape));
    }
  }
  // Bound the element count before anything multiplies it into a byte size.
  double elements = 1;
  for (int64_t d : shape) elements *= static_cast<double>(d);
  if (elements > static_cast<double>(std::numeric_limits<int32_t>::max())) {
    throw BadRequest("input '" + spec.name + "': shape " + ShapeString(shape) + " is too large");
  }
}

// Whose `parameters` these are, for the error message: "the request", or "input 'x'".
// Built only when there is an error: every request passes through here once per tensor.
struct Owner {
  const char* kind;
  const std::string* name = nullptr;  // none for the request itself
  std::string Describe() const { return name ? std::string(kind) + " '" + *name + "'" : kind; }
};

// The `parameters` of the request, an input or an output: absent, or an object. Any other
// value is the client's mistake, answered 400 rather than read as "no parameters".
const json* Parameters(const json& object, const Owner& owner) {
  const json* parameters = Find(object, "parameters");
  if (parameters && !parameters->is_object()) throw BadRequest(owner.Describe() + ": 'parameters' must be an object");
  return parameters;
}

bool BinaryFlag(const json& object, const Owner& owner, const char* key, bool fallback) {
  const json* parameters = Parameters(object, owner);
  if (!parameters) return fallback;
  const json* flag = Find(*parameters, key);
  if (!flag) return fallback;
  if (!flag->is_boolean()) throw BadRequest(std::string("parameter '") + key + "' must be a boolean");
  return flag->get<bool>();
}

template <typename T>
void AppendElements(json& array, const std::byte* data, int64_t count) {
  for (int64_t i = 0; i < count; ++i) {
    T v;
    std::memcpy(&v, data + i * sizeof(T), sizeof(T));
    if constexpr (std::is_same_v<T, c10::Half> || std::is_same_v<T, c10::BFloat16>) {
      array.push_back(static_cast<float>(v));
    } else {
      array.push_back(v);
    }
  }
}

json TensorToJsonData(const HostTensor& tensor) {
  json array = json::array();
  const int64_t n = NumElements(tensor.shape());
  array.get_ref<json::array_t&>().reserve(static_cast<size_t>(n));
  switch (tensor.dtype()) {
    case DataType::kBool: AppendElements<bool>(array, tensor.data(), n); break;
    case DataType::kUint8: AppendElements<uint8_t>(array, tensor.data(), n); break;
    case DataType::kInt8: AppendElements<int8_t>(array, tensor.data(), n); break;
    case DataType::kInt16: AppendElements<int16_t>(array, tensor.data(), n); break;
    case DataType::kInt32: AppendElements<int32_t>(array, tensor.data(), n); break;
    case DataType::kInt64: AppendElements<int64_t>(array, tensor.data(), n); break;
    case DataType::kFp16: AppendElements<c10::Half>(array, tensor.data(), n); break;
    case DataType::kBf16: AppendElements<c10::BFloat16>(array, tensor.data(), n); break;
    case DataType::kFp32: AppendElements<float>(array, tensor.data(), n); break;
    case DataType::kFp64: AppendElements<double>(array, tensor.data(), n); break;
  }
  return array;
}

json SpecJson(const TensorSpec& spec) {
  return {{"name", spec.name}, {"datatype", DataTypeName(spec.dtype)}, {"shape", spec.shape}};
}

}  // namespace

InputCollector::InputCollector(const ModelSignature& signature)
    : signature_(signature), inputs_(signature.inputs.size()), seen_(signature.inputs.size(), false) {}

InputCollector::Slot InputCollector::Declare(const std::string& name, const std::string& datatype, const Shape& shape) {
  const int index = signature_.InputIndex(name);
  if (index < 0) throw BadRequest("unknown input '" + name + "'");
  if (seen_[index]) throw BadRequest("input '" + name + "' is given twice");
  seen_[index] = true;
  const TensorSpec& spec = signature_.inputs[index];
  if (datatype != DataTypeName(spec.dtype)) {
    throw BadRequest("input '" + name + "' has datatype " + datatype + ", the model expects " +
                     std::string(DataTypeName(spec.dtype)));
  }
  CheckShape(spec, shape);
  return Slot{index, shape, static_cast<size_t>(NumElements(shape)) * ElementSize(spec.dtype)};
}

void InputCollector::Set(const Slot& slot, HostTensor tensor) { inputs_[slot.index] = std::move(tensor); }

std::vector<HostTensor> InputCollector::Finish() {
  for (size_t i = 0; i < signature_.inputs.size(); ++i) {
    if (!seen_[i]) throw BadRequest("missing input '" + signature_.inputs[i].name + "'");
  }
  const int64_t batch = inputs_[0].rows();
  for (size_t i = 1; i < inputs_.size(); ++i) {
    if (inputs_[i].rows() != batch) {
      throw BadRequest("inputs disagree on the batch size: '" + signature_.inputs[0].name + "' has " +
                       std::to_string(batch) + " rows, '" + signature_.inputs[i].name + "' has " +
                       std::to_string(inputs_[i].rows()));
    }
  }
  return std::move(inputs_);
}

uint64_t ScheduleParameter(const json& value, const char* name) {
  if (value.is_number_unsigned()) return value.get<uint64_t>();
  throw BadRequest(std::string("parameter '") + name + "' must be a non-negative integer" +
                   (std::string_view(name) == "timeout" ? " (microseconds)" : "") + ", got " + Describe(value));
}

int OutputIndex(const ModelSignature& signature, const std::string& name) {
  const int index = signature.OutputIndex(name);
  if (index < 0) throw BadRequest("unknown output '" + name + "'");
  return index;
}

InferRequest ParseInferRequest(const std::shared_ptr<const std::string>& body, std::optional<size_t> json_length,
                               const ModelSignature& signature) {
  const size_t header_size = json_length.value_or(body->size());
  if (header_size > body->size()) {
    throw BadRequest(std::string(kHeaderLengthHeader) + " is " + std::to_string(header_size) +
                     " but the body has only " + std::to_string(body->size()) + " bytes");
  }
  json doc;
  try {
    doc = json::parse(body->data(), body->data() + header_size);
  } catch (const json::parse_error& e) {
    throw BadRequest(std::string("malformed JSON: ") + e.what());
  } catch (const json::out_of_range&) {
    // A number beyond a double (1e999): well-formed JSON, still the client's error.
    throw BadRequest(DescribeNumberOverflow(std::string_view(body->data(), header_size)));
  }
  if (!doc.is_object()) throw BadRequest("the request must be a JSON object");

  InferRequest request;
  if (const json* id = Find(doc, "id")) {
    if (!id->is_string()) throw BadRequest("'id' must be a string");
    request.id = id->get<std::string>();
  }
  if (const json* parameters = Parameters(doc, Owner{"the request"})) {
    if (const json* priority = Find(*parameters, "priority")) {
      request.schedule.priority = ScheduleParameter(*priority, "priority");
    }
    if (const json* timeout = Find(*parameters, "timeout")) {
      const uint64_t us = ScheduleParameter(*timeout, "timeout");
      if (us > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        throw BadRequest("parameter 'timeout' is out of range, got " + Describe(*timeout));
      }
      request.schedule.timeout_us = static_cast<int64_t>(us);
    }
  }

  const json* inputs = Find(doc, "inputs");
  if (!inputs || !inputs->is_array() || inputs->empty())
    throw BadRequest("the request needs a non-empty 'inputs' list");

  InputCollector collector(signature);
  size_t binary_offset = header_size;
  for (const json& input : *inputs) {
    if (!input.is_object()) throw BadRequest("each entry of 'inputs' must be an object");
    const json* name_json = Find(input, "name");
    if (!name_json || !name_json->is_string()) throw BadRequest("an input lacks a string 'name'");
    const std::string name = name_json->get<std::string>();
    const json* datatype = Find(input, "datatype");
    if (!datatype || !datatype->is_string()) throw BadRequest("input '" + name + "' lacks a string 'datatype'");
    const InputCollector::Slot slot =
        collector.Declare(name, datatype->get<std::string>(), ParseShapeJson(input, name));
    const TensorSpec& spec = signature.inputs[slot.index];

    const json* parameters = Parameters(input, Owner{"input", &name});
    const json* binary_size = parameters ? Find(*parameters, "binary_data_size") : nullptr;
    if (binary_size) {
      if (!binary_size->is_number_unsigned()) {
        throw BadRequest("input '" + name + "': binary_data_size must be a non-negative integer");
      }
      const uint64_t size = binary_size->get<uint64_t>();
      if (size != slot.nbytes) {
        throw BadRequest("input '" + name + "': binary_data_size is " + std::to_string(size) + " but shape " +
                         ShapeString(slot.shape) + " of " + std::string(DataTypeName(spec.dtype)) + " needs " +
                         std::to_string(slot.nbytes) + " bytes");
      }
      if (size > body->size() - binary_offset) {
        throw BadRequest("input '" + name + "': binary data runs past the end of the body");
      }
      if (Find(input, "data")) throw BadRequest("input '" + name + "' has both 'data' and binary_data_size");
      // A view into the body: the body outlives the request through the shared owner.
      const std::byte* data = reinterpret_cast<const std::byte*>(body->data()) + binary_offset;
      collector.Set(slot, HostTensor(spec.dtype, slot.shape, body, data));
      binary_offset += size;
    } else {
      const json* data = Find(input, "data");
      if (!data) throw BadRequest("input '" + name + "' has neither 'data' nor parameters.binary_data_size");
      collector.Set(slot, DecodeJsonData(*data, spec, slot.shape));
    }
  }
  if (binary_offset != body->size()) {
    throw BadRequest("the body has " + std::to_string(body->size() - binary_offset) +
                     " bytes of binary data that no input claims");
  }
  request.inputs = collector.Finish();

  const bool binary_default = BinaryFlag(doc, Owner{"the request"}, "binary_data_output", false);
  const json* outputs = Find(doc, "outputs");
  if (outputs && !outputs->is_array()) throw BadRequest("'outputs' must be a list");
  if (outputs && !outputs->empty()) {
    for (const json& output : *outputs) {
      if (!output.is_object()) throw BadRequest("each entry of 'outputs' must be an object");
      const json* name = Find(output, "name");
      if (!name || !name->is_string()) throw BadRequest("a requested output lacks a string 'name'");
      const std::string& output_name = name->get_ref<const std::string&>();
      const int index = OutputIndex(signature, output_name);
      request.outputs.push_back(
          {index, BinaryFlag(output, Owner{"output", &output_name}, "binary_data", binary_default)});
    }
  } else {
    for (size_t i = 0; i < signature.outputs.size(); ++i) {
      request.outputs.push_back({static_cast<int>(i), binary_default});
    }
  }
  return request;
}

HttpPayload EncodeInferResponse(const std::string& model_name, const std::string& model_version,
                                const InferRequest& request, const ModelSignature& signature,
                                const std::vector<HostTensor>& outputs) {
  json doc = {{"model_name", model_name}, {"model_version", model_version}};
  if (request.id) doc["id"] = *request.id;
  json& list = doc["outputs"] = json::array();
  size_t binary_bytes = 0;
  for (const OutputRequest& wanted : request.outputs) {
    const HostTensor& tensor = outputs.at(wanted.index);
    json entry = {{"name", signature.outputs[wanted.index].name},
                  {"datatype", DataTypeName(tensor.dtype())},
                  {"shape", tensor.shape()}};
    if (wanted.binary) {
      entry["parameters"] = {{"binary_data_size", tensor.nbytes()}};
      binary_bytes += tensor.nbytes();
    } else {
      entry["data"] = TensorToJsonData(tensor);
    }
    list.push_back(std::move(entry));
  }
  HttpPayload payload;
  payload.body = doc.dump();
  if (binary_bytes == 0) {
    payload.content_type = "application/json";
    return payload;
  }
  payload.json_length = payload.body.size();
  payload.content_type = "application/octet-stream";
  payload.body.reserve(payload.body.size() + binary_bytes);
  for (const OutputRequest& wanted : request.outputs) {
    if (!wanted.binary) continue;
    const HostTensor& tensor = outputs.at(wanted.index);
    payload.body.append(reinterpret_cast<const char*>(tensor.data()), tensor.nbytes());
  }
  return payload;
}

json ModelMetadataJson(const ModelSignature& signature, const std::string& model_name,
                       const std::string& model_version) {
  json inputs = json::array();
  for (const auto& spec : signature.inputs) inputs.push_back(SpecJson(spec));
  json outputs = json::array();
  for (const auto& spec : signature.outputs) outputs.push_back(SpecJson(spec));
  json doc = {{"name", model_name},
              {"versions", {model_version}},
              {"platform", signature.backend == "tensorrt" ? "torch_tensorrt_aoti" : "pytorch_aoti"},
              {"inputs", std::move(inputs)},
              {"outputs", std::move(outputs)}};
  // Not part of KServe V2, but what a client needs to size its requests well.
  doc["parameters"] = {{"batch_min", signature.batch_min}, {"batch_opt", signature.batch_opt},
                       {"batch_max", signature.batch_max}, {"precision", signature.precision},
                       {"device", signature.device},       {"artifact_key", signature.artifact_key}};
  return doc;
}

namespace {

// Triton's DataType enum names: TYPE_ + the KServe datatype, except BYTES (TYPE_STRING).
std::string TritonTypeName(DataType dtype) {
  const std::string_view name = DataTypeName(dtype);
  return name == "BYTES" ? "TYPE_STRING" : "TYPE_" + std::string(name);
}

json ConfigTensorsJson(const std::vector<TensorSpec>& specs) {
  json tensors = json::array();
  for (const auto& spec : specs) {
    // With max_batch_size > 0 Triton's dims leave out the batch dimension.
    const Shape row(spec.shape.begin() + 1, spec.shape.end());
    tensors.push_back({{"name", spec.name}, {"data_type", TritonTypeName(spec.dtype)}, {"dims", row}});
  }
  return tensors;
}

}  // namespace

json ModelConfigJson(const ModelSignature& signature, const std::string& model_name, const ServingConfig& serving) {
  // Triton's fields are int32/uint32; flags the batcher accepts may be larger.
  constexpr int64_t kInt32Max = std::numeric_limits<int32_t>::max();
  constexpr int64_t kUint32Max = std::numeric_limits<uint32_t>::max();
  const int64_t batch_max = std::min(serving.batch_max, kInt32Max);
  json preferred = json::array({std::min(serving.batch_opt, kInt32Max)});
  if (batch_max != preferred[0].get<int64_t>()) preferred.push_back(batch_max);
  // Triton's defaults (REJECT, no timeout, no override) are left out, as its own
  // config endpoint leaves out proto fields at their defaults.
  json queue_policy = {{"max_queue_size", std::min(serving.max_queue_size, kUint32Max)}};
  if (serving.default_timeout_us > 0) queue_policy["default_timeout_microseconds"] = serving.default_timeout_us;
  if (serving.timeout_action_delay) queue_policy["timeout_action"] = "DELAY";
  if (serving.allow_timeout_override) queue_policy["allow_timeout_override"] = true;
  json dynamic_batching = {{"preferred_batch_size", std::move(preferred)},
                           {"max_queue_delay_microseconds", serving.max_queue_delay_us},
                           {"default_queue_policy", std::move(queue_policy)}};
  // One level is Triton's priority_levels 0 (priorities off): the same single queue.
  if (serving.priority_levels > 1) {
    dynamic_batching["priority_levels"] = serving.priority_levels;
    dynamic_batching["default_priority_level"] = serving.default_priority_level;
  }
  return {
      {"name", model_name},
      {"platform", signature.backend == "tensorrt" ? "torch_tensorrt_aoti" : "pytorch_aoti"},
      {"backend", "trtaoti"},
      {"max_batch_size", batch_max},
      {"input", ConfigTensorsJson(signature.inputs)},
      {"output", ConfigTensorsJson(signature.outputs)},
      {"dynamic_batching", std::move(dynamic_batching)},
      {"instance_group",
       json::array(
           {{{"name", model_name}, {"kind", serving.gpu ? "KIND_GPU" : "KIND_CPU"}, {"count", serving.runners}}})},
      // Below min rows are padded up to it (Triton has no such setting).
      {"parameters", {{"batch_min", {{"string_value", std::to_string(serving.batch_min)}}}}},
  };
}

json ServerMetadataJson(const std::string& version) {
  return {{"name", "trtaoti-server"}, {"version", version}, {"extensions", {"binary_tensor_data", "schedule_policy"}}};
}

std::string ErrorJson(const std::string& message) {
  // Messages can quote client bytes (a JSON parse error does): never throw on bad UTF-8.
  return json{{"error", message}}.dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace trtaoti
