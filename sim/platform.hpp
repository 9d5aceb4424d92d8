#pragma once
// A cluster to simulate, read from JSON ({"format": "resist-platform",
// "version": 1}, see docs/platforms.md), and its SimGrid S4U construction.
//
// Topology: `nodes` nodes of `gpus_per_node` GPUs. Each GPU of a multi-GPU
// node has its own full-duplex link (`intra`) to the node's internal switch
// (NVLink / NVSwitch / PCIe); each node has a full-duplex NIC link (`nic`) to
// a switch: one switch for all nodes (`star`), or leaf switches of
// `nodes_per_leaf` nodes joined by full-duplex uplinks to a spine
// (`fat-tree`, two levels). A route's latency is the sum of its links'.
// Multi-rail nodes (`nic.rails` = k > 1, e.g. one NIC per GPU): the node has
// k NIC links, GPU g reaches other nodes through rail g % k directly (PCIe /
// GPUDirect, not through `intra`); GPUs of one node still talk over `intra`.
// Rank r runs on GPU r % gpus_per_node of node r / gpus_per_node.
// CPU nodes (`cores_per_node` = c > 0): the node's ranks (`ranks_per_node`,
// another name for gpus_per_node) compute on one shared processor of c cores
// of gpu.flops each; k ranks computing at once each get min(1, c/k) of a core
// (SimGrid shares a host's cores among the executions on it). The network is
// unchanged: each rank keeps its own link (`intra`) to the node's switch.
// `localhost` (load_platform) is one such node with this machine's cores.
//
// Required keys: format, version, name, nodes, gpus_per_node, gpu.flops (or
// gpu.preset, a published GPU throughput by name: sim/gpu_presets.hpp), nic
// (bandwidth, latency) and, when gpus_per_node > 1, intra (bandwidth,
// latency). Everything else has a documented default (platform_keys_help()).
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace resist::sim {

struct LinkSpec {
  double bandwidth_Bps = 0;
  double latency_s = 0;
};

struct NetworkSettings {
  std::string model = "CM02";      // SimGrid network/model
  double latency_factor = 1;       // network/latency-factor
  double bandwidth_factor = 1;     // network/bandwidth-factor
  bool crosstraffic = false;       // network/crosstraffic
  double tcp_gamma_bytes = 1e12;   // network/TCP-gamma: window bound gamma/(2·latency), huge = off
};

struct Platform {
  std::string name, description;
  int nodes = 1, gpus_per_node = 1;        // gpus_per_node: ranks per node ("ranks_per_node")
  int cores_per_node = 0;                   // > 0: the node's ranks share this many cores; 0: one processor per rank
  double gpu_flops = 1e13;                  // effective FLOP/s of one GPU on this workload
  std::string gpu_preset;                   // non-empty: gpu_flops came from this preset (sim/gpu_presets.hpp)
  double iteration_overhead_s = 0;          // per local iteration: data loading, launch, loss
  double optimizer_s_per_param = 0;         // SGD-with-momentum step, per parameter updated
  LinkSpec intra{150e9, 5e-6}, nic{1.25e9, 25e-6};
  int nic_rails = 1;                        // NIC links per node; GPU g uses rail g % nic_rails
  std::string topology = "star";            // star | fat-tree
  int nodes_per_leaf = 8;                   // fat-tree
  LinkSpec uplink{12.5e9, 1e-6};            // fat-tree: leaf switch to spine
  std::vector<double> speed_factors;        // per GPU (global index), empty = all 1
  double straggler_probability = 0;         // per (worker, round)
  double straggler_slowdown = 1;            // compute time multiplier when straggling
  std::uint64_t straggler_seed = 1;
  // CPU nodes whose cores the ranks share: a rank that has just computed
  // for c seconds waits sync_entry_delay × (1 − exp(−c / sync_entry_rise))
  // before its round's first sync op (its threads wait for a core the
  // others still hold, more likely the longer they have computed);
  // sync_entry_rise 0: the whole delay whatever c. validate-grid measures
  // both. 0: none.
  double sync_entry_delay_s = 0, sync_entry_rise_s = 0;
  double sync_entry_wait_s(double compute_s) const;
  // CPU nodes whose cores the ranks share: every step of a collective among
  // more of one node's ranks than the node has cores waits this long besides
  // its messages' latency (each step passes through a chain of ranks that
  // take turns on the cores; two ranks exchanging, on as many cores as
  // they are, do not wait). validate-grid measures it. 0: none.
  double collective_step_wait_s = 0;
  double step_wait_s(const std::vector<int>& ranks) const;
  NetworkSettings network;

  int gpus() const { return nodes * gpus_per_node; }
  double speed_factor(int rank) const { return speed_factors.empty() ? 1.0 : speed_factors[rank]; }
  // Latency and bottleneck bandwidth of the route between two ranks (no sharing).
  LinkSpec route(int a, int b) const;
};

// Strict: one UserError naming the JSON path and the rule, e.g.
// "nic.bandwidth: must be > 0 (got 0)". Quantities are numbers in base units
// or strings with units ("10Gbps", "50us", "15.7Tf").
Platform platform_from_json(const nlohmann::json& j);
nlohmann::json to_json(const Platform& p);  // canonical, every field, base units

// Where gpu_flops comes from, in words: "platform gpu.flops", or
// "gpu.preset a100-tf32: 938 images/s, ResNet-50 v1.5 training, published".
std::string gpu_speed_source(const Platform& p);

// The required keys and the defaults of the optional ones, for --help.
const char* platform_keys_help();

// The default platform compiled into the binary (AWS p3.8xlarge-class nodes).
const char* default_platform_json();
// The built-in `localhost` platform: one node of std::thread::hardware_concurrency()
// cores (at least 1), up to 256 ranks sharing them, loopback links between ranks
// (placeholders: experiments' validate-grid fits them to a measured run).
nlohmann::json localhost_platform_json();
// Reads `path` (empty: the default; "localhost": localhost_platform_json()), applies `overrides` ("key.path=value",
// e.g. "nic.bandwidth=1Gbps"), validates. Errors name the file or flag.
Platform load_platform(const std::string& path, const std::vector<std::string>& overrides);

// Creates the S4U platform for `ranks` workers (ranks 0..ranks-1) in the
// current engine and applies the network settings. Returns one host per rank.
// Throws UserError when the platform has fewer GPUs than ranks.
void check_ranks(const Platform& p, int ranks, const std::string& flag);

}  // namespace resist::sim
