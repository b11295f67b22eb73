// trtaoti-server: wiring. Flags -> model -> batcher -> HTTP; SIGTERM/SIGINT drain.
//
// Shutdown contract (Kubernetes sends SIGTERM, then SIGKILL after the grace period):
// readiness turns false and new inference requests get 503 at once; every HTTP
// response from then on says `Connection: close` and its connection closes once it is
// written, so no keep-alive client sends a request into a closing connection; every
// request already queued or running is answered; then the listener closes, and the
// process exits 0 when the last connection has (an idle one after the keep-alive timeout).
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <thread>

#include <torch/version.h>

#include "batcher.h"
#include "flags.h"
#include "grpc_server.h"
#include "http_server.h"
#include "inference.h"
#include "logging.h"
#include "metrics.h"
#include "model.h"
#include "package_check.h"
#include "protocol.h"

namespace trtaoti {
namespace {

constexpr const char* kServerVersion = TRTAOTI_VERSION;  // from VERSION, through CMake

BatchLimits ResolveLimits(const Flags& flags, const ModelSignature& signature) {
  BatchLimits limits{signature.batch_min, signature.batch_opt, signature.batch_max};
  if (flags.batch_min) limits.min = flags.batch_min;
  if (flags.batch_opt) limits.opt = flags.batch_opt;
  if (flags.batch_max) limits.max = flags.batch_max;
  if (!(1 <= limits.min && limits.min <= limits.opt && limits.opt <= limits.max)) {
    throw std::invalid_argument("batch range needs 1 <= min <= opt <= max, got " + std::to_string(limits.min) + "/" +
                                std::to_string(limits.opt) + "/" + std::to_string(limits.max));
  }
  if (limits.min < signature.batch_min || limits.max > signature.batch_max) {
    // A CPU package runs outside its export range; TensorRT engines do not.
    Log(LogLevel::kWarning, "batch range overrides go beyond the package's compiled range",
        {{"compiled", {signature.batch_min, signature.batch_max}}, {"serving", {limits.min, limits.max}}});
  }
  return limits;
}

// Batches of zeros at batch min (a lone request, padded) and opt on every runner, so
// the first clients do not pay for lazy initialisation (allocator pools, OpenMP
// threads, the CUDA context, each runner's stream and cuBLAS/cuDNN state per shape).
void Warmup(AotiModel& model, const BatchLimits& limits) {
  for (int64_t rows : {limits.min, limits.opt}) {
    std::vector<HostTensor> inputs;
    for (const TensorSpec& spec : model.signature().inputs) {
      Shape shape = spec.shape;
      shape[0] = rows;
      for (int64_t d : shape) {
        if (d < 0) return;  // dynamic non-batch dims: no canonical warm-up shape
      }
      inputs.push_back(HostTensor::Allocate(spec.dtype, shape));
    }
    for (int runner = 0; runner < model.runners(); ++runner) model.Execute(runner, inputs);
    if (limits.opt == limits.min) break;
  }
}

int Main(int argc, char** argv) {
  Flags flags;
  try {
    if (!ParseFlags(argc, argv, flags)) return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "trtaoti-server: %s\n", e.what());
    return 2;
  }
  LogLevel level;
  if (!ParseLogLevel(flags.log_level, level)) {
    std::fprintf(stderr, "trtaoti-server: --log-level must be debug, info, warning or error\n");
    return 2;
  }
  SetLogLevel(level);

  // Signals go to the one thread that waits for them; block them before any thread starts.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);  // a client hanging up must not kill the server

  try {
    const auto verify_started = std::chrono::steady_clock::now();
    VerifyPackage(flags.model, flags.sha256);
    Log(LogLevel::kInfo, "package verified",
        {{"package", flags.model},
         {"checks", flags.sha256.empty() ? "zip structure, member CRCs" : "sha256, zip structure, member CRCs"},
         {"ms", std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - verify_started)
                    .count()}});
    Log(LogLevel::kInfo, "loading model",
        {{"package", flags.model}, {"device", flags.device}, {"torch", TORCH_VERSION}});
    ModelOptions model_options{flags.model, flags.device, flags.runners, flags.intra_op_threads,
                               flags.torchtrt_runtime};
    model_options.cuda_graph_max_batch = flags.cuda_graph_max_batch;
    auto model = std::make_shared<AotiModel>(model_options);
    const ModelSignature& signature = model->signature();
    const std::string model_name = flags.model_name.empty() ? signature.name : flags.model_name;
    BatcherOptions batcher_options;
    batcher_options.limits = ResolveLimits(flags, signature);
    batcher_options.max_queue_delay = std::chrono::microseconds(flags.max_queue_delay_us);
    QueuePolicy& policy = batcher_options.queue_policy;
    policy.priority_levels = flags.priority_levels;
    policy.default_priority_level = flags.default_priority_level;
    policy.max_queue_size = static_cast<size_t>(flags.max_queue_size);
    policy.default_timeout = std::chrono::microseconds(flags.default_queue_timeout_us);
    policy.timeout_action = flags.timeout_action_delay ? TimeoutAction::kDelay : TimeoutAction::kReject;
    policy.allow_timeout_override = flags.allow_timeout_override;
    batcher_options.hold_until_queued = static_cast<size_t>(flags.delay_scheduler);
    batcher_options.workers = flags.runners;
    if (flags.warmup) Warmup(*model, batcher_options.limits);

    Metrics metrics(model_name, flags.model_version, batcher_options.limits.max);
    Batcher batcher(batcher_options, model, [&metrics](const BatchStats& stats) {
      metrics.RecordBatch(stats);
      // Which level each batch served, in order: how a test (or an operator chasing a
      // latency complaint) sees the queue's order; free unless debug logging is on.
      if (LogEnabled(LogLevel::kDebug)) {
        Log(LogLevel::kDebug, "batch",
            {{"rows", stats.rows}, {"requests", stats.requests}, {"priority_level", stats.priority_level}});
      }
    });

    InferenceService inference(batcher);
    ServingConfig serving_config;
    serving_config.batch_min = batcher_options.limits.min;
    serving_config.batch_opt = batcher_options.limits.opt;
    serving_config.batch_max = batcher_options.limits.max;
    serving_config.max_queue_delay_us = flags.max_queue_delay_us;
    serving_config.priority_levels = flags.priority_levels;
    serving_config.default_priority_level = flags.default_priority_level;
    serving_config.max_queue_size = flags.max_queue_size;
    serving_config.default_timeout_us = flags.default_queue_timeout_us;
    serving_config.timeout_action_delay = flags.timeout_action_delay;
    serving_config.allow_timeout_override = flags.allow_timeout_override;
    serving_config.runners = flags.runners;
    serving_config.gpu = model->device_name() != "cpu";
    std::unique_ptr<GrpcFrontend> grpc;
    if (flags.grpc_port >= 0) {
      GrpcOptions grpc_options;
      grpc_options.host = flags.host;
      grpc_options.port = flags.grpc_port;
      grpc_options.max_message_bytes = static_cast<size_t>(flags.max_body_bytes);
      grpc_options.model_name = model_name;
      grpc_options.model_version = flags.model_version;
      grpc_options.server_version = kServerVersion;
      grpc_options.model_config_json = ModelConfigJson(signature, model_name, serving_config).dump();
      grpc = StartGrpcServer(grpc_options, signature, inference, metrics);
    }

    HttpOptions http_options;
    http_options.host = flags.host;
    http_options.port = flags.port;
    http_options.threads = flags.http_threads;
    http_options.keep_alive_timeout_s = flags.keep_alive_timeout_s;
    http_options.max_body_bytes = static_cast<size_t>(flags.max_body_bytes);
    http_options.model_name = model_name;
    http_options.model_version = flags.model_version;
    http_options.server_version = kServerVersion;
    http_options.serving = serving_config;
    HttpServer http(http_options, signature, inference, metrics);
    const int port = http.Bind();

    std::thread signal_thread([&] {
      int signal = 0;
      sigwait(&stop_signals, &signal);
      Log(LogLevel::kInfo, "draining", {{"signal", signal}, {"queued", batcher.queued()}});
      // Requests keep running until the front ends are done: in Kubernetes the endpoint
      // is gone by now (preStop), but keep-alive connections opened before still bring
      // requests here, and answering them loses nothing where a 503 fails them.
      inference.BeginDrain();  // readiness fails
      http.BeginDrain();  // every answer from here on closes its connection
      // No new connections; Serve() returns once every open one has closed (after its
      // next answer, or idle after --keep-alive-timeout-s). Also when the SIGTERM arrived
      // while the model loaded: Serve() then returns at once.
      http.Stop();
      if (grpc) grpc->Stop();  // GOAWAY; waits for RPCs in flight to send their answers
      http.WaitUntilServed();
      inference.StopAccepting();
      batcher.Stop();  // answers everything already accepted
    });

    inference.SetReady(true);
    if (!inference.draining())
      Log(LogLevel::kInfo, "serving",
          {{"model", model_name},
           {"host", flags.host},
           {"port", port},
           {"grpc_port", grpc ? grpc->port() : -1},
           {"device", model->device_name()},
           {"batch", {batcher_options.limits.min, batcher_options.limits.opt, batcher_options.limits.max}},
           {"max_queue_delay_us", flags.max_queue_delay_us},
           {"priority_levels", flags.priority_levels},
           {"max_queue_size", flags.max_queue_size},
           {"default_queue_timeout_us", flags.default_queue_timeout_us},
           {"timeout_action", flags.timeout_action_delay ? "delay" : "reject"},
           {"runners", flags.runners}});
    bool served = false;
    try {
      served = http.Serve();
    } catch (const std::exception& e) {  // the listener died (httplib lets exceptions through)
      Log(LogLevel::kError, "the HTTP listener failed", {{"error", e.what()}});
    }
    if (!served) {
      Log(LogLevel::kError, "the HTTP listener failed", {{"port", port}});
      kill(getpid(), SIGTERM);  // let the signal thread drain and return
    }
    signal_thread.join();
    Log(LogLevel::kInfo, "stopped", {{"accepted", batcher.accepted()}, {"completed", batcher.completed()}});
    return served ? 0 : 1;
  } catch (const std::exception& e) {
    Log(LogLevel::kError, "fatal", {{"error", e.what()}});
    return 1;
  }
}

}  // namespace
}  // namespace trtaoti

int main(int argc, char** argv) { return trtaoti::Main(argc, argv); }
