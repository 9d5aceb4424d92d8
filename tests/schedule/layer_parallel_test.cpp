#include <gtest/gtest.h>

#include <algorithm>
#include <random>

#include "models/error.hpp"
#include "schedule/layer_parallel.hpp"
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
