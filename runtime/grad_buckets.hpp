#pragma once
// Data-parallel: the gradient all-reduce overlapped with the backward pass,
// in buckets, as PyTorch's DistributedDataParallel does. Every parameter's
// gradient is copied, as autograd produces it, into its place in one flat
// buffer (the op's order: its blocks, each block's parameters in spec
// order); the buffer is cut into buckets from its end (backward produces the
// last layers' gradients first), and a communication thread all-reduces each
// bucket as soon as all of its gradients are in, in a fixed order, while
// autograd goes on with the earlier layers. finish() waits for the last
// bucket and writes the means into the parameters' .grad.
//
// Bytes on the wire are exactly the single all-reduce's (wire_sent): every
// bucket but the first in buffer order holds a multiple of the ring size,
// so each rank's share of the ring's uneven chunks is the same as for the
// whole buffer. CPU tensors only (Gloo).
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

#include <torch/torch.h>

#include "runtime/comm.hpp"

namespace resist::runtime {

class GradientBuckets {
 public:
  // `params`: in the op's flat order; `ranks`: the op's ranks; `bucket_floats`:
  // target bucket size (at least one ring's worth is used).
  GradientBuckets(std::vector<torch::Tensor> params, std::vector<int> ranks, Communicator& comm,
                  std::size_t bucket_floats);
  ~GradientBuckets();
  GradientBuckets(const GradientBuckets&) = delete;
  GradientBuckets& operator=(const GradientBuckets&) = delete;

  // Before loss.backward(): arms the hooks for one iteration.
  void begin();
  // After loss.backward(): waits for every bucket, then p.grad() = the mean.
  // Returns when the first bucket started and the last one ended (seconds of
  // the steady clock) for the timeline.
  std::pair<double, double> finish();

  std::size_t buckets() const { return bucket_.size(); }
  std::int64_t floats() const { return total_; }

 private:
  struct Bucket {
    std::int64_t offset = 0, count = 0;
    int missing = 0;  // gradients not yet copied in this iteration
  };
  void on_grad(std::size_t param, const torch::Tensor& grad);
  void loop();

  std::vector<torch::Tensor> params_;
  std::vector<std::int64_t> offset_;     // per parameter, into flat_
  std::vector<std::vector<std::size_t>> buckets_of_;  // per parameter: the buckets it overlaps
  std::vector<int> ranks_;
  Communicator& comm_;
  torch::Tensor flat_;
  std::int64_t total_ = 0;
  std::vector<Bucket> bucket_;  // in communication order: from the end of flat_
  std::vector<unsigned> hooks_;

  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<bool> ready_;
  std::size_t done_ = 0;       // buckets all-reduced this iteration
  std::uint64_t iteration_ = 0, served_ = 0;
  double first_start_ = 0, last_end_ = 0;
  bool stop_ = false;
  bool armed_ = false;  // between begin() and finish(): hooks copy gradients
  std::exception_ptr error_;
  std::thread thread_;
};

}  // namespace resist::runtime
