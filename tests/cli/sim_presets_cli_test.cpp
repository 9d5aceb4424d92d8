// End-to-end: GPU presets as a user meets them in resist-sim.
#include <fstream>

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "tests/support/process.hpp"
#include "tests/support/refused.hpp"

using resist::test::run;

namespace {
const std::string sim = resist::test::bin("sim/resist-sim");

std::string platform_file(const resist::test::TempDir& dir, const std::string& gpu) {
  const auto path = (dir.path / "p.json").string();
  std::ofstream(path) << R"({"format": "resist-platform", "version": 1, "name": "preset-test", "nodes": 4,
    "gpus_per_node": 1, "gpu": )" << gpu << R"(, "nic": {"bandwidth": "10Gbps", "latency": "25us"}})";
  return path;
}
}  // namespace

TEST(SimPresetsCli, ListsEveryPresetWithItsFigureAndFlops) {
  const auto r = run(sim + " presets --format json");
  ASSERT_EQ(r.code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  ASSERT_EQ(j["presets"].size(), 8u);
  const double per_image = j["training_flops_per_image"];
  for (const auto& p : j["presets"])
    EXPECT_DOUBLE_EQ(p["flops"].get<double>(), p["images_per_s"].get<double>() * per_image) << p["name"];
  const auto table = run(sim + " presets");
  ASSERT_EQ(table.code, 0) << table.err;
  EXPECT_NE(table.out.find("| a100-tf32 | A100 80GB (DGX A100) | TF32 | 256 | 938 |"), std::string::npos) << table.out;
  EXPECT_NE(table.out.find("| h100-amp | H100 80GB SXM5 | mixed precision (AMP) | 1280 | 2616 |"), std::string::npos)
      << table.out;
  // Each source is named once, with the presets taken from it.
  EXPECT_NE(table.out.find("- v100-fp32, v100-amp, a100-tf32, a100-amp: NVIDIA DeepLearningExamples"),
            std::string::npos)
      << table.out;
  EXPECT_NE(table.out.find("- h100-tf32, h100-amp, h100-pcie-tf32, h100-pcie-amp: Lambda GPU benchmark"),
            std::string::npos)
      << table.out;
}

TEST(SimPresetsCli, RunNamesThePresetAsItsComputeSource) {
  resist::test::TempDir dir;
  const auto p = platform_file(dir, R"({"preset": "v100-fp32"})");
  const auto r = run(sim + " run --platform " + p + " --model preact-resnet18 --dataset cifar10 --protocol local-sgd "
                           "--workers 2 --local-iters 5 --rounds 2 --format json");
  ASSERT_EQ(r.code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_NE(j["compute_source"].get<std::string>().find("gpu.preset v100-fp32: 367 images/s"), std::string::npos)
      << j["compute_source"];
}

TEST(SimPresetsCli, UnknownPresetIsOneLineExitTwo) {
  resist::test::TempDir dir;
  const auto out = dir.path / "out";
  resist::test::expect_refused(sim + " run --platform " + platform_file(dir, R"("h100-fp8")") +
                                   " --protocol local-sgd --workers 2 --rounds 1 --out " + out.string(),
                               "gpu: unknown value 'h100-fp8' (accepted: v100-fp32", out);
  resist::test::expect_refused(sim + " run --set gpu.preset=p100 --protocol local-sgd --workers 2 --rounds 1",
                               "unknown value 'p100'");
  resist::test::expect_refused(sim + " presets --format xml", "--format: unknown value 'xml'");
}
