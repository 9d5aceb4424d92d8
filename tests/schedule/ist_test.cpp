// IST: neuron partitions, pieces, sync ops and their accounting.
#include <gtest/gtest.h>

#include <compare>
#include <map>
#include <set>

#include <nlohmann/json.hpp>

#include "models/error.hpp"
#include "schedule/accounting.hpp"
#include "schedule/ist.hpp"
#include "tests/support/schedule.hpp"

using namespace resist;

namespace {

ModelSpec mlp(int input, std::vector<int> hidden, int classes) {
  ModelOptions o;
  o.model = "mlp";
  o.dataset = "fashion-mnist";
  o.input = input;
  o.hidden = std::move(hidden);
  o.classes = classes;
  return build_model(o);
}
ModelSpec small() { return mlp(5, {7, 5, 6}, 3); }

ScheduleConfig ist_config(const ModelSpec& spec, int S, IstSync sync, int rounds, std::uint64_t seed = 1) {
  ScheduleConfig c;
  c.protocol = Protocol::ist;
  c.model = spec.options;
  c.workers = S;
  c.seed = seed;
  c.rounds = rounds;
  c.local_iters = 3;
  c.ist_sync = sync;
  return c;
}

// Weights only (the 2-D parameters) a worker trains.
std::uint64_t trained_weights(const IstPlan& plan, const IstPartition& p, int w) {
  std::uint64_t n = 0;
  for (const auto& s : plan.worker_slices(p, w))
    if (!s.cols.empty() && s.role != IstRole::shared) n += s.numel();
  return n;
}
std::uint64_t all_weights(const ModelSpec& spec) {
  std::uint64_t n = 0;
  for (const auto& b : spec.blocks)
    for (const auto& p : b.params)
      if (p.shape.size() == 2) n += p.numel();
  return n;
}

// Every element of every parameter: (block, param, flat index).
struct Elem {
  int block, param;
  std::int64_t flat;
  auto operator<=>(const Elem&) const = default;
};
std::vector<Elem> elements(const IstPlan& plan, bool shared) {
  std::vector<Elem> out;
  for (const auto& ip : plan.params())
    if ((ip.role == IstRole::shared) == shared)
      for (std::int64_t e = 0; e < ip.rows * ip.cols; ++e) out.push_back({ip.block, ip.param, e});
  return out;
}

}  // namespace

TEST(IstPartition, DisjointCoveringBalancedSorted) {
  const auto spec = mlp(4096, {8192, 4096}, 35);
  for (int S : {1, 2, 3, 4, 8}) {
    const IstPlan plan(spec, S, 7);
    for (int r : {0, 1, 5}) {
      const auto p = plan.partition(r);
      ASSERT_EQ(p.neurons.size(), 2u);
      for (int l = 0; l < 2; ++l) {
        const std::int64_t H = spec.blocks[l].out_channels;
        std::vector<int> seen(H, 0);
        for (int w = 0; w < S; ++w) {
          const auto& set = p.neurons[l][w];
          EXPECT_TRUE(std::is_sorted(set.begin(), set.end()));
          EXPECT_LE(std::abs(std::int64_t(set.size()) - H / S), 1);
          for (auto n : set) {
            ++seen[n];
            EXPECT_EQ(p.owner[l][n], w);
          }
        }
        for (int s : seen) ASSERT_EQ(s, 1);
      }
    }
  }
}

TEST(IstPartition, DeterministicAndRoundDependent) {
  const auto spec = mlp(64, {32, 16}, 4);
  const IstPlan a(spec, 4, 3), b(spec, 4, 3), c(spec, 4, 4);
  EXPECT_EQ(a.partition(2).neurons, b.partition(2).neurons);
  EXPECT_NE(a.partition(2).neurons, a.partition(3).neurons);
  EXPECT_NE(a.partition(2).neurons, c.partition(2).neurons);
}

// With S dividing every hidden size, worker w trains exactly
//   H1*(in + 3)/S + sum_{l>=2} (H_l*H_{l-1}/S^2 + 3*H_l/S) + C*H_last/S
// parameters besides the shared output bias; of the weight matrices it holds
// between 1/S^2 and 1/S.
TEST(IstShare, ClosedFormAndBounds) {
  const std::vector<std::vector<int>> models = {{4096}, {8192, 4096}, {1024, 512, 256}};
  for (const auto& hidden : models) {
    const auto spec = mlp(4096, hidden, 35);
    for (int S : {1, 2, 4, 8}) {
      const IstPlan plan(spec, S, 11);
      std::uint64_t expected = std::uint64_t(hidden[0]) * (4096 + 3) / S;
      std::uint64_t weights = std::uint64_t(hidden[0]) * 4096 / S;
      for (std::size_t l = 1; l < hidden.size(); ++l) {
        expected += std::uint64_t(hidden[l]) * hidden[l - 1] / (S * S) + 3ull * hidden[l] / S;
        weights += std::uint64_t(hidden[l]) * hidden[l - 1] / (S * S);
      }
      expected += 35ull * hidden.back() / S;
      weights += 35ull * hidden.back() / S;
      EXPECT_EQ(plan.shared_params(), 35u);
      for (int r : {0, 3}) {
        const auto p = plan.partition(r);
        for (int w = 0; w < S; ++w) {
          EXPECT_EQ(plan.trained_params(p, w), expected) << spec.name << " S=" << S;
          EXPECT_EQ(trained_weights(plan, p, w), weights);
          std::uint64_t slices = 0;
          for (const auto& s : plan.worker_slices(p, w)) slices += s.numel();
          EXPECT_EQ(slices, expected + 35);
          const double share = double(weights) / double(all_weights(spec));
          EXPECT_GE(share, 1.0 / (S * S) - 1e-12);
          EXPECT_LE(share, 1.0 / S + 1e-12);
          if (hidden.size() == 1) {
            EXPECT_DOUBLE_EQ(share, 1.0 / S);
          }
        }
      }
    }
  }
  // Uneven sizes: the bounds still hold (up to one neuron of rounding).
  const auto spec = small();
  for (int S : {2, 3, 5}) {
    const IstPlan plan(spec, S, 2);
    const auto p = plan.partition(0);
    std::uint64_t sum = 0;
    for (int w = 0; w < S; ++w) sum += trained_weights(plan, p, w);
    const double mean = double(sum) / S / double(all_weights(spec));
    EXPECT_GE(mean, 1.0 / (S * S));
    EXPECT_LE(mean, 1.0 / S);
  }
}

// Brute force over every element: trained pieces are disjoint, held pieces
// partition every partitioned element, trained(r, w) is inside held(r, w) and
// equals the worker's slices; only hidden-to-hidden weights have untrained
// elements, and exactly the off-diagonal blocks.
TEST(IstPieces, DisjointAndCovering) {
  const auto spec = small();
  for (int S : {1, 2, 3, 5}) {
    const IstPlan plan(spec, S, 5);
    for (int r = 0; r < 4; ++r) {
      const auto p = plan.partition(r);
      std::map<Elem, int> trained, held;
      for (int w = 0; w < S; ++w) {
        std::set<Elem> slice;
        for (const auto& s : plan.worker_slices(p, w)) {
          if (s.role == IstRole::shared) continue;
          const auto& ip = plan.param(s.block, s.param);
          for (auto i : s.rows) {
            if (s.cols.empty()) slice.insert({s.block, s.param, i});
            for (auto j : s.cols) slice.insert({s.block, s.param, i * ip.cols + j});
          }
        }
        std::set<Elem> mine;
        for (const auto& e : elements(plan, false)) {
          const bool t = plan.contains({IstSetKind::trained, r, w}, p, e.block, e.param, e.flat);
          const bool h = plan.contains({IstSetKind::held, r, w}, p, e.block, e.param, e.flat);
          EXPECT_TRUE(!t || h) << "trained but not held";
          trained[e] += t;
          held[e] += h;
          if (t) mine.insert(e);
        }
        EXPECT_EQ(mine, slice) << "S=" << S << " w=" << w;
      }
      for (const auto& e : elements(plan, false)) {
        EXPECT_EQ(held[e], 1);
        EXPECT_LE(trained[e], 1);
        const auto& ip = plan.param(e.block, e.param);
        if (ip.role != IstRole::block) {
          EXPECT_EQ(trained[e], 1) << to_string(ip.role);
        } else {
          const int ro = p.owner[ip.layer][e.flat / ip.cols], co = p.owner[ip.layer - 1][e.flat % ip.cols];
          EXPECT_EQ(trained[e], ro == co ? 1 : 0);
        }
      }
      for (const auto& e : elements(plan, true)) {
        EXPECT_TRUE(plan.contains({IstSetKind::shared}, p, e.block, e.param, e.flat));
        EXPECT_FALSE(plan.contains({IstSetKind::all}, p, e.block, e.param, e.flat));
      }
    }
  }
}

// A worker's subnet spec has the shapes of its slices, parameter by parameter.
TEST(IstPartition, SubnetSpecMatchesSlices) {
  const auto spec = mlp(4096, {8192, 4096}, 35);
  const IstPlan plan(spec, 3, 4);
  const auto p = plan.partition(2);
  for (int w = 0; w < 3; ++w) {
    const auto sub = build_model(plan.subnet_options(p, w));
    const auto slices = plan.worker_slices(p, w);
    std::size_t k = 0;
    for (int b = 0; b < int(sub.blocks.size()); ++b) {
      EXPECT_EQ(sub.blocks[b].name, spec.blocks[b].name);
      for (const auto& prm : sub.blocks[b].params) {
        ASSERT_LT(k, slices.size());
        std::vector<std::int64_t> shape = {std::int64_t(slices[k].rows.size())};
        if (!slices[k].cols.empty()) shape.push_back(std::int64_t(slices[k].cols.size()));
        EXPECT_EQ(prm.shape, shape) << prm.name;
        ++k;
      }
    }
    EXPECT_EQ(k, slices.size());
    EXPECT_EQ(sub.param_count(), plan.trained_params(p, w) + plan.shared_params());
  }
}

TEST(IstPieces, CountsEqualIndexLists) {
  const auto spec = small();
  const IstPlan plan(spec, 3, 9);
  using K = IstSetKind;
  const std::vector<IstSet> sets = {{K::shared}, {K::all},        {K::trained, 1, 0}, {K::trained, 2, 2},
                                    {K::held, 1, 1}, {K::held, 2, 0}, {K::held, 2, 2}};
  for (const auto& a : sets)
    for (const auto& b : sets)
      for (int blk = 0; blk < int(spec.blocks.size()); ++blk) {
        std::uint64_t n = 0;
        for (int prm = 0; prm < int(spec.blocks[blk].params.size()); ++prm) {
          const auto idx = plan.piece_indices({a, b}, blk, prm);
          EXPECT_TRUE(std::is_sorted(idx.begin(), idx.end()));
          n += idx.size();
        }
        EXPECT_EQ(plan.piece_numel({a, b}, blk), n) << to_string(a.kind) << " " << to_string(b.kind);
      }
}

// The index lists are what an element-by-element membership test gives
// (piece_indices walks rows and columns instead: it must not change them).
TEST(IstPieces, IndexListsEqualElementwiseMembership) {
  const auto spec = small();
  const IstPlan plan(spec, 3, 4);
  using K = IstSetKind;
  const std::vector<IstSet> sets = {{K::shared},        {K::all},         {K::trained, 2, 1},
                                    {K::trained, 3, 0}, {K::held, 2, 2},  {K::held, 3, 1}};
  for (const auto& a : sets)
    for (const auto& b : sets)
      for (int blk = 0; blk < int(spec.blocks.size()); ++blk)
        for (int prm = 0; prm < int(spec.blocks[blk].params.size()); ++prm) {
          const auto pa = plan.partition(std::max(0, a.round)), pb = plan.partition(std::max(0, b.round));
          std::vector<std::int64_t> expect;
          std::int64_t n = 1;
          for (auto d : spec.blocks[blk].params[prm].shape) n *= d;
          for (std::int64_t e = 0; e < n; ++e)
            if (plan.contains(a, pa, blk, prm, e) && plan.contains(b, pb, blk, prm, e)) expect.push_back(e);
          EXPECT_EQ(plan.piece_indices({a, b}, blk, prm), expect)
              << to_string(a.kind) << " " << to_string(b.kind) << " block " << blk << " param " << prm;
        }
}

// Executes the sync ops symbolically, element by element: every worker must
// hold the newest value of each element it trains, every send must carry
// newest values, and after the last round (and every eval gather) rank 0
// holds the newest value of the whole model.
TEST(IstSchedule, SyncDeliversEveryPieceWhereTheNextRoundNeedsIt) {
  const auto spec = small();
  for (IstSync sync : {IstSync::decentralised, IstSync::parameter_server}) {
    for (int S : {1, 2, 3, 5}) {
      auto c = ist_config(spec, S, sync, 5, 3);
      c.eval_every = 2;
      ScheduleGenerator gen(spec, c);
      const IstPlan& plan = *gen.ist();
      const auto elems = elements(plan, false);
      std::map<Elem, int> latest;
      std::vector<std::map<Elem, int>> have(S);
      const auto p0 = plan.partition(0);
      for (const auto& e : elems) {
        latest[e] = 0;
        for (int w = 0; w < S; ++w) {
          const bool start = sync == IstSync::parameter_server
                                 ? (w == 0 || plan.contains({IstSetKind::trained, 0, w}, p0, e.block, e.param, e.flat))
                                 : plan.contains({IstSetKind::held, 0, w}, p0, e.block, e.param, e.flat);
          if (start) have[w][e] = 0;
        }
      }
      int version = 0;
      for (int r = 0; r < gen.num_rounds(); ++r) {
        const Round round = gen.round(r);
        const auto p = plan.partition(r);
        for (int w = 0; w < S; ++w)
          for (const auto& e : elems)
            if (plan.contains({IstSetKind::trained, r, w}, p, e.block, e.param, e.flat)) {
              ASSERT_TRUE(have[w].count(e) && have[w][e] == latest[e])
                  << "S=" << S << " round " << r << " worker " << w << " trains a stale element";
              have[w][e] = latest[e] = ++version;
            }
        int shared_ops = 0;
        bool eval_gather = false;
        for (const auto& op : round.sync) {
          ASSERT_TRUE(op.piece.has_value());
          if (op.payload == Payload::shared) {
            ++shared_ops;
            EXPECT_EQ(op.kind, OpKind::allreduce);
            EXPECT_EQ(int(op.ranks.size()), S);
            EXPECT_EQ(op.blocks, std::vector<int>{int(spec.blocks.size()) - 1});
            EXPECT_EQ(op.bytes, 4u * 3);
            continue;
          }
          ASSERT_EQ(op.kind, OpKind::send);
          eval_gather |= op.payload == Payload::eval;
          const int src = op.ranks[0], dst = op.ranks[1];
          const auto pf = plan.partition(std::max(0, op.piece->from.round));
          const auto pt = plan.partition(std::max(0, op.piece->to.round));
          std::uint64_t n = 0;
          std::set<int> blocks;
          for (const auto& e : elems)
            if (plan.contains(op.piece->from, pf, e.block, e.param, e.flat) &&
                plan.contains(op.piece->to, pt, e.block, e.param, e.flat)) {
              ASSERT_TRUE(have[src].count(e) && have[src][e] == latest[e]) << "stale element sent";
              have[dst][e] = latest[e];
              ++n;
              blocks.insert(e.block);
            }
          EXPECT_EQ(op.bytes, 4 * n);
          EXPECT_EQ(std::vector<int>(blocks.begin(), blocks.end()), op.blocks);
        }
        EXPECT_EQ(shared_ops, S > 1 ? 1 : 0);
        const bool final = r + 1 == gen.num_rounds();
        if (final || eval_gather || sync == IstSync::parameter_server) {
          for (const auto& e : elems) ASSERT_EQ(have[0][e], latest[e]) << "rank 0 misses an element";
        }
        // The parameter server has the whole model after every gather anyway.
        EXPECT_EQ(eval_gather, sync == IstSync::decentralised && S > 1 && !final && (r + 1) % 2 == 0);
      }
    }
  }
}

TEST(IstSchedule, DeterministicAndJsonRoundTrip) {
  const auto spec = mlp(20, {12, 8}, 4);
  for (IstSync sync : {IstSync::decentralised, IstSync::parameter_server}) {
    auto c = ist_config(spec, 3, sync, 4, 123456789012345ull);
    c.eval_every = 2;
    const auto j = to_json(make_schedule(spec, c));
    EXPECT_EQ(j, to_json(make_schedule(spec, c)));
    EXPECT_EQ(j["config"]["ist_sync"], to_string(sync));
    const Schedule back = schedule_from_json(nlohmann::json::parse(j.dump()));
    EXPECT_EQ(to_json(back), j);
    EXPECT_EQ(back.config.ist_sync, sync);
    ASSERT_TRUE(back.rounds[1].sync[1].piece.has_value());
    c.seed = 5;
    EXPECT_NE(to_json(make_schedule(spec, c)), j);
  }
}


TEST(IstSchedule, BadJsonNamesThePath) {
  const auto spec = mlp(20, {12, 8}, 4);
  const auto good = to_json(make_schedule(spec, ist_config(spec, 3, IstSync::decentralised, 3)));
  auto j = good;
  j["rounds"][1]["sync"][2]["bytes"] = 8;
  EXPECT_NE(resist::test::schedule_read_error(j).find("rounds[1].sync[2].bytes"), std::string::npos) << resist::test::schedule_read_error(j);
  j = good;
  j["rounds"][0]["sync"][1]["piece"]["from"]["set"] = "mine";
  EXPECT_NE(resist::test::schedule_read_error(j).find("rounds[0].sync[1].piece.from.set"), std::string::npos) << resist::test::schedule_read_error(j);
  j = good;
  j["rounds"][0]["sync"][1]["piece"]["to"]["worker"] = 3;
  EXPECT_NE(resist::test::schedule_read_error(j).find("rounds[0].sync[1].piece.to.worker"), std::string::npos) << resist::test::schedule_read_error(j);
  j = good;
  j["rounds"][0]["sync"][1].erase("piece");
  EXPECT_NE(resist::test::schedule_read_error(j).find("rounds[0].sync[1]"), std::string::npos) << resist::test::schedule_read_error(j);
  j = good;
  j["config"]["ist_sync"] = "gossip";
  EXPECT_NE(resist::test::schedule_read_error(j).find("config.ist_sync"), std::string::npos) << resist::test::schedule_read_error(j);
  j = good;
  j["config"]["workers"] = 9;  // more workers than neurons in fc2
  EXPECT_NE(resist::test::schedule_read_error(j).find("--workers"), std::string::npos) << resist::test::schedule_read_error(j);
}

// The accounting of IST rounds, against independent brute-force counts.
TEST(IstAccounting, ParamsAndWireBytes) {
  const auto spec = small();
  for (IstSync sync : {IstSync::decentralised, IstSync::parameter_server}) {
    for (int S : {2, 3}) {
      ScheduleGenerator gen(spec, ist_config(spec, S, sync, 3, 8));
      const IstPlan& plan = *gen.ist();
      const auto elems = elements(plan, false);
      for (int r = 0; r + 1 < gen.num_rounds(); ++r) {
        const auto a = account(spec, gen.header(), gen.round(r));
        const auto p = plan.partition(r), q = plan.partition(r + 1);
        std::uint64_t table = 0;
        for (int w = 0; w < S; ++w) {
          EXPECT_EQ(a.params_per_worker[w], plan.trained_params(p, w) + 3);
          table += 8 * a.params_per_worker[w];
        }
        EXPECT_EQ(a.bytes_per_round, table);
        std::uint64_t moved = 0;
        for (const auto& e : elems) {
          if (sync == IstSync::decentralised) {
            int from = -1, to = -1;
            for (int w = 0; w < S; ++w) {
              if (plan.contains({IstSetKind::held, r, w}, p, e.block, e.param, e.flat)) from = w;
              if (plan.contains({IstSetKind::held, r + 1, w}, q, e.block, e.param, e.flat)) to = w;
            }
            moved += from != to;
          } else {
            for (int w = 1; w < S; ++w) {
              moved += plan.contains({IstSetKind::trained, r, w}, p, e.block, e.param, e.flat);
              moved += plan.contains({IstSetKind::trained, r + 1, w}, q, e.block, e.param, e.flat);
            }
          }
        }
        const auto round = gen.round(r);
        ASSERT_EQ(round.sync.front().payload, Payload::shared);
        // The shared all-reduce of the 3 output biases: a ring moves 2(S-1) x 12 bytes.
        const std::uint64_t shared = wire_total(round.sync.front());
        EXPECT_EQ(shared, 2u * (S - 1) * 12);
        EXPECT_EQ(a.wire_bytes, 4 * moved + shared) << to_string(sync) << " S=" << S;
      }
    }
  }
}

TEST(IstSchedule, RejectsWhatItCannotPartition) {
  ModelOptions o;
  o.model = "preact-resnet18";
  o.dataset = "cifar10";
  const auto resnet = build_model(o);
  ScheduleConfig c;
  c.protocol = Protocol::ist;
  c.model = o;
  c.rounds = 1;
  try {
    ScheduleGenerator gen(resnet, c);
    FAIL() << "accepted a ResNet";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("not a fully-connected network"), std::string::npos) << e.what();
  }
  const auto spec = small();  // smallest hidden layer: 5 neurons
  EXPECT_THROW(ScheduleGenerator(spec, ist_config(spec, 6, IstSync::decentralised, 1)), UserError);
  EXPECT_NO_THROW(ScheduleGenerator(spec, ist_config(spec, 5, IstSync::decentralised, 1)));
  EXPECT_THROW(parse_ist_sync("ring"), UserError);
}
