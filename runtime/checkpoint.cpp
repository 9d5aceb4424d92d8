#include "runtime/checkpoint.hpp"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <utility>
#include <vector>

#include "models/error.hpp"
#include "schedule/json_util.hpp"

namespace resist::runtime {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

constexpr int kCheckpointVersion = 2;  // 2: latest.json records the run's configuration

std::string first_line(const std::string& s) { return s.substr(0, s.find('\n')); }

}  // namespace

void write_checkpoint(const std::string& out, int next_round, RunContext& ctx,
                      const std::map<int, torch::Tensor>& held, torch::optim::SGD* optim, const json& config,
                      const torch::Tensor& aux) {
  const fs::path root = fs::path(out) / "checkpoints";
  const fs::path dir = root / ("round-" + std::to_string(next_round));
  fs::create_directories(dir);
  c10::Dict<std::string, torch::Tensor> d;
  for (const auto& [b, t] : held) d.insert(std::to_string(b), t.to(torch::kCPU));
  if (aux.defined()) d.insert("aux", aux.to(torch::kCPU));
  d.insert("meta", torch::tensor({double(next_round), ctx.now(), double(ctx.bytes_offset + ctx.comm->bytes_sent()),
                                  double(ctx.images)},
                                 torch::kFloat64));
  const auto bytes = torch::pickle_save(d);
  const fs::path file = dir / ("rank-" + std::to_string(ctx.rank) + ".pt");
  {
    std::ofstream f(file.string() + ".tmp", std::ios::binary);
    f.write(bytes.data(), std::streamsize(bytes.size()));
    if (!f) throw UserError("--out: cannot write " + file.string());
  }
  fs::rename(file.string() + ".tmp", file);
  if (optim) {
    const fs::path of = dir / ("optim-" + std::to_string(ctx.rank) + ".pt");
    torch::save(*optim, of.string() + ".tmp");
    fs::rename(of.string() + ".tmp", of);
  }
  ctx.kv->barrier("ckpt-" + std::to_string(next_round), ctx.rank, ctx.world);
  if (ctx.rank != 0) return;
  json_util::write_atomic((root / "latest.json").string(),
                          json{{"format", "resist-checkpoint"}, {"version", kCheckpointVersion}, {"round", next_round},
                               {"workers", ctx.world}, {"dir", dir.filename().string()}, {"config", config}}
                                  .dump() + "\n");
  for (const auto& e : fs::directory_iterator(root))
    if (e.is_directory() && e.path() != dir) fs::remove_all(e.path());
}

namespace {

// The flag behind each field of checkpoint_config(), for the messages.
std::string flag_of(const std::string& path) {
  static const std::map<std::string, std::string> flags = {
      {"protocol", "--protocol"}, {"model.model", "--model"}, {"model.block", "--block"},
      {"model.base_width", "--base-width"}, {"model.dataset", "--dataset"}, {"model.input", "--input"},
      {"model.hidden", "--hidden"}, {"model.classes", "--classes"}, {"model.image_size", "--image-size"},
      {"workers", "WORLD_SIZE"}, {"local_iters", "--local-iters"}, {"min_depth", "--min-depth"},
      {"seed", "--seed"}, {"batch_size", "--batch-size"}, {"epochs", "--epochs"},
      {"train_size", "--train-subset"}, {"rounds", "--rounds"}, {"eval_every", "--eval-every"},
      {"warmup_epochs", "--warmup-epochs"}, {"ist_sync", "--ist-sync"}, {"optimizer_state", "--optimizer-state"},
      {"lr", "--lr"}, {"momentum", "--momentum"}, {"weight_decay", "--weight-decay"},
      {"lr_schedule", "--lr-schedule"}, {"num_rounds", "--epochs/--rounds"}, {"stages", "--stages"},
      {"replicas", "--replicas"}, {"aux_width", "--aux-width"}, {"lp_beta", "--lp-beta"},
      {"lp_aux_step", "--lp-aux-step"}};
  const auto it = flags.find(path);
  return it == flags.end() ? path : it->second + " (" + path + ")";
}

// Object members as "a.b" -> value (arrays are values).
void flatten(const json& j, const std::string& prefix, std::map<std::string, json>& out) {
  if (!j.is_object()) {
    out[prefix] = j;
    return;
  }
  for (auto it = j.begin(); it != j.end(); ++it)
    flatten(it.value(), prefix.empty() ? it.key() : prefix + "." + it.key(), out);
}

// The first field where the checkpoint's configuration differs from this
// run's, in the order of the flags' importance; the schedule's hash last
// (same settings, another schedule: a --schedule file or another resist build).
void compare_config(const std::string& file, const json& theirs, const json& ours) {
  std::map<std::string, json> a, b;
  flatten(theirs, "", a);
  flatten(ours, "", b);
  std::vector<std::string> order = {"workers", "protocol", "model.model", "model.block", "model.base_width",
                                    "model.dataset", "model.hidden", "model.input", "model.classes",
                                    "model.image_size", "seed", "local_iters", "batch_size", "min_depth",
                                    "epochs", "rounds", "train_size", "warmup_epochs", "eval_every", "ist_sync",
                                    "optimizer_state", "lr", "momentum", "weight_decay", "lr_schedule", "num_rounds"};
  for (const auto* m : {&a, &b})
    for (const auto& kv : *m)
      if (std::find(order.begin(), order.end(), kv.first) == order.end() && kv.first != "schedule_hash")
        order.push_back(kv.first);
  order.push_back("schedule_hash");
  for (const auto& k : order) {
    const json x = a.count(k) ? a[k] : json(), y = b.count(k) ? b[k] : json();
    if (x == y) continue;
    if (k == "schedule_hash")
      throw UserError("--resume: " + file + " is a checkpoint of another schedule (same settings; schedule hash " +
                      x.dump() + " there, " + y.dump() + " here: another --schedule file or resist build)");
    throw UserError("--resume: " + file + " is a checkpoint of another configuration: " + flag_of(k) + " is " +
                    x.dump() + " there, " + y.dump() + " here (resume with the checkpointed run's settings)");
  }
}

// latest.json's round and folder, after checking its format, the rounds left
// and the configuration.
std::pair<int, std::string> read_latest(const json& j, const std::string& file, const ResumeCheck& check) {
  const json_util::Reader r{j, ""};
  int next = 0;
  std::string dir;
  try {
    if (j.is_object() && j.value("version", json()) == json(1))
      throw UserError("version 1, written by an older resist that did not record the run's configuration; it "
                      "cannot be checked, so it is not resumed");
    json_util::expect_format(r, "resist-checkpoint", kCheckpointVersion);
    next = int(r.at("round").integer(1, json_util::kMaxInt));
    dir = r.at("dir").str();
    if (dir.empty() || dir.find('/') != std::string::npos || dir == "..") r.at("dir").fail("must be a folder name");
    if (!r.at("config").j.is_object()) r.at("config").fail("must be an object");
  } catch (const UserError& e) {
    throw UserError("--resume: " + file + ": " + e.what());
  }
  if (check.num_rounds <= next) {
    const bool rounds = check.config.value("rounds", 0) > 0;
    throw UserError(std::string(rounds ? "--rounds " : "--epochs ") +
                    std::to_string(check.config.value(rounds ? "rounds" : "epochs", 0)) + ": this run has " +
                    std::to_string(check.num_rounds) + " round(s), but the checkpoint in " + file +
                    " continues from round " + std::to_string(next) + " of " +
                    j.at("config").value("num_rounds", json()).dump() + " (resume with the checkpointed run's length)");
  }
  compare_config(file, j.at("config"), check.config);
  return {next, dir};
}

// This rank's file: the blocks it holds before round `next`, each of its
// model size, and the run's offsets (meta).
std::map<int, torch::Tensor> read_blocks(const fs::path& file, int next, const ResumeCheck& check, torch::Tensor* aux,
                                         RunContext& ctx,
                                         torch::Device device) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw UserError("--resume: missing checkpoint file " + file.string());
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::map<int, torch::Tensor> held;
  std::vector<double> meta;
  try {
    const auto d = torch::pickle_load(bytes).toGenericDict();
    for (const auto& kv : d) {
      const auto key = kv.key().toStringRef();
      const auto t = kv.value().toTensor();
      if (key == "meta") {
        const auto m = t.to(torch::kFloat64).contiguous();
        meta.assign(m.data_ptr<double>(), m.data_ptr<double>() + m.numel());
        continue;
      }
      if (key == "aux") {  // layer-parallel: this rank's auxiliary head, flattened
        if (t.dim() != 1 || t.scalar_type() != torch::kFloat32) throw UserError("entry 'aux' is not a flat fp32 tensor");
        *aux = t.to(device);
        continue;
      }
      std::size_t used = 0;
      const int b = std::stoi(key, &used);
      if (used != key.size() || b < 0 || b >= int(check.block_numel.size()) || t.dim() != 1 ||
          t.scalar_type() != torch::kFloat32 || t.numel() != check.block_numel[std::size_t(b)])
        throw UserError("entry '" + key + "' is not a block of this model");
      held[b] = t.to(device);
    }
  } catch (const UserError& e) {
    throw UserError("--resume: " + file.string() + " does not fit this run: " + e.what());
  } catch (const std::exception& e) {
    throw UserError("--resume: " + file.string() + " is truncated or corrupt (" + first_line(e.what()) + ")");
  }
  if (meta.size() != 4 || meta[0] != double(next))
    throw UserError("--resume: " + file.string() + " is corrupt (its round does not match latest.json)");
  std::set<int> want, have;
  for (int b : check.held(next)) want.insert(b);
  for (const auto& kv : held) have.insert(kv.first);
  if (want != have) throw UserError("--resume: " + file.string() + " does not hold the blocks this rank needs");
  ctx.wall_offset_s = meta[1];
  ctx.bytes_offset = std::uint64_t(meta[2]);
  ctx.images = std::int64_t(meta[3]);
  return held;
}

}  // namespace

Resumed load_checkpoint(const std::string& resume, const ResumeCheck& check, RunContext& ctx, torch::Device device) {
  const fs::path root = fs::path(resume) / "checkpoints";
  const fs::path latest = root / "latest.json";
  if (!fs::exists(latest))
    throw UserError("--resume: no checkpoint in " + resume + " (" + latest.string() + " is missing)");
  const auto j = json_util::read_file(latest.string(), "--resume");
  const auto [next, folder] = read_latest(j, latest.string(), check);
  Resumed res;
  res.next_round = next;
  const fs::path dir = root / folder;
  res.held = read_blocks(dir / ("rank-" + std::to_string(ctx.rank) + ".pt"), next, check, &res.aux, ctx, device);
  const fs::path of = dir / ("optim-" + std::to_string(ctx.rank) + ".pt");
  if (fs::exists(of)) {
    try {  // read whole now, so that a damaged file stops this rank before the rendezvous
      torch::serialize::InputArchive archive;
      archive.load_from(of.string());
    } catch (const std::exception& e) {
      throw UserError("--resume: " + of.string() + " is truncated or corrupt (" + first_line(e.what()) + ")");
    }
    res.optim_file = of.string();
  }
  return res;
}

}  // namespace resist::runtime
