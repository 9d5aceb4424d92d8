// Every collective algorithm in the simulator: SimGrid's time equals the
// algorithm's α–β closed form on flat-10g, the bytes moved are the
// accounting's, and the α–β replay (sim/replay.hpp) gives SimGrid's times,
// for single collectives and for whole runs.
#include <gtest/gtest.h>

#include <cmath>

#include "schedule/accounting.hpp"
#include "schedule/collectives.hpp"
#include "sim/platform.hpp"
#include "sim/replay.hpp"
#include "sim/run.hpp"
#include "tests/support/models.hpp"

using namespace resist;
using namespace resist::sim;

namespace {

const std::string kFlat = std::string(RESIST_SOURCE_DIR) + "/experiments/platforms/flat-10g.json";

double rel(double a, double b) { return std::abs(a - b) / std::abs(b); }

EngineOptions engine(EngineKind k, std::uint64_t chunk_bytes = 4u << 20) {
  EngineOptions e;
  e.kind = k;
  e.collectives.chunk_bytes = chunk_bytes;
  return e;
}

int ceil_log2(int n) {
  int l = 0;
  while ((1 << l) < n) ++l;
  return l;
}

// The double binary tree's time in messages of M/(2C) (collectives.hpp):
// 4(C-1) + 2R - 2δ, R = 2⌊log2 n⌋ - 1 (+1 when n + 1 is a power of two),
// δ = 1 for one chunk when the last heap level (n ≥ 8) lies under the root's
// left child only; n = 2: 2C.
int double_tree_messages(int n, int C) {
  if (n == 2) return 2 * C;
  const int k = ceil_log2(n + 1) - 1, last_level = n - ((1 << k) - 1);
  const int R = 2 * k - 1 + (last_level == (1 << k) ? 1 : 0);
  const bool left_only = k >= 3 && last_level < (1 << (k - 1));
  return 4 * (C - 1) + 2 * R - (C == 1 && left_only ? 2 : 0);
}

// The closed forms, written out independently of schedule/collectives.cpp.
// M divides evenly into n ring chunks, p halving chunks and C chain chunks
// (the double tree's halves into C/2 chunks: C is even).
double closed_form(Collective c, Algorithm a, int n, double M, double alpha, double B, int C) {
  const int L = ceil_log2(n);
  switch (c) {
    case Collective::allreduce:
      if (a == Algorithm::binomial) return 2.0 * L * (alpha + M / B);
      if (a == Algorithm::tree) return double_tree_messages(n, C / 2) * (alpha + M / C / B);
      if (a == Algorithm::hd) {
        const int l = (1 << L) == n ? L : L - 1, p = 1 << l;
        return 2.0 * l * alpha + 2.0 * (p - 1) / p * M / B + (p < n ? 2.0 * (alpha + M / B) : 0.0);
      }
      return 2.0 * (n - 1) * (alpha + M / n / B);  // ring; hierarchical with one rank per node
    case Collective::reduce:
    case Collective::broadcast:
      if (a == Algorithm::tree) return L * (alpha + M / B);
      return (n - 1 + C - 1) * (alpha + M / C / B);
    case Collective::allgather:
    case Collective::reduce_scatter: return (n - 1) * (alpha + M / n / B);
    case Collective::send: return alpha + M / B;
  }
  return 0;
}

struct Case {
  Collective c;
  Algorithm a;
};
std::vector<Case> every_algorithm() {
  std::vector<Case> out;
  for (Collective c : {Collective::allreduce, Collective::reduce, Collective::broadcast, Collective::allgather,
                       Collective::reduce_scatter})
    for (Algorithm a : algorithms_for(c)) out.push_back({c, a});
  return out;
}

std::uint64_t plan_total(Collective c, Algorithm a, int n, std::uint64_t bytes, const EngineOptions& e) {
  std::vector<int> ranks(n);
  for (int i = 0; i < n; ++i) ranks[i] = i;
  std::uint64_t t = 0;
  for (auto s : CollectivePlan(c, a, ranks, bytes / 4, e.collectives).bytes_sent()) t += s;
  return t;
}

}  // namespace

TEST(SimCollectives, EveryAlgorithmMatchesItsAlphaBetaClosedFormOnFlat10g) {
  const Platform p = load_platform(kFlat, {});
  const double alpha = p.route(0, 1).latency_s, B = p.nic.bandwidth_Bps;
  const std::uint64_t M = 4ull * 840 * 1000;  // 840 divides by 1..8
  const int C = 8;
  const EngineOptions e = engine(EngineKind::simgrid, M / C);
  for (const Case& k : every_algorithm())
    for (int n : {2, 3, 5, 7, 8}) {
      const auto r = simulate_collective(p, k.c, k.a, M, n, e);
      const double expected = closed_form(k.c, k.a, n, double(M), alpha, B, C);
      EXPECT_LT(rel(r.time_s, expected), 0.01)
          << to_string(k.c) << "/" << to_string(k.a) << " n=" << n << ": " << r.time_s << " vs " << expected;
      EXPECT_EQ(r.wire_bytes, plan_total(k.c, k.a, n, M, e)) << to_string(k.c) << "/" << to_string(k.a);
    }
}

// The double binary tree on rank counts whose heaps differ in shape (odd,
// powers of two and their neighbours, a last level under the root's left child
// only) with one and with three chunks per half: SimGrid where it is quick,
// the α–β replay up to 1,024 ranks.
TEST(SimCollectives, DoubleTreeMatchesItsClosedFormAtManyRankCounts) {
  const Platform p = load_platform(kFlat, {});
  const double alpha = p.route(0, 1).latency_s, B = p.nic.bandwidth_Bps;
  const std::uint64_t M = 4ull * 6 * 10000;
  auto check = [&](EngineKind kind, int n, int C) {
    const EngineOptions e = engine(kind, M / (2 * C));
    const auto r = simulate_collective(p, Collective::allreduce, Algorithm::tree, M, n, e);
    const double expected = double_tree_messages(n, C) * (alpha + double(M) / (2 * C) / B);
    EXPECT_LT(rel(r.time_s, expected), kind == EngineKind::simgrid ? 0.01 : 1e-9)
        << "n=" << n << " C=" << C << ": " << r.time_s << " vs " << expected;
    EXPECT_EQ(r.wire_bytes, 2ull * (n - 1) * M) << "n=" << n;
    EXPECT_EQ(r.wire_bytes, plan_total(Collective::allreduce, Algorithm::tree, n, M, e));
  };
  for (int C : {1, 3}) {
    for (int n : {2, 3, 4, 5, 8, 9, 10, 11, 13, 16, 17, 23}) check(EngineKind::simgrid, n, C);
    for (int n : {64, 65, 94, 95, 127, 128, 129, 1000, 1023, 1024}) check(EngineKind::alpha_beta, n, C);
  }
}

TEST(SimCollectives, ScheduleOpsMoveTheAccountedBytesUnderEveryAlgorithm) {
  const Platform p = load_platform(kFlat, {});
  for (OpKind kind : {OpKind::allreduce, OpKind::reduce, OpKind::broadcast})
    for (Algorithm a : algorithms_for(collective_of(kind))) {
      EngineOptions e = engine(EngineKind::simgrid, 1 << 16);
      e.collectives.allreduce = kind == OpKind::allreduce ? a : Algorithm::ring;
      e.collectives.reduce = kind == OpKind::reduce ? a : Algorithm::chain;
      e.collectives.broadcast = kind == OpKind::broadcast ? a : Algorithm::chain;
      const std::uint64_t M = 4 * 100003;  // uneven chunks
      const auto r = simulate_collective(p, kind, M, 6, e);
      CommOp op{kind, Payload::shared, {0, 1, 2, 3, 4, 5}, {}, M};
      EXPECT_EQ(r.wire_bytes, wire_total(op, e.collectives)) << to_string(kind) << "/" << to_string(a);
    }
}

TEST(SimCollectives, HierarchicalMatchesItsClosedFormOnFourGpuNodes) {
  // 3 nodes × 4 GPUs: binomial reduce in each node (2 steps on the GPU
  // links), ring among the 3 leaders across the NICs, binomial broadcast back.
  const Platform p = load_platform(kFlat, {"gpus_per_node=4", "nodes=3"});
  const LinkSpec intra = p.route(0, 1), inter = p.route(0, 4);
  EXPECT_DOUBLE_EQ(inter.latency_s, 2 * 5e-6 + 2 * 50e-6);
  const double M = 4.0 * 3 * 1000000;
  const auto r = simulate_collective(p, Collective::allreduce, Algorithm::hierarchical, std::uint64_t(M), 12,
                                     engine(EngineKind::automatic));
  const double expected = 2 * 2 * (intra.latency_s + M / intra.bandwidth_Bps) +
                          2 * 2 * (inter.latency_s + M / 3 / inter.bandwidth_Bps);
  EXPECT_LT(rel(r.time_s, expected), 0.01) << r.time_s << " vs " << expected;
  // auto picks hierarchical here, and it beats the flat ring across 12 ranks.
  const auto chosen = simulate_collective(p, Collective::allreduce, Algorithm::automatic, std::uint64_t(M), 12, {});
  EXPECT_EQ(chosen.algorithm, Algorithm::hierarchical);
  const auto ring = simulate_collective(p, Collective::allreduce, Algorithm::ring, std::uint64_t(M), 12, {});
  EXPECT_LT(r.time_s, ring.time_s);
}

TEST(SimCollectives, AlphaBetaReplayEqualsSimGridForEveryAlgorithm) {
  const Platform p = load_platform(kFlat, {});
  EXPECT_TRUE(alpha_beta_exact(p, {}));
  EXPECT_FALSE(alpha_beta_exact(load_platform("", {}), {}));  // 4 GPUs share a NIC
  for (const Case& k : every_algorithm())
    for (int n : {3, 6, 7})
      for (std::uint64_t M : {4ull * 1001, 4ull * 777777}) {
        const auto sg = simulate_collective(p, k.c, k.a, M, n, engine(EngineKind::simgrid, 1 << 18));
        const auto ab = simulate_collective(p, k.c, k.a, M, n, engine(EngineKind::alpha_beta, 1 << 18));
        EXPECT_LT(rel(ab.time_s, sg.time_s), 1e-6) << to_string(k.c) << "/" << to_string(k.a) << " n=" << n;
        EXPECT_EQ(ab.wire_bytes, sg.wire_bytes);
      }
}

TEST(SimCollectives, AlphaBetaReplayEqualsSimGridForWholeRuns) {
  // Unequal per-worker compute (ResIST's sub-ResNets differ) makes the ops of
  // a round start at different times on different ranks: the replay must
  // still give SimGrid's times, round by round.
  const ModelSpec spec = test::paper_model();
  const Platform p = load_platform(kFlat, {});
  for (Protocol proto : {Protocol::data_parallel, Protocol::local_sgd, Protocol::resist})
    for (bool full : {true, false})
      for (const char* algos : {"default", "auto", "tree"}) {
        RunOptions o;
        o.schedule.protocol = proto;
        o.schedule.model = spec.options;
        o.schedule.workers = 11;
        o.schedule.local_iters = 3;
        o.schedule.rounds = 4;
        o.schedule.eval_every = 3;
        o.full = full;
        const std::string a = algos;
        if (a != "default") {
          o.engine.collectives.allreduce = a == "auto" ? Algorithm::automatic : Algorithm::tree;
          o.engine.collectives.reduce = a == "auto" ? Algorithm::automatic : Algorithm::tree;
          o.engine.collectives.broadcast = a == "auto" ? Algorithm::automatic : Algorithm::tree;
        }
        o.engine.kind = EngineKind::simgrid;
        const RunResult sg = simulate_run(spec, p, o);
        o.engine.kind = EngineKind::alpha_beta;
        const RunResult ab = simulate_run(spec, p, o);
        const std::string label = std::string(to_string(proto)) + (full ? " full " : " fast ") + a;
        EXPECT_LT(rel(ab.wall_clock_s, sg.wall_clock_s), 1e-6) << label;
        EXPECT_EQ(ab.wire_bytes_total, sg.wire_bytes_total) << label;
        ASSERT_EQ(ab.rows.size(), sg.rows.size());
        for (std::size_t r = 0; r < ab.rows.size(); ++r) {
          EXPECT_LT(std::abs(ab.rows[r].duration_s - sg.rows[r].duration_s), 1e-6 * sg.rows[r].duration_s)
              << label << " round " << r;
          EXPECT_LT(std::abs(ab.rows[r].communication_s - sg.rows[r].communication_s), 1e-6 * sg.rows[r].duration_s)
              << label << " round " << r;
          EXPECT_EQ(ab.rows[r].wire_bytes, sg.rows[r].wire_bytes) << label << " round " << r;
        }
      }
}
