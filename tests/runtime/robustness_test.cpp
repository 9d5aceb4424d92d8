// Hostile input to resist-launch, resist-train and resist-bench (issue 16):
// one line and exit 2 for bad flags, checked before anything starts; no
// worker outlives a killed or hung-up launcher.
#include <gtest/gtest.h>

#include <signal.h>

#include <algorithm>
#include <chrono>
#include <filesystem>

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
