#pragma once
// The simulated grid: one simulated training run per (NIC bandwidth, workers,
// protocol, ℓ), each summarised in one row, with speedups over data-parallel
// and local SGD. `resist-sim sweep` (sweep.csv) and the studies `paper-cifar`,
// `what-if` and `scale` (results.csv) are this grid; they differ only in how
// they present it.
//
// A protocol that fixes its own local iterations (data-parallel: 1; see
// takes_local_iters) runs once per bandwidth and workers, at the first ℓ of
// the grid, and its row states the ℓ it ran.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "schedule/schedule.hpp"
#include "sim/platform.hpp"
#include "sim/run.hpp"

namespace resist::tools {

// The axes of a grid. Bandwidths are indexes into the caller's platforms
// (one platform per NIC bandwidth).
struct GridAxes {
  std::size_t bandwidths = 1;
  std::vector<Protocol> protocols;
  std::vector<int> workers, local_iters;
};

// The order of the points (and of the rows and CSV lines): bandwidth first,
// then workers then protocols (the studies) or protocols then workers
// (`resist-sim sweep`), ℓ last.
enum class GridOrder { workers_then_protocols, protocols_then_workers };

struct GridPoint {
  std::size_t bw = 0;  // index into the platforms
  Protocol protocol = Protocol::resist;
  int workers = 0;
  int ell = 0;  // the ℓ asked for (a protocol that fixes ℓ runs its own)
};

std::vector<GridPoint> grid_points(const GridAxes& axes, GridOrder order);

// One simulated run. `ell` is the ℓ it ran (data-parallel: 1); speedups are
// the baseline's wall-clock over this row's, 0 where there is no baseline.
struct GridRow {
  std::string protocol;  // its name
  int machines = 0, ell = 0, epochs = 0, rounds = 0, simulated_rounds = 0, iters_per_epoch = 0;
  double bw_Bps = 0, wall_s = 0, compute_s = 0, comm_s = 0, exposed_s = 0;
  std::uint64_t bytes_per_round = 0, wire_total = 0;
  double vs_dp = 0, vs_local = 0;
};

// Simulates `point` on `platform` with `base`'s options; base.schedule gives
// everything of the schedule but its protocol, workers and ℓ. `result`, if
// given, receives the whole run (its rounds, for the sweep's per-run CSV).
GridRow simulate_point(const ModelSpec& spec, const sim::Platform& platform, const sim::RunOptions& base,
                       const GridPoint& point, sim::RunResult* result = nullptr);

// After each point: the point, its whole run, its row and the seconds the
// simulation took on this machine.
using PointDone = std::function<void(const GridPoint&, const sim::RunResult&, const GridRow&, double host_s)>;

// Simulates `points` one after the other, in order; platforms[point.bw] is
// each point's platform.
std::vector<GridRow> simulate_points(const ModelSpec& spec, const std::vector<sim::Platform>& platforms,
                                     const sim::RunOptions& base, const std::vector<GridPoint>& points,
                                     const PointDone& done = {});

// Fills vs_dp (data-parallel at the same bandwidth and workers) and vs_local
// (local SGD at the same bandwidth, workers and ℓ; none for a protocol that
// fixes ℓ, which has no ℓ to compare at).
void add_speedups(std::vector<GridRow>& rows);

// results.csv / sweep.csv: one line per row, in order; a speedup that does
// not apply is an empty cell, never 0.
std::string grid_csv(const std::string& model, const std::vector<GridRow>& rows);

// A row as JSON and back (resist-study's --jobs and --shard files).
nlohmann::json row_json(const GridRow& r);
GridRow row_from_json(const nlohmann::json& j);

}  // namespace resist::tools
