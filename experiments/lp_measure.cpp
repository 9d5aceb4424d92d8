// The layer-parallel study's measurement on this machine (lp_measure.hpp).
//
//   1. profile      resist-train --profile of the network (one process);
//   2. calibration  a K = 2 layer-parallel run with another seed: its
//                   activation sends fit the loopback link's bandwidth;
//   3. measured     `repeats` × (layer-serial run, K = 2 layer-parallel run),
//                   alternating, with the study's seed.
// The simulator then runs the measured runs' schedules on a two-node star
// with the fitted link and the profile. Nothing of the measured runs enters
// the prediction.
#include "experiments/lp_measure.hpp"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

#include <nlohmann/json.hpp>

#include "experiments/study.hpp"
#include "experiments/validate_util.hpp"
#include "models/error.hpp"
#include "schedule/json_util.hpp"
#include "schedule/profile.hpp"
#include "schedule/schedule.hpp"
#include "schedule/timeline.hpp"
#include "sim/run.hpp"

namespace resist::study {

namespace fs = std::filesystem;
using nlohmann::json;
using json_util::Reader;

LpMeasure parse_lp_measure(const json& j, const std::string& path) {
  const Reader r{j, path};
  if (!j.is_object()) r.fail("must be an object");
  static const std::vector<std::string> keys = {"model",        "block",       "base_width", "dataset", "batch_size",
                                                "train_subset", "test_subset", "repeats",    "threads"};
  for (const auto& [key, value] : j.items())
    if (std::find(keys.begin(), keys.end(), key) == keys.end())
      r.at(key).fail("unknown key (accepted: model, block, base_width, dataset, batch_size, train_subset, "
                     "test_subset, repeats, threads)");
  LpMeasure m;
  m.enabled = true;
  m.model.model = r.has("model") ? r.at("model").str() : "preact-resnet34";
  m.model.block = r.has("block") ? r.at("block").str() : "basic";
  m.model.base_width = r.has("base_width") ? int(r.at("base_width").integer(1, 256)) : 8;
  m.model.dataset = r.has("dataset") ? r.at("dataset").str() : "fashion-mnist";
  if (m.model.model == "mlp") r.at("model").fail("layer-parallel needs a residual network (got 'mlp')");
  if (r.has("batch_size")) m.batch_size = int(r.at("batch_size").integer(1, 4096));
  if (r.has("train_subset")) m.train_subset = int(r.at("train_subset").integer(1, 1 << 20));
  if (r.has("test_subset")) m.test_subset = int(r.at("test_subset").integer(1, 1 << 20));
  if (r.has("repeats")) m.repeats = int(r.at("repeats").integer(1, 20));
  if (r.has("threads")) m.threads = int(r.at("threads").integer(1, 256));
  if (m.train_subset < 2 * m.batch_size)
    r.at("train_subset").fail("must hold at least two batches (" + std::to_string(2 * m.batch_size) + " images)");
  build_model(m.model);  // an unknown model or dataset fails here, before anything runs
  return m;
}

namespace {

using validate_util::fmt;
using validate_util::quote;

void run(const std::string& cmd, const std::string& log) { validate_util::run_command(cmd, log, "layer-parallel"); }

// A measured run's schedule: one epoch of the training subset, ℓ = 1, as the
// study's grid points are made (schedule_config) but from "measure_here"'s
// model and batch; the rest (min_depth) are Study's defaults.
ScheduleConfig config(const LpMeasure& m, Protocol p, int workers, std::uint64_t seed) {
  Study measured;
  measured.seed = seed;
  measured.model = m.model;
  measured.epochs = 1;
  measured.batch_size = m.batch_size;
  measured.train_size = m.train_subset;
  ScheduleConfig c = schedule_config(measured, p, workers, 1);
  if (p == Protocol::layer_parallel) c.stages = workers;
  return c;
}

// One run on `workers` processes walking the schedule file `dir`-schedule.json, into `dir`.
void train(const LpMeasure& m, const Paths& paths, int workers, const std::string& dir) {
  run(quote(paths.runtime_dir + "/resist-launch") + " -n " + std::to_string(workers) + " -- " +
          quote(paths.runtime_dir + "/resist-train") + " --schedule " + quote(dir + "-schedule.json") +
          " --train-subset " + std::to_string(m.train_subset) + " --test-subset " + std::to_string(m.test_subset) +
          " --threads " + std::to_string(m.threads) + " --quiet --out " + quote(dir),
      dir + ".log");
}

// Mean round time after the first (warm-up) round, from metrics.jsonl.
double measured_s_per_iter(const std::string& dir) {
  std::ifstream in(dir + "/metrics.jsonl");
  double sum = 0;
  int n = 0;
  for (std::string line; std::getline(in, line);) {
    const json r = json::parse(line, nullptr, false);
    if (r.is_discarded() || !r.contains("round_s") || r.value("round", 0) < 1) continue;
    sum += r["round_s"].get<double>();
    ++n;
  }
  if (n == 0) throw UserError("layer-parallel: no rounds after the first in " + dir + "/metrics.jsonl");
  return sum / n;
}

// The calibration run's link: bandwidth = bytes sent / time inside sends.
double fit_bandwidth(const std::string& timeline_file) {
  const Timeline t = read_timeline_file(timeline_file);
  double bytes = 0, seconds = 0;
  for (const auto& e : t.events)
    if (e.kind == "send" && e.round >= 1) bytes += double(e.bytes), seconds += e.end_s - e.start_s;
  if (bytes <= 0 || seconds <= 0) throw UserError("layer-parallel: the calibration run recorded no activation sends");
  return bytes / seconds;
}

sim::Platform loopback(double bandwidth_Bps) {
  return sim::platform_from_json(
      {{"format", "resist-platform"},
       {"version", 1},
       {"name", "loopback-calibrated"},
       {"description", "this machine's loopback as two single-device nodes, fitted to a calibration run"},
       {"nodes", 2},
       {"gpus_per_node", 1},
       {"gpu", {{"flops", "1Tf"}, {"iteration_overhead", "0s"}, {"optimizer_step_per_param", "0s"}}},
       {"nic", {{"bandwidth", fmt("%.9gBps", bandwidth_Bps)}, {"latency", "0s"}}},
       {"topology", {{"kind", "star"}}},
       {"network", {{"model", "CM02"}, {"latency_factor", 1}, {"bandwidth_factor", 1}, {"crosstraffic", false}}}});
}

double predicted_s_per_iter(const ModelSpec& spec, const std::string& schedule_file, const Profile& profile,
                            const sim::Platform& platform) {
  sim::RunOptions o;
  o.file = std::make_shared<const Schedule>(read_schedule_file(schedule_file));
  o.schedule = o.file->config;
  o.profile = profile;
  o.full = true;
  const auto r = sim::simulate_run(spec, platform, o);
  return r.wall_clock_s / double(std::max<std::int64_t>(1, r.total_iters));
}

struct Spread {
  double median = 0, lo = 0, hi = 0;
};

Spread spread(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return {n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2, v.front(), v.back()};
}

std::string pct(double predicted, double measured) { return fmt("%+.1f%%", 100 * (predicted - measured) / measured); }

}  // namespace

std::string measure_layer_parallel_here(const LpMeasure& m, std::uint64_t seed, const std::string& out,
                                        const Paths& paths) {
  if (!runtime_available(paths))
    return "Not measured on this machine: the runtime is not built (`" + paths.runtime_dir + "/resist-train`).\n\n";
  const ModelSpec spec = build_model(m.model);
  const std::string dir = out + "/measured";
  fs::create_directories(dir);
  std::string model = " --model " + m.model.model + " --block " + m.model.block + " --base-width " +
                      std::to_string(m.model.base_width) + " --dataset " + m.model.dataset;
  run(quote(paths.runtime_dir + "/resist-train") + model + " --batch-size " + std::to_string(m.batch_size) +
          " --threads " + std::to_string(m.threads) + " --train-subset " + std::to_string(m.train_subset) +
          " --test-subset " + std::to_string(m.test_subset) + " --quiet --profile " + quote(dir + "/profile.json"),
      dir + "/profile.log");
  const Profile profile = read_profile_file(dir + "/profile.json");
  auto schedule = [&](Protocol p, int workers, std::uint64_t s, const std::string& name) {
    write_schedule_file(make_schedule(spec, config(m, p, workers, s)), dir + "/" + name + "-schedule.json");
    return dir + "/" + name;
  };
  const std::string calib = schedule(Protocol::layer_parallel, 2, seed + 1000, "calibration");
  const std::string serial = schedule(Protocol::data_parallel, 1, seed, "serial");
  const std::string lp = schedule(Protocol::layer_parallel, 2, seed, "layer-parallel");
  train(m, paths, 2, calib);
  const double bw = fit_bandwidth(calib + "/timeline.json");
  std::vector<double> ms, ml, speedup;
  for (int rep = 1; rep <= m.repeats; ++rep) {
    std::string tag = "-";
    tag += std::to_string(rep);
    fs::copy_file(serial + "-schedule.json", serial + tag + "-schedule.json", fs::copy_options::overwrite_existing);
    fs::copy_file(lp + "-schedule.json", lp + tag + "-schedule.json", fs::copy_options::overwrite_existing);
    train(m, paths, 1, serial + tag);
    train(m, paths, 2, lp + tag);
    ms.push_back(measured_s_per_iter(serial + tag));
    ml.push_back(measured_s_per_iter(lp + tag));
    speedup.push_back(ms.back() / ml.back());
  }
  const sim::Platform platform = loopback(bw);
  const double ps = predicted_s_per_iter(spec, serial + "-schedule.json", profile, platform);
  const double pl = predicted_s_per_iter(spec, lp + "-schedule.json", profile, platform);
  const Spread s = spread(ms), l = spread(ml), sp = spread(speedup);

  std::ostringstream csv;
  csv << "training,processes,repeat,measured_s_per_iteration,predicted_s_per_iteration\n";
  for (int i = 0; i < m.repeats; ++i)
    csv << "layer-serial,1," << i + 1 << ',' << fmt("%.9g", ms[std::size_t(i)]) << ',' << fmt("%.9g", ps) << '\n'
        << "layer-parallel,2," << i + 1 << ',' << fmt("%.9g", ml[std::size_t(i)]) << ',' << fmt("%.9g", pl) << '\n';
  json_util::write_atomic(out + "/measured.csv", csv.str());

  const std::string n = std::to_string(m.repeats);
  std::ostringstream md;
  auto row = [&](const char* name, const Spread& v, double p) {
    md << "| " << name << " | " << fmt("%.4f", v.median) << " (" << fmt("%.4f", v.lo) << "–" << fmt("%.4f", v.hi)
       << ") | " << fmt("%.4f", p) << " | " << pct(p, v.median) << " |\n";
  };
  md << "### Measured on this machine: K = 2 against layer-serial\n\n`" << spec.name << "`, batch " << m.batch_size
     << ", one epoch of " << m.train_subset << " Fashion-MNIST images, " << m.threads
     << " thread(s) per process, Gloo over loopback; " << n
     << " runs of each, alternating. Measured: the mean round (= iteration) time after the first round, from each "
        "run's `metrics.jsonl`. Predicted: the simulator on the same schedules, with the compute costs of a "
        "`resist-train --profile` run and a two-node loopback link of "
     << fmt("%.3g", bw / 1e6)
     << " MB/s fitted to a calibration run with another seed (`measured/`, per run: `measured.csv`).\n\n"
        "| training | measured s/iteration (median of "
     << n << "; min–max) | predicted s/iteration | error |\n|---|---:|---:|---:|\n";
  row("layer-serial, 1 process", s, ps);
  row("layer-parallel, K = 2 processes", l, pl);
  md << "| speedup per iteration (serial / layer-parallel) | " << fmt("%.2f×", sp.median) << " (" << fmt("%.2f", sp.lo)
     << "–" << fmt("%.2f", sp.hi) << ") | " << fmt("%.2f×", ps / pl) << " | " << pct(ps / pl, sp.median) << " |\n\n";
  return md.str();
}

}  // namespace resist::study
