#include "sim/gpu_presets.hpp"

#include "models/error.hpp"
#include "models/spec.hpp"

namespace resist::sim {

namespace {

// NVIDIA DeepLearningExamples, PyTorch/Classification/ConvNets/resnet50v1.5/
// README.md, "Training performance results" (pytorch-21.03 NGC container),
// the 1-GPU rows; batch sizes from PyTorch/Classification/ConvNets/configs.yml
// (models.resnet50.<platform>.<precision>.batch_size), which the README's
// benchmark command (launch.py --platform ...) reads.
const char* const kDle =
    "NVIDIA DeepLearningExamples, PyTorch/Classification/ConvNets/resnet50v1.5/README.md, "
    "'Training performance results', 1-GPU row, pytorch-21.03 NGC container; batch from ConvNets/configs.yml";

}  // namespace

const std::vector<GpuPreset>& gpu_presets() {
  static const std::vector<GpuPreset> presets = {
      {"v100-fp32", "V100 16GB (DGX-1 16GB)", "FP32", 367, 112, kDle},
      {"v100-amp", "V100 16GB (DGX-1 16GB)", "mixed precision (AMP)", 1200, 256, kDle},
      {"a100-tf32", "A100 80GB (DGX A100)", "TF32", 938, 256, kDle},
      {"a100-amp", "A100 80GB (DGX A100)", "mixed precision (AMP)", 2470, 256, kDle},
  };
  return presets;
}

const GpuPreset& find_gpu_preset(const std::string& name, const std::string& where) {
  std::string accepted;
  for (const auto& p : gpu_presets()) {
    if (p.name == name) return p;
    accepted += (accepted.empty() ? "" : ", ") + p.name;
  }
  throw UserError(where + ": unknown value '" + name + "' (accepted: " + accepted +
                  "; no preset for H100: no published per-GPU ResNet-50 training throughput was found, "
                  "set gpu.flops or simulate with --profile)");
}

double resnet50_training_flops_per_image() {
  ModelOptions o;
  o.model = "preact-resnet50";
  o.block = "bottleneck";
  o.dataset = "imagenet";
  o.image_size = 224;
  static const double flops = 3.0 * double(build_model(o).flops_fwd());
  return flops;
}

double preset_flops(const GpuPreset& preset) { return preset.images_per_s * resnet50_training_flops_per_image(); }

}  // namespace resist::sim
