// The `convergence` study: time to accuracy.
//
// What only the runtime knows (how fast each protocol learns per epoch) is
// measured: every protocol × workers × seed is trained for real on loopback
// (resist-launch + resist-train --schedule), evaluating the test subset about
// evals_per_epoch times per epoch. What only the simulator knows (how long a
// round takes on a cluster nobody here has) is predicted: the same schedule,
// without its evaluation gathers, is simulated on the study's platform, and
// each evaluated round is placed at the predicted end of that round.
// Evaluation itself is measurement, not training: it is not in the predicted
// time. The machine's load changes how long the real runs take, never what
// they learn (every random choice is seeded), so the results do not depend
// on it.
#include "experiments/convergence.hpp"

#include <sys/wait.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include <nlohmann/json.hpp>

#include "experiments/table.hpp"
#include "experiments/validate_util.hpp"
#include "models/error.hpp"
#include "schedule/json_util.hpp"
#include "sim/run.hpp"

namespace resist::study {

namespace fs = std::filesystem;
using nlohmann::json;

std::optional<CurvePoint> first_crossing(const std::vector<CurvePoint>& curve, double target) {
  for (const auto& p : curve)
    if (p.accuracy >= target) return p;
  return std::nullopt;
}

std::vector<CurvePoint> mean_curve(const std::vector<std::vector<CurvePoint>>& seeds) {
  if (seeds.empty()) return {};
  std::size_t n = seeds.front().size();
  for (const auto& c : seeds) n = std::min(n, c.size());
  std::vector<CurvePoint> mean(n);
  for (std::size_t k = 0; k < n; ++k) {
    mean[k].round = seeds.front()[k].round;
    for (const auto& c : seeds) {
      mean[k].epochs += c[k].epochs / double(seeds.size());
      mean[k].time_s += c[k].time_s / double(seeds.size());
      mean[k].accuracy += c[k].accuracy / double(seeds.size());
    }
  }
  return mean;
}

std::vector<CurvePoint> read_curve(const std::string& metrics_path, const std::vector<double>& round_end_s,
                                   const std::vector<long long>& iters_done, int iters_per_epoch) {
  std::ifstream in(metrics_path);
  if (!in) throw UserError("convergence: cannot read '" + metrics_path + "'");
  std::vector<CurvePoint> curve;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    const json j = json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.is_object() || !j.contains("round"))
      throw UserError("convergence: '" + metrics_path + "': a line is not a metrics record");
    if (!j.contains("test_accuracy")) continue;
    const int r = j.at("round").get<int>();
    if (r < 0 || r >= int(round_end_s.size()) || r >= int(iters_done.size()))
      throw UserError("convergence: '" + metrics_path + "': round " + std::to_string(r) +
                      " is beyond the schedule's " + std::to_string(round_end_s.size()) + " rounds");
    curve.push_back({r, double(iters_done[std::size_t(r)]) / std::max(1, iters_per_epoch),
                     round_end_s[std::size_t(r)], j.at("test_accuracy").get<double>()});
  }
  return curve;
}

void parse_convergence_keys(const json_util::Reader& root, Study& s) {
  const std::string wkey = root.has("machines") ? "machines" : "workers";
  for (std::size_t i = 0; i < s.machines.size(); ++i)
    if (s.machines[i] < 1 || s.machines[i] > 8)
      throw UserError(wkey + "[" + std::to_string(i) + "]: convergence runs 1..8 local ranks (got " +
                      std::to_string(s.machines[i]) + ")");
  if (s.local_iters.size() != 1) throw UserError("local_iters: convergence takes one value (ℓ of every protocol)");
  if (root.has("seeds")) s.seeds = int(root.at("seeds").integer(1, 100));
  if (root.has("evals_per_epoch")) s.evals_per_epoch = int(root.at("evals_per_epoch").integer(1, 1000));
  if (root.has("target_accuracies")) {
    const auto t = root.at("target_accuracies");
    if (!t.j.is_array() || t.size() == 0) t.fail("must be a non-empty list of percentages in (0, 100]");
    s.target_accuracies.clear();
    for (std::size_t i = 0; i < t.size(); ++i) {
      const double v = t.at(i).number(0, 100);
      if (v <= 0) t.at(i).fail("must be a percentage in (0, 100] (got 0)");
      s.target_accuracies.push_back(v);
    }
    std::sort(s.target_accuracies.begin(), s.target_accuracies.end());
  }
  s.train_size = s.train_subset;  // an epoch is one pass over the subset by all workers together
}

namespace {

using validate_util::fmt;
using validate_util::quote;

// Seconds with three significant digits, whatever their size.
std::string secs(double v) { return v >= 100 ? fmt("%.0f", v) : v >= 10 ? fmt("%.1f", v) : fmt("%.3g", v); }

std::string read_text(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

sim::Platform convergence_platform(const Study& s) {
  try {
    return sim::load_platform(s.platform, s.overrides);
  } catch (const UserError& e) {
    throw UserError(std::string("platform: ") + e.what());
  }
}

// One configuration: a protocol at a number of workers; its runs, one per seed.
struct Config {
  std::string protocol;
  int workers = 0;
  std::vector<std::vector<CurvePoint>> curves;  // per seed
  std::vector<double> total_s;                  // predicted whole run, per seed
  std::vector<CurvePoint> mean;
};

// The schedule of one run, with evaluation about evals_per_epoch times per epoch.
Schedule run_schedule(const Study& s, const ModelSpec& spec, Protocol p, int m, std::uint64_t seed) {
  ScheduleConfig c = schedule_config(s, p, m, s.local_iters.front());
  c.seed = seed;
  c.train_size = s.train_subset;
  const Schedule plain = make_schedule(spec, c);
  const double rounds_per_epoch = double(plain.iters_per_epoch) / std::max(1, plain.config.local_iters);
  c.eval_every = std::max(1, int(std::lround(rounds_per_epoch / s.evals_per_epoch)));
  return make_schedule(spec, c);
}

// Trains one run for real unless runs/TAG already holds the finished run of
// this very schedule and command (a study re-run after a report change).
void train_run(const Study& s, const Paths& paths, const Schedule& sched, const std::string& tag,
               const std::string& runs) {
  const std::string dir = runs + "/" + tag, sched_path = runs + "/" + tag + "-schedule.json";
  const std::string fresh = to_json(sched).dump() + "\n";
  const std::string cmd = quote(paths.runtime_dir + "/resist-launch") + " -n " + std::to_string(sched.config.workers) +
                          " -- " + quote(paths.runtime_dir + "/resist-train") + " --schedule " + quote(sched_path) +
                          " --train-subset " + std::to_string(s.train_subset) + " --test-subset " +
                          std::to_string(s.test_subset) + " --threads " + std::to_string(s.threads) +
                          " --quiet --out " + quote(dir);
  if (fs::exists(dir + "/report.json") && fs::exists(sched_path) && read_text(sched_path) == fresh &&
      read_text(runs + "/" + tag + ".cmd") == cmd + "\n") {
    std::fprintf(stderr, "convergence: %s: reusing the finished run in %s\n", tag.c_str(), dir.c_str());
    return;
  }
  fs::remove_all(dir);
  json_util::write_atomic(sched_path, fresh);
  json_util::write_atomic(runs + "/" + tag + ".cmd", cmd + "\n");
  std::fprintf(stderr, "convergence: %s\n", cmd.c_str());
  const auto t0 = std::chrono::steady_clock::now();
  const std::string log = runs + "/" + tag + ".log";
  const int st = std::system((cmd + " >" + quote(log) + " 2>&1").c_str());
  if (st != 0) {
    fs::remove(runs + "/" + tag + ".cmd");
    throw UserError(validate_util::failure_line("convergence", st, log));
  }
  std::fprintf(stderr, "convergence: %s trained in %.0f s\n", tag.c_str(),
               std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
}

// The predicted end of every round on the platform: the run's schedule
// without its evaluation gathers (measurement, not training).
std::vector<double> predicted_round_ends(const Study& s, const ModelSpec& spec, const sim::Platform& platform,
                                         const Schedule& sched) {
  auto train_only = std::make_shared<Schedule>(sched);
  for (auto& r : train_only->rounds)
    r.sync.erase(std::remove_if(r.sync.begin(), r.sync.end(), [](const CommOp& op) { return op.payload == Payload::eval; }),
                 r.sync.end());
  sim::RunOptions o;
  o.file = train_only;
  o.schedule = train_only->config;
  o.max_simulated_rounds = s.max_simulated_rounds;
  o.engine.collectives = s.collectives;
  const sim::RunResult res = sim::simulate_run(spec, platform, o);
  std::vector<double> ends;
  for (const auto& row : res.rows) ends.push_back(row.start_s + row.duration_s);
  return ends;
}

std::vector<long long> iterations_done(const Schedule& sched) {
  std::vector<long long> done;
  long long sum = 0;
  for (const auto& r : sched.rounds) done.push_back(sum += r.local_iters);
  return done;
}

// Trains and predicts every configuration, in table order (workers, then protocols).
std::vector<Config> run_all(const Study& s, const ModelSpec& spec, const sim::Platform& platform, const Paths& paths,
                            const std::string& runs) {
  std::vector<Config> configs;
  const int total = int(s.machines.size() * s.protocols.size()) * s.seeds;
  int done = 0;
  for (int m : s.machines)
    for (const auto& name : s.protocols) {
      Config c{name, m, {}, {}, {}};
      for (int k = 0; k < s.seeds; ++k) {
        const std::uint64_t seed = s.seed + std::uint64_t(k);
        const std::string tag = name + "-m" + std::to_string(m) + "-s" + std::to_string(seed);
        std::fprintf(stderr, "convergence: run %d/%d: %s\n", ++done, total, tag.c_str());
        const Schedule sched = run_schedule(s, spec, parse_protocol(name), m, seed);
        train_run(s, paths, sched, tag, runs);
        const auto ends = predicted_round_ends(s, spec, platform, sched);
        c.curves.push_back(read_curve(runs + "/" + tag + "/metrics.jsonl", ends, iterations_done(sched),
                                      sched.iters_per_epoch));
        if (c.curves.back().empty()) throw UserError("convergence: run " + tag + " recorded no test accuracy");
        c.total_s.push_back(ends.empty() ? 0.0 : ends.back());
      }
      c.mean = mean_curve(c.curves);
      configs.push_back(std::move(c));
    }
  return configs;
}

const Config* find_config(const std::vector<Config>& cs, const std::string& protocol, int m) {
  for (const auto& c : cs)
    if (c.protocol == protocol && c.workers == m) return &c;
  return nullptr;
}

double mean_of(const std::vector<double>& v) {
  double x = 0;
  for (double e : v) x += e / double(v.size());
  return x;
}

std::vector<double> finals(const Config& c) {
  std::vector<double> f;
  for (const auto& cv : c.curves) f.push_back(cv.back().accuracy);
  return f;
}

std::string pct(double fraction) { return fmt("%.2f", 100 * fraction); }


std::string write_curves(const std::string& out, const std::string& model, const std::vector<Config>& cs,
                         const Study& s) {
  std::ostringstream csv;
  csv << "model,protocol,workers,seed,round,epochs,predicted_s,test_accuracy\n";
  for (const auto& c : cs) {
    auto line = [&](const std::string& seed, const CurvePoint& p) {
      csv << model << "," << c.protocol << "," << c.workers << "," << seed << "," << p.round << ","
          << fmt("%.6g", p.epochs) << "," << fmt("%.9g", p.time_s) << "," << fmt("%.6f", p.accuracy) << "\n";
    };
    for (std::size_t k = 0; k < c.curves.size(); ++k)
      for (const auto& p : c.curves[k]) line(std::to_string(s.seed + k), p);
    for (const auto& p : c.mean) line("mean", p);
  }
  json_util::write_atomic(out + "/curves.csv", csv.str());
  return csv.str();
}

// Final accuracy and predicted time of the whole run (fixed epochs), per configuration.
std::string final_table(const std::string& out, const std::vector<Config>& cs, const Study& s) {
  std::ostringstream csv;
  csv << "protocol,workers,seed,final_test_accuracy,predicted_total_s\n";
  Table t{{"protocol", "workers", "final test accuracy (%), mean [min–max]", "predicted time, " +
                                                                             std::to_string(s.epochs) + " epochs (s)",
        "speedup vs local SGD, same epochs"},
       {}};
  for (const auto& c : cs) {
    const auto f = finals(c);
    for (std::size_t k = 0; k < f.size(); ++k)
      csv << c.protocol << "," << c.workers << "," << s.seed + k << "," << fmt("%.6f", f[k]) << ","
          << fmt("%.9g", c.total_s[k]) << "\n";
    const Config* l = find_config(cs, "local-sgd", c.workers);
    const double total = mean_of(c.total_s);
    t.rows.push_back({c.protocol, std::to_string(c.workers),
                      pct(mean_of(f)) + " [" + pct(*std::min_element(f.begin(), f.end())) + "–" +
                          pct(*std::max_element(f.begin(), f.end())) + "]",
                      secs(total), l && total > 0 ? fmt("%.2f×", mean_of(l->total_s) / total) : "-"});
  }
  json_util::write_atomic(out + "/final.csv", csv.str());
  return t.md();
}

// The headline: ResIST's final accuracy minus local SGD's, per workers.
std::string gap_table(const std::vector<Config>& cs, const Study& s) {
  Table t{{"workers", "ResIST final (%)", "local SGD final (%)", "gap ResIST − local SGD (points)", "gap per seed"}, {}};
  for (int m : s.machines) {
    const Config *r = find_config(cs, "resist", m), *l = find_config(cs, "local-sgd", m);
    if (!r || !l) continue;
    const auto fr = finals(*r), fl = finals(*l);
    std::string per;
    for (std::size_t k = 0; k < fr.size() && k < fl.size(); ++k)
      per += (per.empty() ? "" : ", ") + fmt("%+.2f", 100 * (fr[k] - fl[k]));
    t.rows.push_back({std::to_string(m), pct(mean_of(fr)), pct(mean_of(fl)),
                      fmt("%+.2f", 100 * (mean_of(fr) - mean_of(fl))), per});
  }
  return t.rows.empty() ? "" : t.md();
}

// Time to each target (seed-mean curve, first evaluation at or above it),
// and ResIST's speedup to that accuracy. Writes time_to_accuracy.csv.
std::string target_tables(const std::string& out, const std::vector<Config>& cs, const Study& s,
                          std::string& speedups) {
  std::ostringstream csv;
  csv << "protocol,workers,target_accuracy,seeds_reaching,seeds,round,epochs,predicted_s,"
         "speedup_vs_local_sgd_to_accuracy,speedup_vs_data_parallel_to_accuracy\n";
  Table t{{"protocol", "workers"}, {}};
  for (double target : s.target_accuracies) t.head.push_back("to " + fmt("%g", target) + "%: predicted s (epochs)");
  Table sp{{"workers", "target accuracy", "ResIST vs local SGD, to accuracy", "ResIST vs data-parallel, to accuracy"}, {}};
  auto reach = [&](const Config* c, double target) -> std::optional<CurvePoint> {
    return c ? first_crossing(c->mean, target / 100) : std::nullopt;
  };
  auto ratio = [&](const Config* base, const Config& c, double target) -> std::string {
    const auto b = reach(base, target), x = reach(&c, target);
    return b && x && x->time_s > 0 ? fmt("%.2f", b->time_s / x->time_s) : "";
  };
  for (const auto& c : cs) {
    std::vector<std::string> row{c.protocol, std::to_string(c.workers)};
    for (double target : s.target_accuracies) {
      int seeds_reaching = 0;
      for (const auto& cv : c.curves) seeds_reaching += first_crossing(cv, target / 100).has_value();
      const auto p = reach(&c, target);
      const std::string vs_l = ratio(find_config(cs, "local-sgd", c.workers), c, target),
                        vs_d = ratio(find_config(cs, "data-parallel", c.workers), c, target);
      csv << c.protocol << "," << c.workers << "," << fmt("%g", target) << "," << seeds_reaching << ","
          << c.curves.size() << "," << (p ? std::to_string(p->round) : "") << ","
          << (p ? fmt("%.6g", p->epochs) : "") << "," << (p ? fmt("%.9g", p->time_s) : "") << "," << vs_l << ","
          << vs_d << "\n";
      row.push_back(p ? secs(p->time_s) + " (" + fmt("%.2f", p->epochs) + ")" : "not reached");
      if (c.protocol == "resist")
        sp.rows.push_back({std::to_string(c.workers), fmt("%g%%", target), vs_l.empty() ? "-" : vs_l + "×",
                           vs_d.empty() ? "-" : vs_d + "×"});
    }
    t.rows.push_back(row);
  }
  json_util::write_atomic(out + "/time_to_accuracy.csv", csv.str());
  speedups = sp.rows.empty() ? "" : sp.md();
  return t.md();
}

std::string setup_md(const Study& s, const ModelSpec& spec, const sim::Platform& platform) {
  return "Model `" + spec.name + "`, " + std::to_string(s.epochs) + " epochs of " + std::to_string(s.train_subset) +
         " training images (an epoch: one pass over them by all workers together), test accuracy on " +
         std::to_string(s.test_subset) + " test images about " + std::to_string(s.evals_per_epoch) +
         " times per epoch; batch " + std::to_string(s.batch_size) + " per worker, ℓ = " +
         std::to_string(s.local_iters.front()) + " (data-parallel: 1), d_min = " + std::to_string(s.min_depth) +
         ", seeds " + std::to_string(s.seed) + "–" + std::to_string(s.seed + std::uint64_t(s.seeds) - 1) +
         ". Trained for real (LibTorch, Gloo on loopback, " + std::to_string(s.threads) +
         " thread(s) per rank); wall-clock predicted on platform `" + platform.name + "` (" + platform.description +
         ").\n\n";
}

}  // namespace

Outcome run_convergence(const Study& s, const std::string& out, const Paths& paths) {
  if (!runtime_available(paths))
    throw UserError("convergence: the runtime is not built ('" + paths.runtime_dir +
                    "/resist-train' or resist-launch missing); build with -DRESIST_WITH_TORCH=ON");
  const ModelSpec spec = build_model(s.model);
  const sim::Platform platform = convergence_platform(s);
  fs::create_directories(out + "/runs");
  const auto configs = run_all(s, spec, platform, paths, out + "/runs");
  write_curves(out, spec.name, configs, s);
  std::string speedups;
  const std::string finals_md = final_table(out, configs, s), gap = gap_table(configs, s),
                    targets = target_tables(out, configs, s, speedups);
  Outcome o;
  if (!gap.empty()) o.tables.push_back({"Final test accuracy, ResIST − local SGD (" + spec.name + ", " +
                                            std::to_string(s.epochs) + " epochs, mean of " +
                                            std::to_string(s.seeds) + " seeds)", gap});
  o.tables.push_back({"Predicted time to accuracy on " + platform.name + " (" + spec.name + ", seed-mean curves)",
                      targets});
  if (!speedups.empty())
    o.tables.push_back({"ResIST's speedup to a target accuracy (" + platform.name + ")", speedups});
  o.report_md =
      setup_md(s, spec, platform) + "**Final accuracy** after " + std::to_string(s.epochs) +
      " epochs (the last evaluation), mean over seeds, and the predicted time of the whole run:\n\n" + finals_md +
      "\nThe speedup in this table is for the same number of epochs, not to an accuracy.\n\n" +
      (gap.empty() ? std::string() : "**ResIST − local SGD**, final test accuracy (points; the ResIST paper reports "
                                     "ResIST within 1 point of local SGD on CIFAR):\n\n" + gap + "\n") +
      "**Time to accuracy**: the predicted wall-clock at the end of the first evaluated round whose seed-mean test "
      "accuracy is at or above the target (no interpolation between evaluations: the time is late by at most one "
      "evaluation interval); epochs done then in parentheses; *not reached* when no evaluation reaches it. "
      "Per-seed crossings: `time_to_accuracy.csv` (`seeds_reaching`).\n\n" + targets + "\n" +
      (speedups.empty() ? std::string()
                        : "**Speedup to accuracy**: the other protocol's predicted time to the target over ResIST's "
                          "(not for the same epochs); `-` where either does not reach it.\n\n" + speedups + "\n") +
      "Predicted times leave evaluation out (its gathers and test passes are measurement, not training). Curves: "
      "`curves.csv` (per seed and the seed mean), runs: `runs/` (each with its command in `TAG.cmd`).\n\n"
      "![accuracy vs epochs](figures/accuracy_vs_epochs.png) ([SVG](figures/accuracy_vs_epochs.svg))\n\n"
      "![accuracy vs predicted wall-clock](figures/accuracy_vs_time.png) ([SVG](figures/accuracy_vs_time.svg))\n\n";
  return o;
}

}  // namespace resist::study
