// trtaoti-bench-floor: the floor under the server's latency, and the server's own
// layers above it, measured in one process (no HTTP).
//
//   trtaoti-bench-floor --model model.pt2 [--batch 1] [--seconds 3] [--device cpu|cuda:N]
//                       [--path device] [--gap-us 0] [--runners 2] [--intra-op-threads 0]
//   trtaoti-bench-floor --model model.pt2 --device cuda:0 --commands
//       reads "PATH BATCH SECONDS [GAP_US]" lines on stdin, answers each with one JSON
//       line, keeps the package loaded in between (so a benchmark can alternate these
//       runs with a server's), and exits at end of input.
//
// Each run prints {"path", "batch", "iterations", "p50_us", "p99_us", "per_second",
// "gap_us", "device"} (plus "launch_p50_us" and "device_p50_us" for path loader).
// The paths, each one layer above the one before:
//   loader   loader.run on inputs already on the device, one stream, waited for: the
//            model alone. launch = how long loader.run takes to return (host work),
//            device = the device's time between events around it.
//   device   Device::Run, the floor: host inputs -> page-locked staging -> device ->
//            model -> host outputs, one synchronisation (what a batch costs the server).
//   model    AotiModel::Execute on views into a request-like body (misaligned, like a
//            binary tensor behind its JSON header), with the server's runner count.
//   batcher  Batcher::RunOrEnqueue on that model and the wait for its callback, as the
//            HTTP and gRPC front ends call it (a lone request runs on the caller).
//   queued   Batcher::Enqueue + wait: the same through a worker thread (two hand-offs).
//   graph    an experiment: loader.run captured into a CUDA graph at this batch and
//            replayed (resident inputs, like loader), with the replay's largest
//            difference from a plain run ("max_abs_diff"). A loader of its own each time.
// --gap-us N idles N us between runs (a condition-variable wait, as a server thread
// waits for its next request): what an idle gap costs the next run.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/csrc/inductor/aoti_package/model_package_loader.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <functional>
#include <future>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "batcher.h"
#include "device.h"
#include "model.h"
#include "signature.h"

namespace trtaoti {
namespace {

using BenchClock = std::chrono::steady_clock;

at::ScalarType ScalarType(DataType dtype) {
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
  return at::kFloat;
}

double Quantile(std::vector<double>& values, double q) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  return values[static_cast<size_t>(q * (values.size() - 1))];
}

struct Options {
  std::string model;
  std::string device = "cpu";
  int runners = 2;
  int intra_op_threads = 0;
};

class Bench {
 public:
  explicit Bench(Options options) : options_(std::move(options)) {
    device_ = MakeDevice(options_.device);
    device_->Prepare(1, {});
    loader_ = std::make_unique<torch::inductor::AOTIModelPackageLoader>(
        options_.model, "model", false, 1, static_cast<c10::DeviceIndex>(device_->index()));
    signature_ = SignatureFromMetadata(loader_->get_metadata());
  }

  nlohmann::json Measure(const std::string& path, int64_t batch, double seconds, int64_t gap_us) {
    std::function<void()> once;
    std::vector<double> launch, on_device;
    std::shared_ptr<std::vector<at::Tensor>> graph_resident;
    if (path == "loader") {
      auto resident = std::make_shared<std::vector<at::Tensor>>(device_->Resident(TorchInputs(batch)));
      once = [this, resident, &launch, &on_device] {
        Device::Timing timing = device_->RunResident(0, *loader_, *resident);
        launch.push_back(timing.launch_us);
        on_device.push_back(timing.device_us);
      };
    } else if (path == "graph") {
      // A loader per graph: after a capture its loader must not run outside it again,
      // and the graph reads the loader's weights, so both stay for the process's life.
      graph_loaders_.push_back(std::make_unique<torch::inductor::AOTIModelPackageLoader>(
          options_.model, "model", false, 1, static_cast<c10::DeviceIndex>(device_->index())));
      auto resident = std::make_shared<std::vector<at::Tensor>>(device_->Resident(TorchInputs(batch)));
      graph_resident = resident;
      auto replay = device_->CaptureGraph(0, *graph_loaders_.back(), *resident, graph_max_abs_diff);
      once = [replay, resident, &launch, &on_device] {
        Device::Timing timing = replay();
        launch.push_back(timing.launch_us);
        on_device.push_back(timing.device_us);
      };
    } else if (path == "device") {
      auto inputs = std::make_shared<std::vector<at::Tensor>>(TorchInputs(batch));
      once = [this, inputs] { device_->Run(0, *loader_, *inputs); };
    } else if (path == "model") {
      auto inputs = std::make_shared<std::vector<HostTensor>>(BodyInputs(batch));
      once = [this, inputs] { Model().Execute(0, *inputs); };
    } else if (path == "batcher" || path == "queued") {
      auto inputs = std::make_shared<std::vector<HostTensor>>(BodyInputs(batch));
      const bool caller_runs = path == "batcher";
      once = [this, inputs, caller_runs] {
        std::promise<InferOutcome> done;
        BatchRequest request;
        request.inputs = *inputs;
        request.on_complete = [&done](InferOutcome outcome) { done.set_value(std::move(outcome)); };
        if (caller_runs) {
          Batcher_().RunOrEnqueue(std::move(request));
        } else {
          Batcher_().Enqueue(std::move(request));
        }
        InferOutcome outcome = done.get_future().get();
        if (!outcome.status.ok()) throw std::runtime_error(outcome.status.message);
      };
    } else {
      throw std::runtime_error("unknown path '" + path + "' (loader, graph, device, model, batcher, queued)");
    }

    // Warm up: the first runs at a batch size build per-shape state (plans, allocations).
    const auto warm_until = BenchClock::now() + std::chrono::milliseconds(300);
    for (int i = 0; i < 100 && (i < 3 || BenchClock::now() < warm_until); ++i) once();
    launch.clear();
    on_device.clear();

    std::vector<double> latencies;
    std::mutex idle_mu;
    std::condition_variable idle;  // never signalled: a timed wait, as a server thread idles
    const auto start = BenchClock::now();
    const auto end = start + std::chrono::duration<double>(seconds);
    while (BenchClock::now() < end) {
      if (gap_us > 0) {
        std::unique_lock<std::mutex> lock(idle_mu);
        idle.wait_for(lock, std::chrono::microseconds(gap_us));
      }
      const auto before = BenchClock::now();
      once();
      latencies.push_back(std::chrono::duration<double, std::micro>(BenchClock::now() - before).count());
    }
    const double elapsed = std::chrono::duration<double>(BenchClock::now() - start).count();
    nlohmann::json result = {{"path", path},
                             {"batch", batch},
                             {"gap_us", gap_us},
                             {"iterations", latencies.size()},
                             {"p50_us", Quantile(latencies, 0.5)},
                             {"p99_us", Quantile(latencies, 0.99)},
                             {"per_second", latencies.size() / elapsed},
                             {"device", device_->name()}};
    if (path == "loader" || path == "graph") {
      result["launch_p50_us"] = Quantile(launch, 0.5);
      result["device_p50_us"] = Quantile(on_device, 0.5);
    }
    if (path == "graph") {
      result["max_abs_diff"] = graph_max_abs_diff;
      // Can the captured loader still run outside its graph (what a server mixing
      // graphs and plain runs would need)? Asked last: a failure may leave it unusable.
      try {
        device_->RunResident(0, *graph_loaders_.back(), *graph_resident);
        result["plain_run_after_capture"] = "ok";
      } catch (const std::exception& e) {
        result["plain_run_after_capture"] = std::string(e.what()).substr(0, 300);
      }
    }
    return result;
  }

 private:
  // Random inputs at `batch` rows. Integer inputs are ids or labels (embedding indices):
  // small non-negative values are valid for any such model; randn would give negative ones.
  std::vector<at::Tensor> TorchInputs(int64_t batch) const {
    std::vector<at::Tensor> inputs;
    for (const auto& spec : signature_.inputs) {
      std::vector<int64_t> shape = spec.shape;
      shape[0] = batch;
      const at::ScalarType type = ScalarType(spec.dtype);
      inputs.push_back(at::isIntegralType(type, /*includeBool=*/true) ? at::randint(0, 2, shape).to(type)
                                                                      : at::randn(shape).to(type));
    }
    return inputs;
  }

  // The same values as HostTensor views into one buffer that starts 3 bytes past an
  // aligned address, like binary tensors behind a KServe JSON header.
  std::vector<HostTensor> BodyInputs(int64_t batch) const {
    std::vector<at::Tensor> tensors = TorchInputs(batch);
    size_t total = 3;
    for (const auto& t : tensors) total += t.nbytes();
    auto body = std::make_shared<std::string>(total, '\0');
    std::vector<HostTensor> inputs;
    size_t offset = 3;
    for (size_t i = 0; i < tensors.size(); ++i) {
      std::memcpy(body->data() + offset, tensors[i].data_ptr(), tensors[i].nbytes());
      const auto* data = reinterpret_cast<const std::byte*>(body->data() + offset);
      inputs.emplace_back(signature_.inputs[i].dtype, Shape(tensors[i].sizes().begin(), tensors[i].sizes().end()),
                          std::shared_ptr<const void>(body, data), data);
      offset += tensors[i].nbytes();
    }
    return inputs;
  }

  AotiModel& Model() {
    if (!model_) {
      ModelOptions model_options;
      model_options.package_path = options_.model;
      model_options.device = options_.device;
      model_options.runners = options_.runners;
      model_options.intra_op_threads = options_.intra_op_threads;
      model_ = std::make_shared<AotiModel>(model_options);
    }
    return *model_;
  }

  Batcher& Batcher_() {
    if (!batcher_) {
      BatcherOptions batcher_options;
      batcher_options.limits = {signature_.batch_min, signature_.batch_opt, signature_.batch_max};
      batcher_options.workers = options_.runners;
      Model();
      batcher_ = std::make_unique<Batcher>(batcher_options, model_);
    }
    return *batcher_;
  }

  Options options_;
  std::unique_ptr<Device> device_;
  std::unique_ptr<torch::inductor::AOTIModelPackageLoader> loader_;
  ModelSignature signature_;
  std::shared_ptr<AotiModel> model_;
  std::unique_ptr<Batcher> batcher_;
  std::vector<std::unique_ptr<torch::inductor::AOTIModelPackageLoader>> graph_loaders_;
  double graph_max_abs_diff = 0;
};

}  // namespace
}  // namespace trtaoti

int main(int argc, char** argv) {
  std::map<std::string, std::string> args = {
      {"model", ""},      {"batch", "1"},  {"seconds", "3"}, {"device", "cpu"}, {"intra-op-threads", "0"},
      {"path", "device"}, {"gap-us", "0"}, {"runners", "2"}};
  bool commands = false;
  for (int i = 1; i < argc; ++i) {
    std::string name = argv[i];
    if (name == "--commands") {
      commands = true;
      continue;
    }
    if (name.rfind("--", 0) != 0 || !args.count(name.substr(2)) || i + 1 >= argc) {
      std::fprintf(stderr, "unknown argument %s\n", argv[i]);
      return 2;
    }
    args[name.substr(2)] = argv[++i];
  }
  if (args["model"].empty()) {
    std::fprintf(stderr,
                 "usage: trtaoti-bench-floor --model PATH [--batch N] [--seconds S] [--device cpu|cuda:N] "
                 "[--path loader|graph|device|model|batcher|queued] [--gap-us N] [--runners N] [--commands]\n");
    return 2;
  }
  try {
    if (int threads = std::stoi(args["intra-op-threads"]); threads > 0) at::set_num_threads(threads);
    trtaoti::Options options{args["model"], args["device"], std::stoi(args["runners"]),
                             std::stoi(args["intra-op-threads"])};
    trtaoti::Bench bench(options);
    if (!commands) {
      auto result = bench.Measure(args["path"], std::stoll(args["batch"]), std::stod(args["seconds"]),
                                  std::stoll(args["gap-us"]));
      std::puts(result.dump().c_str());
      return 0;
    }
    std::puts(nlohmann::json{{"ready", true}}.dump().c_str());
    std::fflush(stdout);
    for (std::string line; std::getline(std::cin, line);) {
      std::istringstream words(line);
      std::string path;
      int64_t batch = 1, gap_us = 0;
      double seconds = 1;
      if (!(words >> path >> batch >> seconds)) continue;
      words >> gap_us;
      nlohmann::json result;
      try {
        result = bench.Measure(path, batch, seconds, gap_us);
      } catch (const std::exception& e) {
        result = {{"path", path}, {"batch", batch}, {"error", e.what()}};
      }
      std::puts(result.dump().c_str());
      std::fflush(stdout);
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "trtaoti-bench-floor: %s\n", e.what());
    return 1;
  }
}
