// "As run" (sim/as_run.hpp): the ResIST authors' implementation of the sync
// (one call per tensor, fresh groups per partitioned block, local SGD through
// rank 0) as a rewrite of a round's plan, and its cost in a simulated run.
#include <gtest/gtest.h>

#include <cmath>
#include <numeric>

#include <nlohmann/json.hpp>

#include "models/error.hpp"
#include "sim/as_run.hpp"
#include "sim/platform.hpp"
#include "sim/run.hpp"
#include "tests/support/models.hpp"

using namespace resist;
using namespace resist::sim;
using resist::test::paper_model;

namespace {

const std::string kPlatforms = std::string(RESIST_SOURCE_DIR) + "/experiments/platforms/";

AsRun authors(double launch = 0, double setup = 0, double per_rank = 0, double per_host = 0) {
  AsRun a;
  a.enabled = true;
  a.granularity = AsRun::Granularity::tensor;
  a.fresh_groups = true;
  a.blocks_via_root = true;
  a.launch_s = launch, a.setup_s = setup, a.setup_per_rank_s = per_rank, a.setup_per_host_s = per_host;
  return a;
}

RoundPlan plan_of(const Round& round) {
  RoundPlan p;
  p.sync = round.sync;
  return p;
}

ScheduleConfig config(Protocol p, int workers) {
  ScheduleConfig c;
  c.protocol = p;
  c.model = paper_model().options;
  c.workers = workers;
  c.local_iters = 2;
  c.rounds = 3;
  return c;
}

std::uint64_t total_bytes(const std::vector<CommOp>& ops) {
  std::uint64_t b = 0;
  for (const auto& op : ops) b += op.bytes;
  return b;
}

}  // namespace

TEST(AsRun, OffLeavesThePlanAsScheduled) {
  const ModelSpec spec = paper_model();
  ScheduleGenerator gen(spec, config(Protocol::resist, 4));
  RoundPlan p = plan_of(gen.round(1));
  apply_as_run(spec, gen.round(1), 4, AsRun{}, p);
  EXPECT_EQ(p.sync.size(), gen.round(1).sync.size());
  EXPECT_TRUE(p.op_delay_s.empty());
}

TEST(AsRun, LocalSgdAsTheAuthorsRanItMakes336CallsAnd44Groups) {
  // REFERENCE.md: 72 all-reduces of the shared layers, then per partitioned
  // block (22) 6 reduces and 6 broadcasts over all ranks, each block's reduce
  // and broadcast in a group of its own.
  const ModelSpec spec = paper_model();
  ScheduleGenerator gen(spec, config(Protocol::local_sgd, 4));
  const Round round = gen.round(1);
  RoundPlan p = plan_of(round);
  const double launch = 1e-5, setup = 0.1, per_rank = 0.01;
  apply_as_run(spec, round, 4, authors(launch, setup, per_rank), p);
  ASSERT_EQ(p.sync.size(), 336u);
  ASSERT_EQ(p.op_delay_s.size(), p.sync.size());
  int allreduce = 0, reduce = 0, broadcast = 0;
  for (const auto& op : p.sync) {
    allreduce += op.kind == OpKind::allreduce, reduce += op.kind == OpKind::reduce;
    broadcast += op.kind == OpKind::broadcast;
    EXPECT_EQ(op.ranks.size(), 4u);
    EXPECT_EQ(op.ranks.front(), 0);
  }
  EXPECT_EQ(allreduce, 72);
  EXPECT_EQ(reduce, 132);
  EXPECT_EQ(broadcast, 132);
  EXPECT_EQ(total_bytes(p.sync), 2 * spec.bytes(spec.partitionable) + spec.bytes(spec.shared));
  const double delay = std::accumulate(p.op_delay_s.begin(), p.op_delay_s.end(), 0.0);
  EXPECT_NEAR(delay, 336 * launch + 44 * (setup + 4 * per_rank), 1e-9);
}

TEST(AsRun, GranularityKeepsEachOpsBytes) {
  const ModelSpec spec = paper_model();
  ScheduleGenerator gen(spec, config(Protocol::resist, 4));
  const Round round = gen.round(1);
  for (auto g : {AsRun::Granularity::bucket, AsRun::Granularity::block, AsRun::Granularity::tensor}) {
    AsRun a;
    a.enabled = true;
    a.granularity = g;
    RoundPlan p = plan_of(round);
    apply_as_run(spec, round, 4, a, p);
    EXPECT_EQ(total_bytes(p.sync), total_bytes(round.sync)) << to_string(g);
    std::size_t expected = 0;
    for (const auto& op : round.sync) {
      if (g == AsRun::Granularity::bucket) expected += 1;
      else if (g == AsRun::Granularity::block) expected += op.blocks.size();
      else
        for (int b : op.blocks) expected += spec.blocks[b].params.size();
    }
    EXPECT_EQ(p.sync.size(), expected) << to_string(g);
  }
}

TEST(AsRun, ResistCreatesTwoGroupsPerPartitionedBlockEveryRound) {
  // REFERENCE.md: 44 group create/destroy cycles per round for ResIST too,
  // also for blocks whose reduce or hand-off the schedule does not need.
  const ModelSpec spec = paper_model();
  for (int workers : {2, 4, 8}) {
    ScheduleGenerator gen(spec, config(Protocol::resist, workers));
    const Round round = gen.round(1);
    RoundPlan p = plan_of(round);
    apply_as_run(spec, round, 4, authors(0, 1.0), p);  // 1 s per group, nothing else: the delay counts groups
    const double delay = std::accumulate(p.op_delay_s.begin(), p.op_delay_s.end(), 0.0);
    EXPECT_DOUBLE_EQ(delay, 44.0) << workers;
  }
}

TEST(AsRun, GroupSetupGrowsWithRanksAndHosts) {
  const AsRun a = authors(0, 0.5, 0.1, 2.0);
  EXPECT_DOUBLE_EQ(group_setup_s(a, {3}, 4), 0.6);
  EXPECT_DOUBLE_EQ(group_setup_s(a, {0, 1, 2, 3}, 4), 0.9);        // one host
  EXPECT_DOUBLE_EQ(group_setup_s(a, {0, 5}, 4), 0.5 + 0.2 + 2.0);  // two hosts
}

TEST(AsRun, OverheadsLengthenTheRunInBothEngines) {
  const ModelSpec spec = paper_model();
  const Platform flat = load_platform(kPlatforms + "flat-10g.json", {});
  RunOptions o;
  o.schedule = config(Protocol::local_sgd, 2);
  o.full = true;
  const double designed = simulate_run(spec, flat, o).wall_clock_s;
  o.as_run = authors(1e-3, 0.05);
  double times[2];
  for (int i = 0; i < 2; ++i) {
    o.engine.kind = i == 0 ? EngineKind::alpha_beta : EngineKind::simgrid;
    times[i] = simulate_run(spec, flat, o).wall_clock_s;
  }
  EXPECT_NEAR(times[0], times[1], 1e-6 * times[1]);
  // 3 rounds, each at least 336 launches and 44 group set-ups on every rank.
  EXPECT_GT(times[0] - designed, 3 * (336 * 1e-3 + 44 * 0.05) * 0.999);
}

TEST(AsRun, JsonIsStrictAndNamesThePath) {
  const AsRun a = as_run_from_json(nlohmann::json::parse(R"({"granularity": "block", "launch_latency": "20us",
      "group_setup": 0.5, "fresh_groups": true})"), "as_run");
  EXPECT_TRUE(a.enabled);
  EXPECT_EQ(a.granularity, AsRun::Granularity::block);
  EXPECT_DOUBLE_EQ(a.launch_s, 20e-6);
  EXPECT_DOUBLE_EQ(a.setup_s, 0.5);
  EXPECT_TRUE(a.fresh_groups);
  EXPECT_FALSE(a.blocks_via_root);
  auto message = [](const char* text) {
    try {
      as_run_from_json(nlohmann::json::parse(text), "as_run");
    } catch (const UserError& e) {
      return std::string(e.what());
    }
    return std::string("(no error)");
  };
  EXPECT_NE(message(R"({"granularity": "layer"})").find("as_run.granularity: unknown value 'layer'"), std::string::npos);
  EXPECT_NE(message(R"({"launch": "1us"})").find("as_run.launch: unknown key"), std::string::npos);
  EXPECT_NE(message(R"({"group_setup": -1})").find("as_run.group_setup: must be a time"), std::string::npos);
  EXPECT_NE(message(R"({"launch_latency": "3 parsecs"})").find("as_run.launch_latency"), std::string::npos);
}
