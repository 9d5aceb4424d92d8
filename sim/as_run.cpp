#include "sim/as_run.hpp"

#include <algorithm>
#include <set>

#include <nlohmann/json.hpp>

#include "models/error.hpp"
#include "schedule/json_util.hpp"
#include "sim/units.hpp"

namespace resist::sim {

using json_util::json;
using json_util::Reader;

const char* to_string(AsRun::Granularity g) {
  switch (g) {
    case AsRun::Granularity::bucket: return "bucket";
    case AsRun::Granularity::block: return "block";
    case AsRun::Granularity::tensor: return "tensor";
  }
  return "?";
}

namespace {

double seconds(const Reader& r) {
  const double v = r.j.is_string() ? parse_quantity(r.str(), Unit::time, r.path) : r.number();
  if (!(v >= 0) || v > 1e6) r.fail("must be a time from 0 to 1e6 s (got " + std::to_string(v) + ")");
  return v;
}

// Only these ops change: the round's parameter sync, not per-iteration
// gradients, IST pieces or evaluation gathers.
bool rewritten(const CommOp& op) {
  return op.phase == Phase::round_end && !op.piece && op.payload != Payload::eval && op.payload != Payload::gradients;
}

bool fresh_group(const CommOp& op) { return op.payload == Payload::partitioned || op.payload == Payload::handoff; }

// Local SGD as the authors ran it: the whole-model all-reduce keeps the
// shared blocks; each partitionable block is reduced to the first rank, then
// broadcast from it (all reduces first, as their code does at the round's end,
// the broadcasts at the next round's start).
std::vector<CommOp> blocks_via_root(const ModelSpec& spec, const std::vector<CommOp>& ops) {
  std::vector<CommOp> out;
  for (const CommOp& op : ops) {
    auto partitionable = [&](int b) { return spec.blocks[b].partitionable; };
    const bool split = op.kind == OpKind::allreduce && rewritten(op) &&
                       std::any_of(op.blocks.begin(), op.blocks.end(), partitionable);
    if (!split) {
      out.push_back(op);
      continue;
    }
    std::vector<int> shared, parts;
    for (int b : op.blocks) (spec.blocks[b].partitionable ? parts : shared).push_back(b);
    if (!shared.empty()) out.emplace_back(OpKind::allreduce, op.payload, op.ranks, shared, spec.bytes(shared));
    for (int b : parts)
      out.emplace_back(OpKind::reduce, Payload::partitioned, op.ranks, std::vector<int>{b}, spec.bytes({b}));
    for (int b : parts)
      out.emplace_back(OpKind::broadcast, Payload::handoff, op.ranks, std::vector<int>{b}, spec.bytes({b}));
  }
  return out;
}

// One op as the calls the implementation makes: itself, one per block, or one per tensor.
void split(const ModelSpec& spec, const CommOp& op, AsRun::Granularity g, std::vector<CommOp>& calls) {
  if (g == AsRun::Granularity::bucket || !rewritten(op)) {
    calls.push_back(op);
    return;
  }
  for (int b : op.blocks) {
    if (g == AsRun::Granularity::block) {
      calls.emplace_back(op.kind, op.payload, op.ranks, std::vector<int>{b}, spec.bytes({b}));
      continue;
    }
    for (const ParamSpec& p : spec.blocks[b].params)
      calls.emplace_back(op.kind, op.payload, op.ranks, std::vector<int>{b}, 4 * p.numel());
  }
}

// The authors' code creates two groups per partitioned block every round: one
// for the reduce among its holders, one for the broadcast to its next owners,
// also where the schedule has no such op (a block held by one worker needs no
// reduce; one that stays with its only holder needs no hand-off). Those
// one-rank groups are charged to the first call of that worker carrying the
// block (else its first call).
void groups_without_ops(const ModelSpec& spec, const Round& round, const std::vector<CommOp>& ops,
                        int gpus_per_node, const AsRun& a, const std::vector<CommOp>& calls,
                        std::vector<double>& delay) {
  for (int b : spec.partitionable) {
    std::vector<int> holders;
    for (int w = 0; w < int(round.workers.size()); ++w)
      if (std::count(round.workers[w].blocks.begin(), round.workers[w].blocks.end(), b)) holders.push_back(w);
    if (holders.empty()) continue;
    const CommOp* reduce = nullptr;
    bool handoff = false;
    for (const CommOp& op : ops) {
      if (!rewritten(op) || !std::count(op.blocks.begin(), op.blocks.end(), b)) continue;
      if (op.kind == OpKind::reduce) reduce = &op;
      if (op.payload == Payload::handoff) handoff = true;
    }
    const int missing = (reduce ? 0 : 1) + (handoff ? 0 : 1);
    if (missing == 0) continue;
    const int w = reduce ? reduce->root() : holders.front();
    int at = -1;
    for (int i = 0; i < int(calls.size()) && at < 0; ++i)
      if (calls[i].involves(w) && std::count(calls[i].blocks.begin(), calls[i].blocks.end(), b)) at = i;
    for (int i = 0; i < int(calls.size()) && at < 0; ++i)
      if (calls[i].involves(w)) at = i;
    if (at >= 0) delay[at] += missing * group_setup_s(a, {w}, gpus_per_node);
  }
}

}  // namespace

AsRun as_run_from_json(const json& j, const std::string& path) {
  const Reader r{j, path};
  if (!j.is_object()) r.fail("must be an object");
  const std::set<std::string> keys = {"granularity", "fresh_groups", "blocks_via_root", "launch_latency",
                                      "group_setup", "group_setup_per_rank", "group_setup_per_host"};
  for (const auto& [k, v] : j.items())
    if (!keys.count(k))
      throw UserError(path + "." + k + ": unknown key (accepted: granularity, fresh_groups, blocks_via_root, "
                      "launch_latency, group_setup, group_setup_per_rank, group_setup_per_host)");
  AsRun a;
  a.enabled = true;
  if (r.has("granularity")) {
    const std::string g = r.at("granularity").choice({"bucket", "block", "tensor"});
    a.granularity = g == "tensor" ? AsRun::Granularity::tensor
                    : g == "block" ? AsRun::Granularity::block
                                   : AsRun::Granularity::bucket;
  }
  if (r.has("fresh_groups")) a.fresh_groups = r.at("fresh_groups").boolean();
  if (r.has("blocks_via_root")) a.blocks_via_root = r.at("blocks_via_root").boolean();
  if (r.has("launch_latency")) a.launch_s = seconds(r.at("launch_latency"));
  if (r.has("group_setup")) a.setup_s = seconds(r.at("group_setup"));
  if (r.has("group_setup_per_rank")) a.setup_per_rank_s = seconds(r.at("group_setup_per_rank"));
  if (r.has("group_setup_per_host")) a.setup_per_host_s = seconds(r.at("group_setup_per_host"));
  return a;
}

json to_json(const AsRun& a) {
  return {{"granularity", to_string(a.granularity)}, {"fresh_groups", a.fresh_groups},
          {"blocks_via_root", a.blocks_via_root},    {"launch_latency", a.launch_s},
          {"group_setup", a.setup_s},                {"group_setup_per_rank", a.setup_per_rank_s},
          {"group_setup_per_host", a.setup_per_host_s}};
}

double group_setup_s(const AsRun& a, const std::vector<int>& ranks, int gpus_per_node) {
  std::set<int> hosts;
  for (int r : ranks) hosts.insert(r / std::max(1, gpus_per_node));
  return a.setup_s + a.setup_per_rank_s * double(ranks.size()) +
         a.setup_per_host_s * double(std::max<std::size_t>(hosts.size(), 1) - 1);
}

void apply_as_run(const ModelSpec& spec, const Round& round, int gpus_per_node, const AsRun& a, RoundPlan& plan) {
  if (!a.enabled) return;
  const std::vector<CommOp> ops = a.blocks_via_root ? blocks_via_root(spec, plan.sync) : plan.sync;
  std::vector<CommOp> calls;
  std::vector<double> delay;
  for (const CommOp& op : ops) {
    const std::size_t first = calls.size();
    split(spec, op, a.granularity, calls);
    delay.resize(calls.size(), 0.0);
    for (std::size_t i = first; i < calls.size(); ++i)
      if (rewritten(calls[i])) delay[i] += a.launch_s;
    if (a.fresh_groups && rewritten(op) && fresh_group(op) && first < calls.size())
      delay[first] += group_setup_s(a, op.ranks, gpus_per_node);
  }
  if (a.fresh_groups) groups_without_ops(spec, round, ops, gpus_per_node, a, calls, delay);
  plan.sync = std::move(calls);
  plan.op_delay_s = std::move(delay);
}

}  // namespace resist::sim
