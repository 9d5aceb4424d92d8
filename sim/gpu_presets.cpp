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

// Lambda's GPU benchmark (github.com/lambdal/deeplearning-benchmark), which
// runs the same DeepLearningExamples ResNet-50 v1.5 script on synthetic
// ImageNet in the pytorch:22.09-py3 NGC container or later:
// pytorch/pytorch-train-throughput-fp32.csv and -fp16.csv, column resnet50,
// 1-GPU rows "H100 80GB SXM5" and "H100 80GB PCIe Gen5". Its "fp32" runs use
// PyTorch's default TF32 convolutions on Ampere and Hopper. Batch per GPU from
// the 80 GB single-GPU template pytorch/scripts/config_v1/config_pytorch_80GB.sh
// (PyTorch_resnet50_FP32_PARAMS 640, PyTorch_resnet50_AMP_PARAMS 1280).
const char* const kLambda =
    "Lambda GPU benchmark (github.com/lambdal/deeplearning-benchmark), pytorch/pytorch-train-throughput-fp32.csv "
    "and -fp16.csv, column resnet50 (DeepLearningExamples ResNet-50 v1.5, synthetic data, NGC pytorch:22.09-py3 "
    "or later), 1-GPU row; batch from pytorch/scripts/config_v1/config_pytorch_80GB.sh";

}  // namespace

const std::vector<GpuPreset>& gpu_presets() {
  static const std::vector<GpuPreset> presets = {
      {"v100-fp32", "V100 16GB (DGX-1 16GB)", "FP32", 367, 112, kDle},
      {"v100-amp", "V100 16GB (DGX-1 16GB)", "mixed precision (AMP)", 1200, 256, kDle},
      {"a100-tf32", "A100 80GB (DGX A100)", "TF32", 938, 256, kDle},
      {"a100-amp", "A100 80GB (DGX A100)", "mixed precision (AMP)", 2470, 256, kDle},
      {"h100-tf32", "H100 80GB SXM5", "TF32", 1753, 640, kLambda},
      {"h100-amp", "H100 80GB SXM5", "mixed precision (AMP)", 2616, 1280, kLambda},
      {"h100-pcie-tf32", "H100 80GB PCIe Gen5", "TF32", 1197, 640, kLambda},
      {"h100-pcie-amp", "H100 80GB PCIe Gen5", "mixed precision (AMP)", 1866, 1280, kLambda},
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
                  "; for another GPU set gpu.flops or simulate with --profile)");
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
