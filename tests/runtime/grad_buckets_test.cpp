// Data-parallel gradient buckets (runtime/grad_buckets.hpp) on thread-ranks:
// with the all-reduce overlapped with backward in several buckets, every rank
// ends with the mean of the ranks' gradients, bitwise identical everywhere,
// and sends exactly the bytes of the single all-reduce the schedule accounts.
#include <gtest/gtest.h>

#include <thread>

#include <torch/torch.h>

#include "models/torch_model.hpp"
#include "runtime/grad_buckets.hpp"
#include "schedule/accounting.hpp"
#include "tests/support/local_comm.hpp"

namespace {

resist::ModelSpec small_resnet() {
  resist::ModelOptions o;
  o.model = "preact-resnet18";
  o.base_width = 4;
  o.dataset = "fashion-mnist";
  return resist::build_model(o);
}

// One rank's network and batches. Built before any thread starts: LibTorch's
// default generator (seeded weights, random batches) is process-wide.
struct RankData {
  resist::Net net{nullptr};
  std::vector<torch::Tensor> params, x, y;
};

RankData rank_data(const resist::ModelSpec& spec, int rank, int iterations) {
  RankData d;
  d.net = resist::make_full_net(spec, 7);
  for (int b = 0; b < int(spec.blocks.size()); ++b)
    for (auto& p : d.net->block_parameters(b)) d.params.push_back(p);
  for (int it = 0; it < iterations; ++it) {
    torch::manual_seed(100 * it + rank);
    d.x.push_back(torch::randn({4, 1, 28, 28}));
    d.y.push_back(torch::randint(10, {4}, torch::kLong));
  }
  return d;
}

// The gradients of the last iteration: plain backward (buckets null), or the
// bucketed means.
std::vector<torch::Tensor> grads(RankData& d, resist::runtime::GradientBuckets* buckets) {
  std::vector<torch::Tensor> out;
  for (std::size_t it = 0; it < d.x.size(); ++it) {
    // Bucketed: begin() itself drops the last iteration's gradients (views
    // of the bucket buffer after finish()); without that the second
    // iteration would accumulate into them.
    if (buckets) buckets->begin();
    else
      for (auto& p : d.params) p.mutable_grad().reset();
    torch::nn::functional::cross_entropy(d.net->forward(d.x[it]), d.y[it]).backward();
    if (buckets) buckets->finish();
    out.clear();
    for (auto& p : d.params) out.push_back(p.grad().clone());
  }
  return out;
}

}  // namespace

TEST(GradientBuckets, OverlappedBucketsAllReduceTheMeanAndSendTheAccountedBytes) {
  const auto spec = small_resnet();
  const int world = 3;
  // The plain gradients of each rank, to average here.
  std::vector<std::vector<torch::Tensor>> plain;
  for (int r = 0; r < world; ++r) {
    auto d = rank_data(spec, r, 2);
    plain.push_back(grads(d, nullptr));
  }
  std::vector<RankData> data;
  for (int r = 0; r < world; ++r) data.push_back(rank_data(spec, r, 2));
  resist::test::Wires wires;
  std::vector<std::vector<torch::Tensor>> got(world);
  std::vector<std::uint64_t> sent(world);
  std::vector<std::thread> threads;
  for (int r = 0; r < world; ++r)
    threads.emplace_back([&, r] {
      resist::test::LocalComm comm(wires, r, world);
      resist::runtime::GradientBuckets buckets(data[r].params, {0, 1, 2}, comm, 1001);
      EXPECT_GT(buckets.buckets(), 2u);
      got[r] = grads(data[r], &buckets);
      sent[r] = comm.bytes_sent();
    });
  for (auto& t : threads) t.join();
  std::uint64_t floats = 0;
  for (std::size_t i = 0; i < plain[0].size(); ++i) {
    auto mean = (plain[0][i] + plain[1][i] + plain[2][i]) / 3.0;
    EXPECT_TRUE(torch::allclose(got[0][i], mean, 1e-4, 1e-6)) << "parameter " << i;
    EXPECT_TRUE(torch::equal(got[0][i], got[1][i]) && torch::equal(got[0][i], got[2][i])) << "not identical";
    floats += std::uint64_t(plain[0][i].numel());
  }
  // Two iterations of one all-reduce of every gradient, as the schedule's op.
  resist::CommOp op;
  op.kind = resist::OpKind::allreduce;
  op.ranks = {0, 1, 2};
  op.bytes = 4 * floats;
  ASSERT_NE(floats % world, 0u) << "pick a model whose size leaves a remainder";
  for (int r = 0; r < world; ++r) EXPECT_EQ(sent[r], 2 * resist::wire_sent(op, world)[r]) << "rank " << r;
}
