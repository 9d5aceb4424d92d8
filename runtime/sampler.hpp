#pragma once
// Where a worker's training batches come from: every epoch a seeded
// permutation of the training set is cut into S disjoint shards; worker w
// walks shard w in batches.
#include <algorithm>
#include <cstdint>
#include <numeric>
#include <vector>

#include "schedule/rng.hpp"

namespace resist::runtime {

class Sampler {
 public:
  Sampler(std::int64_t n, int workers, int batch, int iters_per_epoch, std::uint64_t seed)
      : n_(n), S_(workers), B_(batch), ipe_(iters_per_epoch), seed_(seed) {}
  std::vector<std::int64_t> batch(int worker, std::int64_t iter) {
    const std::int64_t epoch = iter / ipe_, j = iter % ipe_;
    if (epoch != epoch_) {
      perm_.resize(std::size_t(n_));
      std::iota(perm_.begin(), perm_.end(), 0);
      Rng rng(seed_ ^ 0x5eed0da7aull, std::uint64_t(epoch));
      rng.shuffle(perm_);
      epoch_ = epoch;
    }
    const std::int64_t lo = n_ * worker / S_, hi = n_ * (worker + 1) / S_, len = hi - lo;
    std::vector<std::int64_t> out;
    for (std::int64_t k = j * B_; k < (j + 1) * B_ && k < std::max<std::int64_t>(len, 1) + j * B_; ++k) {
      if (k >= len && !out.empty()) break;
      out.push_back(perm_[std::size_t(lo + k % len)]);
    }
    return out;
  }

 private:
  std::int64_t n_;
  int S_, B_, ipe_;
  std::uint64_t seed_;
  std::int64_t epoch_ = -1;
  std::vector<std::int64_t> perm_;
};

}  // namespace resist::runtime
