// End-to-end: resist-bench and scripts/bench_pytorch.py on the CPU, at tiny
// sizes (base width 8, batch 4, a couple of steps). Speed is not asserted;
// what is: the JSON both write, the FLOP and parameter accounting, the ResIST
// sub-ResNet, and that the PyTorch network is the spec's network.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <vector>

#include <nlohmann/json.hpp>

#include "models/spec.hpp"
#include "tests/support/process.hpp"

using resist::test::run;
using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

const std::string bench = resist::test::bin("runtime/bench/resist-bench");
const std::string tiny = " --base-width 8 --batch 4 --warmup 1 --iters 2 --matmul-size 0";

resist::ModelSpec tiny_spec() {
  resist::ModelOptions o;
  o.model = "preact-resnet101";
  o.block = "basic";
  o.base_width = 8;
  return resist::build_model(o);
}

json run_json(const std::string& command) {
  const auto r = run(command);
  EXPECT_EQ(r.code, 0) << command << "\n" << r.err;
  try {
    return json::parse(r.out);
  } catch (const std::exception& e) {
    ADD_FAILURE() << command << ": not JSON: " << r.out;
    return json::object();
  }
}

bool have_python_torch() { return run("/usr/bin/python3 -c 'import torch' >/dev/null").code == 0; }

}  // namespace

TEST(BenchCli, FullModelJsonAccountsTheSpecFlops) {
  resist::test::TempDir dir;
  const auto out = dir.path / "r.json";
  const auto r = run(bench + " --base-width 8 --batch 4 --warmup 1 --iters 2 --matmul-size 512 --format json --out " + out.string());
  ASSERT_EQ(r.code, 0) << r.err;
  const auto j = json::parse(r.out);
  EXPECT_EQ(json::parse(resist::test::read_text(out)), j);  // --out holds what stdout shows
  EXPECT_EQ(j["format"], "resist-bench");
  EXPECT_EQ(j["version"], 1);
  const auto spec = tiny_spec();
  EXPECT_EQ(j["params"].get<std::uint64_t>(), spec.param_count());
  EXPECT_EQ(j["blocks_held"].get<std::size_t>(), spec.blocks.size());
  EXPECT_DOUBLE_EQ(j["train_flops_per_step"].get<double>(), 3.0 * double(spec.flops_fwd()) * 4);
  EXPECT_GT(j["images_per_s"].get<double>(), 0.0);
  EXPECT_NEAR(j["images_per_s"].get<double>() * j["step_s"].get<double>(), 4.0, 1e-6);
  EXPECT_GT(j["peak_matmul_flops_per_s"].get<double>(), 0.0);
  EXPECT_GT(j["peak_conv_flops_per_s"].get<double>(), 0.0);
  EXPECT_DOUBLE_EQ(j["peak_flops_per_s"].get<double>(),
                   std::max(j["peak_matmul_flops_per_s"].get<double>(), j["peak_conv_flops_per_s"].get<double>()));
  EXPECT_NEAR(j["mfu"].get<double>(), j["achieved_flops_per_s"].get<double>() / j["peak_flops_per_s"].get<double>(),
              1e-9);
  EXPECT_GT(j["mfu"].get<double>(), 0.0);
  EXPECT_LE(j["mfu"].get<double>(), 1.0) << "the measured peak is not a peak";
  EXPECT_GE(j["threads"].get<int>(), 1);
  EXPECT_FALSE(j["blas"]["name"].get<std::string>().empty());
  EXPECT_GT(j["peak_memory_bytes"].get<std::uint64_t>(), 0u);
  EXPECT_EQ(j["memory_kind"], "peak-rss");
}

// The case that reported MFU 16: Debian's LibTorch on the reference BLAS
// (matmuls at a few GFLOP/s) while the convolutions run on oneDNN. The peak is
// the faster of a matmul and a convolution, so MFU stays at most 1, and the
// bench names the BLAS it found. LD_PRELOAD puts the reference BLAS first.
TEST(BenchCli, MfuIsAtMostOneAndTheBlasIsNamedOnTheReferenceBlas) {
  const std::string reference = "/usr/lib/x86_64-linux-gnu/blas/libblas.so.3";
  if (!fs::exists(reference)) GTEST_SKIP() << "Debian's reference BLAS (libblas3) is not installed";
  const auto j = run_json("LD_PRELOAD=" + reference + " " + bench +
                          " --base-width 16 --batch 32 --warmup 1 --iters 2 --matmul-size 512 --format json");
  EXPECT_EQ(j["blas"]["name"], "reference BLAS (netlib)") << j["blas"].dump();
  EXPECT_EQ(j["blas"]["optimised"], false);
  EXPECT_GT(j["mfu"].get<double>(), 0.0);
  EXPECT_LE(j["mfu"].get<double>(), 1.0) << j.dump();
  EXPECT_EQ(j["peak_kind"], "conv3x3");  // the reference matmul is no peak
  // The table names the BLAS and tells how to get a better one.
  const auto t = run("LD_PRELOAD=" + reference + " " + bench + tiny);
  ASSERT_EQ(t.code, 0) << t.err;
  EXPECT_NE(t.out.find("BLAS: reference BLAS (netlib)"), std::string::npos) << t.out;
  EXPECT_NE(t.out.find("libopenblas0-pthread"), std::string::npos) << t.out;
}

TEST(BenchCli, ResistWorkerHoldsSharedBlocksPlusK) {
  // S = 4 on 22 partitionable blocks: k = max(ceil(22/4), d_min 4) = 6.
  const auto j = run_json(bench + tiny + " --resist-workers 4 --precision bf16 --channels-last --format json");
  const auto spec = tiny_spec();
  EXPECT_EQ(j["blocks_per_worker"], 6);
  EXPECT_EQ(j["blocks_held"].get<std::size_t>(), spec.shared.size() + 6);
  EXPECT_LT(j["params"].get<std::uint64_t>(), spec.param_count());
  EXPECT_LT(j["train_flops_per_step"].get<double>(), 3.0 * double(spec.flops_fwd()) * 4);
  EXPECT_EQ(j["precision"], "bf16");
  EXPECT_EQ(j["channels_last"], true);
  // A larger d_min: more blocks.
  const auto deep = run_json(bench + tiny + " --resist-workers 4 --min-depth 10 --sgd torch --format json");
  EXPECT_EQ(deep["blocks_per_worker"], 10);
  EXPECT_EQ(deep["sgd"], "torch");
}

// resist-bench's multi-tensor SGD and resist-train's fused one make the same
// update as torch::optim::SGD (momentum, weight decay): the same loss after
// a few steps on the same batch. The multi-tensor one runs LibTorch's own
// kernels and matches it to the bit over three updates; the fused loop
// rounds differently (no fused multiply-add), which this deep network at
// batch 8 amplifies from a loss 5e-7 apart after its first fused update to
// 6e-4 apart after the next, so it is compared after one (fused_sgd_test.cpp
// checks its arithmetic on every element). And training works: the loss on
// the one batch goes down. On the CPU each reports its updates' time.
TEST(BenchCli, ForeachAndFusedSgdMatchTorchSgdAndLowerTheLoss) {
  const std::string flags = " --base-width 8 --batch 8 --warmup 0 --matmul-size 0 --format json --lr 0.05";
  const auto first = run_json(bench + flags + " --iters 1");
  for (const auto& [sgd, iters] : std::vector<std::pair<std::string, int>>{{"foreach", 4}, {"fused", 3}}) {
    const std::string n = " --iters " + std::to_string(iters);
    const auto t = run_json(bench + flags + n + " --sgd torch");
    const auto j = run_json(bench + flags + n + " --sgd " + sgd);
    EXPECT_NEAR(j["final_loss"].get<double>(), t["final_loss"].get<double>(),
                1e-5 * std::abs(t["final_loss"].get<double>()))
        << sgd;
    EXPECT_LT(j["final_loss"].get<double>(), first["final_loss"].get<double>()) << sgd;
    EXPECT_GT(j["sgd_step_s"].get<double>(), 0) << sgd;
    EXPECT_LT(j["sgd_step_s"].get<double>(), j["step_s"].get<double>()) << sgd;
  }
}

// resist-bench, like resist-train, keeps freed memory in the process unless
// told otherwise (RESIST_MALLOC=glibc, or glibc's own MALLOC_* variables),
// and says which in its software record.
TEST(BenchCli, KeepsFreedMemoryUnlessTheEnvironmentSaysOtherwise) {
  const std::string flags = " --base-width 8 --batch 4 --warmup 0 --iters 1 --matmul-size 0 --format json";
  EXPECT_EQ(run_json(bench + flags)["software"]["malloc"]["set_by_resist"], true);
  for (const std::string env : {"RESIST_MALLOC=glibc ", "MALLOC_TRIM_THRESHOLD_=1000000 "}) {
    const auto j = run_json(env + bench + flags);
    EXPECT_EQ(j["software"]["malloc"]["set_by_resist"], false) << env;
    EXPECT_FALSE(j["software"]["malloc"]["why"].get<std::string>().empty()) << env;
  }
}

TEST(BenchCli, BadInputIsOneLineExit2AndNoFile) {
  resist::test::TempDir dir;
  const auto out = dir.path / "r.json";
  for (const std::string flags : {" --device gpu", " --precision fp16", " --batch 0", " --resist-workers 2 --min-depth 23",
                                  " --sgd adam", " --model mlp", " --matmul-size 64"}) {
    // Not `tiny`: a flag given twice would fail for that reason instead.
    const auto r = run(bench + " --base-width 8 --warmup 0 --iters 1" + flags + " --out " + out.string());
    EXPECT_EQ(r.code, 2) << flags << ": " << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_FALSE(fs::exists(out)) << flags;
  }
}

TEST(BenchCli, CudaWithoutDeviceIsAUserError) {
  const auto r = run(bench + tiny + " --device cuda");
  // A CUDA LibTorch on a GPU machine runs it; anywhere else it is a user error.
  if (r.code == 0) GTEST_SKIP() << "a CUDA device is present";
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_NE(r.err.find("--device"), std::string::npos) << r.err;
}

// The plain-PyTorch network is the spec's network: same parameters (the
// paper's 41,396,900 at width 64, 100 classes), same FLOP accounting.
TEST(BenchPytorch, SameNetworkAndFieldsAsResistBench) {
  if (!have_python_torch()) GTEST_SKIP() << "/usr/bin/python3 cannot import torch (apt-get install python3-torch)";
  const std::string py = "/usr/bin/python3 " RESIST_SOURCE_DIR "/scripts/bench_pytorch.py";
  const auto count = run(py + " --print-params");
  ASSERT_EQ(count.code, 0) << count.err;
  EXPECT_EQ(count.out, "41396900\n");
  const auto p = run_json(py + tiny + " --precision bf16 --channels-last --format json");
  const auto r = run_json(bench + tiny + " --precision bf16 --channels-last --format json");
  EXPECT_EQ(p["impl"], "pytorch");
  EXPECT_EQ(p["mode"], "eager");
  for (const auto& [key, value] : r.items()) {
    EXPECT_TRUE(p.contains(key)) << "bench_pytorch.py lacks " << key;
    if (key == "model" || key == "params" || key == "train_flops_per_step" || key == "batch" ||
        key == "precision" || key == "channels_last" || key == "format" || key == "version") {
      EXPECT_EQ(p[key], value) << key;
    }
  }
  // torch.compile: runs, or (torch < 2.0) says it was skipped.
  const auto c = run_json(py + tiny + " --mode compile --iters 1 --format json");
  EXPECT_TRUE(c.contains("skipped") || c["images_per_s"].get<double>() > 0) << c.dump();
}

// scripts/gpu-build.sh without building: what it refuses and what it would run.
namespace {
const std::string gpu_build = RESIST_SOURCE_DIR "/scripts/gpu-build.sh";
const std::string debian_torch = "RESIST_TORCH_PREFIX=/usr/lib/x86_64-linux-gnu/cmake ";
}  // namespace

TEST(GpuBuild, RefusesTheOldCxxAbiAndMissingDebs) {
  resist::test::TempDir dir;
  auto r = run(debian_torch + "RESIST_TORCH_ABI=0 RESIST_GPU_DEBS=" + dir.path.string() + " " + gpu_build +
               " --dry-run");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("pre-C++11 ABI"), std::string::npos) << r.err;
  r = run(debian_torch + "RESIST_GPU_DEBS=" + dir.path.string() + " " + gpu_build + " --dry-run");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("gpu-fetch-debs.sh"), std::string::npos) << r.err;
  EXPECT_EQ(run(gpu_build + " --bogus").code, 2);
}

TEST(GpuBuild, DryRunConfiguresWithoutSimAndTestsAgainstThePrivatePrefix) {
  resist::test::TempDir dir;
  std::ofstream(dir.path / "fake.deb") << "not unpacked in a dry run";
  const auto build = dir.path / "build";
  const auto r = run(debian_torch + "RESIST_GPU_DEBS=" + dir.path.string() + " RESIST_BUILD_DIR=" +
                     build.string() + " " + gpu_build + " --dry-run");
  ASSERT_EQ(r.code, 0) << r.err;
  for (const std::string& want : std::vector<std::string>{"-DRESIST_WITH_SIM=OFF", "-DRESIST_WITH_TESTS=OFF", "-D_GLIBCXX_USE_CXX11_ABI=1",
                                 "-DBoost_USE_STATIC_LIBS=ON", build.string() + "/deps/usr"})
    EXPECT_NE(r.err.find(want), std::string::npos) << want << "\n" << r.err;
  EXPECT_FALSE(fs::exists(build));  // a dry run touches nothing
}

// analysis/gpu_report.py: the comparison table from resist-bench-format JSON.
TEST(GpuReport, TableComparesResistWithEagerAndMemoryWithTheFullModel) {
  resist::test::TempDir dir;
  auto write = [&](const std::string& name, double images_per_s, std::uint64_t params, std::uint64_t peak) {
    json j = {{"format", "resist-bench"}, {"version", 1}, {"device_name", "Test GPU"}, {"batch", 128},
              {"iters", 50}, {"warmup", 10}, {"images_per_s", images_per_s}, {"mfu", 0.25},
              {"params", params}, {"blocks_held", 19}, {"blocks_per_worker", 6}, {"peak_memory_bytes", peak},
              {"memory_kind", "cuda-max-allocated"}, {"matmul_size", 8192}, {"matmul_tf32", true},
              {"peak_matmul_flops_per_s", 4e14}, {"software", {{"libtorch", "2.11.0"}}},
              {"command", "cmd-" + name}};
    std::ofstream(dir.path / (name + ".json")) << j.dump();
  };
  write("resist-fp32-nchw", 1100, 41396900, 8ull << 30);
  write("pytorch-eager-fp32-nchw", 1000, 41396900, 9ull << 30);
  write("resist-bf16-nchw", 1900, 41396900, 6ull << 30);
  write("pytorch-eager-bf16-nchw", 2000, 41396900, 6ull << 30);
  write("resist-s4-fp32-nchw", 1500, 20000000, 4ull << 30);
  const auto r = run("python3 " RESIST_SOURCE_DIR "/analysis/gpu_report.py " + dir.path.string());
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("| fp32 | NCHW | 1100 (25.0%) | 1000 (25.0%) | not run | 1.10 | met |"), std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("| bf16 | NCHW | 1900 (25.0%) | 2000 (25.0%) | not run | 0.95 | NOT met |"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("| fp32 | 41396900 | 8.00 | 20000000 (19, k=6) | 4.00 | 0.50 |"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("`cmd-resist-s4-fp32-nchw`"), std::string::npos);
}

// resist-bench-comm --pairs: every rank all-reduces with one partner, all
// pairs at once (validate-grid's link fit where ranks outnumber the cores);
// an odd number of ranks, or Gloo's own all-reduce, is one line and exit 2.
TEST(BenchComm, PairsAllReduceWithinPairsAndRefuseOddRanks) {
  const std::string launch = resist::test::bin("runtime/resist-launch");
  const std::string comm = resist::test::bin("runtime/bench/resist-bench-comm");
  const auto r = run(launch + " -n 4 -- " + comm + " --floats 1024 --iters 2 --repeats 1 --variants step --pairs");
  ASSERT_EQ(r.code, 0) << r.err;
  const auto at = r.out.find('{');
  ASSERT_NE(at, std::string::npos) << r.out;
  const auto j = json::parse(r.out.substr(at));
  EXPECT_EQ(j["world_size"], 4);
  EXPECT_EQ(j["ranks_per_allreduce"], 2);
  EXPECT_GT(j["variants"]["step"]["s_per_allreduce"].get<double>(), 0);
  const auto whole = run(launch + " -n 2 -- " + comm + " --floats 1024 --iters 2 --repeats 1 --variants step");
  ASSERT_EQ(whole.code, 0) << whole.err;
  EXPECT_NE(whole.out.find("\"ranks_per_allreduce\":2"), std::string::npos) << whole.out;
  const auto odd = run(launch + " -n 3 -- " + comm + " --iters 1 --repeats 1 --pairs");
  EXPECT_NE(odd.code, 0);
  EXPECT_NE(odd.err.find("--pairs: needs an even number of ranks (got WORLD_SIZE 3)"), std::string::npos) << odd.err;
  const auto gloo = run(launch + " -n 2 -- " + comm + " --iters 1 --repeats 1 --variants gloo --pairs");
  EXPECT_NE(gloo.err.find("--pairs: not with --variants gloo"), std::string::npos) << gloo.err;
}
