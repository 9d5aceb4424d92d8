// The parameter stores (runtime/param_store.hpp) set every round up as the
// schedule's round_setup() says (schedule/round_setup.hpp), which is what the
// simulator charges, and their own bookkeeping (which blocks' values are
// still in the network) agrees with it: each worker's store is driven through
// a whole schedule on its own, as the trainer drives it (every op's result
// stands in for the real one; the values do not matter here, only which
// blocks are copied when), and a set-up that leaves out a block the store
// must copy, or names one it does not hold, is refused.
#include <gtest/gtest.h>

#include <algorithm>
#include <optional>
#include <stdexcept>
#include <string>

#include <torch/torch.h>

#include "models/torch_model.hpp"
#include "runtime/param_store.hpp"
#include "schedule/round_setup.hpp"
#include "tests/support/models.hpp"

using namespace resist;
using namespace resist::runtime;

namespace {

// ResNet-18 has one partitionable block; ResIST needs more to deal.
ModelSpec small_resnet(const std::string& model = "preact-resnet18") {
  ModelOptions o;
  o.model = model;
  o.block = "basic";
  o.base_width = 4;
  o.dataset = "fashion-mnist";
  return build_model(o);
}

ModelSpec small_mlp() { return test::mlp({16, 12}); }

std::vector<int> sorted_trained(const Schedule& h, const Round& r, int w) {
  std::vector<int> b = trained_blocks(h, r, w);
  std::sort(b.begin(), b.end());
  return b;
}

ScheduleConfig config(Protocol p, const ModelSpec& spec, int workers) {
  ScheduleConfig c;
  c.protocol = p;
  c.model = spec.options;
  c.workers = workers;
  c.min_depth = 2;
  c.local_iters = 2;
  c.batch_size = 4;
  c.epochs = 3;
  c.train_size = std::int64_t(workers) * 4 * 4;  // 4 iterations per epoch: 2 rounds
  c.eval_every = 2;
  return c;
}

// Walks worker w's store through every round as the trainer does (load,
// take, the round-end ops it takes part in, end_sync) and checks each load.
void expect_store_follows_schedule(const ModelSpec& spec, const ScheduleConfig& c) {
  const RoundSource src(spec, c);
  const Schedule& header = src.header();
  for (int w = 0; w < c.workers; ++w) {
    RunContext ctx;
    ctx.rank = w;
    ctx.world = c.workers;
    auto store = make_store(header, spec, ctx, torch::kCPU);
    Net net{nullptr};
    std::optional<Round> prev;
    int rebuilt = 0, copied = 0;
    for (int r = 0; r < src.num_rounds(); ++r) {
      const Round round = src.round(r);
      const RoundSetup want = round_setup(header, prev ? &*prev : nullptr, round, w);
      const std::string where = std::string(to_string(c.protocol)) + " warm-up epochs " +
                                std::to_string(c.warmup_epochs) + " round " + std::to_string(r) + " worker " +
                                std::to_string(w);
      if (!want.reload_blocks.empty()) {  // one block fewer is refused (before anything changes)
        RoundSetup fewer = want;
        fewer.reload_blocks.pop_back();
        EXPECT_THROW(store->load(round, fewer, net), std::logic_error) << where;
      }
      if (!want.rebuild && want.reload_blocks.empty()) {  // a block more: one it does not hold
        RoundSetup more = want;
        more.reload_blocks = {sorted_trained(header, round, w).front()};
        EXPECT_THROW(store->load(round, more, net), std::logic_error) << where;
      }
      const Net before = net;
      EXPECT_EQ(store->load(round, want, net), want.rebuild) << where;
      EXPECT_EQ(before.is_empty() || net.ptr() != before.ptr(), want.rebuild) << where;  // a new module
      rebuilt += want.rebuild;
      copied += int(want.reload_blocks.size());
      store->take(net);
      for (const auto& op : round.sync) {
        if (op.phase != Phase::round_end || !op.involves(w) || op.payload == Payload::aux) continue;
        const bool input = op.kind == OpKind::allreduce || op.kind == OpKind::reduce || op.root() == w;
        torch::Tensor bucket = input ? store->gather(op).clone() : torch::zeros({store->count(op)});
        if (op.holds_result(w))
          store->scatter(op, bucket);
        else
          store->drop(op);
      }
      store->end_sync([&] { return src.held_after(r, w); }, round.evaluate && w == 0);
      prev = round;
    }
    EXPECT_GT(rebuilt, 0);
    if (c.protocol != Protocol::data_parallel) {
      EXPECT_GT(copied, 0) << to_string(c.protocol);
    }
  }
}

}  // namespace

TEST(RoundSetupStore, DataParallel) {
  const ModelSpec spec = small_resnet();
  expect_store_follows_schedule(spec, config(Protocol::data_parallel, spec, 2));
}

TEST(RoundSetupStore, LocalSgd) {
  const ModelSpec spec = small_resnet();
  expect_store_follows_schedule(spec, config(Protocol::local_sgd, spec, 3));
}

TEST(RoundSetupStore, Resist) {
  const ModelSpec spec = small_resnet("preact-resnet101");
  ScheduleConfig c = config(Protocol::resist, spec, 3);
  expect_store_follows_schedule(spec, c);
  c.warmup_epochs = 1;
  expect_store_follows_schedule(spec, c);
}

TEST(RoundSetupStore, Ist) {
  const ModelSpec spec = small_mlp();
  ScheduleConfig c = config(Protocol::ist, spec, 2);
  expect_store_follows_schedule(spec, c);
  c.ist_sync = IstSync::parameter_server;
  expect_store_follows_schedule(spec, c);
}
