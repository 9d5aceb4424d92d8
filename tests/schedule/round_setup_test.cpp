// What a worker does before a round (schedule/round_setup.hpp): the one
// decision both the simulator's charge and the runtime's stores follow
// (tests/runtime/round_setup_store_test.cpp checks the stores against it).
#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>

#include "schedule/round_setup.hpp"
#include "schedule/schedule.hpp"
#include "tests/support/models.hpp"

using namespace resist;
using resist::test::paper_model;

namespace {

ScheduleConfig config(Protocol p, const ModelSpec& spec, int workers, int rounds) {
  ScheduleConfig c;
  c.protocol = p;
  c.model = spec.options;
  c.workers = workers;
  c.rounds = rounds;
  c.local_iters = 3;
  return c;
}

std::vector<int> sorted_trained(const Schedule& h, const Round& r, int w) {
  std::vector<int> b = trained_blocks(h, r, w);
  std::sort(b.begin(), b.end());
  return b;
}

// Every (round, worker)'s set-up, each round with its predecessor.
std::vector<std::vector<RoundSetup>> setups(const ScheduleGenerator& gen) {
  std::vector<std::vector<RoundSetup>> out;
  std::optional<Round> prev;
  for (int r = 0; r < gen.num_rounds(); ++r) {
    const Round round = gen.round(r);
    out.emplace_back();
    for (int w = 0; w < gen.header().config.workers; ++w)
      out.back().push_back(round_setup(gen.header(), prev ? &*prev : nullptr, round, w));
    prev = round;
  }
  return out;
}

}  // namespace

// Data-parallel: the network is built once from its seeded weights; its ops
// run on the gradients every iteration, so no value ever needs copying in.
TEST(RoundSetup, DataParallelBuildsOnceAndNeverReloads) {
  const ModelSpec spec = paper_model();
  const ScheduleGenerator gen(spec, config(Protocol::data_parallel, spec, 4, 4));
  const auto s = setups(gen);
  for (int w = 0; w < 4; ++w) {
    EXPECT_EQ(s[0][w], (RoundSetup{true, {}})) << w;
    for (int r = 1; r < 4; ++r) EXPECT_EQ(s[r][w], (RoundSetup{false, {}})) << r << " " << w;
  }
}

// Local SGD: the same network every round; the round-end all-reduce replaced
// every block's value, so every block is copied back in, nothing rebuilt.
TEST(RoundSetup, LocalSgdReloadsEveryBlockWithoutRebuilding) {
  const ModelSpec spec = paper_model();
  const ScheduleGenerator gen(spec, config(Protocol::local_sgd, spec, 4, 4));
  const auto s = setups(gen);
  std::vector<int> all(spec.blocks.size());
  std::iota(all.begin(), all.end(), 0);
  for (int w = 0; w < 4; ++w) {
    EXPECT_EQ(s[0][w], (RoundSetup{true, {}}));
    for (int r = 1; r < 4; ++r) EXPECT_EQ(s[r][w], (RoundSetup{false, all})) << r << " " << w;
  }
}

// ResIST: a new sub-ResNet (rebuild, every trained block copied in) whenever
// the worker's block set changes; with warm-up, the local-SGD rounds first
// keep the whole network and the first ResIST round rebuilds.
TEST(RoundSetup, ResistRebuildsWhenTheBlockSetChanges) {
  const ModelSpec spec = paper_model();
  for (int warmup : {0, 1}) {
    ScheduleConfig c = config(Protocol::resist, spec, 4, 0);
    c.epochs = 3;
    c.train_size = 4 * 128 * 6;  // 6 iterations per epoch: 2 rounds
    c.warmup_epochs = warmup;
    const ScheduleGenerator gen(spec, c);
    const auto s = setups(gen);
    int rebuilt = 0;
    for (int r = 0; r < gen.num_rounds(); ++r) {
      const Round round = gen.round(r);
      for (int w = 0; w < 4; ++w) {
        const auto now = sorted_trained(gen.header(), round, w);
        if (r == 0) {
          EXPECT_EQ(s[r][w], (RoundSetup{true, {}}));
          continue;
        }
        const bool changed = sorted_trained(gen.header(), gen.round(r - 1), w) != now;
        EXPECT_EQ(s[r][w].rebuild, changed) << "warmup " << warmup << " round " << r << " worker " << w;
        if (changed) {
          EXPECT_EQ(s[r][w].reload_blocks, now);
        }
        rebuilt += changed;
      }
    }
    EXPECT_GE(rebuilt, 4 * (gen.num_rounds() - 1 - gen.warmup_rounds()) - 2) << "warmup " << warmup;
    if (warmup) {
      ASSERT_EQ(gen.warmup_rounds(), 2);
      std::vector<int> all(spec.blocks.size());
      std::iota(all.begin(), all.end(), 0);
      for (int w = 0; w < 4; ++w) {
        EXPECT_EQ(s[1][w], (RoundSetup{false, all}));  // a warm-up round after a warm-up round
        EXPECT_TRUE(s[2][w].rebuild);                  // the first ResIST round
      }
    }
  }
}

// IST: a new subnet every round, every block's slices copied in (also in
// round 0: the stores keep the full seeded model and copy the slices out).
TEST(RoundSetup, IstRebuildsAndReloadsEveryRound) {
  ModelOptions o;
  o.model = "mlp";
  o.dataset = "fashion-mnist";
  o.input = 5;
  o.hidden = {7, 5, 6};
  o.classes = 3;
  const ModelSpec spec = build_model(o);
  const ScheduleGenerator gen(spec, config(Protocol::ist, spec, 3, 3));
  const auto s = setups(gen);
  std::vector<int> all(spec.blocks.size());
  std::iota(all.begin(), all.end(), 0);
  for (int r = 0; r < 3; ++r)
    for (int w = 0; w < 3; ++w) EXPECT_EQ(s[r][w], (RoundSetup{true, all})) << r << " " << w;
}

// A resumed run's first round rebuilds and copies in what the checkpoint held.
TEST(RoundSetup, ResumedFirstRoundReloadsEverything) {
  const ModelSpec spec = paper_model();
  const ScheduleGenerator gen(spec, config(Protocol::data_parallel, spec, 2, 4));
  const Round round = gen.round(2);
  EXPECT_EQ(round_setup(gen.header(), nullptr, round, 1), (RoundSetup{true, sorted_trained(gen.header(), round, 1)}));
}
