#include "schedule/profile.hpp"

#include <algorithm>

#include "schedule/json_util.hpp"

namespace resist {

using json_util::json;
using json_util::Reader;

nlohmann::json to_json(const Profile& p) {
  json blocks = json::array();
  for (const auto& b : p.blocks) blocks.push_back({{"name", b.name}, {"forward_s", b.forward_s}, {"backward_s", b.backward_s}});
  json out = {{"format", "resist-profile"},
          {"version", 1},
          {"model",
           {{"model", p.model.model}, {"block", p.model.block}, {"base_width", p.model.base_width},
            {"dataset", p.model.dataset}, {"input", p.model.input}, {"hidden", p.model.hidden},
            {"classes", p.model.classes}}},
          {"batch_size", p.batch_size},
          {"device", p.device},
          {"threads", p.threads},
          {"blas_threads", p.blas_threads},
          {"processes", p.processes},
          {"blocks", blocks},
          {"optimizer_step_s_per_param", p.optimizer_step_s_per_param},
          {"iteration_overhead_s", p.iteration_overhead_s},
          {"rebuild_s", p.rebuild_s},
          {"first_iteration_s", p.first_iteration_s},
          {"reload_s", p.reload_s},
          {"pack_s_per_byte", p.pack_s_per_byte},
          {"ist_pack_s_per_byte", p.ist_pack_s_per_byte},
          {"iteration_s", p.iteration_s},
          {"blocks_timed_s", p.blocks_timed_s},
          {"cores", p.cores}};
  json samples = json::array();
  for (const auto& s : p.iteration_samples) samples.push_back({{"processes", s.processes}, {"iteration_s", s.iteration_s}});
  out["iteration_samples"] = samples;
  if (p.model.image_size > 0) out["model"]["image_size"] = p.model.image_size;
  return out;
}

int core_slots(int cores, int threads) { return std::max(1, cores / std::max(1, threads)); }

double even_share_slowdown(int processes, int cores, int threads) {
  return std::max(1.0, double(processes) / core_slots(cores, threads));
}

Profile profile_from_json(const nlohmann::json& j) {
  const Reader root{j, ""};
  json_util::expect_format(root, "resist-profile", 1);
  Profile p;
  const Reader m = root.at("model");
  p.model.model = m.at("model").str();
  p.model.block = m.at("block").str();
  p.model.base_width = int(m.at("base_width").integer(1, 4096));
  p.model.dataset = m.at("dataset").str();
  p.model.input = int(m.at("input").integer(0, json_util::kMaxInt));
  p.model.hidden = m.at("hidden").ints(1, int(json_util::kMaxInt));
  p.model.classes = int(m.at("classes").integer(0, json_util::kMaxInt));
  if (m.has("image_size")) p.model.image_size = int(m.at("image_size").integer(16, 2048));
  p.batch_size = int(root.at("batch_size").integer(1, json_util::kMaxInt));
  p.device = root.at("device").str();
  p.threads = int(root.at("threads").integer(0, 4096));
  if (root.has("blas_threads")) p.blas_threads = int(root.at("blas_threads").integer(0, 4096));
  if (root.has("processes")) p.processes = int(root.at("processes").integer(1, 1 << 20));
  const Reader blocks = root.at("blocks");
  for (std::size_t i = 0; i < blocks.size(); ++i) {
    const Reader b = blocks.at(i);
    p.blocks.push_back({b.at("name").str(), b.at("forward_s").number(0, 1e6), b.at("backward_s").number(0, 1e6)});
  }
  p.optimizer_step_s_per_param = root.at("optimizer_step_s_per_param").number(0, 1);
  p.iteration_overhead_s = root.at("iteration_overhead_s").number(0, 1e6);
  if (root.has("rebuild_s")) p.rebuild_s = root.at("rebuild_s").number(0, 1e6);
  if (root.has("reload_s")) p.reload_s = root.at("reload_s").number(0, 1e6);
  if (root.has("first_iteration_s")) p.first_iteration_s = root.at("first_iteration_s").number(0, 1e6);
  if (root.has("pack_s_per_byte")) p.pack_s_per_byte = root.at("pack_s_per_byte").number(0, 1);
  if (root.has("ist_pack_s_per_byte")) p.ist_pack_s_per_byte = root.at("ist_pack_s_per_byte").number(0, 1);
  if (root.has("iteration_s")) p.iteration_s = root.at("iteration_s").number(0, 1e6);
  if (root.has("blocks_timed_s")) p.blocks_timed_s = root.at("blocks_timed_s").number(0, 1e6);
  if (root.has("cores")) p.cores = int(root.at("cores").integer(0, 1 << 20));
  if (root.has("iteration_samples")) {
    const Reader samples = root.at("iteration_samples");
    for (std::size_t i = 0; i < samples.size(); ++i) {
      const Reader s = samples.at(i);
      IterationSamples set;
      set.processes = int(s.at("processes").integer(1, 1 << 20));
      const Reader v = s.at("iteration_s");
      for (std::size_t k = 0; k < v.size(); ++k) set.iteration_s.push_back(v.at(k).number(0, 1e6));
      p.iteration_samples.push_back(std::move(set));
    }
  }
  return p;
}

void write_profile_file(const Profile& p, const std::string& path) {
  json_util::write_atomic(path, to_json(p).dump(2) + "\n");
}

Profile read_profile_file(const std::string& path) {
  const json j = json_util::read_file(path, "--profile");
  try {
    return profile_from_json(j);
  } catch (const UserError& e) {
    throw UserError(path + ": " + e.what());
  }
}

}  // namespace resist
