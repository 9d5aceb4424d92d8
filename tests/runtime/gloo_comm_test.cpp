// Every collective algorithm over real Gloo: c10d's ProcessGroupGloo on
// loopback TCP, one thread per rank of this process, the ranks meeting in one
// in-process store. Each rank sends exactly the bytes the accounting gives for
// the algorithm (schedule/accounting.hpp), and the results equal the ring's
// (all-reduce) or the chain's (reduce, broadcast) up to float reordering:
// |x - ring| <= 1e-6·|ring| (means of at most 7 values of magnitude <= 8;
// float's epsilon is 1.2e-7).
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <thread>

#include "runtime/dist.hpp"
#include "schedule/accounting.hpp"

namespace {

using namespace resist;
using runtime::P2PCommunicator;

constexpr int kWorld = 7;
constexpr std::chrono::milliseconds kTimeout{60000};

struct World {
  std::vector<std::unique_ptr<runtime::Communicator>> comms;
  World() : comms(kWorld) {
    const auto store = runtime::connect_store(runtime::Env{}, kTimeout);  // in-process
    std::vector<std::thread> threads;
    for (int r = 0; r < kWorld; ++r)
      threads.emplace_back([&, r] {
        runtime::Env env;
        env.distributed = true;
        env.rank = r;
        env.world_size = kWorld;
        comms[std::size_t(r)] = runtime::make_gloo_communicator(env, store, kTimeout);
      });
    for (auto& t : threads) t.join();
  }
};

struct Outcome {
  std::vector<std::vector<float>> bufs;
  std::vector<std::uint64_t> sent;
};

// Every rank prepares the op (tags stay in step); its participants run it on
// rank r's values r + 1 + i/1000.
Outcome run(World& w, const CommOp& op, std::size_t count, const CollectiveOptions& o,
            const P2PCommunicator::Pipelining& pl = {}) {
  Outcome out{std::vector<std::vector<float>>(kWorld), std::vector<std::uint64_t>(kWorld, 0)};
  std::vector<std::thread> threads;
  for (int r = 0; r < kWorld; ++r)
    threads.emplace_back([&, r] {
      auto& c = dynamic_cast<P2PCommunicator&>(*w.comms[std::size_t(r)]);
      auto& buf = out.bufs[std::size_t(r)];
      buf.resize(count);
      for (std::size_t i = 0; i < count; ++i) buf[i] = float(r + 1) + float(i) / 1000.0f;
      c.collectives = o;
      c.pipelining = pl;
      c.prepare(op.ranks);
      if (!op.involves(r)) return;
      const std::uint64_t before = c.bytes_sent();
      runtime::run_op(c, op, buf.data(), count);
      out.sent[std::size_t(r)] = c.bytes_sent() - before;
    });
  for (auto& t : threads) t.join();
  return out;
}

}  // namespace

TEST(GlooCommunicator, EveryAlgorithmSendsTheAccountedBytesAndMatchesTheRing) {
  World w;
  const std::vector<std::pair<OpKind, std::vector<int>>> ops = {
      {OpKind::allreduce, {0, 1, 2, 3, 4, 5, 6}}, {OpKind::allreduce, {5, 0, 3}}, {OpKind::allreduce, {2, 6, 1, 0}},
      {OpKind::reduce, {4, 0, 6, 2, 1}},           {OpKind::broadcast, {3, 1, 0, 6, 5, 2}}};
  for (const auto& [kind, ranks] : ops)
    for (std::size_t count : {1u, 1001u}) {
      const CommOp op{kind, Payload::shared, ranks, {}, 4 * count};
      CollectiveOptions o;
      o.chunk_bytes = 4 * 50;  // several pipeline chunks
      o.ranks_per_node = 2;    // hierarchical: nodes {0,1} {2,3} {4,5} {6}
      const Outcome reference = run(w, op, count, o);  // ring / chain: the defaults
      for (Algorithm a : algorithms_for(collective_of(kind))) {
        SCOPED_TRACE(std::string(to_string(kind)) + "/" + to_string(a) + " n=" + std::to_string(ranks.size()) +
                     " count=" + std::to_string(count));
        o.allreduce = kind == OpKind::allreduce ? a : Algorithm::ring;
        o.reduce = kind == OpKind::reduce ? a : Algorithm::chain;
        o.broadcast = kind == OpKind::broadcast ? a : Algorithm::chain;
        const Outcome got = run(w, op, count, o);
        EXPECT_EQ(got.sent, wire_sent(op, kWorld, o));
        for (int r : ranks) {
          if (kind == OpKind::reduce && r != ranks[0]) continue;
          for (std::size_t i = 0; i < count; ++i) {
            const float want = reference.bufs[std::size_t(r)][i];
            ASSERT_LE(std::abs(got.bufs[std::size_t(r)][i] - want), 1e-6f * std::abs(want)) << "rank " << r << " i " << i;
          }
        }
      }
    }
}

// Over Gloo, where a send leaves its buffer only when the peer's receive is
// posted: transfers cut into segments with several in flight give the
// step-by-step result bit for bit, with the accounted bytes.
TEST(GlooCommunicator, PipelinedExecutionEqualsStepByStepBitForBit) {
  World w;
  const P2PCommunicator::Pipelining step_by_step{0, 0, 1};
  const std::vector<P2PCommunicator::Pipelining> pipelined = {{4 * 50, 4 * 20, 2}, {4 * 64, 0, 4}};
  const std::vector<std::pair<OpKind, std::vector<int>>> ops = {
      {OpKind::allreduce, {0, 1, 2, 3, 4, 5, 6}}, {OpKind::allreduce, {3, 5}}, {OpKind::reduce, {4, 0, 6, 2, 1}},
      {OpKind::broadcast, {3, 1, 0, 6, 5, 2}}};
  const std::size_t count = 1001;
  for (const auto& [kind, ranks] : ops)
    for (Algorithm a : algorithms_for(collective_of(kind))) {
      const CommOp op{kind, Payload::shared, ranks, {}, 4 * count};
      CollectiveOptions o;
      o.chunk_bytes = 4 * 300;
      o.ranks_per_node = 2;
      o.allreduce = kind == OpKind::allreduce ? a : Algorithm::ring;
      o.reduce = kind == OpKind::reduce ? a : Algorithm::chain;
      o.broadcast = kind == OpKind::broadcast ? a : Algorithm::chain;
      const Outcome reference = run(w, op, count, o, step_by_step);
      for (const auto& pl : pipelined) {
        SCOPED_TRACE(std::string(to_string(kind)) + "/" + to_string(a) + " n=" + std::to_string(ranks.size()) +
                     " window " + std::to_string(pl.window));
        const Outcome got = run(w, op, count, o, pl);
        EXPECT_EQ(got.sent, wire_sent(op, kWorld, o));
        for (int r : ranks) {
          if (kind == OpKind::reduce && r != ranks[0]) continue;
          EXPECT_EQ(got.bufs[std::size_t(r)], reference.bufs[std::size_t(r)]) << "rank " << r;
        }
      }
    }
}
