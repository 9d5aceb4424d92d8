#include "tools/grid.hpp"

#include <chrono>
#include <cstdio>
#include <map>
#include <sstream>
#include <tuple>

#include "schedule/protocol.hpp"

namespace resist::tools {

using nlohmann::json;

namespace {

// The ℓ values a protocol runs at: all of them, or (a protocol that fixes ℓ)
// the first only.
std::vector<int> ells_of(Protocol p, const std::vector<int>& ells) {
  if (takes_local_iters(p) || ells.empty()) return ells;
  return {ells.front()};
}

}  // namespace

std::vector<GridPoint> grid_points(const GridAxes& axes, GridOrder order) {
  std::vector<GridPoint> points;
  auto add = [&](std::size_t b, Protocol p, int m) {
    for (int ell : ells_of(p, axes.local_iters)) points.push_back({b, p, m, ell});
  };
  for (std::size_t b = 0; b < axes.bandwidths; ++b) {
    if (order == GridOrder::workers_then_protocols) {
      for (int m : axes.workers)
        for (Protocol p : axes.protocols) add(b, p, m);
    } else {
      for (Protocol p : axes.protocols)
        for (int m : axes.workers) add(b, p, m);
    }
  }
  return points;
}

GridRow simulate_point(const ModelSpec& spec, const sim::Platform& platform, const sim::RunOptions& base,
                       const GridPoint& point, sim::RunResult* result) {
  sim::RunOptions o = base;
  o.schedule = for_protocol(o.schedule, point.protocol);  // no layer-parallel settings for the others
  o.schedule.workers = point.workers;
  o.schedule.local_iters = point.ell;
  const sim::RunResult r = sim::simulate_run(spec, platform, o);
  const ScheduleConfig& c = o.schedule;
  GridRow row{to_string(point.protocol), point.workers, effective_local_iters(c), c.epochs, r.rounds,
              r.simulated_rounds, 0, platform.nic.bandwidth_Bps, r.wall_clock_s, r.compute_s, r.communication_s,
              r.exposed_communication_s, r.bytes_per_round, r.wire_bytes_total};
  // Per worker; the stages of a layer-parallel replica share one data shard.
  const std::int64_t per_step = std::int64_t(point.workers) * c.batch_size;
  row.iters_per_epoch = c.rounds == 0 && c.epochs > 0 ? int(r.total_iters / c.epochs)
                                                      : int((c.train_size + per_step - 1) / per_step);
  if (result) *result = r;
  return row;
}

std::vector<GridRow> simulate_points(const ModelSpec& spec, const std::vector<sim::Platform>& platforms,
                                     const sim::RunOptions& base, const std::vector<GridPoint>& points,
                                     const PointDone& done) {
  std::vector<GridRow> rows;
  for (const auto& point : points) {
    const auto t0 = std::chrono::steady_clock::now();
    sim::RunResult r;
    rows.push_back(simulate_point(spec, platforms.at(point.bw), base, point, &r));
    const double host_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (done) done(point, r, rows.back(), host_s);
  }
  return rows;
}

void add_speedups(std::vector<GridRow>& rows) {
  std::map<std::pair<double, int>, double> dp;
  std::map<std::tuple<double, int, int>, double> local;
  for (const auto& r : rows) {
    const Protocol p = parse_protocol(r.protocol);
    if (p == Protocol::data_parallel) dp[{r.bw_Bps, r.machines}] = r.wall_s;
    if (p == Protocol::local_sgd) local[{r.bw_Bps, r.machines, r.ell}] = r.wall_s;
  }
  for (auto& r : rows) {
    if (auto it = dp.find({r.bw_Bps, r.machines}); it != dp.end() && r.wall_s > 0) r.vs_dp = it->second / r.wall_s;
    if (auto it = local.find({r.bw_Bps, r.machines, r.ell});
        it != local.end() && r.wall_s > 0 && takes_local_iters(parse_protocol(r.protocol)))
      r.vs_local = it->second / r.wall_s;
  }
}

std::string grid_csv(const std::string& model, const std::vector<GridRow>& rows) {
  std::ostringstream csv;
  csv << "model,protocol,workers,local_iters,nic_bandwidth_Bps,epochs,iters_per_epoch,rounds,simulated_rounds,"
         "wall_clock_s,time_per_epoch_s,compute_s,communication_s,exposed_communication_s,bytes_per_round,"
         "wire_bytes_total,wire_bytes_per_round,speedup_vs_data_parallel,speedup_vs_local_sgd\n";
  auto ratio = [](double v) {
    char buf[32] = "";
    if (v > 0) std::snprintf(buf, sizeof buf, "%.6g", v);
    return std::string(buf);
  };
  for (const auto& r : rows) {
    char line[640];
    std::snprintf(line, sizeof line, "%s,%d,%d,%.6g,%d,%d,%d,%d,%.9g,%.9g,%.9g,%.9g,%.9g,%llu,%llu,%.9g,",
                  r.protocol.c_str(), r.machines, r.ell, r.bw_Bps, r.epochs, r.iters_per_epoch, r.rounds,
                  r.simulated_rounds, r.wall_s, r.wall_s / r.epochs, r.compute_s, r.comm_s, r.exposed_s,
                  (unsigned long long)r.bytes_per_round, (unsigned long long)r.wire_total,
                  r.rounds ? double(r.wire_total) / r.rounds : 0.0);
    csv << model << "," << line << ratio(r.vs_dp) << "," << ratio(r.vs_local) << "\n";
  }
  return csv.str();
}

json row_json(const GridRow& r) {
  return {{"protocol", r.protocol}, {"machines", r.machines}, {"ell", r.ell}, {"epochs", r.epochs},
          {"rounds", r.rounds}, {"simulated_rounds", r.simulated_rounds}, {"iters_per_epoch", r.iters_per_epoch},
          {"bw_Bps", r.bw_Bps}, {"wall_s", r.wall_s}, {"compute_s", r.compute_s}, {"comm_s", r.comm_s},
          {"exposed_s", r.exposed_s}, {"bytes_per_round", r.bytes_per_round}, {"wire_total", r.wire_total}};
}

GridRow row_from_json(const json& j) {
  GridRow r;
  r.protocol = j.at("protocol").get<std::string>();
  r.machines = j.at("machines"), r.ell = j.at("ell"), r.epochs = j.at("epochs"), r.rounds = j.at("rounds");
  r.simulated_rounds = j.at("simulated_rounds"), r.iters_per_epoch = j.at("iters_per_epoch");
  r.bw_Bps = j.at("bw_Bps"), r.wall_s = j.at("wall_s"), r.compute_s = j.at("compute_s"), r.comm_s = j.at("comm_s");
  r.exposed_s = j.at("exposed_s"), r.bytes_per_round = j.at("bytes_per_round"), r.wire_total = j.at("wire_total");
  return r;
}

}  // namespace resist::tools
