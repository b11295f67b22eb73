#include "signature.h"

#include <nlohmann/json.hpp>
#include <stdexcept>

namespace trtaoti {
namespace {

using nlohmann::json;

const std::string& Required(const std::unordered_map<std::string, std::string>& metadata, const std::string& key) {
  auto it = metadata.find(key);
  if (it == metadata.end()) {
    throw std::runtime_error("package metadata lacks '" + key +
                             "' (not a trtaoti package? see docs/package-format.md)");
  }
  return it->second;
}

std::string Optional(const std::unordered_map<std::string, std::string>& metadata, const std::string& key) {
  auto it = metadata.find(key);
  return it == metadata.end() ? std::string() : it->second;
}

std::vector<TensorSpec> ParseSpecs(const std::string& key, const std::string& text) {
  std::vector<TensorSpec> specs;
  try {
    json list = json::parse(text);
    if (!list.is_array() || list.empty()) throw std::runtime_error("expected a non-empty JSON list");
    for (const json& item : list) {
      TensorSpec spec;
      spec.name = item.at("name").get<std::string>();
      std::string dtype = item.at("datatype").get<std::string>();
      auto parsed = ParseDataType(dtype);
      if (!parsed) throw std::runtime_error("unsupported datatype '" + dtype + "'");
      spec.dtype = *parsed;
      spec.shape = item.at("shape").get<Shape>();
      if (spec.shape.empty()) throw std::runtime_error("'" + spec.name + "' has no batch dimension");
      for (int64_t d : spec.shape) {
        if (d < kDynamicDim) throw std::runtime_error("'" + spec.name + "' has a negative dimension");
      }
      spec.shape[0] = kDynamicDim;  // the batch dimension, whatever the writer put there
      specs.push_back(std::move(spec));
    }
  } catch (const std::exception& e) {
    throw std::runtime_error("package metadata '" + key + "' is malformed: " + e.what());
  }
  return specs;
}

int64_t ParseBatch(const std::unordered_map<std::string, std::string>& metadata, const std::string& key) {
  const std::string& text = Required(metadata, key);
  size_t used = 0;
  int64_t value = 0;
  try {
    value = std::stoll(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != text.size() || value < 1) {
    throw std::runtime_error("package metadata '" + key + "' is not a positive integer: '" + text + "'");
  }
  return value;
}

}  // namespace

int ModelSignature::InputIndex(const std::string& input_name) const {
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (inputs[i].name == input_name) return static_cast<int>(i);
  }
  return -1;
}

int ModelSignature::OutputIndex(const std::string& output_name) const {
  for (size_t i = 0; i < outputs.size(); ++i) {
    if (outputs[i].name == output_name) return static_cast<int>(i);
  }
  return -1;
}

ModelSignature SignatureFromMetadata(const std::unordered_map<std::string, std::string>& metadata) {
  const std::string& format = Required(metadata, "trtaoti.format");
  if (format != "1") throw std::runtime_error("unsupported trtaoti.format '" + format + "' (this server reads 1)");
  ModelSignature sig;
  sig.name = Required(metadata, "trtaoti.model_name");
  sig.inputs = ParseSpecs("trtaoti.inputs", Required(metadata, "trtaoti.inputs"));
  sig.outputs = ParseSpecs("trtaoti.outputs", Required(metadata, "trtaoti.outputs"));
  sig.batch_min = ParseBatch(metadata, "trtaoti.batch_min");
  sig.batch_opt = ParseBatch(metadata, "trtaoti.batch_opt");
  sig.batch_max = ParseBatch(metadata, "trtaoti.batch_max");
  if (!(sig.batch_min <= sig.batch_opt && sig.batch_opt <= sig.batch_max)) {
    throw std::runtime_error("package metadata batch range needs min <= opt <= max");
  }
  sig.backend = Optional(metadata, "trtaoti.backend");
  sig.precision = Optional(metadata, "trtaoti.precision");
  sig.device = Optional(metadata, "trtaoti.device");
  sig.artifact_key = Optional(metadata, "trtaoti.artifact_key");
  sig.requires_torchtrt_runtime = Optional(metadata, "trtaoti.requires_torchtrt_runtime") == "true";
  std::string versions = Optional(metadata, "trtaoti.versions");
  if (!versions.empty()) {
    try {
      const json parsed = json::parse(versions);
      if (!parsed.is_object()) throw std::runtime_error("expected a JSON object");
      for (auto& [k, v] : parsed.items()) {
        sig.versions[k] = v.is_string() ? v.get<std::string>() : v.dump();
      }
    } catch (const std::exception& e) {
      throw std::runtime_error(std::string("package metadata 'trtaoti.versions' is malformed: ") + e.what());
    }
  }
  return sig;
}

}  // namespace trtaoti
