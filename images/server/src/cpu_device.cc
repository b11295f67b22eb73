#include <ATen/ATen.h>

#include <stdexcept>

#include "device.h"

namespace trtaoti {
namespace {

class CpuDevice : public Device {
 public:
  std::string name() const override { return "cpu"; }
  int index() const override { return -1; }

  std::vector<at::Tensor> Run(torch::inductor::AOTIModelPackageLoader& loader,
                              const std::vector<at::Tensor>& host_inputs) override {
    return loader.run(host_inputs);
  }

  at::Tensor AllocateHost(at::IntArrayRef shape, at::ScalarType dtype) override {
    return at::empty(shape, at::TensorOptions().dtype(dtype));
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
