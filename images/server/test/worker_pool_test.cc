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

// Blocked tasks wait on a gate. The shared state is declared before the pool and a
// GateOpener after it, so even when an assertion returns early the gate opens first,
// then the pool joins its threads (queued tasks still find the state alive).
class Gate {
 public:
  Gate() : opened_(promise_.get_future().share()) {}
  void Open() {
    if (!open_.exchange(true)) promise_.set_value();
  }
  void Wait() const { opened_.wait(); }

 private:
  std::promise<void> promise_;
  std::shared_future<void> opened_;
  std::atomic<bool> open_{false};
};

struct GateOpener {
  Gate& gate;
  ~GateOpener() { gate.Open(); }
};

// Each task blocks until the gate opens, as a busy keep-alive connection holds its thread.
TEST(WorkerPool, BusyTasksNeverStarveANewOne) {
  Gate gate;
  std::atomic<int> busy{0};
  std::promise<void> answered;
  WorkerPool pool(2, 64);
  GateOpener opener{gate};
  for (int i = 0; i < 10; ++i) {
    pool.Enqueue([&] {
      ++busy;
      gate.Wait();
    });
  }
  ASSERT_TRUE(Reaches(busy, 10)) << "only " << busy << " of 10 blocking tasks ran at once";
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
    // Like a client's next connection after the previous one closed: the thread is back.
    const auto deadline = std::chrono::steady_clock::now() + 5s;
    while (pool.idle() < pool.threads() && std::chrono::steady_clock::now() < deadline) std::this_thread::yield();
  }
  // A start per connection would have made 200 threads.
  EXPECT_EQ(pool.threads(), 1u);
}

TEST(WorkerPool, AtTheCapTasksWaitForAFreeThread) {
  Gate gate;
  std::atomic<int> running{0};
  std::promise<void> third;
  WorkerPool pool(0, 2);
  GateOpener opener{gate};
  for (int i = 0; i < 2; ++i) {
    pool.Enqueue([&] {
      ++running;
      gate.Wait();
    });
  }
  ASSERT_TRUE(Reaches(running, 2));
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
