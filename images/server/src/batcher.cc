#include "batcher.h"

#include <algorithm>
#include <cstring>
#include <string>
#include <utility>

namespace trtaoti {
namespace {

using std::chrono::duration_cast;
using std::chrono::microseconds;

// Requests can share a batch only when every input's non-batch dims agree.
bool SameRowShapes(const std::vector<HostTensor>& a, const std::vector<HostTensor>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    const Shape& x = a[i].shape();
    const Shape& y = b[i].shape();
    if (x.size() != y.size() || a[i].dtype() != b[i].dtype()) return false;
    if (!std::equal(x.begin() + 1, x.end(), y.begin() + 1)) return false;
  }
  return true;
}

InferOutcome Failure(StatusCode code, std::string message, Rejection rejection = Rejection::kNone) {
  InferOutcome outcome;
  outcome.status = Status{code, std::move(message)};
  outcome.rejection = rejection;
  return outcome;
}

// Triton's words (scheduler_utils.cc, dynamic_batch_scheduler.cc) lead, so clients
// that match on them work unchanged; the details after them are ours.
constexpr const char* kQueueFullMessage = "Exceeds maximum queue size";
constexpr const char* kTimeoutMessage = "Request timeout expired";

}  // namespace

HostTensor BatchExecutor::AllocateInput(int, size_t, DataType dtype, const Shape& shape) {
  size_t nbytes = static_cast<size_t>(NumElements(shape)) * ElementSize(dtype);
  // Every byte is overwritten by the batcher: skip the zero fill.
  std::shared_ptr<std::byte[]> buffer = std::make_shared_for_overwrite<std::byte[]>(nbytes ? nbytes : 1);
  const std::byte* data = buffer.get();
  return HostTensor(dtype, shape, std::shared_ptr<const void>(buffer, data), data);
}

// A queued request. Fields above the line are guarded by Batcher::mu_; the ones below
// by `mu` (only requests split into several chunks touch them).
struct Batcher::Pending {
  BatchRequest request;
  int64_t rows = 0;
  Clock::time_point arrival;
  size_t level = 0;  // index into levels_
  Clock::time_point deadline = Clock::time_point::max();  // in the main queue; none once delayed
  int64_t next_row = 0;  // rows already handed to a batch
  // ---
  std::mutex mu;
  std::vector<HostTensor> outputs;  // whole-request outputs, filled chunk by chunk
  int64_t rows_done = 0;
  Status status;
  microseconds queue_time{-1};
  microseconds compute_time{0};
};

Batcher::Batcher(BatcherOptions options, std::shared_ptr<BatchExecutor> executor,
                 std::function<void(const BatchStats&)> on_batch)
    : options_(std::move(options)), executor_(std::move(executor)), on_batch_(std::move(on_batch)) {
  if (options_.limits.min < 1 || options_.limits.max < options_.limits.min) {
    throw std::invalid_argument("batch limits need 1 <= min <= max");
  }
  const QueuePolicy& policy = options_.queue_policy;
  if (policy.priority_levels < 1 || policy.default_priority_level < 1 ||
      policy.default_priority_level > policy.priority_levels) {
    throw std::invalid_argument("queue policy needs 1 <= default priority level <= priority levels");
  }
  levels_.resize(policy.priority_levels);
  hold_until_queued_ = options_.hold_until_queued;
  runners_ = std::max(1, options_.workers);
  for (int r = runners_ - 1; r >= 0; --r) idle_runners_.push_back(r);  // runner 0 is taken first
  // While every runner is busy, every worker is inside a batch: one more worker answers
  // rejected timeouts at their deadline instead of once a batch ends.
  const bool rejects_timeouts = policy.timeout_action == TimeoutAction::kReject &&
                                (policy.default_timeout.count() > 0 || policy.allow_timeout_override);
  const int workers = runners_ + (rejects_timeouts ? 1 : 0);
  for (int i = 0; i < workers; ++i) workers_.emplace_back([this] { WorkerLoop(); });
}

Batcher::~Batcher() { Stop(); }

void Batcher::Stop() {
  std::call_once(stop_once_, [this] {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    for (auto& worker : workers_) worker.join();
    // Batches that callers run themselves (RunOrEnqueue) give their runner back last.
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [this] { return static_cast<int>(idle_runners_.size()) == runners_; });
  });
}

size_t Batcher::queued() const {
  std::lock_guard<std::mutex> lock(mu_);
  return queued_;
}

Status Batcher::Admissible(const BatchRequest& request) const {
  if (request.inputs.empty() || request.inputs[0].rows() < 1) {
    return Status{StatusCode::kInvalidArgument, "batch size must be at least 1"};
  }
  const uint64_t levels = options_.queue_policy.priority_levels;
  if (request.priority > levels) {
    return Status{StatusCode::kInvalidArgument, "parameter 'priority' is " + std::to_string(request.priority) +
                                                    ", the model has priority levels 1.." + std::to_string(levels) +
                                                    " (0 or none: the default level " +
                                                    std::to_string(options_.queue_policy.default_priority_level) + ")"};
  }
  return Status::Ok();
}

std::shared_ptr<Batcher::Pending> Batcher::MakePending(BatchRequest request) const {
  const QueuePolicy& policy = options_.queue_policy;
  auto pending = std::make_shared<Pending>();
  pending->rows = request.inputs.empty() ? 0 : request.inputs[0].rows();
  pending->arrival = Clock::now();
  pending->level = (request.priority == 0 ? policy.default_priority_level : request.priority) - 1;
  // Triton lets a request shorten the default, never lengthen it; where there is no
  // default at all, any timeout of the request's own is shorter.
  microseconds timeout = policy.default_timeout;
  if (policy.allow_timeout_override && request.timeout.count() > 0 &&
      (timeout.count() == 0 || request.timeout < timeout)) {
    timeout = request.timeout;
  }
  if (timeout.count() > 0) pending->deadline = pending->arrival + timeout;
  pending->request = std::move(request);
  return pending;
}

void Batcher::Enqueue(BatchRequest request) {
  if (Status status = Admissible(request); !status.ok()) {
    request.on_complete(Failure(status.code, status.message));
    return;
  }
  auto pending = MakePending(std::move(request));
  InferOutcome rejection;
  {
    std::lock_guard<std::mutex> lock(mu_);
    Level& level = levels_[pending->level];
    const size_t limit = options_.queue_policy.max_queue_size;
    if (stopping_) {
      rejection = Failure(StatusCode::kUnavailable, "server is shutting down", Rejection::kShuttingDown);
    } else if (limit && level.size() >= limit) {
      rejection = Failure(StatusCode::kUnavailable,
                          std::string(kQueueFullMessage) + " (" + std::to_string(limit) +
                              " requests at priority level " + std::to_string(pending->level + 1) + ")",
                          Rejection::kQueueFull);
    } else {
      level.queue.push_back(pending);
      ++queued_;
      next_deadline_ = std::min(next_deadline_, pending->deadline);
      accepted_.fetch_add(1);
    }
  }
  if (rejection.rejection != Rejection::kNone) {
    pending->request.on_complete(std::move(rejection));
    return;
  }
  cv_.notify_one();
}

bool Batcher::MayRunOnThisThread() {
  const auto self = std::this_thread::get_id();
  if (std::find(caller_threads_.begin(), caller_threads_.end(), self) != caller_threads_.end()) return true;
  const size_t limit = static_cast<size_t>(options_.caller_threads < 0 ? 4 * runners_ : options_.caller_threads);
  if (caller_threads_.size() >= limit) return false;
  caller_threads_.push_back(self);
  return true;
}

void Batcher::RunOrEnqueue(BatchRequest request) {
  const int64_t rows = request.inputs.empty() ? 0 : request.inputs[0].rows();
  const bool alone_is_enough = options_.max_queue_delay.count() == 0 || rows >= options_.limits.opt;
  if (rows > options_.limits.max || !alone_is_enough || !Admissible(request).ok()) return Enqueue(std::move(request));
  int runner = -1;
  {
    std::lock_guard<std::mutex> lock(mu_);
    // Every runner idle, not just one: under load the workers batch what queues while
    // a runner is busy, and a caller holding a runner for one row would cost that.
    // Nothing queued at any level, so no request of higher priority is passed over.
    if (!stopping_ && queued_ == 0 && hold_until_queued_ == 0 && static_cast<int>(idle_runners_.size()) == runners_ &&
        MayRunOnThisThread()) {
      runner = idle_runners_.back();
      idle_runners_.pop_back();
      accepted_.fetch_add(1);
    }
  }
  if (runner < 0) return Enqueue(std::move(request));
  auto pending = MakePending(std::move(request));
  pending->next_row = rows;
  std::vector<Slice> batch{Slice{std::move(pending), 0, rows}};
  Run(batch, runner);
}

void Batcher::WorkerLoop() {
  std::vector<Slice> batch;
  std::vector<std::shared_ptr<Pending>> expired;
  for (;;) {
    batch.clear();
    expired.clear();
    int runner = -1;
    bool more;
    {
      std::unique_lock<std::mutex> lock(mu_);
      more = NextBatch(lock, batch, runner, expired);
    }
    // Another worker may be able to form a batch from what is left.
    if (more && !batch.empty()) cv_.notify_one();
    for (auto& request : expired) {
      const auto waited = duration_cast<microseconds>(Clock::now() - request->arrival);
      request->request.on_complete(Failure(StatusCode::kUnavailable,
                                           std::string(kTimeoutMessage) + " (queued " + std::to_string(waited.count()) +
                                               " us at priority level " + std::to_string(request->level + 1) + ")",
                                           Rejection::kTimeout));
      completed_.fetch_add(1);
    }
    if (!batch.empty()) Run(batch, runner);
    if (!more) return;
  }
}

std::pair<int64_t, Clock::time_point> Batcher::QueuedCompatibleRows() const {
  int64_t rows = 0;
  Clock::time_point oldest = Clock::time_point::max();
  const std::vector<HostTensor>* head = nullptr;
  for (const Level& level : levels_) {
    for (const auto* queue : {&level.queue, &level.delayed}) {
      for (const auto& pending : *queue) {
        if (!head) head = &pending->request.inputs;
        if (!SameRowShapes(*head, pending->request.inputs)) return {rows, oldest};
        rows += pending->rows - pending->next_row;
        oldest = std::min(oldest, pending->arrival);
        if (rows >= options_.limits.max) return {rows, oldest};
      }
    }
  }
  return {rows, oldest};
}

void Batcher::ExpireOverdue(Clock::time_point now, std::vector<std::shared_ptr<Pending>>& expired) {
  if (now < next_deadline_) return;
  const bool reject = options_.queue_policy.timeout_action == TimeoutAction::kReject;
  Clock::time_point next = Clock::time_point::max();
  for (Level& level : levels_) {
    auto& queue = level.queue;
    // A request split across batches has started running: it is never expired.
    auto overdue = [&](const std::shared_ptr<Pending>& p) { return p->next_row == 0 && p->deadline <= now; };
    auto kept = std::stable_partition(queue.begin(), queue.end(), [&](const auto& p) { return !overdue(p); });
    for (auto it = kept; it != queue.end(); ++it) {
      if (reject) {
        expired.push_back(std::move(*it));
        --queued_;
      } else {
        (*it)->deadline = Clock::time_point::max();
        level.delayed.push_back(std::move(*it));
      }
    }
    queue.erase(kept, queue.end());
    for (const auto& pending : queue) {
      if (pending->next_row == 0) next = std::min(next, pending->deadline);
    }
  }
  next_deadline_ = next;
}

bool Batcher::NextBatch(std::unique_lock<std::mutex>& lock, std::vector<Slice>& batch, int& runner,
                        std::vector<std::shared_ptr<Pending>>& expired) {
  const bool reject = options_.queue_policy.timeout_action == TimeoutAction::kReject;
  for (;;) {
    if (hold_until_queued_ && (queued_ >= hold_until_queued_ || stopping_)) hold_until_queued_ = 0;
    if (stopping_ && queued_ == 0) return false;  // drained
    if (!hold_until_queued_ && queued_ > 0 && !idle_runners_.empty()) break;
    // A rejected request is answered at its deadline, not once a runner frees up.
    if (reject && queued_ > 0 && next_deadline_ != Clock::time_point::max()) {
      ExpireOverdue(Clock::now(), expired);
      if (!expired.empty()) return true;
      cv_.wait_until(lock, next_deadline_);
    } else {
      cv_.wait(lock);
    }
  }

  // Give more requests a chance to arrive, unless shutting down (drain promptly).
  if (options_.max_queue_delay.count() > 0) {
    while (!stopping_ && queued_ > 0) {
      auto [rows, oldest] = QueuedCompatibleRows();
      if (rows >= options_.limits.opt) break;
      auto until = oldest + options_.max_queue_delay;
      if (Clock::now() >= until) break;
      cv_.wait_until(lock, reject ? std::min(until, next_deadline_) : until);
      ExpireOverdue(Clock::now(), expired);
    }
  }
  if (queued_ == 0 || idle_runners_.empty()) return true;  // another worker (or a caller) took them

  const auto now = Clock::now();
  ExpireOverdue(now, expired);
  runner = idle_runners_.back();
  idle_runners_.pop_back();
  // Most urgent first: levels in order, each level's unexpired requests before its
  // delayed ones. A batch stops at the first request whose rows cannot join it, so
  // no request is passed over by a later one of its own level.
  int64_t capacity = options_.limits.max;
  bool compatible = true;
  for (Level& level : levels_) {
    for (auto* queue : {&level.queue, &level.delayed}) {
      while (!queue->empty() && capacity > 0 && compatible) {
        auto& head = queue->front();
        if (!batch.empty() && !SameRowShapes(batch.front().request->request.inputs, head->request.inputs)) {
          compatible = false;
          break;
        }
        int64_t take = std::min(capacity, head->rows - head->next_row);
        batch.push_back(Slice{head, head->next_row, take});
        head->next_row += take;
        capacity -= take;
        if (head->next_row == head->rows) {
          queue->pop_front();
          --queued_;
        }
      }
    }
  }
  if (batch.empty()) {  // everything it looked at had expired
    idle_runners_.push_back(runner);
    runner = -1;
  }
  return true;
}

std::vector<HostTensor> Batcher::Assemble(const std::vector<Slice>& batch, int64_t rows, int64_t padded,
                                          int runner) const {
  const Slice& first = batch.front();
  // The common case of one whole request that needs no padding: its tensors (views
  // into the request body) go to the model as they are.
  if (batch.size() == 1 && first.begin == 0 && first.count == first.request->rows && padded == rows) {
    return first.request->request.inputs;
  }
  const size_t num_inputs = first.request->request.inputs.size();
  std::vector<HostTensor> inputs;
  inputs.reserve(num_inputs);
  for (size_t i = 0; i < num_inputs; ++i) {
    const HostTensor& proto = first.request->request.inputs[i];
    Shape shape = proto.shape();
    shape[0] = padded;
    HostTensor buffer = executor_->AllocateInput(runner, i, proto.dtype(), shape);
    const size_t row_bytes = proto.row_bytes();
    std::byte* out = buffer.mutable_data();
    for (const Slice& slice : batch) {
      const HostTensor& source = slice.request->request.inputs[i];
      std::memcpy(out, source.data() + slice.begin * row_bytes, slice.count * row_bytes);
      out += slice.count * row_bytes;
    }
    // Pad below the compiled minimum by repeating the last real row: any valid row
    // keeps the model on its normal path, and the padded outputs are dropped.
    for (int64_t r = rows; r < padded; ++r, out += row_bytes) std::memcpy(out, out - row_bytes, row_bytes);
    inputs.push_back(std::move(buffer));
  }
  return inputs;
}

void Batcher::Run(std::vector<Slice>& batch, int runner) {
  int64_t rows = 0;
  for (const Slice& slice : batch) rows += slice.count;
  const int64_t padded = std::max(rows, options_.limits.min);

  const auto start = Clock::now();
  for (const Slice& slice : batch) {
    if (slice.begin != 0) continue;
    auto& pending = *slice.request;
    std::lock_guard<std::mutex> lock(pending.mu);
    pending.queue_time = duration_cast<microseconds>(start - pending.arrival);
  }

  Status status;
  std::vector<HostTensor> outputs;
  try {
    outputs = executor_->Execute(runner, Assemble(batch, rows, padded, runner));
    for (size_t j = 0; j < outputs.size(); ++j) {
      if (outputs[j].rows() != padded) {
        throw std::runtime_error("model output " + std::to_string(j) + " has " + std::to_string(outputs[j].rows()) +
                                 " rows for a batch of " + std::to_string(padded));
      }
    }
  } catch (const RequestError& e) {
    status = Status{e.code(), e.what()};
  } catch (const std::exception& e) {
    status = Status{StatusCode::kInternal, std::string("model execution failed: ") + e.what()};
  } catch (...) {
    status = Status{StatusCode::kInternal, "model execution failed"};
  }
  const auto compute_time = duration_cast<microseconds>(Clock::now() - start);
  // The runner is free before anyone is answered: a client that sends its next request
  // as soon as it has this answer finds it idle. A worker waiting for a runner is woken.
  bool work_waiting;
  {
    std::lock_guard<std::mutex> lock(mu_);
    idle_runners_.push_back(runner);
    work_waiting = queued_ > 0 || stopping_;
  }
  if (work_waiting) cv_.notify_all();

  if (on_batch_) {
    on_batch_(BatchStats{rows, padded, static_cast<int>(batch.size()), batch.front().request->level + 1, compute_time,
                         status.ok()});
  }
  int64_t offset = 0;
  for (const Slice& slice : batch) {
    Deliver(slice, outputs, offset, status, compute_time);
    offset += slice.count;
  }
}

void Batcher::Deliver(const Slice& slice, const std::vector<HostTensor>& outputs, int64_t offset, const Status& status,
                      microseconds compute_time) {
  Pending& pending = *slice.request;
  InferOutcome outcome;
  if (slice.count == pending.rows) {  // the whole request rode in this batch: views, no copy
    outcome.status = status;
    outcome.queue_time = pending.queue_time;
    outcome.compute_time = compute_time;
    if (status.ok()) {
      outcome.outputs.reserve(outputs.size());
      for (const auto& output : outputs) outcome.outputs.push_back(output.Rows(offset, slice.count));
    }
    pending.request.on_complete(std::move(outcome));
    completed_.fetch_add(1);
    return;
  }
  // One chunk of a split request: copy its rows into the request's own outputs; the
  // chunk that completes the request answers it.
  {
    std::lock_guard<std::mutex> lock(pending.mu);
    pending.compute_time += compute_time;
    if (!status.ok()) {
      if (pending.status.ok()) pending.status = status;
    } else if (pending.status.ok()) {
      if (pending.outputs.empty()) {
        for (const auto& output : outputs) {
          Shape shape = output.shape();
          shape[0] = pending.rows;
          pending.outputs.push_back(HostTensor::Allocate(output.dtype(), shape));
        }
      }
      for (size_t j = 0; j < outputs.size(); ++j) {
        const size_t row_bytes = outputs[j].row_bytes();
        std::memcpy(pending.outputs[j].mutable_data() + slice.begin * row_bytes, outputs[j].data() + offset * row_bytes,
                    slice.count * row_bytes);
      }
    }
    pending.rows_done += slice.count;
    if (pending.rows_done < pending.rows) return;
    outcome.status = pending.status;
    outcome.queue_time = pending.queue_time;
    outcome.compute_time = pending.compute_time;
    if (outcome.status.ok()) outcome.outputs = std::move(pending.outputs);
  }
  pending.request.on_complete(std::move(outcome));
  completed_.fetch_add(1);
}

}  // namespace trtaoti
