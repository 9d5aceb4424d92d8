// Hostile input to resist-sim and resist-study (issue 16): every bad value
// ends with one line and exit 2, nothing half-written, no process left behind.
#include <gtest/gtest.h>

#include <signal.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "schedule/accounting.hpp"
#include "sim/platform.hpp"
#include "tests/support/process.hpp"
#include "tests/support/refused.hpp"
#include "tests/support/procs.hpp"

namespace fs = std::filesystem;
using resist::test::expect_refused;
using resist::test::run;

namespace {

const std::string sim = resist::test::bin("sim/resist-sim");
const std::string study = resist::test::bin("experiments/resist-study");
const std::string flat = std::string(RESIST_SOURCE_DIR) + "/experiments/platforms/flat-10g.json";
const std::string model = " --model preact-resnet18 --base-width 8 --dataset cifar10 --min-depth 1 --batch-size 32";
const std::string small = model + " --local-iters 2 --rounds 2";


void write(const fs::path& p, const std::string& text) { std::ofstream(p) << text; }

}  // namespace

// Class: file contents nlohmann cannot represent, and paths that are folders.
TEST(Robustness, OverflowingNumbersAndDirectoriesAreOneLineErrors) {
  resist::test::TempDir dir;
  auto platform = nlohmann::json::parse(resist::test::read_text(flat)).dump(1);
  platform.replace(platform.find("\"nodes\": ") + 9, 1, "1e400");
  write(dir.path / "p.json", platform);
  write(dir.path / "profile.json", R"({"format": "resist-profile", "version": 1, "batch_size": 1e400})");
  write(dir.path / "study.json", R"({"format": "resist-study", "version": 1e400, "kind": "table1"})");
  const auto out = dir.path / "out";
  const std::string d = dir.path.string();
  expect_refused(sim + " run --platform " + d + "/p.json --out " + out.string(), "number overflow", out);
  expect_refused(sim + " run --profile " + d + "/profile.json --out " + out.string(), "number overflow", out);
  expect_refused(study + " run " + d + "/study.json --out " + out.string(), "number overflow", out);
  expect_refused(sim + " run --platform " + d + " --out " + out.string(), "is a directory", out);
  expect_refused(sim + " run --profile " + d + " --out " + out.string(), "is a directory", out);
  expect_refused(study + " run " + d + " --out " + out.string(), "is a directory", out);
}

// Class: values SimGrid would abort on (non-finite durations), refused before
// anything is simulated or written.
TEST(Robustness, OutOfScalePlatformsAreRefusedBeforeSimulating) {
  resist::test::TempDir dir;
  const auto out = dir.path / "out";
  const std::string run_ = sim + " run" + small + " --machines 8 --out " + out.string();
  expect_refused(run_ + " --set gpu.flops=1e-300", "gpu.flops", out);
  expect_refused(run_ + " --set nic.bandwidth=1e-300", "bandwidth", out);
  expect_refused(run_ + " --backward-factor inf", "--backward-factor: must be in 0..1000 (got inf)", out);
  expect_refused(sim + " collective --ranks 8 --set nic.bandwidth=1e-300", "bandwidth");
  // A sweep fails before its first run: no half-written D/runs.
  const std::string sweep = sim + " sweep" + model + " --rounds 2 --protocols local-sgd,resist --machines 2,8 --local-iters 2";
  expect_refused(sweep + " --set gpu.flops=1e-300 --out " + out.string(), "gpu.flops", out);
  // Into an existing folder: what was there stays, nothing is added.
  fs::create_directories(out);
  write(out / "keep.txt", "mine");
  const auto r = run(sweep + " --set gpu.flops=1e-300 --out " + out.string());
  EXPECT_EQ(r.code, 2);
  std::vector<std::string> left;
  for (const auto& e : fs::directory_iterator(out)) left.push_back(e.path().filename().string());
  EXPECT_EQ(left, std::vector<std::string>{"keep.txt"});
  // The same sweep with a sane platform completes, staging folder gone.
  const auto ok = run(sweep + " --out " + out.string());
  ASSERT_EQ(ok.code, 0) << ok.err;
  EXPECT_TRUE(fs::exists(out / "sweep.csv"));
  EXPECT_TRUE(fs::exists(out / "runs" / "resist-m8-l2.csv"));
  for (const auto& e : fs::directory_iterator(out))
    EXPECT_EQ(e.path().filename().string().rfind(".staging", 0), std::string::npos) << e.path();
}

// Regression: a fat-tree leaf of one multi-GPU node crashed SimGrid's routing.
TEST(Robustness, FatTreeWithOneNodePerLeafTimesTheRouteItBuilds) {
  resist::test::TempDir dir;
  auto j = nlohmann::json::parse(resist::test::read_text(flat));
  j["nodes"] = 2;
  j["gpus_per_node"] = 2;
  j["intra"] = {{"bandwidth", "25GBps"}, {"latency", "5us"}};
  j["nic"] = {{"bandwidth", "10Gbps"}, {"latency", "25us"}};
  j["topology"] = {{"kind", "fat-tree"}, {"nodes_per_leaf", 1}, {"uplink", {{"bandwidth", "8Gbps"}, {"latency", "1us"}}}};
  const auto path = dir.path / "p.json";
  write(path, j.dump());
  for (const char* ranks : {"3", "4"}) {  // rank 3 sits on the second node's second GPU
    const auto r = run(sim + " collective --ranks " + std::string(ranks) + " --platform " + path.string());
    EXPECT_EQ(r.code, 0) << r.err;
  }
  const auto four = run(sim + " run" + small + " --protocol resist --machines 4 --platform " + path.string());
  EXPECT_EQ(four.code, 0) << four.err;
  // One GPU per node: a send crosses NIC, uplink, uplink, NIC; the uplink is the bottleneck.
  const auto r = run(sim + " collective --op send --ranks 2 --bytes 64MiB --format json --platform " + path.string() +
                     " --set gpus_per_node=1");
  ASSERT_EQ(r.code, 0) << r.err;
  const auto route = resist::sim::load_platform(path.string(), {"gpus_per_node=1"}).route(0, 1);
  EXPECT_DOUBLE_EQ(route.bandwidth_Bps, 1e9);
  const double expected = 64.0 * (1 << 20) / route.bandwidth_Bps + route.latency_s;
  EXPECT_NEAR(nlohmann::json::parse(r.out)["time_s"].get<double>(), expected, 0.1 * expected);
}

// Class: orphans. The simulation runs in a forked child; killing resist-sim
// (even with SIGKILL) must take the child along.
TEST(Robustness, KillingResistSimKillsItsSimulation) {
  const pid_t pid = resist::test::spawn({sim, "collective", "--ranks", "512", "--bytes", "1GiB", "--platform", flat,
                                            "--engine", "simgrid"});  // the SimGrid child, not the in-process replay
  std::vector<pid_t> kids;
  ASSERT_TRUE(resist::test::wait_for([&] { return !(kids = resist::test::children(pid)).empty(); },
                                     std::chrono::seconds(60)));
  ::kill(pid, SIGKILL);
  ::waitpid(pid, nullptr, 0);
  EXPECT_TRUE(resist::test::wait_for([&] { return !resist::test::running(kids[0]); }, std::chrono::seconds(10)))
      << "simulation child " << kids[0] << " outlived resist-sim";
}

// Class: lenient flags.
TEST(Robustness, StrictFlags) {
  resist::test::TempDir dir;
  const auto out = dir.path / "out";
  const std::string o = " --out " + out.string();
  expect_refused(sim + " comm foo", "unexpected argument 'foo'");
  expect_refused(sim + " run" + small + " stray" + o, "unexpected argument 'stray'", out);
  expect_refused(sim + " comm --epochs 0", "--epochs: must be >= 1 (got 0)");
  expect_refused(sim + " comm --rounds -1", "--rounds: must be >= 0 (got -1)");
  expect_refused(sim + " comm --seed -1", "--seed: '-1'");
  expect_refused(sim + " comm --sample-rounds 0", "--sample-rounds");
  expect_refused(sim + " sweep --bandwidth ," + o, "--bandwidth: needs at least one value", out);
  expect_refused(sim + " sweep --bandwidth 1Gbps,-1Gbps" + o, "--bandwidth: must be > 0 (got '-1Gbps')", out);
  expect_refused(sim + " run --bandwidth -1Gbps" + o, "--bandwidth: must be > 0 (got '-1Gbps')", out);
  expect_refused(sim + " run --chunk-bytes 4 --model preact-resnet101 --machines 8" + o, "--chunk-bytes", out);
  expect_refused(study + " run --all --skip scal" + o, "--skip: unknown study kind 'scal'", out);
  // The default --min-depth (4) is capped for small models; an explicit one is checked.
  const auto r18 = run(sim + " run --model preact-resnet18 --machines 2 --rounds 2");
  EXPECT_EQ(r18.code, 0) << r18.err;
  expect_refused(sim + " run --model preact-resnet18 --machines 2 --rounds 2 --min-depth 4", "--min-depth");
  for (const char* cmd : {"comm", "schedule", "run", "sweep", "collective"}) {
    const auto h = run(sim + " " + cmd + " -h");
    EXPECT_EQ(h.code, 0) << cmd << ": " << h.err;
    EXPECT_NE(h.out.find("usage: resist-sim " + std::string(cmd)), std::string::npos) << cmd;
  }
}

// 100000 machines: the ring all-reduce is accounted in closed form (it was
// O(n^2) per op); the figures are still the ring's: 2(n-1)/n M per rank.
TEST(Robustness, CommAtOneHundredThousandMachines) {
  const auto r = run(sim + " comm --model preact-resnet18 --base-width 8 --protocols local-sgd,resist --machines 100000 "
                           "--format json");
  ASSERT_EQ(r.code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  const double M = 4.0 * j["params_total"].get<double>(), n = 100000;
  EXPECT_NEAR(j["rows"][0]["wire_bytes_per_round"].get<double>(), 2 * (n - 1) * M, 4 * n);
}

TEST(Robustness, ClosedFormRingMatchesTheRingSteps) {
  for (int n = 1; n <= 40; ++n)
    for (std::uint64_t elements : {0ull, 1ull, 7ull, 39ull, 40ull, 41ull, 1000003ull}) {
      resist::CommOp op;
      op.kind = resist::OpKind::allreduce;
      op.bytes = 4 * elements;
      for (int i = 0; i < n; ++i) op.ranks.push_back(i);
      const auto sent = resist::wire_sent(op, n);
      for (int i = 0; i < n; ++i) {
        std::uint64_t steps = 0;  // the ring's 2(n-1) steps, one by one
        for (int s = 0; s + 1 < n; ++s)
          steps += 4 * (resist::ring_chunk(elements, n, ((i - s) % n + n) % n).count +
                        resist::ring_chunk(elements, n, ((i + 1 - s) % n + n) % n).count);
        EXPECT_EQ(sent[i], steps) << "n=" << n << " elements=" << elements << " rank " << i;
      }
    }
}
