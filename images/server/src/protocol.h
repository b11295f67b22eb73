// KServe V2 (Open Inference Protocol) REST bodies <-> native tensors, including
// Triton's binary tensor data extension in both directions. Everything a client sent
// is checked against the model signature here, so later stages only see valid,
// batch-shaped tensors. Errors are RequestError(kInvalidArgument) naming the problem.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "signature.h"
#include "tensor.h"

namespace trtaoti {

// The Triton binary extension's header, on requests and responses.
inline constexpr const char* kHeaderLengthHeader = "Inference-Header-Content-Length";

struct OutputRequest {
  int index = 0;        // into ModelSignature::outputs
  bool binary = false;  // return as raw bytes after the JSON header
};

// Triton's schedule policy extension: the request parameters `priority` (0: the
// model's default level; 1 is the most urgent) and `timeout` (microseconds in the
// queue; 0: none of its own). Only their types are checked here; the batcher, which
// knows the levels, refuses a priority out of range.
struct SchedulePolicyParameters {
  uint64_t priority = 0;
  int64_t timeout_us = 0;
};

// Throws 400 naming the parameter unless `value` is a JSON integer >= 0.
uint64_t ScheduleParameter(const nlohmann::json& value, const char* name);

struct InferRequest {
  std::optional<std::string> id;     // echoed back when present
  SchedulePolicyParameters schedule;
  std::vector<HostTensor> inputs;    // signature order, all with the same rows() >= 1
  std::vector<OutputRequest> outputs;  // response order
  int64_t batch_size() const { return inputs.empty() ? 0 : inputs.front().rows(); }
};

// Collects a request's inputs, checking each declaration against the signature as it
// comes (unknown or repeated name, datatype, rank, non-batch dims, batch 0, size) and
// the set as a whole at the end (missing inputs, batch sizes that disagree). Shared by
// the REST and gRPC front ends so both reject the same requests with the same words.
class InputCollector {
 public:
  struct Slot {
    int index;         // into ModelSignature::inputs
    Shape shape;       // validated
    size_t nbytes;     // what the data must hold
  };

  explicit InputCollector(const ModelSignature& signature);
  Slot Declare(const std::string& name, const std::string& datatype, const Shape& shape);
  void Set(const Slot& slot, HostTensor tensor);
  // Signature order; every input present, all with the same batch size.
  std::vector<HostTensor> Finish();

 private:
  const ModelSignature& signature_;
  std::vector<HostTensor> inputs_;
  std::vector<bool> seen_;
};

// Throws 400 for an output the model does not have.
int OutputIndex(const ModelSignature& signature, const std::string& name);

// `body` is the whole HTTP body; binary inputs become views into it (no copy), so it
// must be shared. `json_length` is the Inference-Header-Content-Length header, if any.
InferRequest ParseInferRequest(const std::shared_ptr<const std::string>& body, std::optional<size_t> json_length,
                               const ModelSignature& signature);

struct HttpPayload {
  std::string body;
  std::string content_type;
  std::optional<size_t> json_length;  // set when binary outputs follow the JSON
};

// `outputs` are all of the model's outputs (signature order) for this request.
HttpPayload EncodeInferResponse(const std::string& model_name, const std::string& model_version,
                                const InferRequest& request, const ModelSignature& signature,
                                const std::vector<HostTensor>& outputs);

nlohmann::json ModelMetadataJson(const ModelSignature& signature, const std::string& model_name,
                                 const std::string& model_version);
nlohmann::json ServerMetadataJson(const std::string& version);

// What the server serves, in the shape of Triton's model configuration (its JSON form,
// GET /v2/models/{m}/config): perf_analyzer and Triton-aware clients read
// max_batch_size, the per-row dims and the dynamic batching settings from it.
struct ServingConfig {
  int64_t batch_min = 1;
  int64_t batch_opt = 1;
  int64_t batch_max = 1;
  int64_t max_queue_delay_us = 0;
  uint64_t priority_levels = 1;
  uint64_t default_priority_level = 1;
  int64_t max_queue_size = 0;
  int64_t default_timeout_us = 0;
  bool timeout_action_delay = false;
  bool allow_timeout_override = false;
  int runners = 1;
  bool gpu = false;
};
nlohmann::json ModelConfigJson(const ModelSignature& signature, const std::string& model_name,
                               const ServingConfig& serving);
std::string ErrorJson(const std::string& message);

}  // namespace trtaoti
