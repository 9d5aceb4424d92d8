// The inference model (runtime/inference.hpp): folding each partitioned
// branch's eval_scale into its last convolution gives the same network as
// scaling the branch's output, for basic and bottleneck blocks.
#include <gtest/gtest.h>

#include <numeric>

#include <torch/torch.h>

#include "models/torch_model.hpp"
#include "runtime/inference.hpp"

namespace {

void expect_fold_equals_scaling(const std::string& model, const std::string& block) {
  resist::ModelOptions o;
  o.model = model;
  o.block = block;
  o.base_width = 4;
  o.dataset = "cifar10";
  const auto spec = resist::build_model(o);
  std::vector<double> scale(spec.blocks.size(), 1.0);
  for (int b : spec.partitionable) scale[std::size_t(b)] = 0.3;
  auto net = resist::make_full_net(spec, 3);
  std::map<int, torch::Tensor> values;
  for (int b = 0; b < int(spec.blocks.size()); ++b) {
    std::vector<torch::Tensor> flat;
    for (auto& p : net->block_parameters(b)) flat.push_back(p.detach().reshape({-1}));
    values[b] = torch::cat(flat);
  }
  const auto folded = resist::runtime::fold_branch_scales(spec, scale, values);
  auto plain = resist::make_full_net(spec, 99);
  torch::NoGradGuard ng;
  int changed = 0;
  for (int b = 0; b < int(spec.blocks.size()); ++b) {
    changed += !torch::equal(folded.at(b), values.at(b));
    std::int64_t off = 0;
    for (auto& p : plain->block_parameters(b)) {
      p.copy_(folded.at(b).slice(0, off, off + p.numel()).view(p.sizes()));
      off += p.numel();
    }
  }
  EXPECT_EQ(changed, int(spec.partitionable.size()));
  net->set_branch_scales(scale);
  net->eval();
  plain->eval();
  torch::manual_seed(1);
  const auto x = torch::randn({8, 3, 32, 32});
  EXPECT_TRUE(torch::allclose(net->forward(x), plain->forward(x), 1e-4, 1e-5)) << model << " " << block;
}

}  // namespace

TEST(Inference, FoldedBranchScalesEqualScaledBranches) {
  expect_fold_equals_scaling("preact-resnet34", "basic");
  expect_fold_equals_scaling("preact-resnet50", "bottleneck");
}
