// GPU presets (sim/gpu_presets.hpp): a platform's FLOP/s from a published
// ResNet-50 v1.5 training throughput and the spec's FLOPs of that network.
#include <gtest/gtest.h>

#include <functional>

#include <nlohmann/json.hpp>

#include "models/error.hpp"
#include "models/spec.hpp"
#include "sim/cost.hpp"
#include "sim/gpu_presets.hpp"
#include "sim/platform.hpp"

using namespace resist;
using namespace resist::sim;

namespace {

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const UserError& e) {
    return e.what();
  }
  return "(no error)";
}

nlohmann::json platform_with_gpu(const nlohmann::json& gpu) {
  nlohmann::json j = nlohmann::json::parse(default_platform_json());
  j["gpu"] = gpu;
  return j;
}

ModelSpec resnet50() {
  ModelOptions o;
  o.model = "preact-resnet50";
  o.block = "bottleneck";
  o.dataset = "imagenet";
  o.image_size = 224;
  return build_model(o);
}

}  // namespace

TEST(GpuPreset, TrainingFlopsAreThreeForwardPassesOfResNet50) {
  // 4.09 G multiply-adds per image forward (tests/models/spec_test.cpp), 2 FLOPs each, × 3 for training.
  EXPECT_NEAR(resnet50_training_flops_per_image() / 1e9, 3 * 2 * 4.09, 0.15);
  EXPECT_DOUBLE_EQ(resnet50_training_flops_per_image(), 3.0 * double(resnet50().flops_fwd()));
}

TEST(GpuPreset, FlopsArePublishedImagesPerSecondTimesFlopsPerImage) {
  const GpuPreset& v100 = find_gpu_preset("v100-fp32", "gpu.preset");
  EXPECT_EQ(v100.images_per_s, 367);
  EXPECT_DOUBLE_EQ(preset_flops(v100), 367 * resnet50_training_flops_per_image());
  EXPECT_NEAR(preset_flops(v100) / 1e12, 9.0, 0.2);
  EXPECT_EQ(find_gpu_preset("a100-tf32", "x").images_per_s, 938);
  EXPECT_EQ(find_gpu_preset("a100-amp", "x").images_per_s, 2470);
  EXPECT_EQ(find_gpu_preset("v100-amp", "x").images_per_s, 1200);
  EXPECT_EQ(find_gpu_preset("h100-tf32", "x").images_per_s, 1753);
  EXPECT_EQ(find_gpu_preset("h100-amp", "x").images_per_s, 2616);
  EXPECT_EQ(find_gpu_preset("h100-pcie-tf32", "x").images_per_s, 1197);
  EXPECT_EQ(find_gpu_preset("h100-pcie-amp", "x").images_per_s, 1866);
  for (const auto& p : gpu_presets()) {
    EXPECT_GT(p.batch, 0) << p.name;
    // Every figure is DeepLearningExamples' ResNet-50 v1.5 script, run by NVIDIA or by Lambda.
    EXPECT_NE(p.source.find("DeepLearningExamples"), std::string::npos) << p.name;
  }
}

TEST(GpuPreset, PlatformNamesAPresetAndGetsItsFlops) {
  const Platform obj = platform_from_json(platform_with_gpu({{"preset", "a100-tf32"}}));
  EXPECT_EQ(obj.gpu_preset, "a100-tf32");
  EXPECT_DOUBLE_EQ(obj.gpu_flops, 938 * resnet50_training_flops_per_image());
  const Platform shorthand = platform_from_json(platform_with_gpu("a100-tf32"));
  EXPECT_DOUBLE_EQ(shorthand.gpu_flops, obj.gpu_flops);
  // The canonical JSON names the preset and reads back to the same platform.
  EXPECT_EQ(to_json(obj)["gpu"]["preset"], "a100-tf32");
  EXPECT_FALSE(to_json(obj)["gpu"].contains("flops"));
  EXPECT_EQ(to_json(platform_from_json(to_json(obj))), to_json(obj));
  EXPECT_NE(gpu_speed_source(obj).find("938 images/s"), std::string::npos) << gpu_speed_source(obj);
  EXPECT_EQ(gpu_speed_source(load_platform("", {})), "platform gpu.flops");
}

TEST(GpuPreset, SetReplacesFlopsByPresetAndBack) {
  const Platform a = load_platform("", {"gpu.preset=v100-amp"});
  EXPECT_EQ(a.gpu_preset, "v100-amp");
  EXPECT_DOUBLE_EQ(a.gpu_flops, 1200 * resnet50_training_flops_per_image());
  EXPECT_DOUBLE_EQ(a.iteration_overhead_s, 3e-3);  // the rest of the platform is kept
  const Platform b = load_platform("", {"gpu.preset=v100-amp", "gpu.flops=5Tf"});
  EXPECT_TRUE(b.gpu_preset.empty());
  EXPECT_DOUBLE_EQ(b.gpu_flops, 5e12);
}

TEST(GpuPreset, SimulatedResNet50RunsAtThePublishedRate) {
  // With no per-iteration overhead, an iteration of the network the figure was
  // measured on, at its batch, takes exactly batch / published images/s.
  const ModelSpec spec = resnet50();
  std::vector<int> all(spec.blocks.size());
  for (std::size_t i = 0; i < all.size(); ++i) all[i] = int(i);
  for (const auto& p : gpu_presets()) {
    const Platform platform = load_platform("", {"gpu.preset=" + p.name, "gpu.iteration_overhead=0",
                                                 "gpu.optimizer_step_per_param=0"});
    const ComputeModel model(spec, platform, p.batch, 2.0, std::nullopt);
    EXPECT_NEAR(p.batch / model.iteration_s(all, 0), p.images_per_s, 1e-6 * p.images_per_s) << p.name;
  }
}

TEST(GpuPreset, UnknownOrDoublySpecifiedIsOneNamedError) {
  const std::string unknown = error_of([] { platform_from_json(platform_with_gpu({{"preset", "h100-fp8"}})); });
  EXPECT_NE(unknown.find("gpu.preset: unknown value 'h100-fp8' (accepted: v100-fp32, v100-amp, a100-tf32, a100-amp, "
                         "h100-tf32, h100-amp, h100-pcie-tf32, h100-pcie-amp"),
            std::string::npos)
      << unknown;
  EXPECT_NE(unknown.find("set gpu.flops or simulate with --profile"), std::string::npos) << unknown;
  EXPECT_EQ(unknown.find('\n'), std::string::npos);
  const std::string both =
      error_of([] { platform_from_json(platform_with_gpu({{"preset", "a100-tf32"}, {"flops", "10Tf"}})); });
  EXPECT_NE(both.find("gpu.preset: give either gpu.flops or gpu.preset"), std::string::npos) << both;
  const std::string none = error_of([] { platform_from_json(platform_with_gpu(nlohmann::json::object())); });
  EXPECT_NE(none.find("gpu.flops: missing"), std::string::npos) << none;
  EXPECT_NE(error_of([] { load_platform("", {"gpu.preset=a100"}); }).find("unknown value 'a100'"), std::string::npos);
}
