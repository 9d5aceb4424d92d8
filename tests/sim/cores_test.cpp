// CPU nodes: ranks placed on one node share its cores (platform.hpp's
// cores_per_node / ranks_per_node), and the built-in `localhost` platform.
#include <gtest/gtest.h>

#include <cmath>
#include <thread>

#include <nlohmann/json.hpp>

#include "models/error.hpp"
#include "sim/engine.hpp"
#include "sim/platform.hpp"
#include "sim/run.hpp"
#include "tests/support/models.hpp"

using namespace resist;
using namespace resist::sim;

namespace {

nlohmann::json cpu_node(int cores, int ranks) {
  return {{"format", "resist-platform"}, {"version", 1}, {"name", "cpu"}, {"nodes", 1},
          {"ranks_per_node", ranks},     {"cores_per_node", cores},
          {"gpu", {{"flops", "1Gf"}}},   {"intra", {{"bandwidth", "1GBps"}, {"latency", "10us"}}},
          {"nic", {{"bandwidth", "1GBps"}, {"latency", "10us"}}}};
}

// Every rank computes `seconds` at once, no communication: the round's end.
double compute_round(const Platform& p, int ranks, double seconds) {
  RoundPlan plan;
  plan.compute_s.assign(std::size_t(ranks), seconds);
  plan.backward_fraction.assign(std::size_t(ranks), 0.5);
  EngineOptions o;
  o.kind = EngineKind::automatic;
  return run_engine(p, ranks, {plan}, o).end_s;
}

std::string error_of(const nlohmann::json& j) {
  try {
    platform_from_json(j);
  } catch (const UserError& e) {
    return e.what();
  }
  return "no error";
}

}  // namespace

TEST(SimCores, RanksOnOneNodeShareItsCores) {
  const double t = 0.5;
  // 4 ranks on 2 cores take twice as long as on 4 cores; on 4 cores as long as alone.
  const double on4 = compute_round(platform_from_json(cpu_node(4, 4)), 4, t);
  const double on2 = compute_round(platform_from_json(cpu_node(2, 4)), 4, t);
  EXPECT_NEAR(on4, t, 1e-9);
  EXPECT_NEAR(on2, 2 * t, 1e-9);
  // 3 ranks on 2 cores: each gets 2/3 of a core.
  EXPECT_NEAR(compute_round(platform_from_json(cpu_node(2, 4)), 3, t), 1.5 * t, 1e-9);
  // Two nodes of 2 cores, 2 ranks each: no sharing across nodes.
  auto two_nodes = cpu_node(2, 2);
  two_nodes["nodes"] = 2;
  EXPECT_NEAR(compute_round(platform_from_json(two_nodes), 4, t), t, 1e-9);
  // Without cores_per_node every rank has its own processor (GPUs): unchanged.
  auto gpus = cpu_node(2, 4);
  gpus.erase("cores_per_node");
  EXPECT_NEAR(compute_round(platform_from_json(gpus), 4, t), t, 1e-9);
}

// An op's host work before its part (packing, launches: RoundPlan::op_delay_s)
// runs on the node's cores like compute: two ranks packing at once on one
// core take twice as long as on two.
TEST(SimCores, OpHostWorkSharesTheCores) {
  auto round_end = [](int cores) {
    RoundPlan plan;
    plan.compute_s.assign(2, 0.0);
    plan.backward_fraction.assign(2, 0.5);
    plan.sync.push_back(CommOp(OpKind::allreduce, Payload::shared, {0, 1}, {0}, 4));
    plan.op_delay_s = {0.5};
    EngineOptions o;
    o.kind = EngineKind::simgrid;
    return run_engine(platform_from_json(cpu_node(cores, 2)), 2, {plan}, o).end_s;
  };
  const double two = round_end(2), one = round_end(1);
  EXPECT_GT(two, 0.5);
  EXPECT_LT(two, 0.51);  // 4 bytes over a 1 GB/s, 10 µs link: little more than the packing
  EXPECT_NEAR(one - two, 0.5, 1e-3);
}

TEST(SimCores, SharedCoresSlowAWholeRunDown) {
  // A local-SGD run of 4 ranks with a compute-bound round: on 2 shared cores
  // the rounds take about twice as long as on 4.
  auto run = [](int cores) {
    RunOptions o;
    o.schedule.protocol = Protocol::local_sgd;
    o.schedule.model = test::paper_model().options;
    o.schedule.workers = 4;
    o.schedule.local_iters = 50;
    o.schedule.rounds = 3;
    o.full = true;
    return simulate_run(test::paper_model(), platform_from_json(cpu_node(cores, 4)), o);
  };
  const RunResult a = run(4), b = run(2);
  EXPECT_GT(b.compute_s, 1.9 * a.compute_s);
  EXPECT_LT(b.compute_s, 2.1 * a.compute_s);
}

TEST(SimCores, PlacementFieldsAreValidated) {
  EXPECT_EQ(platform_from_json(cpu_node(2, 4)).gpus_per_node, 4);
  EXPECT_EQ(platform_from_json(cpu_node(2, 4)).cores_per_node, 2);
  auto both = cpu_node(2, 4);
  both["gpus_per_node"] = 4;
  EXPECT_NE(error_of(both).find("ranks_per_node: give either gpus_per_node or ranks_per_node"), std::string::npos)
      << error_of(both);
  EXPECT_NE(error_of(cpu_node(-1, 4)).find("cores_per_node"), std::string::npos) << error_of(cpu_node(-1, 4));
  EXPECT_NE(error_of(cpu_node(2, 0)).find("ranks_per_node"), std::string::npos) << error_of(cpu_node(2, 0));
  auto text = cpu_node(2, 4);
  text["cores_per_node"] = "two";
  EXPECT_NE(error_of(text).find("cores_per_node"), std::string::npos) << error_of(text);
  auto neither = cpu_node(2, 4);
  neither.erase("ranks_per_node");
  EXPECT_NE(error_of(neither).find("gpus_per_node: missing"), std::string::npos) << error_of(neither);
  auto rails = cpu_node(2, 4);
  rails["nic"]["rails"] = 2;
  EXPECT_NE(error_of(rails).find("nic.rails: must be 1 on CPU nodes"), std::string::npos) << error_of(rails);
  // The canonical form carries the field, so --set reaches it.
  EXPECT_EQ(load_platform("", {"cores_per_node=3"}).cores_per_node, 3);
  EXPECT_EQ(load_platform("", {}).cores_per_node, 0);
  EXPECT_THROW(load_platform("", {"cores_per_node=-2"}), UserError);
}

TEST(SimCores, LocalhostHasThisMachinesCores) {
  const Platform p = load_platform("localhost", {});
  EXPECT_EQ(p.name, "localhost");
  EXPECT_EQ(p.nodes, 1);
  EXPECT_EQ(p.cores_per_node, int(std::max(1u, std::thread::hardware_concurrency())));
  EXPECT_GE(p.gpus(), 8);
  EXPECT_NO_THROW(check_ranks(p, 4, "--workers"));
  EXPECT_EQ(load_platform("localhost", {"cores_per_node=1"}).cores_per_node, 1);
}
