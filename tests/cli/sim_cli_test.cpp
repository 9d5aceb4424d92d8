// End-to-end: resist-sim as a user runs it.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "schedule/schedule.hpp"
#include "tests/support/process.hpp"

using resist::test::run;
namespace fs = std::filesystem;

namespace {
const std::string sim = resist::test::bin("sim/resist-sim");
}

TEST(SimCli, CommTablePrintsGigabytesWithThreeDecimals) {
  const auto r = run(sim + " comm --model preact-resnet101 --block basic --dataset cifar100 --workers 2,4,8 "
                           "--protocols local-sgd,resist");
  ASSERT_EQ(r.code, 0) << r.err;
  // Local SGD, 2 workers: 2 * 2 * 4 * 41,396,900 bytes.
  EXPECT_NE(r.out.find("0.662"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("resist"), std::string::npos);
}

TEST(SimCli, CommJsonRows) {
  const auto r = run(sim + " comm --model preact-resnet101 --block basic --dataset cifar100 --workers 2,4,8 "
                           "--protocols local-sgd,resist --format json");
  ASSERT_EQ(r.code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  ASSERT_EQ(j["rows"].size(), 6u);
  for (const auto& row : j["rows"]) {
    for (const char* key : {"protocol", "workers", "bytes_per_round", "wire_bytes_per_round", "params_per_worker"})
      EXPECT_TRUE(row.contains(key)) << key;
    if (row["protocol"] == "local-sgd") {
      EXPECT_EQ(row["params_per_worker"].get<std::uint64_t>(), 41396900u);
      EXPECT_EQ(row["bytes_per_round"].get<std::uint64_t>(), 8ull * row["workers"].get<int>() * 41396900u);
    } else {
      EXPECT_LT(row["params_per_worker"].get<std::uint64_t>(), 41396900u);
    }
  }
}

TEST(SimCli, ScheduleFileRoundTrips) {
  resist::test::TempDir dir;
  const auto path = (dir.path / "s.json").string();
  const auto r = run(sim + " schedule --model preact-resnet101 --block basic --dataset cifar100 --protocol resist "
                           "--workers 4 --rounds 3 --seed 1 --out " + path);
  ASSERT_EQ(r.code, 0) << r.err;
  const auto s = resist::read_schedule_file(path);
  EXPECT_EQ(s.rounds.size(), 3u);
  EXPECT_EQ(s.config.workers, 4);
}

TEST(SimCli, BadInputIsOneLineAndExitTwo) {
  resist::test::TempDir dir;
  const auto out = (dir.path / "s.json").string();
  const std::pair<std::string, std::string> cases[] = {
      {"comm --model resnet7", "resnet7"},
      {"comm --block wide", "wide"},
      {"comm --dataset svhn", "svhn"},
      {"comm --protocols resist,gossip", "gossip"},
      {"comm --workers 2,0", "'0'"},
      {"comm --min-depth 23", "--min-depth"},
      {"comm --format xml", "xml"},
      {"schedule --workers 0 --out " + out, "--workers"},
      {"schedule --machines 0 --out " + out, "--workers"},  // its older name
      {"schedule --protocol resist --min-depth 40 --rounds 2 --out " + out, "--min-depth"},
      {"comm --no-such-flag", "no-such-flag"},
      {"frobnicate", "frobnicate"},
  };
  for (const auto& [args, needle] : cases) {
    const auto r = run(sim + " " + args);
    EXPECT_EQ(r.code, 2) << args;
    EXPECT_NE(r.err.find(needle), std::string::npos) << args << ": " << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << args << ": " << r.err;
    EXPECT_FALSE(fs::exists(out)) << args;
  }
}

// IST on the IST paper's 2-layer speech model: a worker trains 1/S of the
// hidden neurons (rows of fc1, columns of out) plus the shared output bias.
TEST(SimCli, CommReportsIstParamsPerWorker) {
  const auto r = run(sim + " comm --model mlp --input 4096 --hidden 4096 --classes 35 --protocols ist,local-sgd "
                           "--workers 2,4,8 --format json");
  ASSERT_EQ(r.code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  ASSERT_EQ(j["rows"].size(), 6u);
  const std::uint64_t total = 4096ull * 4096 + 3 * 4096 + 35 * 4096 + 35;
  EXPECT_EQ(j["params_total"].get<std::uint64_t>(), total);
  int ist_rows = 0;
  for (const auto& row : j["rows"]) {
    const std::uint64_t S = row["workers"].get<std::uint64_t>();
    const std::uint64_t per = row["params_per_worker"].get<std::uint64_t>();
    if (row["protocol"] == "ist") {
      ++ist_rows;
      EXPECT_EQ(per, 4096 / S * (4096 + 3 + 35) + 35) << S;
      EXPECT_EQ(row["bytes_per_round"].get<std::uint64_t>(), 8 * S * per);
      EXPECT_LT(row["wire_bytes_per_round"].get<double>(), 4.0 * total);
    } else {
      EXPECT_EQ(per, total);
    }
  }
  EXPECT_EQ(ist_rows, 3);
}

TEST(SimCli, IstScheduleFileRoundTrips) {
  resist::test::TempDir dir;
  const auto path = (dir.path / "s.json").string();
  for (const char* sync : {"decentralised", "parameter-server"}) {
    const auto r = run(sim + " schedule --model mlp --hidden 64,32 --dataset fashion-mnist --protocol ist "
                             "--workers 4 --rounds 3 --seed 2 --ist-sync " + sync + " --out " + path);
    ASSERT_EQ(r.code, 0) << r.err;
    const auto s = resist::read_schedule_file(path);
    EXPECT_EQ(s.rounds.size(), 3u);
    EXPECT_EQ(resist::to_string(s.config.ist_sync), std::string(sync));
    ASSERT_FALSE(s.rounds[0].sync.empty());
    EXPECT_TRUE(s.rounds[0].sync.back().piece.has_value());
  }
}

TEST(SimCli, IstBadInputIsOneLineAndExitTwo) {
  resist::test::TempDir dir;
  const auto out = (dir.path / "s.json").string();
  const std::pair<std::string, std::string> cases[] = {
      {"schedule --model preact-resnet18 --dataset cifar10 --protocol ist --rounds 2 --out " + out,
       "not a fully-connected network"},
      {"comm --model preact-resnet101 --protocols ist", "not a fully-connected network"},
      {"schedule --model mlp --hidden 8,4 --protocol ist --workers 5 --rounds 2 --out " + out, "--workers"},
      {"schedule --model mlp --protocol ist --ist-sync ring --rounds 2 --out " + out, "ring"},
  };
  for (const auto& [args, needle] : cases) {
    const auto r = run(sim + " " + args);
    EXPECT_EQ(r.code, 2) << args;
    EXPECT_NE(r.err.find(needle), std::string::npos) << args << ": " << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << args << ": " << r.err;
    EXPECT_FALSE(fs::exists(out)) << args;
  }
}
