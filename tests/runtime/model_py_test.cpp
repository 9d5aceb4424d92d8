// analysis/resist_model.py: the plain-PyTorch network a run describes, with
// the run's model.pt, evaluated on the run's test images, scores exactly
// report.json's test accuracy (Debian's python3-torch; skipped without it).
#include <gtest/gtest.h>

#include <sstream>

#include <nlohmann/json.hpp>

#include "tests/support/json.hpp"

using namespace resist::test;  // kLaunch, kTrain, run, read_json, TempDir
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

const std::string model_py = "/usr/bin/python3 " RESIST_SOURCE_DIR "/analysis/resist_model.py";

bool have_python_torch() { return run("/usr/bin/python3 -c 'import torch' >/dev/null 2>&1").code == 0; }

void expect_same_accuracy(const fs::path& out) {
  const auto py = run(model_py + " --run " + out.string());
  ASSERT_EQ(py.code, 0) << py.err;
  const auto mine = json::parse(py.out);
  const auto report = read_json(out / "report.json");
  EXPECT_EQ(mine["test_images"], report["test_images"]);
  EXPECT_DOUBLE_EQ(mine["test_accuracy"].get<double>(), report["test_accuracy"].get<double>()) << py.out;
}

}  // namespace

// ResIST with d_min 1 on 2 workers: the 5 partitioned branches of
// preact-resnet34 are scaled by 1/2 at inference; an eval batch smaller than
// the test set gives a last, partial batch (BatchNorm uses batch statistics).
TEST(ResistModelPy, ResnetOfAResistRunScoresTheReportedAccuracy) {
  if (!have_python_torch()) GTEST_SKIP() << "/usr/bin/python3 cannot import torch (apt-get install python3-torch)";
  TempDir dir;
  const auto r = run(kLaunch + " -n 2 -- " + kTrain +
                     " --model preact-resnet34 --base-width 4 --dataset fashion-mnist --threads 1 --quiet "
                     "--protocol resist --min-depth 1 --train-subset 512 --test-subset 300 --local-iters 2 "
                     "--rounds 4 --batch-size 16 --eval-batch 128 --out " + dir.path.string());
  ASSERT_EQ(r.code, 0) << r.err;
  const auto s = read_json(dir.path / "schedule.json");
  EXPECT_DOUBLE_EQ(s["eval_scale"][9].get<double>(), 0.5);  // layer3.1, partitioned
  expect_same_accuracy(dir.path);
  // model.pt is the inference model: the scale is folded in, and says so.
  const auto report = read_json(dir.path / "report.json");
  EXPECT_EQ(report["model_pt"]["eval_scale"], "folded");
  // report.json holds what it takes to repeat the run.
  const auto& run_record = report["run"];
  EXPECT_NE(run_record["command"].get<std::string>().find("--min-depth 1"), std::string::npos) << run_record.dump();
  EXPECT_EQ(run_record["optimizer"]["lr"].get<double>(), 0.1);
  EXPECT_EQ(run_record["optimizer"]["state"], "reset");
  EXPECT_EQ(run_record["eval_batch"], 128);
  EXPECT_EQ(run_record["threads"], 1);
  EXPECT_EQ(run_record["schedule"]["seed"], 1);
  EXPECT_EQ(run_record["model"]["name"], "preact-resnet34-basic-w4-fashion-mnist");
  EXPECT_FALSE(run_record["software"]["resist_git_commit"].get<std::string>().empty());
  EXPECT_FALSE(run_record["software"]["blas"]["name"].get<std::string>().empty());
  // resist-train keeps freed memory in the process (runtime/host_memory.hpp) and says so
  EXPECT_EQ(run_record["software"]["malloc"]["set_by_resist"], true) << run_record["software"].dump();
  // metrics.jsonl: epoch, images/s and the compute / communication split per round.
  std::istringstream lines(resist::test::read_text(dir.path / "metrics.jsonl"));
  int n = 0;
  for (std::string line; std::getline(lines, line); ++n) {
    const auto m = json::parse(line);
    for (const char* key : {"epoch", "images_per_s", "compute_s", "comm_s"}) EXPECT_TRUE(m.contains(key)) << key;
    EXPECT_GT(m["compute_s"].get<double>(), 0.0);
    EXPECT_GT(m["comm_s"].get<double>(), 0.0);
  }
  EXPECT_EQ(n, 4);
  // Not the accuracy of some other network: bad run directories are one line, exit 2.
  const auto bad = run(model_py + " --run " + (dir.path / "nothing").string());
  EXPECT_EQ(bad.code, 2);
  EXPECT_EQ(std::count(bad.err.begin(), bad.err.end(), '\n'), 1) << bad.err;
}

TEST(ResistModelPy, MlpOfAnIstRunScoresTheReportedAccuracy) {
  if (!have_python_torch()) GTEST_SKIP() << "/usr/bin/python3 cannot import torch (apt-get install python3-torch)";
  TempDir dir;
  const auto r = run(kLaunch + " -n 2 -- " + kTrain +
                     " --model mlp --hidden 128,64 --dataset fashion-mnist --threads 1 --quiet --protocol ist "
                     "--train-subset 512 --test-subset 300 --local-iters 2 --rounds 4 --batch-size 16 --out " +
                     dir.path.string());
  ASSERT_EQ(r.code, 0) << r.err;
  expect_same_accuracy(dir.path);
}
