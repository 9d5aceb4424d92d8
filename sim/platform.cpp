#include "sim/platform.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <thread>

#include <nlohmann/json.hpp>

#include "models/error.hpp"
#include "schedule/json_util.hpp"
#include "sim/gpu_presets.hpp"
#include "sim/units.hpp"

namespace resist::sim {

using json_util::json;
using json_util::Reader;

namespace {

std::string fmt(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

// A quantity: a number in base units, or a string with a unit.
double quantity(const Reader& r, Unit unit) {
  if (r.j.is_string()) return parse_quantity(r.j.get<std::string>(), unit, r.path);
  return r.number();
}
double positive(const Reader& r, Unit unit) {
  const double v = quantity(r, unit);
  if (!(v > 0) || v > 1e30) r.fail("must be > 0 (got " + fmt(v) + ")");
  return v;
}
double non_negative(const Reader& r, Unit unit) {
  const double v = quantity(r, unit);
  if (!(v >= 0) || v > 1e30) r.fail("must be >= 0 (got " + fmt(v) + ")");
  return v;
}

void only_keys(const Reader& r, std::initializer_list<const char*> keys) {
  if (!r.j.is_object()) r.fail("must be an object");
  for (const auto& [k, v] : r.j.items()) {
    bool ok = false;
    std::string accepted;
    for (const char* a : keys) {
      ok = ok || k == a;
      accepted += (accepted.empty() ? "" : ", ") + std::string(a);
    }
    if (!ok) throw UserError((r.path.empty() ? "" : r.path + ".") + k + ": unknown key (accepted: " + accepted + ")");
  }
}

// A key the platform cannot do without: missing is one line naming it and
// what it holds.
Reader required(const Reader& r, const std::string& key, const std::string& what) {
  if (!r.has(key)) {
    if (!r.j.is_object()) r.fail("must be an object");
    throw UserError((r.path.empty() ? "" : r.path + ".") + key + ": missing (required: " + what + ")");
  }
  return r.at(key);
}

LinkSpec read_link(const Reader& r, std::initializer_list<const char*> keys = {"bandwidth", "latency"}) {
  only_keys(r, keys);
  return {positive(required(r, "bandwidth", "e.g. \"10Gbps\""), Unit::bandwidth),
          non_negative(required(r, "latency", "e.g. \"25us\""), Unit::time)};
}

// gpu.flops, or gpu.preset (a published throughput by name, sim/gpu_presets.hpp);
// "gpu": "a100-tf32" is short for {"preset": "a100-tf32"}.
void read_gpu_speed(const Reader& gpu, Platform& p) {
  if (gpu.j.is_string()) {
    p.gpu_preset = find_gpu_preset(gpu.str(), gpu.path).name;
    p.gpu_flops = preset_flops(find_gpu_preset(p.gpu_preset, gpu.path));
    return;
  }
  only_keys(gpu, {"flops", "preset", "iteration_overhead", "optimizer_step_per_param"});
  if (gpu.has("preset") && gpu.has("flops"))
    gpu.at("preset").fail("give either gpu.flops or gpu.preset, not both (got both)");
  if (gpu.has("preset")) {
    const Reader r = gpu.at("preset");
    p.gpu_preset = find_gpu_preset(r.str(), r.path).name;
    p.gpu_flops = preset_flops(find_gpu_preset(p.gpu_preset, r.path));
    return;
  }
  p.gpu_flops = positive(required(gpu, "flops",
                                  "effective FLOP/s of one GPU, e.g. \"10Tf\", or a preset, e.g. "
                                  "\"preset\": \"a100-tf32\""),
                         Unit::flops);
}

// gpus_per_node, or ranks_per_node (its name for CPU nodes), and cores_per_node.
void read_placement(const Reader& root, Platform& p) {
  if (root.has("ranks_per_node") && root.has("gpus_per_node"))
    root.at("ranks_per_node").fail("give either gpus_per_node or ranks_per_node (its name for CPU nodes), not both");
  if (root.has("ranks_per_node")) p.gpus_per_node = int(root.at("ranks_per_node").integer(1, 1024));
  else
    p.gpus_per_node = int(required(root, "gpus_per_node", "GPUs per node, e.g. 8 (or ranks_per_node)").integer(1, 1024));
  if (root.has("cores_per_node")) p.cores_per_node = int(root.at("cores_per_node").integer(0, 1 << 20));
}

json link_json(const LinkSpec& l) { return {{"bandwidth", l.bandwidth_Bps}, {"latency", l.latency_s}}; }

}  // namespace

LinkSpec Platform::route(int a, int b) const {
  if (a == b) return {1e30, 0};
  const int na = a / gpus_per_node, nb = b / gpus_per_node;
  LinkSpec r{1e30, 0};
  auto add = [&](const LinkSpec& l) {
    r.bandwidth_Bps = std::min(r.bandwidth_Bps, l.bandwidth_Bps);
    r.latency_s += l.latency_s;
  };
  const bool rails = nic_rails > 1 && na != nb;  // GPU to its rail NIC directly
  if (gpus_per_node > 1 && !rails) add(intra), add(intra);
  if (na != nb) {
    add(nic), add(nic);
    if (topology == "fat-tree" && na / nodes_per_leaf != nb / nodes_per_leaf) add(uplink), add(uplink);
  }
  return r;
}

Platform platform_from_json(const json& j) {
  const Reader root{j, ""};
  json_util::expect_format(root, "resist-platform", 1);
  only_keys(root, {"format", "version", "name", "description", "nodes", "gpus_per_node", "ranks_per_node",
                   "cores_per_node", "gpu", "intra", "nic", "topology", "speed_factors", "straggler", "network",
                   "sync_entry_delay", "sync_entry_rise", "collective_step_wait"});
  Platform p;
  p.name = required(root, "name", "a word naming the platform").str();
  if (root.has("description")) p.description = root.at("description").str();
  p.nodes = int(required(root, "nodes", "how many nodes, e.g. 16").integer(1, 1 << 20));
  read_placement(root, p);
  if (std::int64_t(p.nodes) * p.gpus_per_node > (1 << 20))
    root.at("nodes").fail("nodes × gpus_per_node must be at most 1048576");
  const Reader gpu = required(root, "gpu", "{\"flops\": ...}, the effective FLOP/s of one GPU, or {\"preset\": ...}");
  read_gpu_speed(gpu, p);
  if (gpu.has("iteration_overhead")) p.iteration_overhead_s = non_negative(gpu.at("iteration_overhead"), Unit::time);
  if (gpu.has("optimizer_step_per_param"))
    p.optimizer_s_per_param = non_negative(gpu.at("optimizer_step_per_param"), Unit::time);
  // Intra-node links matter only with several GPUs per node; then they are
  // required (no silent NVLink guess). With one GPU per node they are unused.
  if (p.gpus_per_node > 1)
    p.intra = read_link(required(root, "intra",
                                 "each GPU's link to its node's switch, e.g. {\"bandwidth\": \"25GBps\", "
                                 "\"latency\": \"5us\"}, since gpus_per_node > 1"));
  else if (root.has("intra"))
    p.intra = read_link(root.at("intra"));
  const Reader nic = required(root, "nic",
                              "each node's network link, e.g. {\"bandwidth\": \"10Gbps\", \"latency\": \"25us\"}");
  p.nic = read_link(nic, {"bandwidth", "latency", "rails"});
  if (nic.has("rails")) p.nic_rails = int(nic.at("rails").integer(1, p.gpus_per_node));
  if (p.nic_rails > 1 && p.cores_per_node > 0)
    nic.at("rails").fail("must be 1 on CPU nodes (cores_per_node > 0) (got " + std::to_string(p.nic_rails) + ")");
  if (root.has("topology")) {
    const Reader t = root.at("topology");
    only_keys(t, {"kind", "nodes_per_leaf", "uplink"});
    p.topology = required(t, "kind", "star or fat-tree").choice({"star", "fat-tree"});
    if (p.topology == "fat-tree") {
      p.nodes_per_leaf = int(required(t, "nodes_per_leaf", "nodes under one leaf switch").integer(1, 1 << 20));
      p.uplink = read_link(required(t, "uplink", "each leaf switch's link to the spine"));
    } else {
      if (t.has("nodes_per_leaf")) p.nodes_per_leaf = int(t.at("nodes_per_leaf").integer(1, 1 << 20));
      if (t.has("uplink")) p.uplink = read_link(t.at("uplink"));
    }
  }
  if (root.has("speed_factors")) {
    const Reader f = root.at("speed_factors");
    if (f.size() != 0 && f.size() != std::size_t(p.gpus()))
      f.fail("must be empty or have one entry per GPU (" + std::to_string(p.gpus()) + ", got " +
             std::to_string(f.size()) + ")");
    for (std::size_t i = 0; i < f.size(); ++i) {
      const double v = f.at(i).number();
      if (!(v > 0) || v > 1e6) f.at(i).fail("must be > 0 (got " + fmt(v) + ")");
      p.speed_factors.push_back(v);
    }
  }
  if (root.has("straggler")) {
    const Reader s = root.at("straggler");
    only_keys(s, {"probability", "slowdown", "seed"});
    p.straggler_probability = required(s, "probability", "per (worker, round), 0..1").number(0, 1);
    p.straggler_slowdown = required(s, "slowdown", "compute time multiplier, >= 1").number(1, 1e6);
    p.straggler_seed = s.has("seed") ? s.at("seed").uint() : 1;
  }
  if (root.has("sync_entry_delay")) p.sync_entry_delay_s = non_negative(root.at("sync_entry_delay"), Unit::time);
  if (root.has("sync_entry_rise")) p.sync_entry_rise_s = non_negative(root.at("sync_entry_rise"), Unit::time);
  if (root.has("collective_step_wait"))
    p.collective_step_wait_s = non_negative(root.at("collective_step_wait"), Unit::time);
  if (root.has("network")) {
    const Reader n = root.at("network");
    only_keys(n, {"model", "latency_factor", "bandwidth_factor", "crosstraffic", "tcp_gamma"});
    if (n.has("model")) p.network.model = n.at("model").choice({"CM02", "LV08", "SMPI", "Constant"});
    if (n.has("latency_factor")) p.network.latency_factor = positive(n.at("latency_factor"), Unit::bytes);
    if (n.has("bandwidth_factor")) p.network.bandwidth_factor = positive(n.at("bandwidth_factor"), Unit::bytes);
    if (n.has("crosstraffic")) p.network.crosstraffic = n.at("crosstraffic").boolean();
    if (n.has("tcp_gamma")) p.network.tcp_gamma_bytes = non_negative(n.at("tcp_gamma"), Unit::bytes);
  }
  return p;
}

namespace {
// A preset's platform names the preset (not its FLOP/s): reading it back, or
// --set gpu.preset=..., then gives the preset's speed.
json gpu_json(const Platform& p) {
  json g = {{"iteration_overhead", p.iteration_overhead_s}, {"optimizer_step_per_param", p.optimizer_s_per_param}};
  if (p.gpu_preset.empty()) g["flops"] = p.gpu_flops;
  else g["preset"] = p.gpu_preset;
  return g;
}
}  // namespace

json to_json(const Platform& p) {
  json out = {{"format", "resist-platform"},
          {"version", 1},
          {"name", p.name},
          {"description", p.description},
          {"nodes", p.nodes},
          {"gpus_per_node", p.gpus_per_node},
          {"cores_per_node", p.cores_per_node},
          {"gpu", gpu_json(p)},
          {"intra", link_json(p.intra)},
          {"nic", {{"bandwidth", p.nic.bandwidth_Bps}, {"latency", p.nic.latency_s}, {"rails", p.nic_rails}}},
          {"topology", {{"kind", p.topology}, {"nodes_per_leaf", p.nodes_per_leaf}, {"uplink", link_json(p.uplink)}}},
          {"speed_factors", p.speed_factors},
          {"straggler",
           {{"probability", p.straggler_probability}, {"slowdown", p.straggler_slowdown}, {"seed", p.straggler_seed}}},
          {"network",
           {{"model", p.network.model},
            {"latency_factor", p.network.latency_factor},
            {"bandwidth_factor", p.network.bandwidth_factor},
            {"crosstraffic", p.network.crosstraffic},
            {"tcp_gamma", p.network.tcp_gamma_bytes}}}};
  if (p.sync_entry_delay_s > 0) {
    out["sync_entry_delay"] = p.sync_entry_delay_s;
    out["sync_entry_rise"] = p.sync_entry_rise_s;
  }
  if (p.collective_step_wait_s > 0) out["collective_step_wait"] = p.collective_step_wait_s;
  return out;
}

double Platform::step_wait_s(const std::vector<int>& ranks) const {
  if (!(collective_step_wait_s > 0) || cores_per_node <= 0 || int(ranks.size()) <= cores_per_node) return 0;
  std::map<int, int> on_node;
  for (int r : ranks)
    if (++on_node[r / gpus_per_node] > cores_per_node) return collective_step_wait_s;
  return 0;
}

double Platform::sync_entry_wait_s(double compute_s) const {
  if (!(sync_entry_delay_s > 0)) return 0;
  if (!(sync_entry_rise_s > 0)) return sync_entry_delay_s;
  return sync_entry_delay_s * -std::expm1(-std::max(0.0, compute_s) / sync_entry_rise_s);
}

std::string gpu_speed_source(const Platform& p) {
  if (p.gpu_preset.empty()) return "platform gpu.flops";
  const GpuPreset& g = find_gpu_preset(p.gpu_preset, "gpu.preset");
  return "gpu.preset " + g.name + ": " + fmt(g.images_per_s) + " images/s ResNet-50 v1.5 training on " + g.gpu + ", " +
         g.precision + ", published";
}

const char* platform_keys_help() {
  return "Platform file (docs/platforms.md). Required: format \"resist-platform\", version 1, name, nodes,\n"
         "gpus_per_node, gpu.flops or gpu.preset (v100-fp32, v100-amp, a100-tf32, a100-amp), nic {bandwidth,\n"
         "latency}, and intra {bandwidth, latency} when\n"
         "gpus_per_node > 1. Optional (default): description (\"\"), ranks_per_node (another name for\n"
         "gpus_per_node), cores_per_node (0: one processor per rank; c > 0: a node's ranks share c cores\n"
         "of gpu.flops each), gpu.iteration_overhead (0s),\n"
         "gpu.optimizer_step_per_param (0s), nic.rails (1: one NIC per node; GPU g uses rail g % rails),\n"
         "topology {kind: star}, fat-tree: nodes_per_leaf and uplink required, speed_factors ([]: all 1),\n"
         "straggler (none; seed 1), network {model CM02, latency_factor 1, bandwidth_factor 1,\n"
         "crosstraffic false, tcp_gamma 1e12}, sync_entry_delay (0s) and sync_entry_rise (0s): on cores\n"
         "the ranks share, a rank that computed c seconds waits delay × (1 − exp(−c / rise)) before its\n"
         "round's first sync op (rise 0: the whole delay); collective_step_wait (0s): on cores the ranks\n"
         "share, every step of a collective among more of a node's ranks than its cores waits this long.";
}

const char* default_platform_json() {
  // Keep in sync with experiments/platforms/p3-8xlarge.json (a test checks).
  return R"({
  "format": "resist-platform", "version": 1,
  "name": "p3-8xlarge",
  "description": "AWS p3.8xlarge-class nodes: 4 V100 (16 GB) on NVLink, 10 Gbit/s Ethernet between nodes, one switch",
  "nodes": 256,
  "gpus_per_node": 4,
  "gpu": {"flops": "10Tf", "iteration_overhead": "3ms", "optimizer_step_per_param": "0.03ns"},
  "intra": {"bandwidth": "25GBps", "latency": "5us"},
  "nic": {"bandwidth": "10Gbps", "latency": "25us"},
  "topology": {"kind": "star"},
  "network": {"model": "CM02", "latency_factor": 1, "bandwidth_factor": 1, "crosstraffic": false}
}
)";
}

namespace {

// "a.b=c": sets the existing field a.b of the canonical JSON to c (parsed as
// JSON when it is valid JSON, else taken as a string such as "10Gbps").
void apply_override(json& j, const std::string& text) {
  const auto eq = text.find('=');
  if (eq == std::string::npos || eq == 0)
    throw UserError("--set: '" + text + "' is not KEY=VALUE (e.g. nic.bandwidth=1Gbps)");
  const std::string key = text.substr(0, eq), value = text.substr(eq + 1);
  // gpu.flops and gpu.preset replace each other (a platform has one of them).
  if ((key == "gpu.flops" || key == "gpu.preset") && j.contains("gpu") && j["gpu"].is_object()) {
    j["gpu"].erase(key == "gpu.flops" ? "preset" : "flops");
    j["gpu"][key.substr(4)] = nullptr;
  }
  json* node = &j;
  std::size_t start = 0;
  while (true) {
    const auto dot = key.find('.', start);
    const std::string part = key.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    if (!node->is_object() || !node->contains(part) || part == "format" || part == "version") {
      std::string accepted;
      if (node->is_object())
        for (const auto& [k, v] : node->items())
          if (k != "format" && k != "version") accepted += (accepted.empty() ? "" : ", ") + k;
      throw UserError("--set: unknown platform field '" + key + "' (accepted here: " + accepted + ")");
    }
    node = &(*node)[part];
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  const json parsed = json::parse(value, nullptr, false);
  *node = parsed.is_discarded() ? json(value) : parsed;
}

}  // namespace

json localhost_platform_json() {
  const int cores = int(std::max(1u, std::thread::hardware_concurrency()));
  return {{"format", "resist-platform"},
          {"version", 1},
          {"name", "localhost"},
          {"description", "this machine: one node of " + std::to_string(cores) +
                              " cores shared by its ranks, loopback between ranks (link values are placeholders)"},
          {"nodes", 1},
          {"ranks_per_node", 256},
          {"cores_per_node", cores},
          {"gpu", {{"flops", "10Gf"}}},
          {"intra", {{"bandwidth", "2GBps"}, {"latency", "10us"}}},
          {"nic", {{"bandwidth", "2GBps"}, {"latency", "10us"}}},
          {"topology", {{"kind", "star"}}}};
}

Platform load_platform(const std::string& path, const std::vector<std::string>& overrides) {
  const std::string where = path.empty() ? "default platform" : path;
  json j;
  if (path.empty()) j = json::parse(default_platform_json());
  else if (path == "localhost" && !std::filesystem::exists(path)) j = localhost_platform_json();
  else j = json_util::read_file(path, "--platform");
  Platform p;
  try {
    p = platform_from_json(j);
  } catch (const UserError& e) {
    throw UserError("--platform " + where + ": " + e.what());
  }
  if (overrides.empty()) return p;
  json canonical = to_json(p);
  for (const auto& o : overrides) apply_override(canonical, o);
  try {
    return platform_from_json(canonical);
  } catch (const UserError& e) {
    throw UserError("--set: " + std::string(e.what()));
  }
}

void check_ranks(const Platform& p, int ranks, const std::string& flag) {
  if (ranks > p.gpus())
    throw UserError(flag + ": " + std::to_string(ranks) + " ranks but platform '" + p.name + "' has " +
                    std::to_string(p.gpus()) + " GPUs (" + std::to_string(p.nodes) + " nodes × " +
                    std::to_string(p.gpus_per_node) + ")");
}

}  // namespace resist::sim
