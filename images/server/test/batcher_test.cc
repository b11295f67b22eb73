// The dynamic batcher against a fake executor: no torch model needed. Each request's
// rows carry unique ids; the fake returns them, so every test can check that a
// request got exactly its own rows back, in order.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <future>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "batcher.h"

namespace trtaoti {
namespace {

using namespace std::chrono_literals;
constexpr auto kDeadline = 10s;  // generous: failing tests fail, they never hang

// Input "ids": FP32 [rows, 2], both columns = the row's id.
// Outputs: FP32 [rows, 1] = id, INT64 [rows] = id.
// Records each batch's runner and thread, and fails the test if two batches ever hold
// one runner at once.
class FakeExecutor : public BatchExecutor {
 public:
  std::vector<HostTensor> Execute(int runner, const std::vector<HostTensor>& inputs) override {
    struct Release {
      FakeExecutor* self;
      int runner;
      ~Release() {
        std::lock_guard<std::mutex> lock(self->mu_);
        self->busy_runners_.erase(runner);
      }
    };
    {
      std::unique_lock<std::mutex> lock(mu_);
      if (!busy_runners_.insert(runner).second) ADD_FAILURE() << "runner " << runner << " ran two batches at once";
      runners_.push_back(runner);
      threads_.push_back(std::this_thread::get_id());
      ++entered_;
      cv_.notify_all();
      cv_.wait(lock, [this] { return open_; });
      std::vector<float> ids;
      for (int64_t r = 0; r < inputs[0].rows(); ++r) {
        float id;
        std::memcpy(&id, inputs[0].data() + r * inputs[0].row_bytes(), sizeof(float));
        ids.push_back(id);
      }
      batches_.push_back(ids);
    }
    Release release{this, runner};
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (fail_) throw std::runtime_error("fake failure");
    }
    const int64_t rows = inputs[0].rows();
    HostTensor values = HostTensor::Allocate(DataType::kFp32, {rows, 1});
    HostTensor labels = HostTensor::Allocate(DataType::kInt64, {rows});
    for (int64_t r = 0; r < rows; ++r) {
      float id;
      std::memcpy(&id, inputs[0].data() + r * inputs[0].row_bytes(), sizeof(float));
      int64_t label = static_cast<int64_t>(id);
      std::memcpy(values.mutable_data() + r * sizeof(float), &id, sizeof(float));
      std::memcpy(labels.mutable_data() + r * sizeof(int64_t), &label, sizeof(int64_t));
    }
    return {values, labels};
  }

  // Close the gate: Execute blocks until Open().
  void Close() {
    std::lock_guard<std::mutex> lock(mu_);
    open_ = false;
  }
  void Open() {
    std::lock_guard<std::mutex> lock(mu_);
    open_ = true;
    cv_.notify_all();
  }
  void FailAll() {
    std::lock_guard<std::mutex> lock(mu_);
    fail_ = true;
  }
  bool WaitEntered(int count) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, kDeadline, [&] { return entered_ >= count; });
  }
  std::vector<std::vector<float>> batches() {
    std::lock_guard<std::mutex> lock(mu_);
    return batches_;
  }
  std::vector<int> runners() {
    std::lock_guard<std::mutex> lock(mu_);
    return runners_;
  }
  std::vector<std::thread::id> threads() {
    std::lock_guard<std::mutex> lock(mu_);
    return threads_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool open_ = true;
  bool fail_ = false;
  int entered_ = 0;
  std::vector<std::vector<float>> batches_;
  std::set<int> busy_runners_;
  std::vector<int> runners_;
  std::vector<std::thread::id> threads_;
};

HostTensor Ids(const std::vector<float>& ids, int64_t width = 2) {
  HostTensor tensor = HostTensor::Allocate(DataType::kFp32, {static_cast<int64_t>(ids.size()), width});
  auto* out = reinterpret_cast<float*>(tensor.mutable_data());
  for (size_t r = 0; r < ids.size(); ++r) {
    for (int64_t c = 0; c < width; ++c) out[r * width + c] = ids[r];
  }
  return tensor;
}

std::vector<float> Range(float first, int count) {
  std::vector<float> ids;
  for (int i = 0; i < count; ++i) ids.push_back(first + i);
  return ids;
}

BatchRequest Request(HostTensor input, std::shared_ptr<std::promise<InferOutcome>> promise, uint64_t priority = 0,
                     std::chrono::microseconds timeout = 0us) {
  BatchRequest request;
  request.inputs = {std::move(input)};
  request.priority = priority;
  request.timeout = timeout;
  request.on_complete = [promise](InferOutcome outcome) { promise->set_value(std::move(outcome)); };
  return request;
}

std::future<InferOutcome> Submit(Batcher& batcher, HostTensor input, uint64_t priority = 0,
                                 std::chrono::microseconds timeout = 0us) {
  auto promise = std::make_shared<std::promise<InferOutcome>>();
  auto future = promise->get_future();
  batcher.Enqueue(Request(std::move(input), promise, priority, timeout));
  return future;
}

// The front ends' way in: may run the batch on the calling thread.
std::future<InferOutcome> RunOrSubmit(Batcher& batcher, HostTensor input, uint64_t priority = 0) {
  auto promise = std::make_shared<std::promise<InferOutcome>>();
  auto future = promise->get_future();
  batcher.RunOrEnqueue(Request(std::move(input), promise, priority));
  return future;
}

InferOutcome Get(std::future<InferOutcome>& future) {
  if (future.wait_for(kDeadline) != std::future_status::ready) {
    ADD_FAILURE() << "request not answered within the deadline";
    return Get(future);  // never reached in a passing run; waiting beats a dangling promise
  }
  return future.get();
}

// The request's outputs must be exactly its ids, in order, in both outputs.
void ExpectRows(const InferOutcome& outcome, const std::vector<float>& ids) {
  ASSERT_TRUE(outcome.status.ok()) << outcome.status.message;
  ASSERT_EQ(outcome.outputs.size(), 2u);
  const HostTensor& values = outcome.outputs[0];
  const HostTensor& labels = outcome.outputs[1];
  ASSERT_EQ(values.shape(), (Shape{static_cast<int64_t>(ids.size()), 1}));
  ASSERT_EQ(labels.shape(), (Shape{static_cast<int64_t>(ids.size())}));
  for (size_t r = 0; r < ids.size(); ++r) {
    float value;
    int64_t label;
    std::memcpy(&value, values.data() + r * sizeof(float), sizeof(float));
    std::memcpy(&label, labels.data() + r * sizeof(int64_t), sizeof(int64_t));
    EXPECT_EQ(value, ids[r]) << "row " << r;
    EXPECT_EQ(label, static_cast<int64_t>(ids[r])) << "row " << r;
  }
}

BatcherOptions Options(int64_t min, int64_t opt, int64_t max) {
  BatcherOptions options;
  options.limits = {min, opt, max};
  return options;
}

TEST(Batcher, CoalescesRequestsThatArriveWhileTheModelIsBusy) {
  auto executor = std::make_shared<FakeExecutor>();
  Batcher batcher(Options(1, 8, 8), executor);
  executor->Close();
  auto first = Submit(batcher, Ids({100}));
  ASSERT_TRUE(executor->WaitEntered(1));
  std::vector<std::future<InferOutcome>> waiting;
  for (int i = 0; i < 5; ++i) waiting.push_back(Submit(batcher, Ids({static_cast<float>(i)})));
  executor->Open();
  ExpectRows(Get(first), {100});
  for (int i = 0; i < 5; ++i) ExpectRows(Get(waiting[i]), {static_cast<float>(i)});
  auto batches = executor->batches();
  ASSERT_EQ(batches.size(), 2u);
  EXPECT_EQ(batches[1], Range(0, 5));  // one batch, in arrival order
}

TEST(Batcher, NeverExceedsTheMaximumBatch) {
  auto executor = std::make_shared<FakeExecutor>();
  Batcher batcher(Options(1, 4, 4), executor);
  executor->Close();
  auto first = Submit(batcher, Ids({100}));
  ASSERT_TRUE(executor->WaitEntered(1));
  std::vector<std::future<InferOutcome>> waiting;
  for (int i = 0; i < 10; ++i) waiting.push_back(Submit(batcher, Ids({static_cast<float>(i)})));
  executor->Open();
  for (int i = 0; i < 10; ++i) ExpectRows(Get(waiting[i]), {static_cast<float>(i)});
  Get(first);
  auto batches = executor->batches();
  ASSERT_EQ(batches.size(), 4u);
  EXPECT_EQ(batches[1], Range(0, 4));
  EXPECT_EQ(batches[2], Range(4, 4));
  EXPECT_EQ(batches[3], Range(8, 2));
}

TEST(Batcher, SplitsARequestAboveTheMaximumAndReassemblesItInOrder) {
  auto executor = std::make_shared<FakeExecutor>();
  Batcher batcher(Options(1, 4, 4), executor);
  auto ids = Range(0, 10);
  auto future = Submit(batcher, Ids(ids));
  ExpectRows(Get(future), ids);
  auto batches = executor->batches();
  ASSERT_EQ(batches.size(), 3u);
  EXPECT_EQ(batches[0], Range(0, 4));
  EXPECT_EQ(batches[1], Range(4, 4));
  EXPECT_EQ(batches[2], Range(8, 2));
}

TEST(Batcher, SplitChunksRunConcurrentlyOnSeveralWorkers) {
  auto executor = std::make_shared<FakeExecutor>();
  BatcherOptions options = Options(1, 2, 2);
  options.workers = 3;
  Batcher batcher(options, executor);
  executor->Close();
  auto ids = Range(0, 6);
  auto future = Submit(batcher, Ids(ids));
  ASSERT_TRUE(executor->WaitEntered(3));  // three chunks in flight at once
  executor->Open();
  ExpectRows(Get(future), ids);
}

TEST(Batcher, PadsBelowTheMinimumWithARealRowAndDropsThePadding) {
  auto executor = std::make_shared<FakeExecutor>();
  Batcher batcher(Options(4, 4, 8), executor);
  auto future = Submit(batcher, Ids({7, 9}));
  ExpectRows(Get(future), {7, 9});
  auto batches = executor->batches();
  ASSERT_EQ(batches.size(), 1u);
  EXPECT_EQ(batches[0], (std::vector<float>{7, 9, 9, 9}));  // last row repeated
}

TEST(Batcher, PadsTheLastChunkOfASplitRequest) {
  auto executor = std::make_shared<FakeExecutor>();
  Batcher batcher(Options(3, 4, 4), executor);
  auto ids = Range(0, 5);
  auto future = Submit(batcher, Ids(ids));
  ExpectRows(Get(future), ids);
  auto batches = executor->batches();
  ASSERT_EQ(batches.size(), 2u);
  EXPECT_EQ(batches[1], (std::vector<float>{4, 4, 4}));
}

TEST(Batcher, ConcurrentClientsEachGetExactlyTheirRows) {
  auto executor = std::make_shared<FakeExecutor>();
  BatcherOptions options = Options(2, 8, 16);
  options.workers = 2;
  options.max_queue_delay = 200us;
  Batcher batcher(options, executor);
  constexpr int kThreads = 8, kPerThread = 50;
  std::atomic<int> checked{0};
  std::vector<std::thread> clients;
  for (int t = 0; t < kThreads; ++t) {
    clients.emplace_back([&, t] {
      std::mt19937 random(t);
      for (int i = 0; i < kPerThread; ++i) {
        int rows = 1 + static_cast<int>(random() % 40);  // some above the max of 16
        auto ids = Range(static_cast<float>((t * kPerThread + i) * 100), rows);
        auto future = Submit(batcher, Ids(ids));
        ExpectRows(Get(future), ids);
        ++checked;
      }
    });
  }
  for (auto& client : clients) client.join();
  EXPECT_EQ(checked, kThreads * kPerThread);
  for (const auto& batch : executor->batches()) {
    EXPECT_GE(batch.size(), 2u);
    EXPECT_LE(batch.size(), 16u);
  }
}

TEST(Batcher, RejectsWhenTheQueueIsFull) {
  auto executor = std::make_shared<FakeExecutor>();
  BatcherOptions options = Options(1, 1, 1);
  options.queue_policy.max_queue_size = 2;
  Batcher batcher(options, executor);
  executor->Close();
  auto running = Submit(batcher, Ids({0}));
  ASSERT_TRUE(executor->WaitEntered(1));
  auto queued1 = Submit(batcher, Ids({1}));
  auto queued2 = Submit(batcher, Ids({2}));
  auto rejected = Submit(batcher, Ids({3}));
  ASSERT_EQ(rejected.wait_for(0s), std::future_status::ready);  // answered inside Enqueue
  InferOutcome outcome = rejected.get();
  EXPECT_EQ(outcome.status.code, StatusCode::kUnavailable);
  EXPECT_EQ(outcome.rejection, Rejection::kQueueFull);
  EXPECT_EQ(outcome.status.message.rfind("Exceeds maximum queue size", 0), 0u) << outcome.status.message;
  executor->Open();
  ExpectRows(Get(running), {0});
  ExpectRows(Get(queued1), {1});
  ExpectRows(Get(queued2), {2});
}

TEST(Batcher, RejectsAnExpiredRequestAtItsDeadlineWithoutRunningIt) {
  auto executor = std::make_shared<FakeExecutor>();
  BatcherOptions options = Options(1, 1, 8);
  options.queue_policy.allow_timeout_override = true;
  Batcher batcher(options, executor);
  executor->Close();
  auto running = Submit(batcher, Ids({0}));
  ASSERT_TRUE(executor->WaitEntered(1));
  auto expiring = Submit(batcher, Ids({1}), 0, 1ms);
  auto patient = Submit(batcher, Ids({2}));
  // Answered while the only runner is still busy: a client's timeout is not stretched
  // to the length of the batch in front of it.
  InferOutcome outcome = Get(expiring);
  EXPECT_EQ(outcome.status.code, StatusCode::kUnavailable);
  EXPECT_EQ(outcome.rejection, Rejection::kTimeout);
  EXPECT_EQ(outcome.status.message.rfind("Request timeout expired", 0), 0u) << outcome.status.message;
  EXPECT_EQ(executor->batches().size(), 0u) << "the runner was freed before the timeout was answered";
  executor->Open();
  ExpectRows(Get(patient), {2});
  ExpectRows(Get(running), {0});
  for (const auto& batch : executor->batches()) {
    EXPECT_EQ(std::count(batch.begin(), batch.end(), 1.0f), 0) << "the expired request ran";
  }
}

BatcherOptions Prioritized(uint64_t levels, uint64_t default_level, int64_t max = 1) {
  BatcherOptions options = Options(1, max, max);
  options.queue_policy.priority_levels = levels;
  options.queue_policy.default_priority_level = default_level;
  return options;
}

TEST(Batcher, AHigherPriorityRequestOvertakesQueuedLowerPriorityOnes) {
  auto executor = std::make_shared<FakeExecutor>();
  Batcher batcher(Prioritized(2, 2), executor);
  executor->Close();
  auto running = Submit(batcher, Ids({0}));
  ASSERT_TRUE(executor->WaitEntered(1));
  std::vector<std::future<InferOutcome>> low;
  for (float id : {1.0f, 2.0f, 3.0f}) low.push_back(Submit(batcher, Ids({id})));  // the default level, 2
  auto high = Submit(batcher, Ids({9}), 1);
  executor->Open();
  ExpectRows(Get(high), {9});
  for (size_t i = 0; i < low.size(); ++i) ExpectRows(Get(low[i]), {static_cast<float>(i + 1)});
  ExpectRows(Get(running), {0});
  EXPECT_EQ(executor->batches(), (std::vector<std::vector<float>>{{0}, {9}, {1}, {2}, {3}}));
}

TEST(Batcher, FillsABatchMostUrgentLevelFirstAndAnswersEachRequestItsOwnRows) {
  auto executor = std::make_shared<FakeExecutor>();
  Batcher batcher(Prioritized(3, 3, 5), executor);
  executor->Close();
  auto running = Submit(batcher, Ids({0}));
  ASSERT_TRUE(executor->WaitEntered(1));
  auto low = Submit(batcher, Ids({1, 2}), 3);
  auto mid = Submit(batcher, Ids({5}), 2);
  auto high = Submit(batcher, Ids({7, 8}), 1);
  executor->Open();
  ExpectRows(Get(low), {1, 2});
  ExpectRows(Get(mid), {5});
  ExpectRows(Get(high), {7, 8});
  ExpectRows(Get(running), {0});
  EXPECT_EQ(executor->batches(), (std::vector<std::vector<float>>{{0}, {7, 8, 5, 1, 2}}));
}

TEST(Batcher, BoundsEachPriorityLevelsQueueOnItsOwn) {
  auto executor = std::make_shared<FakeExecutor>();
  BatcherOptions options = Prioritized(2, 2);
  options.queue_policy.max_queue_size = 1;
  Batcher batcher(options, executor);
  executor->Close();
  auto running = Submit(batcher, Ids({0}));
  ASSERT_TRUE(executor->WaitEntered(1));
  auto low = Submit(batcher, Ids({1}));
  auto low_rejected = Submit(batcher, Ids({2}));
  auto high = Submit(batcher, Ids({3}), 1);
  ASSERT_EQ(low_rejected.wait_for(0s), std::future_status::ready);
  InferOutcome outcome = low_rejected.get();
  EXPECT_EQ(outcome.rejection, Rejection::kQueueFull);
  EXPECT_NE(outcome.status.message.find("priority level 2"), std::string::npos) << outcome.status.message;
  executor->Open();
  ExpectRows(Get(high), {3});
  ExpectRows(Get(low), {1});
  ExpectRows(Get(running), {0});
}

TEST(Batcher, RefusesAPriorityBeyondTheLevelsOnEveryPath) {
  auto executor = std::make_shared<FakeExecutor>();
  Batcher batcher(Prioritized(2, 1), executor);
  for (bool caller_runs : {false, true}) {
    auto future = caller_runs ? RunOrSubmit(batcher, Ids({1}), 3) : Submit(batcher, Ids({1}), 3);
    InferOutcome outcome = Get(future);
    EXPECT_EQ(outcome.status.code, StatusCode::kInvalidArgument);
    EXPECT_EQ(outcome.rejection, Rejection::kNone);
    EXPECT_NE(outcome.status.message.find("'priority' is 3"), std::string::npos) << outcome.status.message;
  }
  EXPECT_TRUE(executor->batches().empty());
}

TEST(Batcher, DelaysAnExpiredRequestBehindTheUnexpiredOnesOfItsLevel) {
  auto executor = std::make_shared<FakeExecutor>();
  BatcherOptions options = Prioritized(2, 1);
  options.queue_policy.allow_timeout_override = true;
  options.queue_policy.timeout_action = TimeoutAction::kDelay;
  Batcher batcher(options, executor);
  executor->Close();
  auto running = Submit(batcher, Ids({0}));
  ASSERT_TRUE(executor->WaitEntered(1));
  auto expiring = Submit(batcher, Ids({1}), 1, 1ms);
  auto patient = Submit(batcher, Ids({2}), 1);
  auto lower = Submit(batcher, Ids({3}), 2);
  std::this_thread::sleep_for(5ms);  // past the 1 ms timeout: the order below needs it expired
  executor->Open();
  ExpectRows(Get(expiring), {1});  // delayed, not refused
  ExpectRows(Get(patient), {2});
  ExpectRows(Get(lower), {3});
  ExpectRows(Get(running), {0});
  // Behind its own level's unexpired request, still ahead of the lower level.
  EXPECT_EQ(executor->batches(), (std::vector<std::vector<float>>{{0}, {2}, {1}, {3}}));
}

TEST(Batcher, IgnoresARequestsTimeoutUnlessOverrideIsAllowed) {
  auto executor = std::make_shared<FakeExecutor>();
  Batcher batcher(Options(1, 1, 1), executor);
  executor->Close();
  auto running = Submit(batcher, Ids({0}));
  ASSERT_TRUE(executor->WaitEntered(1));
  auto ignored = Submit(batcher, Ids({1}), 0, 1ms);
  std::this_thread::sleep_for(5ms);
  executor->Open();
  ExpectRows(Get(ignored), {1});
  ExpectRows(Get(running), {0});
}

TEST(Batcher, ARequestsTimeoutShortensButNeverLengthensTheDefault) {
  auto executor = std::make_shared<FakeExecutor>();
  BatcherOptions options = Options(1, 1, 1);
  options.queue_policy.default_timeout = 2ms;
  options.queue_policy.allow_timeout_override = true;
  Batcher batcher(options, executor);
  executor->Close();
  // Run on a thread of its own, never queued, so the 2 ms cannot expire it however
  // late that thread gets going.
  std::future<InferOutcome> running;
  std::thread caller([&] { running = RunOrSubmit(batcher, Ids({0})); });
  ASSERT_TRUE(executor->WaitEntered(1));
  auto longer = Submit(batcher, Ids({1}), 0, 10s);  // asks for more than the default: gets 2 ms
  EXPECT_EQ(Get(longer).rejection, Rejection::kTimeout);
  executor->Open();
  caller.join();
  ExpectRows(Get(running), {0});
}

TEST(Batcher, HoldsEveryBatchUntilTheTestKnobsCountIsQueued) {
  auto executor = std::make_shared<FakeExecutor>();
  BatcherOptions options = Prioritized(2, 2);
  options.hold_until_queued = 3;
  Batcher batcher(options, executor);
  // Neither a worker nor the caller runs the first two: nothing else is queued, every
  // runner is idle, and without the hold the first would run at once.
  auto first = RunOrSubmit(batcher, Ids({1}));
  auto second = Submit(batcher, Ids({2}));
  auto urgent = Submit(batcher, Ids({3}), 1);
  ExpectRows(Get(first), {1});
  ExpectRows(Get(second), {2});
  ExpectRows(Get(urgent), {3});
  EXPECT_EQ(executor->batches(), (std::vector<std::vector<float>>{{3}, {1}, {2}}));
}

TEST(Batcher, WaitsUpToTheQueueDelayForAPreferredBatch) {
  auto executor = std::make_shared<FakeExecutor>();
  BatcherOptions options = Options(1, 4, 8);
  options.max_queue_delay = 10s;  // reached only if coalescing were broken
  Batcher batcher(options, executor);
  std::vector<std::future<InferOutcome>> futures;
  for (int i = 0; i < 4; ++i) futures.push_back(Submit(batcher, Ids({static_cast<float>(i)})));
  for (int i = 0; i < 4; ++i) ExpectRows(Get(futures[i]), {static_cast<float>(i)});
  auto batches = executor->batches();
  ASSERT_EQ(batches.size(), 1u);
  EXPECT_EQ(batches[0], Range(0, 4));
}

TEST(Batcher, RunsAnIncompleteBatchOnceTheQueueDelayExpires) {
  auto executor = std::make_shared<FakeExecutor>();
  BatcherOptions options = Options(1, 4, 8);
  options.max_queue_delay = 20ms;
  Batcher batcher(options, executor);
  const auto start = Clock::now();
  auto future = Submit(batcher, Ids({5}));
  ExpectRows(Get(future), {5});
  EXPECT_GE(Clock::now() - start, 20ms);
}

TEST(Batcher, KeepsRequestsOfDifferentRowShapesInSeparateBatches) {
  auto executor = std::make_shared<FakeExecutor>();
  Batcher batcher(Options(1, 8, 8), executor);
  executor->Close();
  auto first = Submit(batcher, Ids({100}));
  ASSERT_TRUE(executor->WaitEntered(1));
  auto narrow = Submit(batcher, Ids({1}, 2));
  auto wide = Submit(batcher, Ids({2}, 3));
  executor->Open();
  ExpectRows(Get(narrow), {1});
  ExpectRows(Get(wide), {2});
  Get(first);
  EXPECT_EQ(executor->batches().size(), 3u);
}

TEST(Batcher, AModelFailureFailsEveryRequestOfTheBatch) {
  auto executor = std::make_shared<FakeExecutor>();
  Batcher batcher(Options(1, 8, 8), executor);
  executor->FailAll();
  executor->Close();
  auto first = Submit(batcher, Ids({0}));
  ASSERT_TRUE(executor->WaitEntered(1));
  auto second = Submit(batcher, Ids({1}));
  auto split = Submit(batcher, Ids(Range(10, 12)));  // spans two batches
  executor->Open();
  for (auto* future : {&first, &second, &split}) {
    InferOutcome outcome = Get(*future);
    EXPECT_EQ(outcome.status.code, StatusCode::kInternal);
    EXPECT_NE(outcome.status.message.find("fake failure"), std::string::npos);
  }
}

TEST(Batcher, StopDrainsAcceptedRequestsAndRefusesNewOnes) {
  auto executor = std::make_shared<FakeExecutor>();
  Batcher batcher(Options(1, 2, 2), executor);
  executor->Close();
  std::vector<std::future<InferOutcome>> accepted;
  for (int i = 0; i < 7; ++i) accepted.push_back(Submit(batcher, Ids({static_cast<float>(i)})));
  ASSERT_TRUE(executor->WaitEntered(1));
  std::thread stopper([&] { batcher.Stop(); });
  // Stop() is now refusing new work (it set the flag before joining); wait for that.
  std::future<InferOutcome> late;
  const auto deadline = Clock::now() + kDeadline;
  for (;;) {
    late = Submit(batcher, Ids({99}));
    if (late.wait_for(0s) == std::future_status::ready) break;
    ASSERT_LT(Clock::now(), deadline);
    // Accepted before Stop: it must be answered like the others.
    accepted.push_back(std::move(late));
    std::this_thread::yield();
  }
  executor->Open();
  stopper.join();
  InferOutcome refused = late.get();
  EXPECT_EQ(refused.status.code, StatusCode::kUnavailable);
  EXPECT_NE(refused.status.message.find("shutting down"), std::string::npos);
  for (auto& future : accepted) {
    ASSERT_EQ(future.wait_for(0s), std::future_status::ready);
    EXPECT_TRUE(future.get().status.ok());
  }
  EXPECT_EQ(batcher.accepted(), accepted.size());
  EXPECT_EQ(batcher.completed(), accepted.size());
}

TEST(Batcher, RunsALoneRequestOnTheCallingThread) {
  auto executor = std::make_shared<FakeExecutor>();
  BatcherOptions options = Options(1, 4, 8);
  options.workers = 2;
  Batcher batcher(options, executor);
  auto future = RunOrSubmit(batcher, Ids({3, 4}));
  ASSERT_EQ(future.wait_for(0s), std::future_status::ready);  // answered before RunOrEnqueue returned
  ExpectRows(future.get(), {3, 4});
  ASSERT_EQ(executor->threads().size(), 1u);
  EXPECT_EQ(executor->threads()[0], std::this_thread::get_id());
  EXPECT_EQ(batcher.accepted(), 1u);
  EXPECT_EQ(batcher.completed(), 1u);
}

TEST(Batcher, RunOrEnqueueHandsOffWhileAnyRunnerIsBusy) {
  auto executor = std::make_shared<FakeExecutor>();
  BatcherOptions options = Options(1, 8, 8);
  options.workers = 2;
  Batcher batcher(options, executor);
  executor->Close();
  auto running = Submit(batcher, Ids({0}));
  ASSERT_TRUE(executor->WaitEntered(1));
  // One runner is busy, one idle: under load the workers batch; this must not block here.
  auto handed_off = RunOrSubmit(batcher, Ids({1}));
  EXPECT_EQ(handed_off.wait_for(0s), std::future_status::timeout);
  ASSERT_TRUE(executor->WaitEntered(2));  // on the idle runner, by a worker
  executor->Open();
  ExpectRows(Get(running), {0});
  ExpectRows(Get(handed_off), {1});
  for (auto id : executor->threads()) EXPECT_NE(id, std::this_thread::get_id());
  auto runners = executor->runners();
  ASSERT_EQ(runners.size(), 2u);
  EXPECT_NE(runners[0], runners[1]);
}

TEST(Batcher, RunOrEnqueueLeavesAQueueDelayToTheWorkers) {
  auto executor = std::make_shared<FakeExecutor>();
  BatcherOptions options = Options(1, 4, 8);
  options.max_queue_delay = 10s;  // reached only if coalescing were broken
  Batcher batcher(options, executor);
  std::vector<std::future<InferOutcome>> futures;
  for (int i = 0; i < 3; ++i) futures.push_back(RunOrSubmit(batcher, Ids({static_cast<float>(i)})));
  // Below opt with a delay: queued, and the fourth completes the preferred batch.
  EXPECT_EQ(futures[0].wait_for(0s), std::future_status::timeout);
  futures.push_back(RunOrSubmit(batcher, Ids({3})));
  for (int i = 0; i < 4; ++i) ExpectRows(Get(futures[i]), {static_cast<float>(i)});
  ASSERT_EQ(executor->batches().size(), 1u);
  EXPECT_EQ(executor->batches()[0], Range(0, 4));
  // A request that fills opt by itself needs no delay: it runs at once, on the caller.
  auto full = RunOrSubmit(batcher, Ids(Range(10, 4)));
  ASSERT_EQ(full.wait_for(0s), std::future_status::ready);
  ExpectRows(full.get(), Range(10, 4));
}

TEST(Batcher, AtMostCallerThreadsCallersRunBatchesThemselves) {
  auto executor = std::make_shared<FakeExecutor>();
  BatcherOptions options = Options(1, 1, 1);
  options.workers = 2;
  options.caller_threads = 1;
  Batcher batcher(options, executor);
  auto first = RunOrSubmit(batcher, Ids({1}));
  ExpectRows(Get(first), {1});
  std::thread::id other;
  std::thread([&] {
    other = std::this_thread::get_id();
    auto future = RunOrSubmit(batcher, Ids({2}));
    ExpectRows(Get(future), {2});
  }).join();
  auto again = RunOrSubmit(batcher, Ids({3}));
  ASSERT_EQ(again.wait_for(0s), std::future_status::ready);  // the first caller keeps its place
  ExpectRows(again.get(), {3});
  auto threads = executor->threads();
  ASSERT_EQ(threads.size(), 3u);
  EXPECT_EQ(threads[0], std::this_thread::get_id());
  EXPECT_NE(threads[1], other);  // handed to a worker
  EXPECT_EQ(threads[2], std::this_thread::get_id());
}

TEST(Batcher, EveryBatchHoldsItsOwnRunner) {
  auto executor = std::make_shared<FakeExecutor>();
  BatcherOptions options = Options(1, 4, 4);
  options.workers = 3;
  Batcher batcher(options, executor);
  constexpr int kThreads = 8, kPerThread = 40;
  std::vector<std::thread> clients;
  for (int t = 0; t < kThreads; ++t) {
    clients.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        auto ids = Range(static_cast<float>((t * kPerThread + i) * 10), 1 + (i % 6));  // some split
        auto future = (i % 2) ? RunOrSubmit(batcher, Ids(ids)) : Submit(batcher, Ids(ids));
        ExpectRows(Get(future), ids);
      }
    });
  }
  for (auto& client : clients) client.join();
  for (int runner : executor->runners()) {
    EXPECT_GE(runner, 0);
    EXPECT_LT(runner, 3);
  }
  batcher.Stop();
  EXPECT_EQ(batcher.accepted(), batcher.completed());
}

}  // namespace
}  // namespace trtaoti
