// The collective definitions on their own: executing a plan's steps on
// in-memory buffers gives the collective's result, every rank's view of a step
// is the plan's, no rank sends or receives two messages in one step, and the
// bytes are the documented ones.
#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>

#include "models/error.hpp"
#include "schedule/accounting.hpp"
#include "schedule/collectives.hpp"

using namespace resist;

namespace {

using Buffers = std::vector<std::vector<double>>;

// Position p starts with p·1000 + i at element i (exact in doubles).
Buffers initial(int n, std::uint64_t elements) {
  Buffers b(n, std::vector<double>(elements));
  for (int p = 0; p < n; ++p)
    for (std::uint64_t i = 0; i < elements; ++i) b[p][i] = 1000.0 * p + double(i);
  return b;
}

// A step's sends read the senders' buffers as they were before the step.
void run(const CollectivePlan& plan, Buffers& b) {
  std::vector<Transfer> t;
  for (int k = 0; k < plan.steps(); ++k) {
    t.clear();
    plan.transfers(k, -1, t);
    const Buffers before = b;
    for (const auto& x : t)
      for (std::uint64_t i = x.offset; i < x.offset + x.count; ++i)
        b[x.dst][i] = x.add ? b[x.dst][i] + before[x.src][i] : before[x.src][i];
  }
}

double sum_at(int n, std::uint64_t i) { return 1000.0 * n * (n - 1) / 2 + double(n) * double(i); }

std::vector<int> ranks_of(int n) {
  std::vector<int> r(n);
  std::iota(r.begin(), r.end(), 0);
  return r;
}

void expect_result(Collective c, const CollectivePlan& plan, const Buffers& b, std::uint64_t e) {
  const int n = plan.size();
  for (int p = 0; p < n; ++p)
    for (std::uint64_t i = 0; i < e; ++i) {
      const int owner = [&] {  // the chunk's position in all-gather / reduce-scatter
        for (int q = 0; q < n; ++q) {
          const auto ch = ring_chunk(e, n, q);
          if (i >= ch.offset && i < ch.offset + ch.count) return q;
        }
        return -1;
      }();
      switch (c) {
        case Collective::allreduce: ASSERT_EQ(b[p][i], sum_at(n, i)) << p << " " << i; break;
        case Collective::reduce:
          if (p == 0) {
            ASSERT_EQ(b[p][i], sum_at(n, i)) << i;
          }
          break;
        case Collective::broadcast: ASSERT_EQ(b[p][i], double(i)) << p << " " << i; break;
        case Collective::allgather: ASSERT_EQ(b[p][i], 1000.0 * owner + double(i)) << p << " " << i; break;
        case Collective::reduce_scatter:
          if (p == owner) {
            ASSERT_EQ(b[p][i], sum_at(n, i)) << p << " " << i;
          }
          break;
        case Collective::send:
          if (p == 1) {
            ASSERT_EQ(b[p][i], double(i));
          }
          break;
      }
    }
}

void expect_consistent_views(const CollectivePlan& plan) {
  const int n = plan.size();
  std::vector<Transfer> all, mine;
  for (int k = 0; k < plan.steps(); ++k) {
    all.clear();
    plan.transfers(k, -1, all);
    std::vector<int> sends(n, 0), recvs(n, 0);
    for (const auto& t : all) {
      ASSERT_NE(t.src, t.dst);
      ++sends[t.src];
      ++recvs[t.dst];
    }
    for (int p = 0; p < n; ++p) {
      ASSERT_LE(sends[p], 1) << "step " << k << " position " << p;
      ASSERT_LE(recvs[p], 1) << "step " << k << " position " << p;
      mine.clear();
      plan.transfers(k, p, mine);
      ASSERT_EQ(int(mine.size()), sends[p] + recvs[p]) << "step " << k << " position " << p;
      for (const auto& t : mine) {
        const bool found = std::any_of(all.begin(), all.end(), [&](const Transfer& a) {
          return a.src == t.src && a.dst == t.dst && a.offset == t.offset && a.count == t.count && a.add == t.add;
        });
        ASSERT_TRUE(found) << "step " << k << " position " << p;
      }
    }
  }
}

}  // namespace

TEST(Collectives, EveryAlgorithmComputesItsCollective) {
  CollectiveOptions o;
  o.chunk_bytes = 4 * 3;  // several chain chunks
  for (Collective c : {Collective::allreduce, Collective::reduce, Collective::broadcast, Collective::allgather,
                       Collective::reduce_scatter})
    for (Algorithm a : algorithms_for(c))
      for (int n : {1, 2, 3, 5, 6, 7, 8, 12})
        for (std::uint64_t e : {1ull, 5ull, 37ull}) {
          SCOPED_TRACE(std::string(to_string(c)) + "/" + to_string(a) + " n=" + std::to_string(n) +
                       " e=" + std::to_string(e));
          o.ranks_per_node = 3;  // hierarchical: nodes of 3 positions (ranks 0..n-1)
          const CollectivePlan plan(c, a, ranks_of(n), e, o);
          Buffers b = initial(n, e);
          run(plan, b);
          expect_result(c, plan, b, e);
          expect_consistent_views(plan);
        }
}

TEST(Collectives, HierarchicalGroupsRanksByNode) {
  // Ranks on nodes of 4: {9, 2, 8, 3, 0, 13} -> nodes 2 {9, 8}, 0 {2, 3, 0}, 3 {13}.
  CollectiveOptions o;
  o.ranks_per_node = 4;
  const CollectivePlan plan(Collective::allreduce, Algorithm::hierarchical, {9, 2, 8, 3, 0, 13}, 10, o);
  Buffers b = initial(6, 10);
  run(plan, b);
  expect_result(Collective::allreduce, plan, b, 10);
  // Intra-node trees move (m-1)·M per node each way, the leaders' ring 2(N-1)·M.
  std::uint64_t total = 0;
  for (auto s : plan.bytes_sent()) total += s;
  EXPECT_EQ(total, 2 * (1 + 2 + 0) * 40u + 2 * 2 * 40u);
}

TEST(Collectives, WireBytesPerAlgorithm) {
  const std::uint64_t e = 4096 * 3, M = 4 * e;
  auto total = [&](Collective c, Algorithm a, int n) {
    CollectiveOptions o;
    std::uint64_t t = 0;
    for (auto s : CollectivePlan(c, a, ranks_of(n), e, o).bytes_sent()) t += s;
    return t;
  };
  for (int n : {2, 3, 5, 8, 12}) {
    int p = 1;
    while (2 * p <= n) p *= 2;
    EXPECT_EQ(total(Collective::allreduce, Algorithm::ring, n), 2ull * (n - 1) * M);
    EXPECT_EQ(total(Collective::allreduce, Algorithm::tree, n), 2ull * (n - 1) * M);
    EXPECT_EQ(total(Collective::allreduce, Algorithm::binomial, n), 2ull * (n - 1) * M);
    EXPECT_EQ(total(Collective::allreduce, Algorithm::hd, n), 2ull * (p - 1) * M + 2ull * (n - p) * M);
    for (Collective c : {Collective::reduce, Collective::broadcast})
      for (Algorithm a : {Algorithm::chain, Algorithm::tree}) EXPECT_EQ(total(c, a, n), (n - 1) * M);
    EXPECT_EQ(total(Collective::allgather, Algorithm::ring, n), (n - 1) * M);
    EXPECT_EQ(total(Collective::reduce_scatter, Algorithm::ring, n), (n - 1) * M);
  }
}

TEST(Collectives, AccountingFollowsTheChosenAlgorithm) {
  CommOp op{OpKind::allreduce, Payload::shared, {4, 0, 2, 1, 3}, {}, 4 * 1000};
  CollectiveOptions o;
  o.allreduce = Algorithm::binomial;
  // Binomial over positions 0..4 (ranks 4 0 2 1 3): reduce 1->0, 3->2, 2->0, 4->0; broadcast 0->4, 0->2, 0->1, 2->3.
  EXPECT_EQ(wire_sent(op, 5, o), (std::vector<std::uint64_t>{4000, 4000, 8000, 4000, 12000}));
  o.allreduce = Algorithm::tree;
  // Double binary tree, halves of 2000 bytes. Tree 0 over positions: 0 root,
  // children 1 and 2, 1's children 3 and 4. Tree 1 (odd n: node n-2-r, 0 -> 4,
  // 4 -> 3): 3 root, children 2 and 1, 2's children 4 and 0. Per position:
  // up in each tree where it is not the root, down to each child.
  // Positions 0..4 send 6000, 8000, 8000, 6000, 4000: ranks 4, 0, 2, 1, 3.
  EXPECT_EQ(wire_sent(op, 5, o), (std::vector<std::uint64_t>{8000, 6000, 8000, 4000, 6000}));
  o.allreduce = Algorithm::ring;
  EXPECT_EQ(wire_total(op, o), 8u * 4000);
}

// The double binary tree over many rank counts (odd, powers of two and their
// neighbours, lopsided last heap levels) and chunk counts: it computes the
// all-reduce, its steps obey the plan rules, it has 2(2(C-1) + R) steps, and
// no position is interior in both trees: each receives at most two halves in
// the reduce and one per tree in the broadcast (a binomial root receives
// ⌈log2 n⌉ whole buffers), and sends at most as much.
TEST(Collectives, DoubleBinaryTreeOverManyRankCounts) {
  CollectiveOptions o;
  o.chunk_bytes = 4 * 5;
  std::vector<int> counts;
  for (int n = 2; n <= 40; ++n) counts.push_back(n);
  for (int n : {63, 64, 65, 94, 95, 127, 128, 129}) counts.push_back(n);
  for (int n : counts)
    for (std::uint64_t e : {1ull, 9ull, 10ull, 64ull}) {
      SCOPED_TRACE("n=" + std::to_string(n) + " e=" + std::to_string(e));
      const CollectivePlan plan(Collective::allreduce, Algorithm::tree, ranks_of(n), e, o);
      Buffers b = initial(n, e);
      run(plan, b);
      expect_result(Collective::allreduce, plan, b, e);
      expect_consistent_views(plan);
      int k = 0;
      while ((2 << k) <= n) ++k;
      const int C = int((e - e / 2 + 4) / 5), R = 2 * k - 1 + ((n & (n + 1)) == 0 ? 1 : 0);
      EXPECT_EQ(double_tree_chunks(e, o.chunk_bytes), C);
      EXPECT_EQ(plan.steps(), 2 * (2 * (C - 1) + R));
      const std::uint64_t half = 4 * (e - e / 2);
      const auto sent = plan.bytes_sent(), received = plan.bytes_received();
      for (int p = 0; p < n; ++p) {
        EXPECT_LE(received[p], 4 * half) << p;
        EXPECT_LE(sent[p], 4 * half) << p;
      }
    }
}

TEST(Collectives, AutoPicksByMessageSizeRanksAndNodes) {
  CollectiveOptions o;  // 100 us, 10 Gbit/s between nodes
  const auto flat64 = ranks_of(64);
  EXPECT_NE(choose_algorithm(Collective::allreduce, flat64, 1024, o), Algorithm::ring);  // latency-bound
  // Bandwidth-bound: the ring (halving-doubling ties it on bandwidth for powers of two, with less latency).
  EXPECT_EQ(choose_algorithm(Collective::allreduce, ranks_of(24), 1ull << 30, o), Algorithm::ring);
  EXPECT_EQ(choose_algorithm(Collective::allreduce, flat64, 1ull << 30, o), Algorithm::hd);
  // 1,000 ranks, 100 MiB: the double binary tree (82 messages of M/26 against
  // the ring's 1,998 latencies and halving-doubling's two extra whole buffers).
  EXPECT_EQ(choose_algorithm(Collective::allreduce, ranks_of(1000), 100ull << 20, o), Algorithm::tree);
  EXPECT_EQ(choose_algorithm(Collective::broadcast, flat64, 1024, o), Algorithm::tree);
  EXPECT_EQ(choose_algorithm(Collective::broadcast, flat64, 1ull << 30, o), Algorithm::chain);
  o.ranks_per_node = 4;
  EXPECT_EQ(choose_algorithm(Collective::allreduce, flat64, 1ull << 30, o), Algorithm::hierarchical);
  EXPECT_NE(choose_algorithm(Collective::allreduce, {0, 4, 8, 12}, 1ull << 30, o), Algorithm::hierarchical);
  // The choice is the least α–β time among the candidates.
  for (std::uint64_t bytes : {64ull, 1ull << 16, 1ull << 24}) {
    o.ranks_per_node = 1;
    const Algorithm a = choose_algorithm(Collective::allreduce, ranks_of(24), bytes, o);
    for (Algorithm b : {Algorithm::ring, Algorithm::tree, Algorithm::binomial, Algorithm::hd})
      EXPECT_LE(alpha_beta_s(Collective::allreduce, a, 24, bytes, o.inter_latency_s, o.inter_bandwidth_Bps, o.chunk_bytes),
                alpha_beta_s(Collective::allreduce, b, 24, bytes, o.inter_latency_s, o.inter_bandwidth_Bps, o.chunk_bytes));
  }
}

TEST(Collectives, NamesAndBadAlgorithms) {
  EXPECT_EQ(parse_algorithm(Collective::allreduce, "hd", "--allreduce"), Algorithm::hd);
  EXPECT_EQ(parse_algorithm(Collective::reduce, "auto", "--reduce"), Algorithm::automatic);
  try {
    parse_algorithm(Collective::broadcast, "ring", "--broadcast");
    FAIL();
  } catch (const UserError& e) {
    EXPECT_EQ(std::string(e.what()), "--broadcast: unknown broadcast algorithm 'ring' (accepted: auto, chain, tree)");
  }
  EXPECT_EQ(parse_collective("reduce-scatter"), Collective::reduce_scatter);
  EXPECT_THROW(parse_collective("gather"), UserError);
}
