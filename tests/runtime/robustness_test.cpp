// Hostile input to resist-launch, resist-train and resist-bench (issue 16):
// one line and exit 2 for bad flags, checked before anything starts; no
// worker outlives a killed or hung-up launcher.
#include <gtest/gtest.h>

#include <signal.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "tests/support/port.hpp"
#include "tests/support/process.hpp"
#include "tests/support/refused.hpp"
#include "tests/support/procs.hpp"

namespace fs = std::filesystem;
using resist::test::expect_refused;
using resist::test::run;

namespace {

const std::string launch = resist::test::bin("runtime/resist-launch");
const std::string train = resist::test::bin("runtime/resist-train");
const std::string bench = resist::test::bin("runtime/bench/resist-bench");
// A tiny MLP run on Fashion-MNIST (alone: no WORLD_SIZE, rank 0 of 1).
const std::string mlp_base = " --model mlp --dataset fashion-mnist --protocol local-sgd --threads 1 --quiet"
                             " --timeout 10 --test-subset 16 --batch-size 8 --local-iters 1";
const std::string mlp = mlp_base + " --train-subset 64 --hidden 16 --rounds 3";

// The environment of rank `rank` of a `world`-rank run whose other ranks never
// come: what a rank refuses alone, it refuses before the rendezvous.
std::string lone_rank(int rank, int world) {
  return "MASTER_ADDR=127.0.0.1 MASTER_PORT=" + std::to_string(resist::test::free_port()) +
         " WORLD_SIZE=" + std::to_string(world) + " RANK=" + std::to_string(rank) + " LOCAL_RANK=" +
         std::to_string(rank) + " LOCAL_WORLD_SIZE=" + std::to_string(world) + " ";
}

long lines_of(const fs::path& p) { return resist::test::count_newlines(resist::test::read_text(p)); }

std::vector<std::string> words(const std::string& text) {
  std::istringstream in(text);
  std::vector<std::string> out;
  for (std::string w; in >> w;) out.push_back(w);
  return out;
}


// Starts `launch -n 2 -- sleep 600`, waits for both workers, sends `sig` to
// the launcher and says whether both workers were gone within 10 s.
bool workers_die_with_launcher(int sig) {
  const pid_t pid = resist::test::spawn({launch, "-n", "2", "--", "/bin/sleep", "600"});
  std::vector<pid_t> workers;
  if (!resist::test::wait_for([&] { return (workers = resist::test::children(pid)).size() == 2; },
                              std::chrono::seconds(30)))
    return false;
  ::kill(pid, sig);
  ::waitpid(pid, nullptr, 0);
  return resist::test::wait_for(
      [&] { return std::none_of(workers.begin(), workers.end(), resist::test::running); }, std::chrono::seconds(10));
}

}  // namespace

TEST(RuntimeRobustness, LaunchBadFlagsAreOneLine) {
  expect_refused(launch + " -n 2 --master-port 70000 -- /bin/true", "--master-port: must be a port in 1..65535");
  expect_refused(launch + " -n 2x -- /bin/true", "-n: must be a whole number");
  expect_refused(launch + " -n 2 --grace inf -- /bin/true", "--grace");
  expect_refused(launch + " -n 2", "no program given");
  expect_refused(launch + " --frobnicate", "unknown argument '--frobnicate'");
}

TEST(RuntimeRobustness, WorkersDieWithAKilledLauncher) { EXPECT_TRUE(workers_die_with_launcher(SIGKILL)); }

TEST(RuntimeRobustness, HangupIsPassedToTheWorkers) { EXPECT_TRUE(workers_die_with_launcher(SIGHUP)); }

TEST(RuntimeRobustness, TrainFlagsAreCheckedBeforeAnythingStarts) {
  resist::test::TempDir dir;
  const auto out = dir.path / "out";
  const std::string t = train + " --model preact-resnet18 --base-width 8 --dataset fashion-mnist --out " + out.string();
  expect_refused(t + " --threads -1", "--threads", out);
  expect_refused(t + " --momentum 5", "--momentum", out);
  expect_refused(t + " --seed -1", "--seed: '-1'", out);
  expect_refused(t + " --train-subset -1", "--train-subset", out);
  expect_refused(t + " --lr -1", "--lr: must be > 0", out);
  expect_refused(t + " --timeout -1", "--timeout", out);
  expect_refused(t + " --weight-decay nan", "--weight-decay", out);
  expect_refused(t + " junk", "unexpected argument 'junk'", out);
}

TEST(RuntimeRobustness, BenchHelpAndMemoryBounds) {
  const auto h = run(bench + " --help");
  EXPECT_EQ(h.code, 0) << h.err;
  EXPECT_NE(h.out.find("usage: resist-bench"), std::string::npos);
  // A million images of preact-resnet101 need terabytes: refused, not handed to the OOM killer.
  expect_refused(bench + " --batch 1000000", "--batch: 1000000 images need about");
  expect_refused(bench + " --batch 2000000", "--batch: must be in 1..1048576");
  expect_refused(bench + " --matmul-size 65536", "--matmul-size: must be in 0..32768");
  expect_refused(bench + " --seed -1", "--seed");
}

// Item 2 of issue 16: a checkpoint records the configuration; resuming it
// with another one, with no rounds left, or from a damaged file is refused
// by the rank alone (no peer, no rendezvous) in one line, writing nothing.
TEST(RuntimeRobustness, ResumeOfAnotherConfigurationIsRefusedBeforeTheRendezvous) {
  resist::test::TempDir dir;
  const auto ckpt = dir.path / "ckpt", out = dir.path / "out";
  const std::string base = " --model preact-resnet34 --dataset fashion-mnist --threads 1 --quiet --timeout 10"
                           " --train-subset 64 --test-subset 16 --batch-size 8 --local-iters 1 --min-depth 1"
                           " --checkpoint-every 1";
  const std::string same = " --base-width 4 --protocol resist --seed 1 --rounds 3";
  const auto made = run(launch + " -n 2 -- " + train + base + same + " --out " + ckpt.string());
  ASSERT_EQ(made.code, 0) << made.err;
  ASSERT_TRUE(fs::exists(ckpt / "checkpoints" / "round-2" / "rank-0.pt"));
  const std::string resume = " --resume " + ckpt.string() + " --out " + out.string();
  auto rank0 = [&](const std::string& flags, int world = 2) { return lone_rank(0, world) + train + base + flags + resume; };
  expect_refused(rank0(" --base-width 8 --protocol resist --seed 1 --rounds 3"),
                 "another configuration: --base-width (model.base_width) is 4 there, 8 here", out);
  expect_refused(rank0(" --base-width 4 --protocol local-sgd --seed 1 --rounds 3"),
                 "--protocol (protocol) is \"resist\" there, \"local-sgd\" here", out);
  expect_refused(rank0(" --base-width 4 --protocol resist --seed 7 --rounds 3"), "--seed (seed) is 1 there, 7 here", out);
  expect_refused(rank0(" --base-width 4 --protocol resist --seed 1 --rounds 5"), "--rounds (rounds) is 3 there, 5 here", out);
  expect_refused(rank0(same, 3), "WORLD_SIZE (workers) is 2 there, 3 here", out);
  expect_refused(rank0(" --base-width 4 --protocol resist --seed 1 --rounds 2"),
                 "--rounds 2: this run has 2 round(s), but the checkpoint in " + ckpt.string(), out);
  // A truncated file: named, whichever rank reads it.
  const auto pt = ckpt / "checkpoints" / "round-2" / "rank-1.pt";
  fs::resize_file(pt, fs::file_size(pt) / 2);
  expect_refused(lone_rank(1, 2) + train + base + same + resume, pt.string() + " is truncated or corrupt", out);
}

// Item 3: errors a rank can find alone are one line and exit 2 before the
// rendezvous, with nothing in --out.
TEST(RuntimeRobustness, LocalInputErrorsAreRefusedBeforeTheRendezvous) {
  resist::test::TempDir dir;
  const auto out = dir.path / "out", file = dir.path / "file";
  std::ofstream(file) << "x";
  expect_refused(train + mlp + " --classes 5 --out " + out.string(),
                 "--classes: the model mlp-784-16-5 has 5 outputs, but the fashion-mnist", out);
  expect_refused(train + mlp + " --input 100 --out " + out.string(), "--input: the model mlp-100-16-10 takes 100", out);
  expect_refused(lone_rank(0, 2) + train + mlp_base + " --train-subset 1 --hidden 16 --rounds 3 --out " + out.string(),
                 "--train-subset: 1 training image(s) for 2 workers", out);
  expect_refused(train + mlp + " --out " + (file / "sub").string(), "--out: cannot create '" + (file / "sub").string(),
                 file / "sub");
  expect_refused(train + mlp + " --out " + file.string(), "--out: '" + file.string() + "' exists and is not a directory");
}

// Item 3: "a peer may have died" only where communication failed; a local
// fault says what it was.
TEST(RuntimeRobustness, OnlyCommunicationFailuresBlameAPeer) {
  const auto r = run(train + mlp + " --fail-at-round 1 --fail-mode error");
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_EQ(resist::test::count_newlines(r.err), 1) << r.err;
  EXPECT_NE(r.err.find("rank 0: runtime failure: injected local error at round 1"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("peer"), std::string::npos) << r.err;
}

// Item 5: a second run with the first one's --out, or on its --master-port,
// is refused; the first keeps training and its metrics stay whole.
TEST(RuntimeRobustness, ASecondRunOnTheSameOutOrPortIsRefusedAndTheFirstGoesOn) {
  resist::test::TempDir dir;
  const auto first = dir.path / "first", second = dir.path / "second";
  const std::string port = std::to_string(resist::test::free_port());
  std::vector<std::string> argv = {launch, "-n", "2", "--master-port", port, "--", train};
  for (const auto& w : words(mlp_base + " --train-subset 64 --hidden 256 --rounds 30000 --out " + first.string()))
    argv.push_back(w);
  const pid_t a = resist::test::spawn(argv);
  const auto metrics = first / "metrics.jsonl";
  ASSERT_TRUE(resist::test::wait_for([&] { return lines_of(metrics) >= 1; }, std::chrono::seconds(120)));
  expect_refused(train + mlp + " --out " + first.string(),
                 "--out: '" + first.string() + "' is in use by another run");
  const auto b = run(launch + " -n 2 --master-port " + port + " -- " + train + mlp + " --out " + second.string());
  EXPECT_EQ(b.code, 2) << b.err;
  EXPECT_NE(b.err.find("another run"), std::string::npos) << b.err;
  EXPECT_FALSE(fs::exists(second));
  // The first run is alive and still training.
  const long seen = lines_of(metrics);
  EXPECT_TRUE(resist::test::wait_for([&] { return lines_of(metrics) >= seen + 2; }, std::chrono::seconds(60)));
  EXPECT_TRUE(resist::test::running(a));
  ::kill(a, SIGTERM);
  ::waitpid(a, nullptr, 0);
  std::istringstream in(resist::test::read_text(metrics));
  long round = 0;
  for (std::string line; std::getline(in, line); ++round) {
    EXPECT_TRUE(line.front() == '{' && line.back() == '}') << line;
    EXPECT_NE(line.find("\"round\":" + std::to_string(round) + ","), std::string::npos) << line;
  }
}
