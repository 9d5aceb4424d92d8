#include <gtest/gtest.h>

#include <algorithm>
#include <random>

#include <nlohmann/json.hpp>

#include "models/error.hpp"
#include "schedule/accounting.hpp"
#include "schedule/layer_parallel.hpp"
#include "schedule/schedule.hpp"
#include "tests/support/models.hpp"

using namespace resist;

namespace resist {
void PrintTo(const Stage& s, std::ostream* os) { *os << s.first << ".." << s.last; }
}  // namespace resist

namespace {
std::uint64_t bottleneck(const std::vector<std::uint64_t>& cost, const std::vector<std::uint64_t>& start,
                         const std::vector<Stage>& stages) {
  std::uint64_t worst = 0;
  for (const auto& s : stages) {
    std::uint64_t c = start[s.first];
    for (int i = s.first; i <= s.last; ++i) c += cost[i];
    worst = std::max(worst, c);
  }
  return worst;
}
// Every way of cutting n items into k consecutive non-empty stages.
std::uint64_t brute_force(const std::vector<std::uint64_t>& cost, const std::vector<std::uint64_t>& start, int k) {
  const int n = int(cost.size());
  std::uint64_t best = ~0ull;
  for (unsigned mask = 0; mask < (1u << (n - 1)); ++mask) {  // bit i: a stage starts at i + 1
    if (__builtin_popcount(mask) != k - 1) continue;
    std::vector<Stage> stages;
    int first = 0;
    for (int i = 1; i < n; ++i)
      if (mask & (1u << (i - 1))) {
        stages.push_back({first, i - 1});
        first = i;
      }
    stages.push_back({first, n - 1});
    best = std::min(best, bottleneck(cost, start, stages));
  }
  return best;
}
void expect_consecutive_cover(const std::vector<Stage>& stages, int n, int k) {
  ASSERT_EQ(int(stages.size()), k);
  EXPECT_EQ(stages.front().first, 0);
  EXPECT_EQ(stages.back().last, n - 1);
  for (std::size_t i = 0; i < stages.size(); ++i) {
    EXPECT_LE(stages[i].first, stages[i].last);
    if (i > 0) {
      EXPECT_EQ(stages[i].first, stages[i - 1].last + 1);
    }
  }
}
}  // namespace

TEST(LayerParallelSplit, ByHand) {
  EXPECT_EQ(min_bottleneck_split({1, 1, 1, 1}, {0, 0, 0, 0}, 2), (std::vector<Stage>{{0, 1}, {2, 3}}));
  // Starting a stage at item 2 is expensive: the cut moves to 3.
  EXPECT_EQ(min_bottleneck_split({2, 2, 2, 2}, {0, 9, 9, 1}, 2), (std::vector<Stage>{{0, 2}, {3, 3}}));
  // One heavy item stands alone.
  EXPECT_EQ(min_bottleneck_split({1, 10, 1, 1}, {0, 0, 0, 0}, 3), (std::vector<Stage>{{0, 0}, {1, 1}, {2, 3}}));
  EXPECT_EQ(min_bottleneck_split({5, 6, 7}, {0, 0, 0}, 3), (std::vector<Stage>{{0, 0}, {1, 1}, {2, 2}}));
}

// The DP finds the true optimum on random instances (checked against every split).
TEST(LayerParallelSplit, OptimalAgainstBruteForce) {
  std::mt19937_64 rng(7);
  for (int trial = 0; trial < 200; ++trial) {
    const int n = 2 + int(rng() % 10);
    const int k = 1 + int(rng() % n);
    std::vector<std::uint64_t> cost(n), start(n, 0);
    for (int i = 0; i < n; ++i) cost[i] = rng() % 100;
    for (int i = 1; i < n; ++i) start[i] = rng() % 40;
    const auto stages = min_bottleneck_split(cost, start, k);
    expect_consecutive_cover(stages, n, k);
    EXPECT_EQ(bottleneck(cost, start, stages), brute_force(cost, start, k)) << "trial " << trial;
  }
}

TEST(LayerParallelSplit, ResNetStagesBalanceTrainingFlops) {
  const auto m = resist::test::resnet("preact-resnet18", "basic", "cifar10", 16);
  const int n = int(m.blocks.size());
  for (int k : {2, 4, 8, n}) {
    const auto stages = layer_parallel_stages(m, k, 16);
    expect_consecutive_cover(stages, n, k);
    std::uint64_t worst = 0, total = 0;
    for (const auto& s : stages) worst = std::max(worst, stage_train_flops(m, s, 16));
    for (const auto& b : m.blocks) total += 3 * b.flops_fwd;
    EXPECT_GE(worst, total / k) << k;  // no stage can be under the mean
    // At least as good as cutting into equal numbers of blocks.
    std::vector<Stage> even;
    for (int s = 0; s < k; ++s) even.push_back({s * n / k, (s + 1) * n / k - 1});
    std::uint64_t even_worst = 0;
    for (const auto& s : even) even_worst = std::max(even_worst, stage_train_flops(m, s, 16));
    EXPECT_LE(worst, even_worst) << k;
  }
  // Stage 0 pays no auxiliary head; a later stage pays for its own.
  const auto two = layer_parallel_stages(m, 2, 16);
  std::uint64_t blocks_only = 0;
  for (int b = two[1].first; b <= two[1].last; ++b) blocks_only += 3 * m.blocks[b].flops_fwd;
  EXPECT_EQ(stage_train_flops(m, two[1], 16), blocks_only + 3 * aux_head(m, two[1].first, 16).flops_fwd);
}

TEST(LayerParallelSplit, BadInputNamesTheFlag) {
  const auto m = resist::test::resnet("preact-resnet18", "basic", "cifar10", 16);
  const int n = int(m.blocks.size());
  auto message = [&](int stages, int replicas, int width, double beta) {
    try {
      validate_layer_parallel(m, stages, replicas, width, beta);
    } catch (const UserError& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_EQ(message(2, 1, 16, 1.0), "");
  EXPECT_EQ(message(n, 1, 16, 1.0), "");
  EXPECT_EQ(message(1, 1, 16, 1.0).rfind("--stages: must be in 2.." + std::to_string(n), 0), 0u);
  EXPECT_EQ(message(n + 1, 1, 16, 1.0).rfind("--stages:", 0), 0u);
  EXPECT_EQ(message(2, 0, 16, 1.0).rfind("--replicas:", 0), 0u);
  EXPECT_EQ(message(2, 1, 0, 1.0).rfind("--aux-width:", 0), 0u);
  EXPECT_EQ(message(2, 1, 16, 0.0).rfind("--lp-beta:", 0), 0u);
  ModelOptions o;
  o.model = "mlp";
  o.dataset = "fashion-mnist";
  EXPECT_THROW(validate_layer_parallel(build_model(o), 2, 1, 16, 1.0), UserError);
  try {
    reject_layer_parallel_flag("--stages", "resist");
    FAIL();
  } catch (const UserError& e) {
    EXPECT_STREQ(e.what(), "--stages: only with --protocol layer-parallel (got --protocol resist)");
  }
}

TEST(LayerParallelBound, RhoFromPerBlockCosts) {
  // Serial network 8 s (four blocks), auxiliary heads 0.5 s and 1 s (the
  // largest counts), exchanges 1 s, no data loading.
  const auto t = layer_parallel_times({1, 2, 3, 2}, {0, 0.5, 1}, 1.0, 0.0);
  EXPECT_DOUBLE_EQ(t.serial_s, 8.0);
  EXPECT_DOUBLE_EQ(t.aux_s, 1.0);
  EXPECT_DOUBLE_EQ(layer_parallel_rho(t, 4), 8.0 / (1 + 1 + 2));
  EXPECT_DOUBLE_EQ(layer_parallel_rho_limit(t), 4.0);
  // ρ grows with K towards the limit; data loading lowers both.
  EXPECT_LT(layer_parallel_rho(t, 2), layer_parallel_rho(t, 8));
  EXPECT_LT(layer_parallel_rho(t, 64), layer_parallel_rho_limit(t));
  auto with_data = t;
  with_data.data_s = 2.0;
  EXPECT_DOUBLE_EQ(layer_parallel_rho_limit(with_data), 10.0 / 4.0);
  // No speedup when the overheads exceed the network's own time.
  const auto slow = layer_parallel_times({1, 1}, {0, 3}, 0.0, 0.0);
  EXPECT_LT(layer_parallel_rho_limit(slow), 1.0);
}

// ------------------------------------------------------------ the protocol

namespace {
ScheduleConfig lp_config(int stages, int replicas) {
  ScheduleConfig c;
  c.protocol = Protocol::layer_parallel;
  c.model.model = "preact-resnet18";
  c.model.block = "basic";
  c.model.dataset = "fashion-mnist";
  c.model.base_width = 8;
  c.stages = stages;
  c.replicas = replicas;
  c.workers = stages * replicas;
  c.batch_size = 16;
  c.train_size = 160;
  c.epochs = 1;
  c.local_iters = 3;
  return c;
}
}  // namespace

// One round per iteration; each worker trains its stage (and head); per
// iteration two sends of batch × boundary tensor per boundary, after the
// forward pass; the last round hands every stage to rank 0.
TEST(LayerParallelProtocol, RoundsStateStagesAndExchanges) {
  const auto c = lp_config(4, 1);
  const ModelSpec spec = build_model(c.model);
  ScheduleGenerator g(spec, c);
  const auto& h = g.header();
  const auto stages = layer_parallel_stages(spec, 4, 16);
  EXPECT_EQ(h.stages, stages);
  EXPECT_TRUE(h.shared_blocks.empty());
  EXPECT_EQ(h.config.local_iters, 1);
  EXPECT_EQ(h.iters_per_epoch, 10);  // one replica reads all 160 images
  ASSERT_EQ(g.num_rounds(), 10);
  for (int w = 0; w < 4; ++w) EXPECT_EQ(h.shard_of(w), 0);
  const Round r0 = g.round(0);
  std::uint64_t expected_wire = 0;
  for (int w = 0; w < 4; ++w) {
    ASSERT_FALSE(r0.workers[w].blocks.empty());
    EXPECT_EQ(r0.workers[w].blocks.front(), stages[w].first);
    EXPECT_EQ(r0.workers[w].blocks.back(), stages[w].last);
    EXPECT_EQ(r0.workers[w].aux_target, w == 0 ? -1 : stages[w].first);
  }
  ASSERT_EQ(r0.sync.size(), 6u);
  for (std::size_t i = 0; i < r0.sync.size(); ++i) {
    const auto& op = r0.sync[i];
    const int k = int(i) / 2 + 1, b = stages[k].first;
    EXPECT_EQ(op.kind, OpKind::send);
    EXPECT_EQ(op.payload, Payload::activations);
    EXPECT_EQ(op.phase, Phase::forward);
    EXPECT_EQ(op.ranks, (i % 2 == 0 ? std::vector<int>{k - 1, k} : std::vector<int>{k, k - 1}));
    EXPECT_EQ(op.blocks, std::vector<int>{b});
    EXPECT_EQ(op.bytes, 16 * block_input_bytes(spec, b));
    expected_wire += op.bytes;
  }
  EXPECT_EQ(account(spec, h, r0).wire_bytes, expected_wire);  // the accounting counts them
  // Last round: evaluate, hand stages 1..3 to rank 0, which then holds the model.
  const Round last = g.round(9);
  EXPECT_TRUE(last.evaluate);
  ASSERT_EQ(last.sync.size(), 9u);
  for (int k = 1; k < 4; ++k) {
    const auto& op = last.sync[5 + std::size_t(k)];
    EXPECT_EQ(op.payload, Payload::handoff);
    EXPECT_EQ(op.ranks, (std::vector<int>{k, 0}));
    EXPECT_EQ(op.blocks, r0.workers[k].blocks);
  }
  // The schedule file states all of it and reads back identically.
  const Schedule s = make_schedule(spec, c);
  const Schedule back = schedule_from_json(to_json(s));
  EXPECT_EQ(to_json(back), to_json(s));
  EXPECT_EQ(back.stages, stages);
  EXPECT_EQ(back.rounds[0].workers[2].aux_target, stages[2].first);
  EXPECT_EQ(back.rounds[0].sync[0].phase, Phase::forward);
}

// R replicas: the stages of a replica read one shard; every ℓ-th round (and
// the last) the copies of each stage average their blocks and their head.
TEST(LayerParallelProtocol, ReplicasAverageEachStageEveryEll) {
  const auto c = lp_config(2, 2);
  const ModelSpec spec = build_model(c.model);
  ScheduleGenerator g(spec, c);
  const auto& h = g.header();
  EXPECT_EQ(h.data_shard, (std::vector<int>{0, 0, 1, 1}));
  EXPECT_EQ(h.data_shards(), 2);
  EXPECT_EQ(g.num_rounds(), 5);  // 160 images / (2 replicas × 16)
  auto averaging = [&](const Round& r) {
    std::vector<CommOp> v;
    for (const auto& op : r.sync)
      if (op.kind == OpKind::allreduce) v.push_back(op);
    return v;
  };
  EXPECT_TRUE(averaging(g.round(0)).empty());
  EXPECT_TRUE(averaging(g.round(1)).empty());
  const auto ops = averaging(g.round(2));  // ℓ = 3
  ASSERT_EQ(ops.size(), 3u);               // stage 0; stage 1 and its head
  EXPECT_EQ(ops[0].ranks, (std::vector<int>{0, 2}));
  EXPECT_EQ(ops[1].ranks, (std::vector<int>{1, 3}));
  EXPECT_EQ(ops[2].payload, Payload::aux);
  EXPECT_EQ(ops[2].bytes, aux_head(spec, h.stages[1].first, 16).bytes());
  EXPECT_EQ(averaging(g.round(4)).size(), 3u);  // the last round
  // Exchanges stay within a replica.
  for (const auto& op : g.round(0).sync) EXPECT_EQ(op.ranks[0] / 2, op.ranks[1] / 2);
}

// Read from a file, a replicated schedule passes the meaning check (between
// averagings a stage's copies continue on their own); without the last
// averaging of stage 0, rank 0 ends without the average of its blocks.
TEST(LayerParallelProtocol, ReplicatedScheduleFilesAreCheckedForConsistency) {
  const auto c = lp_config(2, 2);
  const ModelSpec spec = build_model(c.model);
  Schedule s = make_schedule(spec, c);
  EXPECT_EQ(to_json(schedule_from_json(to_json(s))), to_json(s));
  auto& last = s.rounds.back().sync;
  const auto it = std::find_if(last.begin(), last.end(), [](const CommOp& op) {
    return op.kind == OpKind::allreduce && op.ranks == std::vector<int>{0, 2};
  });
  ASSERT_NE(it, last.end());
  last.erase(it);
  try {
    schedule_from_json(to_json(s));
    FAIL() << "a schedule without the last averaging of stage 0 was accepted";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("rank 0 lacks the average"), std::string::npos) << e.what();
  }
  // A stage trained by a rank that never held it (its blocks dealt to rank 1 in round 1).
  Schedule t = make_schedule(spec, c);
  t.rounds[1].workers[1].blocks = t.rounds[1].workers[0].blocks;
  EXPECT_THROW(schedule_from_json(to_json(t)), UserError);
}

TEST(LayerParallelProtocol, BadConfigurations) {
  auto message = [&](ScheduleConfig c) {
    try {
      validate(build_model(c.model), c);
    } catch (const UserError& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_EQ(message(lp_config(2, 1)), "");
  auto c = lp_config(2, 1);
  c.workers = 3;
  EXPECT_EQ(message(c).rfind("--workers:", 0), 0u) << message(c);
  c = lp_config(2, 1);
  c.stages = 0;  // from --workers
  c.workers = 4;
  EXPECT_EQ(message(c), "");
  c.workers = 1;
  EXPECT_EQ(message(c).rfind("--stages:", 0), 0u) << message(c);
  c = lp_config(2, 1);
  c.protocol = Protocol::resist;
  EXPECT_EQ(message(c), "--stages: only with --protocol layer-parallel (got --protocol resist)");
  c = lp_config(2, 1);
  c.model.model = "mlp";
  c.model.hidden = {32};
  EXPECT_EQ(message(c).rfind("--model:", 0), 0u) << message(c);
}
