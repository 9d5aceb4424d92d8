// The P2P algorithms over an in-process transport (threads as ranks): the
// results are the means, identical on every participant, and each rank sends
// exactly what schedule/accounting.hpp says.
#include <gtest/gtest.h>

#include <cmath>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <thread>
#include <tuple>

#include "runtime/comm.hpp"
#include "schedule/accounting.hpp"
#include "tests/support/local_comm.hpp"

namespace {

using resist::test::LocalComm;
using resist::test::Wires;

resist::CollectiveOptions small_chunks();

// Runs `op` on `world` thread-ranks under the options' algorithms; rank r
// starts with values r + 1 + i/1000. Returns every rank's buffer after.
std::vector<std::vector<float>> check(const resist::CommOp& op, int world, std::size_t count,
                                      resist::CollectiveOptions o = small_chunks(),
                                      resist::runtime::P2PCommunicator::Pipelining pl = {}) {
  Wires wires;
  std::vector<std::vector<float>> bufs(static_cast<std::size_t>(world));
  std::vector<std::uint64_t> sent(static_cast<std::size_t>(world));
  std::vector<std::thread> threads;
  for (int r = 0; r < world; ++r) {
    bufs[std::size_t(r)].resize(count);
    for (std::size_t i = 0; i < count; ++i) bufs[std::size_t(r)][i] = float(r + 1) + float(i) / 1000.0f;
  }
  for (int r = 0; r < world; ++r)
    threads.emplace_back([&, r] {
      LocalComm c(wires, r, world);
      c.collectives = o;
      c.pipelining = pl;
      c.prepare(op.ranks);
      if (!op.involves(r)) return;
      float* p = bufs[std::size_t(r)].data();
      switch (op.kind) {
        case resist::OpKind::allreduce: c.allreduce_mean(p, count, op.ranks); break;
        case resist::OpKind::reduce: c.reduce_mean(p, count, op.ranks); break;
        case resist::OpKind::broadcast: c.broadcast(p, count, op.ranks); break;
        case resist::OpKind::send:
          if (r == op.ranks[0]) c.send(p, count, op.ranks[1]);
          else c.recv(p, count, op.ranks[0]);
          break;
      }
      sent[std::size_t(r)] = c.bytes_sent();
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(sent, resist::wire_sent(op, world, o)) << resist::to_string(op.kind);
  double mean_base = 0;
  for (int r : op.ranks) mean_base += r + 1;
  mean_base /= double(op.ranks.size());
  for (int r : op.ranks) {
    const bool check_mean = op.kind == resist::OpKind::allreduce || (op.kind == resist::OpKind::reduce && r == op.root());
    const bool check_copy = op.kind == resist::OpKind::broadcast || op.kind == resist::OpKind::send;
    for (std::size_t i = 0; i < count; ++i) {
      const float v = bufs[std::size_t(r)][i];
      if (check_mean) {
        EXPECT_NEAR(v, mean_base + double(i) / 1000.0, 1e-4) << "rank " << r << " i " << i;
      }
      if (check_copy) {
        EXPECT_EQ(v, float(op.root() + 1) + float(i) / 1000.0f);
      }
      if (op.kind == resist::OpKind::allreduce) {
        EXPECT_EQ(v, bufs[std::size_t(op.ranks[0])][i]) << "not bitwise identical";
      }
    }
  }
  return bufs;
}

resist::CollectiveOptions small_chunks() {
  resist::CollectiveOptions o;
  o.chunk_bytes = 4 * 7;  // several pipeline chunks
  return o;
}

resist::CommOp make(resist::OpKind k, std::vector<int> ranks, std::size_t count) {
  resist::CommOp op;
  op.kind = k;
  op.ranks = std::move(ranks);
  op.bytes = 4 * count;
  return op;
}

}  // namespace

TEST(P2PCommunicator, RingAllReduceOnSubgroupsAndUnevenChunks) {
  for (std::size_t count : {1u, 5u, 64u, 1001u}) {
    check(make(resist::OpKind::allreduce, {0, 1, 2, 3}, count), 4, count);
    check(make(resist::OpKind::allreduce, {2, 0, 3}, count), 4, count);
    check(make(resist::OpKind::allreduce, {1, 0}, count), 2, count);
  }
}

TEST(P2PCommunicator, ChainReduceBroadcastAndSend) {
  for (std::size_t count : {3u, 50u}) {
    check(make(resist::OpKind::reduce, {2, 0, 3}, count), 4, count);
    check(make(resist::OpKind::broadcast, {3, 1, 0}, count), 4, count);
    check(make(resist::OpKind::send, {2, 1}, count), 4, count);
  }
}

// Every algorithm over the in-process transport: the accounted bytes, and
// results equal to the ring's (all-reduce) or the chain's (reduce, broadcast)
// up to float reordering: |x - ring| <= 1e-6·|ring| (sums of at most 7
// values of magnitude <= 8; float's epsilon is 1.2e-7).
TEST(P2PCommunicator, EveryAlgorithmSendsTheAccountedBytesAndMatchesTheRing) {
  using resist::Algorithm;
  using resist::OpKind;
  const std::vector<std::pair<OpKind, std::vector<int>>> ops = {
      {OpKind::allreduce, {0, 1, 2, 3, 4, 5, 6}}, {OpKind::allreduce, {5, 0, 3}}, {OpKind::allreduce, {2, 6, 1, 0, 4}},
      {OpKind::reduce, {4, 0, 6, 2, 1}},           {OpKind::broadcast, {3, 1, 0, 6, 5, 2}}};
  for (const auto& [kind, ranks] : ops)
    for (std::size_t count : {1u, 13u, 1001u}) {
      const resist::CommOp op = make(kind, ranks, count);
      const auto reference = check(op, 7, count);
      for (Algorithm a : resist::algorithms_for(resist::collective_of(kind))) {
        SCOPED_TRACE(std::string(resist::to_string(kind)) + "/" + resist::to_string(a) + " n=" +
                     std::to_string(ranks.size()) + " count=" + std::to_string(count));
        resist::CollectiveOptions o = small_chunks();
        o.ranks_per_node = 2;  // hierarchical: nodes {0,1} {2,3} {4,5} {6}
        o.allreduce = kind == OpKind::allreduce ? a : o.allreduce;
        o.reduce = kind == OpKind::reduce ? a : o.reduce;
        o.broadcast = kind == OpKind::broadcast ? a : o.broadcast;
        const auto got = check(op, 7, count, o);
        for (int r : ranks) {
          if (kind == OpKind::reduce && r != ranks[0]) continue;
          for (std::size_t i = 0; i < count; ++i) {
            const float want = reference[std::size_t(r)][i];
            EXPECT_LE(std::abs(got[std::size_t(r)][i] - want), 1e-6f * std::abs(want)) << "rank " << r << " i " << i;
          }
        }
      }
    }
}

// Cutting transfers into segments and keeping several in flight changes
// neither the bytes (check() compares them with the accounting) nor a single
// bit of the result: every element is summed in the plan's order.
TEST(P2PCommunicator, PipelinedExecutionEqualsStepByStepBitForBit) {
  using resist::Algorithm;
  using resist::OpKind;
  using Pipelining = resist::runtime::P2PCommunicator::Pipelining;
  const Pipelining step_by_step{0, 0, 1};
  const std::vector<Pipelining> pipelined = {{4 * 5, 4 * 3, 2}, {4 * 16, 0, 1}, {4 * 7, 4 * 2, 3}, {4 * 3, 4, 8}};
  const std::vector<std::pair<OpKind, std::vector<int>>> ops = {
      {OpKind::allreduce, {0, 1, 2, 3, 4, 5, 6}}, {OpKind::allreduce, {1, 0}}, {OpKind::allreduce, {2, 6, 1, 0, 4}},
      {OpKind::reduce, {4, 0, 6, 2, 1}},           {OpKind::broadcast, {3, 1, 0, 6, 5, 2}}};
  for (const auto& [kind, ranks] : ops)
    for (Algorithm a : resist::algorithms_for(resist::collective_of(kind)))
      for (std::size_t count : {1u, 13u, 257u}) {
        const resist::CommOp op = make(kind, ranks, count);
        resist::CollectiveOptions o = small_chunks();
        o.ranks_per_node = 2;
        o.allreduce = kind == OpKind::allreduce ? a : o.allreduce;
        o.reduce = kind == OpKind::reduce ? a : o.reduce;
        o.broadcast = kind == OpKind::broadcast ? a : o.broadcast;
        const auto reference = check(op, 7, count, o, step_by_step);
        for (const Pipelining& pl : pipelined) {
          SCOPED_TRACE(std::string(resist::to_string(kind)) + "/" + resist::to_string(a) + " n=" +
                       std::to_string(ranks.size()) + " count=" + std::to_string(count) + " segment " +
                       std::to_string(pl.segment_bytes) + " B, window " + std::to_string(pl.window));
          const auto got = check(op, 7, count, o, pl);
          for (int r : ranks) {
            if (kind == OpKind::reduce && r != ranks[0]) continue;
            EXPECT_EQ(got[std::size_t(r)], reference[std::size_t(r)]) << "rank " << r;
          }
        }
      }
}

TEST(P2PCommunicator, SegmentsPerTransfer) {
  resist::runtime::P2PCommunicator::Pipelining pl = resist::runtime::P2PCommunicator::kPipelined;
  resist::test::Wires wires;
  resist::test::LocalComm c(wires, 0, 1);
  c.pipelining = pl;
  EXPECT_EQ(c.segments(1), 1);
  EXPECT_EQ(c.segments((128u << 10) / 4 - 1), 1);
  EXPECT_EQ(c.segments((128u << 10) / 4), 2);
  EXPECT_EQ(c.segments((2u << 20) / 4), 2);
  EXPECT_EQ(c.segments((2u << 20) / 4 + 1), 3);
  c.pipelining.segment_bytes = 0;
  EXPECT_EQ(c.segments(1u << 30), 1);
  c.pipelining = {8, 0, 2};
  EXPECT_EQ(c.segments(3), 2);  // 12 bytes in 8-byte segments
  EXPECT_EQ(c.segments(2), 1);
}
