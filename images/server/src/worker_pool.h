// Threads for the HTTP front end, started on demand. cpp-httplib serves a keep-alive
// connection on one thread until the client goes quiet, so a fixed pool of N threads
// stops answering (health probes included) as soon as N clients keep their connections
// busy. This pool starts a thread whenever every running one is occupied, up to a cap
// far above any expected connection count, and keeps finished threads for the next
// connection instead of starting one per request.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace trtaoti {

class WorkerPool {
 public:
  // Starts `initial` threads now; never runs more than `max_threads` at once.
  WorkerPool(size_t initial, size_t max_threads);
  ~WorkerPool();  // Shutdown()
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  // Runs `task` on an idle thread, a new one if none is idle and the cap allows, else
  // as soon as a thread frees up.
  void Enqueue(std::function<void()> task);
  // Runs what is queued, then joins every thread. Idempotent.
  void Shutdown();

  size_t threads() const;
  size_t idle() const;  // threads not running a task
  size_t max_threads() const { return max_threads_; }

 private:
  bool TryStartThread();  // with mu_ held; false when the system refuses a thread
  void Work();

  const size_t max_threads_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> tasks_;
  std::vector<std::thread> threads_;
  size_t idle_ = 0;  // threads not running a task (waiting, or about to take one)
  bool shutdown_ = false;
  bool start_failed_logged_ = false;
};

}  // namespace trtaoti
