#include "metrics.h"

#include <prometheus/text_serializer.h>

#include <sstream>

namespace trtaoti {
namespace {

using prometheus::BuildCounter;
using prometheus::BuildGauge;
using prometheus::BuildHistogram;

prometheus::Histogram::BucketBoundaries LatencyBucketsUs() {
  // 50 us .. ~1.6 s, doubling: resolves a 13 us CPU model and a 15 ms GPU batch alike.
  prometheus::Histogram::BucketBoundaries buckets;
  for (double b = 50; b <= 2e6; b *= 2) buckets.push_back(b);
  return buckets;
}

prometheus::Histogram::BucketBoundaries BatchBuckets(int64_t batch_max) {
  prometheus::Histogram::BucketBoundaries buckets;
  for (int64_t b = 1; b < batch_max; b *= 2) buckets.push_back(static_cast<double>(b));
  buckets.push_back(static_cast<double>(batch_max));
  return buckets;
}

}  // namespace

Metrics::Metrics(const std::string& model_name, const std::string& model_version, int64_t batch_max)
    : registry_(std::make_shared<prometheus::Registry>()) {
  const prometheus::Labels labels = {{"model", model_name}, {"version", model_version}};
  auto counter = [&](const char* name, const char* help) -> prometheus::Counter* {
    return &BuildCounter().Name(name).Help(help).Register(*registry_).Add(labels);
  };
  success_ = counter("nv_inference_request_success", "Number of successful inference requests, all batch sizes");
  auto& failures = BuildCounter()
                       .Name("nv_inference_request_failure")
                       .Help("Number of failed inference requests, all batch sizes")
                       .Register(*registry_);
  auto with_reason = [&](const char* reason) {
    prometheus::Labels l = labels;
    l["reason"] = reason;
    return &failures.Add(l);
  };
  failure_rejected_ = with_reason("REJECTED");  // queue full, timed out, shutting down
  failure_backend_ = with_reason("BACKEND");    // the model failed
  failure_other_ = with_reason("OTHER");        // invalid request
  // Triton folds every scheduler refusal into reason="REJECTED" above; this splits
  // them, so an alert can tell an overload (queue full) from a latency budget (timeout).
  auto& rejections = BuildCounter()
                         .Name("trtaoti_inference_request_rejected_total")
                         .Help("Inference requests the queue refused without running them, by reason")
                         .Register(*registry_);
  auto rejected = [&](const char* reason) {
    prometheus::Labels l = labels;
    l["reason"] = reason;
    return &rejections.Add(l);
  };
  rejected_queue_full_ = rejected("QUEUE_FULL");
  rejected_timeout_ = rejected("TIMEOUT");
  rejected_shutting_down_ = rejected("SHUTTING_DOWN");
  inference_count_ = counter("nv_inference_count", "Number of inferences performed (batch rows, padding excluded)");
  exec_count_ = counter("nv_inference_exec_count", "Number of model executions performed (batches)");
  request_duration_us_ =
      counter("nv_inference_request_duration_us", "Cumulative inference request duration in microseconds");
  queue_duration_us_ =
      counter("nv_inference_queue_duration_us", "Cumulative inference queuing duration in microseconds");
  compute_duration_us_ =
      counter("nv_inference_compute_infer_duration_us", "Cumulative compute inference duration in microseconds");
  padding_rows_ = counter("trtaoti_padding_rows_total", "Rows added to batches below the compiled minimum");
  pending_ = &BuildGauge()
                  .Name("nv_inference_pending_request_count")
                  .Help("Instantaneous number of pending requests awaiting execution per-model")
                  .Register(*registry_)
                  .Add(labels);
  auto histogram = [&](const char* name, const char* help, const prometheus::Histogram::BucketBoundaries& buckets) {
    return &BuildHistogram().Name(name).Help(help).Register(*registry_).Add(labels, buckets);
  };
  request_hist_ = histogram("trtaoti_request_duration_us", "Successful request latency inside the server, microseconds",
                            LatencyBucketsUs());
  queue_hist_ =
      histogram("trtaoti_queue_duration_us", "Time a request waited for its batch, microseconds", LatencyBucketsUs());
  compute_hist_ =
      histogram("trtaoti_compute_duration_us", "Model execution time per batch, microseconds", LatencyBucketsUs());
  batch_size_hist_ = histogram("trtaoti_batch_size", "Real rows per model execution", BatchBuckets(batch_max));
}

void Metrics::RecordRequest(const Status& status, Rejection rejection, int64_t rows, std::chrono::microseconds total,
                            std::chrono::microseconds queue, std::chrono::microseconds compute) {
  switch (rejection) {
    case Rejection::kNone: break;
    case Rejection::kQueueFull: rejected_queue_full_->Increment(); break;
    case Rejection::kTimeout: rejected_timeout_->Increment(); break;
    case Rejection::kShuttingDown: rejected_shutting_down_->Increment(); break;
  }
  switch (status.code) {
    case StatusCode::kOk:
      success_->Increment();
      inference_count_->Increment(static_cast<double>(rows));
      request_duration_us_->Increment(static_cast<double>(total.count()));
      queue_duration_us_->Increment(static_cast<double>(queue.count()));
      compute_duration_us_->Increment(static_cast<double>(compute.count()));
      request_hist_->Observe(static_cast<double>(total.count()));
      queue_hist_->Observe(static_cast<double>(queue.count()));
      return;
    case StatusCode::kUnavailable: failure_rejected_->Increment(); return;
    case StatusCode::kInternal: failure_backend_->Increment(); return;
    default: failure_other_->Increment(); return;
  }
}

void Metrics::RecordBatch(const BatchStats& stats) {
  exec_count_->Increment();
  batch_size_hist_->Observe(static_cast<double>(stats.rows));
  compute_hist_->Observe(static_cast<double>(stats.compute_time.count()));
  if (stats.padded_rows > stats.rows) padding_rows_->Increment(static_cast<double>(stats.padded_rows - stats.rows));
}

std::string Metrics::Serialize() const {
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, registry_->Collect());
  return out.str();
}

}  // namespace trtaoti
