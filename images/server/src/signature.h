// What the server serves, read from the package's own metadata (docs/package-format.md):
// input/output names, datatypes, shapes and the compiled batch range. Torch-free.
#pragma once

#include <map>
#include <string>
#include <unordered_map>
#include <vector>

#include "tensor.h"

namespace trtaoti {

struct ModelSignature {
  std::string name;
  std::vector<TensorSpec> inputs;   // call order
  std::vector<TensorSpec> outputs;  // flattened output order
  int64_t batch_min = 1;
  int64_t batch_opt = 1;
  int64_t batch_max = 1;
  std::string backend;    // inductor | tensorrt
  std::string precision;  // fp32 | fp16 | bf16
  std::string device;     // cpu | cuda
  std::string artifact_key;
  bool requires_torchtrt_runtime = false;
  std::map<std::string, std::string> versions;

  int InputIndex(const std::string& name) const;   // -1 when unknown
  int OutputIndex(const std::string& name) const;  // -1 when unknown
};

// Throws std::runtime_error naming the missing or malformed key.
ModelSignature SignatureFromMetadata(const std::unordered_map<std::string, std::string>& metadata);

}  // namespace trtaoti
