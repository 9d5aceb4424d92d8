#include "runtime/grad_buckets.hpp"

#include <algorithm>
#include <chrono>
#include <stdexcept>

namespace resist::runtime {

namespace {
double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
}  // namespace

GradientBuckets::GradientBuckets(std::vector<torch::Tensor> params, std::vector<int> ranks, Communicator& comm,
                                 std::size_t bucket_floats)
    : params_(std::move(params)), ranks_(std::move(ranks)), comm_(comm) {
  for (const auto& p : params_) {
    offset_.push_back(total_);
    total_ += p.numel();
  }
  flat_ = torch::zeros({total_}, torch::kFloat32);
  // Bucket boundaries from the end, each a multiple of the ring size n; the
  // first bucket in buffer order (the last communicated) takes the rest.
  const std::int64_t n = std::max<std::int64_t>(1, std::int64_t(ranks_.size()));
  const std::int64_t size = std::max<std::int64_t>(n, std::int64_t(bucket_floats) / n * n);
  for (std::int64_t end = total_; end > 0;) {
    const std::int64_t start = end - size > 0 ? end - size : 0;
    bucket_.push_back({start, end - start, 0});
    end = start;
  }
  buckets_of_.resize(params_.size());
  for (std::size_t i = 0; i < params_.size(); ++i) {
    const std::int64_t lo = offset_[i], hi = lo + params_[i].numel();
    for (std::size_t k = 0; k < bucket_.size(); ++k)
      if (bucket_[k].offset < hi && lo < bucket_[k].offset + bucket_[k].count) buckets_of_[i].push_back(k);
  }
  ready_.assign(bucket_.size(), false);
  for (std::size_t i = 0; i < params_.size(); ++i)
    hooks_.push_back(params_[i].register_hook([this, i](torch::Tensor g) { on_grad(i, g); }));
  thread_ = std::thread([this] { loop(); });
}

GradientBuckets::~GradientBuckets() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
  for (std::size_t i = 0; i < params_.size(); ++i) params_[i].remove_hook(hooks_[i]);
}

void GradientBuckets::begin() {
  // finish() left each gradient a view of the buffer: a backward pass must
  // not accumulate into it while the hooks write the buffer.
  for (auto& p : params_) p.mutable_grad() = torch::Tensor();
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& b : bucket_) b.missing = 0;
  for (std::size_t i = 0; i < params_.size(); ++i)
    for (std::size_t k : buckets_of_[i]) ++bucket_[k].missing;
  std::fill(ready_.begin(), ready_.end(), false);
  done_ = 0;
  armed_ = true;
  ++iteration_;
}

void GradientBuckets::on_grad(std::size_t i, const torch::Tensor& grad) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!armed_) return;  // a backward pass outside begin() / finish()
  }
  flat_.slice(0, offset_[i], offset_[i] + params_[i].numel()).copy_(grad.reshape({-1}));
  bool notify = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (std::size_t k : buckets_of_[i])
      if (--bucket_[k].missing == 0) ready_[k] = notify = true;
  }
  if (notify) cv_.notify_all();
}

// The communication thread: bucket 0, 1, ... of every iteration, in that
// order on every rank, each once all its gradients are in.
void GradientBuckets::loop() {
  for (;;) {
    std::size_t k;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stop_ || (served_ < iteration_ && ready_[done_]); });
      if (stop_) return;
      k = done_;
    }
    const double t = now_s();
    try {
      comm_.prepare(ranks_);
      comm_.allreduce_mean(flat_.data_ptr<float>() + bucket_[k].offset, std::size_t(bucket_[k].count), ranks_);
    } catch (...) {
      std::lock_guard<std::mutex> lock(mu_);
      error_ = std::current_exception();
      done_ = bucket_.size();
      served_ = iteration_;
      cv_.notify_all();
      return;
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (k == 0) first_start_ = t;
      last_end_ = now_s();
      if (++done_ == bucket_.size()) served_ = iteration_;
    }
    cv_.notify_all();
  }
}

std::pair<double, double> GradientBuckets::finish() {
  {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return done_ == bucket_.size() || error_; });
    armed_ = false;
    if (error_) std::rethrow_exception(error_);
  }
  // Each gradient becomes a view of its averaged values in the buffer (no
  // copy back, as DDP's gradient_as_bucket_view); begin() drops them before
  // the next backward, whose hooks copy the new gradients in.
  torch::NoGradGuard ng;
  for (std::size_t i = 0; i < params_.size(); ++i)
    params_[i].mutable_grad() = flat_.slice(0, offset_[i], offset_[i] + params_[i].numel()).view(params_[i].sizes());
  return {first_start_, last_end_};
}

}  // namespace resist::runtime
