// The P2P algorithms over an in-process transport (threads as ranks): the
// results are the means, identical on every participant, and each rank sends
// exactly what schedule/accounting.hpp says.
#include <gtest/gtest.h>

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

// Runs `op` on `world` thread-ranks; rank r starts with values r + 1 + i/1000.
void check(const resist::CommOp& op, int world, std::size_t count) {
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
      c.broadcast_chunk = 7;  // several pipeline chunks
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
  EXPECT_EQ(sent, resist::wire_sent(op, world)) << resist::to_string(op.kind);
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
