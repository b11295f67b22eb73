// Where a batch runs. The CPU device hands host tensors straight to the loader; the
// CUDA device (cuda_device.cc, compiled only when the build finds a CUDA toolkit)
// stages them through page-locked memory on a stream of the calling worker thread.
// Keeping this behind an interface keeps CUDA code and #ifdefs out of the hot path.
#pragma once

#include <ATen/Tensor.h>
#include <torch/csrc/inductor/aoti_package/model_package_loader.h>

#include <memory>
#include <string>
#include <vector>

namespace trtaoti {

class Device {
 public:
  virtual ~Device() = default;
  virtual std::string name() const = 0;
  // -1 for CPU; the loader's device_index argument.
  virtual int index() const = 0;
  // Host tensors in, host tensors out. Thread-safe.
  virtual std::vector<at::Tensor> Run(torch::inductor::AOTIModelPackageLoader& loader,
                                      const std::vector<at::Tensor>& host_inputs) = 0;
  // A writable host buffer for a batch's inputs.
  virtual at::Tensor AllocateHost(at::IntArrayRef shape, at::ScalarType dtype) = 0;
};

std::unique_ptr<Device> MakeCpuDevice();
// Throws std::runtime_error when this binary was built without CUDA support.
std::unique_ptr<Device> MakeCudaDevice(int index);
bool BuiltWithCuda();

// "cpu" or "cuda:N" (also "cuda" = "cuda:0").
std::unique_ptr<Device> MakeDevice(const std::string& spec);

}  // namespace trtaoti
