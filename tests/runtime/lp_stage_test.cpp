#include <gtest/gtest.h>

#include "runtime/lp_stage.hpp"
#include "tests/support/models.hpp"

using namespace resist;
using resist::runtime::LayerParallelStage;

namespace {
double grad_norm(const std::vector<torch::Tensor>& ps) {
  double n = 0;
  for (const auto& p : ps)
    if (p.grad().defined()) n += p.grad().norm().item<double>();
  return n;
}
std::vector<torch::Tensor> tail(const std::vector<torch::Tensor>& v, std::size_t from) {
  return {v.begin() + std::ptrdiff_t(from), v.end()};
}
}  // namespace

// Two stages of a small ResNet on Fashion-MNIST-shaped input: what crosses
// each boundary has the boundary block's input shape, and each loss reaches
// only what it should.
TEST(LayerParallelStage, ExchangeShapesAndWhereGradientsGo) {
  const auto spec = resist::test::resnet("preact-resnet18", "basic", "fashion-mnist", 4);
  const auto stages = layer_parallel_stages(spec, 2, 4);
  const int cut = stages[1].first;
  LayerParallelStage s0(spec, stages[0], 4, 1.0, 1), s1(spec, stages[1], 4, 1.0, 1);
  EXPECT_FALSE(s0.last());
  EXPECT_TRUE(s1.last());
  auto x = torch::randn({3, 1, 28, 28});
  auto labels = torch::tensor({1, 2, 3}, torch::kInt64);
  s0.forward(x);
  s1.forward(x);
  const auto& b = spec.blocks[cut];
  const std::vector<std::int64_t> shape{3, b.in_channels, b.in_hw, b.in_hw};
  EXPECT_EQ(s0.outgoing(cut).sizes().vec(), shape);
  EXPECT_EQ(s1.outgoing(cut).sizes().vec(), shape);
  EXPECT_EQ(std::uint64_t(s0.outgoing(cut).numel()) * 4, 3 * block_input_bytes(spec, cut));

  // Targets equal to the outputs: zero penalty, zero gradient on stage 0; the
  // head of stage 1 gets none either, while its blocks learn from the labels.
  s0.incoming(cut).copy_(s0.outgoing(cut));
  s1.incoming(cut).copy_(s1.outgoing(cut));
  EXPECT_DOUBLE_EQ(s0.backward(labels), 0.0);
  EXPECT_EQ(grad_norm(s0.parameters()), 0.0);
  EXPECT_GT(s1.backward(labels), 0.0);
  const auto p1 = s1.parameters();
  const std::size_t blocks1 = p1.size() - s1.aux()->parameters().size();
  EXPECT_GT(grad_norm({p1.begin(), p1.begin() + std::ptrdiff_t(blocks1)}), 0.0);
  EXPECT_EQ(grad_norm(tail(p1, blocks1)), 0.0);

  // Real exchange: stage 0 now learns towards the head's output, the head
  // towards stage 0's output.
  for (auto& p : s0.parameters()) p.mutable_grad() = torch::Tensor();
  for (auto& p : p1) p.mutable_grad() = torch::Tensor();
  s0.forward(x);
  s1.forward(x);
  s0.incoming(cut).copy_(s1.outgoing(cut));
  s1.incoming(cut).copy_(s0.outgoing(cut));
  EXPECT_GT(s0.backward(labels), 0.0);
  EXPECT_GT(grad_norm(s0.parameters()), 0.0);
  s1.backward(labels);
  EXPECT_GT(grad_norm(tail(s1.parameters(), blocks1)), 0.0);
}
