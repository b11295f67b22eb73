#include "worker_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <thread>

namespace trtaoti {
namespace {

using namespace std::chrono_literals;

// Polls `count` until it reaches `want` or 5 s pass (a hung pool fails, never hangs the suite).
bool Reaches(const std::atomic<int>& count, int want) {
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  while (count.load() < want) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

// Opens the gate on scope exit too: declared after the pool, it lets blocked tasks
// finish before the pool joins them, even when an assertion returns early.
class Gate {
 public:
  Gate() : opened_(promise_.get_future().share()) {}
  ~Gate() { Open(); }
  void Open() {
    if (!open_.exchange(true)) promise_.set_value();
  }
  void Wait() const { opened_.wait(); }

 private:
  std::promise<void> promise_;
  std::shared_future<void> opened_;
  std::atomic<bool> open_{false};
};

// Each task blocks until the gate opens, as a busy keep-alive connection holds its thread.
TEST(WorkerPool, BusyTasksNeverStarveANewOne) {
  WorkerPool pool(2, 64);
  Gate gate;
  std::atomic<int> busy{0};
  for (int i = 0; i < 10; ++i) {
    pool.Enqueue([&] {
      ++busy;
      gate.Wait();
    });
  }
  ASSERT_TRUE(Reaches(busy, 10)) << "only " << busy << " of 10 blocking tasks ran at once";
  std::promise<void> answered;
  pool.Enqueue([&] { answered.set_value(); });
  EXPECT_EQ(answered.get_future().wait_for(5s), std::future_status::ready);
  EXPECT_GE(pool.threads(), 11u);
  gate.Open();
}

TEST(WorkerPool, ReusesIdleThreadsInsteadOfStartingMore) {
  WorkerPool pool(1, 64);
  for (int i = 0; i < 200; ++i) {
    std::promise<void> done;
    pool.Enqueue([&] { done.set_value(); });
    done.get_future().wait();
  }
  // One task at a time: the pool never needed a second thread (a start per request
  // would have made 200).
  EXPECT_LE(pool.threads(), 2u);
}

TEST(WorkerPool, AtTheCapTasksWaitForAFreeThread) {
  WorkerPool pool(0, 2);
  Gate gate;
  std::atomic<int> running{0};
  for (int i = 0; i < 2; ++i) {
    pool.Enqueue([&] {
      ++running;
      gate.Wait();
    });
  }
  ASSERT_TRUE(Reaches(running, 2));
  std::promise<void> third;
  pool.Enqueue([&] { third.set_value(); });
  auto ran = third.get_future();
  EXPECT_EQ(ran.wait_for(100ms), std::future_status::timeout);
  EXPECT_EQ(pool.threads(), 2u);
  gate.Open();
  EXPECT_EQ(ran.wait_for(5s), std::future_status::ready);
}

TEST(WorkerPool, ShutdownRunsWhatIsQueuedAndJoins) {
  std::atomic<int> ran{0};
  {
    WorkerPool pool(1, 1);
    for (int i = 0; i < 50; ++i) pool.Enqueue([&] { ++ran; });
    pool.Shutdown();
    EXPECT_EQ(ran.load(), 50);
    EXPECT_EQ(pool.threads(), 0u);
    pool.Enqueue([&] { ++ran; });  // after shutdown: dropped, never run on a dead pool
    pool.Shutdown();
  }
  EXPECT_EQ(ran.load(), 50);
}

}  // namespace
}  // namespace trtaoti
