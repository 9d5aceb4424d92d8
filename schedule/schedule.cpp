#include "schedule/schedule.hpp"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "models/error.hpp"
#include "schedule/check.hpp"
#include "schedule/ist.hpp"
#include "schedule/json_util.hpp"
#include "schedule/protocol.hpp"
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
    {Protocol::layer_parallel, "layer-parallel"},
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
    {Payload::eval, "eval"}, {Payload::activations, "activations"}, {Payload::aux, "aux"},
};

constexpr std::pair<Phase, const char*> kPhases[] = {
    {Phase::iteration, "iteration"}, {Phase::round_end, "round-end"}, {Phase::forward, "forward"},
};
constexpr std::pair<OptimizerState, const char*> kOptimizerStates[] = {
    {OptimizerState::automatic, "auto"}, {OptimizerState::reset, "reset"}, {OptimizerState::keep, "keep"},
};
constexpr std::pair<Holding, const char*> kHoldings[] = {
    {Holding::blocks, "blocks"}, {Holding::slices, "slices"},
};

constexpr std::pair<IstSync, const char*> kIstSyncs[] = {
    {IstSync::decentralised, "decentralised"},
    {IstSync::parameter_server, "parameter-server"},
};
constexpr std::pair<IstSetKind, const char*> kIstSets[] = {
    {IstSetKind::shared, "shared"}, {IstSetKind::all, "all"},
    {IstSetKind::trained, "trained"}, {IstSetKind::held, "held"},
};

// Layer-parallel's --stages defaults to workers / replicas.
ScheduleConfig resolved(ScheduleConfig c) {
  if (c.protocol == Protocol::layer_parallel && c.stages == 0 && c.replicas >= 1) c.stages = c.workers / c.replicas;
  return c;
}

std::shared_ptr<ProtocolRules> rules_for(const ScheduleConfig& c) { return make_protocol(resolved(c)); }

}  // namespace

const char* to_string(Protocol p) { return enum_name(p, kProtocols); }
const char* to_string(OpKind k) { return enum_name(k, kOps); }
const char* to_string(Payload p) { return enum_name(p, kPayloads); }
const char* to_string(IstSync s) { return enum_name(s, kIstSyncs); }
const char* to_string(IstSetKind k) { return enum_name(k, kIstSets); }
const char* to_string(Phase p) { return enum_name(p, kPhases); }
const char* to_string(OptimizerState s) { return enum_name(s, kOptimizerStates); }
const char* to_string(Holding h) { return enum_name(h, kHoldings); }
OptimizerState parse_optimizer_state(const std::string& s) {
  return parse_enum(s, kOptimizerStates, "--optimizer-state");
}
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
bool CommOp::holds_result(int rank) const { return kind == OpKind::reduce ? rank == root() : involves(rank); }

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
  positive("--workers", c.workers);
  positive("--local-iters", c.local_iters);
  positive("--batch-size", c.batch_size);
  positive("--train-size", long(c.train_size));
  if (c.rounds <= 0) positive("--epochs", c.epochs);
  if (c.rounds < 0) throw UserError("--rounds: must be >= 0 (got " + std::to_string(c.rounds) + ")");
  if (c.eval_every < 0) throw UserError("--eval-every: must be >= 0 (got " + std::to_string(c.eval_every) + ")");
  if (c.warmup_epochs < 0)
    throw UserError("--warmup-epochs: must be >= 0 (got " + std::to_string(c.warmup_epochs) + ")");
  if (c.workers > 1 << 20) throw UserError("--workers: at most 1048576 (got " + std::to_string(c.workers) + ")");
  if (c.protocol != Protocol::layer_parallel && c.stages != 0)
    reject_layer_parallel_flag("--stages", to_string(c.protocol));
  if (c.protocol != Protocol::layer_parallel && c.replicas != 1)
    reject_layer_parallel_flag("--replicas", to_string(c.protocol));
  const auto rules = rules_for(c);
  rules->validate(spec, resolved(c));
  if (c.optimizer_state == OptimizerState::keep) rules->check_keep_optimizer();
}

ScheduleGenerator::ScheduleGenerator(const ModelSpec& spec, const ScheduleConfig& config) : spec_(spec) {
  validate(spec, config);
  rules_ = rules_for(config);
  header_.config = resolved(config);
  header_.config.local_iters = rules_->local_iters(config);
  const int S = rules_->data_shards(header_.config), ell = header_.config.local_iters;
  header_.iters_per_epoch = int((config.train_size + std::int64_t(S) * config.batch_size - 1) /
                                (std::int64_t(S) * config.batch_size));
  header_.total_iters = config.rounds > 0 ? std::int64_t(config.rounds) * ell
                                          : std::int64_t(config.epochs) * header_.iters_per_epoch;
  num_rounds_ = int((header_.total_iters + ell - 1) / ell);
  header_.eval_scale.assign(spec.blocks.size(), 1.0);
  rules_->init(spec, header_, num_rounds_);
  warmup_rounds_ = rules_->warmup_rounds();
}

const IstPlan* ScheduleGenerator::ist() const { return rules_->ist(); }

std::vector<std::vector<int>> ScheduleGenerator::holdings(int r) const {
  const int S = header_.config.workers;
  std::vector<std::vector<int>> held(S);
  if (r >= num_rounds_) {
    for (int w = 0; w < S; ++w) held[w] = final_holding(spec_, header_, w);
    return held;
  }
  auto own = rules_->holdings(r);
  if (!own.empty()) held = std::move(own);
  return held;
}

Round ScheduleGenerator::round(int r) const {
  assert(r >= 0 && r < num_rounds_);
  const auto& c = header_.config;
  Round round;
  round.index = r;
  round.local_iters = int(std::min<std::int64_t>(c.local_iters, header_.total_iters - std::int64_t(r) * c.local_iters));
  round.evaluate = r + 1 == num_rounds_ || (c.eval_every > 0 && (r + 1) % c.eval_every == 0);
  round.reset_optimizer = c.optimizer_state == OptimizerState::reset ||
                          (c.optimizer_state == OptimizerState::automatic && rules_->fresh_optimizer());
  const auto now = holdings(r);
  round.workers.resize(std::size_t(c.workers));
  for (int w = 0; w < c.workers; ++w) round.workers[std::size_t(w)].blocks = now[std::size_t(w)];
  rules_->sync(ProtocolContext{spec_, header_, num_rounds_}, round, holdings(r + 1));
  return round;
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

ScheduleConfig for_protocol(ScheduleConfig c, Protocol p) {
  c.protocol = p;
  if (p != Protocol::layer_parallel) {
    c.stages = 0;
    c.replicas = 1;
  }
  return c;
}

int effective_local_iters(const ScheduleConfig& config) { return rules_for(config)->local_iters(config); }

int Schedule::data_shards() const {
  if (data_shard.empty()) return config.workers;
  return *std::max_element(data_shard.begin(), data_shard.end()) + 1;
}
int Schedule::shard_of(int worker) const { return data_shard.empty() ? worker : data_shard.at(std::size_t(worker)); }

bool takes_local_iters(Protocol p) {
  ScheduleConfig c;
  c.protocol = p;
  const auto rules = rules_for(c);
  for (int ell : {2, 3}) {
    c.local_iters = ell;
    if (rules->local_iters(c) != ell) return false;
  }
  return true;
}

std::vector<int> trained_blocks(const Schedule& header, const Round& round, int worker) {
  std::vector<int> blocks = header.shared_blocks;
  const auto& own = round.workers.at(std::size_t(worker)).blocks;
  blocks.insert(blocks.end(), own.begin(), own.end());
  return blocks;
}

RoundSource::RoundSource(const ModelSpec& spec, const ScheduleConfig& config)
    : spec_(spec), gen_(std::make_shared<ScheduleGenerator>(spec, config)) {
  header_ = gen_->header();
  rounds_ = gen_->num_rounds();
}

RoundSource::RoundSource(const ModelSpec& spec, Schedule file) : spec_(spec), file_(std::move(file)) {
  if (file_.holding == Holding::slices)
    ist_ = std::make_shared<const IstPlan>(spec, file_.config.workers, file_.config.seed);
  header_ = file_;
  header_.rounds.clear();
  rounds_ = int(file_.rounds.size());
}

const IstPlan* RoundSource::ist() const { return gen_ ? gen_->ist() : ist_.get(); }

Round RoundSource::round(int r) const { return gen_ ? gen_->round(r) : file_.rounds.at(std::size_t(r)); }

std::vector<int> RoundSource::held_after(int r, int rank) const {
  std::vector<int> blocks = header_.shared_blocks;
  const std::vector<int> own =
      r + 1 < rounds_ ? round(r + 1).workers.at(std::size_t(rank)).blocks : final_holding(spec_, header_, rank);
  blocks.insert(blocks.end(), own.begin(), own.end());
  std::sort(blocks.begin(), blocks.end());
  blocks.erase(std::unique(blocks.begin(), blocks.end()), blocks.end());
  return blocks;
}

// ---------------------------------------------------------------- JSON

namespace {

using json = nlohmann::json;
constexpr int kScheduleVersion = 2;

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

json op_to_json(const CommOp& op) {
  json o = {{"op", to_string(op.kind)}, {"payload", to_string(op.payload)}, {"phase", to_string(op.phase)},
            {"ranks", op.ranks}, {"blocks", op.blocks}, {"bytes", op.bytes}};
  if (op.piece) o["piece"] = {{"from", set_to_json(op.piece->from)}, {"to", set_to_json(op.piece->to)}};
  return o;
}

json config_to_json(const ScheduleConfig& c) {
  return {{"protocol", to_string(c.protocol)}, {"model", model_to_json(c.model)}, {"workers", c.workers},
          {"local_iters", c.local_iters}, {"min_depth", c.min_depth}, {"seed", c.seed},
          {"batch_size", c.batch_size}, {"epochs", c.epochs}, {"train_size", c.train_size},
          {"rounds", c.rounds}, {"eval_every", c.eval_every}, {"warmup_epochs", c.warmup_epochs},
          {"ist_sync", to_string(c.ist_sync)}, {"optimizer_state", to_string(c.optimizer_state)}};
}

// Layer-parallel's fields appear only in its schedules (other files are unchanged).
json with_layer_parallel(json j, const ScheduleConfig& c) {
  if (c.protocol != Protocol::layer_parallel) return j;
  j["stages"] = c.stages;
  j["replicas"] = c.replicas;
  j["aux_width"] = c.aux_width;
  return j;
}

ScheduleConfig config_from_json(const Reader& cfg) {
  ScheduleConfig c;
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
  c.warmup_epochs = int(cfg.at("warmup_epochs").integer(0, kMaxInt));
  c.ist_sync = read_enum(cfg.at("ist_sync"), kIstSyncs);
  c.optimizer_state = read_enum(cfg.at("optimizer_state"), kOptimizerStates);
  if (c.protocol == Protocol::layer_parallel) {
    c.stages = int(cfg.at("stages").integer(2, 1 << 20));
    c.replicas = int(cfg.at("replicas").integer(1, 1 << 20));
    c.aux_width = int(cfg.at("aux_width").integer(1, 4096));
  }
  return c;
}

// What an op without an IST piece must carry.
std::uint64_t expected_bytes(const CommOp& op, const ModelSpec& spec, const ScheduleConfig& c) {
  if (op.payload == Payload::activations && op.blocks.size() == 1 && op.blocks[0] > 0)
    return std::uint64_t(c.batch_size) * block_input_bytes(spec, op.blocks[0]);
  if (op.payload == Payload::aux && op.blocks.size() == 1 && op.blocks[0] > 0 && has_aux_heads(spec))
    return aux_head(spec, op.blocks[0], c.aux_width).bytes();
  return spec.bytes(op.blocks);
}

// One op of a round; `ist` is the IST plan when the schedule holds slices.
CommOp op_from_json(const Reader& o, const ModelSpec& spec, const IstPlan* ist, const ScheduleConfig& c) {
  const int S = c.workers;
  const int nblocks = int(spec.blocks.size());
  CommOp op;
  op.kind = read_enum(o.at("op"), kOps);
  op.payload = read_enum(o.at("payload"), kPayloads);
  op.phase = read_enum(o.at("phase"), kPhases);
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
  } else if (std::uint64_t expected = expected_bytes(op, spec, c); op.bytes != expected) {
    o.at("bytes").fail("must equal the fp32 bytes of " + std::string(op.payload == Payload::activations ? "a batch of its block's input"
                       : op.payload == Payload::aux ? "its block's auxiliary head" : "its blocks") + " (" +
                       std::to_string(expected) + ", got " + std::to_string(op.bytes) + ")");
  }
  return op;
}

Round round_from_json(const Reader& rr, const ModelSpec& spec, const IstPlan* ist, const ScheduleConfig& c) {
  const int S = c.workers;
  const int nblocks = int(spec.blocks.size());
  Round r;
  r.index = int(rr.at("index").integer(0, kMaxInt));
  r.local_iters = int(rr.at("local_iters").integer(0, kMaxInt));
  r.evaluate = rr.at("evaluate").boolean();
  r.reset_optimizer = rr.at("reset_optimizer").boolean();
  const Reader workers = rr.at("workers");
  if (workers.size() != std::size_t(S))
    workers.fail("must have one entry per worker (" + std::to_string(S) + ", got " + std::to_string(workers.size()) + ")");
  for (std::size_t w = 0; w < workers.size(); ++w) r.workers.push_back({workers.at(w).ints(0, nblocks - 1)});
  if (rr.has("aux_targets")) {
    const auto targets = rr.at("aux_targets").ints(-1, nblocks - 1);
    if (targets.size() != std::size_t(S)) rr.at("aux_targets").fail("must have one entry per worker");
    for (int w = 0; w < S; ++w) r.workers[std::size_t(w)].aux_target = targets[std::size_t(w)];
  }
  const Reader sync = rr.at("sync");
  for (std::size_t k = 0; k < sync.size(); ++k) r.sync.push_back(op_from_json(sync.at(k), spec, ist, c));
  return r;
}

ModelSpec model_of(const ScheduleConfig& c) {
  try {
    return build_model(c.model);
  } catch (const UserError& e) {
    throw UserError("config.model: " + std::string(e.what()));
  }
}

}  // namespace

nlohmann::json to_json(const Schedule& s) {
  json rounds = json::array();
  for (const auto& r : s.rounds) {
    json workers = json::array(), sync = json::array();
    for (const auto& w : r.workers) workers.push_back(w.blocks);
    for (const auto& op : r.sync) sync.push_back(op_to_json(op));
    json round = {{"index", r.index}, {"local_iters", r.local_iters}, {"evaluate", r.evaluate},
                  {"reset_optimizer", r.reset_optimizer}, {"workers", workers}, {"sync", sync}};
    std::vector<int> targets;
    for (const auto& w : r.workers) targets.push_back(w.aux_target);
    if (std::any_of(targets.begin(), targets.end(), [](int t) { return t >= 0; })) round["aux_targets"] = targets;
    rounds.push_back(std::move(round));
  }
  json j = {{"format", "resist-schedule"},
            {"version", kScheduleVersion},
            {"config", with_layer_parallel(config_to_json(s.config), s.config)},
            {"holding", to_string(s.holding)},
            {"shared_blocks", s.shared_blocks},
            {"eval_scale", s.eval_scale},
            {"iters_per_epoch", s.iters_per_epoch},
            {"total_iters", s.total_iters},
            {"rounds", rounds}};
  if (!s.stages.empty()) {
    json st = json::array();
    for (const auto& x : s.stages) st.push_back({x.first, x.last});
    j["stages"] = st;
  }
  if (!s.data_shard.empty()) j["data_shard"] = s.data_shard;
  return j;
}

Schedule schedule_from_json(const nlohmann::json& j) {
  Reader root{j, ""};
  if (j.is_object() && j.value("format", "") == "resist-schedule" && j.contains("version") &&
      j["version"].is_number_integer() && j["version"].get<long long>() < kScheduleVersion)
    root.at("version").fail("this is a version-" + std::to_string(j["version"].get<long long>()) +
                            " schedule; this build reads version " + std::to_string(kScheduleVersion) +
                            " (regenerate it with resist-sim schedule)");
  json_util::expect_format(root, "resist-schedule", kScheduleVersion);
  Schedule s;
  s.config = config_from_json(root.at("config"));
  const auto& c = s.config;
  const ModelSpec spec = model_of(c);
  std::unique_ptr<IstPlan> ist;
  s.holding = read_enum(root.at("holding"), kHoldings);
  if (s.holding == Holding::slices) {
    try {
      ist = std::make_unique<IstPlan>(spec, c.workers, c.seed);
    } catch (const UserError& e) {
      throw UserError("config: " + std::string(e.what()));
    }
  }
  const int nblocks = int(spec.blocks.size());
  s.shared_blocks = root.at("shared_blocks").ints(0, nblocks - 1);
  const Reader scale = root.at("eval_scale");
  if (scale.size() != std::size_t(nblocks))
    scale.fail("must have one entry per block (" + std::to_string(nblocks) + ", got " + std::to_string(scale.size()) + ")");
  for (std::size_t i = 0; i < scale.size(); ++i) s.eval_scale.push_back(scale.at(i).number());
  s.iters_per_epoch = int(root.at("iters_per_epoch").integer(1, kMaxInt));
  s.total_iters = root.at("total_iters").integer(0, std::int64_t(1) << 50);
  if (root.has("stages")) {
    const Reader st = root.at("stages");
    for (std::size_t i = 0; i < st.size(); ++i) {
      const auto fl = st.at(i).ints(0, nblocks - 1);
      if (fl.size() != 2 || fl[0] > fl[1]) st.at(i).fail("must be [first, last] with first <= last");
      s.stages.push_back({fl[0], fl[1]});
    }
  }
  if (root.has("data_shard")) {
    s.data_shard = root.at("data_shard").ints(0, c.workers - 1);
    if (s.data_shard.size() != std::size_t(c.workers)) root.at("data_shard").fail("must have one entry per worker");
  }
  const Reader rounds = root.at("rounds");
  for (std::size_t i = 0; i < rounds.size(); ++i)
    s.rounds.push_back(round_from_json(rounds.at(i), spec, ist.get(), c));
  check_schedule(spec, s);  // its meaning: every copy stays consistent (schedule/check.hpp)
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
