// The `validate` study: predicted vs measured on the machine at hand.
//
// Per protocol and rank count, three runtime runs on loopback (Gloo):
//   1. profile     resist-train --profile (as many processes at once as the
//                  runs put on the cores): per-block forward/backward times
//                  (the simulator's compute cost source);
//   2. calibration a short training run with another seed: its measured
//                  all-reduce events fit the loopback "network"
//                  (per-step latency a and bandwidth B in
//                  time = steps·a + bytes_sent/B, least squares);
//   3. measured    the training run being predicted (the study's seed).
// The simulator then runs the measured run's schedule on the calibrated
// platform with the profile, and both timelines are cut into rounds the same
// way. Nothing of run 3 enters the prediction: the errors are real.
#include <sys/wait.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include <nlohmann/json.hpp>

#include "experiments/study.hpp"
#include "experiments/validate_util.hpp"
#include "models/error.hpp"
#include "schedule/json_util.hpp"
#include "schedule/profile.hpp"
#include "schedule/timeline.hpp"
#include "sim/run.hpp"

namespace resist::study {

namespace fs = std::filesystem;
using nlohmann::json;

namespace validate_util {

std::string quote(const std::string& s) { return "'" + s + "'"; }

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

std::string failure_line(const std::string& who, int status, const std::string& log) {
  std::string last;
  std::ifstream in(log);
  for (std::string line; std::getline(in, line);)
    if (line.find_first_not_of(" \t\r") != std::string::npos) last = line;
  if (last.size() > 400) last = last.substr(0, 400) + "...";
  return who + ": runtime command failed (exit " + std::to_string(WIFEXITED(status) ? WEXITSTATUS(status) : -1) +
         "), its last line: " + (last.empty() ? "(no output)" : last) + " (log: " + log + ")";
}

void run_command(const std::string& cmd, const std::string& log, const std::string& who) {
  std::fprintf(stderr, "%s: %s\n", who.c_str(), cmd.c_str());
  const int st = std::system((cmd + " >" + quote(log) + " 2>&1").c_str());
  if (st != 0) throw UserError(failure_line(who, st, log));
}

std::string model_flags(const Study& s) {
  std::string f = " --model " + s.model.model + " --base-width " + std::to_string(s.model.base_width) +
                  " --dataset " + s.model.dataset;
  if (!s.model.block.empty()) f += " --block " + s.model.block;
  if (s.model.model == "mlp") {  // validate-grid's IST runs
    std::string h;
    for (int v : s.model.hidden) {
      if (!h.empty()) h += ',';
      h += std::to_string(v);
    }
    f += " --hidden " + h;
    if (s.model.input > 0) f += " --input " + std::to_string(s.model.input);
    if (s.model.classes > 0) f += " --classes " + std::to_string(s.model.classes);
  }
  return f;
}

// As many processes as the largest run has ranks: the profile times its
// figures on as many as the cores hold and, if more, the iteration on all
// (runtime/profiler.cpp).
std::string profile_command(const Study& s, const std::string& launch, const std::string& train, int max_ranks,
                            const std::string& profile) {
  return quote(launch) + " -n " + std::to_string(std::max(1, max_ranks)) + " -- " + quote(train) + model_flags(s) +
         " --batch-size " + std::to_string(s.batch_size) + " --threads " + std::to_string(s.threads) +
         " --train-subset " + std::to_string(s.train_subset) + " --test-subset " + std::to_string(s.test_subset) +
         " --quiet --profile " + quote(profile);
}

// resist-train's flags for a run walking `schedule_file`: everything the
// schedule does not state (data, threads).
std::string train_flags(const Study& s, const std::string& schedule_file) {
  return " --schedule " + quote(schedule_file) + " --train-subset " + std::to_string(s.train_subset) +
         " --test-subset " + std::to_string(s.test_subset) + " --threads " + std::to_string(s.threads) + " --quiet";
}

ScheduleConfig config_for(const Study& s, Protocol p, int machines, int ell, std::uint64_t seed) {
  ScheduleConfig c = schedule_config(s, p, machines, ell);
  c.seed = seed;
  c.train_size = s.train_subset;
  c.rounds = s.rounds;  // a fixed number of rounds, not epochs
  return c;
}

// Writes the schedule both backends run (resist-train --schedule, the
// simulator) and returns it.
std::shared_ptr<const Schedule> write_schedule(const ModelSpec& spec, const ScheduleConfig& c, const std::string& path) {
  auto s = std::make_shared<Schedule>(make_schedule(spec, c));
  write_schedule_file(*s, path);
  return s;
}

// validate_util.hpp: delay × (1 − exp(−busy / rise)) through (b1, d1) and (b2, d2).
std::pair<double, double> fit_entry_delay(double b1, double d1, double b2, double d2) {
  if (!(d2 > 0)) return {std::max(0.0, d1), 0.0};
  const double r = d1 / d2;
  if (r >= 0.999) return {(std::max(0.0, d1) + d2) / 2, 0.0};  // already alike: the whole delay
  const auto ratio = [&](double rise) { return std::expm1(-b1 / rise) / std::expm1(-b2 / rise); };
  // The ratio falls from 1 towards b1/b2 as the rise grows.
  double lo = b2 * 1e-3, hi = b2;
  if (r <= ratio(hi)) lo = hi;
  for (int i = 0; i < 200 && lo < hi * (1 - 1e-12); ++i) {
    const double mid = std::sqrt(lo * hi);
    (ratio(mid) > r ? lo : hi) = mid;
  }
  return {d2 / -std::expm1(-b2 / lo), lo};
}

// Least squares of seconds = steps·a + bytes/B (with `relative`, each
// residual divided by the sample's seconds: relative errors count alike).
// Returns {a, B}.
std::pair<double, double> fit_alpha_beta(const std::vector<CommSample>& samples, bool relative) {
  double sxx = 0, sxy = 0, syy = 0, sxd = 0, syd = 0, sdd = 0;  // x = steps, y = bytes, d = seconds
  for (const auto& s : samples) {
    const double w = relative && s.seconds > 0 ? 1.0 / (s.seconds * s.seconds) : 1.0;
    const double x = s.steps, y = s.bytes, d = s.seconds;
    sxx += w * x * x, sxy += w * x * y, syy += w * y * y, sxd += w * x * d, syd += w * y * d, sdd += w * d * d;
  }
  if (samples.empty()) throw UserError("validate: no communication samples to fit the network to");
  const double det = sxx * syy - sxy * sxy;
  double a = det != 0 ? (sxd * syy - syd * sxy) / det : -1, inv_b = det != 0 ? (sxx * syd - sxy * sxd) / det : -1;
  if (a > 0 && inv_b > 0) return {a, 1.0 / inv_b};
  // Degenerate or unphysical (a term below zero): the one-term fit, latency
  // alone or bandwidth alone, that leaves the smaller residual. Timings
  // that hardly grow with the bytes (ranks waiting for cores, not for the
  // wire) keep the latency; timings that shrink with the steps keep the
  // bandwidth.
  const bool latency_ok = sxx > 0 && sxd > 0, bandwidth_ok = syy > 0 && syd > 0;
  const double latency_residual = latency_ok ? sdd - sxd * sxd / sxx : 1e300;
  const double bandwidth_residual = bandwidth_ok ? sdd - syd * syd / syy : 1e300;
  if (bandwidth_ok && bandwidth_residual <= latency_residual) return {1e-7, syy / syd};
  if (latency_ok) return {sxd / sxx, 1e12};
  throw UserError("validate: the communication timings fit no positive latency or bandwidth");
}

// validate_util.hpp: the median over the ring samples of their time beyond
// the link's, per step; 0 when that is not positive.
double fit_step_wait(const std::vector<CommSample>& ring, double a, double B) {
  std::vector<double> per_step;
  for (const auto& s : ring) per_step.push_back((s.seconds - s.steps * a - s.bytes / B) / s.steps);
  return std::max(0.0, median(std::move(per_step)));
}

// Fits time = steps·a + bytes_sent/B over the all-reduce events of a measured
// timeline (steps = 2(n-1) ring steps). Returns {a, B}.
std::pair<double, double> fit_network(const Schedule& schedule, const Timeline& t, int skip_rounds) {
  std::vector<CommSample> samples;
  for (const auto& e : t.events) {
    if (e.op < 0 || e.kind != "allreduce" || e.round < skip_rounds || e.round >= int(schedule.rounds.size())) continue;
    const auto& sync = schedule.rounds[std::size_t(e.round)].sync;
    if (e.op >= int(sync.size())) continue;
    samples.push_back({2.0 * (double(sync[e.op].ranks.size()) - 1), double(e.bytes), e.end_s - e.start_s});
  }
  if (samples.empty()) throw UserError("validate: the calibration run's timeline has no all-reduce events to fit");
  return fit_alpha_beta(samples, false);
}

// One round cut the same way from either timeline.

// compute: the slowest worker's non-communication time in the round (local
// iterations + optimizer steps); comm: the slowest worker's time inside
// communication ops; total: from the round's first start to the next round's
// first start (the last round: to its last end) — gaps between events count,
// and where a worker starts the next round while another still finishes this
// one (ranks leave a ring all-reduce at different times), the overlap counts
// once, in the next round: the totals add up to the run's wall-clock time.
std::vector<RoundCut> cut_rounds(const Timeline& t, int rounds) {
  std::vector<RoundCut> cut(rounds);
  std::vector<std::map<int, std::pair<double, double>>> per_worker(rounds);  // worker -> compute, comm
  for (const auto& e : t.events) {
    // a predicted round set-up (the runtime does not trace its own): like the
    // measured timeline, the time it takes lies between the rounds' events
    if (e.round < 0 || e.round >= rounds || e.kind == "eval" || e.kind == "rebuild") continue;
    auto& c = cut[e.round];
    c.start_s = std::min(c.start_s, e.start_s);
    c.end_s = std::max(c.end_s, e.end_s);
    auto& w = per_worker[e.round][e.worker];
    (e.op >= 0 ? w.second : w.first) += e.end_s - e.start_s;
  }
  for (int r = 0; r < rounds; ++r)
    for (const auto& [w, v] : per_worker[r]) {
      cut[r].compute_s = std::max(cut[r].compute_s, v.first);
      cut[r].comm_s = std::max(cut[r].comm_s, v.second);
    }
  for (int r = 0; r + 1 < rounds; ++r)
    if (cut[r + 1].start_s < 1e300) cut[r].end_s = cut[r + 1].start_s;
  return cut;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n == 0 ? 0 : n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

double rel_err(double predicted, double measured) {
  return measured > 0 ? (predicted - measured) / measured : 0;
}

}  // namespace validate_util

namespace {

using namespace validate_util;

sim::Platform loopback_platform(int machines, double step_latency_s, double bandwidth_Bps) {
  const json j = {{"format", "resist-platform"},
                  {"version", 1},
                  {"name", "loopback-calibrated"},
                  {"description", "this machine's loopback as a star of single-GPU nodes, fitted to a measured run"},
                  {"nodes", machines},
                  {"gpus_per_node", 1},
                  {"gpu", {{"flops", "1Tf"}, {"iteration_overhead", "0s"}, {"optimizer_step_per_param", "0s"}}},
                  // a ring step crosses two links: each gets half the step latency
                  {"nic", {{"bandwidth", fmt("%.9gBps", bandwidth_Bps)}, {"latency", fmt("%.9gs", step_latency_s / 2)}}},
                  {"topology", {{"kind", "star"}}},
                  {"network", {{"model", "CM02"}, {"latency_factor", 1}, {"bandwidth_factor", 1}, {"crosstraffic", false}}}};
  return sim::platform_from_json(j);
}

}  // namespace

using namespace validate_util;

Outcome run_validate(const Study& s, const std::string& out, const Paths& paths) {
  if (!runtime_available(paths))
    throw UserError("validate: the runtime is not built ('" + paths.runtime_dir +
                    "/resist-train' or resist-launch missing); build with -DRESIST_WITH_TORCH=ON");
  const std::string train = paths.runtime_dir + "/resist-train", launch = paths.runtime_dir + "/resist-launch";
  const ModelSpec spec = build_model(s.model);
  const int ell = s.local_iters.front();
  fs::create_directories(out + "/runs");

  // 1. The profile, with the threads each rank will have, on as many
  // processes at once as the runs put on the cores (resist-train --profile
  // under resist-launch): a core's speed while the others are busy too.
  const std::string profile_path = out + "/runs/profile.json";
  run_command(profile_command(s, launch, train, *std::max_element(s.machines.begin(), s.machines.end()), profile_path),
              out + "/runs/profile.log");
  const Profile profile = read_profile_file(profile_path);

  std::ostringstream csv, fit_csv, gantt;
  csv << "protocol,workers,round,measured_compute_s,predicted_compute_s,measured_comm_s,predicted_comm_s,"
         "measured_total_s,predicted_total_s\n";
  fit_csv << "protocol,workers,step_latency_s,bandwidth_Bps\n";
  gantt << "source,protocol,worker,kind,op,start_s,end_s,bytes\n";
  std::string table =
      "| protocol | workers | rounds compared | measured round (s) | predicted round (s) | compute error | "
      "communication error | total error |\n|---|---:|---:|---:|---:|---:|---:|---:|\n";
  double worst_total = 0;
  for (int m : s.machines)
    for (const auto& name : s.protocols) {
      const Protocol p = parse_protocol(name);
      const std::string tag = name + "-m" + std::to_string(m);
      // 2. Calibration run (another seed), 3. the measured run.
      // Each run's schedule is one file, handed to resist-train and to the simulator.
      const std::string calib = out + "/runs/" + tag + "-calibration", meas = out + "/runs/" + tag + "-measured";
      const auto calib_s = write_schedule(spec, config_for(s, p, m, ell, s.seed + 1000), calib + "-schedule.json");
      write_schedule(spec, config_for(s, p, m, ell, s.seed), meas + "-schedule.json");
      run_command(quote(launch) + " -n " + std::to_string(m) + " -- " + quote(train) +
                      train_flags(s, calib + "-schedule.json") + " --out " + quote(calib),
                  calib + ".log");
      run_command(quote(launch) + " -n " + std::to_string(m) + " -- " + quote(train) +
                      train_flags(s, meas + "-schedule.json") + " --out " + quote(meas),
                  meas + ".log");
      const Timeline calib_t = read_timeline_file(calib + "/timeline.json");
      const Timeline meas_t = read_timeline_file(meas + "/timeline.json");
      const auto [step_s, bw_Bps] = fit_network(*calib_s, calib_t, s.warmup_rounds);
      fit_csv << name << "," << m << "," << fmt("%.9g", step_s) << "," << fmt("%.9g", bw_Bps) << "\n";

      // The prediction: the measured run's schedule, the profile, the fitted platform.
      sim::RunOptions o;
      o.file = std::make_shared<const Schedule>(read_schedule_file(meas + "-schedule.json"));
      o.schedule = o.file->config;
      o.profile = profile;
      o.full = true;
      o.timeline = true;
      const sim::RunResult r = sim::simulate_run(spec, loopback_platform(m, step_s, bw_Bps), o);
      write_timeline_file(r.timeline, out + "/runs/" + tag + "-predicted-timeline.json");

      const int R = r.rounds;
      const auto mc = cut_rounds(meas_t, R), pc = cut_rounds(r.timeline, R);
      double sum_m = 0, sum_p = 0, e_c = 0, e_k = 0, e_t = 0;
      int n = 0;
      for (int k = s.warmup_rounds; k < R; ++k) {
        if (mc[k].start_s >= 1e300) continue;
        const double mt = mc[k].end_s - mc[k].start_s, pt = pc[k].end_s - pc[k].start_s;
        csv << name << "," << m << "," << k << "," << fmt("%.9g", mc[k].compute_s) << ","
            << fmt("%.9g", pc[k].compute_s) << "," << fmt("%.9g", mc[k].comm_s) << "," << fmt("%.9g", pc[k].comm_s)
            << "," << fmt("%.9g", mt) << "," << fmt("%.9g", pt) << "\n";
        sum_m += mt, sum_p += pt;
        e_c += std::abs(rel_err(pc[k].compute_s, mc[k].compute_s));
        e_k += std::abs(rel_err(pc[k].comm_s, mc[k].comm_s));
        e_t += std::abs(rel_err(pt, mt));
        ++n;
      }
      if (n == 0) throw UserError("validate: no measured rounds after warm-up for " + tag);
      worst_total = std::max(worst_total, e_t / n);
      table += "| " + name + " | " + std::to_string(m) + " | " + std::to_string(n) + " | " + fmt("%.3f", sum_m / n) +
               " | " + fmt("%.3f", sum_p / n) + " | " + fmt("%.1f%%", 100 * e_c / n) + " | " +
               fmt("%.1f%%", 100 * e_k / n) + " | " + fmt("%.1f%%", 100 * e_t / n) + " |\n";
      // Gantt data: the first compared round of the largest rank count, both sources.
      if (m == *std::max_element(s.machines.begin(), s.machines.end())) {
        const int k = s.warmup_rounds;
        for (const auto* src : {&meas_t, &r.timeline}) {
          const auto& cut = src == &meas_t ? mc : pc;
          for (const auto& e : src->events)
            if (e.round == k && e.kind != "eval")
              gantt << (src == &meas_t ? "measured" : "predicted") << "," << name << "," << e.worker << "," << e.kind
                    << "," << e.op << "," << fmt("%.9g", e.start_s - cut[k].start_s) << ","
                    << fmt("%.9g", e.end_s - cut[k].start_s) << "," << e.bytes << "\n";
        }
      }
    }
  json_util::write_atomic(out + "/rounds.csv", csv.str());
  json_util::write_atomic(out + "/network_fit.csv", fit_csv.str());
  json_util::write_atomic(out + "/gantt.csv", gantt.str());

  Outcome o;
  o.tables.push_back({"Predicted vs measured per round (loopback, " + spec.name + ")", table});
  o.report_md =
      "Model `" + spec.name + "`, batch " + std::to_string(s.batch_size) + ", ℓ = " + std::to_string(ell) + ", " +
      std::to_string(s.rounds) + " rounds on " + std::to_string(s.train_subset) +
      " Fashion-MNIST images, Gloo on loopback, " + std::to_string(s.threads) +
      " intra-op thread(s) per rank; the first " + std::to_string(s.warmup_rounds) +
      " round(s) are warm-up and not compared. Profile device: " + profile.device + ".\n\n" + table +
      "\nHow it is computed: the compute cost comes from a `resist-train --profile` run, the loopback network from "
      "a least-squares fit of the all-reduce events of a separate calibration run (another seed); the simulator "
      "then predicts the measured run's schedule. Errors are |predicted − measured| / measured per round, averaged "
      "over the compared rounds, from the measured run's own `timeline.json` (`runs/*-measured/`). compute = the "
      "slowest rank's non-communication time, communication = the slowest rank's time inside communication ops, "
      "total = from the round's first event to the next round's first event. Fitted network: `network_fit.csv`; "
      "per-round values: `rounds.csv`.\n\n" +
      "![predicted vs measured](figures/predicted_vs_measured.png) ([SVG](figures/predicted_vs_measured.svg))\n\n" +
      "![one round, measured and predicted](figures/gantt.png) ([SVG](figures/gantt.svg))\n\n";
  std::fprintf(stderr, "validate: worst mean per-round total error %.1f%%\n", 100 * worst_total);
  return o;
}

}  // namespace resist::study
