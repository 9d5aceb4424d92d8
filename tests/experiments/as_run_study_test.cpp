// A paper-cifar study with "as_run": the grid simulated as designed and as the
// implementation runs it, side by side; the overheads only ever add time.
#include <gtest/gtest.h>

#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include "tests/support/process.hpp"

namespace fs = std::filesystem;
using namespace resist::test;  // kStudy, run, read_text, write_file, TempDir

namespace {

// wall_clock_s (column 10 of results.csv) per data row.
std::vector<double> wall_clock(const fs::path& csv) {
  std::istringstream in(read_text(csv));
  std::string line;
  std::getline(in, line);
  std::vector<double> out;
  while (std::getline(in, line)) {
    std::istringstream cells(line);
    std::string cell;
    for (int i = 0; i < 10 && std::getline(cells, cell, ','); ++i) {
    }
    out.push_back(std::stod(cell));
  }
  return out;
}

}  // namespace

TEST(StudyAsRun, ReportsBothAndOverheadsOnlyAddTime) {
  TempDir dir;
  const fs::path study = dir.path / "ar.json", out = dir.path / "out";
  write_file(study, R"({"format": "resist-study", "version": 1, "kind": "paper-cifar", "seed": 3,
    "model": {"model": "preact-resnet34", "block": "basic", "base_width": 8, "dataset": "cifar10"},
    "min_depth": 2, "batch_size": 64, "protocols": ["local-sgd", "resist"], "workers": [2, 4],
    "local_iters": [4], "epochs": 1, "train_size": 2048, "max_simulated_rounds": 3,
    "as_run": {"granularity": "tensor", "fresh_groups": true, "blocks_via_root": true,
               "launch_latency": "1ms", "group_setup": "10ms", "group_setup_per_rank": "1ms"}})");
  const auto r = run(kStudy + " run " + study.string() + " --out " + out.string());
  ASSERT_EQ(r.code, 0) << r.err;
  const std::string report = read_text(out / "report.md");
  for (const char* expect : {"**As run vs as designed.**", "| vs local SGD, as designed | vs local SGD, as run |",
                             "tensor granularity", "not to an accuracy"})
    EXPECT_NE(report.find(expect), std::string::npos) << "missing '" << expect << "'";
  const auto as_run = wall_clock(out / "results.csv");
  const auto designed = wall_clock(out / "results-as-designed.csv");
  ASSERT_EQ(as_run.size(), 4u);
  ASSERT_EQ(designed.size(), as_run.size());
  for (std::size_t i = 0; i < as_run.size(); ++i) EXPECT_GT(as_run[i], designed[i]) << "row " << i;
}

TEST(StudyAsRun, BadAsRunNamesTheKey) {
  TempDir dir;
  const fs::path study = dir.path / "bad.json";
  write_file(study, R"({"format": "resist-study", "version": 1, "kind": "paper-cifar", "seed": 3,
    "as_run": {"granularity": "layer"}})");
  const auto r = run(kStudy + " run " + study.string() + " --out " + (dir.path / "out").string());
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("as_run.granularity: unknown value 'layer'"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir.path / "out"));
}
