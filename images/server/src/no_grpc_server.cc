// Linked instead of grpc_server.cc when the build found no gRPC (protoc, grpc_cpp_plugin, grpc++).
#include <stdexcept>

#include "grpc_server.h"

namespace trtaoti {

std::unique_ptr<GrpcFrontend> StartGrpcServer(const GrpcOptions&, const ModelSignature&, InferenceService&, Metrics&) {
  throw std::runtime_error(
      "this trtaoti-server was built without gRPC support (no protoc/grpc_cpp_plugin/grpc++ at build time); "
      "serve REST only (omit --grpc-port) or rebuild with gRPC installed");
}

}  // namespace trtaoti
