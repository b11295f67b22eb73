#include "grpc_server.h"

#include <google/protobuf/util/json_util.h>
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <cstring>
#include <limits>
#include <stdexcept>

#include "grpc_predict_v2.grpc.pb.h"
#include "logging.h"
#include "protocol.h"
#include "status.h"

namespace trtaoti {
namespace {

using std::chrono::duration_cast;
using std::chrono::microseconds;

grpc::StatusCode GrpcCode(StatusCode code) {
  switch (code) {
    case StatusCode::kOk: return grpc::StatusCode::OK;
    case StatusCode::kInvalidArgument: return grpc::StatusCode::INVALID_ARGUMENT;
    case StatusCode::kNotFound: return grpc::StatusCode::NOT_FOUND;
    case StatusCode::kUnavailable: return grpc::StatusCode::UNAVAILABLE;
    case StatusCode::kInternal: return grpc::StatusCode::INTERNAL;
    case StatusCode::kTooLarge: return grpc::StatusCode::RESOURCE_EXHAUSTED;  // gRPC's own for big messages
  }
  return grpc::StatusCode::INTERNAL;
}

// The gRPC twin of the REST front end's Guarded: exceptions become a status.
template <typename Handler>
Status Guarded(Handler&& handler) {
  try {
    handler();
    return Status::Ok();
  } catch (const RequestError& e) {
    return Status{e.code(), e.what()};
  } catch (const std::bad_alloc&) {
    return Status{StatusCode::kUnavailable, "out of memory while handling the request"};
  } catch (const std::exception& e) {
    return Status{StatusCode::kInternal, e.what()};
  } catch (...) {
    return Status{StatusCode::kInternal, "unknown error"};
  }
}

grpc::Status ToGrpc(const Status& status) {
  return status.ok() ? grpc::Status::OK : grpc::Status(GrpcCode(status.code), status.message);
}

template <typename T, typename Values>
void FillTyped(const Values& values, HostTensor& tensor, const std::string& name) {
  std::byte* out = tensor.mutable_data();
  for (const auto& v : values) {
    if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
      using Source = std::decay_t<decltype(v)>;
      if (static_cast<long double>(v) < static_cast<long double>(std::numeric_limits<T>::min()) ||
          static_cast<long double>(v) > static_cast<long double>(std::numeric_limits<T>::max())) {
        throw BadRequest("input '" + name + "': element " + std::to_string(static_cast<Source>(v)) +
                         " is out of range for " + std::string(DataTypeName(tensor.dtype())));
      }
    }
    T value = static_cast<T>(v);
    std::memcpy(out, &value, sizeof(T));
    out += sizeof(T);
  }
}

// Typed `contents` (the protocol's non-raw form) -> a tensor of the input's datatype.
HostTensor FromContents(const inference::InferTensorContents& contents, const TensorSpec& spec, const Shape& shape) {
  const int64_t expected = NumElements(shape);
  HostTensor tensor = HostTensor::Allocate(spec.dtype, shape);
  auto fill = [&](const auto& values, auto tag, const char* field) {
    using T = decltype(tag);
    if (static_cast<int64_t>(values.size()) != expected) {
      throw BadRequest("input '" + spec.name + "': contents." + field + " has " + std::to_string(values.size()) +
                       " elements but shape " + ShapeString(shape) + " needs " + std::to_string(expected));
    }
    FillTyped<T>(values, tensor, spec.name);
  };
  switch (spec.dtype) {
    case DataType::kBool: fill(contents.bool_contents(), bool{}, "bool_contents"); break;
    case DataType::kUint8: fill(contents.uint_contents(), uint8_t{}, "uint_contents"); break;
    case DataType::kInt8: fill(contents.int_contents(), int8_t{}, "int_contents"); break;
    case DataType::kInt16: fill(contents.int_contents(), int16_t{}, "int_contents"); break;
    case DataType::kInt32: fill(contents.int_contents(), int32_t{}, "int_contents"); break;
    case DataType::kInt64: fill(contents.int64_contents(), int64_t{}, "int64_contents"); break;
    case DataType::kFp32: fill(contents.fp32_contents(), float{}, "fp32_contents"); break;
    case DataType::kFp64: fill(contents.fp64_contents(), double{}, "fp64_contents"); break;
    case DataType::kFp16:
    case DataType::kBf16:
      throw BadRequest("input '" + spec.name + "': " + std::string(DataTypeName(spec.dtype)) +
                       " has no typed contents field in the protocol; send raw_input_contents");
  }
  return tensor;
}

class Service final : public inference::GRPCInferenceService::Service {
 public:
  Service(const GrpcOptions& options, const ModelSignature& signature, InferenceService& inference, Metrics& metrics)
      : options_(options), signature_(signature), inference_(inference), metrics_(metrics) {
    // One document for both front ends: the HTTP JSON, parsed into Triton's message.
    const auto parsed = google::protobuf::util::JsonStringToMessage(options_.model_config_json, &config_);
    if (!parsed.ok()) throw std::runtime_error("model config does not fit Triton's ModelConfig: " + parsed.ToString());
  }

  grpc::Status ServerLive(grpc::ServerContext*, const inference::ServerLiveRequest*,
                          inference::ServerLiveResponse* response) override {
    response->set_live(true);
    return grpc::Status::OK;
  }

  grpc::Status ServerReady(grpc::ServerContext*, const inference::ServerReadyRequest*,
                           inference::ServerReadyResponse* response) override {
    response->set_ready(inference_.ready());
    return grpc::Status::OK;
  }

  grpc::Status ModelReady(grpc::ServerContext*, const inference::ModelReadyRequest* request,
                          inference::ModelReadyResponse* response) override {
    return ToGrpc(Guarded([&] {
      CheckModel(request->name(), request->version());
      response->set_ready(inference_.ready());
    }));
  }

  grpc::Status ServerMetadata(grpc::ServerContext*, const inference::ServerMetadataRequest*,
                              inference::ServerMetadataResponse* response) override {
    response->set_name("trtaoti-server");
    response->set_version(options_.server_version);
    return grpc::Status::OK;
  }

  grpc::Status ModelMetadata(grpc::ServerContext*, const inference::ModelMetadataRequest* request,
                             inference::ModelMetadataResponse* response) override {
    return ToGrpc(Guarded([&] {
      CheckModel(request->name(), request->version());
      response->set_name(options_.model_name);
      response->add_versions(options_.model_version);
      response->set_platform(signature_.backend == "tensorrt" ? "torch_tensorrt_aoti" : "pytorch_aoti");
      auto add = [](auto* tensor, const TensorSpec& spec) {
        tensor->set_name(spec.name);
        tensor->set_datatype(std::string(DataTypeName(spec.dtype)));
        for (int64_t d : spec.shape) tensor->add_shape(d);
      };
      for (const auto& spec : signature_.inputs) add(response->add_inputs(), spec);
      for (const auto& spec : signature_.outputs) add(response->add_outputs(), spec);
    }));
  }

  grpc::Status ModelConfig(grpc::ServerContext*, const inference::ModelConfigRequest* request,
                           inference::ModelConfigResponse* response) override {
    return ToGrpc(Guarded([&] {
      CheckModel(request->name(), request->version());
      *response->mutable_config() = config_;
    }));
  }

  grpc::Status ModelInfer(grpc::ServerContext*, const inference::ModelInferRequest* request,
                          inference::ModelInferResponse* response) override {
    const auto arrival = Clock::now();
    int64_t rows = 0;
    InferOutcome outcome;
    const Status status = Guarded([&] {
      CheckModel(request->model_name(), request->model_version());
      std::vector<HostTensor> inputs = ParseInputs(*request);
      const SchedulePolicyParameters schedule = ParseSchedule(*request);
      rows = inputs.front().rows();
      std::vector<int> wanted;
      for (const auto& output : request->outputs()) wanted.push_back(OutputIndex(signature_, output.name()));
      if (wanted.empty()) {
        for (size_t i = 0; i < signature_.outputs.size(); ++i) wanted.push_back(static_cast<int>(i));
      }
      // The inputs may point into `request`: Run returns only once the batcher is done.
      outcome = inference_.Run(std::move(inputs), schedule);
      if (!outcome.status.ok()) throw RequestError(outcome.status.code, outcome.status.message);

      response->set_model_name(options_.model_name);
      response->set_model_version(options_.model_version);
      response->set_id(request->id());
      for (int index : wanted) {
        const HostTensor& tensor = outcome.outputs.at(index);
        auto* output = response->add_outputs();
        output->set_name(signature_.outputs[index].name);
        output->set_datatype(std::string(DataTypeName(tensor.dtype())));
        for (int64_t d : tensor.shape()) output->add_shape(d);
        response->add_raw_output_contents(reinterpret_cast<const char*>(tensor.data()), tensor.nbytes());
      }
    });
    if (status.code != StatusCode::kNotFound) {
      metrics_.RecordRequest(status, outcome.rejection, rows, duration_cast<microseconds>(Clock::now() - arrival),
                             outcome.queue_time, outcome.compute_time);
    }
    if (!status.ok()) {
      Log(status.code == StatusCode::kInternal ? LogLevel::kWarning : LogLevel::kDebug, "grpc request failed",
          {{"error", status.message}});
    }
    return ToGrpc(status);
  }

 private:
  void CheckModel(const std::string& name, const std::string& version) const {
    if (name != options_.model_name) throw RequestError(StatusCode::kNotFound, "unknown model '" + name + "'");
    if (!version.empty() && version != options_.model_version) {
      throw RequestError(StatusCode::kNotFound, "unknown version '" + version + "' of model '" + name +
                                                    "' (serving version " + options_.model_version + ")");
    }
  }

  // tritonclient sends priority as uint64_param and timeout as int64_param; either
  // integer kind is taken for both, as long as it is not negative.
  static SchedulePolicyParameters ParseSchedule(const inference::ModelInferRequest& request) {
    auto integer = [&](const char* name) -> uint64_t {
      const auto it = request.parameters().find(name);
      if (it == request.parameters().end()) return 0;
      const inference::InferParameter& value = it->second;
      if (value.has_uint64_param()) return value.uint64_param();
      // A non-negative int64 goes through as unsigned (nlohmann keeps an int64 signed).
      if (value.has_int64_param() && value.int64_param() >= 0) return static_cast<uint64_t>(value.int64_param());
      if (value.has_int64_param()) return ScheduleParameter(nlohmann::json(value.int64_param()), name);
      if (value.has_double_param()) return ScheduleParameter(nlohmann::json(value.double_param()), name);
      if (value.has_string_param()) return ScheduleParameter(nlohmann::json(value.string_param()), name);
      return ScheduleParameter(nlohmann::json(value.bool_param()), name);
    };
    SchedulePolicyParameters schedule;
    schedule.priority = integer("priority");
    const uint64_t timeout = integer("timeout");
    if (timeout > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      throw BadRequest("parameter 'timeout' is out of range, got " + std::to_string(timeout));
    }
    schedule.timeout_us = static_cast<int64_t>(timeout);
    return schedule;
  }

  std::vector<HostTensor> ParseInputs(const inference::ModelInferRequest& request) const {
    if (request.inputs().empty()) throw BadRequest("the request needs at least one input");
    const bool raw = request.raw_input_contents_size() > 0;
    if (raw && request.raw_input_contents_size() != request.inputs_size()) {
      throw BadRequest("raw_input_contents has " + std::to_string(request.raw_input_contents_size()) + " entries for " +
                       std::to_string(request.inputs_size()) + " inputs");
    }
    InputCollector collector(signature_);
    for (int i = 0; i < request.inputs_size(); ++i) {
      const auto& input = request.inputs(i);
      const Shape shape(input.shape().begin(), input.shape().end());
      const InputCollector::Slot slot = collector.Declare(input.name(), input.datatype(), shape);
      const TensorSpec& spec = signature_.inputs[slot.index];
      if (raw) {
        if (input.has_contents())
          throw BadRequest("input '" + input.name() + "' has both contents and raw_input_contents");
        const std::string& bytes = request.raw_input_contents(i);
        if (bytes.size() != slot.nbytes) {
          throw BadRequest("input '" + input.name() + "': raw_input_contents has " + std::to_string(bytes.size()) +
                           " bytes but shape " + ShapeString(slot.shape) + " of " +
                           std::string(DataTypeName(spec.dtype)) + " needs " + std::to_string(slot.nbytes));
        }
        // A view into the request message, which outlives the inference (see ModelInfer).
        collector.Set(slot,
                      HostTensor(spec.dtype, slot.shape, nullptr, reinterpret_cast<const std::byte*>(bytes.data())));
      } else if (input.has_contents()) {
        collector.Set(slot, FromContents(input.contents(), spec, slot.shape));
      } else {
        throw BadRequest("input '" + input.name() + "' has neither contents nor raw_input_contents");
      }
    }
    return collector.Finish();
  }

  const GrpcOptions options_;
  const ModelSignature& signature_;
  InferenceService& inference_;
  Metrics& metrics_;
  inference::ModelConfig config_;
};

class GrpcServer final : public GrpcFrontend {
 public:
  GrpcServer(const GrpcOptions& options, const ModelSignature& signature, InferenceService& inference, Metrics& metrics)
      : service_(options, signature, inference, metrics) {
    grpc::ServerBuilder builder;
    const std::string address = options.host + ":" + std::to_string(options.port);
    builder.AddListeningPort(address, grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(&service_);
    const int max_bytes =
        static_cast<int>(std::min<size_t>(options.max_message_bytes, std::numeric_limits<int>::max()));
    builder.SetMaxReceiveMessageSize(max_bytes);
    builder.SetMaxSendMessageSize(max_bytes);
    server_ = builder.BuildAndStart();
    if (!server_ || port_ == 0) throw std::runtime_error("cannot serve gRPC on " + address);
  }

  int port() const override { return port_; }

  void Stop() override {
    if (server_) server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(30));
  }

 private:
  Service service_;
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
};

}  // namespace

std::unique_ptr<GrpcFrontend> StartGrpcServer(const GrpcOptions& options, const ModelSignature& signature,
                                              InferenceService& inference, Metrics& metrics) {
  return std::make_unique<GrpcServer>(options, signature, inference, metrics);
}

}  // namespace trtaoti
