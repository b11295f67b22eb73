// Where a batch runs. The CPU device hands host tensors straight to the loader; the
// CUDA device (cuda_device.cc, compiled only when the build finds a CUDA toolkit)
// gives every runner its own stream and its own page-locked and device staging
// buffers, so a batch costs one host copy at most, one DMA per input, the model run
// and one DMA per output on that stream, and a single synchronisation.
// Keeping this behind an interface keeps CUDA code and #ifdefs out of the hot path.
//
// Runners (batcher.h): Run and AllocateHost for one runner are never called
// concurrently; different runners are, from any thread.
#pragma once

#include <ATen/Tensor.h>
#include <torch/csrc/inductor/aoti_package/model_package_loader.h>

#include <functional>
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

  // Sets up `runners` runners before the first Run; `max_input_bytes[i]` is input i's
  // size at the largest batch that will run (0 where unknown: a dynamic non-batch
  // dimension). Staging buffers are allocated here, once, and grow only for a batch
  // larger than that.
  virtual void Prepare(int runners, const std::vector<size_t>& max_input_bytes) = 0;

  // Host tensors in (any alignment), host tensors out, on `runner`.
  virtual std::vector<at::Tensor> Run(int runner, torch::inductor::AOTIModelPackageLoader& loader,
                                      const std::vector<at::Tensor>& host_inputs) = 0;

  // A writable host buffer for input `index` of `runner`'s next Run. On CUDA it is the
  // runner's page-locked staging memory, which that Run then copies to the device
  // without another host copy; it is valid until that Run returns.
  virtual at::Tensor AllocateHost(int runner, size_t index, at::IntArrayRef shape, at::ScalarType dtype) = 0;

  // CUDA graphs (CUDA only; trtaoti-server --cuda-graph-max-batch). For every runner and
  // every batch size in `batches` (ascending), `graph_loader` is captured into a CUDA
  // graph that reads the runner's device staging; from then on Run replays the graph of
  // the smallest captured size that holds a batch (its rows past the batch hold valid
  // earlier rows or zeros; their outputs are not copied back) and runs `loader` plainly
  // for larger batches or other row shapes. Each graph is checked against a plain run of
  // `loader` on the same inputs (random rows shaped like `row_inputs`, one row each).
  // The AOTI container lets a captured model instance run only inside its graph, so
  // each capture needs a fresh one: `graph_loader` must have num_runners >=
  // 1 + runners x batches.size(), and nothing else may run it. Throws, with graphs left
  // off, on any failure; returns a one-line summary.
  virtual std::string EnableGraphs(std::unique_ptr<torch::inductor::AOTIModelPackageLoader> graph_loader,
                                   torch::inductor::AOTIModelPackageLoader& loader,
                                   const std::vector<at::Tensor>& row_inputs, const std::vector<int64_t>& batches) = 0;

  // For trtaoti-bench-floor's `loader` layer: the model alone, on inputs already where
  // the loader wants them (Resident), on `runner`'s stream, waited for. launch_us: how
  // long loader.run took to return (the host's share: argument checks, kernel launches);
  // device_us: the device's own time between events recorded around it (0 on CPU).
  struct Timing {
    double launch_us = 0;
    double device_us = 0;
  };
  virtual std::vector<at::Tensor> Resident(const std::vector<at::Tensor>& host_inputs) = 0;
  virtual Timing RunResident(int runner, torch::inductor::AOTIModelPackageLoader& loader,
                             const std::vector<at::Tensor>& resident_inputs) = 0;

  // An experiment for trtaoti-bench-floor's `graph` layer (CUDA only; the server does
  // not use it): loader.run at these inputs' shapes captured once into a CUDA graph on
  // `runner`'s stream; the function returned replays it and times it like RunResident.
  // `max_abs_diff`: the replay's outputs against a plain run's on the same inputs.
  // After this the loader must not run outside the graph again (its completion event
  // was recorded inside the capture).
  virtual std::function<Timing()> CaptureGraph(int runner, torch::inductor::AOTIModelPackageLoader& loader,
                                               const std::vector<at::Tensor>& resident_inputs,
                                               double& max_abs_diff) = 0;
};

std::unique_ptr<Device> MakeCpuDevice();
// Throws std::runtime_error when this binary was built without CUDA support.
std::unique_ptr<Device> MakeCudaDevice(int index);

// "cpu" or "cuda:N" (also "cuda" = "cuda:0").
std::unique_ptr<Device> MakeDevice(const std::string& spec);

}  // namespace trtaoti
