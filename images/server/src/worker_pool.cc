#include "worker_pool.h"

#include <algorithm>
#include <system_error>

#include "logging.h"

namespace trtaoti {

WorkerPool::WorkerPool(size_t initial, size_t max_threads) : max_threads_(std::max<size_t>(1, max_threads)) {
  std::lock_guard<std::mutex> lock(mu_);
  for (size_t i = 0; i < std::min(initial, max_threads_); ++i) {
    if (!TryStartThread()) break;
  }
}

WorkerPool::~WorkerPool() { Shutdown(); }

bool WorkerPool::TryStartThread() {
  try {
    threads_.emplace_back([this] { Work(); });
  } catch (const std::system_error& e) {
    // A pod's pids limit or RLIMIT_NPROC: serve with the threads there are; the task
    // stays queued for the next one that frees up.
    if (!start_failed_logged_) {
      Log(LogLevel::kWarning, "cannot start another connection thread; new connections wait for a free one",
          {{"threads", threads_.size()}, {"error", e.what()}});
      start_failed_logged_ = true;
    }
    return false;
  }
  // Idle from birth: it takes the next queued task without a notification.
  ++idle_;
  return true;
}

void WorkerPool::Enqueue(std::function<void()> task) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (shutdown_) return;  // the listener enqueues nothing after it stops; nothing to run it on
    tasks_.push_back(std::move(task));
    // Threads counted idle take the queued tasks; start one only for a task beyond them.
    if (tasks_.size() > idle_ && threads_.size() < max_threads_) TryStartThread();
  }
  cv_.notify_one();
}

void WorkerPool::Work() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    cv_.wait(lock, [this] { return shutdown_ || !tasks_.empty(); });
    --idle_;
    if (tasks_.empty()) return;  // shutting down, nothing left to run
    std::function<void()> task = std::move(tasks_.front());
    tasks_.pop_front();
    lock.unlock();
    task();
    lock.lock();
    ++idle_;
  }
}

void WorkerPool::Shutdown() {
  std::vector<std::thread> threads;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (shutdown_ && threads_.empty()) return;
    shutdown_ = true;
    threads.swap(threads_);
  }
  cv_.notify_all();
  for (std::thread& thread : threads) thread.join();
}

size_t WorkerPool::threads() const {
  std::lock_guard<std::mutex> lock(mu_);
  return threads_.size();
}

size_t WorkerPool::idle() const {
  std::lock_guard<std::mutex> lock(mu_);
  return idle_;
}

}  // namespace trtaoti
