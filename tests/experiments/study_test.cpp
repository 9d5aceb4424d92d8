// resist-study: study files are checked strictly, and a tiny study of every
// simulated kind produces the expected tables and non-empty figures.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <sstream>
#include <tuple>
#include <vector>

#include <nlohmann/json.hpp>

#include "experiments/study.hpp"
#include "models/error.hpp"
#include "tests/support/process.hpp"

namespace fs = std::filesystem;
using namespace resist::test;  // kStudy, run, read_text, write_file, TempDir

namespace {

std::string tiny(const std::string& kind, const std::string& extra) {
  return R"({"format": "resist-study", "version": 1, "kind": ")" + kind + R"(", "seed": 3,
    "model": {"model": "preact-resnet34", "block": "basic", "base_width": 8, "dataset": "cifar10"},
    "min_depth": 2, "batch_size": 64)" + extra + "}";
}

}  // namespace

TEST(StudyConfig, ShippedStudiesValidate) {
  int n = 0;
  for (const auto& e : fs::directory_iterator(std::string(RESIST_SOURCE_DIR) + "/experiments/studies")) {
    if (e.path().extension() != ".json") continue;
    EXPECT_NO_THROW(resist::study::read_study(e.path().string())) << e.path();
    ++n;
  }
  EXPECT_GE(n, 5);
}

TEST(StudyConfig, BadConfigsNameFileAndJsonPath) {
  TempDir dir;
  struct Case {
    std::string json, expect;
  };
  const std::vector<Case> cases = {
      {R"({"format": "resist-study", "version": 1, "kind": "nope", "seed": 1})", "kind: unknown value 'nope'"},
      {R"({"format": "resist-study", "version": 1, "kind": "table1"})", "seed: missing"},
      {R"({"format": "resist-schedule", "version": 1, "kind": "table1", "seed": 1})", "format"},
      {tiny("table1", R"(, "workers": [2, 0])"), "workers[1]: must be in 1..65536 (got 0)"},
      {tiny("table1", R"(, "machines": [2, 0])"), "machines[1]: must be in 1..65536 (got 0)"},  // its older name
      {tiny("table1", R"(, "machines": [2], "workers": [2])"), "machines: give either workers or machines"},
      {tiny("table1", R"(, "bandwidths": ["1Gbps"])"), "bandwidths: unknown key for kind 'table1'"},
      {tiny("what-if", R"(, "bandwidths": ["10Gbps", "fast"])"), "bandwidths[1]"},
      {tiny("paper-cifar", R"(, "protocols": ["resist", "ist2"])"), "protocols[1]: unknown value 'ist2'"},
      {tiny("paper-cifar", R"(, "platform": "no-such-platform.json")"), "platform:"},
      {tiny("scale", R"(, "workers": [2, 4096], "platform": ")" + std::string(RESIST_SOURCE_DIR) +
                         R"(/experiments/platforms/flat-10g.json")"),
       "workers:"},
      {tiny("paper-cifar", R"(, "model": {"model": "preact-resnet34", "depth": 3})"), "model.depth: unknown key"},
      {tiny("what-if", R"(, "model": {"model": "mlp", "hidden": [64]})"), "model.model: kind 'what-if'"},
      {tiny("paper-cifar", R"(, "protocols": ["ist"])"), "ist"},  // IST needs an MLP
      {tiny("paper-cifar", R"(, "measure_here": {})"), "measure_here: unknown key for kind 'paper-cifar'"},
      {tiny("layer-parallel", R"(, "measure_here": {"repeats": 0})"), "measure_here.repeats: must be in 1..20"},
      {tiny("layer-parallel", R"(, "measure_here": {"stages": 4})"), "measure_here.stages: unknown key"},
      {tiny("layer-parallel", R"(, "measure_here": {"model": "mlp"})"), "measure_here.model: layer-parallel needs"},
      {tiny("layer-parallel", R"(, "measure_here": {"batch_size": 64, "train_subset": 100})"),
       "measure_here.train_subset: must hold at least two batches"},
      {"{not json", "study"},
  };
  int i = 0;
  for (const auto& c : cases) {
    const fs::path file = dir.path / ("bad" + std::to_string(i++) + ".json");
    write_file(file, c.json);
    const fs::path out = dir.path / "out";
    const auto r = run(kStudy + " run " + file.string() + " --out " + out.string());
    EXPECT_EQ(r.code, 2) << c.json << "\n" << r.err;
    EXPECT_NE(r.err.find(file.string()), std::string::npos) << r.err;
    EXPECT_NE(r.err.find(c.expect), std::string::npos) << "expected '" << c.expect << "' in: " << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_FALSE(fs::exists(out)) << "no output for a bad study";
  }
}

TEST(StudyConfig, BadCommandLines) {
  TempDir dir;
  EXPECT_EQ(run(kStudy + " run --all").code, 2);                                   // no --out
  EXPECT_EQ(run(kStudy + " run --out " + dir.path.string()).code, 2);              // nothing to run
  EXPECT_EQ(run(kStudy + " run --bogus --out " + dir.path.string()).code, 2);
  EXPECT_EQ(run(kStudy + " frobnicate").code, 2);
  EXPECT_EQ(run(kStudy + " run --help").code, 0);
}

// One tiny study of each simulated kind through `run --all --studies DIR`.
TEST(StudyRun, TinyStudiesWriteTablesAndFigures) {
  TempDir dir;
  const fs::path studies = dir.path / "studies", out = dir.path / "out";
  fs::create_directories(studies);
  const std::string plat = std::string(RESIST_SOURCE_DIR) + "/experiments/platforms/";
  write_file(studies / "t1.json", tiny("table1", R"(, "workers": [2, 4], "sample_rounds": 3)"));
  write_file(studies / "pc.json", tiny("paper-cifar", R"(, "workers": [2, 4], "local_iters": [4], "epochs": 1,
      "train_size": 2048, "max_simulated_rounds": 4)"));
  write_file(studies / "wi.json", tiny("what-if", R"(, "workers": [2, 4], "local_iters": [1, 8], "epochs": 1,
      "train_size": 2048, "bandwidths": ["1Gbps", "10Gbps"], "max_simulated_rounds": 2, "platform": ")" + plat +
                                          R"(p3-2xlarge.json")"));
  write_file(studies / "sc.json", tiny("scale", R"(, "workers": [2, 8], "local_iters": [4], "epochs": 1,
      "train_size": 2048, "max_simulated_rounds": 2, "platform": ")" + plat + R"(flat-10g.json")"));
  const auto r = run(kStudy + " run --all --skip validate --studies " + studies.string() + " --out " + out.string());
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("report: "), std::string::npos);
  EXPECT_NE(r.out.find("bytes/round (GB)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("speedup vs data-parallel"), std::string::npos) << r.out;

  const std::string report = read_text(out / "report.md");
  for (const char* expect : {"## t1 (`table1`)", "| protocol | workers | params/worker | bytes/round (GB) |",
                             "## pc (`paper-cifar`)", "| speedup vs data-parallel | speedup vs local SGD |",
                             "## wi (`what-if`)", "ResIST's speedup over local SGD", "| workers \\ ℓ | 1 | 8 |",
                             "## sc (`scale`)", "| time/epoch (s) |", "](pc/figures/gantt.png)"})
    EXPECT_NE(report.find(expect), std::string::npos) << "missing '" << expect << "'";

  const std::map<std::string, std::vector<std::string>> figures = {
      {"t1", {"bytes_per_round_vs_machines"}},
      {"pc", {"speedup_vs_machines", "breakdown", "gantt"}},
      {"wi", {"heatmap_speedup", "time_vs_local_iters", "speedup_vs_machines"}},
      {"sc", {"bytes_per_round_vs_machines", "time_per_epoch_vs_machines"}}};
  for (const auto& [study, stems] : figures)
    for (const auto& stem : stems)
      for (const char* ext : {".png", ".svg"}) {
        const fs::path f = out / study / "figures" / (stem + ext);
        ASSERT_TRUE(fs::exists(f)) << f;
        EXPECT_GT(fs::file_size(f), 1000u) << f;
      }
  // Not applicable is an empty cell, never 0: data-parallel has no ℓ to compare
  // local SGD at; scale has no data-parallel baseline.
  for (const auto& [study, column, empty_for] :
       std::vector<std::tuple<std::string, std::string, std::string>>{
           {"pc", "speedup_vs_local_sgd", "data-parallel"}, {"sc", "speedup_vs_data_parallel", "*"},
           {"wi", "speedup_vs_local_sgd", "data-parallel"}}) {
    std::istringstream lines(read_text(out / study / "results.csv"));
    std::string line;
    std::getline(lines, line);
    std::vector<std::string> head;
    for (std::stringstream ss(line); std::getline(ss, line, ',');) head.push_back(line);
    const auto col = std::size_t(std::find(head.begin(), head.end(), column) - head.begin());
    ASSERT_LT(col, head.size()) << column;
    int empty = 0;
    while (std::getline(lines, line)) {
      std::vector<std::string> cells;
      for (std::stringstream ss(line); std::getline(ss, line, ',');) cells.push_back(line);
      cells.resize(head.size());  // a trailing empty cell
      EXPECT_NE(cells[col], "0") << study << ": " << column;
      if (empty_for == "*" || cells[0] == empty_for) {
        EXPECT_EQ(cells[col], "") << study << " " << cells[0];
      }
      empty += cells[col].empty();
    }
    EXPECT_GT(empty, 0) << study;
  }
  // Results are reproducible from the JSON and its seed.
  const std::string csv = read_text(out / "wi" / "results.csv");
  EXPECT_EQ(csv.rfind("model,protocol,workers,local_iters,nic_bandwidth_Bps", 0), 0u) << csv;
  const auto again = run(kStudy + " run " + (studies / "wi.json").string() + " --out " + (dir.path / "again").string());
  ASSERT_EQ(again.code, 0) << again.err;
  EXPECT_EQ(read_text(dir.path / "again" / "results.csv"), csv);
}

#ifdef RESIST_HAVE_RUNTIME
// validate on CPU: the runtime really trains on 2 Gloo ranks, and the error
// the study reports comes from the measured run's own timeline.json.
TEST(StudyValidate, ErrorsComeFromMeasuredTimelines) {
  TempDir dir;
  const fs::path file = dir.path / "v.json", out = dir.path / "out";
  write_file(file, R"({"format": "resist-study", "version": 1, "kind": "validate", "seed": 5,
    "model": {"model": "preact-resnet34", "block": "basic", "base_width": 4, "dataset": "fashion-mnist"},
    "protocols": ["local-sgd", "resist"], "workers": [2], "local_iters": [2], "batch_size": 16,
    "min_depth": 2, "rounds": 3, "warmup_rounds": 1, "train_subset": 512, "test_subset": 64, "threads": 1})");
  const auto r = run(kStudy + " run " + file.string() + " --out " + out.string());
  ASSERT_EQ(r.code, 0) << r.err;
  const std::string report = read_text(out / "report.md");
  EXPECT_NE(report.find("| local-sgd | 2 | 2 |"), std::string::npos) << report;
  EXPECT_NE(report.find("| resist | 2 | 2 |"), std::string::npos) << report;
  for (const char* f : {"figures/predicted_vs_measured.png", "figures/gantt.png", "figures/gantt.svg"})
    EXPECT_GT(fs::file_size(out / f), 1000u) << f;

  // Recompute one round's measured compute straight from the runtime's timeline.
  const auto tl = nlohmann::json::parse(read_text(out / "runs" / "resist-m2-measured" / "timeline.json"));
  EXPECT_EQ(tl["source"], "runtime");
  std::map<int, double> compute_by_worker;
  for (const auto& e : tl["traceEvents"])
    if (e["ph"] == "X" && e["args"]["round"] == 1 && e["cat"] != "comm" && e["name"] != "eval")
      compute_by_worker[e["tid"].get<int>()] += e["dur"].get<double>() / 1e6;
  double measured = 0;
  for (const auto& [w, s] : compute_by_worker) measured = std::max(measured, s);
  ASSERT_GT(measured, 0);
  std::istringstream csv(read_text(out / "rounds.csv"));
  std::string line;
  bool found = false;
  while (std::getline(csv, line))
    if (line.rfind("resist,2,1,", 0) == 0) {
      found = true;
      const double reported = std::stod(line.substr(std::string("resist,2,1,").size()));
      EXPECT_NEAR(reported, measured, 1e-4 * measured + 1e-6) << line;
      // the predicted column is a different number: it is not the measurement echoed back
      const auto rest = line.substr(line.find(',', std::string("resist,2,1,").size()) + 1);
      EXPECT_NE(std::stod(rest), reported);
    }
  EXPECT_TRUE(found);
}

// layer-parallel's "measure_here": K = 2 and layer-serial really train, and
// the measured column is each run's own metrics.jsonl.
TEST(StudyLayerParallel, MeasuresKEquals2AgainstSerialBesideThePrediction) {
  TempDir dir;
  const fs::path file = dir.path / "lp.json", out = dir.path / "out";
  write_file(file, tiny("layer-parallel", R"(, "workers": [2], "epochs": 1, "train_size": 512,
    "measure_here": {"model": "preact-resnet18", "base_width": 4, "batch_size": 16, "train_subset": 64,
                     "test_subset": 32, "repeats": 1})"));
  const auto r = run(kStudy + " run " + file.string() + " --out " + out.string());
  ASSERT_EQ(r.code, 0) << r.err;
  const std::string report = read_text(out / "report.md");
  EXPECT_NE(report.find("### Measured on this machine: K = 2 against layer-serial"), std::string::npos) << report;
  EXPECT_NE(report.find("| layer-parallel, K = 2 processes | "), std::string::npos) << report;
  // The measured layer-parallel time: the mean round_s after round 0 of the run's own metrics.
  double sum = 0;
  int n = 0;
  std::istringstream metrics(read_text(out / "measured" / "layer-parallel-1" / "metrics.jsonl"));
  for (std::string line; std::getline(metrics, line);) {
    const auto m = nlohmann::json::parse(line);
    if (m["round"].get<int>() >= 1) sum += m["round_s"].get<double>(), ++n;
  }
  ASSERT_EQ(n, 3);  // 64 images / batch 16 = 4 rounds
  std::istringstream csv(read_text(out / "measured.csv"));
  std::string line;
  bool found = false;
  while (std::getline(csv, line))
    if (line.rfind("layer-parallel,2,1,", 0) == 0) {
      found = true;
      const auto fields = line.substr(std::string("layer-parallel,2,1,").size());
      EXPECT_NEAR(std::stod(fields), sum / n, 1e-6 * sum / n) << line;
      EXPECT_GT(std::stod(fields.substr(fields.find(',') + 1)), 0) << line;  // a prediction
    }
  EXPECT_TRUE(found) << read_text(out / "measured.csv");
}
#endif

// --jobs N and --shard K/N + merge give the results and report of one --jobs 1 run.
TEST(StudyRun, JobsAndShardsGiveTheSameResultsAsOneProcess) {
  TempDir dir;
  const fs::path study = dir.path / "wi.json";
  const std::string plat = std::string(RESIST_SOURCE_DIR) + "/experiments/platforms/p3-2xlarge.json";
  write_file(study, tiny("what-if", R"(, "machines": [2, 4], "local_iters": [1, 8], "epochs": 1,
      "train_size": 2048, "bandwidths": ["1Gbps", "10Gbps"], "max_simulated_rounds": 2, "platform": ")" + plat + "\""));
  auto go = [&](const std::string& args) {
    const auto r = run(kStudy + " " + args);
    EXPECT_EQ(r.code, 0) << args << ": " << r.err;
    return r;
  };
  const fs::path one = dir.path / "one", three = dir.path / "three", merged = dir.path / "merged";
  go("run " + study.string() + " --jobs 1 --out " + one.string());
  go("run " + study.string() + " --jobs 3 --out " + three.string());
  for (int k = 1; k <= 3; ++k)
    go("run " + study.string() + " --jobs 2 --shard " + std::to_string(k) + "/3 --out " + (dir.path / ("s" + std::to_string(k))).string());
  EXPECT_FALSE(fs::exists(dir.path / "s1" / "report.md"));
  const auto m = go("merge --out " + merged.string() + " " + (dir.path / "s3").string() + " " +
                    (dir.path / "s1").string() + " " + (dir.path / "s2").string());
  EXPECT_NE(m.out.find("report: "), std::string::npos);
  const std::string expected = read_text(one / "results.csv");
  EXPECT_GT(std::count(expected.begin(), expected.end(), '\n'), 10);
  EXPECT_EQ(read_text(three / "results.csv"), expected);
  EXPECT_EQ(read_text(merged / "results.csv"), expected);
  EXPECT_EQ(read_text(merged / "report.md"), read_text(one / "report.md"));
  // A missing shard, a bad --shard or --jobs: one line, exit 2.
  for (const std::string& args : {"merge --out " + (dir.path / "m2").string() + " " + (dir.path / "s1").string(),
                                  "run " + study.string() + " --shard 4/3 --out " + (dir.path / "x").string(),
                                  "run " + study.string() + " --jobs 0 --out " + (dir.path / "x").string()}) {
    const auto r = run(kStudy + " " + args);
    EXPECT_EQ(r.code, 2) << args;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << args << ": " << r.err;
  }
}

// `resist-sim sweep` and a study simulate one grid (tools/grid.hpp): the same
// configurations give the same rows, whichever program ran them.
TEST(StudyRun, SweepAndStudyWriteTheSameRowsForTheSameGrid) {
  TempDir dir;
  const fs::path study = dir.path / "wi.json", out = dir.path / "study", sweep = dir.path / "sweep";
  const std::string plat = std::string(RESIST_SOURCE_DIR) + "/experiments/platforms/p3-2xlarge.json";
  write_file(study, tiny("what-if", R"(, "protocols": ["data-parallel", "local-sgd", "resist"], "machines": [2, 4],
      "local_iters": [1, 8], "epochs": 1, "train_size": 2048, "bandwidths": ["1Gbps", "10Gbps"],
      "max_simulated_rounds": 2, "platform": ")" + plat + "\""));
  const auto s = run(kStudy + " run " + study.string() + " --out " + out.string());
  ASSERT_EQ(s.code, 0) << s.err;
  const auto w = run(bin("sim/resist-sim") +
                     " sweep --model preact-resnet34 --block basic --base-width 8 --dataset cifar10 --seed 3"
                     " --min-depth 2 --batch-size 64 --protocols data-parallel,local-sgd,resist --workers 2,4"
                     " --local-iters 1,8 --epochs 1 --train-size 2048 --bandwidth 1Gbps,10Gbps"
                     " --max-simulated-rounds 2 --platform " + plat + " --out " + sweep.string());
  ASSERT_EQ(w.code, 0) << w.err;
  auto sorted_lines = [](const std::string& text) {
    std::vector<std::string> lines;
    std::istringstream in(text);
    for (std::string l; std::getline(in, l);) lines.push_back(l);
    std::sort(lines.begin(), lines.end());
    return lines;
  };
  const auto rows = sorted_lines(read_text(out / "results.csv"));
  EXPECT_EQ(rows.size(), 1u + 2 * 2 * (1 + 2 + 2));  // data-parallel once per bandwidth and workers
  EXPECT_EQ(sorted_lines(read_text(sweep / "sweep.csv")), rows);
}
