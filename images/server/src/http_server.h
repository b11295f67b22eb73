// The KServe V2 REST front end (cpp-httplib): routes, request parsing on the HTTP
// worker thread, hand-off to the batcher, response encoding, and the one place where
// exceptions become JSON errors with Triton's status codes.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <string>

#include "batcher.h"
#include "metrics.h"
#include "signature.h"

namespace httplib {
class Server;
struct Request;
struct Response;
class ContentReader;
}

namespace trtaoti {

struct HttpOptions {
  std::string host = "0.0.0.0";
  int port = 8000;
  int threads = 128;  // one per open connection (keep-alive holds its thread)
  size_t max_body_bytes = 256u << 20;
  std::chrono::milliseconds request_timeout{0};  // 0: none
  std::string model_name;
  std::string model_version = "1";
  std::string server_version;
};

class HttpServer {
 public:
  HttpServer(HttpOptions options, const ModelSignature& signature, Batcher& batcher, Metrics& metrics);
  ~HttpServer();

  // Binds; returns the bound port (useful with port 0). Throws when it cannot bind.
  int Bind();
  // Serves until Stop(); call from one thread. False when the listener failed.
  bool Serve();
  void Stop();

  void SetReady(bool ready) { ready_ = ready; }
  // Readiness turns false and new inference requests get 503; running ones finish.
  void BeginDrain() { draining_ = true; }

 private:
  void Routes();
  void CheckModel(const httplib::Request& req) const;  // throws 404
  void HandleInfer(const httplib::Request& req, httplib::Response& res, const httplib::ContentReader& read_content);

  const HttpOptions options_;
  const ModelSignature& signature_;
  Batcher& batcher_;
  Metrics& metrics_;
  std::unique_ptr<httplib::Server> server_;
  std::atomic<bool> ready_{false};
  std::atomic<bool> draining_{false};
};

}  // namespace trtaoti
