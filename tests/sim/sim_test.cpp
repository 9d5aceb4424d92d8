// The simulator against closed forms and against the schedule's accounting.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>
#include <optional>
#include <set>

#include <nlohmann/json.hpp>

#include "models/error.hpp"
#include "schedule/accounting.hpp"
#include "schedule/ist.hpp"
#include "schedule/round_setup.hpp"
#include "sim/cost.hpp"
#include "sim/platform.hpp"
#include "sim/run.hpp"
#include "sim/units.hpp"
#include "tests/support/models.hpp"

using namespace resist;
using resist::test::paper_model;
using namespace resist::sim;

namespace {

const std::string kPlatforms = std::string(RESIST_SOURCE_DIR) + "/experiments/platforms/";

Platform flat() { return load_platform(kPlatforms + "flat-10g.json", {}); }


RunOptions options(Protocol p, int workers, int ell, int rounds) {
  RunOptions o;
  o.schedule.protocol = p;
  o.schedule.model = paper_model().options;
  o.schedule.workers = workers;
  o.schedule.local_iters = ell;
  o.schedule.rounds = rounds;
  return o;
}

double rel(double a, double b) { return std::abs(a - b) / std::abs(b); }

// The fidelity tests below check SimGrid itself, not the α–β replay that
// `automatic` would pick on flat-10g (tests/sim/collectives_sim_test.cpp).
EngineOptions simgrid() {
  EngineOptions e;
  e.kind = EngineKind::simgrid;
  return e;
}

// Runs the simulation and checks that every round moves exactly the bytes
// the schedule's accounting says (evaluation gathers included), and that the
// total adds up. Returns the run for further checks.
RunResult expect_moves_accounted_bytes(const ModelSpec& spec, const Platform& p, const RunOptions& o,
                                       const std::string& label) {
  const RunResult r = simulate_run(spec, p, o);
  ScheduleGenerator gen(spec, o.schedule);
  std::uint64_t expected_total = 0;
  EXPECT_EQ(int(r.rows.size()), gen.num_rounds()) << label;
  for (int i = 0; i < gen.num_rounds() && i < int(r.rows.size()); ++i) {
    const auto a = account(spec, gen.header(), gen.round(i));
    EXPECT_EQ(r.rows[i].wire_bytes, a.wire_bytes + a.eval_wire_bytes) << label << " round " << i;
    EXPECT_EQ(r.rows[i].bytes_per_round, a.bytes_per_round) << label << " round " << i;
    expected_total += a.wire_bytes + a.eval_wire_bytes;
  }
  EXPECT_EQ(r.wire_bytes_total, expected_total) << label;
  EXPECT_GT(expected_total, 0u) << label;
  return r;
}

}  // namespace

// ------------------------------------------------------------ fidelity

TEST(SimFidelity, RingAllreduceMatchesAlphaBetaOnFlat10g) {
  const Platform p = flat();
  const double alpha = p.route(0, 1).latency_s, B = p.nic.bandwidth_Bps;
  EXPECT_DOUBLE_EQ(alpha, 100e-6);
  EXPECT_DOUBLE_EQ(B, 1.25e9);
  for (int n : {2, 3, 5, 7, 16}) {
    const std::uint64_t M = 4ull * n * 1000000;  // divisible into n equal chunks
    const auto r = simulate_collective(p, OpKind::allreduce, M, n, simgrid());
    const double expected = 2.0 * (n - 1) * alpha + 2.0 * (n - 1) / n * double(M) / B;
    EXPECT_LT(rel(r.time_s, expected), 0.01) << "n=" << n << " sim " << r.time_s << " model " << expected;
    EXPECT_EQ(r.wire_bytes, 2ull * (n - 1) * M) << n;  // all ranks: 2(n-1)/n·M each
    EXPECT_NEAR(r.busbw_Bps, r.algbw_Bps * 2.0 * (n - 1) / n, 1e-6 * r.busbw_Bps);
  }
}

TEST(SimFidelity, PipelinedBroadcastAndReduceMatchTheirClosedForm) {
  // A chain of n ranks with C equal chunks of s bytes: each hop moves one
  // chunk at a time, so T = (n - 1 + C - 1) · (α + s/B).
  const Platform p = flat();
  const double alpha = p.route(0, 1).latency_s, B = p.nic.bandwidth_Bps;
  EngineOptions eo = simgrid();
  eo.collectives.chunk_bytes = 1 << 20;
  const std::uint64_t M = 16u << 20;
  const int C = 16;
  for (int n : {2, 3, 6}) {
    const double expected = (n - 1 + C - 1) * (alpha + double(eo.collectives.chunk_bytes) / B);
    for (OpKind k : {OpKind::broadcast, OpKind::reduce}) {
      const auto r = simulate_collective(p, k, M, n, eo);
      EXPECT_LT(rel(r.time_s, expected), 0.01) << to_string(k) << " n=" << n << " " << r.time_s << " vs " << expected;
      EXPECT_EQ(r.wire_bytes, (n - 1) * M);
    }
  }
  const auto s = simulate_collective(p, OpKind::send, M, 2, eo);
  EXPECT_LT(rel(s.time_s, alpha + double(M) / B), 0.01);
}

TEST(SimFidelity, FatTreeRouteKeepsAlphaBeta) {
  // One GPU per node, one node per leaf: every ring hop crosses the spine.
  const Platform p = load_platform(kPlatforms + "h100-nvswitch-ib400.json",
                                   {"gpus_per_node=1", "topology.nodes_per_leaf=1"});
  const double alpha = p.route(0, 1).latency_s, B = p.nic.bandwidth_Bps;
  EXPECT_DOUBLE_EQ(alpha, 4e-6);
  const int n = 5;
  const std::uint64_t M = 4ull * n * 1000000;
  const auto r = simulate_collective(p, OpKind::allreduce, M, n, simgrid());
  const double expected = 2.0 * (n - 1) * alpha + 2.0 * (n - 1) / n * double(M) / B;
  EXPECT_LT(rel(r.time_s, expected), 0.01) << r.time_s << " vs " << expected;
}

TEST(SimFidelity, SimulatorMovesExactlyTheSchedulesWireBytes) {
  const ModelSpec spec = paper_model();
  const Platform p = flat();
  for (Protocol proto : {Protocol::data_parallel, Protocol::local_sgd, Protocol::resist}) {
    RunOptions o = options(proto, 5, 3, 4);
    o.schedule.eval_every = 2;
    o.full = true;
    o.engine.kind = EngineKind::simgrid;
    expect_moves_accounted_bytes(spec, p, o, to_string(proto));
  }
}

TEST(SimFidelity, LocalSgdCommunicationPerIterationFallsAsOneOverEll) {
  const ModelSpec spec = paper_model();
  const Platform p = flat();
  std::vector<double> per_iter;
  const std::vector<int> ells = {10, 20, 40};
  for (int ell : ells) {
    RunOptions o = options(Protocol::local_sgd, 4, ell, 0);
    o.schedule.epochs = 1;
    o.schedule.train_size = 400 * 4 * 128;  // 400 iterations per worker: a multiple of every ℓ
    const RunResult r = simulate_run(spec, p, o);
    ASSERT_EQ(r.total_iters, 400);
    per_iter.push_back(r.communication_s / double(r.total_iters));
  }
  for (std::size_t i = 1; i < ells.size(); ++i)
    EXPECT_LT(rel(per_iter[0] / per_iter[i], double(ells[i]) / ells[0]), 0.01);
}

TEST(SimFidelity, ResistRoundComputeFollowsSubModelDepth) {
  const ModelSpec spec = paper_model();
  const Platform p = flat();
  auto round_compute = [&](Protocol proto, int S) {
    RunOptions o = options(proto, S, 10, 2);
    o.schedule.min_depth = 1;
    return simulate_run(spec, p, o).rows[0].compute_s;
  };
  // Analytic: ℓ · batch · 3 · flops_fwd(shared + k partitioned blocks) / FLOP/s.
  const double per_block = 10.0 * 128 * 3 * double(spec.blocks[spec.partitionable[0]].flops_fwd) / p.gpu_flops;
  double shared_flops = 0;
  for (int b : spec.shared) shared_flops += double(spec.blocks[b].flops_fwd);
  const double shared = 10.0 * 128 * 3 * shared_flops / p.gpu_flops;
  for (int S : {2, 4, 8}) {
    const int k = resist_blocks_per_worker(int(spec.partitionable.size()), S, 1);
    EXPECT_LT(rel(round_compute(Protocol::resist, S), shared + k * per_block), 1e-9) << S;
  }
  EXPECT_GT(round_compute(Protocol::resist, 2), round_compute(Protocol::resist, 4));
  EXPECT_GT(round_compute(Protocol::resist, 4), round_compute(Protocol::resist, 8));
  EXPECT_LT(rel(round_compute(Protocol::local_sgd, 4), 10.0 * 128 * 3 * double(spec.flops_fwd()) / p.gpu_flops), 1e-9);
}

namespace {
ModelOptions speech_mlp(std::vector<int> hidden) {
  ModelOptions m;
  m.model = "mlp";
  m.input = 4096;
  m.hidden = std::move(hidden);
  m.classes = 35;
  return m;
}
}  // namespace

TEST(SimIst, RoundComputeIsTheSubnetsFlops) {
  const Platform p = flat();
  for (const auto& hidden : {std::vector<int>{4096}, std::vector<int>{8192, 4096}}) {
    const ModelSpec spec = build_model(speech_mlp(hidden));
    for (int S : {2, 4, 8}) {
      RunOptions o;
      o.schedule.protocol = Protocol::ist;
      o.schedule.model = spec.options;
      o.schedule.workers = S;
      o.schedule.local_iters = 10;
      o.schedule.rounds = 3;
      const RunResult r = simulate_run(spec, p, o);
      // Hidden sizes divide by S: every worker's subnet has hidden sizes H_l / S.
      ModelOptions sub = spec.options;
      for (auto& h : sub.hidden) h /= S;
      const double expected = 10.0 * 128 * 3 * double(build_model(sub).flops_fwd()) / p.gpu_flops;
      for (const auto& row : r.rows) EXPECT_LT(rel(row.compute_s, expected), 1e-9) << S << " round " << row.round;
      // Well below the full model's compute (local SGD).
      EXPECT_LT(r.rows[0].compute_s, 10.0 * 128 * 3 * double(spec.flops_fwd()) / p.gpu_flops / S * 1.01);
    }
  }
}

TEST(SimIst, MovesExactlyTheAccountedBytesInBothSyncVariants) {
  const Platform p = flat();
  const ModelSpec spec = build_model(speech_mlp({512, 256}));
  for (IstSync sync : {IstSync::decentralised, IstSync::parameter_server}) {
    for (bool full : {true, false}) {
      RunOptions o;
      o.schedule.protocol = Protocol::ist;
      o.schedule.model = spec.options;
      o.schedule.workers = 3;  // 512 % 3 != 0: unequal subnets
      o.schedule.local_iters = 2;
      o.schedule.rounds = 5;
      o.schedule.eval_every = 2;
      o.schedule.ist_sync = sync;
      o.full = full;
      const RunResult r = expect_moves_accounted_bytes(spec, p, o, to_string(sync));
      // Workers with a larger subnet take longer: the round's compute is the slowest worker's.
      EXPECT_GT(r.rows[0].compute_s, 0.0);
    }
  }
}

// ------------------------------------------------------------ fast path

TEST(SimFastPath, EqualsTheFullSimulationWithinHalfAPercent) {
  const ModelSpec spec = paper_model();
  const Platform p = load_platform("", {});  // the default platform: 4 GPUs per node
  for (Protocol proto : {Protocol::data_parallel, Protocol::local_sgd, Protocol::resist}) {
    RunOptions o = options(proto, 8, 5, 24);
    o.full = true;
    const RunResult full = simulate_run(spec, p, o);
    o.full = false;
    o.max_simulated_rounds = 0;
    const RunResult every = simulate_run(spec, p, o);
    o.max_simulated_rounds = 6;
    const RunResult sampled = simulate_run(spec, p, o);
    EXPECT_LT(rel(every.wall_clock_s, full.wall_clock_s), 0.005) << to_string(proto);
    EXPECT_LT(rel(sampled.wall_clock_s, full.wall_clock_s), 0.005) << to_string(proto);
    EXPECT_EQ(every.wire_bytes_total, full.wire_bytes_total);
    EXPECT_EQ(sampled.wire_bytes_total, full.wire_bytes_total);
    if (proto != Protocol::resist) EXPECT_LE(every.simulated_rounds, 2);
    else EXPECT_EQ(sampled.simulated_rounds, 6);
  }
}

TEST(SimFastPath, OverlapHidesPartOfTheGradientAllreduce) {
  const ModelSpec spec = paper_model();
  const Platform p = flat();
  RunOptions o = options(Protocol::data_parallel, 4, 1, 3);
  const RunResult plain = simulate_run(spec, p, o);
  o.engine.overlap = true;
  const RunResult overlapped = simulate_run(spec, p, o);
  EXPECT_LT(overlapped.wall_clock_s, plain.wall_clock_s);
  EXPECT_GE(overlapped.wall_clock_s, overlapped.compute_s);
  EXPECT_LT(overlapped.exposed_communication_s, overlapped.communication_s);
  EXPECT_EQ(overlapped.wire_bytes_total, plain.wire_bytes_total);
}

TEST(SimFastPath, StragglersSlowRoundsDownReproducibly) {
  const ModelSpec spec = paper_model();
  const Platform calm = flat();
  const Platform noisy = load_platform(kPlatforms + "flat-10g.json",
                                       {"straggler.probability=0.3", "straggler.slowdown=2"});
  RunOptions o = options(Protocol::local_sgd, 4, 5, 10);
  const double a = simulate_run(spec, noisy, o).wall_clock_s;
  EXPECT_GT(a, simulate_run(spec, calm, o).wall_clock_s);
  EXPECT_EQ(a, simulate_run(spec, noisy, o).wall_clock_s);
}

// ------------------------------------------------------------ platforms

TEST(SimPlatform, UnitsParse) {
  EXPECT_DOUBLE_EQ(parse_quantity("10Gbps", Unit::bandwidth, "x"), 1.25e9);
  EXPECT_DOUBLE_EQ(parse_quantity("1.25GBps", Unit::bandwidth, "x"), 1.25e9);
  EXPECT_DOUBLE_EQ(parse_quantity("50us", Unit::time, "x"), 50e-6);
  EXPECT_DOUBLE_EQ(parse_quantity("15.7Tf", Unit::flops, "x"), 15.7e12);
  EXPECT_EQ(parse_bytes("4MiB", "x"), 4u << 20);
  try {
    parse_quantity("10Gbs", Unit::bandwidth, "nic.bandwidth");
    FAIL();
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("nic.bandwidth: unknown unit 'Gbs'"), std::string::npos) << e.what();
  }
}

TEST(SimPlatform, DefaultIsEmbeddedAndShipped) {
  const Platform embedded = load_platform("", {});
  const Platform shipped = load_platform(kPlatforms + "p3-8xlarge.json", {});
  EXPECT_EQ(to_json(embedded), to_json(shipped));
  EXPECT_EQ(embedded.gpus_per_node, 4);
  EXPECT_DOUBLE_EQ(embedded.nic.bandwidth_Bps, 1.25e9);
  EXPECT_EQ(embedded.network.model, "CM02");
  for (const char* f : {"flat-10g.json", "p3-2xlarge.json", "h100-nvswitch-ib400.json"})
    EXPECT_NO_THROW(load_platform(kPlatforms + f, {})) << f;
  EXPECT_EQ(flat().gpus(), 1024);
}

TEST(SimPlatform, ErrorsNameTheJsonPathAndTheRule) {
  auto message = [](const std::string& edit) {
    nlohmann::json j = nlohmann::json::parse(default_platform_json());
    j.merge_patch(nlohmann::json::parse(edit));
    try {
      platform_from_json(j);
    } catch (const UserError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_EQ(message(R"({"nic": {"bandwidth": 0}})"), "nic.bandwidth: must be > 0 (got 0)");
  EXPECT_NE(message(R"({"intra": {"latency": "5 parsecs"}})").find("intra.latency"), std::string::npos);
  EXPECT_NE(message(R"({"topology": {"kind": "ring"}})").find("topology.kind: unknown value 'ring'"), std::string::npos);
  EXPECT_NE(message(R"({"gpu": {"flopz": 1}})").find("gpu.flopz: unknown key"), std::string::npos);
  EXPECT_NE(message(R"({"speed_factors": [1, 2]})").find("speed_factors: must be empty or have one entry per GPU"),
            std::string::npos);
}

TEST(SimPlatform, OverridesChangeFieldsAndRejectUnknownOnes) {
  const Platform p = load_platform("", {"nic.bandwidth=1Gbps", "nodes=2", "network.model=LV08"});
  EXPECT_DOUBLE_EQ(p.nic.bandwidth_Bps, 1.25e8);
  EXPECT_EQ(p.nodes, 2);
  EXPECT_EQ(p.network.model, "LV08");
  EXPECT_THROW(load_platform("", {"nic.bandwith=1Gbps"}), UserError);
  EXPECT_THROW(load_platform("", {"nic.bandwidth=1Gbs"}), UserError);
  EXPECT_THROW(check_ranks(p, 9, "--workers"), UserError);
  EXPECT_NO_THROW(check_ranks(p, 8, "--workers"));
}

TEST(SimPlatform, ProfileReplacesTheAnalyticCosts) {
  const ModelSpec spec = paper_model();
  const Platform p = flat();
  Profile prof;
  prof.model = spec.options;
  prof.batch_size = 128;
  for (const auto& b : spec.blocks) prof.blocks.push_back({b.name, 0.001, 0.002});
  prof.optimizer_step_s_per_param = 0;
  prof.iteration_overhead_s = 0.01;
  const ComputeModel cost(spec, p, 128, 2, prof);
  std::vector<int> all(spec.blocks.size());
  for (std::size_t i = 0; i < all.size(); ++i) all[i] = int(i);
  EXPECT_NEAR(cost.iteration_s(all, 0), 0.003 * double(all.size()) + 0.01, 1e-12);
  prof.blocks.pop_back();
  EXPECT_THROW(ComputeModel(spec, p, 128, 2, prof), UserError);
}

namespace {
Profile flat_profile(const ModelSpec& spec, int batch, double rebuild_s, double reload_s) {
  Profile prof;
  prof.model = spec.options;
  prof.batch_size = batch;
  for (const auto& b : spec.blocks) prof.blocks.push_back({b.name, 0.001, 0.002});
  prof.rebuild_s = rebuild_s;
  prof.reload_s = reload_s;
  return prof;
}

// An MLP 784-256-256-10, and an IST run of it (ℓ = 2) traced in full.
ModelSpec ist_mlp() { return test::mlp({256, 256}); }

RunOptions ist_run(const ModelSpec& spec, int workers, int rounds) {
  RunOptions o = options(Protocol::ist, workers, 2, rounds);
  o.schedule.model = spec.options;
  o.full = true;
  o.timeline = true;
  return o;
}

// Per worker and round: the predicted round set-up ("rebuild" events).
std::map<std::pair<int, int>, double> setups(const Timeline& t) {
  std::map<std::pair<int, int>, double> out;
  for (const auto& e : t.events)
    if (e.kind == "rebuild") out[{e.round, e.worker}] += e.end_s - e.start_s;
  return out;
}

// The run of `o` predicted without set-up costs and with a profile's
// rebuild of 0.2 s and reload of 0.05 s (whole model), both with timelines.
std::pair<RunResult, RunResult> without_and_with_setup(const ModelSpec& spec, RunOptions o) {
  o.full = true;
  o.timeline = true;
  o.profile = flat_profile(spec, 128, 0, 0);
  RunResult without = simulate_run(spec, flat(), o);
  o.profile = flat_profile(spec, 128, 0.2, 0.05);
  return {std::move(without), simulate_run(spec, flat(), o)};
}
}  // namespace

// A profile's per-round costs are charged as the schedule's round set-up says
// (schedule/round_setup.hpp): the rebuild by the share of the parameters the
// worker trains, the reload by the share of the blocks it copies in.
TEST(SimPlatform, ProfileRoundSetupIsInThePredictedRounds) {
  const Platform p = flat();
  const ModelSpec spec = paper_model();
  std::vector<int> all(spec.blocks.size());
  for (std::size_t i = 0; i < all.size(); ++i) all[i] = int(i);
  const ComputeModel cost(spec, p, 128, 2, flat_profile(spec, 128, 0.2, 0.05));
  const double share0 = double(spec.blocks[0].param_count) / double(spec.param_count());
  EXPECT_NEAR(cost.round_setup_s(all, {false, all}, 0), 0.05, 1e-12);
  EXPECT_NEAR(cost.round_setup_s(all, {true, all}, 0), 0.25, 1e-12);
  EXPECT_NEAR(cost.round_setup_s(all, {true, {}}, 0), 0.2, 1e-12);
  EXPECT_NEAR(cost.round_setup_s(all, {false, {0}}, 0), 0.05 * share0, 1e-12);
  EXPECT_NEAR(cost.round_setup_s({0}, {true, {0}}, 0), 0.25 * share0, 1e-12);
  EXPECT_EQ(cost.round_setup_s(all, {false, {}}, 0), 0.0);
  // A network built anew also pays its first iteration's extra, by the
  // same share as the rebuild; a round without a rebuild does not.
  Profile first = flat_profile(spec, 128, 0.2, 0.05);
  first.first_iteration_s = 0.03;
  const ComputeModel with_first(spec, p, 128, 2, first);
  EXPECT_NEAR(with_first.round_setup_s(all, {true, {}}, 0), 0.23, 1e-12);
  EXPECT_NEAR(with_first.round_setup_s({0}, {true, {0}}, 0), (0.23 + 0.05) * share0, 1e-12);
  EXPECT_NEAR(with_first.round_setup_s(all, {false, all}, 0), 0.05, 1e-12);
}

// Data-parallel: one build in round 0 (seeded weights, nothing copied), then
// nothing: its ops are per-iteration gradient all-reduces.
TEST(SimPlatform, DataParallelChargesOnlyTheFirstBuild) {
  const ModelSpec spec = paper_model();
  const auto [without, with] = without_and_with_setup(spec, options(Protocol::data_parallel, 4, 1, 5));
  EXPECT_NEAR(with.wall_clock_s - without.wall_clock_s, 0.2, 1e-6);
  const auto s = setups(with.timeline);
  EXPECT_EQ(s.size(), 4u);  // round 0's, one per worker
  for (const auto& [key, v] : s) {
    EXPECT_EQ(key.first, 0);
    EXPECT_NEAR(v, 0.2, 1e-9);
  }
}

// Local SGD: one build, then every round the reload of every block (its
// all-reduce replaced them all), never a rebuild.
TEST(SimPlatform, LocalSgdChargesTheReloadOfEveryBlock) {
  const ModelSpec spec = paper_model();
  const auto [without, with] = without_and_with_setup(spec, options(Protocol::local_sgd, 4, 2, 5));
  EXPECT_NEAR(with.wall_clock_s - without.wall_clock_s, 0.2 + 4 * 0.05, 1e-6);  // one build, four reloads
  const auto local = setups(with.timeline);
  EXPECT_EQ(local.size(), 20u);
  EXPECT_NEAR(local.at({0, 3}), 0.2, 1e-9);
  for (int r = 1; r < 5; ++r) EXPECT_NEAR(local.at({r, 3}), 0.05, 1e-9) << r;
}

// ResIST (with and without warm-up): each (round, worker) is charged what
// round_setup() decides, rebuilds whenever the block set changes.
TEST(SimPlatform, ResistChargesTheRebuildWhenTheBlocksChange) {
  const Platform p = flat();
  const ModelSpec spec = paper_model();
  const ComputeModel cost(spec, p, 128, 2, flat_profile(spec, 128, 0.2, 0.05));
  for (int warmup : {0, 1}) {
    RunOptions o = options(Protocol::resist, 4, 2, 0);
    o.schedule.epochs = 3;
    o.schedule.train_size = 4 * 128 * 6;  // 3 rounds per epoch
    o.schedule.warmup_epochs = warmup;
    o.full = true;
    o.timeline = true;
    o.profile = flat_profile(spec, 128, 0.2, 0.05);
    const RunResult resist = simulate_run(spec, p, o);
    ScheduleGenerator gen(spec, o.schedule);
    const auto s = setups(resist.timeline);
    int rebuilt = 0;
    std::optional<Round> prev;
    for (int r = 0; r < gen.num_rounds(); ++r) {
      const Round round = gen.round(r);
      for (int w = 0; w < 4; ++w) {
        const auto blocks = trained_blocks(gen.header(), round, w);
        const RoundSetup setup = round_setup(gen.header(), prev ? &*prev : nullptr, round, w);
        rebuilt += setup.rebuild;
        auto it = s.find({r, w});
        const double charged = it == s.end() ? 0.0 : it->second;
        EXPECT_NEAR(charged, cost.round_setup_s(blocks, setup, w), 1e-9) << "round " << r << " worker " << w;
        if (r > 0 && r != gen.warmup_rounds()) continue;
        EXPECT_TRUE(setup.rebuild);  // the first round and the first ResIST round after the warm-up
      }
      prev = round;
    }
    EXPECT_GT(rebuilt, 4 * 4) << "warmup " << warmup;  // ResIST's partitions change between rounds
  }
}

// IST: a new subnet every round: its rebuild and the reload of all its
// slices, by the subnet's share of the parameters.
TEST(SimPlatform, IstChargesRebuildAndReloadEveryRound) {
  const Platform p = flat();
  const ModelSpec spec = ist_mlp();
  RunOptions o = ist_run(spec, 4, 3);
  o.profile = flat_profile(spec, 128, 0.2, 0.05);
  const RunResult ist = simulate_run(spec, p, o);
  const auto s = setups(ist.timeline);
  ASSERT_EQ(s.size(), 12u);
  const ComputeModel cost(spec, p, 128, 2, flat_profile(spec, 128, 0.2, 0.05));
  const ScheduleGenerator gen(spec, o.schedule);
  for (int r = 0; r < 3; ++r) {
    const Round round = gen.round(r);
    const IstPartition part = gen.ist()->partition(r);
    for (int w = 0; w < 4; ++w) {
      const ModelSpec sub = build_model(gen.ist()->subnet_options(part, w));
      std::vector<int> blocks = trained_blocks(gen.header(), round, w);
      std::sort(blocks.begin(), blocks.end());
      EXPECT_NEAR(s.at({r, w}), cost.round_setup_s(blocks, {true, blocks}, w, &sub), 1e-9) << r << " " << w;
      EXPECT_GT(s.at({r, w}), 0.25 * 0.1);  // a good part of the model, not all of it
      EXPECT_LT(s.at({r, w}), 0.25 * 0.5);
    }
  }
}

// IST with a profile that timed slice packing: the reload is the subnet's
// bytes gathered and scattered by element index at that per-byte cost (what
// SliceStore does), not the contiguous copy `reload_s` times.
TEST(SimPlatform, IstChargesItsSlicesAtTheSlicePackingCost) {
  const Platform p = flat();
  const ModelSpec spec = ist_mlp();
  RunOptions o = ist_run(spec, 2, 2);
  o.profile = flat_profile(spec, 128, 0, 1000);  // a reload_s this large would dominate if it were used
  o.profile->ist_pack_s_per_byte = 1e-6;
  const auto s = setups(simulate_run(spec, p, o).timeline);
  const ScheduleGenerator gen(spec, o.schedule);
  ASSERT_EQ(s.size(), 4u);
  for (int r = 0; r < 2; ++r)
    for (int w = 0; w < 2; ++w) {
      const ModelSpec sub = build_model(gen.ist()->subnet_options(gen.ist()->partition(r), w));
      EXPECT_NEAR(s.at({r, w}), 4.0 * double(sub.param_count()) * 1e-6, 1e-9) << r << " " << w;
    }
}

// A profile's packing cost delays every op by its payload: a local SGD round
// takes that much longer (its ops run one after the other on every rank).
TEST(SimPlatform, ProfilePackingDelaysEveryOpByItsPayload) {
  const Platform p = flat();
  const ModelSpec spec = paper_model();
  RunOptions o = options(Protocol::local_sgd, 4, 2, 4);
  o.profile = flat_profile(spec, 128, 0, 0);
  const RunResult without = simulate_run(spec, p, o);
  o.profile->pack_s_per_byte = 1e-9;
  o.profile->ist_pack_s_per_byte = 1;  // not IST: unused
  const RunResult with = simulate_run(spec, p, o);
  ScheduleGenerator gen(spec, o.schedule);
  double payload = 0;
  for (const auto& op : gen.round(1).sync) payload += double(op.bytes);
  EXPECT_GT(payload, 0);
  EXPECT_NEAR(with.rows[1].duration_s - without.rows[1].duration_s, 1e-9 * payload, 1e-9);
}

// ------------------------------------------------------------ layer-parallel

namespace {
RunOptions lp_options(int stages, int replicas, int rounds) {
  RunOptions o;
  o.schedule.protocol = Protocol::layer_parallel;
  o.schedule.model = resist::test::resnet("preact-resnet18", "basic", "cifar10", 32).options;
  o.schedule.stages = stages;
  o.schedule.replicas = replicas;
  o.schedule.workers = stages * replicas;
  o.schedule.local_iters = 3;
  o.schedule.rounds = rounds;
  return o;
}
}  // namespace

// Activation sends every iteration, replica averaging every ℓ, gathers at
// rank 0: the simulator moves exactly what the accounting counts.
TEST(SimLayerParallel, MovesExactlyTheAccountedBytes) {
  const Platform p = flat();
  for (auto [k, r] : {std::pair{4, 1}, std::pair{2, 2}}) {
    RunOptions o = lp_options(k, r, 7);
    o.schedule.eval_every = 3;
    o.full = true;
    const ModelSpec spec = build_model(o.schedule.model);
    expect_moves_accounted_bytes(spec, p, o, "K=" + std::to_string(k) + " R=" + std::to_string(r));
  }
}

// A round (one iteration) computes as long as the slowest stage: its blocks
// plus its auxiliary head, forward and backward, all stages at once.
TEST(SimLayerParallel, RoundComputeIsTheSlowestStagePlusItsHead) {
  const Platform p = flat();
  for (int k : {2, 4, 8}) {
    const RunOptions o = lp_options(k, 1, 2);
    const ModelSpec spec = build_model(o.schedule.model);
    double slowest = 0;
    for (const auto& st : layer_parallel_stages(spec, k, 16))
      slowest = std::max(slowest, 128.0 * double(stage_train_flops(spec, st, 16)) / p.gpu_flops);
    const RunResult r = simulate_run(spec, p, o);
    EXPECT_LT(rel(r.rows[0].compute_s, slowest), 1e-9) << k;
    EXPECT_LT(r.rows[0].compute_s, 128.0 * 3 * double(spec.flops_fwd()) / p.gpu_flops) << k;  // < serial
  }
}

TEST(SimPlatform, ProfileIsBoundToTheModelAndBatchItMeasured) {
  const ModelSpec spec = paper_model();
  Profile prof;
  prof.model = spec.options;
  prof.batch_size = 128;
  for (const auto& b : spec.blocks) prof.blocks.push_back({b.name, 0.001, 0.002});
  EXPECT_NO_THROW(ComputeModel(spec, flat(), 128, 2, prof));
  const auto message = [&](const Profile& p, int batch) {
    try {
      ComputeModel(spec, flat(), batch, 2, p);
    } catch (const UserError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message(prof, 64).find("measured at batch 128, but this run uses batch 64"), std::string::npos);
  Profile narrow = prof;
  narrow.model.base_width = 32;  // same block names, other network
  EXPECT_NE(message(narrow, 128).find("measured on model preact-resnet101-basic-w32-cifar100"), std::string::npos);
  Profile other_data = prof;
  other_data.model.dataset = "cifar10";
  EXPECT_NE(message(other_data, 128).find("cifar10,"), std::string::npos);
}

TEST(SimPlatform, AMissingRequiredKeyIsOneLineNamingIt) {
  auto message = [](const std::string& drop, const std::string& sub = "") {
    nlohmann::json j = nlohmann::json::parse(default_platform_json());
    if (sub.empty()) j.erase(drop);
    else j[drop].erase(sub);
    try {
      platform_from_json(j);
    } catch (const UserError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  // Nothing that shapes the network is guessed.
  EXPECT_EQ(message("intra").rfind("intra: missing (required", 0), 0u) << message("intra");
  EXPECT_EQ(message("nic").rfind("nic: missing (required", 0), 0u) << message("nic");
  EXPECT_EQ(message("nic", "latency").rfind("nic.latency: missing", 0), 0u) << message("nic", "latency");
  EXPECT_EQ(message("gpu", "flops").rfind("gpu.flops: missing", 0), 0u) << message("gpu", "flops");
  EXPECT_EQ(message("gpus_per_node").rfind("gpus_per_node: missing", 0), 0u);
  for (const char* key : {"intra", "nic", "gpu", "nodes"}) EXPECT_EQ(message(key).find('\n'), std::string::npos);
  // Optional sections take their documented defaults.
  EXPECT_EQ(message("topology"), "no error");
  EXPECT_EQ(message("network"), "no error");
  // With one GPU per node there is no intra-node link to describe.
  const Platform single = flat();
  EXPECT_EQ(single.gpus_per_node, 1);
  EXPECT_NE(std::string(platform_keys_help()).find("intra"), std::string::npos);
}

TEST(SimPlatform, MultiRailNodesGiveEveryGpuItsOwnNic) {
  // Node 0's four GPUs each send M bytes to their peer on node 1 at once: one
  // shared NIC serialises them (~4M/B), a NIC per GPU runs them side by side (~M/B).
  auto time = [](int rails) {
    const Platform p = load_platform("", {"nic.rails=" + std::to_string(rails), "nodes=2"});
    RoundPlan plan;
    plan.compute_s.assign(8, 0.0);
    plan.backward_fraction.assign(8, 0.0);
    const std::uint64_t M = 100u << 20;
    for (int g = 0; g < 4; ++g) plan.sync.push_back(CommOp(OpKind::send, Payload::shared, {g, 4 + g}, {}, M));
    return run_engine(p, 8, {plan}, {}).end_s;
  };
  const Platform one = load_platform("", {});
  const double B = one.nic.bandwidth_Bps, M = double(100u << 20);
  const double shared = time(1), railed = time(4), two = time(2);
  EXPECT_LT(rel(shared, 4 * M / B), 0.02) << shared;
  EXPECT_LT(rel(railed, M / B), 0.02) << railed;
  EXPECT_LT(rel(two, 2 * M / B), 0.02) << two;
  // A rail bypasses the GPU's intra-node link; inside a node nothing changes.
  const Platform r4 = load_platform("", {"nic.rails=4"});
  EXPECT_DOUBLE_EQ(r4.route(0, 4).latency_s, 2 * r4.nic.latency_s);
  EXPECT_DOUBLE_EQ(r4.route(0, 1).latency_s, one.route(0, 1).latency_s);
  EXPECT_NO_THROW(load_platform(kPlatforms + "a100-dgx-hdr200.json", {}));
  EXPECT_THROW(load_platform("", {"nic.rails=5"}), UserError);  // more rails than GPUs
}

// ------------------------------------------------------------ timelines

TEST(SimTimeline, NamesTheReceivingSideRecvAndGroupsRanksByNode) {
  const ModelSpec spec = paper_model();
  const Platform p = load_platform("", {});  // 4 GPUs per node
  RunOptions o = options(Protocol::resist, 8, 2, 3);
  o.timeline = true;
  const RunResult r = simulate_run(spec, p, o);
  ScheduleGenerator gen(spec, o.schedule);
  int recvs = 0;
  for (const auto& e : r.timeline.events) {
    if (!e.is_comm()) continue;
    const Round round = gen.round(e.round);
    const CommOp& op = round.sync[std::size_t(e.op)];
    const bool receiver = op.kind == OpKind::send && op.ranks[1] == e.worker;
    EXPECT_EQ(e.kind, receiver ? std::string("recv") : std::string(to_string(op.kind)));
    EXPECT_EQ(e.bytes_received, wire_received(op, 8)[std::size_t(e.worker)]);
    if (receiver) {
      ++recvs;
      EXPECT_EQ(e.bytes, 0u);
      EXPECT_EQ(e.bytes_received, op.bytes);
    }
  }
  EXPECT_GT(recvs, 0);
  // One Perfetto process per node, its ranks as named threads.
  const auto j = to_json(r.timeline);
  std::set<std::string> processes;
  for (const auto& e : j["traceEvents"]) {
    if (e["ph"] == "M" && e["name"] == "process_name") processes.insert(e["args"]["name"].get<std::string>());
    if (e["ph"] == "X") {
      EXPECT_EQ(e["pid"].get<int>(), e["tid"].get<int>() / 4);
    }
  }
  EXPECT_EQ(processes, (std::set<std::string>{"node 0 (p3-8xlarge)", "node 1 (p3-8xlarge)"}));
}

TEST(SimTimeline, ALongRunKeepsItsFirstAndLastRoundsAndASample) {
  const ModelSpec spec = paper_model();
  RunOptions o = options(Protocol::data_parallel, 2, 1, 1000);
  o.timeline = true;
  const RunResult r = simulate_run(spec, flat(), o);
  std::set<int> rounds;
  for (const auto& e : r.timeline.events) rounds.insert(e.round);
  EXPECT_EQ(int(rounds.size()), r.timeline.traced_rounds);
  EXPECT_LE(rounds.size(), 70u);
  EXPECT_TRUE(rounds.count(0) && rounds.count(7) && rounds.count(992) && rounds.count(999));
  EXPECT_EQ(r.timeline.rounds, 1000);
  o.trace.all = true;
  EXPECT_EQ(simulate_run(spec, flat(), o).timeline.traced_rounds, 1000);
}
