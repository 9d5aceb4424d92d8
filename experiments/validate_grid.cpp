// The `validate-grid` study: predictions checked on runs that took no part in
// the calibration.
//
// Calibration, once: per rank count, a sweep of all-reduce sizes with
// resist-bench-comm whose timings fit the loopback links, a latency per ring
// step and a bandwidth (validate_util::fit_alpha_beta); then a
// `resist-train --profile` run per model (the ResNet, and the MLP when IST is
// in the grid; it also times the per-round rebuild and reload of the
// network), one process per core profiling at once. The platform is
// `localhost` (sim/platform.hpp): one node with this machine's cores, shared
// by the ranks placed on it, with the fitted links between ranks.
//
// Then every configuration (protocol × ranks × ℓ; data-parallel at one ℓ) is
// measured `repeats` times and predicted once by the simulator with the
// calibrated profile and platform. Per configuration: measured time per round
// (median and spread of the repeats), predicted, error; what the simulator
// does not model is reported with its measured size.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <tuple>

#include <nlohmann/json.hpp>

#include "experiments/study.hpp"
#include "experiments/validate_util.hpp"
#include "models/error.hpp"
#include "schedule/json_util.hpp"
#include "schedule/profile.hpp"
#include "schedule/timeline.hpp"
#include "sim/platform.hpp"
#include "sim/run.hpp"

namespace resist::study {

namespace fs = std::filesystem;
using nlohmann::json;
using json_util::Reader;
using namespace validate_util;

void parse_validate_grid(const Reader& root, Study& s) {
  if (root.has("repeats")) s.repeats = int(root.at("repeats").integer(1, 100));
  for (std::size_t i = 0; i < s.machines.size(); ++i)
    if (s.machines[i] < 2 || s.machines[i] > 8)
      throw UserError("workers[" + std::to_string(i) + "]: validate-grid runs 2..8 local ranks (got " +
                      std::to_string(s.machines[i]) + ")");
  for (std::size_t i = 0; i < s.protocols.size(); ++i)
    (void)root.at("protocols").at(i).choice({"data-parallel", "local-sgd", "resist", "ist"});
  if (!root.has("ist_model")) return;
  const Reader m = root.at("ist_model");
  if (!m.j.is_object()) m.fail("must be an object");
  for (const auto& [key, value] : m.j.items())
    if (key != "model" && key != "dataset" && key != "hidden" && key != "input" && key != "classes")
      throw UserError("ist_model." + key + ": unknown key (accepted: model, dataset, hidden, input, classes)");
  if (m.has("model")) (void)m.at("model").choice({"mlp"});
  if (m.has("dataset")) s.ist_model.dataset = m.at("dataset").str();
  if (m.has("hidden")) s.ist_model.hidden = m.at("hidden").ints(1, int(json_util::kMaxInt));
  if (m.has("input")) s.ist_model.input = int(m.at("input").integer(1, json_util::kMaxInt));
  if (m.has("classes")) s.ist_model.classes = int(m.at("classes").integer(1, json_util::kMaxInt));
}

namespace {

// The study as one model's runs: IST trains the MLP, the others the ResNet.
Study for_protocol(const Study& s, const std::string& protocol) {
  Study t = s;
  if (protocol == "ist") t.model = s.ist_model;
  return t;
}

struct Config {
  std::string protocol;
  int workers = 0, ell = 0;
  std::string tag() const { return protocol + "-m" + std::to_string(workers) + "-l" + std::to_string(ell); }
};

// Every configuration: ℓ does not apply to data-parallel (a round is one
// iteration and its gradient all-reduce).
std::vector<Config> configs(const Study& s) {
  std::vector<Config> v;
  for (const auto& p : s.protocols)
    for (int m : s.machines)
      if (p == "data-parallel") v.push_back({p, m, 1});
      else
        for (int ell : s.local_iters) v.push_back({p, m, ell});
  return v;
}

}  // namespace

void check_validate_grid(const Study& s) {
  for (const Config& c : configs(s)) try {
      const Study t = for_protocol(s, c.protocol);
      validate(build_model(t.model), schedule_config(t, parse_protocol(c.protocol), c.workers, c.ell));
    } catch (const UserError& e) {
      throw UserError(std::string(c.protocol == "ist" ? "ist_model" : "model") + "/workers/local_iters (" + c.protocol +
                      ", " + std::to_string(c.workers) + " workers, ℓ=" + std::to_string(c.ell) + "): " + e.what());
    }
}

namespace {

// The loopback "network" at one rank count, fitted to a sweep of all-reduce sizes.
struct LinkFit {
  double step_latency_s = 0, bandwidth_Bps = 0;
  // Ranks outnumbering the cores: the link fitted to exchanges between two
  // ranks (all pairs at once), and what the smallest ring all-reduce takes
  // beyond it per step (sim::Platform::collective_step_wait_s); else the
  // link fitted to the ring, no wait.
  double step_wait_s = 0;
  // The smallest all-reduce again, each after kFitBusyMs[k] of CPU time on
  // every rank: how much longer it takes then, and the delay and rise
  // fitted to that (sim::Platform::sync_entry_delay_s, sync_entry_rise_s).
  std::vector<double> busy_extra_s;
  double entry_delay_s = 0, entry_rise_s = 0;
  bool link_from_pairs = false;  // the ranks outnumbered the cores: link fitted to --pairs
  // One per launch, size and kind: median seconds per all-reduce, its size,
  // and over how many ranks (all of them, the ring; or 2, --pairs).
  struct Launch {
    CommSample sample;
    std::int64_t floats = 0;
    int op_ranks = 0;
  };
  std::vector<Launch> launches;
};

struct Calibration {
  std::map<std::string, Profile> profiles;  // by model name
  std::map<int, LinkFit> links;             // by rank count
  std::map<int, sim::Platform> platforms;   // by rank count: localhost with those links
  int cores = 0;
};

struct Runtime {
  std::string train, launch, bench_comm;
};

// One profile launched on as many cores at once as the largest
// configuration fills (resist-train --profile under resist-launch): a core's
// speed when the others are busy is what the ranks get.
std::string profile_run(const Study& t, const Runtime& rt, const std::string& dir, const std::string& name) {
  const std::string path = dir + "/profile-" + name + ".json";
  run_command(profile_command(t, rt.launch, rt.train, *std::max_element(t.machines.begin(), t.machines.end()), path),
              dir + "/profile-" + name + ".log");
  return path;
}

// One measured run of `schedule_file` into `run_dir`; its timeline.
Timeline measure(const Study& t, const Runtime& rt, int workers, const std::string& schedule_file,
                 const std::string& run_dir) {
  run_command(quote(rt.launch) + " -n " + std::to_string(workers) + " -- " + quote(rt.train) +
                  train_flags(t, schedule_file) + " --out " + quote(run_dir),
              run_dir + ".log");
  return read_timeline_file(run_dir + "/timeline.json");
}

// Per round: the time outside the slowest rank's events (between rounds:
// sub-network and optimizer rebuilds, evaluation, bookkeeping).
double busy_s(const RoundCut& c) { return c.compute_s + c.comm_s; }

sim::Platform localhost_fitted(double step_s, double bw_Bps, double entry_delay_s, double entry_rise_s,
                               double step_wait_s) {
  json j = sim::localhost_platform_json();
  j["name"] = "localhost-calibrated";
  j["description"] = j["description"].get<std::string>() +
                     "; links fitted to a sweep of all-reduce sizes, the sync entry delay to one after computing";
  j["sync_entry_delay"] = fmt("%.9gs", entry_delay_s);
  j["sync_entry_rise"] = fmt("%.9gs", entry_rise_s);
  j["collective_step_wait"] = fmt("%.9gs", step_wait_s);
  // a ring step crosses two links (each rank's own): each gets half the step latency
  j["intra"] = {{"bandwidth", fmt("%.9gBps", bw_Bps)}, {"latency", fmt("%.9gs", step_s / 2)}};
  j["nic"] = j["intra"];
  return sim::platform_from_json(j);
}

// Median seconds per all-reduce that resist-bench-comm printed into `log`.
double bench_seconds(const std::string& log) {
  std::ifstream in(log);
  for (std::string line; std::getline(in, line);) {
    const auto at = line.find('{');
    if (at == std::string::npos || line.find("s_per_allreduce") == std::string::npos) continue;
    try {
      return json::parse(line.substr(at)).at("variants").at("step").at("s_per_allreduce").get<double>();
    } catch (const json::exception&) {
      break;
    }
  }
  throw UserError("validate-grid: no all-reduce timing in " + log);
}

// The network-fit runs at `m` ranks: resist-bench-comm times resist's ring
// all-reduce step by step (what resist-train runs: P2PCommunicator's default
// pipelining, none) of each size, the ranks
// sharing the cores as in the training runs; the fit gives a per-step latency
// as well as a bandwidth. No training run takes part.
// Then the smallest size twice more, every all-reduce after this much CPU
// time of every rank, as a training round's sync follows its iterations
// (resist-bench-comm --busy-ms): on the cores the ranks share it takes
// longer (its threads wait for a core the others still hold), the more so
// the longer the compute before it, up to a bound (this machine, 2 ranks:
// 1.9, 3.7 and 3.4 ms after 5, 20 and 80 ms against 0.14 ms back to back;
// docs/performance.md).
// The two differences give the platform's sync entry delay and rise (sim/
// platform.hpp): once per round and rank, not per message (a round's later
// ops start with the cores free).
// Every timing is kFitLaunches launches of the benchmark: where it places
// ranks that outnumber the cores, the operating system keeps them for the
// whole launch (at 4 ranks on 2 cores, one launch timed the 4 KiB
// all-reduce at 5.5 ms, another at 11 ms), so repeats within one launch do
// not average it out. The fit takes every launch's timing; the busy ones
// their median.
constexpr double kFitBusyMs[2] = {5, 40};
constexpr int kFitLaunches = 3;

// The median over kFitLaunches launches of resist-bench-comm at m ranks
// with `flags`, each launch's timing also in `each` when given.
double bench_launches(const Runtime& rt, int m, const std::string& flags, const std::string& log_stem,
                      std::vector<double>* each = nullptr) {
  std::vector<double> t;
  for (int k = 1; k <= kFitLaunches; ++k) {
    const std::string log = log_stem + (k > 1 ? "-launch" + std::to_string(k) : std::string()) + ".log";
    run_command(quote(rt.launch) + " -n " + std::to_string(m) + " -- " + quote(rt.bench_comm) + flags, log,
                "validate-grid");
    t.push_back(bench_seconds(log));
  }
  if (each) *each = t;
  return median(std::move(t));
}

LinkFit fit_links(const Runtime& rt, int m, int cores, const std::string& dir) {
  LinkFit f;
  const std::string stem = dir + "/network-fit-m" + std::to_string(m) + "-";
  double smallest = 0;
  // More ranks than cores (an even number): the pairs first (the link), then the ring.
  const bool crowded = m > cores && m % 2 == 0;
  f.link_from_pairs = crowded;
  std::vector<CommSample> link, ring;
  for (const bool pairs : crowded ? std::vector<bool>{true, false} : std::vector<bool>{false})
    for (const std::int64_t floats : {1024, 32768, 262144, 1048576}) {  // 4 KiB .. 4 MiB
      std::vector<double> each;
      const double med = bench_launches(rt, m,
                                        " --floats " + std::to_string(floats) + " --iters " +
                                            (floats >= 262144 ? "5" : "20") + " --repeats 3 --variants step" +
                                            (pairs ? " --pairs" : ""),
                                        stem + (pairs ? "pairs-" : "") + std::to_string(floats), &each);
      if (floats == 1024 && !pairs) smallest = med;
      const int n = pairs ? 2 : m;
      const double steps = 2.0 * (n - 1);
      for (const double s : each) {
        const CommSample x{steps, steps / n * 4.0 * double(floats), s};
        if (pairs || !crowded) link.push_back(x);
        else if (floats == 1024) ring.push_back(x);  // the wait is per step: where the bytes hardly count
        f.launches.push_back({x, floats, n});
      }
    }
  std::tie(f.step_latency_s, f.bandwidth_Bps) = fit_alpha_beta(link, true);
  f.step_wait_s = fit_step_wait(ring, f.step_latency_s, f.bandwidth_Bps);
  for (const double busy : kFitBusyMs)
    f.busy_extra_s.push_back(bench_launches(rt, m,
                                            " --floats 1024 --iters 10 --repeats 3 --variants step --busy-ms " +
                                                fmt("%g", busy),
                                            stem + "1024-busy" + fmt("%g", busy)) -
                             smallest);
  std::tie(f.entry_delay_s, f.entry_rise_s) =
      fit_entry_delay(kFitBusyMs[0] / 1000, f.busy_extra_s[0], kFitBusyMs[1] / 1000, f.busy_extra_s[1]);
  return f;
}

Calibration calibrate(const Study& s, const Runtime& rt, const std::string& dir) {
  Calibration cal;
  std::ostringstream csv;
  csv << "ranks,op_ranks,floats,steps,bytes_sent_per_rank,measured_s,fitted_s\n";
  cal.cores = sim::platform_from_json(sim::localhost_platform_json()).cores_per_node;
  for (int m : s.machines) {
    if (cal.links.count(m)) continue;
    const LinkFit f = fit_links(rt, m, cal.cores, dir);
    for (const auto& [x, floats, op_ranks] : f.launches) {
      const double wait = op_ranks == m ? f.step_wait_s : 0.0;
      csv << m << "," << op_ranks << "," << floats << "," << x.steps << "," << fmt("%.0f", x.bytes) << ","
          << fmt("%.9g", x.seconds) << ","
          << fmt("%.9g", x.steps * (f.step_latency_s + wait) + x.bytes / f.bandwidth_Bps) << "\n";
    }
    cal.links[m] = f;
    cal.platforms[m] =
        localhost_fitted(f.step_latency_s, f.bandwidth_Bps, f.entry_delay_s, f.entry_rise_s, f.step_wait_s);
    json_util::write_atomic(dir + "/localhost-calibrated-m" + std::to_string(m) + ".json",
                            sim::to_json(cal.platforms[m]).dump(2) + "\n");
  }
  json_util::write_atomic(dir + "/network_fit.csv", csv.str());
  // The profiles last, after the network fit's minute of all-reduces, so
  // that the machine has been as busy as during the runs (docs/performance.md:
  // what that did and did not change).
  for (const auto& p : s.protocols) {
    const Study t = for_protocol(s, p);
    const std::string name = build_model(t.model).name;
    if (!cal.profiles.count(name)) cal.profiles[name] = read_profile_file(profile_run(t, rt, dir, name));
  }
  return cal;
}

// Means over the compared rounds of one timeline (or of the prediction).
struct RoundMeans {
  double total_s = 0, compute_s = 0, comm_s = 0, gap_s = 0;
  std::vector<double> totals;  // per compared round
};

RoundMeans means(const Timeline& t, int rounds, int warmup) {
  const auto cut = cut_rounds(t, rounds);
  RoundMeans m;
  int n = 0;
  for (int k = warmup; k < rounds; ++k) {
    if (cut[k].start_s >= 1e300) continue;
    const double total = cut[k].end_s - cut[k].start_s;
    m.totals.push_back(total);
    m.total_s += total, m.compute_s += cut[k].compute_s, m.comm_s += cut[k].comm_s;
    if (k + 1 < rounds) m.gap_s += std::max(0.0, total - busy_s(cut[k]));
    ++n;
  }
  if (n == 0) throw UserError("validate-grid: a timeline has no rounds after warm-up");
  m.total_s /= n, m.compute_s /= n, m.comm_s /= n, m.gap_s /= std::max(1, n - 1);
  return m;
}

// Nearest-rank percentile (q in 0..1).
double percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const std::size_t k = std::size_t(std::ceil(q * double(v.size())));
  return v[std::min(v.size() - 1, k == 0 ? 0 : k - 1)];
}

struct Result {
  Config config;
  std::vector<RoundMeans> runs;  // one per repeat
  RoundMeans predicted;
  double measured_s = 0, spread = 0, error = 0;  // median of the repeats' mean round; (max-min)/median; rel.
  double med(double RoundMeans::*f) const {
    std::vector<double> v;
    for (const auto& r : runs) v.push_back(r.*f);
    return median(v);
  }
};

RoundMeans predict(const Study& t, const Config& c, const Calibration& cal, const std::string& schedule_file,
                   const std::string& out_timeline) {
  const ModelSpec spec = build_model(t.model);
  sim::RunOptions o;
  o.file = std::make_shared<const Schedule>(read_schedule_file(schedule_file));
  o.schedule = o.file->config;
  o.profile = cal.profiles.at(spec.name);
  o.full = true;
  o.timeline = true;
  if (c.protocol == "data-parallel") {  // resist-train's default: 4 MiB gradient buckets during backward
    o.engine.overlap = true;
    o.engine.bucket_bytes = 4u << 20;
  }
  const sim::RunResult r = sim::simulate_run(spec, cal.platforms.at(c.workers), o);
  write_timeline_file(r.timeline, out_timeline);
  return means(r.timeline, r.rounds, t.warmup_rounds);
}

// A configuration's schedule and prediction, before any run is measured.
Result prepare_config(const Study& s, const Config& c, const Calibration& cal, const std::string& dir) {
  const Study t = for_protocol(s, c.protocol);
  const ModelSpec spec = build_model(t.model);
  const std::string base = dir + "/" + c.tag();
  write_schedule(spec, config_for(t, parse_protocol(c.protocol), c.workers, c.ell, s.seed), base + "-schedule.json");
  Result r;
  r.config = c;
  r.predicted = predict(t, c, cal, base + "-schedule.json", base + "-predicted-timeline.json");
  return r;
}

// Repeat k of a configuration, measured.
void measure_repeat(const Study& s, Result& r, int k, const Runtime& rt, const std::string& dir,
                    std::ostringstream& rounds_csv) {
  const Config& c = r.config;
  const Study t = for_protocol(s, c.protocol);
  const std::string base = dir + "/" + c.tag();
  const std::string run_dir = base + "-run" + std::to_string(k + 1);
  r.runs.push_back(means(measure(t, rt, c.workers, base + "-schedule.json", run_dir), s.rounds, s.warmup_rounds));
  for (std::size_t i = 0; i < r.runs.back().totals.size(); ++i)
    rounds_csv << c.protocol << "," << c.workers << "," << c.ell << "," << k + 1 << "," << s.warmup_rounds + int(i)
               << "," << fmt("%.9g", r.runs.back().totals[i]) << ","
               << fmt("%.9g", i < r.predicted.totals.size() ? r.predicted.totals[i] : 0.0) << "\n";
}

// The median of the repeats, their spread, the prediction's error.
void finish_config(Result& r) {
  std::vector<double> totals;
  for (const auto& m : r.runs) totals.push_back(m.total_s);
  r.measured_s = median(totals);
  r.spread = r.measured_s > 0 ? (*std::max_element(totals.begin(), totals.end()) -
                                 *std::min_element(totals.begin(), totals.end())) / r.measured_s
                              : 0;
  r.error = rel_err(r.predicted.total_s, r.measured_s);
}

std::string pct(double v) { return fmt("%.1f%%", 100 * v); }

std::string config_table(const std::vector<Result>& results, std::ostringstream& csv) {
  csv << "protocol,workers,local_iters,repeats,measured_round_s,measured_min_s,measured_max_s,spread,"
         "predicted_round_s,error,measured_compute_s,predicted_compute_s,measured_comm_s,predicted_comm_s,"
         "measured_gap_s,predicted_gap_s\n";
  std::string t =
      "| protocol | ranks | ℓ | measured round (s), median | spread (max−min)/median | predicted round (s) | error | "
      "measured compute / predicted | measured comm / predicted | between rounds (s): measured / predicted |\n"
      "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n";
  for (const auto& r : results) {
    const auto& c = r.config;
    double lo = 1e300, hi = 0;
    for (const auto& m : r.runs) lo = std::min(lo, m.total_s), hi = std::max(hi, m.total_s);
    const double mc = r.med(&RoundMeans::compute_s), mk = r.med(&RoundMeans::comm_s), mg = r.med(&RoundMeans::gap_s);
    csv << c.protocol << "," << c.workers << "," << c.ell << "," << r.runs.size() << "," << fmt("%.9g", r.measured_s)
        << "," << fmt("%.9g", lo) << "," << fmt("%.9g", hi) << "," << fmt("%.6g", r.spread) << ","
        << fmt("%.9g", r.predicted.total_s) << "," << fmt("%.6g", r.error) << "," << fmt("%.9g", mc) << ","
        << fmt("%.9g", r.predicted.compute_s) << "," << fmt("%.9g", mk) << "," << fmt("%.9g", r.predicted.comm_s)
        << "," << fmt("%.9g", mg) << "," << fmt("%.9g", r.predicted.gap_s) << "\n";
    t += "| " + c.protocol + " | " + std::to_string(c.workers) + " | " +
         (c.protocol == "data-parallel" ? std::string("—") : std::to_string(c.ell)) + " | " +
         fmt("%.4f", r.measured_s) + " | " + pct(r.spread) + " | " + fmt("%.4f", r.predicted.total_s) + " | " +
         pct(r.error) + " | " + fmt("%.4f", mc) + " / " + fmt("%.4f", r.predicted.compute_s) + " | " +
         fmt("%.4f", mk) + " / " + fmt("%.4f", r.predicted.comm_s) + " | " + fmt("%.4f", mg) + " / " +
         fmt("%.4f", r.predicted.gap_s) + " |\n";
  }
  return t;
}

// ResIST over local SGD at each (ranks, ℓ): measured (medians) vs predicted.
std::string speedup_table(const std::vector<Result>& results, std::vector<double>& errors, std::ostringstream& csv) {
  csv << "workers,local_iters,measured_speedup,predicted_speedup,error\n";
  std::string t = "| ranks | ℓ | measured ResIST speedup over local SGD (fixed rounds) | predicted | error |\n"
                  "|---:|---:|---:|---:|---:|\n";
  for (const auto& a : results)
    for (const auto& b : results) {
      if (a.config.protocol != "local-sgd" || b.config.protocol != "resist" || a.config.workers != b.config.workers ||
          a.config.ell != b.config.ell)
        continue;
      const double meas = a.measured_s / b.measured_s, pred = a.predicted.total_s / b.predicted.total_s;
      errors.push_back(std::abs(rel_err(pred, meas)));
      csv << a.config.workers << "," << a.config.ell << "," << fmt("%.6g", meas) << "," << fmt("%.6g", pred) << ","
          << fmt("%.6g", rel_err(pred, meas)) << "\n";
      t += "| " + std::to_string(a.config.workers) + " | " + std::to_string(a.config.ell) + " | " +
           fmt("%.3f", meas) + " | " + fmt("%.3f", pred) + " | " + pct(rel_err(pred, meas)) + " |\n";
    }
  return t;
}

std::string verdict(double v, double floor) { return v <= floor ? "within" : "**over**"; }

std::string summary(const std::vector<Result>& results, const std::vector<double>& speedup_errors, json& meta) {
  std::vector<double> errs, spreads;
  for (const auto& r : results) errs.push_back(std::abs(r.error)), spreads.push_back(r.spread);
  const double med = median(errs), p90 = percentile(errs, 0.9), noise = median(spreads),
               noise_max = spreads.empty() ? 0 : *std::max_element(spreads.begin(), spreads.end());
  const double sp = speedup_errors.empty() ? 0 : *std::max_element(speedup_errors.begin(), speedup_errors.end());
  meta = {{"median_abs_error", med}, {"p90_abs_error", p90}, {"max_speedup_error", sp},
          {"median_run_to_run_spread", noise}, {"max_run_to_run_spread", noise_max}, {"configurations", results.size()}};
  std::fprintf(stderr, "validate-grid: |error| of time per round: median %.1f%%, p90 %.1f%%; speedup error max %.1f%%; "
               "run-to-run spread median %.1f%%\n", 100 * med, 100 * p90, 100 * sp, 100 * noise);
  return "| summary over " + std::to_string(results.size()) +
         " configurations | value | floor (idle machine) | |\n|---|---:|---:|---|\n"
         "| median \\|error\\| of time per round | " + pct(med) + " | 10% | " + verdict(med, 0.10) + " |\n"
         "| 90th percentile \\|error\\| of time per round | " + pct(p90) + " | 25% | " + verdict(p90, 0.25) + " |\n"
         "| largest \\|error\\| of ResIST-over-local-SGD speedup | " + pct(sp) + " | 10% | " + verdict(sp, 0.10) + " |\n"
         "| run-to-run noise: median (max) spread of the repeats | " + pct(noise) + " (" + pct(noise_max) + ") | | |\n";
}

std::string calibration_md(const Calibration& cal) {
  std::string profiles, links;
  for (const auto& [name, p] : cal.profiles) {
    double fb = 0;
    for (const auto& b : p.blocks) fb += b.forward_s + b.backward_s;
    profiles += "`" + name + "`: forward+backward " + fmt("%.4f", fb) + " s, rest of an iteration " +
                fmt("%.4f", p.iteration_overhead_s) + " s per iteration at batch " + std::to_string(p.batch_size) +
                " (the iteration timed whole: " + fmt("%.4f", p.iteration_s) + " s; the blocks one by one: " +
                fmt("%.4f", p.blocks_timed_s) + " s)" +
                "; per round, network and optimizer rebuilt " + fmt("%.4f", p.rebuild_s) +
                " s (and its first iteration " + fmt("%.4f", p.first_iteration_s) + " s longer), values reloaded " +
                fmt("%.4f", p.reload_s) + " s (whole model); ";
  }
  for (const auto& [m, f] : cal.links)
    links += std::string(links.empty() ? "" : ", ") + std::to_string(m) + " ranks: " +
             fmt("%.3g", f.step_latency_s * 1e6) + " µs per step, " + fmt("%.3g", f.bandwidth_Bps / 1e9) +
             " GB/s" +
             (f.link_from_pairs
                  ? " (fitted to exchanges between two ranks, all pairs at once), and a ring over all of them waits " +
                        fmt("%.3g", f.step_wait_s * 1e3) +
                        " ms more per step (collective step wait, from the 4 KiB ring all-reduce)"
                  : std::string()) +
             ", " + fmt("%.3g", f.busy_extra_s[0] * 1e3) + " and " + fmt("%.3g", f.busy_extra_s[1] * 1e3) +
             " ms more after " + fmt("%g", kFitBusyMs[0]) + " and " + fmt("%g", kFitBusyMs[1]) +
             " ms of compute (sync entry delay " + fmt("%.3g", f.entry_delay_s * 1e3) + " ms, rise " +
             fmt("%.3g", f.entry_rise_s * 1e3) + " ms)";
  return "Calibration (once, `runs/`): profiles (one process per core profiling at once) " + profiles +
         "network fit per rank count on `resist-bench-comm` all-reduces of 4 KiB to 4 MiB (the runtime's ring "
         "step by step, the ranks sharing the cores; where they outnumber the cores, also within pairs of ranks, "
         "all pairs at once, `--pairs`; each size in " + std::to_string(kFitLaunches) +
         " launches, where the operating system places the ranks anew; no training run; `runs/network_fit.csv`), "
         "and the smallest twice more, each all-reduce after some CPU time on every rank (how much longer it then "
         "takes, median of the launches, gives the sync entry delay, once per round and rank): " + links +
         ". Platform `localhost` with " + std::to_string(cal.cores) +
         " cores shared by the ranks (`runs/localhost-calibrated-m*.json`).\n\n";
}

const char* kNotModelled =
    "What the prediction contains: the profile (`resist-train --profile`) times every block's forward and backward "
    "pass, the SGD step and the rest of an iteration as the worker runs it with its batches built on the training "
    "thread (a batch of the dataset built, gradients dropped, loss and accuracy read back); per round the set-up "
    "the schedule decides (`schedule/round_setup.hpp`): the network and optimizer built anew when a worker's "
    "network changes (its first round, ResIST's blocks, every IST round), with what the new network's first "
    "iteration takes beyond a steady one (predicted with the set-up, *between rounds*; in the runs inside "
    "*measured compute*), and the values the previous round's sync replaced loaded into it, each scaled by its "
    "share of the parameters; per op the packing of its payload into one buffer and back (IST: by element "
    "index); the network fit gives every message a latency and a bandwidth, and where the ranks outnumber the "
    "cores every step of a collective over more of them than the cores a wait (the collective step wait: a ring "
    "step passes through ranks taking turns on the cores). What is not modelled, each with its measured size in "
    "the tables: evaluation and round bookkeeping (in *between rounds*, beside the predicted set-up); Gloo's own "
    "CPU use while ranks share cores, and where the operating system places the ranks after a sync (inside "
    "*measured comm*, which also holds the time a rank waits for its peers); an iteration of the runs against one "
    "of the profile (*measured compute*: a few percent longer in most studies, docs/performance.md).\n\n";

}  // namespace

Outcome run_validate_grid(const Study& s, const std::string& out, const Paths& paths) {
  if (!runtime_available(paths))
    throw UserError("validate-grid: the runtime is not built ('" + paths.runtime_dir +
                    "/resist-train' or resist-launch missing); build with -DRESIST_WITH_TORCH=ON");
  const Runtime rt{paths.runtime_dir + "/resist-train", paths.runtime_dir + "/resist-launch",
                   paths.runtime_dir + "/bench/resist-bench-comm"};
  if (!fs::exists(rt.bench_comm))
    throw UserError("validate-grid: '" + rt.bench_comm + "' is missing (the network fit runs it; build the runtime's "
                    "benchmarks)");
  const std::string dir = out + "/runs";
  fs::create_directories(dir);
  const Calibration cal = calibrate(s, rt, dir);
  std::ostringstream rounds_csv, results_csv, speedup_csv;
  rounds_csv << "protocol,workers,local_iters,repeat,round,measured_s,predicted_s\n";
  std::vector<Result> results;
  for (const Config& c : configs(s)) results.push_back(prepare_config(s, c, cal, dir));
  // Repeat k of every configuration before repeat k + 1 of any: a drift of
  // the machine's speed during the study then spreads the repeats of each
  // configuration alike instead of biasing one configuration against another
  // (the speedups compare configurations).
  for (int k = 0; k < s.repeats; ++k)
    for (auto& r : results) measure_repeat(s, r, k, rt, dir, rounds_csv);
  for (auto& r : results) finish_config(r);
  const std::string table = config_table(results, results_csv);
  std::vector<double> speedup_errors;
  const std::string speedups = speedup_table(results, speedup_errors, speedup_csv);
  json meta;
  const std::string sum = summary(results, speedup_errors, meta);
  meta["cores"] = cal.cores;
  for (const auto& [m, f] : cal.links)
    meta["network_fit"].push_back({{"ranks", m},
                                   {"step_latency_s", f.step_latency_s},
                                   {"bandwidth_Bps", f.bandwidth_Bps},
                                   {"collective_step_wait_s", f.step_wait_s}});
  for (const auto& [name, p] : cal.profiles) meta["profiles"][name] = {{"rebuild_s", p.rebuild_s}, {"reload_s", p.reload_s}};
  json_util::write_atomic(out + "/results.csv", results_csv.str());
  json_util::write_atomic(out + "/rounds.csv", rounds_csv.str());
  json_util::write_atomic(out + "/speedups.csv", speedup_csv.str());
  json_util::write_atomic(out + "/summary.json", meta.dump(2) + "\n");
  Outcome o;
  o.tables.push_back({"Held-out runs: predicted vs measured time per round (localhost)", sum});
  o.report_md = std::to_string(s.rounds) + " rounds per run (the first " + std::to_string(s.warmup_rounds) +
                " warm-up, not compared), " + std::to_string(s.repeats) + " measured run(s) per configuration, " +
                std::to_string(s.train_subset) + " Fashion-MNIST images, batch " + std::to_string(s.batch_size) +
                ", " + std::to_string(s.threads) + " intra-op thread(s) per rank, Gloo on loopback. " +
                calibration_md(cal) + sum + "\n" + table + "\n" + speedups + "\n" + kNotModelled +
                "Error = (predicted − measured) / measured of the mean time per round (round = first event to the "
                "next round's first event); per-round values in `rounds.csv`, per configuration in `results.csv`.\n\n"
                "![predicted vs measured](figures/predicted_vs_measured_grid.png) "
                "([SVG](figures/predicted_vs_measured_grid.svg))\n\n";
  return o;
}

}  // namespace resist::study
