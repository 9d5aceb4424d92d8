#include "sim/replay.hpp"

#include <algorithm>
#include <utility>

#include "models/error.hpp"
#include "schedule/collectives.hpp"

namespace resist::sim {

bool alpha_beta_exact(const Platform& p, const EngineOptions& o) {
  const auto& n = p.network;
  const LinkSpec r = p.route(0, 1);
  const bool window_ok = r.latency_s <= 0 || n.tcp_gamma_bytes / (2 * r.latency_s) >= r.bandwidth_Bps;
  return p.gpus_per_node == 1 && p.cores_per_node == 0 && p.topology == "star" && n.model == "CM02" && n.latency_factor == 1 &&
         n.bandwidth_factor == 1 && !n.crosstraffic && window_ok && !o.overlap;
}

namespace {

struct Replay {
  const Platform& platform;
  const EngineOptions& options;
  bool uniform = false;  // one GPU per node on a star: every route is the same
  LinkSpec flat_route;
  std::vector<double> ready;  // per rank: when it has finished everything so far
  std::vector<double> entry_wait;  // per rank: still to wait before its next op (RoundPlan::entry_wait_s)
  std::vector<Transfer> transfers;
  std::vector<double> end;  // per message of the current step
  EngineResult res;

  // One op: every step's messages start when both ends are ready.
  void op(int p, int i, const CommOp& c, const CollectivePlan& plan, double delay_s) {
    const auto& ranks = plan.ranks();
    const int n = plan.size();
    const double step_wait = platform.step_wait_s(ranks);  // Platform::collective_step_wait_s
    std::vector<double> begin(n);
    std::vector<std::uint64_t> sent(n, 0);
    for (int pos = 0; pos < n; ++pos) {
      begin[pos] = ready[ranks[pos]];
      ready[ranks[pos]] += delay_s;  // launch latency, group set-up (engine.hpp: op_delay_s)
      if (!entry_wait.empty()) ready[ranks[pos]] += std::exchange(entry_wait[std::size_t(ranks[pos])], 0.0);
    }
    for (int k = 0; k < plan.steps(); ++k) {
      transfers.clear();
      plan.transfers(k, -1, transfers);
      // Ends first (every message of the step sees its ranks' times before
      // the step), then advance both ends of each message.
      end.resize(transfers.size());
      for (std::size_t m = 0; m < transfers.size(); ++m) {
        const Transfer& t = transfers[m];
        const int a = ranks[t.src], b = ranks[t.dst];
        const LinkSpec route = uniform ? flat_route : platform.route(a, b);
        end[m] = std::max(ready[a], ready[b]) + step_wait + route.latency_s +
                 4.0 * double(t.count) / route.bandwidth_Bps;
        sent[t.src] += 4 * t.count;
      }
      for (std::size_t m = 0; m < transfers.size(); ++m) {
        double& ra = ready[ranks[transfers[m].src]];
        double& rb = ready[ranks[transfers[m].dst]];
        ra = std::max(ra, end[m]);
        rb = std::max(rb, end[m]);
      }
    }
    for (int pos = 0; pos < n; ++pos) {
      res.events.push_back({ranks[pos], p, i, int(c.kind), begin[pos], ready[ranks[pos]], sent[pos]});
      res.plan_bytes[p] += sent[pos];
    }
  }

  void plan(int p, const RoundPlan& plan, const std::vector<CollectivePlan>& collectives) {
    if (options.barrier) {
      const double t = *std::max_element(ready.begin(), ready.end());
      std::fill(ready.begin(), ready.end(), t);
      res.plan_start_s[p] = t;
    }
    for (int w = 0; w < int(ready.size()); ++w) {
      if (!plan.setup_s.empty() && plan.setup_s[w] > 0) {
        res.events.push_back({w, p, kSetupOp, -1, ready[w], ready[w] + plan.setup_s[w], 0});
        ready[w] += plan.setup_s[w];
      }
      res.events.push_back({w, p, -1, -1, ready[w], ready[w] + plan.compute_s[w], 0});
      ready[w] += plan.compute_s[w];
    }
    entry_wait = plan.entry_wait_s;
    for (int i = 0; i < int(plan.sync.size()); ++i)
      op(p, i, plan.sync[i], collectives[i], plan.op_delay_s.empty() ? 0.0 : plan.op_delay_s[i]);
    res.plan_end_s[p] = *std::max_element(ready.begin(), ready.end());
  }
};

}  // namespace

EngineResult replay_alpha_beta(const Platform& platform, int ranks, const std::vector<RoundPlan>& plans,
                               const EngineOptions& options) {
  if (options.overlap) throw UserError("--engine alpha-beta: cannot model --overlap (use --engine simgrid)");
  Replay r{platform, options, platform.gpus_per_node == 1 && platform.topology == "star", platform.route(0, 1),
           std::vector<double>(ranks, 0.0), {}, {}, {}, {}};
  r.res.plan_start_s.assign(plans.size(), 1e300);
  r.res.plan_end_s.assign(plans.size(), 0);
  r.res.plan_bytes.assign(plans.size(), 0);
  const auto collectives = collective_plans(plans, options);
  for (int p = 0; p < int(plans.size()); ++p) r.plan(p, plans[p], collectives[p]);
  if (!options.barrier)
    for (const auto& e : r.res.events)
      if (e.op < 0) r.res.plan_start_s[e.plan] = std::min(r.res.plan_start_s[e.plan], e.start_s);
  r.res.end_s = ranks > 0 ? *std::max_element(r.ready.begin(), r.ready.end()) : 0;
  return r.res;
}

}  // namespace resist::sim
