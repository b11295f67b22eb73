// Command-line flags of trtaoti-server (--name value or --name=value).
#pragma once

#include <cstdint>
#include <string>

namespace trtaoti {

struct Flags {
  std::string model;  // the .pt2 package
  std::string model_name;  // default: the package's trtaoti.model_name
  std::string model_version = "1";
  std::string host = "0.0.0.0";
  int port = 8000;
  int grpc_port = -1;  // -1: no gRPC
  int http_threads = 1024;
  int keep_alive_timeout_s = 5;
  int64_t max_body_bytes = 256ll << 20;
  std::string device = "cpu";
  int runners = 1;
  int intra_op_threads = 0;
  int64_t cuda_graph_max_batch = 0;  // 0: no CUDA graphs
  int64_t batch_min = 0, batch_opt = 0, batch_max = 0;  // 0: the package's range
  int64_t max_queue_delay_us = 0;
  // The queue policy (Triton's dynamic_batching priority and default_queue_policy).
  uint64_t priority_levels = 1;
  uint64_t default_priority_level = 1;
  int64_t max_queue_size = 1024;  // per priority level
  int64_t default_queue_timeout_us = 30'000'000;
  bool timeout_action_delay = false;  // --timeout-action delay (default reject)
  bool allow_timeout_override = false;
  uint64_t delay_scheduler = 0;  // TRTAOTI_DELAY_SCHEDULER: a test knob, see BatcherOptions::hold_until_queued
  std::string torchtrt_runtime;
  std::string sha256;  // expected digest of the package, lowercase hex; empty: not checked
  std::string log_level = "info";
  bool warmup = true;
};

// Throws std::invalid_argument naming the bad flag. Returns false after printing
// help for --help.
bool ParseFlags(int argc, char** argv, Flags& flags);

}  // namespace trtaoti
