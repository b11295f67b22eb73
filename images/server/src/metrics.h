// Prometheus metrics. Counter names and semantics follow Triton's (nv_inference_*), so
// dashboards and autoscaling rules written for Triton work unchanged; histograms,
// which Triton exposes only partially, carry a trtaoti_ prefix. Recording is lock-free
// or briefly locked per metric; a scrape never waits on the model.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <chrono>
#include <memory>
#include <string>

#include "batcher.h"
#include "status.h"

namespace trtaoti {

class Metrics {
 public:
  Metrics(const std::string& model_name, const std::string& model_version, int64_t batch_max);

  // One finished inference request (success or not), as the client saw it; a request
  // the batcher refused also counts under its reason.
  void RecordRequest(const Status& status, Rejection rejection, int64_t rows, std::chrono::microseconds total,
                     std::chrono::microseconds queue, std::chrono::microseconds compute);
  // One model execution.
  void RecordBatch(const BatchStats& stats);
  void SetPending(double requests) { pending_->Set(requests); }

  // Prometheus text exposition format 0.0.4.
  std::string Serialize() const;

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Counter* success_;
  prometheus::Counter* failure_rejected_;
  prometheus::Counter* failure_backend_;
  prometheus::Counter* failure_other_;
  prometheus::Counter* rejected_queue_full_;
  prometheus::Counter* rejected_timeout_;
  prometheus::Counter* rejected_shutting_down_;
  prometheus::Counter* inference_count_;
  prometheus::Counter* exec_count_;
  prometheus::Counter* request_duration_us_;
  prometheus::Counter* queue_duration_us_;
  prometheus::Counter* compute_duration_us_;
  prometheus::Counter* padding_rows_;
  prometheus::Gauge* pending_;
  prometheus::Histogram* request_hist_;
  prometheus::Histogram* queue_hist_;
  prometheus::Histogram* compute_hist_;
  prometheus::Histogram* batch_size_hist_;
};

}  // namespace trtaoti
