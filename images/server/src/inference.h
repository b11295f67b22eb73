// What the REST and gRPC front ends share once a request is parsed: readiness and
// draining, and the hand-off to the batcher (submit, wait for the callback). Front
// ends stay thin: parse, Run, encode.
#pragma once

#include <atomic>
#include <chrono>
#include <vector>

#include "batcher.h"
#include "protocol.h"

namespace trtaoti {

class InferenceService {
 public:
  explicit InferenceService(Batcher& batcher) : batcher_(batcher) {}

  // Runs validated inputs (InputCollector::Finish) and blocks until they are answered.
  // The inputs' storage must stay valid until Run returns, which it does: Run returns
  // only after the batcher is done with them. A refused request (StopAccepting() ran,
  // queue full, timed out, priority out of range) comes back as a failed outcome.
  InferOutcome Run(std::vector<HostTensor> inputs, const SchedulePolicyParameters& schedule);

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
  std::atomic<bool> ready_{false};
  std::atomic<bool> draining_{false};
  std::atomic<bool> accepting_{true};
};

}  // namespace trtaoti
