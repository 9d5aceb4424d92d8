#pragma once
// GPU presets: a platform's effective FLOP/s taken from a published training
// throughput instead of a guess (docs/platforms.md, "GPU presets").
//
// Each preset is one published figure: ResNet-50 v1.5 training images/s on
// one GPU of a named machine, in a named precision, at a named batch size and
// software stack. The simulator's analytic compute model times an iteration
// as forward FLOPs × (1 + backward_factor) × batch / gpu.flops, so the
// preset's FLOP/s is the figure times the training FLOPs of one image of
// that network in the spec: 3 × the forward FLOPs of preact-resnet50 at
// 224 px (backward = 2 × forward, the simulator's default). A run of that
// network on that GPU is then predicted at exactly the published images/s;
// other networks at the same FLOP rate. The published time includes data
// loading and the optimizer step, so a platform using a preset should leave
// gpu.iteration_overhead and gpu.optimizer_step_per_param at 0 (or count
// them twice).
#include <string>
#include <vector>

namespace resist::sim {

struct GpuPreset {
  std::string name;       // as platforms write it: "a100-tf32"
  std::string gpu;        // "A100 80GB (DGX A100)"
  std::string precision;  // "TF32", "FP32", "mixed (AMP)"
  double images_per_s = 0;  // published ResNet-50 v1.5 training throughput, one GPU
  int batch = 0;            // per GPU, in that measurement
  std::string source;       // where the figure is published, and its software
};

// Every shipped preset, in the order docs/platforms.md lists them.
const std::vector<GpuPreset>& gpu_presets();

// The preset called `name`; UserError "<where>: unknown value 'x' (accepted:
// ...)" otherwise, which also says which GPUs have no published figure.
const GpuPreset& find_gpu_preset(const std::string& name, const std::string& where);

// FLOPs of one training step of one image of ResNet-50 v1.5 as the spec
// counts them: 3 × forward FLOPs of preact-resnet50 (bottleneck, ImageNet,
// 224 px). 2 FLOPs per multiply-add; about 24.5 GFLOP.
double resnet50_training_flops_per_image();

// images_per_s × resnet50_training_flops_per_image().
double preset_flops(const GpuPreset& preset);

}  // namespace resist::sim
