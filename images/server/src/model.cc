#include "model.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <dlfcn.h>
#include <torch/csrc/inductor/aoti_package/model_package_loader.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <stdexcept>

#include "device.h"
#include "logging.h"

namespace trtaoti {
namespace {

at::ScalarType ToScalarType(DataType dtype) {
  switch (dtype) {
    case DataType::kBool: return at::kBool;
    case DataType::kUint8: return at::kByte;
    case DataType::kInt8: return at::kChar;
    case DataType::kInt16: return at::kShort;
    case DataType::kInt32: return at::kInt;
    case DataType::kInt64: return at::kLong;
    case DataType::kFp16: return at::kHalf;
    case DataType::kBf16: return at::kBFloat16;
    case DataType::kFp32: return at::kFloat;
    case DataType::kFp64: return at::kDouble;
  }
  throw std::logic_error("unhandled datatype");
}

DataType FromScalarType(at::ScalarType type) {
  switch (type) {
    case at::kBool: return DataType::kBool;
    case at::kByte: return DataType::kUint8;
    case at::kChar: return DataType::kInt8;
    case at::kShort: return DataType::kInt16;
    case at::kInt: return DataType::kInt32;
    case at::kLong: return DataType::kInt64;
    case at::kHalf: return DataType::kFp16;
    case at::kBFloat16: return DataType::kBf16;
    case at::kFloat: return DataType::kFp32;
    case at::kDouble: return DataType::kFp64;
    default: throw std::runtime_error(std::string("the model returned an unsupported dtype ") + c10::toString(type));
  }
}

// A view of the request's (or the batch buffer's) bytes; the device copies them where
// its loader needs them (CUDA: staging memory; CPU: aligned, see cpu_device.cc).
at::Tensor ToTorch(const HostTensor& tensor) {
  auto options = at::TensorOptions().dtype(ToScalarType(tensor.dtype()));
  // The deleter holds the owner (request body or batch buffer) until torch lets go.
  std::shared_ptr<const void> owner = tensor.owner();
  return at::from_blob(const_cast<std::byte*>(tensor.data()), tensor.shape(), [owner](void*) {}, options);
}

HostTensor FromTorch(at::Tensor tensor) {
  if (!tensor.is_contiguous()) tensor = tensor.contiguous();
  if (!tensor.device().is_cpu()) tensor = tensor.cpu();
  DataType dtype = FromScalarType(tensor.scalar_type());
  Shape shape(tensor.sizes().begin(), tensor.sizes().end());
  const auto* data = static_cast<const std::byte*>(tensor.data_ptr());
  auto owner = std::make_shared<at::Tensor>(std::move(tensor));
  return HostTensor(dtype, std::move(shape), std::shared_ptr<const void>(owner, data), data);
}

// Packages with TensorRT engines call torch.ops.tensorrt.execute_engine, which
// libtorchtrt_runtime.so registers when loaded; it must be in the process before the
// package is (the loader resolves the ops it calls).
void PreloadTorchTrtRuntime(std::string path, bool required) {
  if (path.empty()) {
    if (const char* env = std::getenv("TRTAOTI_TORCHTRT_RUNTIME")) path = env;
  }
  if (path.empty() && !required) return;
  const std::string target = path.empty() ? "libtorchtrt_runtime.so" : path;
  if (!path.empty() && !std::filesystem::exists(path)) {
    throw std::runtime_error("Torch-TensorRT runtime '" + path + "' does not exist");
  }
  if (!dlopen(target.c_str(), RTLD_NOW | RTLD_GLOBAL)) {
    const char* error = dlerror();
    throw std::runtime_error("cannot load the Torch-TensorRT runtime '" + target + "'" +
                             (required ? " that this package needs (its engines run through "
                                         "torch.ops.tensorrt.execute_engine); pass --torchtrt-runtime PATH or "
                                         "set TRTAOTI_TORCHTRT_RUNTIME"
                                       : "") +
                             ": " + (error ? error : "unknown error"));
  }
  Log(LogLevel::kInfo, "loaded the Torch-TensorRT runtime", {{"path", target}});
}

// Batch sizes to capture: the range's min, then powers of two up to the limit, and the
// limit itself (a batch replays the smallest that holds it).
std::vector<int64_t> GraphBatches(int64_t min, int64_t limit) {
  std::vector<int64_t> batches;
  for (int64_t b = std::max<int64_t>(1, min); b <= limit;) {
    batches.push_back(b);
    int64_t next = 1;
    while (next <= b) next *= 2;
    b = (next > limit && b < limit) ? limit : next;
  }
  return batches;
}

// Two loaders constructed concurrently corrupt each other (measured); one at a time.
std::mutex& LoaderConstructionMutex() {
  static std::mutex mu;
  return mu;
}

}  // namespace

AotiModel::AotiModel(const ModelOptions& options) : options_(options), runners_(std::max(1, options.runners)) {
  if (!std::filesystem::is_regular_file(options_.package_path)) {
    throw std::runtime_error("model package '" + options_.package_path + "' does not exist or is not a file");
  }
  device_ = MakeDevice(options_.device);
  if (options_.intra_op_threads > 0) at::set_num_threads(options_.intra_op_threads);

  std::lock_guard<std::mutex> lock(LoaderConstructionMutex());
  try {
    auto metadata = torch::inductor::AOTIModelPackageLoader::load_metadata_from_package(options_.package_path, "model");
    signature_ = SignatureFromMetadata(metadata);
    PreloadTorchTrtRuntime(options_.torchtrt_runtime, signature_.requires_torchtrt_runtime);
    loader_ = std::make_unique<torch::inductor::AOTIModelPackageLoader>(
        options_.package_path, "model", /*run_single_threaded=*/false, static_cast<size_t>(runners_),
        static_cast<c10::DeviceIndex>(device_->index()));
  } catch (const c10::Error& e) {
    throw std::runtime_error("cannot load model package '" + options_.package_path +
                             "': " + e.what_without_backtrace());
  }
  if (!signature_.device.empty() && signature_.device != (device_->index() < 0 ? "cpu" : "cuda")) {
    throw std::runtime_error("the package was compiled for " + signature_.device + " but --device is " +
                             device_->name());
  }
  // Staging for the compiled range's largest batch, per runner, allocated now.
  std::vector<size_t> max_input_bytes;
  for (const TensorSpec& spec : signature_.inputs) {
    int64_t elements = std::max<int64_t>(1, signature_.batch_max);
    for (size_t d = 1; d < spec.shape.size(); ++d) elements = spec.shape[d] < 0 ? 0 : elements * spec.shape[d];
    max_input_bytes.push_back(static_cast<size_t>(elements) * ElementSize(spec.dtype));
  }
  device_->Prepare(runners_, max_input_bytes);
  if (options_.cuda_graph_max_batch > 0) EnableGraphs();
}

void AotiModel::EnableGraphs() {
  const int64_t limit = std::min(options_.cuda_graph_max_batch, signature_.batch_max);
  std::vector<int64_t> batches = GraphBatches(signature_.batch_min, limit);
  std::vector<at::Tensor> rows;
  for (const TensorSpec& spec : signature_.inputs) {
    Shape shape = spec.shape;
    shape[0] = 1;
    if (std::any_of(shape.begin(), shape.end(), [](int64_t d) { return d < 0; })) {
      Log(LogLevel::kWarning, "CUDA graphs off: an input has a dynamic non-batch dimension", {{"input", spec.name}});
      return;
    }
    rows.push_back(at::zeros(shape, at::TensorOptions().dtype(ToScalarType(spec.dtype))));
  }
  if (batches.empty()) {
    Log(LogLevel::kWarning, "CUDA graphs off: no batch size of the range is at most --cuda-graph-max-batch",
        {{"cuda_graph_max_batch", options_.cuda_graph_max_batch}, {"batch_min", signature_.batch_min}});
    return;
  }
  try {
    // A loader of their own: the AOTI container lets a captured model instance run only
    // inside its graph, so every capture takes a fresh instance (and one warms up).
    const size_t instances = 1 + static_cast<size_t>(runners_) * batches.size();
    auto graph_loader = std::make_unique<torch::inductor::AOTIModelPackageLoader>(
        options_.package_path, "model", /*run_single_threaded=*/false, instances,
        static_cast<c10::DeviceIndex>(device_->index()));
    const auto started = std::chrono::steady_clock::now();
    std::string summary = device_->EnableGraphs(std::move(graph_loader), *loader_, rows, batches);
    Log(LogLevel::kInfo, "CUDA graphs on",
        {{"graphs", summary},
         {"ms",
          std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started).count()}});
  } catch (const std::exception& e) {
    Log(LogLevel::kWarning, "CUDA graphs off: capturing them failed; batches run plainly", {{"error", e.what()}});
  }
}

AotiModel::~AotiModel() = default;

std::string AotiModel::device_name() const { return device_->name(); }

std::vector<HostTensor> AotiModel::Execute(int runner, const std::vector<HostTensor>& inputs) {
  if (runner < 0 || runner >= runners_) throw std::logic_error("runner " + std::to_string(runner) + " out of range");
  // OpenMP's thread count is per calling thread: set it once in each thread that runs batches.
  thread_local bool threads_set = false;
  if (!threads_set && options_.intra_op_threads > 0) {
    at::set_num_threads(options_.intra_op_threads);
    threads_set = true;
  }
  std::vector<at::Tensor> torch_inputs;
  torch_inputs.reserve(inputs.size());
  for (const HostTensor& input : inputs) torch_inputs.push_back(ToTorch(input));
  std::vector<at::Tensor> outputs;
  try {
    outputs = device_->Run(runner, *loader_, torch_inputs);
  } catch (const c10::Error& e) {
    throw std::runtime_error(e.what_without_backtrace());
  }
  std::vector<HostTensor> result;
  result.reserve(outputs.size());
  for (at::Tensor& output : outputs) result.push_back(FromTorch(std::move(output)));
  return result;
}

HostTensor AotiModel::AllocateInput(int runner, size_t index, DataType dtype, const Shape& shape) {
  at::Tensor buffer = device_->AllocateHost(runner, index, shape, ToScalarType(dtype));
  const auto* data = static_cast<const std::byte*>(buffer.data_ptr());
  auto owner = std::make_shared<at::Tensor>(std::move(buffer));
  return HostTensor(dtype, shape, std::shared_ptr<const void>(owner, data), data);
}

}  // namespace trtaoti
