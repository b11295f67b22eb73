#include "inference.h"

#include <future>
#include <memory>

namespace trtaoti {

InferOutcome InferenceService::Run(std::vector<HostTensor> inputs, const SchedulePolicyParameters& schedule) {
  if (!accepting_) {
    InferOutcome refused;
    refused.status = Status{StatusCode::kUnavailable, "server is shutting down"};
    refused.rejection = Rejection::kShuttingDown;
    return refused;
  }
  // Shared: the worker may still be inside set_value when this thread wakes.
  auto done = std::make_shared<std::promise<InferOutcome>>();
  auto future = done->get_future();
  BatchRequest request;
  request.inputs = std::move(inputs);
  request.priority = schedule.priority;
  request.timeout = std::chrono::microseconds(schedule.timeout_us);
  request.on_complete = [done](InferOutcome outcome) { done->set_value(std::move(outcome)); };
  // This thread waits for the answer anyway: a lone request runs right here.
  batcher_.RunOrEnqueue(std::move(request));
  return future.get();
}

}  // namespace trtaoti
