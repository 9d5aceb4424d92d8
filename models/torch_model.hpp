#pragma once
// LibTorch modules built from a ModelSpec. A Net holds either every block of
// the spec or a subset (a ResIST sub-ResNet: the shared blocks plus some
// partitionable ones); blocks it does not hold are not allocated at all.
// Parameter names are the spec's ("layer3.4.conv1.weight"), identical in the
// whole network and in every sub-network, so parameters move between workers
// by name and Python's torch.load reads a saved state_dict directly.
//
// BatchNorm keeps no running statistics: batch statistics are used at train
// and at test time, as in the ResIST authors' code. Initial weights of a block
// depend only on (init_seed, block index), so a block starts out identical in
// every sub-network that holds it.
#include <cstdint>
#include <memory>
#include <vector>

#include <torch/torch.h>

#include "models/spec.hpp"

namespace resist {

// One block of the spec as a module.
struct BlockModule : torch::nn::Module {
  virtual torch::Tensor forward(torch::Tensor x) = 0;
  // Residual blocks: the residual branch is multiplied by this (ResIST
  // inference scaling); other blocks ignore it.
  double branch_scale = 1.0;
};

class NetImpl : public torch::nn::Module {
 public:
  // `held`: spec block indices to allocate; the network runs them in spec
  // order and skips the others (a skipped residual block is the identity).
  NetImpl(const ModelSpec& spec, const std::vector<int>& held, std::uint64_t init_seed = 0);
  torch::Tensor forward(torch::Tensor x);

  const ModelSpec& spec() const { return spec_; }
  bool holds(int block) const { return blocks_.at(block) != nullptr; }
  std::vector<int> held() const;
  BlockModule& block(int i) { return *blocks_.at(i); }
  // The block's parameters in spec order (ParamSpec order).
  std::vector<torch::Tensor> block_parameters(int block) const;
  // Scales the residual branch of every held partitionable block.
  void set_branch_scales(const std::vector<double>& per_block);

 private:
  ModelSpec spec_;
  std::vector<std::shared_ptr<BlockModule>> blocks_;  // by spec index; null if not held
};
TORCH_MODULE(Net);

// An auxiliary head of layer-parallel training (AuxHeadSpec): maps the image
// to a tensor of its target block's input shape. Parameter names are the
// spec's without the "aux.<block>." prefix ("conv1.weight"); parameters() is
// in the spec's order. Initial weights depend only on (init_seed, target).
class AuxHeadImpl : public torch::nn::Module {
 public:
  explicit AuxHeadImpl(const AuxHeadSpec& spec, std::uint64_t init_seed = 0);
  torch::Tensor forward(torch::Tensor image);
  const AuxHeadSpec& spec() const { return spec_; }

 private:
  AuxHeadSpec spec_;
  std::vector<torch::nn::BatchNorm2d> bns_;   // bns_[i] precedes convs_[i + 1]
  std::vector<torch::nn::Conv2d> convs_;
};
TORCH_MODULE(AuxHead);

// Every block of the spec.
Net make_full_net(const ModelSpec& spec, std::uint64_t init_seed = 0);

}  // namespace resist
