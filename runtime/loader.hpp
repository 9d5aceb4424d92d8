#pragma once
// Batches built off the training thread: a pool of `threads` decoder threads
// fills up to `prefetch` batches ahead of the one the trainer asks for next.
// Batch `step` holds the images plan(step) returns (the trainer's Sampler:
// this worker's shard of the epoch's permutation), in that order. Threads
// claim chunks of samples of the oldest unfinished batch first, so one batch
// is finished by all of them together.
//
// Reproducible: sample j of batch `step` is augmented from its own
// generator Rng(seed, step * 2^24 + j), so batches are bit-identical
// whatever the number of threads and however they interleave.
//
// A bad image (runtime/images.hpp) makes next() throw ImageError for the
// batch that holds it; with `skip_bad` it is reported on stderr, counted and
// left out of its batch instead.
//
// On a CUDA device, batches are built in pinned host memory and copied with
// non_blocking = true, so the copy overlaps the host's next work.
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <torch/torch.h>

#include "runtime/data.hpp"
#include "runtime/sampler.hpp"  // the trainer's plan: each epoch's permutation cut into shards

namespace resist::runtime {

struct LoaderOptions {
  int threads = 2;   // decoder threads; 0: batches are built in next(), on the caller's thread
  int prefetch = 4;  // batches built ahead of the consumer (>= 1)
  bool skip_bad = false;
  torch::Device device{torch::kCPU};
  std::string who = "resist-train";  // prefix of skip messages
};

struct Batch {
  std::int64_t step = 0;
  std::vector<std::int64_t> index;  // the images it holds (bad ones left out)
  torch::Tensor x, y;               // float [B, C, H, W] and int64 [B], on the device
};

using BatchPlan = std::function<std::vector<std::int64_t>(std::int64_t step)>;

class Loader {
 public:
  // Batches for steps first, first + 1, ..., end - 1 (plan is called in
  // step order, under a lock). `augment`: training transforms.
  Loader(const Data& data, const DataSplit& split, bool augment, BatchPlan plan, std::int64_t first, std::int64_t end,
         std::uint64_t seed, LoaderOptions options);
  ~Loader();
  Loader(const Loader&) = delete;
  Loader& operator=(const Loader&) = delete;

  // The batch of `step`: normally the step after the previous call's; any
  // other step drops what was prefetched and restarts there.
  Batch next(std::int64_t step);
  std::int64_t skipped() const;  // bad images left out so far (skip_bad)

 private:
  struct Slot;
  void worker();
  std::shared_ptr<Slot> open_slot(std::int64_t step);  // under mu_
  void fill(Slot& slot, std::int64_t lo, std::int64_t hi);
  Batch finish(Slot& slot);

  const Data& data_;
  const DataSplit& split_;
  const bool augment_;
  BatchPlan plan_;
  const std::uint64_t seed_;
  const LoaderOptions opt_;
  std::int64_t sample_numel_ = 0;
  std::vector<std::int64_t> shape_;

  mutable std::mutex mu_;
  std::condition_variable work_cv_, ready_cv_;
  std::map<std::int64_t, std::shared_ptr<Slot>> slots_;  // open batches by step
  std::int64_t consumed_ = 0;                            // the step next() hands out next
  std::int64_t next_open_ = 0;
  const std::int64_t end_;
  std::int64_t skipped_ = 0;
  bool stop_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace resist::runtime
