// The dynamic batch scheduler: coalesces concurrent requests into batches inside the
// model's compiled range and hands each batch to a BatchExecutor in one call.
//
// Contract (after Triton core's scheduler): a narrow Enqueue/Stop interface; every
// request carries its own completion callback, so neither the batcher nor the
// executor knows about HTTP. Batches are decided under the queue lock; callbacks,
// copies and model runs happen outside it.
//
//   - up to `limits.max` rows per batch; a request larger than that is split into
//     chunks (possibly run concurrently) and answered once, in row order;
//   - a batch below `limits.min` is padded by repeating its last row; padding rows
//     never reach a request;
//   - a worker that finds fewer than `limits.opt` rows waits up to
//     `max_queue_delay` from the oldest request's arrival for more to come;
//   - a queue policy after Triton's (`dynamic_batching { priority_levels,
//     default_priority_level, default_queue_policy }`): one FIFO per priority level,
//     level 1 served first; `max_queue_size` bounds each level (503 "Exceeds maximum
//     queue size" when full); a request still queued past its timeout is answered 503
//     "Request timeout expired" at its deadline and never run (REJECT), or moved
//     behind every unexpired request of its level (DELAY).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "status.h"
#include "tensor.h"

namespace trtaoti {

using Clock = std::chrono::steady_clock;

// What the batcher runs. Implemented by the AOTInductor model (model.h) and by fakes
// in the tests.
//
// Runners: the batcher runs at most `workers` batches at once and gives each one a
// runner index in [0, workers) that no other batch holds while it runs, so whatever an
// executor keeps per runner (a CUDA stream, page-locked and device staging buffers)
// needs no lock. Different runners run concurrently, on any thread: a worker of the
// batcher, or the caller of Batcher::RunOrEnqueue.
class BatchExecutor {
 public:
  virtual ~BatchExecutor() = default;

  // Runs one batch on `runner`: every input has the same rows() (the padded batch
  // size); every returned output must have that many rows. Throwing fails every
  // request of the batch with kInternal (or the code of a RequestError).
  virtual std::vector<HostTensor> Execute(int runner, const std::vector<HostTensor>& inputs) = 0;

  // A writable buffer the batcher fills with input `index` of the next batch it runs
  // on `runner`. The CUDA model hands out the runner's own page-locked staging memory
  // (reused batch after batch, so its copy to the device is one DMA and no extra host
  // copy): the buffer is valid until that runner's Execute returns, and the batcher
  // uses it for nothing else. The default allocates a fresh host buffer.
  virtual HostTensor AllocateInput(int runner, size_t index, DataType dtype, const Shape& shape);
};

struct BatchLimits {
  int64_t min = 1;
  int64_t opt = 1;  // the batch the compiler optimized for (TensorRT profile opt)
  int64_t max = 1;
};

enum class TimeoutAction { kReject, kDelay };

// Triton's ModelQueuePolicy plus the two priority settings of its dynamic_batching.
struct QueuePolicy {
  uint64_t priority_levels = 1;         // levels 1..priority_levels; 1 runs first
  uint64_t default_priority_level = 1;  // for requests without a priority (or priority 0)
  size_t max_queue_size = 0;            // per priority level, delayed requests included; 0: unbounded
  std::chrono::microseconds default_timeout{0};  // time in the queue; 0: none
  TimeoutAction timeout_action = TimeoutAction::kReject;
  // A request's own timeout replaces the default when it is shorter (or there is no default).
  bool allow_timeout_override = false;
};

struct BatcherOptions {
  BatchLimits limits;
  std::chrono::microseconds max_queue_delay{0};
  QueuePolicy queue_policy;
  // Test knob (Triton's TRITONSERVER_DELAY_SCHEDULER): form no batch, and run nothing
  // on a caller's thread, until this many requests are queued at once; then schedule
  // normally for good. Makes the order a queue is served in observable. 0: off.
  size_t hold_until_queued = 0;
  int workers = 1;            // batches executing at once (the model's runners)
  // Distinct caller threads that may run a batch themselves (RunOrEnqueue), first come
  // first served; the rest hand their requests to the workers. A model keeps state per
  // thread that runs it (cuBLAS and cuDNN handles, a cuBLAS workspace per stream, OpenMP
  // thread teams), so this bounds it however many front-end threads there are; a
  // one-off request (a smoke check on its own connection) takes a place for good, hence
  // a few more than the runners. -1: 4 x workers.
  int caller_threads = -1;
};

// Why the batcher refused a request without running it (metrics count each).
enum class Rejection { kNone, kQueueFull, kTimeout, kShuttingDown };

struct InferOutcome {
  Status status;
  Rejection rejection = Rejection::kNone;
  std::vector<HostTensor> outputs;  // the executor's outputs, this request's rows only
  std::chrono::microseconds queue_time{0};    // arrival until its first chunk ran
  std::chrono::microseconds compute_time{0};  // model time of the batches it rode in
};

struct BatchRequest {
  std::vector<HostTensor> inputs;  // all with the same rows() >= 1; validated by the caller
  // Triton's request parameters: 0 means the policy's default level (an out-of-range
  // level is refused, kInvalidArgument); the timeout counts from Enqueue and only
  // applies with allow_timeout_override (0: none of its own).
  uint64_t priority = 0;
  std::chrono::microseconds timeout{0};
  // Called exactly once: from Enqueue itself when rejected, else from a worker.
  std::function<void(InferOutcome)> on_complete;
};

struct BatchStats {
  int64_t rows = 0;         // real rows
  int64_t padded_rows = 0;  // rows sent to the model (>= rows)
  int requests = 0;         // requests (or chunks of them) in the batch
  uint64_t priority_level = 0;  // of the batch's first request: the most urgent in it
  std::chrono::microseconds compute_time{0};
  bool ok = true;
};

class Batcher {
 public:
  Batcher(BatcherOptions options, std::shared_ptr<BatchExecutor> executor,
          std::function<void(const BatchStats&)> on_batch = nullptr);
  ~Batcher();  // Stop()s

  Batcher(const Batcher&) = delete;
  Batcher& operator=(const Batcher&) = delete;

  // Never blocks on the model. Rejected requests (stopping, queue full) are answered
  // kUnavailable, and a priority out of range kInvalidArgument, before Enqueue returns.
  void Enqueue(BatchRequest request);

  // For a caller that blocks until its request is answered anyway (the front ends):
  // when the request would run alone and at once (nothing queued, every runner idle, no
  // more than `limits.max` rows, and no queue delay to wait out: the delay is 0 or the
  // request alone reaches `limits.opt` rows), it runs on the calling thread, and
  // on_complete is called before this returns. Two thread hand-offs (to a worker and
  // back) are saved for a lone request. Otherwise, or when `caller_threads` other
  // threads already run batches, the same as Enqueue.
  void RunOrEnqueue(BatchRequest request);

  // Refuses new requests, runs everything already queued, joins the workers and waits
  // for batches running on callers' threads (RunOrEnqueue) to finish.
  void Stop();

  size_t queued() const;
  const QueuePolicy& queue_policy() const { return options_.queue_policy; }
  // Requests taken into the queue, and those answered by a worker (drain accounting).
  uint64_t accepted() const { return accepted_.load(); }
  uint64_t completed() const { return completed_.load(); }

 private:
  struct Pending;
  // One priority level: `queue` in arrival order, then `delayed`, the requests whose
  // timeout passed under TimeoutAction::kDelay (Triton's delayed queue).
  struct Level {
    std::deque<std::shared_ptr<Pending>> queue;
    std::deque<std::shared_ptr<Pending>> delayed;
    size_t size() const { return queue.size() + delayed.size(); }
  };
  struct Slice {
    std::shared_ptr<Pending> request;
    int64_t begin;
    int64_t count;
  };

  void WorkerLoop();
  // Under the lock: waits for work and an idle runner; returns false when stopping and
  // drained. A non-empty batch comes with the runner it holds (`runner`).
  bool NextBatch(std::unique_lock<std::mutex>& lock, std::vector<Slice>& batch, int& runner,
                 std::vector<std::shared_ptr<Pending>>& expired);
  // Rows that could join a batch started by the most urgent request, and the oldest
  // arrival among them (the queue delay counts from it).
  std::pair<int64_t, Clock::time_point> QueuedCompatibleRows() const;
  // Under the lock: takes expired requests out of the main queues; under kReject
  // they go to `expired` to be answered, under kDelay to the back of their level.
  void ExpireOverdue(Clock::time_point now, std::vector<std::shared_ptr<Pending>>& expired);
  // kInvalidArgument for what no queue may hold (an empty batch, a priority beyond the levels).
  Status Admissible(const BatchRequest& request) const;
  // Runs the batch on `runner`, answers its requests, and gives the runner back.
  void Run(std::vector<Slice>& batch, int runner);
  std::vector<HostTensor> Assemble(const std::vector<Slice>& batch, int64_t rows, int64_t padded, int runner) const;
  void Deliver(const Slice& slice, const std::vector<HostTensor>& outputs, int64_t offset, const Status& status,
               std::chrono::microseconds compute_time);
  std::shared_ptr<Pending> MakePending(BatchRequest request) const;
  bool MayRunOnThisThread();  // under the lock

  const BatcherOptions options_;
  const std::shared_ptr<BatchExecutor> executor_;
  const std::function<void(const BatchStats&)> on_batch_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Level> levels_;  // guarded by mu_; index = priority level - 1
  size_t queued_ = 0;          // guarded by mu_: requests in levels_
  // guarded by mu_: no queued request's deadline is earlier (it may be stale-early).
  Clock::time_point next_deadline_ = Clock::time_point::max();
  size_t hold_until_queued_ = 0;  // guarded by mu_; see BatcherOptions
  bool stopping_ = false;         // guarded by mu_
  std::vector<int> idle_runners_;               // guarded by mu_
  std::vector<std::thread::id> caller_threads_;  // guarded by mu_: those that ran a batch
  int runners_ = 1;                             // = max(1, options_.workers)
  std::vector<std::thread> workers_;
  std::once_flag stop_once_;
  std::atomic<uint64_t> accepted_{0};
  std::atomic<uint64_t> completed_{0};
};

}  // namespace trtaoti
