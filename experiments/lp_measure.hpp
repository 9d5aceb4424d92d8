#pragma once
// The layer-parallel study's measurement on the machine at hand: K = 2
// layer-parallel training (2 processes over Gloo) against layer-serial
// training of the same network (1 process), time per iteration measured and
// predicted by the simulator from a profile and a separately calibrated
// loopback network (docs/layer-parallel.md, "Measured: time per iteration").
#include <cstdint>
#include <string>

#include <nlohmann/json_fwd.hpp>

#include "models/spec.hpp"

namespace resist::study {

struct Paths;

struct LpMeasure {
  bool enabled = false;
  ModelOptions model;
  int batch_size = 32, train_subset = 2048, test_subset = 256, repeats = 3, threads = 1;
};

// Reads the study file's "measure_here" object (`path` names it in errors).
LpMeasure parse_lp_measure(const nlohmann::json& j, const std::string& path);

// Runs the measurement into out/measured/ and returns the report's section
// (markdown). When the runtime is not built it measures nothing and says so.
std::string measure_layer_parallel_here(const LpMeasure& m, std::uint64_t seed, const std::string& out,
                                        const Paths& paths);

}  // namespace resist::study
