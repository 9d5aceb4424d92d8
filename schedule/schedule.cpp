#include "schedule/schedule.hpp"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "models/error.hpp"
#include "schedule/ist.hpp"
#include "schedule/json_util.hpp"
#include "schedule/rng.hpp"

namespace resist {

namespace {

template <typename E, std::size_t N>
E parse_enum(const std::string& s, const std::pair<E, const char*> (&table)[N], const std::string& what) {
  std::string accepted;
  for (const auto& [e, name] : table) {
    if (s == name) return e;
    accepted += (accepted.empty() ? "" : ", ") + std::string(name);
  }
  throw UserError(what + ": unknown value '" + s + "' (accepted: " + accepted + ")");
}
template <typename E, std::size_t N>
const char* enum_name(E e, const std::pair<E, const char*> (&table)[N]) {
  for (const auto& [v, name] : table)
    if (v == e) return name;
  return "?";
}

constexpr std::pair<Protocol, const char*> kProtocols[] = {
    {Protocol::data_parallel, "data-parallel"},
    {Protocol::local_sgd, "local-sgd"},
    {Protocol::resist, "resist"},
    {Protocol::ist, "ist"},
};
constexpr std::pair<OpKind, const char*> kOps[] = {
    {OpKind::allreduce, "allreduce"},
    {OpKind::reduce, "reduce"},
    {OpKind::broadcast, "broadcast"},
    {OpKind::send, "send"},
};
constexpr std::pair<Payload, const char*> kPayloads[] = {
    {Payload::gradients, "gradients"}, {Payload::shared, "shared"},
    {Payload::partitioned, "partitioned"}, {Payload::handoff, "handoff"},
    {Payload::eval, "eval"},
};

constexpr std::pair<IstSync, const char*> kIstSyncs[] = {
    {IstSync::decentralised, "decentralised"},
    {IstSync::parameter_server, "parameter-server"},
};
constexpr std::pair<IstSetKind, const char*> kIstSets[] = {
    {IstSetKind::shared, "shared"}, {IstSetKind::all, "all"},
    {IstSetKind::trained, "trained"}, {IstSetKind::held, "held"},
};

std::vector<int> all_ranks(int n) {
  std::vector<int> r(n);
  for (int i = 0; i < n; ++i) r[i] = i;
  return r;
}

bool contains(const std::vector<int>& v, int x) { return std::find(v.begin(), v.end(), x) != v.end(); }

}  // namespace

const char* to_string(Protocol p) { return enum_name(p, kProtocols); }
const char* to_string(OpKind k) { return enum_name(k, kOps); }
const char* to_string(Payload p) { return enum_name(p, kPayloads); }
const char* to_string(IstSync s) { return enum_name(s, kIstSyncs); }
const char* to_string(IstSetKind k) { return enum_name(k, kIstSets); }
Protocol parse_protocol(const std::string& s) { return parse_enum(s, kProtocols, "--protocol"); }
IstSync parse_ist_sync(const std::string& s) { return parse_enum(s, kIstSyncs, "--ist-sync"); }
const std::vector<std::string>& protocol_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> v;
    for (const auto& [p, name] : kProtocols) v.push_back(name);
    return v;
  }();
  return names;
}

bool CommOp::involves(int rank) const { return contains(ranks, rank); }

int resist_blocks_per_worker(int partitionable, int workers, int min_depth) {
  const int even = (partitionable + workers - 1) / workers;
  return std::min(partitionable, std::max(even, min_depth));
}

std::vector<std::vector<int>> resist_partition(int B, int S, int k, std::uint64_t seed, int round) {
  assert(B >= 1 && S >= 1 && k >= 1 && k <= B);
  Rng rng(seed, std::uint64_t(round));
  std::vector<std::vector<int>> parts(S);
  std::vector<int> deck;  // cards not yet dealt, in dealing order
  auto add_permutation = [&] {
    std::vector<int> perm(B);
    for (int i = 0; i < B; ++i) perm[i] = i;
    rng.shuffle(perm);
    deck.insert(deck.end(), perm.begin(), perm.end());
  };
  for (long card = 0; card < long(S) * k; ++card) {
    auto& part = parts[card % S];
    // The next card this sub-ResNet does not hold yet; a card it holds stays
    // in the deck for the next sub-ResNet. Only when every remaining card is
    // one it holds does a further permutation join the deck.
    auto it = deck.begin();
    while (true) {
      it = std::find_if(deck.begin(), deck.end(), [&](int c) { return !contains(part, c); });
      if (it != deck.end()) break;
      add_permutation();
    }
    part.push_back(*it);
    deck.erase(it);
  }
  return parts;
}

void validate(const ModelSpec& spec, const ScheduleConfig& c) {
  auto positive = [](const char* flag, long v) {
    if (v < 1) throw UserError(std::string(flag) + ": must be >= 1 (got " + std::to_string(v) + ")");
  };
  positive("--machines", c.workers);
  positive("--local-iters", c.local_iters);
  positive("--batch-size", c.batch_size);
  positive("--train-size", long(c.train_size));
  if (c.rounds <= 0) positive("--epochs", c.epochs);
  if (c.rounds < 0) throw UserError("--rounds: must be >= 0 (got " + std::to_string(c.rounds) + ")");
  if (c.eval_every < 0) throw UserError("--eval-every: must be >= 0 (got " + std::to_string(c.eval_every) + ")");
  if (c.warmup_epochs < 0)
    throw UserError("--warmup-epochs: must be >= 0 (got " + std::to_string(c.warmup_epochs) + ")");
  if (c.warmup_epochs > 0 && c.protocol != Protocol::resist)
    throw UserError("--warmup-epochs: only with --protocol resist (got --protocol " + std::string(to_string(c.protocol)) + ")");
  if (c.workers > 1 << 20) throw UserError("--machines: at most 1048576 (got " + std::to_string(c.workers) + ")");
  if (c.protocol == Protocol::resist) {
    const int B = int(spec.partitionable.size());
    if (B == 0) throw UserError("--protocol resist: model " + spec.name + " has no partitionable blocks");
    if (c.min_depth < 1 || c.min_depth > B)
      throw UserError("--min-depth: must be in 1.." + std::to_string(B) + " for " + spec.name + " (got " +
                      std::to_string(c.min_depth) + ")");
  }
  if (c.protocol == Protocol::ist) validate_ist(spec, c.workers);
}

ScheduleGenerator::ScheduleGenerator(const ModelSpec& spec, const ScheduleConfig& config) : spec_(spec) {
  validate(spec, config);
  header_.config = config;
  if (config.protocol == Protocol::data_parallel) header_.config.local_iters = 1;
  const int S = config.workers, ell = header_.config.local_iters;
  header_.iters_per_epoch = int((config.train_size + std::int64_t(S) * config.batch_size - 1) /
                                (std::int64_t(S) * config.batch_size));
  header_.total_iters = config.rounds > 0 ? std::int64_t(config.rounds) * ell
                                          : std::int64_t(config.epochs) * header_.iters_per_epoch;
  num_rounds_ = int((header_.total_iters + ell - 1) / ell);
  header_.eval_scale.assign(spec.blocks.size(), 1.0);
  if (config.protocol == Protocol::resist) {
    header_.shared_blocks = spec.shared;
    const int B = int(spec.partitionable.size());
    k_ = resist_blocks_per_worker(B, S, config.min_depth);
    // The authors' code: max(1/S, d_min/B) when a minimum depth is set.
    const double scale = std::min(1.0, std::max(1.0 / S, double(config.min_depth) / B));
    for (int b : spec.partitionable) header_.eval_scale[b] = scale;
    const std::int64_t warmup_iters = std::int64_t(config.warmup_epochs) * header_.iters_per_epoch;
    warmup_rounds_ = int(std::min<std::int64_t>(num_rounds_, (warmup_iters + ell - 1) / ell));
  } else if (config.protocol == Protocol::ist) {
    // No block is held whole: every worker trains a neuron slice of each.
    ist_ = std::make_shared<const IstPlan>(spec, S, config.seed);
  } else {
    header_.shared_blocks = all_ranks(int(spec.blocks.size()));
  }
}

std::vector<std::vector<int>> ScheduleGenerator::holdings(int r) const {
  const int S = header_.config.workers;
  std::vector<std::vector<int>> held(S);
  if (r >= num_rounds_) {
    for (int w = 0; w < S; ++w) held[w] = final_holding(spec_, header_, w);
    return held;
  }
  if (header_.config.protocol == Protocol::ist) {
    for (auto& h : held) h = all_ranks(int(spec_.blocks.size()));
    return held;
  }
  if (header_.config.protocol != Protocol::resist) return held;
  if (r < warmup_rounds_) {  // local-SGD warm-up: everyone trains the whole model
    for (auto& h : held) h = spec_.partitionable;
    return held;
  }
  const auto parts = resist_partition(int(spec_.partitionable.size()), S, k_, header_.config.seed, r);
  for (int w = 0; w < S; ++w)
    for (int pos : parts[w]) held[w].push_back(spec_.partitionable[pos]);
  return held;
}

Round ScheduleGenerator::round(int r) const {
  assert(r >= 0 && r < num_rounds_);
  const auto& c = header_.config;
  const int S = c.workers;
  Round round;
  round.index = r;
  round.local_iters = int(std::min<std::int64_t>(c.local_iters, header_.total_iters - std::int64_t(r) * c.local_iters));
  round.workers.resize(S);
  const auto ranks = all_ranks(S);
  auto bytes_of = [&](const std::vector<int>& blocks) { return spec_.bytes(blocks); };

  switch (c.protocol) {
    case Protocol::data_parallel:
    case Protocol::local_sgd: {
      if (S > 1) {
        const Payload p = c.protocol == Protocol::data_parallel ? Payload::gradients : Payload::shared;
        round.sync.push_back({OpKind::allreduce, p, ranks, header_.shared_blocks, bytes_of(header_.shared_blocks)});
      }
      break;
    }
    case Protocol::resist: {
      const auto now = holdings(r), next = holdings(r + 1);
      for (int w = 0; w < S; ++w) round.workers[w].blocks = now[w];
      if (r < warmup_rounds_) {
        // Warm-up: average the whole model; every worker then has every block
        // it may hold next round, so no hand-off follows.
        std::vector<int> all = all_ranks(int(spec_.blocks.size()));
        if (S > 1) round.sync.push_back({OpKind::allreduce, Payload::shared, ranks, all, bytes_of(all)});
        break;
      }
      if (S > 1)
        round.sync.push_back({OpKind::allreduce, Payload::shared, ranks, header_.shared_blocks,
                              bytes_of(header_.shared_blocks)});
      const bool eval = c.eval_every > 0 && (r + 1) % c.eval_every == 0 && r + 1 < num_rounds_;
      std::vector<CommOp> eval_ops;
      for (int b : spec_.partitionable) {
        std::vector<int> holders, owners;
        for (int w = 0; w < S; ++w) {
          if (contains(now[w], b)) holders.push_back(w);
          if (contains(next[w], b)) owners.push_back(w);
        }
        assert(!holders.empty() && !owners.empty());
        // Average at a holder that keeps the block next round, if any, so
        // that one fewer copy has to travel.
        int root = holders.front();
        for (int h : holders)
          if (contains(owners, h)) { root = h; break; }
        const std::vector<int> blocks = {b};
        const std::uint64_t bytes = bytes_of(blocks);
        if (holders.size() > 1) {
          std::vector<int> group = {root};
          for (int h : holders)
            if (h != root) group.push_back(h);
          round.sync.push_back({OpKind::reduce, Payload::partitioned, group, blocks, bytes});
        }
        std::vector<int> dest = {root};
        for (int o : owners)
          if (o != root) dest.push_back(o);
        if (dest.size() == 2) round.sync.push_back({OpKind::send, Payload::handoff, dest, blocks, bytes});
        if (dest.size() > 2) round.sync.push_back({OpKind::broadcast, Payload::handoff, dest, blocks, bytes});
        if (eval && root != 0 && !contains(owners, 0))
          eval_ops.push_back({OpKind::send, Payload::eval, {root, 0}, blocks, bytes});
      }
      round.sync.insert(round.sync.end(), eval_ops.begin(), eval_ops.end());
      break;
    }
    case Protocol::ist: ist_round(round); break;
  }
  return round;
}

// IST synchronisation (docs/ist.md). Every op carries a piece: the elements
// in both piece.from and piece.to; op.blocks lists the blocks it touches.
void ScheduleGenerator::ist_round(Round& round) const {
  const auto& c = header_.config;
  const IstPlan& plan = *ist_;
  const int S = c.workers, r = round.index, nblocks = int(spec_.blocks.size());
  const bool last = r + 1 >= num_rounds_;
  const bool eval = c.eval_every > 0 && (r + 1) % c.eval_every == 0 && !last;
  for (int w = 0; w < S; ++w) round.workers[w].blocks = all_ranks(nblocks);
  if (S == 1) return;
  const IstPartition now = plan.partition(r), next = plan.partition(r + 1);
  auto add = [&](OpKind kind, Payload payload, std::vector<int> ranks, IstPiece piece) {
    const IstPartition& pf = piece.from.round == r + 1 ? next : now;
    const IstPartition& pt = piece.to.round == r + 1 ? next : now;
    CommOp op{kind, payload, std::move(ranks), {}, 0, piece};
    for (int b = 0; b < nblocks; ++b)
      if (const std::uint64_t n = plan.piece_numel(piece, b, pf, pt); n > 0) {
        op.blocks.push_back(b);
        op.bytes += 4 * n;
      }
    if (op.bytes > 0) round.sync.push_back(std::move(op));
  };
  using K = IstSetKind;
  const IstSet all{K::all}, shared{K::shared};
  add(OpKind::allreduce, Payload::shared, all_ranks(S), {shared, shared});
  if (c.ist_sync == IstSync::parameter_server) {
    // Rank 0 keeps the whole model: gather what everyone trained, then
    // scatter next round's subnets.
    for (int w = 1; w < S; ++w) add(OpKind::send, Payload::partitioned, {w, 0}, {{K::trained, r, w}, all});
    if (!last)
      for (int w = 1; w < S; ++w) add(OpKind::send, Payload::handoff, {0, w}, {all, {K::trained, r + 1, w}});
    return;
  }
  // Decentralised: held(r, ·) -> held(r + 1, ·), or everything to rank 0
  // after the last round. Phase k: worker w sends to w + k, so in each phase
  // every worker sends one piece and receives one.
  for (int k = 1; k < S; ++k)
    for (int w = 0; w < S; ++w) {
      const int to = (w + k) % S;
      if (last && to != 0) continue;
      add(OpKind::send, Payload::handoff, {w, to},
          {{K::held, r, w}, last ? all : IstSet{K::held, r + 1, to}});
    }
  if (eval)
    for (int w = 1; w < S; ++w) add(OpKind::send, Payload::eval, {w, 0}, {{K::held, r + 1, w}, all});
}

std::vector<int> final_holding(const ModelSpec& spec, const Schedule& header, int rank) {
  std::vector<int> rest;
  if (rank != 0) return rest;
  for (int b = 0; b < int(spec.blocks.size()); ++b)
    if (!contains(header.shared_blocks, b)) rest.push_back(b);
  return rest;
}

Schedule make_schedule(const ModelSpec& spec, const ScheduleConfig& config) {
  ScheduleGenerator gen(spec, config);
  Schedule s = gen.header();
  s.rounds.reserve(gen.num_rounds());
  for (int r = 0; r < gen.num_rounds(); ++r) s.rounds.push_back(gen.round(r));
  return s;
}

// ---------------------------------------------------------------- JSON

namespace {

using json = nlohmann::json;

json model_to_json(const ModelOptions& m) {
  json j = {{"model", m.model}, {"block", m.block},     {"base_width", m.base_width}, {"dataset", m.dataset},
            {"input", m.input}, {"hidden", m.hidden}, {"classes", m.classes}};
  if (m.image_size > 0) j["image_size"] = m.image_size;  // only when set: other files stay byte-identical
  return j;
}

using json_util::Reader;
using json_util::kMaxInt;

template <typename E, std::size_t N>
E read_enum(const Reader& r, const std::pair<E, const char*> (&table)[N]) {
  std::vector<std::string> names;
  for (const auto& [e, name] : table) names.push_back(name);
  return parse_enum(r.choice(names), table, r.path);
}

json set_to_json(const IstSet& s) {
  json j = {{"set", to_string(s.kind)}};
  if (s.kind == IstSetKind::trained || s.kind == IstSetKind::held) {
    j["round"] = s.round;
    j["worker"] = s.worker;
  }
  return j;
}

IstSet set_from_json(const Reader& r, int workers) {
  IstSet s;
  s.kind = read_enum(r.at("set"), kIstSets);
  if (s.kind == IstSetKind::trained || s.kind == IstSetKind::held) {
    s.round = int(r.at("round").integer(0, kMaxInt));
    s.worker = int(r.at("worker").integer(0, workers - 1));
  }
  return s;
}

}  // namespace

nlohmann::json to_json(const Schedule& s) {
  const auto& c = s.config;
  json rounds = json::array();
  for (const auto& r : s.rounds) {
    json workers = json::array(), sync = json::array();
    for (const auto& w : r.workers) workers.push_back(w.blocks);
    for (const auto& op : r.sync) {
      json o = {{"op", to_string(op.kind)}, {"payload", to_string(op.payload)}, {"ranks", op.ranks},
                {"blocks", op.blocks}, {"bytes", op.bytes}};
      if (op.piece) o["piece"] = {{"from", set_to_json(op.piece->from)}, {"to", set_to_json(op.piece->to)}};
      sync.push_back(std::move(o));
    }
    rounds.push_back({{"index", r.index}, {"local_iters", r.local_iters}, {"workers", workers}, {"sync", sync}});
  }
  json config = {{"protocol", to_string(c.protocol)}, {"model", model_to_json(c.model)}, {"workers", c.workers},
                 {"local_iters", c.local_iters}, {"min_depth", c.min_depth}, {"seed", c.seed},
                 {"batch_size", c.batch_size}, {"epochs", c.epochs}, {"train_size", c.train_size},
                 {"rounds", c.rounds}, {"eval_every", c.eval_every}};
  // Written for IST only, so that other schedules stay byte-identical to version-1 files.
  if (c.protocol == Protocol::ist) config["ist_sync"] = to_string(c.ist_sync);
  if (c.warmup_epochs > 0) config["warmup_epochs"] = c.warmup_epochs;  // likewise
  return {{"format", "resist-schedule"},
          {"version", 1},
          {"config", std::move(config)},
          {"shared_blocks", s.shared_blocks},
          {"eval_scale", s.eval_scale},
          {"iters_per_epoch", s.iters_per_epoch},
          {"total_iters", s.total_iters},
          {"rounds", rounds}};
}

Schedule schedule_from_json(const nlohmann::json& j) {
  Reader root{j, ""};
  json_util::expect_format(root, "resist-schedule", 1);
  Schedule s;
  auto& c = s.config;
  const Reader cfg = root.at("config");
  c.protocol = read_enum(cfg.at("protocol"), kProtocols);
  const Reader m = cfg.at("model");
  c.model.model = m.at("model").str();
  c.model.block = m.at("block").str();
  c.model.base_width = int(m.at("base_width").integer(1, 4096));
  c.model.dataset = m.at("dataset").str();
  c.model.input = int(m.at("input").integer(0, kMaxInt));
  c.model.hidden = m.at("hidden").ints(1, int(kMaxInt));
  c.model.classes = int(m.at("classes").integer(0, kMaxInt));
  if (m.has("image_size")) c.model.image_size = int(m.at("image_size").integer(16, 2048));
  c.workers = int(cfg.at("workers").integer(1, 1 << 20));
  c.local_iters = int(cfg.at("local_iters").integer(1, kMaxInt));
  c.min_depth = int(cfg.at("min_depth").integer(1, kMaxInt));
  c.seed = cfg.at("seed").uint();
  c.batch_size = int(cfg.at("batch_size").integer(1, kMaxInt));
  c.epochs = int(cfg.at("epochs").integer(0, kMaxInt));
  c.train_size = cfg.at("train_size").integer(1, std::int64_t(1) << 40);
  c.rounds = int(cfg.at("rounds").integer(0, kMaxInt));
  c.eval_every = int(cfg.at("eval_every").integer(0, kMaxInt));
  if (cfg.has("warmup_epochs")) c.warmup_epochs = int(cfg.at("warmup_epochs").integer(0, kMaxInt));
  if (cfg.has("ist_sync")) c.ist_sync = read_enum(cfg.at("ist_sync"), kIstSyncs);
  ModelSpec spec;
  try {
    spec = build_model(c.model);
  } catch (const UserError& e) {
    throw UserError("config.model: " + std::string(e.what()));
  }
  std::unique_ptr<IstPlan> ist;
  if (c.protocol == Protocol::ist) {
    try {
      ist = std::make_unique<IstPlan>(spec, c.workers, c.seed);
    } catch (const UserError& e) {
      throw UserError("config: " + std::string(e.what()));
    }
  }
  const int nblocks = int(spec.blocks.size()), S = c.workers;
  s.shared_blocks = root.at("shared_blocks").ints(0, nblocks - 1);
  const Reader scale = root.at("eval_scale");
  if (scale.size() != std::size_t(nblocks))
    scale.fail("must have one entry per block (" + std::to_string(nblocks) + ", got " + std::to_string(scale.size()) + ")");
  for (std::size_t i = 0; i < scale.size(); ++i) s.eval_scale.push_back(scale.at(i).number());
  s.iters_per_epoch = int(root.at("iters_per_epoch").integer(1, kMaxInt));
  s.total_iters = root.at("total_iters").integer(0, std::int64_t(1) << 50);
  const Reader rounds = root.at("rounds");
  for (std::size_t i = 0; i < rounds.size(); ++i) {
    const Reader rr = rounds.at(i);
    Round r;
    r.index = int(rr.at("index").integer(0, kMaxInt));
    r.local_iters = int(rr.at("local_iters").integer(0, kMaxInt));
    const Reader workers = rr.at("workers");
    if (workers.size() != std::size_t(S))
      workers.fail("must have one entry per worker (" + std::to_string(S) + ", got " + std::to_string(workers.size()) + ")");
    for (std::size_t w = 0; w < workers.size(); ++w) r.workers.push_back({workers.at(w).ints(0, nblocks - 1)});
    const Reader sync = rr.at("sync");
    for (std::size_t k = 0; k < sync.size(); ++k) {
      const Reader o = sync.at(k);
      CommOp op;
      op.kind = read_enum(o.at("op"), kOps);
      op.payload = read_enum(o.at("payload"), kPayloads);
      op.ranks = o.at("ranks").ints(0, S - 1);
      if (op.ranks.empty() || (op.kind == OpKind::send && op.ranks.size() != 2))
        o.at("ranks").fail(op.kind == OpKind::send ? "a send needs exactly 2 ranks" : "must not be empty");
      op.blocks = o.at("blocks").ints(0, nblocks - 1);
      op.bytes = o.at("bytes").uint();
      if (o.has("piece")) {
        if (!ist) o.at("piece").fail("only IST schedules have pieces");
        const Reader piece = o.at("piece");
        op.piece = IstPiece{set_from_json(piece.at("from"), S), set_from_json(piece.at("to"), S)};
        std::uint64_t expected = 0;
        for (int b : op.blocks) expected += 4 * ist->piece_numel(*op.piece, b);
        if (op.bytes != expected)
          o.at("bytes").fail("must equal the fp32 bytes of its piece of its blocks (" + std::to_string(expected) +
                             ", got " + std::to_string(op.bytes) + ")");
      } else if (ist) {
        o.fail("an IST op needs a \"piece\"");
      } else if (op.bytes != spec.bytes(op.blocks)) {
        o.at("bytes").fail("must equal the fp32 bytes of its blocks (" + std::to_string(spec.bytes(op.blocks)) +
                           ", got " + std::to_string(op.bytes) + ")");
      }
      r.sync.push_back(std::move(op));
    }
    s.rounds.push_back(std::move(r));
  }
  return s;
}

void write_schedule_file(const Schedule& s, const std::string& path) {
  json_util::write_atomic(path, to_json(s).dump() + "\n");
}

Schedule read_schedule_file(const std::string& path) {
  const json j = json_util::read_file(path, "--schedule");
  try {
    return schedule_from_json(j);
  } catch (const UserError& e) {
    throw UserError(path + ": " + e.what());
  }
}

}  // namespace resist
