#include "runtime/loader.hpp"

#include <algorithm>
#include <iostream>

#include "models/error.hpp"
#include "runtime/images.hpp"
#include "schedule/rng.hpp"

namespace resist::runtime {

struct Loader::Slot {
  std::int64_t step = 0;
  std::vector<std::int64_t> index;
  torch::Tensor x;  // host memory (pinned for CUDA), [n, C, H, W]
  float* xp = nullptr;
  std::int64_t chunk = 1, claimed = 0, done = 0;
  std::vector<std::string> bad_path, bad_reason;  // per sample; empty path: good
  std::string fatal;                              // an unexpected failure while building it
  std::int64_t size() const { return std::int64_t(index.size()); }
};

Loader::Loader(const Data& data, const DataSplit& split, bool augment, BatchPlan plan, std::int64_t first,
               std::int64_t end, std::uint64_t seed, LoaderOptions options)
    : data_(data),
      split_(split),
      augment_(augment),
      plan_(std::move(plan)),
      seed_(seed),
      opt_(std::move(options)),
      end_(end) {
  if (opt_.threads < 0) throw UserError("--loader-threads: must be >= 0 (got " + std::to_string(opt_.threads) + ")");
  if (opt_.prefetch < 1) throw UserError("--prefetch: must be >= 1 (got " + std::to_string(opt_.prefetch) + ")");
  shape_ = sample_shape(data_);
  sample_numel_ = shape_[0] * shape_[1] * shape_[2];
  consumed_ = next_open_ = first;
  for (int t = 0; t < opt_.threads; ++t) threads_.emplace_back([this] { worker(); });
}

Loader::~Loader() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stop_ = true;
  }
  work_cv_.notify_all();
  for (auto& t : threads_) t.join();
}

std::int64_t Loader::skipped() const {
  std::lock_guard<std::mutex> lk(mu_);
  return skipped_;
}

std::shared_ptr<Loader::Slot> Loader::open_slot(std::int64_t step) {
  auto s = std::make_shared<Slot>();
  s->step = step;
  s->index = plan_(step);
  const std::int64_t n = s->size();
  std::vector<std::int64_t> shape = shape_;
  shape.insert(shape.begin(), n);
  s->x = torch::empty(shape, torch::TensorOptions(torch::kFloat32).pinned_memory(opt_.device.is_cuda()));
  s->xp = s->x.data_ptr<float>();
  // Chunks small enough that every thread gets a share of each batch.
  const std::int64_t per_thread = (n + std::max(1, opt_.threads) - 1) / std::max(1, opt_.threads);
  s->chunk = std::clamp<std::int64_t>(per_thread, 1, 16);
  s->bad_path.resize(std::size_t(n));
  s->bad_reason.resize(std::size_t(n));
  return s;
}

void Loader::fill(Slot& s, std::int64_t lo, std::int64_t hi) {
  for (std::int64_t j = lo; j < hi; ++j) {
    Rng rng(seed_, (std::uint64_t(s.step) << 24) + std::uint64_t(j));
    try {
      fill_sample(data_, split_, s.index[std::size_t(j)], augment_, rng, s.xp + j * sample_numel_);
    } catch (const ImageError& e) {
      s.bad_path[std::size_t(j)] = e.path;
      s.bad_reason[std::size_t(j)] = e.what();
    } catch (const std::exception& e) {
      std::lock_guard<std::mutex> lk(mu_);
      if (s.fatal.empty()) s.fatal = e.what();
    }
  }
}

void Loader::worker() {
  std::unique_lock<std::mutex> lk(mu_);
  for (;;) {
    std::shared_ptr<Slot> s;
    work_cv_.wait(lk, [&] {
      if (stop_) return true;
      for (auto& [step, slot] : slots_)
        if (slot->claimed < slot->size()) {
          s = slot;
          return true;
        }
      if (next_open_ < consumed_ + opt_.prefetch && next_open_ < end_) {
        s = open_slot(next_open_);
        slots_[next_open_++] = s;
        return true;
      }
      return false;
    });
    if (stop_) return;
    const std::int64_t lo = s->claimed, hi = std::min(s->size(), lo + s->chunk);
    s->claimed = hi;
    if (hi < s->size()) work_cv_.notify_one();  // more of this batch to share out
    lk.unlock();
    fill(*s, lo, hi);
    lk.lock();
    s->done += hi - lo;
    if (s->done == s->size()) ready_cv_.notify_all();
  }
}

Batch Loader::next(std::int64_t step) {
  if (step >= end_) throw std::logic_error("Loader::next: step " + std::to_string(step) + " is past the end");
  std::shared_ptr<Slot> s;
  {
    std::unique_lock<std::mutex> lk(mu_);
    if (step != consumed_) {  // off the planned sequence: start again at `step`
      slots_.clear();
      consumed_ = next_open_ = step;
    }
    if (threads_.empty()) {
      s = open_slot(step);
      consumed_ = next_open_ = step + 1;
    } else {
      work_cv_.notify_all();
      ready_cv_.wait(lk, [&] {
        auto it = slots_.find(step);
        return it != slots_.end() && it->second->done == it->second->size();
      });
      s = slots_.at(step);
      slots_.erase(step);
      consumed_ = step + 1;
      work_cv_.notify_all();  // room for one more batch ahead
    }
  }
  if (threads_.empty()) fill(*s, 0, s->size());
  return finish(*s);
}

Batch Loader::finish(Slot& s) {
  if (!s.fatal.empty()) throw std::runtime_error("building batch " + std::to_string(s.step) + ": " + s.fatal);
  std::vector<std::int64_t> keep;
  for (std::int64_t j = 0; j < s.size(); ++j) {
    const auto& path = s.bad_path[std::size_t(j)];
    if (path.empty()) {
      keep.push_back(j);
      continue;
    }
    if (!opt_.skip_bad)
      throw UserError(s.bad_reason[std::size_t(j)] + " (found while training; --skip-bad-images skips such files)");
    std::cerr << opt_.who << ": skipping " << s.bad_reason[std::size_t(j)] << std::endl;
    std::lock_guard<std::mutex> lk(mu_);
    ++skipped_;
  }
  if (keep.empty() && s.size() > 0) throw UserError("every image of batch " + std::to_string(s.step) + " is bad (--skip-bad-images)");
  Batch b;
  b.step = s.step;
  torch::Tensor x = s.x;
  if (std::int64_t(keep.size()) < s.size()) {
    x = x.index_select(0, torch::tensor(keep, torch::kInt64));
    if (opt_.device.is_cuda()) x = x.pin_memory();
  }
  for (auto j : keep) b.index.push_back(s.index[std::size_t(j)]);
  auto idx = torch::tensor(b.index, torch::kInt64);
  auto y = split_.labels.index_select(0, idx);
  if (opt_.device.is_cuda()) {
    y = y.pin_memory();
    b.x = x.to(opt_.device, /*non_blocking=*/true);
    b.y = y.to(opt_.device, /*non_blocking=*/true);
  } else {
    b.x = x;
    b.y = y;
  }
  return b;
}

}  // namespace resist::runtime
