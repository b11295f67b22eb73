#include "http_server.h"

#include <httplib.h>

#include <sys/socket.h>

#include <charconv>
#include <cstdint>
#include <optional>

#include "logging.h"
#include "protocol.h"
#include "status.h"
#include "worker_pool.h"

namespace trtaoti {
namespace {

// cpp-httplib's extension point for its connection threads, backed by WorkerPool.
class PoolTaskQueue : public httplib::TaskQueue {
 public:
  // A few threads up front answer the first connections (and probes) without a start.
  explicit PoolTaskQueue(size_t max_threads) : pool_(std::min<size_t>(8, max_threads), max_threads) {}
  void enqueue(std::function<void()> fn) override { pool_.Enqueue(std::move(fn)); }
  void shutdown() override { pool_.Shutdown(); }

 private:
  WorkerPool pool_;
};

using nlohmann::json;
using std::chrono::duration_cast;
using std::chrono::microseconds;

void SendJson(httplib::Response& res, int status, std::string body) {
  res.status = status;
  res.body = std::move(body);
  res.set_header("Content-Type", "application/json");
}

void SendError(httplib::Response& res, StatusCode code, const std::string& message) {
  SendJson(res, HttpStatus(code), ErrorJson(message));
}

// cpp-httplib 0.11 takes keep-alive from the request alone, and a handler has no way
// to end its connection. A content provider that returns false once it has written
// the whole body is the one way out: the response is complete on the wire, then
// httplib treats the connection as failed and closes it. So the client is told
// `Connection: close` and the server does close, and the client never sends another
// request on a connection that is about to go.
void CloseAfterWriting(const httplib::Request& req, httplib::Response& res) {
  res.headers.erase("Keep-Alive");
  res.headers.erase("Connection");
  res.set_header("Connection", "close");
  // No body to carry the close (or a range request, which the provider would re-slice):
  // the client was told; a client that keeps the connection anyway meets the idle timeout.
  if (res.body.empty() || res.content_provider_ || !req.ranges.empty()) return;
  auto body = std::make_shared<const std::string>(std::move(res.body));
  res.body.clear();
  if (!res.has_header("Content-Length")) res.set_header("Content-Length", std::to_string(body->size()));
  const std::string content_type = res.get_header_value("Content-Type");
  res.headers.erase("Content-Type");  // set_content_provider sets it again
  res.set_content_provider(body->size(), content_type, [body](size_t offset, size_t length, httplib::DataSink& sink) {
    sink.write(body->data() + offset, length);
    return false;
  });
}

// The request boundary: whatever a handler throws becomes a JSON error; nothing a
// client sends can take the process down. Returns what the client was told.
template <typename Handler>
Status Guarded(const httplib::Request& req, httplib::Response& res, Handler&& handler) {
  Status status;
  try {
    handler();
    return status;
  } catch (const RequestError& e) {
    status = Status{e.code(), e.what()};
  } catch (const std::bad_alloc&) {
    status = Status{StatusCode::kUnavailable, "out of memory while handling the request"};
  } catch (const std::exception& e) {
    status = Status{StatusCode::kInternal, e.what()};
  } catch (...) {
    status = Status{StatusCode::kInternal, "unknown error"};
  }
  SendError(res, status.code, status.message);
  Log(res.status >= 500 ? LogLevel::kWarning : LogLevel::kDebug, "request failed",
      {{"method", req.method}, {"path", req.path}, {"status", res.status}, {"error", status.message}});
  return status;
}

std::optional<uint64_t> ContentLength(const httplib::Request& req) {
  if (!req.has_header("Content-Length")) return std::nullopt;
  const std::string value = req.get_header_value("Content-Length");
  uint64_t length = 0;
  auto [end, error] = std::from_chars(value.data(), value.data() + value.size(), length);
  if (error != std::errc() || end != value.data() + value.size()) return std::nullopt;  // httplib answers 400
  return length;
}

RequestError TooLarge(const std::string& size, size_t max_bytes) {
  return RequestError(StatusCode::kTooLarge, "the request body (" + size + ") is over --max-body-bytes (" +
                                                 std::to_string(max_bytes) + " bytes)");
}

// Marks a response whose request body was not read to its end: the rest would be
// parsed as the connection's next request (the post-routing handler closes it).
void CloseConnection(httplib::Response& res) { res.set_header("Connection", "close"); }

// The body in a buffer of our own, shared: binary inputs stay views into it until
// their batch has run. A declared length over the limit never gets here (pre-routing
// answers it); a chunked body is cut off at the limit.
std::shared_ptr<const std::string> ReadBody(const httplib::Request& req, httplib::Response& res,
                                            const httplib::ContentReader& read_content, size_t max_bytes) {
  auto body = std::make_shared<std::string>();
  if (auto length = ContentLength(req)) body->reserve(std::min<uint64_t>(max_bytes, *length));
  bool too_large = false;
  const bool complete = read_content([&](const char* data, size_t length) {
    too_large = length > max_bytes - body->size();
    if (!too_large) body->append(data, length);
    return !too_large;
  });
  if (!complete) {
    CloseConnection(res);
    if (too_large) throw TooLarge("more than " + std::to_string(max_bytes) + " bytes, chunked", max_bytes);
    throw BadRequest("the request body ended before its declared length (or its chunked encoding is broken)");
  }
  return body;
}

std::optional<size_t> HeaderLength(const httplib::Request& req) {
  if (!req.has_header(kHeaderLengthHeader)) return std::nullopt;
  const std::string value = req.get_header_value(kHeaderLengthHeader);
  size_t length = 0;
  auto [end, error] = std::from_chars(value.data(), value.data() + value.size(), length);
  if (error != std::errc() || end != value.data() + value.size()) {
    throw BadRequest(std::string(kHeaderLengthHeader) + " is not a byte count: '" + value + "'");
  }
  return length;
}

}  // namespace

int HttpStatus(StatusCode code) {
  switch (code) {
    case StatusCode::kOk: return 200;
    case StatusCode::kInvalidArgument: return 400;
    case StatusCode::kNotFound: return 404;
    case StatusCode::kUnavailable: return 503;
    case StatusCode::kInternal: return 500;
    case StatusCode::kTooLarge: return 413;
  }
  return 500;
}

HttpServer::HttpServer(HttpOptions options, const ModelSignature& signature, InferenceService& inference,
                       Metrics& metrics)
    : options_(std::move(options)),
      signature_(signature),
      inference_(inference),
      metrics_(metrics),
      server_(std::make_unique<httplib::Server>()) {
  const size_t max_threads = static_cast<size_t>(std::max(4, options_.threads));
  server_->new_task_queue = [max_threads] { return new PoolTaskQueue(max_threads); };
  server_->set_tcp_nodelay(true);
  server_->set_socket_options([this](int sock) {
    httplib::default_socket_options(sock);
    listen_socket_ = sock;  // the listener (Bind() widens its backlog)
  });
  server_->set_keep_alive_max_count(1u << 30);
  server_->set_keep_alive_timeout(options_.keep_alive_timeout_s);
  server_->set_payload_max_length(options_.max_body_bytes);
  // httplib's own check reads (and discards) the whole declared body before its 413,
  // so a client that declares a terabyte and sends nothing waited for the read
  // timeout. The header alone decides here, before any route reads a byte.
  server_->set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    const auto length = ContentLength(req);
    if (!length || *length <= options_.max_body_bytes) return httplib::Server::HandlerResponse::Unhandled;
    const RequestError error = TooLarge(std::to_string(*length) + " bytes", options_.max_body_bytes);
    SendError(res, error.code(), error.what());
    CloseConnection(res);
    Log(LogLevel::kDebug, "request failed",
        {{"method", req.method}, {"path", req.path}, {"status", res.status}, {"error", error.what()}});
    return httplib::Server::HandlerResponse::Handled;
  });
  server_->set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;
    std::string message =
        res.status == 404 ? "no route for " + req.method + " " + req.path : "HTTP " + std::to_string(res.status);
    res.body = ErrorJson(message);
    res.set_header("Content-Type", "application/json");
  });
  // Runs on every response just before it is written, whatever produced it.
  server_->set_post_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    if (draining_.load() || res.get_header_value("Connection") == "close") CloseAfterWriting(req, res);
  });
  // Last resort for the few handlers outside Guarded (health, metrics).
  server_->set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr) {
    SendError(res, StatusCode::kInternal, "internal error");
  });
  Routes();
}

HttpServer::~HttpServer() = default;

int HttpServer::Bind() {
  int port = options_.port;
  if (port == 0) {
    port = server_->bind_to_any_port(options_.host);
    if (port < 0) throw std::runtime_error("cannot bind " + options_.host);
  } else if (!server_->bind_to_port(options_.host, port)) {
    throw std::runtime_error("cannot bind " + options_.host + ":" + std::to_string(port));
  }
  // cpp-httplib 0.11 listens with a backlog of 5: a burst of new connections (a client
  // pool opening, clients reconnecting after a rollout) overflows it, and the kernel
  // drops or resets the excess. listen() again on the bound socket widens the queue.
  if (listen_socket_ < 0 || ::listen(listen_socket_, SOMAXCONN) != 0) {
    Log(LogLevel::kWarning, "could not widen the listen backlog", {{"port", port}});
  }
  return port;
}

bool HttpServer::Serve() {
  const bool listened = server_->listen_after_bind();
  {
    std::lock_guard lock(served_mutex_);
    serve_returned_.store(true);
  }
  served_.notify_all();
  return listened || stopped_.load();  // Stop() ends the listener with an accept error
}

void HttpServer::WaitUntilServed() {
  std::unique_lock lock(served_mutex_);
  served_.wait(lock, [this] { return serve_returned_.load(); });
}

void HttpServer::BeginDrain() { draining_.store(true); }

void HttpServer::Stop() {
  // Not httplib's stop(): that also tells every connection thread to quit after its
  // current request, so a connection whose last response promised keep-alive is closed
  // under a client that is already sending its next request. Shutting the listening
  // socket down only ends accept(); connections end by themselves (after a response
  // that says close, or idle after --keep-alive-timeout-s), and Serve() returns when
  // the last one has. Once: httplib closes the descriptor when its accept fails, and
  // the number may be reused by then (so not after Serve() returned either). Works
  // before Serve() too: Bind() listened, and accept() then fails at once.
  if (stopped_.exchange(true) || serve_returned_.load()) return;
  if (listen_socket_ >= 0) ::shutdown(listen_socket_, SHUT_RDWR);
}

void HttpServer::Routes() {
  auto check_model = [this](const httplib::Request& req) { CheckModel(req); };
  auto is_ready = [this] { return inference_.ready(); };

  server_->Get("/v2/health/live",
               [](const httplib::Request&, httplib::Response& res) { SendJson(res, 200, "{\"live\":true}"); });
  server_->Get("/v2/health/ready", [is_ready](const httplib::Request&, httplib::Response& res) {
    bool ready = is_ready();
    SendJson(res, ready ? 200 : 503, json{{"ready", ready}}.dump());
  });
  server_->Get("/v2", [this](const httplib::Request& req, httplib::Response& res) {
    Guarded(req, res, [&] { SendJson(res, 200, ServerMetadataJson(options_.server_version).dump()); });
  });
  server_->Get(R"(/v2/models/([^/]+)(?:/versions/([^/]+))?/ready)", [check_model, is_ready](const httplib::Request& req,
                                                                                            httplib::Response& res) {
    Guarded(req, res, [&] {
      check_model(req);
      bool ready = is_ready();
      SendJson(res, ready ? 200 : 503, json{{"name", std::string(req.matches[1])}, {"ready", ready}}.dump());
    });
  });
  server_->Get(R"(/v2/models/([^/]+)(?:/versions/([^/]+))?)", [this, check_model](const httplib::Request& req,
                                                                                  httplib::Response& res) {
    Guarded(req, res, [&] {
      check_model(req);
      SendJson(res, 200, ModelMetadataJson(signature_, options_.model_name, options_.model_version).dump());
    });
  });
  server_->Get(R"(/v2/models/([^/]+)(?:/versions/([^/]+))?/config)",
               [this, check_model](const httplib::Request& req, httplib::Response& res) {
                 Guarded(req, res, [&] {
                   check_model(req);
                   SendJson(res, 200, ModelConfigJson(signature_, options_.model_name, options_.serving).dump());
                 });
               });
  server_->Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    metrics_.SetPending(static_cast<double>(inference_.queued()));
    res.body = metrics_.Serialize();
    res.set_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8");
  });

  server_->Post(R"(/v2/models/([^/]+)(?:/versions/([^/]+))?/infer)",
                [this](const httplib::Request& req, httplib::Response& res, const httplib::ContentReader& read) {
                  HandleInfer(req, res, read);
                });
}

// {name} and optional /versions/{v}: unknown ones are 404 with Triton's wording.
void HttpServer::CheckModel(const httplib::Request& req) const {
  const std::string name = req.matches[1];
  if (name != options_.model_name) throw RequestError(StatusCode::kNotFound, "unknown model '" + name + "'");
  if (req.matches.size() > 2 && req.matches[2].matched && req.matches[2] != options_.model_version) {
    throw RequestError(StatusCode::kNotFound, "unknown version '" + std::string(req.matches[2]) + "' of model '" +
                                                  name + "' (serving version " + options_.model_version + ")");
  }
}

void HttpServer::HandleInfer(const httplib::Request& req, httplib::Response& res,
                             const httplib::ContentReader& read_content) {
  const auto arrival = Clock::now();
  int64_t rows = 0;
  InferOutcome outcome;
  const Status status = Guarded(req, res, [&] {
    auto body = ReadBody(req, res, read_content, options_.max_body_bytes);
    CheckModel(req);
    InferRequest request = ParseInferRequest(body, HeaderLength(req), signature_);
    rows = request.batch_size();
    outcome = inference_.Run(request.inputs, request.schedule);
    if (!outcome.status.ok()) throw RequestError(outcome.status.code, outcome.status.message);

    HttpPayload payload =
        EncodeInferResponse(options_.model_name, options_.model_version, request, signature_, outcome.outputs);
    res.status = 200;
    res.body = std::move(payload.body);
    res.set_header("Content-Type", payload.content_type);
    if (payload.json_length) res.set_header(kHeaderLengthHeader, std::to_string(*payload.json_length));
  });
  if (status.code == StatusCode::kNotFound) return;  // not a request for this model
  metrics_.RecordRequest(status, outcome.rejection, rows, duration_cast<microseconds>(Clock::now() - arrival),
                         outcome.queue_time, outcome.compute_time);
}

}  // namespace trtaoti
