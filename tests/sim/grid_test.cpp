// tools/grid: the simulated grid `resist-sim sweep` and the studies share.
#include "tools/grid.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "schedule/protocol.hpp"

using namespace resist;
using tools::GridOrder;
using tools::GridRow;

namespace {

std::string describe(const std::vector<tools::GridPoint>& points) {
  std::string s;
  for (const auto& p : points)
    s += std::to_string(p.bw) + ":" + to_string(p.protocol) + ":" + std::to_string(p.workers) + ":" +
         std::to_string(p.ell) + " ";
  return s;
}

GridRow row(const std::string& protocol, int workers, int ell, double wall_s, double bw_Bps = 1e9) {
  GridRow r;
  r.protocol = protocol;
  r.machines = workers;
  r.ell = ell;
  r.epochs = 2;
  r.rounds = 4;
  r.bw_Bps = bw_Bps;
  r.wall_s = wall_s;
  r.wire_total = 400;
  return r;
}

}  // namespace

TEST(Grid, DataParallelFixesEllSoItRunsOncePerBandwidthAndWorkers) {
  EXPECT_FALSE(takes_local_iters(Protocol::data_parallel));
  for (Protocol p : {Protocol::local_sgd, Protocol::resist, Protocol::ist}) EXPECT_TRUE(takes_local_iters(p));
  const tools::GridAxes axes{2, {Protocol::data_parallel, Protocol::resist}, {2, 4}, {10, 20}};
  EXPECT_EQ(describe(tools::grid_points(axes, GridOrder::workers_then_protocols)),
            "0:data-parallel:2:10 0:resist:2:10 0:resist:2:20 0:data-parallel:4:10 0:resist:4:10 0:resist:4:20 "
            "1:data-parallel:2:10 1:resist:2:10 1:resist:2:20 1:data-parallel:4:10 1:resist:4:10 1:resist:4:20 ");
  EXPECT_EQ(describe(tools::grid_points(axes, GridOrder::protocols_then_workers)),
            "0:data-parallel:2:10 0:data-parallel:4:10 0:resist:2:10 0:resist:2:20 0:resist:4:10 0:resist:4:20 "
            "1:data-parallel:2:10 1:data-parallel:4:10 1:resist:2:10 1:resist:2:20 1:resist:4:10 1:resist:4:20 ");
}

TEST(Grid, SpeedupsCompareLikeWithLikeAndLeaveTheRestEmpty) {
  std::vector<GridRow> rows = {row("data-parallel", 4, 1, 100), row("local-sgd", 4, 1, 80), row("local-sgd", 4, 8, 50),
                               row("resist", 4, 8, 25), row("resist", 8, 8, 10), row("resist", 4, 8, 40, 2e9)};
  tools::add_speedups(rows);
  EXPECT_DOUBLE_EQ(rows[0].vs_dp, 1);
  EXPECT_EQ(rows[0].vs_local, 0);  // data-parallel has no ℓ, although local SGD ran at ℓ = 1
  EXPECT_DOUBLE_EQ(rows[2].vs_dp, 2);
  EXPECT_DOUBLE_EQ(rows[3].vs_dp, 4);
  EXPECT_DOUBLE_EQ(rows[3].vs_local, 2);  // local SGD at the same ℓ, not at ℓ = 1
  EXPECT_EQ(rows[4].vs_dp, 0);            // no data-parallel with 8 workers
  EXPECT_EQ(rows[4].vs_local, 0);
  EXPECT_EQ(rows[5].vs_dp, 0);  // nor at this bandwidth
  const std::string csv = tools::grid_csv("m", rows);
  EXPECT_NE(csv.find("\nm,data-parallel,4,1,1e+09,2,0,4,0,100,50,0,0,0,0,400,100,1,\n"), std::string::npos) << csv;
  EXPECT_NE(csv.find("\nm,resist,4,8,1e+09,2,0,4,0,25,12.5,0,0,0,0,400,100,4,2\n"), std::string::npos) << csv;
  EXPECT_NE(csv.find("\nm,resist,8,8,1e+09,2,0,4,0,10,5,0,0,0,0,400,100,,\n"), std::string::npos) << csv;
}

TEST(Grid, RowsSurviveJson) {
  GridRow r = row("resist", 4, 8, 25.5);
  r.bytes_per_round = 1234567890123ull;
  r.exposed_s = 0.25;
  const GridRow back = tools::row_from_json(tools::row_json(r));
  EXPECT_EQ(tools::row_json(back), tools::row_json(r));
}
