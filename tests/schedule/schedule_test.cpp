#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <set>

#include <nlohmann/json.hpp>

#include "models/error.hpp"
#include "schedule/schedule.hpp"
#include "tests/support/models.hpp"
#include "tests/support/schedule.hpp"

using namespace resist;
using resist::test::paper_model;

namespace {


ScheduleConfig resist_config(int workers, int min_depth, std::uint64_t seed, int rounds) {
  ScheduleConfig c;
  c.protocol = Protocol::resist;
  c.model = paper_model().options;
  c.workers = workers;
  c.min_depth = min_depth;
  c.seed = seed;
  c.rounds = rounds;
  c.local_iters = 5;
  return c;
}

bool has(const std::vector<int>& v, int x) { return std::find(v.begin(), v.end(), x) != v.end(); }

}  // namespace

TEST(ResistPartition, BlocksPerWorker) {
  EXPECT_EQ(resist_blocks_per_worker(22, 2, 4), 11);
  EXPECT_EQ(resist_blocks_per_worker(22, 4, 4), 6);
  EXPECT_EQ(resist_blocks_per_worker(22, 8, 4), 4);
  EXPECT_EQ(resist_blocks_per_worker(22, 8, 1), 3);
  EXPECT_EQ(resist_blocks_per_worker(22, 1, 4), 22);
  EXPECT_EQ(resist_blocks_per_worker(22, 64, 30), 22);
}

// Over many seeds and cluster shapes: equal k, no block twice in one
// sub-ResNet, every block trained, and a block shared only when S*k > B (and
// then as evenly as the dealing allows).
TEST(ResistPartition, InvariantsOverManySeeds) {
  const int B = 22;
  for (int S : {1, 2, 3, 4, 5, 7, 8, 16, 64}) {
    for (int dmin : {1, 4, 9}) {
      const int k = resist_blocks_per_worker(B, S, dmin);
      for (std::uint64_t seed = 0; seed < 40; ++seed) {
        const auto parts = resist_partition(B, S, k, seed, int(seed % 7));
        ASSERT_EQ(int(parts.size()), S);
        std::vector<int> count(B, 0);
        for (const auto& p : parts) {
          ASSERT_EQ(int(p.size()), k);
          EXPECT_EQ(std::set<int>(p.begin(), p.end()).size(), p.size()) << "duplicate in a sub-ResNet";
          for (int b : p) ++count[b];
        }
        const auto [lo, hi] = std::minmax_element(count.begin(), count.end());
        EXPECT_GE(*lo, 1) << "block not trained, S=" << S << " seed=" << seed;
        if (S * k <= B) {
          EXPECT_EQ(*hi, 1) << "shared without need, S=" << S;
        } else {
          EXPECT_LE(*hi - *lo, 1) << "uneven sharing, S=" << S << " dmin=" << dmin << " seed=" << seed;
        }
      }
    }
  }
}

TEST(ResistPartition, DeterministicAndRoundDependent) {
  EXPECT_EQ(resist_partition(22, 4, 6, 7, 3), resist_partition(22, 4, 6, 7, 3));
  EXPECT_NE(resist_partition(22, 4, 6, 7, 3), resist_partition(22, 4, 6, 7, 4));
  EXPECT_NE(resist_partition(22, 4, 6, 7, 3), resist_partition(22, 4, 6, 8, 3));
}

// Executes the sync ops symbolically: after them, every next-round owner of a
// partitionable block must hold its average over all this round's holders.
TEST(ResistSchedule, SyncDeliversAveragedBlocksToNextOwners) {
  const auto spec = paper_model();
  for (int S : {2, 3, 4, 8, 16}) {
    for (std::uint64_t seed : {1, 2, 3}) {
      ScheduleGenerator gen(spec, resist_config(S, 4, seed, 6));
      for (int r = 0; r < gen.num_rounds(); ++r) {
        const Round round = gen.round(r);
        const auto next = gen.holdings(r + 1);
        // value[w][b]: the set of workers whose updates w's copy of b contains.
        std::vector<std::map<int, std::set<int>>> value(S);
        for (int w = 0; w < S; ++w)
          for (int b : round.workers[w].blocks) value[w][b] = {w};
        for (const auto& op : round.sync) {
          if (op.payload == Payload::shared) {
            EXPECT_EQ(op.kind, OpKind::allreduce);
            EXPECT_EQ(int(op.ranks.size()), S);
            EXPECT_EQ(op.blocks, spec.shared);
            continue;
          }
          ASSERT_EQ(op.blocks.size(), 1u);
          const int b = op.blocks[0];
          if (op.kind == OpKind::reduce) {
            std::set<int> merged;
            for (int w : op.ranks) {
              ASSERT_TRUE(value[w].count(b)) << "rank " << w << " reduces a block it does not hold";
              merged.insert(value[w][b].begin(), value[w][b].end());
            }
            value[op.root()][b] = merged;
          } else {
            ASSERT_TRUE(value[op.root()].count(b));
            for (int w : op.ranks) value[w][b] = value[op.root()][b];
          }
        }
        for (int b : spec.partitionable) {
          std::set<int> holders;
          for (int w = 0; w < S; ++w)
            if (has(round.workers[w].blocks, b)) holders.insert(w);
          for (int w = 0; w < S; ++w)
            if (has(next[w], b)) {
              EXPECT_EQ(value[w][b], holders) << "S=" << S << " round " << r << " block " << b;
            }
        }
      }
    }
  }
}

TEST(ResistSchedule, SharedBlocksAndEvalScale) {
  const auto spec = paper_model();
  const Schedule s = make_schedule(spec, resist_config(8, 4, 1, 2));
  EXPECT_EQ(s.shared_blocks, spec.shared);
  for (int b : spec.partitionable) EXPECT_DOUBLE_EQ(s.eval_scale[b], std::max(1.0 / 8, 4.0 / 22));
  for (int b : spec.shared) EXPECT_DOUBLE_EQ(s.eval_scale[b], 1.0);
  // The last round hands every block to rank 0, which assembles the model.
  const auto after = ScheduleGenerator(spec, resist_config(8, 4, 1, 2)).holdings(2);
  EXPECT_EQ(after[0], spec.partitionable);
}

TEST(Schedule, RoundsFromEpochs) {
  const auto spec = paper_model();
  ScheduleConfig c = resist_config(8, 4, 1, 0);
  c.epochs = 160;
  c.batch_size = 128;
  c.train_size = 50000;
  c.local_iters = 50;
  ScheduleGenerator gen(spec, c);
  EXPECT_EQ(gen.header().iters_per_epoch, 49);  // ceil(50000 / (8 * 128))
  EXPECT_EQ(gen.header().total_iters, 160 * 49);
  EXPECT_EQ(gen.num_rounds(), (160 * 49 + 49) / 50);
  EXPECT_EQ(gen.round(gen.num_rounds() - 1).local_iters, 160 * 49 - 50 * (gen.num_rounds() - 1));
  c.protocol = Protocol::data_parallel;
  ScheduleGenerator dp(spec, c);
  EXPECT_EQ(dp.num_rounds(), 160 * 49);
  EXPECT_EQ(dp.round(0).local_iters, 1);
  ASSERT_EQ(dp.round(0).sync.size(), 1u);
  EXPECT_EQ(dp.round(0).sync[0].payload, Payload::gradients);
  EXPECT_EQ(dp.round(0).sync[0].bytes, 4 * spec.param_count());
}

TEST(Schedule, Deterministic) {
  const auto spec = paper_model();
  const auto a = to_json(make_schedule(spec, resist_config(4, 4, 9, 5)));
  const auto b = to_json(make_schedule(spec, resist_config(4, 4, 9, 5)));
  const auto c = to_json(make_schedule(spec, resist_config(4, 4, 10, 5)));
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
}

TEST(Schedule, JsonRoundTripIsLossless) {
  const auto spec = paper_model();
  for (Protocol p : {Protocol::data_parallel, Protocol::local_sgd, Protocol::resist}) {
    ScheduleConfig c = resist_config(5, 3, 123456789012345ull, 4);
    c.protocol = p;
    c.eval_every = 2;
    const Schedule s = make_schedule(spec, c);
    const auto j = to_json(s);
    const Schedule back = schedule_from_json(nlohmann::json::parse(j.dump()));
    EXPECT_EQ(to_json(back), j);
    EXPECT_EQ(back.config.seed, 123456789012345ull);
    EXPECT_EQ(back.rounds.size(), s.rounds.size());
  }
}

TEST(Schedule, EvalGatherSendsMissingBlocksToRankZero) {
  const auto spec = paper_model();
  ScheduleConfig c = resist_config(4, 4, 1, 4);
  c.eval_every = 2;
  ScheduleGenerator gen(spec, c);
  const Round r1 = gen.round(1);
  const auto next = gen.holdings(2);
  std::set<int> at_zero(next[0].begin(), next[0].end());
  for (const auto& op : r1.sync)
    if (op.payload == Payload::eval) {
      EXPECT_EQ(op.kind, OpKind::send);
      EXPECT_EQ(op.ranks[1], 0);
      at_zero.insert(op.blocks[0]);
    } else if (op.ranks[0] == 0 && op.kind == OpKind::reduce) {
      at_zero.insert(op.blocks[0]);  // rank 0 averages it
    }
  for (int b : spec.partitionable) {  // rank 0 is the block's only holder
    int holders = 0;
    for (const auto& w : r1.workers) holders += std::count(w.blocks.begin(), w.blocks.end(), b);
    if (holders == 1 && has(r1.workers[0].blocks, b)) at_zero.insert(b);
  }
  for (int b : spec.partitionable) EXPECT_TRUE(at_zero.count(b)) << b;
  for (const auto& op : gen.round(0).sync) EXPECT_NE(op.payload, Payload::eval);
}


TEST(Schedule, BadJsonNamesThePath) {
  const auto good = to_json(make_schedule(paper_model(), resist_config(4, 4, 1, 2)));
  auto j = good;
  j["version"] = 3;
  EXPECT_NE(resist::test::schedule_read_error(j).find("version"), std::string::npos) << resist::test::schedule_read_error(j);
  j["version"] = 1;  // before rounds stated evaluate / reset_optimizer and ops their phase
  EXPECT_NE(resist::test::schedule_read_error(j).find("version-1 schedule"), std::string::npos)
      << resist::test::schedule_read_error(j);
  j = good;
  j["rounds"][0].erase("evaluate");
  EXPECT_NE(resist::test::schedule_read_error(j).find("rounds[0].evaluate: missing"), std::string::npos)
      << resist::test::schedule_read_error(j);
  j = good;
  j["rounds"][0]["sync"][0]["phase"] = "sometimes";
  EXPECT_NE(resist::test::schedule_read_error(j).find("rounds[0].sync[0].phase"), std::string::npos)
      << resist::test::schedule_read_error(j);
  j = good;
  j["format"] = "something";
  EXPECT_NE(resist::test::schedule_read_error(j).find("format"), std::string::npos);
  j = good;
  j["rounds"][1]["sync"][0]["ranks"][0] = 9;
  EXPECT_NE(resist::test::schedule_read_error(j).find("rounds[1].sync[0].ranks[0]"), std::string::npos) << resist::test::schedule_read_error(j);
  j = good;
  j["rounds"][0]["sync"][1]["bytes"] = 5;
  EXPECT_NE(resist::test::schedule_read_error(j).find("rounds[0].sync[1].bytes"), std::string::npos) << resist::test::schedule_read_error(j);
  j = good;
  j["config"].erase("workers");
  EXPECT_NE(resist::test::schedule_read_error(j).find("config.workers: missing"), std::string::npos) << resist::test::schedule_read_error(j);
  j = good;
  j["config"]["model"]["model"] = "vgg";
  EXPECT_NE(resist::test::schedule_read_error(j).find("vgg"), std::string::npos) << resist::test::schedule_read_error(j);
}

TEST(Schedule, BadConfigIsUserError) {
  const auto spec = paper_model();
  auto c = resist_config(0, 4, 1, 2);
  EXPECT_THROW(ScheduleGenerator(spec, c), UserError);
  c = resist_config(4, 23, 1, 2);
  EXPECT_THROW(ScheduleGenerator(spec, c), UserError);
  c = resist_config(4, 4, 1, 0);
  c.epochs = 0;
  EXPECT_THROW(ScheduleGenerator(spec, c), UserError);
}

// Local-SGD warm-up before ResIST: whole model on every worker, one
// all-reduce of everything, then ordinary ResIST rounds.
TEST(ResistSchedule, WarmupRoundsAreLocalSgd) {
  const auto spec = paper_model();
  ScheduleConfig c = resist_config(4, 4, 3, 0);
  c.epochs = 4;
  c.train_size = 4 * 128 * 10;  // 10 iterations per epoch
  c.local_iters = 5;
  c.warmup_epochs = 1;
  ScheduleGenerator gen(spec, c);
  ASSERT_EQ(gen.num_rounds(), 8);
  ASSERT_EQ(gen.warmup_rounds(), 2);
  for (int r = 0; r < 2; ++r) {
    const Round round = gen.round(r);
    for (const auto& w : round.workers) EXPECT_EQ(w.blocks, spec.partitionable);
    ASSERT_EQ(round.sync.size(), 1u);
    EXPECT_EQ(round.sync[0].kind, OpKind::allreduce);
    EXPECT_EQ(round.sync[0].bytes, 4 * spec.param_count());
  }
  const Round first = gen.round(2);
  for (const auto& w : first.workers) EXPECT_EQ(w.blocks.size(), 6u);
  EXPECT_GT(first.sync.size(), 1u);
  // Same partition as a run without warm-up in the same round.
  c.warmup_epochs = 0;
  EXPECT_EQ(ScheduleGenerator(spec, c).round(2).workers[1].blocks, first.workers[1].blocks);
  // Round trip, and refused for other protocols.
  c.warmup_epochs = 1;
  const auto j = to_json(make_schedule(spec, c));
  EXPECT_EQ(j["config"]["warmup_epochs"], 1);
  EXPECT_EQ(to_json(schedule_from_json(j)), j);
  c.protocol = Protocol::local_sgd;
  EXPECT_THROW(ScheduleGenerator(spec, c), UserError);
}

// Issue 11: the round states every decision a backend needs.
TEST(Schedule, RoundsStateEvaluationOptimizerAndPhase) {
  const auto spec = paper_model();
  for (Protocol p : {Protocol::data_parallel, Protocol::local_sgd, Protocol::resist}) {
    auto c = resist_config(4, 4, 1, 0);
    c.protocol = p;
    c.rounds = 7;
    c.eval_every = 3;
    const ScheduleGenerator gen(spec, c);
    for (int r = 0; r < gen.num_rounds(); ++r) {
      const Round round = gen.round(r);
      EXPECT_EQ(round.evaluate, r == 2 || r == 5 || r == 6) << to_string(p) << " round " << r;
      EXPECT_EQ(round.reset_optimizer, p == Protocol::resist) << to_string(p);
      for (const auto& op : round.sync)
        EXPECT_EQ(op.phase, p == Protocol::data_parallel ? Phase::iteration : Phase::round_end) << to_string(p);
    }
    c.optimizer_state = OptimizerState::reset;
    EXPECT_TRUE(ScheduleGenerator(spec, c).round(0).reset_optimizer);
    c.optimizer_state = OptimizerState::keep;
    if (p == Protocol::resist)
      EXPECT_THROW(ScheduleGenerator(spec, c), UserError);
    else
      EXPECT_FALSE(ScheduleGenerator(spec, c).round(0).reset_optimizer);
  }
}

TEST(Schedule, WhoHoldsAnOpsResult) {
  const CommOp reduce{OpKind::reduce, Payload::partitioned, {2, 0, 1}, {3}, 4};
  EXPECT_TRUE(reduce.holds_result(2));
  EXPECT_FALSE(reduce.holds_result(0));
  EXPECT_FALSE(reduce.holds_result(3));
  const CommOp send{OpKind::send, Payload::handoff, {1, 3}, {3}, 4};
  EXPECT_TRUE(send.holds_result(1));
  EXPECT_TRUE(send.holds_result(3));
  EXPECT_FALSE(send.holds_result(0));
  const CommOp all{OpKind::allreduce, Payload::shared, {0, 1}, {3}, 4};
  EXPECT_TRUE(all.holds_result(0) && all.holds_result(1));
}

// trained_blocks and RoundSource::held_after: the one place "shared + this
// worker's blocks" is computed, for both backends.
TEST(Schedule, TrainedAndHeldBlocks) {
  const auto spec = paper_model();
  const auto c = resist_config(4, 4, 1, 0);
  const RoundSource src(spec, c);
  const Round r0 = src.round(0), r1 = src.round(1);
  for (int w = 0; w < 4; ++w) {
    auto trained = trained_blocks(src.header(), r0, w);
    EXPECT_EQ(trained.size(), spec.shared.size() + r0.workers[w].blocks.size());
    auto next = trained_blocks(src.header(), r1, w);
    std::sort(next.begin(), next.end());
    EXPECT_EQ(src.held_after(0, w), next);
  }
  // After the last round rank 0 holds the whole model.
  EXPECT_EQ(src.held_after(src.num_rounds() - 1, 0).size(), spec.blocks.size());
  EXPECT_EQ(src.held_after(src.num_rounds() - 1, 1), spec.shared);
  // A schedule read back walks the same rounds.
  const RoundSource file(spec, schedule_from_json(to_json(make_schedule(spec, c))));
  EXPECT_EQ(to_json(make_schedule(spec, c)), [&] {
    Schedule s = file.header();
    for (int r = 0; r < file.num_rounds(); ++r) s.rounds.push_back(file.round(r));
    return to_json(s);
  }());
}
