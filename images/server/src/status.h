// Outcome codes shared by every layer, and the one exception type that carries a
// client-facing error to the HTTP boundary (http_server.cc maps it to a status code).
#pragma once

#include <stdexcept>
#include <string>

namespace trtaoti {

enum class StatusCode {
  kOk,
  kInvalidArgument,  // HTTP 400: the request is wrong; the message says how
  kNotFound,         // HTTP 404: unknown model or version
  kUnavailable,      // HTTP 503: not ready, shutting down, queue full, timed out
  kInternal,         // HTTP 500: the model failed on a well-formed request
  kTooLarge,         // HTTP 413: the body is over --max-body-bytes
};

int HttpStatus(StatusCode code);

struct Status {
  StatusCode code = StatusCode::kOk;
  std::string message;

  bool ok() const { return code == StatusCode::kOk; }
  static Status Ok() { return {}; }
};

class RequestError : public std::runtime_error {
 public:
  RequestError(StatusCode code, const std::string& message) : std::runtime_error(message), code_(code) {}
  StatusCode code() const { return code_; }

 private:
  StatusCode code_;
};

inline RequestError BadRequest(const std::string& message) {
  return RequestError(StatusCode::kInvalidArgument, message);
}

}  // namespace trtaoti
