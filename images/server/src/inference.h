// What the REST and gRPC front ends share once a request is parsed: readiness and
// draining, the per-request deadline, and the hand-off to the batcher (submit, wait
// for the callback). Front ends stay thin: parse, Run, encode.
#pragma once

#include <atomic>
#include <chrono>
#include <vector>

#include "batcher.h"

namespace trtaoti {

class InferenceService {
 public:
  InferenceService(Batcher& batcher, std::chrono::milliseconds request_timeout)
      : batcher_(batcher), request_timeout_(request_timeout) {}

  // Runs validated inputs (InputCollector::Finish) and blocks until they are answered.
  // The inputs' storage must stay valid until Run returns, which it does: Run returns
  // only after the batcher is done with them. Throws RequestError(kUnavailable) once
  // StopAccepting() ran; a failed outcome is returned, not thrown.
  InferOutcome Run(std::vector<HostTensor> inputs, Clock::time_point arrival);

  void SetReady(bool ready) { ready_ = ready; }
  // The drain's first step: readiness fails, but requests still run. A client on a
  // connection opened before the drain (kube-proxy keeps it on this pod after the
  // endpoint is gone) is answered, not refused, and moves on when the front end
  // closes that connection.
  void BeginDrain() { draining_ = true; }
  // The last step, once the front ends took their last request: refuse what is left.
  void StopAccepting() { accepting_ = false; }
  bool ready() const { return ready_.load() && !draining_.load(); }
  bool draining() const { return draining_.load(); }
  size_t queued() const { return batcher_.queued(); }

 private:
  Batcher& batcher_;
  const std::chrono::milliseconds request_timeout_;
  std::atomic<bool> ready_{false};
  std::atomic<bool> draining_{false};
  std::atomic<bool> accepting_{true};
};

}  // namespace trtaoti
