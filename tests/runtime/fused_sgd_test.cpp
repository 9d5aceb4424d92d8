// FusedSGD against LibTorch's SGD: the same parameters after the same
// gradients, its loop taken only where it applies.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <sstream>

#include "runtime/fused_sgd.hpp"

namespace {

using resist::runtime::FusedSGD;

std::vector<torch::Tensor> make_params(std::uint64_t seed) {
  torch::manual_seed(int64_t(seed));
  // sizes below and above a parallel grain, and a scalar
  return {torch::randn({3, 5}), torch::randn({70001}), torch::randn({1})};
}

// Steps both optimizers on the same gradients; in step 2 the second
// parameter has none (skipped by both).
void step_both(torch::optim::Optimizer& a, std::vector<torch::Tensor>& pa, torch::optim::Optimizer& b,
               std::vector<torch::Tensor>& pb, int steps) {
  for (int s = 0; s < steps; ++s) {
    for (std::size_t i = 0; i < pa.size(); ++i) {
      if (s == 2 && i == 1) {
        pa[i].mutable_grad() = torch::Tensor();
        pb[i].mutable_grad() = torch::Tensor();
        continue;
      }
      const auto g = torch::randn_like(pa[i]);
      pa[i].mutable_grad() = g.clone();
      pb[i].mutable_grad() = g.clone();
    }
    a.step();
    b.step();
  }
}

double max_diff(const std::vector<torch::Tensor>& a, const std::vector<torch::Tensor>& b) {
  double d = 0;
  for (std::size_t i = 0; i < a.size(); ++i) d = std::max(d, (a[i] - b[i]).abs().max().item<double>());
  return d;
}

std::vector<torch::Tensor> leaf_params(std::uint64_t seed) {
  auto p = make_params(seed);
  for (auto& t : p) t.set_requires_grad(true);
  return p;
}

TEST(FusedSGD, SameParametersAsLibTorchSGD) {
  for (double dampening : {0.0, 0.1}) {
    auto pa = leaf_params(7), pb = leaf_params(7);
    const auto o = torch::optim::SGDOptions(0.05).momentum(0.9).weight_decay(5e-4).dampening(dampening);
    torch::optim::SGD ref(pa, o);
    FusedSGD fused(pb, o);
    step_both(ref, pa, fused, pb, 6);
    EXPECT_LT(max_diff(pa, pb), 1e-6) << "dampening " << dampening;
    // the first step makes the momentum buffers (LibTorch's), the other five are fused
    EXPECT_EQ(fused.fused_steps(), 5);
  }
}

TEST(FusedSGD, NesterovAndNoMomentumGoThroughLibTorch) {
  for (const auto& o : {torch::optim::SGDOptions(0.05).momentum(0.9).nesterov(true),
                        torch::optim::SGDOptions(0.05).weight_decay(1e-3)}) {
    auto pa = leaf_params(3), pb = leaf_params(3);
    torch::optim::SGD ref(pa, o);
    FusedSGD fused(pb, o);
    step_both(ref, pa, fused, pb, 4);
    EXPECT_EQ(max_diff(pa, pb), 0.0);
    EXPECT_EQ(fused.fused_steps(), 0);
  }
}

TEST(FusedSGD, CheckpointLoadsIntoLibTorchSGDAndBack) {
  // A FusedSGD saved after some steps and loaded into a LibTorch SGD (and the
  // other way) goes on as if nothing had changed: the same state and format.
  auto pa = leaf_params(11), pb = leaf_params(11);
  const auto o = torch::optim::SGDOptions(0.02).momentum(0.9).weight_decay(1e-4);
  torch::optim::SGD ref(pa, o);
  FusedSGD fused(pb, o);
  step_both(ref, pa, fused, pb, 3);
  std::stringstream saved;
  torch::save(fused, saved);
  torch::optim::SGD reloaded(pb, o);
  torch::load(reloaded, saved);
  step_both(ref, pa, reloaded, pb, 3);
  EXPECT_LT(max_diff(pa, pb), 1e-6);
  std::stringstream again;
  torch::save(reloaded, again);
  FusedSGD fused_again(pb, o);
  torch::load(fused_again, again);
  step_both(ref, pa, fused_again, pb, 2);
  EXPECT_LT(max_diff(pa, pb), 1e-6);
  EXPECT_EQ(fused_again.fused_steps(), 2);
}

}  // namespace
