// Compiled only when CMake finds a CUDA toolkit (c10/cuda headers need it).
#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <optional>

#include "device.h"

namespace trtaoti {
namespace {

class CudaDevice : public Device {
 public:
  explicit CudaDevice(int index) : index_(static_cast<c10::DeviceIndex>(index)) {
    if (index >= static_cast<int>(c10::cuda::device_count())) {
      throw std::runtime_error("cuda:" + std::to_string(index) + " does not exist (" +
                               std::to_string(c10::cuda::device_count()) + " CUDA devices visible)");
    }
  }

  std::string name() const override { return "cuda:" + std::to_string(index_); }
  int index() const override { return index_; }

  std::vector<at::Tensor> Run(torch::inductor::AOTIModelPackageLoader& loader,
                              const std::vector<at::Tensor>& host_inputs) override {
    const at::Device device(at::kCUDA, index_);
    c10::cuda::CUDAGuard device_guard(device);
    c10::cuda::CUDAStream stream = WorkerStream();
    c10::cuda::CUDAStreamGuard stream_guard(stream);

    std::vector<at::Tensor> device_inputs;
    device_inputs.reserve(host_inputs.size());
    for (const at::Tensor& host : host_inputs) {
      // Only a page-locked source makes the copy asynchronous; batches the batcher
      // assembled already are (AllocateHost), a lone request's body view is not.
      at::Tensor source = host.is_pinned() ? host : host.pin_memory();
      device_inputs.push_back(source.to(device, /*non_blocking=*/true));
    }
    std::vector<at::Tensor> outputs = loader.run(device_inputs, stream.stream());
    std::vector<at::Tensor> host_outputs;
    host_outputs.reserve(outputs.size());
    for (const at::Tensor& output : outputs) {
      at::Tensor host = at::empty(output.sizes(), output.options().device(at::kCPU).pinned_memory(true));
      host.copy_(output, /*non_blocking=*/true);
      host_outputs.push_back(std::move(host));
    }
    stream.synchronize();
    return host_outputs;
  }

  at::Tensor AllocateHost(at::IntArrayRef shape, at::ScalarType dtype) override {
    return at::empty(shape, at::TensorOptions().dtype(dtype).pinned_memory(true));
  }

 private:
  // One stream per batcher worker (= per runner), so concurrent batches overlap
  // their copies and kernels instead of serialising on the default stream.
  c10::cuda::CUDAStream WorkerStream() const {
    thread_local std::optional<c10::cuda::CUDAStream> stream;
    if (!stream || stream->device_index() != index_) {
      stream = c10::cuda::getStreamFromPool(/*isHighPriority=*/false, index_);
    }
    return *stream;
  }

  c10::DeviceIndex index_;
};

}  // namespace

bool BuiltWithCuda() { return true; }

std::unique_ptr<Device> MakeCudaDevice(int index) { return std::make_unique<CudaDevice>(index); }

}  // namespace trtaoti
