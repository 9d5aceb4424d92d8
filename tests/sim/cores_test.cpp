// CPU nodes: ranks placed on one node share its cores (platform.hpp's
// cores_per_node / ranks_per_node), and the built-in `localhost` platform.
#include <gtest/gtest.h>

#include <cmath>
#include <set>
#include <thread>

#include <nlohmann/json.hpp>

#include "models/error.hpp"
#include "schedule/protocol.hpp"
#include "sim/cost.hpp"
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

// A full local-SGD run of the paper's model: `rounds` rounds of `ell` iterations on `workers` ranks.
RunResult local_sgd_run(const Platform& p, int workers, int ell, int rounds) {
  RunOptions o;
  o.schedule.protocol = Protocol::local_sgd;
  o.schedule.model = test::paper_model().options;
  o.schedule.workers = workers;
  o.schedule.local_iters = ell;
  o.schedule.rounds = rounds;
  o.full = true;
  return simulate_run(test::paper_model(), p, o);
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
  auto run = [](int cores) { return local_sgd_run(platform_from_json(cpu_node(cores, 4)), 4, 50, 3); };
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

namespace {
// A profile of `spec`: 1 ms forward and 2 ms backward per block, its whole
// iteration that sum, timed on `cores` cores; samples per processes-at-once.
Profile timed_profile(const ModelSpec& spec, int cores, std::vector<IterationSamples> samples) {
  Profile p;
  p.model = spec.options;
  p.batch_size = 32;
  p.threads = 1;
  p.cores = cores;
  for (const auto& b : spec.blocks) p.blocks.push_back({b.name, 0.001, 0.002});
  p.iteration_s = 0.003 * double(spec.blocks.size());
  p.iteration_samples = std::move(samples);
  return p;
}
}  // namespace

// A profile's iteration samples make every iteration's time a draw: a
// round's compute is the mean of its draws, reproducible per (round, rank);
// a rank draws from the samples of as many processes at once as its node
// holds ranks, each divided by the even share of the cores the simulator
// already gives them.
TEST(SimCores, ProfileVariabilityDrawsEveryIteration) {
  const ModelSpec spec = test::mlp({64});
  const auto all = all_indices(int(spec.blocks.size()));
  const double T = 0.003 * double(spec.blocks.size());
  const Platform two = platform_from_json(cpu_node(2, 2));
  const ComputeModel cost(spec, two, 32, 2, timed_profile(spec, 2, {{2, {T, 1.5 * T}}}), 2);
  std::set<double> seen;
  for (int r = 0; r < 40; ++r) {
    const double t = cost.round_s(all, 1, r, 1, nullptr);
    EXPECT_EQ(t, cost.round_s(all, 1, r, 1, nullptr));  // the same draw again
    seen.insert(std::round(t / T * 1000) / 1000);
  }
  EXPECT_EQ(seen, (std::set<double>{1.0, 1.5}));
  // Many iterations in a round: close to the samples' mean.
  double mean = 0;
  for (int r = 0; r < 20; ++r) mean += cost.round_s(all, 0, r, 64, nullptr) / (64 * T) / 20;
  EXPECT_NEAR(mean, 1.25, 0.03);
  // Four ranks on two cores: the 4-process samples, over the 2× share of a
  // core the cores' sharing already gives (2.4 T / 2 T: 1.2).
  const Platform four = platform_from_json(cpu_node(2, 4));
  const Profile both = timed_profile(spec, 2, {{2, {T}}, {4, {2.4 * T}}});
  EXPECT_NEAR(ComputeModel(spec, four, 32, 2, both, 4).round_s(all, 3, 0, 1, nullptr), 1.2 * T, 1e-12);
  EXPECT_NEAR(ComputeModel(spec, four, 32, 2, both, 2).round_s(all, 1, 0, 1, nullptr), T, 1e-12);  // 2 ranks there
  // GPUs (a processor per rank): the 1-process samples; none here, so none.
  auto gpus = cpu_node(2, 4);
  gpus.erase("cores_per_node");
  EXPECT_NEAR(ComputeModel(spec, platform_from_json(gpus), 32, 2, both, 4).round_s(all, 3, 0, 1, nullptr), T, 1e-12);
  // No workers given, or a profile without samples: the profile's time.
  EXPECT_NEAR(ComputeModel(spec, four, 32, 2, both).round_s(all, 3, 0, 1, nullptr), T, 1e-12);
  EXPECT_NEAR(ComputeModel(spec, four, 32, 2, timed_profile(spec, 2, {}), 4).round_s(all, 3, 0, 1, nullptr), T, 1e-12);
}

// The sync entry delay: a rank that has computed waits before its round's
// first op, once per round whatever the number of ops, in both engines;
// with a rise, less after a short compute.
TEST(SimCores, SyncEntryDelayWaitsOncePerRound) {
  auto round_end = [](EngineKind kind, std::vector<double> wait) {
    RoundPlan plan;
    plan.compute_s.assign(2, 0.5);
    plan.backward_fraction.assign(2, 0.5);
    plan.sync.push_back(CommOp(OpKind::allreduce, Payload::shared, {0, 1}, {0}, 4));
    plan.sync.push_back(CommOp(OpKind::allreduce, Payload::shared, {0, 1}, {0}, 4));
    plan.entry_wait_s = std::move(wait);
    EngineOptions o;
    o.kind = kind;
    return run_engine(platform_from_json(cpu_node(2, 2)), 2, {plan}, o).end_s;
  };
  for (EngineKind kind : {EngineKind::simgrid, EngineKind::alpha_beta}) {
    const double without = round_end(kind, {}), with = round_end(kind, {0.01, 0.01});
    EXPECT_NEAR(with - without, 0.01, 1e-6) << to_string(kind);
    EXPECT_NEAR(round_end(kind, {0.0, 0.01}) - without, 0.01, 1e-6) << to_string(kind);  // the peer waits for it
  }
  auto j = cpu_node(2, 2);
  j["sync_entry_delay"] = "4ms";
  const Platform flat = platform_from_json(j);
  EXPECT_DOUBLE_EQ(flat.sync_entry_wait_s(0.001), 0.004);
  j["sync_entry_rise"] = "10ms";
  const Platform rising = platform_from_json(j);
  EXPECT_NEAR(rising.sync_entry_wait_s(0.01), 0.004 * (1 - std::exp(-1.0)), 1e-12);
  EXPECT_NEAR(rising.sync_entry_wait_s(1.0), 0.004, 1e-9);
  EXPECT_EQ(platform_from_json(to_json(rising)).sync_entry_rise_s, 0.01);
  EXPECT_EQ(platform_from_json(cpu_node(2, 2)).sync_entry_wait_s(1.0), 0);
  j["sync_entry_delay"] = "-1ms";
  EXPECT_NE(error_of(j).find("sync_entry_delay"), std::string::npos) << error_of(j);
  // A run: local SGD, 3 rounds of one iteration, every round waits once.
  auto run = [](const Platform& p) { return local_sgd_run(p, 2, 1, 3).wall_clock_s; };
  auto big = cpu_node(2, 2);
  big["sync_entry_delay"] = "50ms";
  EXPECT_NEAR(run(platform_from_json(big)) - run(platform_from_json(cpu_node(2, 2))), 3 * 0.05, 1e-6);
}

// The collective step wait: every step of a collective among more of a
// node's ranks than it has cores waits it (a 4-rank ring on 2 cores: 6
// steps), in both engines; two ranks exchanging on those cores do not, nor
// do ranks on cores of their own; the key reads back and refuses bad values.
TEST(SimCores, CollectiveStepWaitOnlyWhereRanksOutnumberTheCores) {
  auto round_end = [](EngineKind kind, const nlohmann::json& j, std::vector<int> ranks) {
    RoundPlan plan;
    plan.compute_s.assign(4, 0.01);
    plan.backward_fraction.assign(4, 0.5);
    plan.sync.push_back(CommOp(OpKind::allreduce, Payload::shared, ranks, {0}, 4096));
    EngineOptions o;
    o.kind = kind;
    return run_engine(platform_from_json(j), 4, {plan}, o).end_s;
  };
  auto waiting = cpu_node(2, 4);
  waiting["collective_step_wait"] = "2ms";
  const Platform p = platform_from_json(waiting);
  EXPECT_DOUBLE_EQ(p.collective_step_wait_s, 0.002);
  EXPECT_DOUBLE_EQ(p.step_wait_s({0, 1, 2, 3}), 0.002);
  EXPECT_DOUBLE_EQ(p.step_wait_s({0, 1, 2}), 0.002);
  EXPECT_DOUBLE_EQ(p.step_wait_s({1, 3}), 0.0);
  EXPECT_DOUBLE_EQ(platform_from_json(to_json(p)).collective_step_wait_s, 0.002);
  for (EngineKind kind : {EngineKind::simgrid, EngineKind::alpha_beta}) {
    const double ring = round_end(kind, waiting, {0, 1, 2, 3}) - round_end(kind, cpu_node(2, 4), {0, 1, 2, 3});
    EXPECT_NEAR(ring, 6 * 0.002, 1e-6) << to_string(kind);
    EXPECT_NEAR(round_end(kind, waiting, {0, 1}), round_end(kind, cpu_node(2, 4), {0, 1}), 1e-9) << to_string(kind);
  }
  // Four nodes of one rank each on 2 cores: nobody shares.
  auto spread = cpu_node(2, 1);
  spread["nodes"] = 4;
  spread["collective_step_wait"] = "2ms";
  EXPECT_DOUBLE_EQ(platform_from_json(spread).step_wait_s({0, 1, 2, 3}), 0.0);
  auto gpus = waiting;
  gpus.erase("cores_per_node");
  EXPECT_DOUBLE_EQ(platform_from_json(gpus).step_wait_s({0, 1, 2, 3}), 0.0);
  waiting["collective_step_wait"] = "-1ms";
  EXPECT_NE(error_of(waiting).find("collective_step_wait"), std::string::npos) << error_of(waiting);
}
