// End-to-end: resist-sim run / sweep / collective as a user runs them.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <sstream>
#include <vector>

#include <nlohmann/json.hpp>

#include "schedule/timeline.hpp"
#include "tests/support/process.hpp"

using resist::test::run;
namespace fs = std::filesystem;

namespace {
const std::string sim = resist::test::bin("sim/resist-sim");
const std::string flat = std::string(RESIST_SOURCE_DIR) + "/experiments/platforms/flat-10g.json";
const std::string model = " --model preact-resnet101 --block basic --dataset cifar100";

int count_lines(const std::string& text) { return int(std::count(text.begin(), text.end(), '\n')); }
}  // namespace

TEST(SimRunCli, RunPrintsJsonAndWritesSummaryRoundsAndTimeline) {
  resist::test::TempDir dir;
  const auto out = (dir.path / "run").string();
  const auto r = run(sim + " run" + model + " --protocol resist --workers 4 --local-iters 5 --rounds 3 --out " + out);
  ASSERT_EQ(r.code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  for (const char* key : {"wall_clock_s", "compute_s", "communication_s", "exposed_communication_s", "rounds",
                          "bytes_per_round", "wire_bytes_total"})
    EXPECT_TRUE(j.contains(key)) << key;
  EXPECT_EQ(j["rounds"], 3);
  EXPECT_GT(j["wall_clock_s"].get<double>(), j["compute_s"].get<double>());
  EXPECT_EQ(nlohmann::json::parse(resist::test::read_text(out + "/summary.json")), j);
  EXPECT_EQ(count_lines(resist::test::read_text(out + "/rounds.csv")), 1 + 3);
  const auto t = resist::read_timeline_file(out + "/timeline.json");
  EXPECT_EQ(t.source, "sim");
  EXPECT_EQ(t.workers, 4);
  int compute = 0;
  for (const auto& e : t.events) compute += e.kind == "compute";
  EXPECT_EQ(compute, 4 * 3);
}

TEST(SimRunCli, BandwidthShortcutOverridesTheNic) {
  const auto r = run(sim + " run" + model + " --protocol local-sgd --workers 8 --rounds 2 --bandwidth 1Gbps");
  ASSERT_EQ(r.code, 0) << r.err;
  const auto fast = nlohmann::json::parse(r.out);
  EXPECT_DOUBLE_EQ(fast["nic_bandwidth_Bps"].get<double>(), 1.25e8);
  const auto ten = nlohmann::json::parse(run(sim + " run" + model + " --protocol local-sgd --workers 8 --rounds 2").out);
  EXPECT_GT(fast["communication_s"].get<double>(), 5 * ten["communication_s"].get<double>());
}

TEST(SimRunCli, SweepWritesOneRowPerConfigurationAndSpeedups) {
  resist::test::TempDir dir;
  const auto out = (dir.path / "sweep").string();
  const auto r = run(sim + " sweep" + model + " --protocols data-parallel,local-sgd,resist --workers 2,4 "
                           "--local-iters 10,20 --bandwidth 1Gbps,10Gbps --epochs 1 --out " + out);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(r.err.empty()) << "no progress bar when stderr is not a terminal: " << r.err;
  const auto csv = resist::test::read_text(out + "/sweep.csv");
  // data-parallel has no ℓ: one row per bandwidth and workers; the others one per ℓ too.
  EXPECT_EQ(count_lines(csv), 1 + 2 * 2 + 2 * (2 * 2 * 2));
  EXPECT_NE(r.out.find("vs data-parallel"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("vs local-sgd"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("preact-resnet101-basic-w64-cifar100"), std::string::npos) << r.out;
  EXPECT_TRUE(fs::exists(out + "/runs/resist-m4-l20-1Gbps.csv"));
  // The studies' results.csv columns.
  EXPECT_EQ(csv.substr(0, csv.find('\n')),
            "model,protocol,workers,local_iters,nic_bandwidth_Bps,epochs,iters_per_epoch,rounds,simulated_rounds,"
            "wall_clock_s,time_per_epoch_s,compute_s,communication_s,exposed_communication_s,bytes_per_round,"
            "wire_bytes_total,wire_bytes_per_round,speedup_vs_data_parallel,speedup_vs_local_sgd");
}

// Cells of one CSV column, by header name.
static std::vector<std::string> column(const std::string& csv, const std::string& name) {
  std::istringstream in(csv);
  std::string line;
  std::getline(in, line);
  auto split = [](const std::string& l) {
    std::vector<std::string> cells;
    std::stringstream ss(l);
    std::string c;
    while (std::getline(ss, c, ',')) cells.push_back(c);
    if (!l.empty() && l.back() == ',') cells.push_back("");
    return cells;
  };
  const auto head = split(line);
  const auto at = std::size_t(std::find(head.begin(), head.end(), name) - head.begin());
  std::vector<std::string> out;
  while (std::getline(in, line)) out.push_back(at < split(line).size() ? split(line)[at] : "?");
  return out;
}

TEST(SimRunCli, SweepOfTwoProtocolsPrintsTheSpeedupBetweenThemAndNoZeroForNotApplicable) {
  resist::test::TempDir dir;
  const auto out = (dir.path / "sweep").string();
  const auto r = run(sim + " sweep" + model + " --protocols local-sgd,resist --workers 4 --local-iters 10 "
                           "--epochs 1 --out " + out);
  ASSERT_EQ(r.code, 0) << r.err;
  // One block for the one configuration, both protocols in it, ResIST's speedup over local SGD.
  EXPECT_NE(r.out.find("4 workers, ℓ = 10"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("vs local-sgd"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("vs data-parallel"), std::string::npos) << r.out;
  const auto resist_line = r.out.substr(r.out.find("  resist"));
  EXPECT_NE(resist_line.substr(0, resist_line.find('\n')).find("×"), std::string::npos) << r.out;
  const auto csv = resist::test::read_text(out + "/sweep.csv");
  const auto vs_dp = column(csv, "speedup_vs_data_parallel"), vs_local = column(csv, "speedup_vs_local_sgd");
  ASSERT_EQ(vs_dp.size(), 2u);
  EXPECT_EQ(vs_dp, (std::vector<std::string>{"", ""}));  // no data-parallel in the sweep: empty, not 0
  EXPECT_EQ(vs_local[0], "1");
  EXPECT_GT(std::stod(vs_local[1]), 1.0);
}

TEST(SimRunCli, CollectiveReportsNcclTestsFigures) {
  const auto r = run(sim + " collective --platform " + flat + " --op allreduce --bytes 8000000 --ranks 4 --format json");
  ASSERT_EQ(r.code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  const double t = j["time_s"].get<double>();
  EXPECT_NEAR(t, 6 * 100e-6 + 1.5 * 8e6 / 1.25e9, 1e-9);
  EXPECT_NEAR(j["algbw_Bps"].get<double>(), 8e6 / t, 1);
  EXPECT_NEAR(j["busbw_Bps"].get<double>(), 1.5 * 8e6 / t, 1);
}

TEST(SimRunCli, CollectiveSweepsSizesPerAlgorithmLikeNcclTests) {
  const auto r = run(sim + " collective --platform " + flat + " --op allreduce --ranks 6 --min-bytes 8 "
                           "--max-bytes 1MiB --factor 4 --format csv");
  ASSERT_EQ(r.code, 0) << r.err;
  // 8, 32, ..., 512 KiB: 9 sizes × 5 all-reduce algorithms (ring, tree, binomial, hd, hierarchical), plus the header.
  EXPECT_EQ(count_lines(r.out), 1 + 9 * 5) << r.out;
  EXPECT_NE(r.out.find("allreduce,hd,8192,6,"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("allreduce,tree,8192,6,"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("allreduce,binomial,8192,6,"), std::string::npos) << r.out;
  // Small messages: the ring pays 2(n-1) latencies, the double binary tree
  // 2R = 6 (one chunk, R = 2⌊log2 6⌋ - 1), the binomial tree 2⌈log2 n⌉ = 6.
  const auto ring = run(sim + " collective --platform " + flat + " --op allreduce --ranks 6 --bytes 8 --algorithm ring "
                              "--format json");
  const auto tree = run(sim + " collective --platform " + flat + " --op allreduce --ranks 6 --bytes 8 --algorithm tree "
                              "--format json");
  EXPECT_NEAR(nlohmann::json::parse(ring.out)["time_s"].get<double>(), 10 * 100e-6, 1e-7);
  EXPECT_NEAR(nlohmann::json::parse(tree.out)["time_s"].get<double>(), 6 * 100e-6, 1e-7);
  const auto binomial = run(sim + " collective --platform " + flat +
                            " --op allreduce --ranks 6 --bytes 8 --algorithm binomial --format json");
  EXPECT_NEAR(nlohmann::json::parse(binomial.out)["time_s"].get<double>(), 6 * 100e-6, 1e-7);
  const auto bad = run(sim + " collective --op broadcast --algorithm ring");
  EXPECT_EQ(bad.code, 2);
  EXPECT_NE(bad.err.find("--algorithm: unknown broadcast algorithm 'ring' (accepted: auto, chain, tree)"),
            std::string::npos) << bad.err;
}

TEST(SimRunCli, BadInputIsOneLineExitTwoAndNoOutput) {
  resist::test::TempDir dir;
  const auto bad = (dir.path / "bad.json").string();
  {
    auto j = nlohmann::json::parse(resist::test::read_text(flat));
    j["nic"]["bandwidth"] = 0;
    std::ofstream(bad) << j.dump();
  }
  // A platform missing a required section (no silent defaults for the network).
  const auto no_intra = (dir.path / "no-intra.json").string(), no_nic = (dir.path / "no-nic.json").string();
  {
    auto j = nlohmann::json::parse(resist::test::read_text(std::string(RESIST_SOURCE_DIR) +
                                                           "/experiments/platforms/p3-8xlarge.json"));
    j.erase("intra");
    std::ofstream(no_intra) << j.dump();
    auto f = nlohmann::json::parse(resist::test::read_text(flat));
    f.erase("nic");
    std::ofstream(no_nic) << f.dump();
  }
  const auto out = (dir.path / "out").string();
  const std::pair<std::string, std::string> cases[] = {
      {"run --platform " + bad, "nic.bandwidth: must be > 0 (got 0)"},
      {"run --platform " + no_intra, no_intra + ": intra: missing (required: each GPU's link"},
      {"sweep --workers 2 --local-iters 10 --platform " + no_nic, no_nic + ": nic: missing (required"},
      {"run --set nic.bandwidth=10Gbs", "unknown unit 'Gbs'"},
      {"run --set nic.speed=1Gbps", "unknown platform field 'nic.speed'"},
      {"collective --bytes 12furlongs", "--bytes"},
      {"run --platform " + flat + " --workers 2000", "1024 GPUs"},
      {"collective --ranks 2000", "GPUs"},
      {"run --epochs 0", "--epochs: must be >= 1 (got 0)"},
      {"run --format xml", "--format"},
      {"sweep --workers 2 --local-iters 10 --bandwidth 10Gbs", "unknown unit"},
      {"run --platform /nonexistent.json", "/nonexistent.json"},
  };
  for (const auto& [args, needle] : cases) {
    const bool writes = args.rfind("collective", 0) != 0;
    const auto r = run(sim + " " + args + (writes ? " --out " + out : ""));
    EXPECT_EQ(r.code, 2) << args;
    EXPECT_EQ(count_lines(r.err), 1) << args << ": " << r.err;
    EXPECT_NE(r.err.find(needle), std::string::npos) << args << ": " << r.err;
    EXPECT_FALSE(fs::exists(out)) << args;
  }
}
