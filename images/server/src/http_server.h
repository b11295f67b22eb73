// The KServe V2 REST front end (cpp-httplib): routes, request parsing on the HTTP
// worker thread, hand-off to the batcher, response encoding, and the one place where
// exceptions become JSON errors with Triton's status codes.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>

#include "batcher.h"
#include "inference.h"
#include "metrics.h"
#include "protocol.h"
#include "signature.h"

namespace httplib {
class Server;
struct Request;
struct Response;
class ContentReader;
}  // namespace httplib

namespace trtaoti {

struct HttpOptions {
  std::string host = "0.0.0.0";
  int port = 8000;
  // Most connections served at once: a keep-alive connection holds its thread while
  // the client keeps it busy, and threads start on demand (worker_pool.h) up to this.
  int threads = 1024;
  size_t max_body_bytes = 256u << 20;
  // An idle keep-alive connection is closed after this; during a drain it is what
  // holds Serve() longest (busy ones close after their next response).
  int keep_alive_timeout_s = 5;
  std::string model_name;
  std::string model_version = "1";
  std::string server_version;
  ServingConfig serving;  // GET .../config
};

class HttpServer {
 public:
  HttpServer(HttpOptions options, const ModelSignature& signature, InferenceService& inference, Metrics& metrics);
  ~HttpServer();

  // Binds; returns the bound port (useful with port 0). Throws when it cannot bind.
  int Bind();
  // Serves until Stop() and the last connection has closed; call from one thread.
  // False when the listener failed.
  bool Serve();
  // From now on every response says `Connection: close` and its connection is closed
  // once it is written; requests already being handled complete.
  void BeginDrain();
  // Closes the listener (new connects are refused); open connections finish as above.
  void Stop();
  // Blocks until Serve() has returned (called from another thread than Serve's).
  void WaitUntilServed();

 private:
  void Routes();
  void CheckModel(const httplib::Request& req) const;  // throws 404
  void HandleInfer(const httplib::Request& req, httplib::Response& res, const httplib::ContentReader& read_content);

  const HttpOptions options_;
  const ModelSignature& signature_;
  InferenceService& inference_;
  Metrics& metrics_;
  std::unique_ptr<httplib::Server> server_;
  int listen_socket_ = -1;
  std::atomic<bool> draining_{false};
  std::atomic<bool> stopped_{false};
  std::atomic<bool> serve_returned_{false};
  std::mutex served_mutex_;
  std::condition_variable served_;
};

}  // namespace trtaoti
