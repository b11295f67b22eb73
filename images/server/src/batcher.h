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
//   - `max_queue_size` bounds the queued requests (503 when full); a request whose
//     deadline passes before it is scheduled is answered 503 and never run.
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

struct BatcherOptions {
  BatchLimits limits;
  std::chrono::microseconds max_queue_delay{0};
  size_t max_queue_size = 0;  // queued requests; 0 means unbounded
  int workers = 1;            // batches executing at once (the model's runners)
  // Distinct caller threads that may run a batch themselves (RunOrEnqueue), first come
  // first served; the rest hand their requests to the workers. A model keeps state per
  // thread that runs it (cuBLAS and cuDNN handles, a cuBLAS workspace per stream, OpenMP
  // thread teams), so this bounds it however many front-end threads there are; a
  // one-off request (a smoke check on its own connection) takes a place for good, hence
  // a few more than the runners. -1: 4 x workers.
  int caller_threads = -1;
};

struct InferOutcome {
  Status status;
  std::vector<HostTensor> outputs;  // the executor's outputs, this request's rows only
  std::chrono::microseconds queue_time{0};    // arrival until its first chunk ran
  std::chrono::microseconds compute_time{0};  // model time of the batches it rode in
};

struct BatchRequest {
  std::vector<HostTensor> inputs;  // all with the same rows() >= 1; validated by the caller
  Clock::time_point deadline = Clock::time_point::max();
  // Called exactly once: from Enqueue itself when rejected, else from a worker.
  std::function<void(InferOutcome)> on_complete;
};

struct BatchStats {
  int64_t rows = 0;         // real rows
  int64_t padded_rows = 0;  // rows sent to the model (>= rows)
  int requests = 0;         // requests (or chunks of them) in the batch
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
  // kUnavailable before Enqueue returns.
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
  // Requests taken into the queue, and those answered by a worker (drain accounting).
  uint64_t accepted() const { return accepted_.load(); }
  uint64_t completed() const { return completed_.load(); }

 private:
  struct Pending;
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
  int64_t QueuedCompatibleRows() const;
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
  std::deque<std::shared_ptr<Pending>> queue_;  // guarded by mu_
  bool stopping_ = false;                       // guarded by mu_
  std::vector<int> idle_runners_;               // guarded by mu_
  std::vector<std::thread::id> caller_threads_;  // guarded by mu_: those that ran a batch
  int runners_ = 1;                             // = max(1, options_.workers)
  std::vector<std::thread> workers_;
  std::once_flag stop_once_;
  std::atomic<uint64_t> accepted_{0};
  std::atomic<uint64_t> completed_{0};
};

}  // namespace trtaoti
