// The AOTInductor package behind the batcher: loads a .pt2 with
// torch::inductor::AOTIModelPackageLoader, reads its signature from the package
// metadata, and runs batches of host tensors on the configured device.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "batcher.h"
#include "signature.h"

namespace torch::inductor {
class AOTIModelPackageLoader;
}

namespace trtaoti {

class Device;

struct ModelOptions {
  std::string package_path;
  std::string device = "cpu";  // cpu | cuda:N
  int runners = 1;             // concurrent run() calls the loader allows
  int intra_op_threads = 0;    // per batch on CPU; 0 keeps torch's default
  std::string torchtrt_runtime;  // libtorchtrt_runtime.so to preload; "" = only if the package needs it
  // CUDA graphs for batches of up to this many rows (captured at load for the range's
  // min and the powers of two above it, each runner); 0: off. Failing to capture turns
  // them off with a warning, never the server.
  int64_t cuda_graph_max_batch = 0;
};

class AotiModel : public BatchExecutor {
 public:
  // Throws std::runtime_error with a message fit for an operator's eyes.
  explicit AotiModel(const ModelOptions& options);
  ~AotiModel() override;

  const ModelSignature& signature() const { return signature_; }
  std::string device_name() const;

  int runners() const { return runners_; }

  // Thread-safe across runners; one batch per runner at a time (batcher.h).
  std::vector<HostTensor> Execute(int runner, const std::vector<HostTensor>& inputs) override;
  HostTensor AllocateInput(int runner, size_t index, DataType dtype, const Shape& shape) override;

 private:
  void EnableGraphs();  // during construction, under the loader construction lock

  ModelOptions options_;
  int runners_ = 1;
  std::unique_ptr<Device> device_;
  std::unique_ptr<torch::inductor::AOTIModelPackageLoader> loader_;
  ModelSignature signature_;
};

}  // namespace trtaoti
