#include <ATen/ATen.h>

#include <chrono>
#include <cstdint>
#include <stdexcept>

#include "device.h"

namespace trtaoti {
namespace {

// Inductor's kernels assume 16-byte aligned inputs (torch._inductor.utils.ALIGNMENT);
// binary tensors inside an HTTP body start wherever the JSON header ends.
constexpr uintptr_t kAlignment = 16;

class CpuDevice : public Device {
 public:
  std::string name() const override { return "cpu"; }
  int index() const override { return -1; }

  void Prepare(int, const std::vector<size_t>&) override {}

  std::vector<at::Tensor> Run(int, torch::inductor::AOTIModelPackageLoader& loader,
                              const std::vector<at::Tensor>& host_inputs) override {
    for (const at::Tensor& input : host_inputs) {
      if (reinterpret_cast<uintptr_t>(input.data_ptr()) % kAlignment == 0) continue;
      std::vector<at::Tensor> aligned;
      aligned.reserve(host_inputs.size());
      for (const at::Tensor& t : host_inputs) {
        aligned.push_back(reinterpret_cast<uintptr_t>(t.data_ptr()) % kAlignment ? t.clone() : t);
      }
      return loader.run(aligned);
    }
    return loader.run(host_inputs);
  }

  at::Tensor AllocateHost(int, size_t, at::IntArrayRef shape, at::ScalarType dtype) override {
    return at::empty(shape, at::TensorOptions().dtype(dtype));
  }

  std::vector<at::Tensor> Resident(const std::vector<at::Tensor>& host_inputs) override {
    std::vector<at::Tensor> aligned;
    for (const at::Tensor& t : host_inputs) aligned.push_back(t.clone());
    return aligned;
  }

  Timing RunResident(int, torch::inductor::AOTIModelPackageLoader& loader,
                     const std::vector<at::Tensor>& resident_inputs) override {
    const auto start = std::chrono::steady_clock::now();
    loader.run(resident_inputs);
    return {std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count(), 0};
  }

  std::string EnableGraphs(std::unique_ptr<torch::inductor::AOTIModelPackageLoader>,
                           torch::inductor::AOTIModelPackageLoader&, const std::vector<at::Tensor>&,
                           const std::vector<int64_t>&) override {
    throw std::runtime_error("CUDA graphs need --device cuda");
  }

  std::function<Timing()> CaptureGraph(int, torch::inductor::AOTIModelPackageLoader&, const std::vector<at::Tensor>&,
                                       double&) override {
    throw std::runtime_error("CUDA graphs need a CUDA device");
  }
};

}  // namespace

std::unique_ptr<Device> MakeCpuDevice() { return std::make_unique<CpuDevice>(); }

std::unique_ptr<Device> MakeDevice(const std::string& spec) {
  if (spec == "cpu") return MakeCpuDevice();
  if (spec == "cuda") return MakeCudaDevice(0);
  if (spec.rfind("cuda:", 0) == 0) {
    size_t used = 0;
    int index = -1;
    try {
      index = std::stoi(spec.substr(5), &used);
    } catch (const std::exception&) {
    }
    if (index >= 0 && used == spec.size() - 5) return MakeCudaDevice(index);
  }
  throw std::runtime_error("--device must be cpu or cuda:N, got '" + spec + "'");
}

}  // namespace trtaoti
