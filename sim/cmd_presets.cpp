// `resist-sim presets`: the GPU presets platforms may name (gpu.preset), each
// with the published figure it comes from and the FLOP/s it turns into.
#include <algorithm>
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "models/error.hpp"
#include "sim/commands.hpp"
#include "sim/gpu_presets.hpp"
#include "tools/cli.hpp"

namespace resist::sim {

int cmd_presets(int argc, char** argv) {
  std::string format = "table";
  cli::po::options_description d("resist-sim presets");
  d.add_options()("help,h", "this help")("format", cli::po::value(&format), "table | json");
  cli::po::variables_map vm;
  if (!cli::parse(argc, argv, d, vm,
                  "usage: resist-sim presets [--format table|json]\n"
                  "GPU presets for a platform's \"gpu\": {\"preset\": NAME} (docs/platforms.md): a published\n"
                  "ResNet-50 v1.5 training throughput on one GPU, times the spec's training FLOPs per image\n"
                  "(3 x forward FLOPs of preact-resnet50 at 224 px), is the preset's effective FLOP/s."))
    return 0;
  if (format != "table" && format != "json")
    throw UserError("--format: unknown value '" + format + "' (accepted: table, json)");
  const double per_image = resnet50_training_flops_per_image();
  if (format == "json") {
    nlohmann::json out = {{"format", "resist-gpu-presets"}, {"version", 1},
                          {"training_flops_per_image", per_image}, {"presets", nlohmann::json::array()}};
    for (const auto& p : gpu_presets())
      out["presets"].push_back({{"name", p.name}, {"gpu", p.gpu}, {"precision", p.precision},
                                {"images_per_s", p.images_per_s}, {"batch", p.batch},
                                {"flops", preset_flops(p)}, {"source", p.source}});
    std::cout << out.dump(2) << "\n";
    return 0;
  }
  std::printf("Training FLOPs per image (3 x forward of preact-resnet50, 224 px, as the spec counts): %.4g GFLOP\n\n",
              per_image / 1e9);
  std::printf("| preset | GPU | precision | batch | published images/s | effective TFLOP/s |\n"
              "|---|---|---|---:|---:|---:|\n");
  for (const auto& p : gpu_presets())
    std::printf("| %s | %s | %s | %d | %.0f | %.2f |\n", p.name.c_str(), p.gpu.c_str(), p.precision.c_str(), p.batch,
                p.images_per_s, preset_flops(p) / 1e12);
  std::vector<std::string> sources;
  for (const auto& p : gpu_presets())
    if (std::find(sources.begin(), sources.end(), p.source) == sources.end()) sources.push_back(p.source);
  std::printf("\nSources:\n");
  for (const auto& source : sources) {
    std::string names;
    for (const auto& p : gpu_presets())
      if (p.source == source) names += (names.empty() ? "" : ", ") + p.name;
    std::printf("- %s: %s.\n", names.c_str(), source.c_str());
  }
  return 0;
}

}  // namespace resist::sim
