// The `convergence` study: the time-to-target rule (first evaluation at or
// above the target, no interpolation), the seed mean, reading metrics.jsonl,
// strict study files, and (with the runtime built) a tiny real study.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <vector>

#include <nlohmann/json.hpp>

#include "experiments/convergence.hpp"
#include "models/error.hpp"
#include "tests/support/process.hpp"

namespace fs = std::filesystem;
using resist::study::CurvePoint;
using resist::study::first_crossing;
using resist::study::mean_curve;
using namespace resist::test;  // kStudy, run, read_text, write_file, TempDir

namespace {

std::vector<CurvePoint> curve(const std::vector<double>& acc) {
  std::vector<CurvePoint> c;
  for (std::size_t k = 0; k < acc.size(); ++k)
    c.push_back({int(2 * k + 1), 0.5 * double(k + 1), 10.0 * double(k + 1), acc[k]});
  return c;
}

std::vector<std::string> split(const std::string& line) {
  std::vector<std::string> cells;
  std::string cell;
  for (std::stringstream ss(line); std::getline(ss, cell, ',');) cells.push_back(cell);
  if (!line.empty() && line.back() == ',') cells.push_back("");
  return cells;
}

// CSV rows as maps column -> cell.
std::vector<std::map<std::string, std::string>> csv_rows(const std::string& text) {
  std::istringstream in(text);
  std::string line;
  std::getline(in, line);
  const auto head = split(line);
  std::vector<std::map<std::string, std::string>> rows;
  while (std::getline(in, line)) {
    auto cells = split(line);
    cells.resize(head.size());
    std::map<std::string, std::string> r;
    for (std::size_t i = 0; i < head.size(); ++i) r[head[i]] = cells[i];
    rows.push_back(r);
  }
  return rows;
}

}  // namespace

TEST(ConvergenceTarget, FirstEvaluationAtOrAboveTheTargetWithoutInterpolation) {
  const auto c = curve({0.50, 0.70, 0.85, 0.80, 0.90});
  // exactly on an evaluation: that evaluation
  ASSERT_TRUE(first_crossing(c, 0.70).has_value());
  EXPECT_EQ(first_crossing(c, 0.70)->round, 3);
  // between two evaluations: the later one's time, not an interpolated 25 s
  const auto p = first_crossing(c, 0.775);
  ASSERT_TRUE(p.has_value());
  EXPECT_DOUBLE_EQ(p->time_s, 30.0);
  EXPECT_DOUBLE_EQ(p->epochs, 1.5);
  // the first crossing counts even if the curve dips below afterwards
  EXPECT_EQ(first_crossing(c, 0.82)->round, 5);
  // reached at the first evaluation
  EXPECT_EQ(first_crossing(c, 0.10)->round, 1);
  // never reached
  EXPECT_FALSE(first_crossing(c, 0.95).has_value());
  EXPECT_FALSE(first_crossing({}, 0.10).has_value());
}

TEST(ConvergenceTarget, SeedMeanIsPointwiseAndCutToTheShortestCurve) {
  auto a = curve({0.2, 0.6, 0.8}), b = curve({0.4, 0.8});
  b[1].time_s = 30;  // another seed's rounds may take another time (ResIST's partitions)
  const auto m = mean_curve({a, b});
  ASSERT_EQ(m.size(), 2u);
  EXPECT_DOUBLE_EQ(m[0].accuracy, 0.3);
  EXPECT_DOUBLE_EQ(m[1].accuracy, 0.7);
  EXPECT_DOUBLE_EQ(m[1].time_s, 25.0);
  EXPECT_EQ(m[1].round, 3);
  // a target one seed reaches early and the other never: the mean decides
  EXPECT_TRUE(first_crossing(a, 0.75).has_value());
  EXPECT_FALSE(first_crossing(m, 0.75).has_value());
  EXPECT_TRUE(mean_curve({}).empty());
}

TEST(ConvergenceTarget, ReadsTheEvaluatedRoundsOfMetrics) {
  TempDir dir;
  const fs::path f = dir.path / "metrics.jsonl";
  std::ofstream(f) << R"({"round": 0, "loss": 2.0})" "\n"
                   << R"({"round": 1, "loss": 1.5, "test_accuracy": 0.4})" "\n"
                   << R"({"round": 2, "loss": 1.2})" "\n"
                   << R"({"round": 3, "loss": 1.0, "test_accuracy": 0.6})" "\n";
  const auto c = resist::study::read_curve(f.string(), {1, 2, 3, 4}, {5, 10, 15, 20}, 10);
  ASSERT_EQ(c.size(), 2u);
  EXPECT_EQ(c[0].round, 1);
  EXPECT_DOUBLE_EQ(c[0].time_s, 2.0);
  EXPECT_DOUBLE_EQ(c[0].epochs, 1.0);
  EXPECT_DOUBLE_EQ(c[1].accuracy, 0.6);
  EXPECT_DOUBLE_EQ(c[1].epochs, 2.0);
  // a round the schedule does not have is an error, not a silent point
  EXPECT_THROW(resist::study::read_curve(f.string(), {1, 2}, {5, 10}, 10), resist::UserError);
}

TEST(ConvergenceConfig, BadStudyFilesAreOneLineAndExit2) {
  TempDir dir;
  const std::string base = R"({"format": "resist-study", "version": 1, "kind": "convergence", "seed": 1,
    "model": {"model": "preact-resnet34", "base_width": 4, "dataset": "fashion-mnist"}, "train_subset": 256)";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {R"(, "target_accuracies": [80, 120])", "target_accuracies[1]: must be in 0..100 (got 120)"},
      {R"(, "target_accuracies": [0])", "target_accuracies[0]: must be a percentage in (0, 100]"},
      {R"(, "target_accuracies": [])", "target_accuracies: must be a non-empty list"},
      {R"(, "seeds": 0)", "seeds: must be in 1..100 (got 0)"},
      {R"(, "evals_per_epoch": 0)", "evals_per_epoch: must be in 1..1000 (got 0)"},
      {R"(, "local_iters": [5, 10])", "local_iters: convergence takes one value"},
      {R"(, "workers": [2, 16])", "workers[1]: convergence runs 1..8 local ranks (got 16)"},
      {R"(, "train_size": 5000)", "train_size: unknown key for kind 'convergence'"},
      {R"(, "protocols": ["resist", "sgd"])", "protocols[1]: unknown value 'sgd'"},
      {R"(, "platform": "nowhere.json")", "platform:"},
  };
  int i = 0;
  for (const auto& [extra, expect] : cases) {
    const fs::path file = dir.path / ("c" + std::to_string(i++) + ".json"), out = dir.path / "out";
    write_file(file, base + extra + "}");
    const auto r = run(kStudy + " run " + file.string() + " --out " + out.string());
    EXPECT_EQ(r.code, 2) << extra << "\n" << r.err;
    EXPECT_NE(r.err.find(file.string()), std::string::npos) << r.err;
    EXPECT_NE(r.err.find(expect), std::string::npos) << "expected '" << expect << "' in: " << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_FALSE(fs::exists(out)) << extra;
  }
}

TEST(ConvergenceConfig, ShippedOptInStudyReads) {
  const auto s =
      resist::study::read_study(std::string(RESIST_SOURCE_DIR) + "/experiments/studies/opt-in/convergence.json");
  EXPECT_EQ(s.kind, resist::study::Kind::convergence);
  EXPECT_GE(s.epochs, 10);
  EXPECT_GE(s.seeds, 2);
  for (const char* p : {"resist", "local-sgd", "data-parallel"})
    EXPECT_NE(std::find(s.protocols.begin(), s.protocols.end(), p), s.protocols.end()) << p;
}

#ifdef RESIST_HAVE_RUNTIME
// A tiny real study: 2 Gloo ranks train every protocol for 2 epochs of 128
// images, one seed (the seed mean is unit-tested above); the curves are the
// runs' own metrics, placed at the simulator's round ends.
TEST(ConvergenceRun, TinyStudyRecordsCurvesAndTimesToTargets) {
  TempDir dir;
  const fs::path file = dir.path / "c.json", out = dir.path / "out";
  write_file(file, R"({"format": "resist-study", "version": 1, "kind": "convergence", "seed": 7,
    "model": {"model": "preact-resnet34", "block": "basic", "base_width": 4, "dataset": "fashion-mnist"},
    "protocols": ["data-parallel", "local-sgd", "resist"], "workers": [2], "local_iters": [2], "batch_size": 16,
    "min_depth": 2, "epochs": 2, "train_subset": 128, "test_subset": 64, "threads": 1, "seeds": 1,
    "evals_per_epoch": 2, "target_accuracies": [1, 100]})");
  const auto r = run(kStudy + " run " + file.string() + " --out " + out.string());
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("ResIST − local SGD"), std::string::npos) << r.out;
  const std::string report = read_text(out / "report.md");
  for (const char* expect : {"## c (`convergence`)", "speedup vs local SGD, same epochs", "not reached",
                             "ResIST vs local SGD, to accuracy", "figures/accuracy_vs_time.png"})
    EXPECT_NE(report.find(expect), std::string::npos) << "missing '" << expect << "' in\n" << report;
  for (const char* f : {"figures/accuracy_vs_epochs.png", "figures/accuracy_vs_epochs.svg",
                        "figures/accuracy_vs_time.png", "figures/accuracy_vs_time.svg"})
    EXPECT_GT(fs::file_size(out / f), 1000u) << f;

  // Every seed's curve is its run's metrics.jsonl, in predicted time order.
  const auto curves = csv_rows(read_text(out / "curves.csv"));
  std::map<std::string, std::vector<std::map<std::string, std::string>>> by_run;
  for (const auto& c : curves)
    if (c.at("seed") != "mean") by_run[c.at("protocol") + "-m2-s" + c.at("seed")].push_back(c);
  ASSERT_EQ(by_run.size(), 3u);
  for (const auto& [tag, pts] : by_run) {
    std::map<int, double> measured;
    std::istringstream metrics(read_text(out / "runs" / tag / "metrics.jsonl"));
    for (std::string line; std::getline(metrics, line);) {
      const auto j = nlohmann::json::parse(line);
      if (j.contains("test_accuracy")) measured[j["round"].get<int>()] = j["test_accuracy"].get<double>();
    }
    ASSERT_EQ(measured.size(), pts.size()) << tag;
    EXPECT_GE(pts.size(), 4u) << tag << ": about 2 evaluations per epoch";
    double last_s = 0;
    for (const auto& p : pts) {
      EXPECT_NEAR(std::stod(p.at("test_accuracy")), measured.at(std::stoi(p.at("round"))), 1e-6) << tag;
      EXPECT_GT(std::stod(p.at("predicted_s")), last_s) << tag;
      last_s = std::stod(p.at("predicted_s"));
    }
    EXPECT_NEAR(std::stod(pts.back().at("epochs")), 2.0, 1e-9) << tag;
  }
  // 1% is reached at the first evaluation by everyone; 100% by no one.
  for (const auto& t : csv_rows(read_text(out / "time_to_accuracy.csv"))) {
    if (t.at("target_accuracy") == "1") {
      EXPECT_EQ(t.at("seeds_reaching"), "1");
      EXPECT_FALSE(t.at("predicted_s").empty());
    } else {
      EXPECT_EQ(t.at("seeds_reaching"), "0");
      EXPECT_EQ(t.at("predicted_s"), "");
      EXPECT_EQ(t.at("speedup_vs_local_sgd_to_accuracy"), "");
    }
  }
  // A second run reuses the finished runs (same schedules, same commands).
  const std::string first = read_text(out / "curves.csv");
  const auto again = run(kStudy + " run " + file.string() + " --out " + out.string());
  ASSERT_EQ(again.code, 0) << again.err;
  EXPECT_NE(again.err.find("reusing the finished run"), std::string::npos) << again.err;
  EXPECT_EQ(read_text(out / "curves.csv"), first);
}
#endif
