#include <gtest/gtest.h>

#include "runtime/lp_stage.hpp"
#include "schedule/layer_parallel.hpp"
#include "tests/support/models.hpp"

using namespace resist;
using resist::runtime::LocalStep;

namespace {
double grad_norm(const std::vector<torch::Tensor>& ps) {
  double n = 0;
  for (const auto& p : ps)
    if (p.grad().defined()) n += p.grad().norm().item<double>();
  return n;
}
std::vector<int> blocks_of(const Stage& s) {
  std::vector<int> v;
  for (int b = s.first; b <= s.last; ++b) v.push_back(b);
  return v;
}
// What an activations op carries, delivered by hand (no communicator).
void deliver(LocalStep& from, int from_rank, LocalStep& to, int to_rank, int boundary) {
  const CommOp op{OpKind::send, Payload::activations, {from_rank, to_rank}, {boundary}, 0};
  ASSERT_EQ(from.count(op), to.count(op));
  to.scatter(op, from.gather(op).clone());
  from.scatter(op, from.gather(op));  // the source keeps what it sent: no effect
}

// Two stages of a small ResNet, and the auxiliary head of the second.
struct TwoStages {
  ModelSpec spec = resist::test::resnet("preact-resnet18", "basic", "fashion-mnist", 4);
  std::vector<Stage> stages = layer_parallel_stages(spec, 2, 4);
  int cut = stages[1].first;
  Net n0{spec, blocks_of(stages[0]), 1}, n1{spec, blocks_of(stages[1]), 1};
  AuxHead none{nullptr}, head{aux_head(spec, cut, 4), 1};
  torch::Tensor x = torch::randn({3, 1, 28, 28}), labels = torch::tensor({1, 2, 3}, torch::kInt64);
};
}  // namespace

// What crosses the boundary has the boundary block's input shape, and each
// loss reaches only what it should.
TEST(LocalStep, LayerParallelStagesExchangeAndLearnLocally) {
  TwoStages t;
  const int cut = t.cut;
  LocalStep s0(t.n0, t.none, 0, 1.0), s1(t.n1, t.head, 1, 1.0);
  EXPECT_FALSE(s0.holds_output());
  EXPECT_TRUE(s1.holds_output());
  EXPECT_FALSE(s0.has_head());
  EXPECT_TRUE(s1.has_head());
  EXPECT_FALSE(s1.head_needs_stage_backward());  // γ = 0
  s0.forward(t.x);
  auto logits = s1.forward(t.x);
  EXPECT_EQ(logits.sizes().vec(), (std::vector<std::int64_t>{3, 10}));
  const auto& b = t.spec.blocks[cut];
  const std::vector<std::int64_t> shape{3, b.in_channels, b.in_hw, b.in_hw};
  EXPECT_EQ(s0.outgoing(cut).sizes().vec(), shape);
  EXPECT_EQ(s1.outgoing(cut).sizes().vec(), shape);
  EXPECT_EQ(std::uint64_t(s0.outgoing(cut).numel()) * 4, 3 * block_input_bytes(t.spec, cut));

  // The real exchange: stage 0 learns towards the head's output, the head
  // towards stage 0's output, stage 1's blocks from the labels.
  deliver(s0, 0, s1, 1, cut);
  deliver(s1, 1, s0, 0, cut);
  EXPECT_TRUE(torch::equal(s0.incoming(cut), s1.outgoing(cut)));
  s0.stage_loss(t.labels).backward();
  s1.stage_loss(t.labels).backward();
  EXPECT_GT(grad_norm(t.n0->parameters()), 0.0);
  EXPECT_GT(grad_norm(t.n1->parameters()), 0.0);
  EXPECT_EQ(grad_norm(t.head->parameters()), 0.0);  // the stage's loss does not reach the head
  s1.head_loss().backward();
  EXPECT_GT(grad_norm(t.head->parameters()), 0.0);

  // Targets equal to the outputs: zero penalty, so no gradient on stage 0
  // and none on the head; stage 1's blocks still learn from the labels.
  for (auto* m : {&*t.n0, &*t.n1}) m->zero_grad();
  t.head->zero_grad();
  s0.forward(t.x);
  s1.forward(t.x);
  deliver(s0, 1, s0, 0, cut);  // its own output as its target
  deliver(s1, 0, s1, 1, cut);
  EXPECT_EQ(s0.stage_loss(t.labels).item<double>(), 0.0);
  EXPECT_EQ(s1.head_loss().item<double>(), 0.0);
  s0.stage_loss(t.labels).backward();
  s1.stage_loss(t.labels).backward();
  s1.head_loss().backward();
  EXPECT_EQ(grad_norm(t.n0->parameters()), 0.0);
  EXPECT_EQ(grad_norm(t.head->parameters()), 0.0);
  EXPECT_GT(grad_norm(t.n1->parameters()), 0.0);
}

// With γ > 0 the head's target moves along the stage's input gradient: the
// head's loss exists only after the stage's backward (an error before it),
// and the target it then has is y' − γ·(N/β)·∂L/∂z.
TEST(LocalStep, AuxStepHeadLossFollowsTheStagesBackward) {
  TwoStages t;
  const double gamma = 0.5, beta = 2.0;
  LocalStep s0(t.n0, t.none, 0, beta, gamma), s1(t.n1, t.head, 1, beta, gamma);
  EXPECT_FALSE(s0.head_needs_stage_backward());  // no head
  EXPECT_TRUE(s1.head_needs_stage_backward());
  EXPECT_THROW(s0.head_loss(), std::logic_error);
  s0.forward(t.x);
  s1.forward(t.x);
  deliver(s0, 0, s1, 1, t.cut);
  EXPECT_THROW(s1.head_loss(), std::logic_error);
  s1.stage_loss(t.labels).backward();
  EXPECT_EQ(grad_norm(t.head->parameters()), 0.0);
  // ∂L/∂z again, by hand, from A(x) as sent across the cut.
  const auto z = s1.outgoing(t.cut);
  const auto zin = z.clone().requires_grad_(true);
  torch::nn::functional::cross_entropy(t.n1->forward(zin), t.labels).backward();
  const auto target = s1.incoming(t.cut) - gamma * double(z.numel()) / beta * zin.grad();
  const auto moved = s1.head_loss();
  EXPECT_TRUE(torch::allclose(moved, torch::mse_loss(z, target)));
  EXPECT_GT(moved.item<double>(), 0.0);
  moved.backward();
  EXPECT_GT(grad_norm(t.head->parameters()), 0.0);
}

// What an aux op carries (replicas averaging a head) and a checkpoint keeps:
// the head's parameters, flattened and restored exactly; the op must name
// this worker's head.
TEST(LocalStep, AuxiliaryHeadParametersRoundTrip) {
  const auto spec = resist::test::resnet("preact-resnet18", "basic", "fashion-mnist", 4);
  const int target = layer_parallel_stages(spec, 2, 4)[1].first;
  AuxHead a(aux_head(spec, target, 4), 1), b(aux_head(spec, target, 4), 2);
  const auto flat = resist::runtime::flat_parameters(a);
  EXPECT_EQ(std::uint64_t(flat.numel()), aux_head(spec, target, 4).param_count);
  EXPECT_FALSE(torch::equal(flat, resist::runtime::flat_parameters(b)));
  resist::runtime::AuxValues values(b);
  const CommOp op{OpKind::allreduce, Payload::aux, {1, 3}, {target}, aux_head(spec, target, 4).bytes()};
  EXPECT_EQ(values.count(op), flat.numel());
  values.scatter(op, flat.clone());
  EXPECT_TRUE(torch::equal(values.gather(op), flat));
  const CommOp other{OpKind::allreduce, Payload::aux, {1, 3}, {target + 1}, 0};
  EXPECT_THROW(values.count(other), std::logic_error);
}
