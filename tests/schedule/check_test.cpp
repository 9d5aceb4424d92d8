// A schedule read from a file is checked for meaning: copies stay
// consistent, every op's ranks hold what it carries (schedule/check.hpp).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "schedule/check.hpp"
#include "schedule/schedule.hpp"
#include "tests/support/models.hpp"
#include "tests/support/schedule.hpp"

using namespace resist;
using resist::test::schedule_read_error;

namespace {

ScheduleConfig config(Protocol p, int workers, int rounds) {
  ScheduleConfig c;
  c.protocol = p;
  c.model.model = "preact-resnet34";
  c.model.base_width = 8;
  c.model.dataset = "cifar10";
  c.workers = workers;
  c.min_depth = 2;
  c.rounds = rounds;
  c.local_iters = 3;
  return c;
}

nlohmann::json schedule_json(Protocol p, int workers, int rounds) {
  const auto c = config(p, workers, rounds);
  return to_json(make_schedule(build_model(c.model), c));
}

// Index of the first op of round r with this payload.
std::size_t find_op(const nlohmann::json& j, int r, const std::string& payload) {
  const auto& sync = j["rounds"][r]["sync"];
  for (std::size_t k = 0; k < sync.size(); ++k)
    if (sync[k]["payload"] == payload) return k;
  ADD_FAILURE() << "no " << payload << " op in round " << r;
  return 0;
}

}  // namespace

TEST(ScheduleCheck, EveryGeneratedScheduleIsConsistent) {
  for (Protocol p : {Protocol::data_parallel, Protocol::local_sgd, Protocol::resist})
    for (int S : {1, 2, 3, 5, 8})
      for (int eval_every : {0, 2}) {
        auto c = config(p, S, 5);
        c.eval_every = eval_every;
        const auto spec = build_model(c.model);
        EXPECT_NO_THROW(check_schedule(spec, make_schedule(spec, c))) << to_string(p) << " S=" << S;
      }
  auto c = config(Protocol::resist, 4, 0);
  c.epochs = 3;
  c.warmup_epochs = 1;
  c.train_size = 600;
  c.batch_size = 16;
  const auto spec = build_model(c.model);
  EXPECT_NO_THROW(check_schedule(spec, make_schedule(spec, c)));
}

TEST(ScheduleCheck, ASharedAllReduceRemovedIsRefused) {
  auto j = schedule_json(Protocol::resist, 3, 3);
  j["rounds"][0]["sync"].erase(find_op(j, 0, "shared"));
  EXPECT_NE(schedule_read_error(j).find("rounds[1].workers[0]: trains shared block 0"), std::string::npos)
      << schedule_read_error(j);
  auto l = schedule_json(Protocol::local_sgd, 2, 2);
  l["rounds"][1]["sync"].erase(0);  // the last round: the final model would be rank 0's alone
  EXPECT_NE(schedule_read_error(l).find("after the last round rank 0 lacks"), std::string::npos)
      << schedule_read_error(l);
}

TEST(ScheduleCheck, AHandoffRemovedIsRefusedNamingTheRankThatMissesIt) {
  auto j = schedule_json(Protocol::resist, 3, 3);
  const std::size_t k = find_op(j, 0, "handoff");
  j["rounds"][0]["sync"].erase(k);
  const std::string e = schedule_read_error(j);
  EXPECT_NE(e.find("rounds[1].workers["), std::string::npos) << e;
  EXPECT_NE(e.find("no op of rounds[0].sync brought it"), std::string::npos) << e;
}

TEST(ScheduleCheck, AnOpNeedsItsRanksToHoldWhatItCarries) {
  auto j = schedule_json(Protocol::resist, 4, 2);
  // A reduce of a block with a rank that did not train it.
  const std::size_t k = find_op(j, 0, "partitioned");
  auto& op = j["rounds"][0]["sync"][k];
  const int b = op["blocks"][0];
  for (int w = 0; w < 4; ++w) {
    bool holds = false;
    for (int x : j["rounds"][0]["workers"][w]) holds = holds || x == b;
    if (!holds) {
      op["ranks"].push_back(w);
      break;
    }
  }
  const std::string e = schedule_read_error(j);
  EXPECT_NE(e.find("rounds[0].sync[" + std::to_string(k) + "].ranks["), std::string::npos) << e;
  EXPECT_NE(e.find("does not hold block " + std::to_string(b)), std::string::npos) << e;
}

TEST(ScheduleCheck, StructureIsChecked) {
  auto j = schedule_json(Protocol::local_sgd, 2, 2);
  j["rounds"][0]["sync"][0]["ranks"] = {0, 0};
  EXPECT_NE(schedule_read_error(j).find("rounds[0].sync[0].ranks: a rank appears twice"), std::string::npos);
  j = schedule_json(Protocol::local_sgd, 2, 2);
  j["rounds"][1]["index"] = 5;
  EXPECT_NE(schedule_read_error(j).find("rounds[1].index: must be 1"), std::string::npos);
  j = schedule_json(Protocol::local_sgd, 2, 2);
  j["total_iters"] = 99;
  EXPECT_NE(schedule_read_error(j).find("total_iters: must equal"), std::string::npos);
  j = schedule_json(Protocol::resist, 2, 2);
  j["rounds"][0]["workers"][0].push_back(j["shared_blocks"][0]);
  EXPECT_NE(schedule_read_error(j).find("is a shared block"), std::string::npos) << schedule_read_error(j);
}
