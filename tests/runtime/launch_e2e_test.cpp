// Launching resist-train as users do: under torchrun's environment contract
// (the variables torchrun sets, and Debian's torchrun itself where
// python3-torch is installed), and with resist-launch over several "nodes"
// on this machine.
#include <gtest/gtest.h>

#include <unistd.h>

#include <nlohmann/json.hpp>

#include "tests/support/json.hpp"
#include "tests/support/port.hpp"

using namespace resist::test;  // kLaunch, kTrain, run, read_json, TempDir, free_port
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

const std::string tiny_run =
    " --model preact-resnet18 --base-width 4 --dataset fashion-mnist --threads 1 --quiet --timeout 60"
    " --protocol local-sgd --train-subset 256 --test-subset 64 --local-iters 2 --rounds 3 --batch-size 8";

}  // namespace

// Exactly the variables torchrun gives every worker (and nothing else of
// resist-launch's): two ranks started by a plain shell.
TEST(Torchrun, ResistTrainRunsUnderExactlyTorchrunsEnvironment) {
  TempDir dir;
  const auto d = dir.path.string();
  const std::string port = std::to_string(free_port());
  auto rank = [&](int r) {
    return "(env -i PATH=/usr/bin:/bin RANK=" + std::to_string(r) + " LOCAL_RANK=" + std::to_string(r) +
           " WORLD_SIZE=2 LOCAL_WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=" + port +
           " TORCHELASTIC_RUN_ID=test-run " + kTrain + tiny_run + (r == 0 ? " --out " + d + "/out" : "") + " 2>" + d +
           "/e" + std::to_string(r) + "; echo $? >" + d + "/c" + std::to_string(r) + ")";
  };
  run(rank(0) + " & " + rank(1) + " & wait");
  EXPECT_EQ(resist::test::read_text(dir.path / "c0"), "0\n") << resist::test::read_text(dir.path / "e0");
  EXPECT_EQ(resist::test::read_text(dir.path / "c1"), "0\n") << resist::test::read_text(dir.path / "e1");
  const auto report = read_json(dir.path / "out" / "report.json");
  EXPECT_EQ(report["workers"], 2);
  EXPECT_GT(report["bytes_sent_total"].get<std::uint64_t>(), 0u);
}

// Debian's torchrun (PyTorch 1.13): its elastic agent serves the store at
// MASTER_PORT itself (TORCHELASTIC_USE_AGENT_STORE=True), so every rank must
// connect as a client. On Python 3.11 its default --redirects/--tee (0)
// crash; 1 works (docs: README, "the same with torchrun").
TEST(Torchrun, DebiansTorchrunStartsTwoWorkers) {
  if (run("/usr/bin/python3 -c 'import torch.distributed.run' >/dev/null 2>&1").code != 0)
    GTEST_SKIP() << "/usr/bin/python3 has no torch.distributed.run (apt-get install python3-torch)";
  TempDir dir;
  const auto r = run("cd " + dir.path.string() + " && /usr/bin/python3 -m torch.distributed.run --nproc_per_node=2 "
                     "--master_port=" + std::to_string(free_port()) + " --redirects 1 --tee 1 --no_python " + kTrain +
                     tiny_run + " --out " + dir.path.string() + "/out");
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_EQ(read_json(dir.path / "out" / "report.json")["workers"], 2);
}

TEST(ResistLaunch, TwoNodesOfTwoRanksOnThisMachine) {
  TempDir dir;
  const auto d = dir.path.string();
  const std::string port = std::to_string(free_port());
  auto node = [&](int k, const std::string& program) {
    return "(" + kLaunch + " --nnodes 2 --node-rank " + std::to_string(k) + " --master-addr 127.0.0.1 --master-port " +
           port + " -n 2 -- " + program + " >" + d + "/o" + std::to_string(k) + " 2>" + d + "/e" + std::to_string(k) +
           "; echo $? >" + d + "/c" + std::to_string(k) + ")";
  };
  const std::string env = "sh -c 'echo $RANK/$WORLD_SIZE/$LOCAL_RANK/$LOCAL_WORLD_SIZE/$GROUP_RANK'";
  run(node(0, env) + " & " + node(1, env) + " & wait");
  const auto o1 = resist::test::read_text(dir.path / "o1");
  EXPECT_NE(o1.find("[rank 2] 2/4/0/2/1"), std::string::npos) << o1;
  EXPECT_NE(o1.find("[rank 3] 3/4/1/2/1"), std::string::npos) << o1;
  EXPECT_NE(resist::test::read_text(dir.path / "o0").find("[rank 1] 1/4/1/2/0"), std::string::npos);
  // A real run across both: rank 0 (node 0) writes the report of 4 workers.
  run(node(0, kTrain + tiny_run + " --out " + d + "/out") + " & " + node(1, kTrain + tiny_run) + " & wait");
  EXPECT_EQ(resist::test::read_text(dir.path / "c0"), "0\n") << resist::test::read_text(dir.path / "e0");
  EXPECT_EQ(resist::test::read_text(dir.path / "c1"), "0\n") << resist::test::read_text(dir.path / "e1");
  EXPECT_EQ(read_json(dir.path / "out" / "report.json")["workers"], 4);
}

TEST(ResistLaunch, TorchrunSpellingsAndBadNodeFlags) {
  // torchrun's spellings: --nproc_per_node=2, --node_rank, --master_addr=...
  const auto ok = run(kLaunch + " --nproc_per_node=2 --nnodes=1 --node_rank=0 --master_addr=127.0.0.1 -- "
                               "sh -c 'echo $RANK/$WORLD_SIZE/$MASTER_ADDR'");
  ASSERT_EQ(ok.code, 0) << ok.err;
  EXPECT_NE(ok.out.find("[rank 1] 1/2/127.0.0.1"), std::string::npos) << ok.out;
  for (const std::string flags : {" -n 2 --nnodes 2 --node-rank 2 --master-port 29999",
                                   " -n 2 --nnodes 2 --node-rank 1", " -n 2 --nnodes 0", " -n 2 --nnodes x"}) {
    const auto r = run(kLaunch + flags + " -- true");
    EXPECT_EQ(r.code, 2) << flags << ": " << r.err;
    EXPECT_NE(r.err.find("resist-launch: "), std::string::npos) << r.err;
  }
}
