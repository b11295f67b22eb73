// The KServe V2 gRPC front end (inference.GRPCInferenceService), beside the REST one.
// Compiled from grpc_server.cc where the build finds gRPC, else no_grpc_server.cc; this
// header includes neither gRPC nor torch.
#pragma once

#include <memory>
#include <string>

#include "inference.h"
#include "metrics.h"
#include "signature.h"

namespace trtaoti {

struct GrpcOptions {
  std::string host = "0.0.0.0";
  int port = 8001;  // 0 picks a free one
  size_t max_message_bytes = 256u << 20;
  std::string model_name;
  std::string model_version = "1";
  std::string server_version;
  // ModelConfigJson's document: the ModelConfig RPC answers the same as HTTP .../config.
  std::string model_config_json;
};

class GrpcFrontend {
 public:
  virtual ~GrpcFrontend() = default;
  virtual int port() const = 0;
  // Stops accepting RPCs and waits for those in flight (call after the batcher drained).
  virtual void Stop() = 0;
};

// Serves on gRPC's own threads until Stop(). Throws std::runtime_error when the port
// cannot be bound or this binary was built without gRPC.
std::unique_ptr<GrpcFrontend> StartGrpcServer(const GrpcOptions& options, const ModelSignature& signature,
                                              InferenceService& inference, Metrics& metrics);

}  // namespace trtaoti
