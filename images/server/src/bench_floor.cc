// trtaoti-bench-floor: the floor under the server's latency. Runs the package with
// AOTIModelPackageLoader::run in a tight loop on one thread, no HTTP and no batcher,
// and prints one JSON line: {"batch", "iterations", "p50_us", "p99_us", "per_second"}.
//
//   trtaoti-bench-floor --model model.pt2 [--batch 1] [--seconds 3] [--device cpu] [--intra-op-threads 1]
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/csrc/inductor/aoti_package/model_package_loader.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "device.h"
#include "signature.h"

namespace {

at::ScalarType ScalarType(trtaoti::DataType dtype) {
  switch (dtype) {
    case trtaoti::DataType::kBool: return at::kBool;
    case trtaoti::DataType::kUint8: return at::kByte;
    case trtaoti::DataType::kInt8: return at::kChar;
    case trtaoti::DataType::kInt16: return at::kShort;
    case trtaoti::DataType::kInt32: return at::kInt;
    case trtaoti::DataType::kInt64: return at::kLong;
    case trtaoti::DataType::kFp16: return at::kHalf;
    case trtaoti::DataType::kBf16: return at::kBFloat16;
    case trtaoti::DataType::kFp32: return at::kFloat;
    case trtaoti::DataType::kFp64: return at::kDouble;
  }
  return at::kFloat;
}

}  // namespace

int main(int argc, char** argv) {
  std::map<std::string, std::string> args = {
      {"model", ""}, {"batch", "1"}, {"seconds", "3"}, {"device", "cpu"}, {"intra-op-threads", "0"}};
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string name = argv[i];
    if (name.rfind("--", 0) != 0 || !args.count(name.substr(2))) {
      std::fprintf(stderr, "unknown argument %s\n", argv[i]);
      return 2;
    }
    args[name.substr(2)] = argv[i + 1];
  }
  if (args["model"].empty()) {
    std::fprintf(stderr, "usage: trtaoti-bench-floor --model PATH [--batch N] [--seconds S] [--device cpu|cuda:N]\n");
    return 2;
  }
  try {
    const int64_t batch = std::stoll(args["batch"]);
    const double seconds = std::stod(args["seconds"]);
    if (int threads = std::stoi(args["intra-op-threads"]); threads > 0) at::set_num_threads(threads);
    auto device = trtaoti::MakeDevice(args["device"]);
    torch::inductor::AOTIModelPackageLoader loader(args["model"], "model", false, 1,
                                                   static_cast<c10::DeviceIndex>(device->index()));
    auto signature = trtaoti::SignatureFromMetadata(loader.get_metadata());
    std::vector<at::Tensor> inputs;
    for (const auto& spec : signature.inputs) {
      std::vector<int64_t> shape = spec.shape;
      shape[0] = batch;
      // Integer inputs are ids or labels (embedding indices): small non-negative values
      // are valid for any such model; randn would give negative ones.
      const at::ScalarType type = ScalarType(spec.dtype);
      inputs.push_back(at::isIntegralType(type, /*includeBool=*/true) ? at::randint(0, 2, shape).to(type)
                                                                       : at::randn(shape).to(type));
    }
    for (int i = 0; i < 100; ++i) device->Run(loader, inputs);  // warm up

    using Clock = std::chrono::steady_clock;
    std::vector<double> latencies;
    latencies.reserve(1 << 20);
    const auto start = Clock::now();
    const auto end = start + std::chrono::duration<double>(seconds);
    for (auto now = start; now < end;) {
      device->Run(loader, inputs);
      auto after = Clock::now();
      latencies.push_back(std::chrono::duration<double, std::micro>(after - now).count());
      now = after;
    }
    const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
    std::sort(latencies.begin(), latencies.end());
    auto quantile = [&](double q) { return latencies[static_cast<size_t>(q * (latencies.size() - 1))]; };
    nlohmann::json result = {{"batch", batch},
                             {"iterations", latencies.size()},
                             {"p50_us", quantile(0.5)},
                             {"p99_us", quantile(0.99)},
                             {"per_second", latencies.size() / elapsed},
                             {"device", device->name()}};
    std::puts(result.dump().c_str());
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "trtaoti-bench-floor: %s\n", e.what());
    return 1;
  }
}
