#include "inference.h"

#include <future>
#include <memory>

namespace trtaoti {

InferOutcome InferenceService::Run(std::vector<HostTensor> inputs, Clock::time_point arrival) {
  if (!accepting_) throw RequestError(StatusCode::kUnavailable, "server is shutting down");
  // Shared: the worker may still be inside set_value when this thread wakes.
  auto done = std::make_shared<std::promise<InferOutcome>>();
  auto future = done->get_future();
  BatchRequest request;
  request.inputs = std::move(inputs);
  if (request_timeout_.count() > 0) request.deadline = arrival + request_timeout_;
  request.on_complete = [done](InferOutcome outcome) { done->set_value(std::move(outcome)); };
  // This thread waits for the answer anyway: a lone request runs right here.
  batcher_.RunOrEnqueue(std::move(request));
  return future.get();
}

}  // namespace trtaoti
