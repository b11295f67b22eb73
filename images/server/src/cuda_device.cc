// Compiled only when CMake finds a CUDA toolkit (c10/cuda headers need it).
//
// A batch on runner r: its inputs are copied (once, and not at all when the batcher
// assembled them in r's staging memory already) into r's page-locked buffer and go to
// r's device buffer by DMA (in 4 MiB chunks that overlap the host copy), the model runs
// on r's stream, every output comes back in one DMA into page-locked host memory, and
// the host waits once, for the stream.
// Nothing is pinned or allocated per batch, except what the loader allocates itself
// (from torch's caching allocators) and the output buffers (from torch's caching host
// allocator, which hands cached blocks back once the response that used them is gone).
#include <ATen/ATen.h>
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstring>
#include <map>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <utility>

#include "device.h"

namespace trtaoti {
namespace {

constexpr size_t kCopyChunk = 4 << 20;

// Page-locked host memory of one size, allocated once (cudaHostAlloc, not the caching
// host allocator, which rounds up to a power of two).
class PinnedBuffer {
 public:
  PinnedBuffer() = default;
  explicit PinnedBuffer(size_t bytes) : bytes_(bytes) {
    C10_CUDA_CHECK(cudaHostAlloc(&data_, bytes, cudaHostAllocDefault));
  }
  ~PinnedBuffer() {
    if (data_) cudaFreeHost(data_);
  }
  PinnedBuffer(PinnedBuffer&& other) noexcept : data_(std::exchange(other.data_, nullptr)), bytes_(other.bytes_) {}
  PinnedBuffer& operator=(PinnedBuffer&& other) noexcept {
    std::swap(data_, other.data_);
    std::swap(bytes_, other.bytes_);
    return *this;
  }
  void* data() const { return data_; }
  size_t bytes() const { return data_ ? bytes_ : 0; }

 private:
  void* data_ = nullptr;
  size_t bytes_ = 0;
};

// One input's staging: page-locked host bytes and device bytes of the same capacity.
struct Staging {
  PinnedBuffer host;
  at::Tensor device;  // kByte, from torch's caching allocator (counted in its statistics)
  size_t capacity() const { return host.bytes(); }
};

using GraphPool = decltype(std::declval<at::cuda::CUDAGraph&>().pool());

// A captured batch size: the graph, and the outputs its replays overwrite (in the
// graph's memory pool, batch dimension first, contiguous).
struct Graph {
  int64_t rows = 0;
  std::unique_ptr<at::cuda::CUDAGraph> exec;
  std::vector<at::Tensor> outputs;
  std::vector<void*> inputs;  // the device staging it reads (a grown staging buffer moves)
};

struct Runner {
  std::optional<c10::cuda::CUDAStream> stream;
  std::vector<Staging> inputs;
  std::map<int64_t, Graph> graphs;  // by batch size; set once by EnableGraphs
  cudaEvent_t started = nullptr, finished = nullptr;  // RunResident's, made on first use
};

class CudaDevice : public Device {
 public:
  explicit CudaDevice(int index) : index_(static_cast<c10::DeviceIndex>(index)) {
    if (index >= static_cast<int>(c10::cuda::device_count())) {
      throw std::runtime_error("cuda:" + std::to_string(index) + " does not exist (" +
                               std::to_string(c10::cuda::device_count()) + " CUDA devices visible)");
    }
  }

  ~CudaDevice() override {
    for (Runner& runner : runners_) {
      if (runner.started) cudaEventDestroy(runner.started);
      if (runner.finished) cudaEventDestroy(runner.finished);
    }
  }

  std::string name() const override { return "cuda:" + std::to_string(index_); }
  int index() const override { return index_; }

  void Prepare(int runners, const std::vector<size_t>& max_input_bytes) override {
    if (!runners_.empty()) throw std::logic_error("CudaDevice::Prepare called twice");
    c10::cuda::CUDAGuard device_guard(index_);
    runners_.resize(static_cast<size_t>(std::max(1, runners)));
    for (Runner& runner : runners_) {
      // Pool streams do not synchronise with the legacy default stream, and each runner
      // gets its own, so concurrent batches overlap copies and kernels.
      runner.stream = c10::cuda::getStreamFromPool(/*isHighPriority=*/false, index_);
      runner.inputs.resize(max_input_bytes.size());
      for (size_t i = 0; i < max_input_bytes.size(); ++i) Reserve(runner.inputs[i], max_input_bytes[i]);
    }
  }

  std::vector<at::Tensor> Run(int runner_index, torch::inductor::AOTIModelPackageLoader& loader,
                              const std::vector<at::Tensor>& host_inputs) override {
    Runner& runner = runners_.at(static_cast<size_t>(runner_index));
    c10::cuda::CUDAGuard device_guard(index_);
    c10::cuda::CUDAStreamGuard stream_guard(*runner.stream);  // the loader's allocations follow it
    const cudaStream_t stream = runner.stream->stream();
    if (runner.inputs.size() < host_inputs.size()) runner.inputs.resize(host_inputs.size());

    std::vector<at::Tensor> device_inputs;
    device_inputs.reserve(host_inputs.size());
    for (size_t i = 0; i < host_inputs.size(); ++i) {
      const at::Tensor host = host_inputs[i].is_contiguous() ? host_inputs[i] : host_inputs[i].contiguous();
      const size_t bytes = host.nbytes();
      Staging& staging = runner.inputs[i];
      Reserve(staging, bytes);
      if (bytes > 0) {
        auto* pinned = static_cast<std::byte*>(staging.host.data());
        auto* on_device = static_cast<std::byte*>(staging.device.data_ptr());
        if (host.data_ptr() == staging.host.data()) {
          // A batch the batcher assembled is in this staging memory already (AllocateHost).
          C10_CUDA_CHECK(cudaMemcpyAsync(on_device, pinned, bytes, cudaMemcpyHostToDevice, stream));
        } else {
          // In chunks, so the DMA of one overlaps the host copy of the next (a lone
          // request is one chunk).
          const auto* source = static_cast<const std::byte*>(host.data_ptr());
          for (size_t offset = 0; offset < bytes; offset += kCopyChunk) {
            const size_t n = std::min(kCopyChunk, bytes - offset);
            std::memcpy(pinned + offset, source + offset, n);
            C10_CUDA_CHECK(cudaMemcpyAsync(on_device + offset, pinned + offset, n, cudaMemcpyHostToDevice, stream));
          }
        }
        device_inputs.push_back(
            at::from_blob(staging.device.data_ptr(), host.sizes(), host.options().device(at::kCUDA, index_)));
      } else {
        device_inputs.push_back(at::empty(host.sizes(), host.options().device(at::kCUDA, index_)));
      }
    }

    const int64_t rows = host_inputs.empty() || host_inputs[0].dim() == 0 ? 0 : host_inputs[0].size(0);
    if (const Graph* graph = GraphFor(runner, rows, host_inputs)) {
      graph->exec->replay();  // on the current stream: this runner's
      std::vector<at::Tensor> host_outputs;
      host_outputs.reserve(graph->outputs.size());
      for (const at::Tensor& output : graph->outputs) {
        std::vector<int64_t> shape = output.sizes().vec();
        shape[0] = rows;  // the batch's rows only; the graph's padding rows stay behind
        at::Tensor host = at::empty(shape, output.options().device(at::kCPU).pinned_memory(true));
        if (host.nbytes() > 0) {
          C10_CUDA_CHECK(
              cudaMemcpyAsync(host.data_ptr(), output.data_ptr(), host.nbytes(), cudaMemcpyDeviceToHost, stream));
        }
        host_outputs.push_back(std::move(host));
      }
      C10_CUDA_CHECK(cudaStreamSynchronize(stream));
      return host_outputs;
    }

    std::vector<at::Tensor> outputs = loader.run(device_inputs, stream);
    std::vector<at::Tensor> host_outputs;
    host_outputs.reserve(outputs.size());
    for (at::Tensor& output : outputs) {
      if (!output.is_cuda()) {  // a host output (a constant the graph returns): nothing to copy
        host_outputs.push_back(output.contiguous());
        continue;
      }
      if (!output.is_contiguous()) output = output.contiguous();  // on this stream (the guard)
      at::Tensor host = at::empty(output.sizes(), output.options().device(at::kCPU).pinned_memory(true));
      if (output.nbytes() > 0) {
        C10_CUDA_CHECK(
            cudaMemcpyAsync(host.data_ptr(), output.data_ptr(), output.nbytes(), cudaMemcpyDeviceToHost, stream));
      }
      host_outputs.push_back(std::move(host));
    }
    // The one wait of the batch. The device outputs are freed after it (end of scope),
    // so the caching allocator can hand their memory to this stream's next batch.
    C10_CUDA_CHECK(cudaStreamSynchronize(stream));
    return host_outputs;
  }

  std::vector<at::Tensor> Resident(const std::vector<at::Tensor>& host_inputs) override {
    std::vector<at::Tensor> resident;
    for (const at::Tensor& host : host_inputs) resident.push_back(host.to(at::Device(at::kCUDA, index_)));
    c10::cuda::device_synchronize();
    return resident;
  }

  Timing RunResident(int runner_index, torch::inductor::AOTIModelPackageLoader& loader,
                     const std::vector<at::Tensor>& resident_inputs) override {
    Runner& runner = runners_.at(static_cast<size_t>(runner_index));
    c10::cuda::CUDAGuard device_guard(index_);
    c10::cuda::CUDAStreamGuard stream_guard(*runner.stream);
    const cudaStream_t stream = runner.stream->stream();
    if (!runner.started) {
      C10_CUDA_CHECK(cudaEventCreate(&runner.started));
      C10_CUDA_CHECK(cudaEventCreate(&runner.finished));
    }
    const auto start = std::chrono::steady_clock::now();
    C10_CUDA_CHECK(cudaEventRecord(runner.started, stream));
    std::vector<at::Tensor> outputs = loader.run(resident_inputs, stream);
    C10_CUDA_CHECK(cudaEventRecord(runner.finished, stream));
    const double launch_us =
        std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count();
    C10_CUDA_CHECK(cudaEventSynchronize(runner.finished));
    float ms = 0;
    C10_CUDA_CHECK(cudaEventElapsedTime(&ms, runner.started, runner.finished));
    return {launch_us, ms * 1000.0};
  }

  std::function<Timing()> CaptureGraph(int runner_index, torch::inductor::AOTIModelPackageLoader& loader,
                                       const std::vector<at::Tensor>& resident_inputs, double& max_abs_diff) override {
    Runner& runner = runners_.at(static_cast<size_t>(runner_index));
    c10::cuda::CUDAGuard device_guard(index_);
    c10::cuda::CUDAStreamGuard stream_guard(*runner.stream);
    const cudaStream_t stream = runner.stream->stream();
    // Plain runs first, on this stream: lazy state (cuBLAS workspaces, cuDNN plans,
    // constant folding) is made outside the capture; the last one is the reference.
    std::vector<at::Tensor> reference;
    for (int i = 0; i < 3; ++i) reference = loader.run(resident_inputs, stream);
    for (at::Tensor& r : reference) r = r.clone();
    C10_CUDA_CHECK(cudaStreamSynchronize(stream));

    auto graph = std::make_shared<at::cuda::CUDAGraph>();
    auto outputs = std::make_shared<std::vector<at::Tensor>>();
    // Relaxed: the loader queries its previous run's completion event during the
    // capture, which the stricter modes refuse.
    graph->capture_begin({0, 0}, cudaStreamCaptureModeRelaxed);
    *outputs = loader.run(resident_inputs, stream);
    graph->capture_end();
    graph->replay();
    C10_CUDA_CHECK(cudaStreamSynchronize(stream));
    max_abs_diff = 0;
    for (size_t i = 0; i < outputs->size() && i < reference.size(); ++i) {
      max_abs_diff = std::max(max_abs_diff,
                              ((*outputs)[i].to(at::kFloat) - reference[i].to(at::kFloat)).abs().max().item<double>());
    }
    if (!runner.started) {
      C10_CUDA_CHECK(cudaEventCreate(&runner.started));
      C10_CUDA_CHECK(cudaEventCreate(&runner.finished));
    }
    c10::cuda::CUDAStream graph_stream = *runner.stream;
    return [graph, outputs, graph_stream, &runner, this]() -> Timing {
      c10::cuda::CUDAGuard guard(index_);
      c10::cuda::CUDAStreamGuard stream_guard(graph_stream);
      const auto start = std::chrono::steady_clock::now();
      C10_CUDA_CHECK(cudaEventRecord(runner.started, graph_stream.stream()));
      graph->replay();
      C10_CUDA_CHECK(cudaEventRecord(runner.finished, graph_stream.stream()));
      const double launch_us =
          std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count();
      C10_CUDA_CHECK(cudaEventSynchronize(runner.finished));
      float ms = 0;
      C10_CUDA_CHECK(cudaEventElapsedTime(&ms, runner.started, runner.finished));
      return {launch_us, ms * 1000.0};
    };
  }

  std::string EnableGraphs(std::unique_ptr<torch::inductor::AOTIModelPackageLoader> graph_loader,
                           torch::inductor::AOTIModelPackageLoader& loader, const std::vector<at::Tensor>& row_inputs,
                           const std::vector<int64_t>& batches) override {
    if (graphs_on_ || graph_loader_) throw std::logic_error("EnableGraphs called twice");
    if (batches.empty() || row_inputs.empty()) throw std::invalid_argument("no batch sizes or no inputs to capture");
    graph_loader_ = std::move(graph_loader);
    c10::cuda::CUDAGuard device_guard(index_);
    for (const at::Tensor& row : row_inputs) {
      graph_row_shapes_.push_back(row.sizes().slice(1).vec());
      graph_dtypes_.push_back(row.scalar_type());
    }
    double worst = 0;
    size_t captured = 0;
    try {
      // One plain run of the graph loader first, so constant folding and the loader's
      // lazy state happen outside any capture (it takes one model instance).
      {
        Runner& first = runners_.at(0);
        c10::cuda::CUDAStreamGuard stream_guard(*first.stream);
        graph_loader_->run(StageRows(first, row_inputs, batches.front()), first.stream->stream());
        C10_CUDA_CHECK(cudaStreamSynchronize(first.stream->stream()));
      }
      for (Runner& runner : runners_) {
        c10::cuda::CUDAStreamGuard stream_guard(*runner.stream);
        const cudaStream_t stream = runner.stream->stream();
        std::optional<GraphPool> pool;  // one pool per runner: its graphs never run at once
        for (int64_t rows : batches) {
          std::vector<at::Tensor> inputs = StageRows(runner, row_inputs, rows);
          // The plain loader on the same inputs: the reference, and it makes this thread's
          // cuBLAS workspace for this stream and the per-shape plans outside the capture.
          std::vector<at::Tensor> reference = loader.run(inputs, stream);
          for (at::Tensor& r : reference) r = r.clone();
          C10_CUDA_CHECK(cudaStreamSynchronize(stream));

          Graph graph;
          graph.rows = rows;
          graph.exec = std::make_unique<at::cuda::CUDAGraph>();
          // Relaxed: the loader queries its model instances' completion events.
          graph.exec->capture_begin(pool ? *pool : GraphPool{0, 0}, cudaStreamCaptureModeRelaxed);
          try {
            graph.outputs = graph_loader_->run(inputs, stream);
          } catch (...) {
            cudaGraph_t abandoned = nullptr;
            cudaStreamEndCapture(stream, &abandoned);
            if (abandoned) cudaGraphDestroy(abandoned);
            throw;
          }
          graph.exec->capture_end();
          if (!pool) pool = graph.exec->pool();
          for (const at::Tensor& input : inputs) graph.inputs.push_back(input.data_ptr());
          graph.exec->replay();
          C10_CUDA_CHECK(cudaStreamSynchronize(stream));
          if (graph.outputs.size() != reference.size())
            throw std::runtime_error("graph and plain run disagree on outputs");
          for (size_t i = 0; i < graph.outputs.size(); ++i) {
            const at::Tensor& out = graph.outputs[i];
            if (!out.is_cuda() || out.dim() == 0 || out.size(0) != rows || !out.is_contiguous()) {
              throw std::runtime_error("output " + std::to_string(i) +
                                       " is not a contiguous device tensor with the batch dimension first");
            }
            const at::Tensor a = out.to(at::kFloat), b = reference[i].to(at::kFloat);
            const double diff = (a - b).abs().max().item<double>();
            const double scale = b.abs().max().item<double>();
            if (!(diff <= 1e-3 + 1e-2 * scale)) {  // also false for NaN
              throw std::runtime_error("graph replay differs from a plain run by " + std::to_string(diff) +
                                       " at batch " + std::to_string(rows) + ", output " + std::to_string(i));
            }
            worst = std::max(worst, diff);
          }
          runner.graphs.emplace(rows, std::move(graph));
          ++captured;
        }
      }
    } catch (...) {
      for (Runner& runner : runners_) runner.graphs.clear();
      graph_row_shapes_.clear();
      graph_dtypes_.clear();
      graph_loader_.reset();
      throw;
    }
    graphs_on_ = true;
    std::ostringstream summary;
    summary << captured << " graphs (" << runners_.size() << " runners x batch";
    for (int64_t rows : batches) summary << " " << rows;
    summary << "), largest difference from a plain run " << worst;
    return summary.str();
  }

  at::Tensor AllocateHost(int runner_index, size_t index, at::IntArrayRef shape, at::ScalarType dtype) override {
    Runner& runner = runners_.at(static_cast<size_t>(runner_index));
    if (runner.inputs.size() <= index) runner.inputs.resize(index + 1);
    Staging& staging = runner.inputs[index];
    int64_t elements = 1;
    for (int64_t d : shape) elements *= d;
    const size_t bytes = static_cast<size_t>(elements) * c10::elementSize(dtype);
    Reserve(staging, bytes);
    if (bytes == 0) return at::empty(shape, at::TensorOptions().dtype(dtype));
    // A view of the runner's staging memory: it stays the runner's.
    return at::from_blob(staging.host.data(), shape, at::TensorOptions().dtype(dtype));
  }

 private:
  // Grows a staging buffer to `bytes` (never shrinks). Only between batches of its
  // runner: every copy from it finished at that runner's last synchronisation.
  void Reserve(Staging& staging, size_t bytes) {
    if (bytes <= staging.capacity()) return;
    c10::cuda::CUDAGuard device_guard(index_);
    staging.device = at::Tensor();
    staging.host = PinnedBuffer();
    staging.host = PinnedBuffer(bytes);
    // Zeros: a graph reads its whole captured batch, and rows past the real ones must be
    // valid values (zeros, or earlier inputs) for the model.
    staging.device =
        at::zeros({static_cast<int64_t>(bytes)}, at::TensorOptions().dtype(at::kByte).device(at::kCUDA, index_));
  }

  // The captured graph for a batch of `rows` with these inputs, or null (graphs off, too
  // many rows, or another row shape or dtype than the one captured).
  const Graph* GraphFor(const Runner& runner, int64_t rows, const std::vector<at::Tensor>& inputs) const {
    if (!graphs_on_ || rows < 1 || inputs.size() != graph_row_shapes_.size()) return nullptr;
    auto it = runner.graphs.lower_bound(rows);
    if (it == runner.graphs.end()) return nullptr;
    for (size_t i = 0; i < inputs.size(); ++i) {
      if (inputs[i].scalar_type() != graph_dtypes_[i] ||
          inputs[i].sizes().slice(1) != at::IntArrayRef(graph_row_shapes_[i]) ||
          runner.inputs[i].device.data_ptr() != it->second.inputs[i]) {
        return nullptr;
      }
    }
    return &it->second;
  }

  // `rows` random rows shaped like `row_inputs` in the runner's staging, on the device;
  // returns views of the device staging (what a graph captured on them reads).
  std::vector<at::Tensor> StageRows(Runner& runner, const std::vector<at::Tensor>& row_inputs, int64_t rows) {
    if (runner.inputs.size() < row_inputs.size()) runner.inputs.resize(row_inputs.size());
    std::vector<at::Tensor> views;
    for (size_t i = 0; i < row_inputs.size(); ++i) {
      const at::Tensor& row = row_inputs[i];
      std::vector<int64_t> shape = row.sizes().vec();
      shape[0] = rows;
      at::Tensor host = at::isIntegralType(row.scalar_type(), /*includeBool=*/true)
                            ? at::randint(0, 2, shape).to(row.scalar_type())
                            : at::randn(shape).to(row.scalar_type());
      Staging& staging = runner.inputs[i];
      Reserve(staging, host.nbytes());
      std::memcpy(staging.host.data(), host.data_ptr(), host.nbytes());
      C10_CUDA_CHECK(cudaMemcpyAsync(staging.device.data_ptr(), staging.host.data(), host.nbytes(),
                                     cudaMemcpyHostToDevice, runner.stream->stream()));
      views.push_back(at::from_blob(staging.device.data_ptr(), shape, host.options().device(at::kCUDA, index_)));
    }
    C10_CUDA_CHECK(cudaStreamSynchronize(runner.stream->stream()));
    return views;
  }

  c10::DeviceIndex index_;
  std::vector<Runner> runners_;  // sized once by Prepare
  // CUDA graphs (EnableGraphs): the loader they were captured from, and what they take.
  std::unique_ptr<torch::inductor::AOTIModelPackageLoader> graph_loader_;
  std::vector<std::vector<int64_t>> graph_row_shapes_;
  std::vector<at::ScalarType> graph_dtypes_;
  bool graphs_on_ = false;
};

}  // namespace

std::unique_ptr<Device> MakeCudaDevice(int index) { return std::make_unique<CudaDevice>(index); }

}  // namespace trtaoti
