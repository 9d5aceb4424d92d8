#include <gtest/gtest.h>

#include "schedule/accounting.hpp"
#include "tests/support/models.hpp"

using namespace resist;
using resist::test::paper_model;

namespace {
ScheduleConfig config(Protocol p, int workers) {
  ScheduleConfig c;
  c.protocol = p;
  c.model = paper_model().options;
  c.workers = workers;
  c.rounds = 3;
  return c;
}
}  // namespace

TEST(Accounting, RingChunksCoverEveryElementOnce) {
  for (std::uint64_t elements : {0ull, 1ull, 7ull, 1000ull, 1000003ull})
    for (int n : {1, 2, 3, 7, 64}) {
      std::uint64_t next = 0;
      for (int c = 0; c < n; ++c) {
        const auto ch = ring_chunk(elements, n, c);
        EXPECT_EQ(ch.offset, next);
        EXPECT_LE(ch.count, elements / n + 1);
        next += ch.count;
      }
      EXPECT_EQ(next, elements);
    }
}

TEST(Accounting, RingAllReduceSendsTwoNMinusOneOverNOfM) {
  for (int n : {2, 3, 5, 8}) {
    CommOp op{OpKind::allreduce, Payload::shared, {}, {}, 4ull * 1000003};
    for (int i = 0; i < n; ++i) op.ranks.push_back(n - 1 - i);  // any order
    const auto sent = wire_sent(op, n);
    std::uint64_t total = 0;
    for (auto s : sent) {
      EXPECT_NEAR(double(s), 2.0 * (n - 1) / n * op.bytes, 8.0 * n);
      total += s;
    }
    EXPECT_EQ(total, 2ull * (n - 1) * op.bytes);
    EXPECT_EQ(total, wire_total(op));
  }
}

TEST(Accounting, ChainsAndSends) {
  CommOp reduce{OpKind::reduce, Payload::partitioned, {3, 1, 2}, {}, 400};
  EXPECT_EQ(wire_sent(reduce, 4), (std::vector<std::uint64_t>{0, 400, 400, 0}));
  CommOp bcast{OpKind::broadcast, Payload::handoff, {3, 1, 2}, {}, 400};
  EXPECT_EQ(wire_sent(bcast, 4), (std::vector<std::uint64_t>{0, 400, 0, 400}));
  CommOp send{OpKind::send, Payload::handoff, {2, 0}, {}, 400};
  EXPECT_EQ(wire_sent(send, 4), (std::vector<std::uint64_t>{0, 0, 400, 0}));
  EXPECT_EQ(wire_total(reduce), 800u);
  EXPECT_EQ(wire_total(send), 400u);
}

// Table 1 convention: each machine receives and sends back its model.
TEST(Accounting, BytesPerRoundTableOneConvention) {
  const auto spec = paper_model();
  const std::uint64_t P = 41396900;
  for (int S : {2, 4, 8}) {
    ScheduleGenerator local(spec, config(Protocol::local_sgd, S));
    EXPECT_EQ(account(spec, local.header(), local.round(0)).bytes_per_round, 2ull * S * 4 * P);
    ScheduleGenerator dp(spec, config(Protocol::data_parallel, S));
    EXPECT_EQ(account(spec, dp.header(), dp.round(0)).bytes_per_round, 2ull * S * 4 * P);
    ScheduleGenerator rs(spec, config(Protocol::resist, S));
    const std::uint64_t k = resist_blocks_per_worker(22, S, 4);
    const std::uint64_t sub = P - 22ull * 1180672 + k * 1180672;
    const auto a = account(spec, rs.header(), rs.round(0));
    EXPECT_EQ(a.bytes_per_round, 2ull * S * 4 * sub);
    for (auto p : a.params_per_worker) EXPECT_EQ(p, sub);
  }
}

TEST(Accounting, WireBytesAddUpOverOps) {
  const auto spec = paper_model();
  ScheduleGenerator rs(spec, config(Protocol::resist, 4));
  const Round r = rs.round(0);
  const auto a = account(spec, rs.header(), r);
  std::uint64_t total = 0;
  for (const auto& op : r.sync) total += wire_total(op);
  EXPECT_EQ(a.wire_bytes, total);
  std::uint64_t per_worker = 0;
  for (auto s : a.wire_sent_per_worker) per_worker += s;
  EXPECT_EQ(per_worker, total);
  // Shared all-reduce dominates: 2(S-1) * bytes of the shared blocks.
  EXPECT_GE(total, 2ull * 3 * spec.bytes(spec.shared));
}

#include <nlohmann/json.hpp>

#include "models/error.hpp"
#include "schedule/profile.hpp"
#include "schedule/timeline.hpp"

TEST(Timeline, ChromeTraceRoundTrip) {
  Timeline t;
  t.source = "sim";
  t.workers = 2;
  t.events = {{0, 0, "compute", -1, 0.0, 0.5, 0, 50}, {1, 0, "send", 0, 0.5, 0.75, 1234, 0},
              {0, 0, "recv", 0, 0.5, 0.75, 0, 0, 1234}};
  const auto j = to_json(t);
  // Metadata first: node 0 named and sorted, each worker a named, sorted thread.
  ASSERT_EQ(j["traceEvents"].size(), 2u + 2 * 2 + 3);
  EXPECT_EQ(j["traceEvents"][0]["name"], "process_name");
  EXPECT_EQ(j["traceEvents"][0]["args"]["name"], "node 0");
  EXPECT_EQ(j["traceEvents"][7]["ts"].get<double>(), 0.5e6);
  const Timeline back = timeline_from_json(j);
  ASSERT_EQ(back.events.size(), 3u);
  EXPECT_EQ(back.events[1].kind, "send");
  EXPECT_EQ(back.events[1].bytes, 1234u);
  EXPECT_EQ(back.events[2].bytes_received, 1234u);
  EXPECT_DOUBLE_EQ(back.events[1].end_s, 0.75);
  auto bad = j;
  bad["traceEvents"][6]["tid"] = 5;
  EXPECT_THROW(timeline_from_json(bad), UserError);
}

// A long run's trace keeps its first and last rounds and an even sample; a
// short one (or --trace-all) keeps every round.
TEST(Timeline, TraceRoundsBoundsLongRuns) {
  const TraceRounds tr;
  EXPECT_EQ(tr.kept(40), 40);
  int kept = 0;
  for (int r = 0; r < 7840; ++r) kept += tr.keep(r, 7840);
  EXPECT_EQ(kept, tr.kept(7840));
  EXPECT_LE(kept, 2 * tr.ends + tr.sample + 1);
  EXPECT_TRUE(tr.keep(0, 7840) && tr.keep(7, 7840) && tr.keep(7839, 7840) && tr.keep(7832, 7840));
  EXPECT_FALSE(tr.keep(9, 7840));
  TraceRounds all;
  all.all = true;
  EXPECT_EQ(all.kept(7840), 7840);
}

// The receiving side of every transfer gets the bytes its sender sends it.
TEST(Accounting, WireReceivedMirrorsWireSent) {
  for (OpKind k : {OpKind::allreduce, OpKind::reduce, OpKind::broadcast, OpKind::send}) {
    CommOp op(k, Payload::shared, k == OpKind::send ? std::vector<int>{3, 1} : std::vector<int>{3, 0, 2}, {}, 4000);
    const auto sent = wire_sent(op, 4), got = wire_received(op, 4);
    std::uint64_t s = 0, g = 0;
    for (int w = 0; w < 4; ++w) s += sent[w], g += got[w];
    EXPECT_EQ(s, g) << to_string(k);
  }
  const CommOp send(OpKind::send, Payload::shared, {3, 1}, {}, 4000);
  EXPECT_EQ(wire_received(send, 4)[1], 4000u);
  EXPECT_EQ(wire_received(send, 4)[3], 0u);
}

TEST(Profile, RoundTripAndValidation) {
  Profile p;
  p.model.model = "preact-resnet18";
  p.batch_size = 64;
  p.device = "cpu";
  p.threads = 2;
  p.blocks = {{"stem", 0.001, 0.002}, {"head", 0.0001, 0.0002}};
  p.optimizer_step_s_per_param = 1e-9;
  p.iteration_s = 0.004;
  p.blocks_timed_s = 0.005;
  p.cores = 2;
  p.iteration_samples = {{2, {0.004, 0.0041}}, {4, {0.0085, 0.009, 0.0079}}};
  p.first_iteration_s = 0.0015;
  const auto j = to_json(p);
  EXPECT_EQ(to_json(profile_from_json(j)), j);
  const Profile back = profile_from_json(j);
  ASSERT_EQ(back.iteration_samples.size(), 2u);
  EXPECT_EQ(back.iteration_samples[1].processes, 4);
  EXPECT_EQ(back.iteration_samples[1].iteration_s, (std::vector<double>{0.0085, 0.009, 0.0079}));
  EXPECT_EQ(back.cores, 2);
  EXPECT_EQ(back.first_iteration_s, 0.0015);
  // Profiles written before these fields still read (none of them required).
  auto old = j;
  for (const char* k : {"iteration_s", "blocks_timed_s", "cores", "iteration_samples", "first_iteration_s"}) old.erase(k);
  EXPECT_TRUE(profile_from_json(old).iteration_samples.empty());
  EXPECT_EQ(profile_from_json(old).first_iteration_s, 0.0);
  auto negative = j;
  negative["iteration_samples"][0]["iteration_s"][1] = -0.1;
  EXPECT_THROW(profile_from_json(negative), UserError);
  auto bad = j;
  bad["blocks"][1]["forward_s"] = -1;
  try {
    profile_from_json(bad);
    FAIL();
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("blocks[1].forward_s"), std::string::npos) << e.what();
  }
}

// The even-share rule the profiler, the simulator and resist-bench-comm share.
TEST(Profile, CoreSlotsAndEvenShare) {
  EXPECT_EQ(core_slots(2, 1), 2);
  EXPECT_EQ(core_slots(2, 4), 1);  // one process with more threads than cores: still one at once
  EXPECT_EQ(core_slots(16, 2), 8);
  EXPECT_EQ(even_share_slowdown(4, 2, 1), 2.0);
  EXPECT_EQ(even_share_slowdown(1, 2, 1), 1.0);
  EXPECT_EQ(even_share_slowdown(3, 16, 2), 1.0);
  EXPECT_EQ(even_share_slowdown(4, 4, 2), 2.0);
}
