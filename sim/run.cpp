#include "sim/run.hpp"

#include <algorithm>
#include <cmath>
#include <map>
#include <optional>
#include <unordered_map>

#include "models/error.hpp"
#include "schedule/accounting.hpp"
#include "schedule/ist.hpp"
#include "schedule/round_setup.hpp"
#include "sim/as_run.hpp"
#include "sim/cost.hpp"

namespace resist::sim {

namespace {

// Everything that determines how long a round takes once all workers are ready.
std::string plan_key(const RoundPlan& p) {
  std::string k;
  auto put = [&k](const void* d, std::size_t n) { k.append(static_cast<const char*>(d), n); };
  put(&p.local_iters, sizeof p.local_iters);
  put(p.compute_s.data(), p.compute_s.size() * sizeof(double));
  put(p.backward_fraction.data(), p.backward_fraction.size() * sizeof(double));
  for (const auto& op : p.sync) {
    const int head[2] = {int(op.kind), int(op.ranks.size())};
    put(head, sizeof head);
    put(op.ranks.data(), op.ranks.size() * sizeof(int));
    put(&op.bytes, sizeof op.bytes);
  }
  put(p.op_delay_s.data(), p.op_delay_s.size() * sizeof(double));
  put(p.setup_s.data(), p.setup_s.size() * sizeof(double));
  put(p.entry_wait_s.data(), p.entry_wait_s.size() * sizeof(double));
  return k;
}

struct PlanStats {
  double duration_s = 0, compute_s = 0, communication_s = 0;
  std::uint64_t bytes = 0;
};

// Per plan: compute makespan (a worker's round set-up and compute), longest
// per-worker communication span.
std::vector<PlanStats> plan_stats(const EngineResult& r, int nplans) {
  std::vector<PlanStats> s(nplans);
  std::map<std::pair<int, int>, std::pair<double, double>> comm;  // (plan, worker) -> first start, last end
  std::map<std::pair<int, int>, double> busy;                      // (plan, worker) -> set-up + compute
  for (const auto& e : r.events) {
    if (e.op < 0) {
      double& b = busy[{e.plan, e.worker}];
      b += e.end_s - e.start_s;
      s[e.plan].compute_s = std::max(s[e.plan].compute_s, b);
      continue;
    }
    auto [it, fresh] = comm.try_emplace({e.plan, e.worker}, e.start_s, e.end_s);
    if (!fresh) {
      it->second.first = std::min(it->second.first, e.start_s);
      it->second.second = std::max(it->second.second, e.end_s);
    }
  }
  for (const auto& [k, v] : comm)
    s[k.first].communication_s = std::max(s[k.first].communication_s, v.second - v.first);
  for (int p = 0; p < nplans; ++p) {
    s[p].duration_s = r.plan_end_s[p] - r.plan_start_s[p];
    s[p].bytes = r.plan_bytes[p];
  }
  return s;
}


// The name and bytes of one worker's part of an op, as both backends trace it:
// the receiving side of a point-to-point transfer is "recv".
TimelineEvent comm_event(const CommOp& op, int w, int workers, const CollectiveOptions& collectives) {
  TimelineEvent t;
  t.kind = op.kind == OpKind::send && op.ranks.size() > 1 && op.ranks[1] == w ? "recv" : to_string(op.kind);
  t.bytes_received = wire_received(op, workers, collectives)[std::size_t(w)];
  return t;
}

// The trace of the rounds o.trace keeps: simulated rounds from the engine's
// events (shifted to where the round starts), estimated ones as compute only.
Timeline build_timeline(const RunOptions& o, const Platform& platform, const std::vector<RoundRow>& rows,
                        const EngineResult& er, const std::vector<RoundPlan>& to_run,
                        const std::vector<RoundPlan>& plans, const std::vector<int>& plan_of,
                        const std::vector<int>& slot_of_round) {
  const int S = o.schedule.workers, R = int(rows.size());
  Timeline t;
  t.source = "sim";
  t.workers = S;
  t.rounds = R;
  t.traced_rounds = o.trace.kept(R);
  group_by_node(t, platform.gpus_per_node, platform.name);
  std::vector<std::vector<const EngineEvent*>> by_slot(to_run.size());
  for (const auto& e : er.events) by_slot[std::size_t(e.plan)].push_back(&e);
  for (int r = 0; r < R; ++r) {
    if (!o.trace.keep(r, R)) continue;
    const int slot = slot_of_round[r];
    if (slot < 0) {
      const auto& plan = plans[std::size_t(plan_of[r])];
      for (int w = 0; w < S; ++w) {
        const double setup = plan.setup_s.empty() ? 0.0 : plan.setup_s[std::size_t(w)];
        if (setup > 0) t.events.push_back({w, r, "rebuild", -1, rows[r].start_s, rows[r].start_s + setup, 0, 0});
        t.events.push_back({w, r, "compute", -1, rows[r].start_s + setup,
                            rows[r].start_s + setup + plan.compute_s[w], 0, plan.local_iters});
      }
      continue;
    }
    // --full runs rounds back to back: the engine's clock is the run's clock.
    const double shift = o.full ? 0 : rows[r].start_s - er.plan_start_s[slot];
    for (const EngineEvent* e : by_slot[std::size_t(slot)]) {
      TimelineEvent ev;
      if (e->op >= 0) ev = comm_event(to_run[std::size_t(slot)].sync[std::size_t(e->op)], e->worker, S, o.engine.collectives);
      else ev.kind = e->op == kSetupOp ? "rebuild" : "compute";
      ev.worker = e->worker;
      ev.round = r;
      ev.op = std::max(-1, e->op);
      ev.start_s = e->start_s + shift;
      ev.end_s = e->end_s + shift;
      ev.bytes = e->bytes;
      ev.iters = e->op == -1 ? rows[r].local_iters : 0;
      t.events.push_back(std::move(ev));
    }
  }
  return t;
}

// Each round's plan: the per-worker compute time of the blocks it trains
// (IST: of its subnet) and the round's sync ops.
class Planner {
 public:
  Planner(const ModelSpec& spec, const Platform& platform, const RunOptions& o, const RoundSource& gen)
      : gen_(gen), o_(o), spec_(spec), platform_(platform),
        cost_(spec, platform, gen.header().config.batch_size, o.backward_factor, o.profile,
              gen.header().config.workers) {}

  RoundPlan plan(const Round& round) {
    const Schedule& header = gen_.header();
    RoundPlan plan;
    plan.round = round.index;
    plan.local_iters = round.local_iters;
    plan.sync = round.sync;
    apply_as_run(spec_, round, platform_.gpus_per_node, o_.as_run, plan);  // no-op unless o.as_run.enabled
    // IST: every worker trains its subnet (IstPlan::subnet_options).
    const IstPlan* ist = gen_.ist();
    add_packing(plan, cost_.pack_s_per_byte(ist != nullptr));
    std::optional<IstPartition> part;
    if (ist) part = ist->partition(round.index);
    for (int w = 0; w < header.config.workers; ++w) {
      const std::vector<int> blocks = trained_blocks(header, round, w);
      const ModelSpec* sub = part ? subnet_of(*ist, *part, w) : nullptr;
      // What it rebuilds and reloads before its iterations (schedule/round_setup.hpp).
      const RoundSetup setup = round_setup(header, prev_round_ ? &*prev_round_ : nullptr, round, w);
      plan.setup_s.push_back(cost_.round_setup_s(blocks, setup, w, sub));
      double compute = cost_.round_s(blocks, w, round.index, round.local_iters, sub);
      // Layer-parallel: the worker also trains an auxiliary head.
      if (const int target = round.workers[std::size_t(w)].aux_target; target >= 0)
        compute += round.local_iters * aux_s(target, w);
      plan.compute_s.push_back(compute);
      plan.backward_fraction.push_back(o_.engine.overlap ? cost_.backward_fraction(blocks, w, sub) : 0.0);
    }
    if (std::all_of(plan.setup_s.begin(), plan.setup_s.end(), [](double v) { return v == 0; })) plan.setup_s.clear();
    // On shared cores, a rank that has computed waits before its first sync op (Platform::sync_entry_delay_s).
    if (platform_.sync_entry_delay_s > 0)
      for (int w = 0; w < header.config.workers; ++w) {
        const bool syncs = std::any_of(plan.sync.begin(), plan.sync.end(), [&](const CommOp& op) { return op.involves(w); });
        if (!syncs) continue;
        plan.entry_wait_s.resize(std::size_t(header.config.workers), 0.0);
        plan.entry_wait_s[std::size_t(w)] = platform_.sync_entry_wait_s(plan.compute_s[std::size_t(w)]);
      }
    prev_round_ = round;
    return plan;
  }

 private:
  // Every op's participants first pack its payload into one buffer and back
  // (a profile's per-byte figure; sim/cost.hpp), before the op like as-run delays.
  static void add_packing(RoundPlan& plan, double s_per_byte) {
    if (!(s_per_byte > 0)) return;
    plan.op_delay_s.resize(plan.sync.size(), 0.0);
    for (std::size_t i = 0; i < plan.sync.size(); ++i) plan.op_delay_s[i] += s_per_byte * double(plan.sync[i].bytes);
  }

  // Subnets depend only on the hidden sizes |n_l(w)|, which are the same
  // every round, so their specs are built once per distinct size vector.
  const ModelSpec* subnet_of(const IstPlan& ist, const IstPartition& p, int w) {
    ModelOptions opt = ist.subnet_options(p, w);
    std::vector<std::int64_t> key(opt.hidden.begin(), opt.hidden.end());
    auto it = subnets_.find(key);
    if (it == subnets_.end()) it = subnets_.emplace(key, build_model(opt)).first;
    return &it->second;
  }

  const RoundSource& gen_;
  const RunOptions& o_;
  const ModelSpec& spec_;
  const Platform& platform_;
  const ComputeModel cost_;
  std::map<std::pair<int, int>, double> aux_s_;  // (target, rank) -> one iteration of the head

  double aux_s(int target, int rank) {
    auto it = aux_s_.find({target, rank});
    if (it == aux_s_.end())
      it = aux_s_.emplace(std::pair{target, rank},
                          cost_.aux_head_s(aux_head(spec_, target, gen_.header().config.aux_width), rank)).first;
    return it->second;
  }
  std::map<std::vector<std::int64_t>, ModelSpec> subnets_;
  // The round planned before this one (plan() is called in round order):
  // what each worker's set-up depends on (schedule/round_setup.hpp).
  std::optional<Round> prev_round_;
};

// The distinct plans (every round's, with options.full) and which one each round uses.
struct Plans {
  std::vector<RoundPlan> plans;
  std::vector<int> plan_of;
  std::vector<double> round_compute;  // per round: the slowest worker's compute
};

Plans make_plans(const ModelSpec& spec, const Platform& platform, const RunOptions& o, const RoundSource& gen,
                 RunResult& res) {
  Planner planner(spec, platform, o, gen);
  const int R = gen.num_rounds();
  Plans p;
  p.plan_of.resize(R);
  p.round_compute.resize(R);
  std::unordered_map<std::string, int> index;
  for (int r = 0; r < R; ++r) {
    const Round round = gen.round(r);
    const auto acc = account(spec, gen.header(), round, o.engine.collectives);
    res.rows[r].round = r;
    res.rows[r].local_iters = round.local_iters;
    res.rows[r].bytes_per_round = acc.bytes_per_round;
    res.rows[r].wire_bytes = acc.wire_bytes + acc.eval_wire_bytes;
    res.bytes_per_round = std::max(res.bytes_per_round, acc.bytes_per_round);
    RoundPlan plan = planner.plan(round);
    for (std::size_t w = 0; w < plan.compute_s.size(); ++w)
      p.round_compute[r] = std::max(p.round_compute[r], plan.compute_s[w] + (plan.setup_s.empty() ? 0.0 : plan.setup_s[w]));
    if (o.full) {
      p.plan_of[r] = r;
      p.plans.push_back(std::move(plan));
      continue;
    }
    auto [it, fresh] = index.try_emplace(plan_key(plan), int(p.plans.size()));
    if (fresh) p.plans.push_back(std::move(plan));
    p.plan_of[r] = it->second;
  }
  return p;
}

// Which plans to simulate: all, or an evenly spaced sample.
std::vector<int> choose_plans(std::size_t n, const RunOptions& o) {
  std::vector<int> chosen(n);
  for (std::size_t i = 0; i < n; ++i) chosen[i] = int(i);
  if (!o.full && o.max_simulated_rounds > 0 && int(n) > o.max_simulated_rounds) {
    chosen.clear();
    const int k = o.max_simulated_rounds;
    for (int i = 0; i < k; ++i) chosen.push_back(int(std::llround(double(i) * (n - 1) / (k - 1 > 0 ? k - 1 : 1))));
    chosen.erase(std::unique(chosen.begin(), chosen.end()), chosen.end());
  }
  return chosen;
}

// Every round's row from its simulated plan, or estimated from the sample.
void fill_rows(const RunOptions& o, const Plans& p, const std::vector<int>& run_slot, const EngineResult& er,
               const std::vector<PlanStats>& stats, RunResult& res) {
  // Estimates for plans outside the sample: mean exposed and busy communication.
  double mean_exposed = 0, mean_comm = 0;
  for (std::size_t i = 0; i < stats.size(); ++i) {
    mean_exposed += std::max(0.0, stats[i].duration_s - stats[i].compute_s) / stats.size();
    mean_comm += stats[i].communication_s / stats.size();
  }
  double clock = 0;
  for (int r = 0; r < int(res.rows.size()); ++r) {
    RoundRow& row = res.rows[r];
    const int slot = run_slot[p.plan_of[r]];
    row.start_s = clock;
    if (o.full || slot >= 0) {
      const int i = o.full ? r : slot;
      row.duration_s = o.full ? er.plan_end_s[r] - clock : stats[i].duration_s;
      row.compute_s = stats[i].compute_s;
      row.communication_s = stats[i].communication_s;
      row.wire_bytes = stats[i].bytes;
    } else {
      row.simulated = false;
      row.compute_s = p.round_compute[r];
      row.duration_s = p.round_compute[r] + mean_exposed;
      row.communication_s = mean_comm;
    }
    row.exposed_communication_s = std::max(0.0, row.duration_s - row.compute_s);
    clock += row.duration_s;
    res.compute_s += row.compute_s;
    res.communication_s += row.communication_s;
    res.exposed_communication_s += row.exposed_communication_s;
    res.wire_bytes_total += row.wire_bytes;
  }
  res.wall_clock_s = o.full ? er.end_s : clock;
}

// The run's timeline: the rounds o.trace keeps (build_timeline).
void fill_timeline(const RunOptions& o, const Platform& platform, const Plans& p, const std::vector<RoundPlan>& to_run,
                   const std::vector<int>& run_slot, const EngineResult& er, RunResult& res) {
  std::vector<int> slot_of_round(res.rows.size());
  for (std::size_t r = 0; r < res.rows.size(); ++r) slot_of_round[r] = o.full ? int(r) : run_slot[p.plan_of[r]];
  res.timeline = build_timeline(o, platform, res.rows, er, to_run, p.plans, p.plan_of, slot_of_round);
}

}  // namespace

void check_scale(const ModelSpec& spec, const Platform& platform, const RunOptions& o) {
  const auto& c = o.file ? o.file->config : o.schedule;
  const ComputeModel cost(spec, platform, c.batch_size, o.backward_factor, o.profile);
  std::vector<int> all(spec.blocks.size());
  for (std::size_t b = 0; b < all.size(); ++b) all[b] = int(b);
  const double slowdown = platform.straggler_probability > 0 ? platform.straggler_slowdown : 1.0;
  double slowest = 1e300;
  for (int w = 0; w < c.workers && w < platform.gpus(); ++w) slowest = std::min(slowest, platform.speed_factor(w));
  RoundPlan plan;
  plan.compute_s.push_back(effective_local_iters(c) * cost.iteration_s(all, 0) * platform.speed_factor(0) / slowest *
                           slowdown);
  std::vector<int> ranks(std::size_t(std::max(1, c.workers)));
  for (std::size_t r = 0; r < ranks.size(); ++r) ranks[r] = int(r);
  plan.sync.push_back({OpKind::allreduce, Payload::shared, ranks, all, spec.bytes(all)});
  check_durations(platform, {plan}, o.engine);
}

RunResult simulate_run(const ModelSpec& spec, const Platform& platform, const RunOptions& options) {
  RunOptions o = options;  // with the platform's node size and α–β figures for `auto`
  o.engine.collectives = fit_to_platform(options.engine.collectives, platform);
  const RoundSource gen = o.file ? RoundSource(spec, *o.file) : RoundSource(spec, o.schedule);
  const int S = gen.header().config.workers;
  check_ranks(platform, S, "--workers");
  if (o.max_simulated_rounds < 0) throw UserError("--max-simulated-rounds: must be >= 0");
  if (o.engine.collectives.chunk_bytes < 4) throw UserError("--chunk-bytes: must be >= 4");
  if (o.engine.bucket_bytes < 4) throw UserError("--bucket-bytes: must be >= 4");
  check_scale(spec, platform, o);
  RunResult res;
  res.rounds = gen.num_rounds();
  res.total_iters = gen.header().total_iters;
  res.rows.resize(res.rounds);
  const Plans p = make_plans(spec, platform, o, gen, res);
  res.distinct_rounds = int(p.plans.size());

  std::vector<RoundPlan> to_run;
  std::vector<int> run_slot(p.plans.size(), -1);
  for (int c : choose_plans(p.plans.size(), o)) {
    run_slot[c] = int(to_run.size());
    to_run.push_back(p.plans[c]);
  }
  res.simulated_rounds = int(to_run.size());
  EngineOptions eo = o.engine;
  eo.barrier = !o.full;
  const EngineResult er = run_engine(platform, S, to_run, eo);
  const auto stats = plan_stats(er, int(to_run.size()));
  fill_rows(o, p, run_slot, er, stats, res);
  if (o.timeline) fill_timeline(o, platform, p, to_run, run_slot, er, res);
  return res;
}

CollectiveOptions fit_to_platform(CollectiveOptions c, const Platform& p) {
  c.ranks_per_node = p.gpus_per_node;
  const LinkSpec inter = p.route(0, p.gpus_per_node);
  c.inter_latency_s = inter.latency_s;
  c.inter_bandwidth_Bps = inter.bandwidth_Bps;
  if (p.gpus_per_node > 1) {
    const LinkSpec intra = p.route(0, 1);
    c.intra_latency_s = intra.latency_s;
    c.intra_bandwidth_Bps = intra.bandwidth_Bps;
  }
  return c;
}

CollectiveResult simulate_collective(const Platform& platform, Collective c, Algorithm algorithm,
                                     std::uint64_t bytes, int ranks, const EngineOptions& options) {
  if (ranks < 2) throw UserError("--ranks: must be >= 2 (got " + std::to_string(ranks) + ")");
  if (c == Collective::send && ranks != 2) throw UserError("--ranks: a send needs exactly 2 ranks");
  if (bytes % 4 != 0) throw UserError("--bytes: must be a multiple of 4 (fp32), got " + std::to_string(bytes));
  if (options.collectives.chunk_bytes < 4) throw UserError("--chunk-bytes: must be >= 4");
  check_ranks(platform, ranks, "--ranks");
  EngineOptions eo = options;
  eo.barrier = false;
  eo.overlap = false;
  eo.collectives = fit_to_platform(options.collectives, platform);
  RoundPlan plan;
  plan.compute_s.assign(ranks, 0.0);
  plan.backward_fraction.assign(ranks, 0.0);
  CommOp op;
  op.kind = c == Collective::reduce ? OpKind::reduce
            : c == Collective::broadcast ? OpKind::broadcast
            : c == Collective::send      ? OpKind::send
                                         : OpKind::allreduce;
  op.bytes = bytes;
  for (int i = 0; i < ranks; ++i) op.ranks.push_back(i);
  plan.sync.push_back(op);
  plan.collectives.emplace_back(c, algorithm, op.ranks, bytes / 4, eo.collectives);
  const EngineResult er = run_engine(platform, ranks, {plan}, eo);
  CollectiveResult r;
  r.algorithm = plan.collectives[0].algorithm();
  r.time_s = er.end_s;
  r.wire_bytes = er.plan_bytes[0];
  r.algbw_Bps = r.time_s > 0 ? double(bytes) / r.time_s : 0;
  const double n = ranks;
  const double factor = c == Collective::allreduce                                        ? 2.0 * (n - 1) / n
                        : c == Collective::allgather || c == Collective::reduce_scatter ? (n - 1) / n
                                                                                         : 1.0;
  r.busbw_Bps = r.algbw_Bps * factor;
  return r;
}

CollectiveResult simulate_collective(const Platform& platform, OpKind kind, std::uint64_t bytes, int ranks,
                                     const EngineOptions& options) {
  const Collective c = collective_of(kind);
  return simulate_collective(platform, c, configured_algorithm(c, options.collectives), bytes, ranks, options);
}

}  // namespace resist::sim
