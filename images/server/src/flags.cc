#include "flags.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <limits>
#include <map>
#include <optional>
#include <stdexcept>
#include <string_view>

namespace trtaoti {
namespace {

constexpr const char* kUsage =
    R"(trtaoti-server: serve an AOTInductor package (.pt2) over KServe V2 with dynamic batching

  --model PATH               the .pt2 package (required; alias --model-path)
  --model-name NAME          name in URLs (default: the package's trtaoti.model_name)
  --model-version V          the one version served (default 1)
  --host ADDR --port N       listen address (default 0.0.0.0:8000; port 0 picks a free one)
  --grpc-port N              also serve KServe V2 gRPC on N (0 picks a free one; default: off)
  --http-threads N           most HTTP connections served at once; threads start on
                             demand, one per busy connection (default 1024)
  --keep-alive-timeout-s N   close idle keep-alive connections after N s; also bounds the
                             SIGTERM drain, so keep it under the pod's grace period (default 5)
  --max-body-bytes N         largest request body; a larger one gets 413 from its
                             Content-Length at once, unread (default 268435456)
  --device cpu|cuda:N        where the model runs (default cpu)
  --runners N                batches run at once (the loader's num_runners; default 1; alias --num-runners)
  --intra-op-threads N       threads per batch on CPU (default: torch's default)
  --cuda-graph-max-batch N   on CUDA, capture CUDA graphs at start for batches of up to N
                             rows (the range's min and powers of two; a batch replays the
                             smallest that holds it) and replay them instead of launching
                             every kernel; larger batches run as usual (default 0: off)
  --batch-min/--batch-opt/--batch-max N   override the package's compiled batch range
  --max-queue-delay-us N     wait up to N us for a batch to reach batch-opt rows (default 0)
  --priority-levels N        priority levels 1..N; a request's parameters.priority picks
                             one (1 is served first; 0 or none: the default level);
                             a priority above N gets 400 (default 1: one FIFO queue)
  --default-priority-level N the level of requests without a priority (default 1)
  --max-queue-size N         queued requests per priority level before 503 "Exceeds
                             maximum queue size" (default 1024; 0 = unbounded)
  --default-queue-timeout-us N   a request still queued after N us gets the timeout
                             action (default 30000000; 0 = never)
  --timeout-action reject|delay  reject: answer 503 "Request timeout expired" at once;
                             delay: serve it after every unexpired request of its
                             priority level (default reject)
  --allow-timeout-override   let a request's parameters.timeout (us) shorten the
                             default timeout (default: the parameter is ignored)
  --request-timeout-ms N     deprecated: --default-queue-timeout-us N*1000
  --sha256 HEX               refuse to start unless the package's sha256 is HEX (also
                             TRTAOTI_MODEL_SHA256). Every start also checks the zip's
                             structure and each member's CRC-32
  --torchtrt-runtime PATH    libtorchtrt_runtime.so to preload (also TRTAOTI_TORCHTRT_RUNTIME)
  --log-level debug|info|warning|error   (default info)
  --no-warmup                skip the warm-up batch before turning ready

Test knob: TRTAOTI_DELAY_SCHEDULER=N holds every batch until N requests are queued
at once (Triton's TRITONSERVER_DELAY_SCHEDULER), so a test can fill the queue first.
)";

template <typename T>
void ParseNumber(const std::string& name, const std::string& text, T& out) {
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), out);
  if (error != std::errc() || end != text.data() + text.size() || out < 0) {
    throw std::invalid_argument("--" + name + " needs a non-negative integer, got '" + text + "'");
  }
}

}  // namespace

bool ParseFlags(int argc, char** argv, Flags& flags) {
  std::map<std::string, std::function<void(const std::string&)>> valued = {
      {"model", [&](const std::string& v) { flags.model = v; }},
      {"model-path", [&](const std::string& v) { flags.model = v; }},  // alias (operator's spelling)
      {"model-name", [&](const std::string& v) { flags.model_name = v; }},
      {"model-version", [&](const std::string& v) { flags.model_version = v; }},
      {"host", [&](const std::string& v) { flags.host = v; }},
      {"port", [&](const std::string& v) { ParseNumber("port", v, flags.port); }},
      {"grpc-port", [&](const std::string& v) { ParseNumber("grpc-port", v, flags.grpc_port); }},
      {"http-threads", [&](const std::string& v) { ParseNumber("http-threads", v, flags.http_threads); }},
      {"keep-alive-timeout-s",
       [&](const std::string& v) { ParseNumber("keep-alive-timeout-s", v, flags.keep_alive_timeout_s); }},
      {"max-body-bytes", [&](const std::string& v) { ParseNumber("max-body-bytes", v, flags.max_body_bytes); }},
      {"device", [&](const std::string& v) { flags.device = v; }},
      {"runners", [&](const std::string& v) { ParseNumber("runners", v, flags.runners); }},
      {"num-runners", [&](const std::string& v) { ParseNumber("num-runners", v, flags.runners); }},  // alias
      {"intra-op-threads", [&](const std::string& v) { ParseNumber("intra-op-threads", v, flags.intra_op_threads); }},
      {"batch-min", [&](const std::string& v) { ParseNumber("batch-min", v, flags.batch_min); }},
      {"batch-opt", [&](const std::string& v) { ParseNumber("batch-opt", v, flags.batch_opt); }},
      {"batch-max", [&](const std::string& v) { ParseNumber("batch-max", v, flags.batch_max); }},
      {"cuda-graph-max-batch",
       [&](const std::string& v) { ParseNumber("cuda-graph-max-batch", v, flags.cuda_graph_max_batch); }},
      {"max-queue-delay-us",
       [&](const std::string& v) { ParseNumber("max-queue-delay-us", v, flags.max_queue_delay_us); }},
      {"max-queue-size", [&](const std::string& v) { ParseNumber("max-queue-size", v, flags.max_queue_size); }},
      {"priority-levels", [&](const std::string& v) { ParseNumber("priority-levels", v, flags.priority_levels); }},
      {"default-priority-level",
       [&](const std::string& v) { ParseNumber("default-priority-level", v, flags.default_priority_level); }},
      {"default-queue-timeout-us",
       [&](const std::string& v) { ParseNumber("default-queue-timeout-us", v, flags.default_queue_timeout_us); }},
      {"request-timeout-ms",
       [&](const std::string& v) {
         int64_t ms = 0;
         ParseNumber("request-timeout-ms", v, ms);
         if (ms > std::numeric_limits<int64_t>::max() / 1000) {
           throw std::invalid_argument("--request-timeout-ms is too large, got '" + v + "'");
         }
         flags.default_queue_timeout_us = ms * 1000;
       }},
      {"timeout-action",
       [&](const std::string& v) {
         std::string action = v;
         std::transform(action.begin(), action.end(), action.begin(), [](unsigned char c) { return std::tolower(c); });
         if (action != "reject" && action != "delay") {
           throw std::invalid_argument("--timeout-action must be reject or delay, got '" + v + "'");
         }
         flags.timeout_action_delay = action == "delay";
       }},
      {"torchtrt-runtime", [&](const std::string& v) { flags.torchtrt_runtime = v; }},
      {"sha256", [&](const std::string& v) { flags.sha256 = v; }},
      {"log-level", [&](const std::string& v) { flags.log_level = v; }},
  };
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::fputs(kUsage, stdout);
      return false;
    }
    if (arg == "--no-warmup") {
      flags.warmup = false;
      continue;
    }
    if (arg == "--allow-timeout-override") {
      flags.allow_timeout_override = true;
      continue;
    }
    if (arg.rfind("--", 0) != 0) throw std::invalid_argument("unexpected argument '" + arg + "' (see --help)");
    std::string name = arg.substr(2);
    std::optional<std::string> value;
    if (auto eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
    }
    auto it = valued.find(name);
    if (it == valued.end()) throw std::invalid_argument("unknown flag --" + name + " (see --help)");
    if (!value) {
      if (i + 1 >= argc) throw std::invalid_argument("--" + name + " needs a value");
      value = argv[++i];
    }
    it->second(*value);
  }
  if (flags.model.empty()) throw std::invalid_argument("--model PATH is required (see --help)");
  if (flags.runners < 1) throw std::invalid_argument("--runners must be at least 1");
  if (flags.priority_levels < 1) throw std::invalid_argument("--priority-levels must be at least 1");
  if (flags.default_priority_level < 1 || flags.default_priority_level > flags.priority_levels) {
    throw std::invalid_argument("--default-priority-level must be in 1..--priority-levels (" +
                                std::to_string(flags.priority_levels) + "), got " +
                                std::to_string(flags.default_priority_level));
  }
  if (const char* env = std::getenv("TRTAOTI_DELAY_SCHEDULER")) {
    ParseNumber("TRTAOTI_DELAY_SCHEDULER (environment)", env, flags.delay_scheduler);
  }
  const char* sha256_source = "--sha256";
  if (flags.sha256.empty()) {
    if (const char* env = std::getenv("TRTAOTI_MODEL_SHA256")) {
      flags.sha256 = env;
      sha256_source = "TRTAOTI_MODEL_SHA256";
    }
  }
  const bool hex =
      std::all_of(flags.sha256.begin(), flags.sha256.end(), [](unsigned char c) { return std::isxdigit(c); });
  if (!flags.sha256.empty() && (flags.sha256.size() != 64 || !hex)) {
    throw std::invalid_argument(std::string(sha256_source) + " needs 64 hex digits, got '" + flags.sha256 + "'");
  }
  return true;
}

}  // namespace trtaoti
