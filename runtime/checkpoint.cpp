#include "runtime/checkpoint.hpp"

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "models/error.hpp"
#include "schedule/json_util.hpp"

namespace resist::runtime {

namespace fs = std::filesystem;
using json = nlohmann::json;

void write_checkpoint(const std::string& out, int next_round, RunContext& ctx,
                      const std::map<int, torch::Tensor>& held, torch::optim::SGD* optim, const torch::Tensor& aux) {
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
                          json{{"format", "resist-checkpoint"}, {"version", 1}, {"round", next_round},
                               {"workers", ctx.world}, {"dir", dir.filename().string()}}
                                  .dump() + "\n");
  for (const auto& e : fs::directory_iterator(root))
    if (e.is_directory() && e.path() != dir) fs::remove_all(e.path());
}

Resumed load_checkpoint(const std::string& resume, RunContext& ctx, torch::Device device) {
  const fs::path root = fs::path(resume) / "checkpoints";
  const auto j = json_util::read_file((root / "latest.json").string(), "--resume");
  const json_util::Reader r{j, ""};
  json_util::expect_format(r, "resist-checkpoint", 1);
  if (r.at("workers").integer(1, 1 << 20) != ctx.world)
    throw UserError("--resume: the checkpoint is for " + std::to_string(r.at("workers").integer(1, 1 << 20)) +
                    " workers, WORLD_SIZE is " + std::to_string(ctx.world));
  Resumed res;
  res.next_round = int(r.at("round").integer(0, json_util::kMaxInt));
  const fs::path dir = root / r.at("dir").str();
  const fs::path file = dir / ("rank-" + std::to_string(ctx.rank) + ".pt");
  std::ifstream in(file, std::ios::binary);
  if (!in) throw UserError("--resume: missing checkpoint file " + file.string());
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const auto d = torch::pickle_load(bytes).toGenericDict();
  for (const auto& kv : d) {
    const auto key = kv.key().toStringRef();
    if (key == "meta") {
      const auto m = kv.value().toTensor();
      ctx.wall_offset_s = m[1].item<double>();
      ctx.bytes_offset = std::uint64_t(m[2].item<double>());
      ctx.images = std::int64_t(m[3].item<double>());
    } else if (key == "aux") {
      res.aux = kv.value().toTensor().to(device);
    } else {
      res.held[std::stoi(key)] = kv.value().toTensor().to(device);
    }
  }
  const fs::path of = dir / ("optim-" + std::to_string(ctx.rank) + ".pt");
  if (fs::exists(of)) res.optim_file = of.string();
  return res;
}

}  // namespace resist::runtime
