#include <gtest/gtest.h>

#include "models/torch_model.hpp"
#include "schedule/ist.hpp"
#include "tests/support/models.hpp"

using namespace resist;

namespace {
std::uint64_t numel(const torch::nn::Module& m) {
  std::uint64_t n = 0;
  for (const auto& p : m.parameters()) n += p.numel();
  return n;
}
// The whole network built from `spec` has exactly the spec's parameters:
// same count, same names, same shapes.
void expect_net_matches_spec(const ModelSpec& spec) {
  Net net = make_full_net(spec);
  ASSERT_EQ(numel(*net), spec.param_count()) << spec.name;
  const auto named = net->named_parameters();
  std::size_t expected = 0;
  for (const auto& b : spec.blocks)
    for (const auto& p : b.params) {
      ++expected;
      ASSERT_TRUE(named.contains(p.name)) << p.name;
      EXPECT_EQ(named[p.name].sizes().vec(), p.shape) << p.name;
    }
  EXPECT_EQ(named.size(), expected) << spec.name;
}
}  // namespace

// Every model x block type x dataset: LibTorch's count equals the spec's, and
// every parameter has the spec's name and shape.
TEST(TorchModel, ParameterCountsEqualSpecEverywhere) {
  torch::NoGradGuard no_grad;
  for (int depth : {18, 34, 50, 101, 152, 200})
    for (const char* block : {"basic", "bottleneck"})
      for (const char* dataset : {"cifar10", "cifar100", "fashion-mnist", "imagenet"}) {
        const auto spec = resist::test::resnet("preact-resnet" + std::to_string(depth), block, dataset, 64);
        expect_net_matches_spec(spec);
      }
}

TEST(TorchModel, PaperModelCount) {
  torch::NoGradGuard no_grad;
  EXPECT_EQ(numel(*make_full_net(resist::test::resnet("preact-resnet101", "basic", "cifar100", 64))), 41396900u);
}

TEST(TorchModel, ForwardShapes) {
  for (const char* dataset : {"cifar10", "fashion-mnist", "imagenet"}) {
    const auto spec = resist::test::resnet("preact-resnet18", "basic", dataset, 8);
    Net net = make_full_net(spec);
    const auto& ds = spec.dataset;
    auto y = net->forward(torch::randn({2, ds.channels, ds.height, ds.width}));
    EXPECT_EQ(y.sizes().vec(), (std::vector<std::int64_t>{2, ds.classes})) << dataset;
  }
}

// A sub-network allocates only what it holds, names parameters as the full
// network does, and starts from the same weights for the blocks it holds.
TEST(TorchModel, SubNetworkHoldsOnlyItsBlocks) {
  const auto spec = resist::test::resnet("preact-resnet101", "basic", "cifar10", 8);
  std::vector<int> held = spec.shared;
  held.push_back(spec.partitionable[3]);
  held.push_back(spec.partitionable[10]);
  Net sub(spec, held, 5);
  Net full = make_full_net(spec, 5);
  EXPECT_EQ(numel(*sub), spec.param_count(held));
  const auto full_params = full->named_parameters();
  for (const auto& item : sub->named_parameters()) {
    ASSERT_TRUE(full_params.contains(item.key())) << item.key();
    EXPECT_TRUE(torch::equal(item.value(), full_params[item.key()])) << item.key();
  }
  EXPECT_FALSE(sub->holds(spec.partitionable[0]));
  auto y = sub->forward(torch::randn({2, 3, 32, 32}));
  EXPECT_EQ(y.size(1), 10);
  // block_parameters follows the spec's order.
  const int b = spec.partitionable[3];
  const auto ps = sub->block_parameters(b);
  ASSERT_EQ(ps.size(), spec.blocks[b].params.size());
  for (std::size_t i = 0; i < ps.size(); ++i) EXPECT_EQ(ps[i].sizes().vec(), spec.blocks[b].params[i].shape);
}

TEST(TorchModel, BranchScaleChangesOnlyScaledBlocks) {
  const auto spec = resist::test::resnet("preact-resnet18", "basic", "cifar10", 8);
  Net net = make_full_net(spec, 1);
  auto x = torch::randn({4, 3, 32, 32});
  auto y1 = net->forward(x);
  std::vector<double> scale(spec.blocks.size(), 1.0);
  net->set_branch_scales(scale);
  EXPECT_TRUE(torch::allclose(net->forward(x), y1));
  scale[spec.partitionable[0]] = 0.5;
  net->set_branch_scales(scale);
  EXPECT_FALSE(torch::allclose(net->forward(x), y1));
}

TEST(TorchModel, MlpMatchesSpec) {
  ModelOptions o;
  o.model = "mlp";
  o.dataset = "fashion-mnist";
  o.hidden = {256, 128};
  const auto spec = build_model(o);
  Net net = make_full_net(spec);
  EXPECT_EQ(numel(*net), spec.param_count());
  EXPECT_EQ(net->forward(torch::randn({3, 1, 28, 28})).sizes().vec(), (std::vector<std::int64_t>{3, 10}));
}

// The IST paper's speech models (4096 inputs, 35 classes; hidden 4096, and
// 8192 + 4096) and a Fashion-MNIST MLP: LibTorch's parameters have the spec's
// names, shapes and count.
TEST(TorchModel, MlpCountsNamesAndShapesEqualSpec) {
  torch::NoGradGuard no_grad;
  const std::vector<std::tuple<int, std::vector<int>, int, const char*>> models = {
      {4096, {4096}, 35, "fashion-mnist"}, {4096, {8192, 4096}, 35, "fashion-mnist"}, {0, {512, 256}, 0, "fashion-mnist"}};
  for (const auto& [input, hidden, classes, dataset] : models) {
    ModelOptions o;
    o.model = "mlp";
    o.dataset = dataset;
    o.input = input;
    o.hidden = hidden;
    o.classes = classes;
    const auto spec = build_model(o);
    expect_net_matches_spec(spec);
  }
}

// The recipe the runtime follows for IST: a worker's subnet is
// make_full_net(build_model(subnet_options)), its parameter k is
// full[k].index_select(0, rows).index_select(1, cols); with S = 1 the subnet
// is the whole network and computes the same function.
TEST(TorchModel, IstSubnetFromSlices) {
  torch::NoGradGuard no_grad;
  ModelOptions o;
  o.model = "mlp";
  o.dataset = "fashion-mnist";
  o.hidden = {64, 32};
  const auto spec = build_model(o);
  Net full = make_full_net(spec, 3);
  const auto full_params = full->parameters();
  for (int S : {1, 3}) {
    const IstPlan plan(spec, S, 5);
    const auto p = plan.partition(1);
    for (int w = 0; w < S; ++w) {
      Net sub = make_full_net(build_model(plan.subnet_options(p, w)), 9);
      const auto sub_params = sub->parameters();
      const auto slices = plan.worker_slices(p, w);
      ASSERT_EQ(sub_params.size(), slices.size());
      for (std::size_t k = 0; k < slices.size(); ++k) {
        auto rows = torch::tensor(slices[k].rows, torch::kLong);
        auto piece = full_params[k].index_select(0, rows);
        if (!slices[k].cols.empty()) piece = piece.index_select(1, torch::tensor(slices[k].cols, torch::kLong));
        ASSERT_EQ(piece.sizes(), sub_params[k].sizes()) << k;
        sub_params[k].copy_(piece);
      }
      auto x = torch::randn({4, 1, 28, 28});
      auto y = sub->forward(x);
      EXPECT_EQ(y.sizes().vec(), (std::vector<std::int64_t>{4, 10}));
      if (S == 1) {
        EXPECT_TRUE(torch::allclose(y, full->forward(x), 1e-5, 1e-5));
      }
    }
  }
}

// Every auxiliary head of several models: LibTorch's parameters are the
// spec's (count, names, shapes, order) and its output has the target block's
// input shape.
TEST(TorchModel, AuxHeadsMatchSpec) {
  for (const char* dataset : {"cifar10", "fashion-mnist", "imagenet"}) {
    const auto spec = resist::test::resnet("preact-resnet18", "basic", dataset, 8);
    const auto& ds = spec.dataset;
    for (int b = 1; b < int(spec.blocks.size()); ++b) {
      const AuxHeadSpec a = aux_head(spec, b, 4);
      AuxHead head(a, 3);
      ASSERT_EQ(numel(*head), a.param_count) << a.name;
      const auto params = head->named_parameters();
      ASSERT_EQ(params.size(), a.params.size()) << a.name;
      for (std::size_t i = 0; i < a.params.size(); ++i) {
        EXPECT_EQ(a.name + "." + params[i].key(), a.params[i].name);
        EXPECT_EQ(params[i].value().sizes().vec(), a.params[i].shape) << a.params[i].name;
      }
      torch::NoGradGuard no_grad;
      auto z = head->forward(torch::randn({2, ds.channels, ds.height, ds.width}));
      EXPECT_EQ(z.sizes().vec(), (std::vector<std::int64_t>{2, a.out_channels, a.out_hw, a.out_hw})) << a.name;
    }
  }
}
