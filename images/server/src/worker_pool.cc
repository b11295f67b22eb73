#include "worker_pool.h"

#include <algorithm>

namespace trtaoti {

WorkerPool::WorkerPool(size_t initial, size_t max_threads) : max_threads_(std::max<size_t>(1, max_threads)) {
  std::lock_guard<std::mutex> lock(mu_);
  for (size_t i = 0; i < std::min(initial, max_threads_); ++i) StartThread();
}

WorkerPool::~WorkerPool() { Shutdown(); }

void WorkerPool::StartThread() {
  threads_.emplace_back([this] { Work(); });
}

void WorkerPool::Enqueue(std::function<void()> task) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (shutdown_) return;  // the listener enqueues nothing after it stops; nothing to run it on
    tasks_.push_back(std::move(task));
    // Idle threads already waiting will take the queued tasks; start one only for the
    // tasks beyond them.
    if (tasks_.size() > idle_ && threads_.size() < max_threads_) StartThread();
  }
  cv_.notify_one();
}

void WorkerPool::Work() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    ++idle_;
    cv_.wait(lock, [this] { return shutdown_ || !tasks_.empty(); });
    --idle_;
    if (tasks_.empty()) return;  // shutting down, nothing left to run
    std::function<void()> task = std::move(tasks_.front());
    tasks_.pop_front();
    lock.unlock();
    task();
    lock.lock();
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

}  // namespace trtaoti
