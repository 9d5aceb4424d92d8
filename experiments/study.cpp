#include "experiments/study.hpp"
#include "experiments/table.hpp"
#include "experiments/convergence.hpp"

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "models/error.hpp"
#include "schedule/accounting.hpp"
#include "schedule/format.hpp"
#include "schedule/layer_parallel.hpp"
#include "schedule/json_util.hpp"
#include "schedule/profile.hpp"
#include "schedule/timeline.hpp"
#include "sim/cost.hpp"
#include "sim/run.hpp"
#include "sim/units.hpp"
#include "tools/comm_table.hpp"
#include "tools/grid.hpp"
#include "tools/progress.hpp"

namespace resist::study {

namespace fs = std::filesystem;
using nlohmann::json;
using json_util::Reader;

const char* to_string(Kind k) {
  switch (k) {
    case Kind::table1: return "table1";
    case Kind::paper_cifar: return "paper-cifar";
    case Kind::what_if: return "what-if";
    case Kind::scale: return "scale";
    case Kind::validate: return "validate";
    case Kind::protocol_grid: return "protocol-grid";
    case Kind::layer_parallel: return "layer-parallel";
    case Kind::convergence: return "convergence";
    case Kind::validate_grid: return "validate-grid";
  }
  return "?";
}

// validate_grid.cpp
void parse_validate_grid(const Reader& root, Study& s);
void check_validate_grid(const Study& s);

namespace {

// ---------------------------------------------------------------------------
// Reading a study file

const std::vector<std::string> kKinds = {"table1", "paper-cifar", "what-if", "scale", "validate", "protocol-grid",
                                         "layer-parallel", "convergence",
                                         "validate-grid"};

Kind kind_from(const std::string& s) {
  for (std::size_t i = 0; i < kKinds.size(); ++i)
    if (kKinds[i] == s) return Kind(i);
  return Kind::table1;
}

// Defaults per kind (docs/studies.md), one entry a kind and nowhere else: the
// paper's set-ups for the simulated kinds; a small ResNet on Fashion-MNIST,
// which trains in minutes here, for the kinds that run the runtime. What an
// entry does not name keeps Study's own default (study.hpp): leaving members
// out is the point, so g++'s warning about it is off here.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
Study kind_defaults(Kind k) {
  const ModelOptions paper = {.model = "preact-resnet101", .block = "basic", .dataset = "cifar100"};
  const ModelOptions small = {.model = "preact-resnet34", .block = "basic", .base_width = 8, .dataset = "fashion-mnist"};
  switch (k) {
    case Kind::table1:
      return {.model = paper, .protocols = {"local-sgd", "resist"}, .machines = {2, 4, 8}, .local_iters = {50}};
    case Kind::paper_cifar:
    case Kind::protocol_grid:
      return {.model = paper, .protocols = {"data-parallel", "local-sgd", "resist"}, .machines = {4, 8},
              .local_iters = {50}};
    case Kind::what_if:
      return {.model = paper, .protocols = {"data-parallel", "local-sgd", "resist"},
              .machines = {2, 4, 8, 16, 32, 64}, .local_iters = {1, 5, 10, 25, 50, 100, 200},
              .bandwidths = {"1Gbps", "10Gbps", "100Gbps"}, .max_simulated_rounds = 16};
    case Kind::scale:
      return {.model = paper, .protocols = {"local-sgd", "resist"},
              .machines = {2, 4, 8, 16, 32, 64, 128, 256, 512, 1024}, .local_iters = {50}, .epochs = 1,
              .max_simulated_rounds = 4};
    case Kind::layer_parallel:
      return {.model = {.model = "preact-resnet101", .block = "basic", .dataset = "cifar10"},
              .protocols = {"layer-parallel", "data-parallel", "resist"}, .machines = {2, 4, 8}, .local_iters = {50},
              .epochs = 1};
    case Kind::validate:
      return {.model = small, .protocols = {"local-sgd", "resist"}, .machines = {2}, .local_iters = {5},
              .batch_size = 32, .rounds = 6, .train_subset = 4096, .test_subset = 256};
    case Kind::validate_grid:  // IST trains an MLP (ist_model)
      return {.model = small, .protocols = {"data-parallel", "local-sgd", "resist", "ist"}, .machines = {2, 4},
              .local_iters = {1, 5}, .batch_size = 32, .min_depth = 2, .rounds = 9, .train_subset = 2048,
              .test_subset = 128, .repeats = 3,
              .ist_model = {.model = "mlp", .dataset = "fashion-mnist", .hidden = {1024}}};
    case Kind::convergence:  // the opt-in study's set-up, scaled down
      return {.model = {.model = "preact-resnet34", .block = "basic", .base_width = 4, .dataset = "fashion-mnist"},
              .protocols = {"data-parallel", "local-sgd", "resist"}, .machines = {2, 4}, .local_iters = {10},
              .epochs = 10, .batch_size = 32, .min_depth = 2, .train_subset = 4096, .test_subset = 1000,
              .target_accuracies = {70, 80, 85}};
  }
  return {};
}
#pragma GCC diagnostic pop

Study defaults(Kind k) {
  Study s = kind_defaults(k);
  s.kind = k;
  return s;
}

std::vector<std::string> strings(const Reader& r) {
  std::vector<std::string> v(r.size());
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = r.at(i).str();
  return v;
}

Study parse_study(const json& j, const std::string& path) {
  const Reader root{j, ""};
  json_util::expect_format(root, "resist-study", 1);
  const Kind kind = kind_from(root.at("kind").choice(kKinds));
  Study s = defaults(kind);
  s.path = path;
  std::set<std::string> allowed = {"format", "version", "kind", "name", "description", "seed", "model",
                                   "protocols", "workers", "machines", "local_iters", "batch_size", "min_depth"};
  if (kind != Kind::table1)
    allowed.insert({"platform", "platform_overrides", "epochs", "train_size", "max_simulated_rounds", "collectives"});
  else
    allowed.insert({"sample_rounds", "train_size"});
  if (kind == Kind::what_if) allowed.insert("bandwidths");
  if (kind == Kind::paper_cifar || kind == Kind::protocol_grid) allowed.insert("as_run");
  if (kind == Kind::layer_parallel) allowed.insert("measure_here");
  if (kind == Kind::validate || kind == Kind::validate_grid) {
    if (kind == Kind::validate_grid) allowed.insert({"repeats", "ist_model"});
    allowed.erase("epochs");
    allowed.erase("train_size");
    allowed.erase("max_simulated_rounds");
    allowed.erase("collectives");
    allowed.erase("platform");
    allowed.insert({"rounds", "train_subset", "test_subset", "threads", "warmup_rounds"});
  }
  if (kind == Kind::convergence) {
    allowed.erase("train_size");  // the training subset is the epoch
    allowed.insert({"train_subset", "test_subset", "threads", "seeds", "evals_per_epoch", "target_accuracies"});
  }
  for (const auto& [key, value] : j.items())
    if (!allowed.count(key)) {
      std::string list;
      for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
      throw UserError(key + ": unknown key for kind '" + std::string(to_string(kind)) + "' (accepted: " + list + ")");
    }
  s.name = root.has("name") ? root.at("name").str() : fs::path(path).stem().string();
  if (s.name.empty() || s.name.find_first_of("/\\ ") != std::string::npos)
    throw UserError("name: must be a non-empty word without '/' or spaces (got '" + s.name + "')");
  if (root.has("description")) s.description = root.at("description").str();
  s.seed = root.at("seed").uint();
  if (root.has("model")) {
    const Reader m = root.at("model");
    const std::set<std::string> keys = {"model", "block", "base_width", "dataset", "input", "hidden", "classes",
                                          "image_size"};
    for (const auto& [key, value] : m.j.items())
      if (!keys.count(key))
        throw UserError("model." + key + ": unknown key (accepted: model, block, base_width, dataset, input, hidden, classes, "
                      "image_size)");
    if (m.has("model")) s.model.model = m.at("model").str();
    if (m.has("block")) s.model.block = m.at("block").str();
    if (m.has("base_width")) s.model.base_width = int(m.at("base_width").integer(1, 4096));
    if (m.has("dataset")) s.model.dataset = m.at("dataset").str();
    if (m.has("input")) s.model.input = int(m.at("input").integer(1, json_util::kMaxInt));
    if (m.has("hidden")) s.model.hidden = m.at("hidden").ints(1, int(json_util::kMaxInt));
    if (m.has("classes")) s.model.classes = int(m.at("classes").integer(1, json_util::kMaxInt));
    if (m.has("image_size")) s.model.image_size = int(m.at("image_size").integer(16, 2048));
    // MLPs (IST) only make sense as a protocol grid.
    if (s.model.model == "mlp" && kind != Kind::paper_cifar && kind != Kind::protocol_grid)
      throw UserError("model.model: kind '" + std::string(to_string(kind)) +
                      "' takes residual networks (got 'mlp'; use kind 'protocol-grid')");
  }
  if (root.has("protocols")) {
    s.protocols = strings(root.at("protocols"));
    const std::vector<std::string>& ok = protocol_names();
    for (std::size_t i = 0; i < s.protocols.size(); ++i) root.at("protocols").at(i).choice(ok);
  }
  if (s.protocols.empty()) throw UserError("protocols: must not be empty");
  if (kind == Kind::layer_parallel)
    for (const char* need : {"layer-parallel", "data-parallel", "resist"})
      if (std::find(s.protocols.begin(), s.protocols.end(), need) == s.protocols.end())
        throw UserError(std::string("protocols: this kind compares layer-parallel with data-parallel and ResIST; "
                                    "must contain '") + need + "'");
  if (kind == Kind::what_if || kind == Kind::validate || kind == Kind::validate_grid)
    for (const char* need : {"local-sgd", "resist"})
      if (std::find(s.protocols.begin(), s.protocols.end(), need) == s.protocols.end())
        throw UserError(std::string("protocols: this kind compares ResIST with local SGD; must contain '") + need + "'");
  // "workers" (one per GPU); "machines" is its older name.
  if (root.has("workers") && root.has("machines"))
    root.at("machines").fail("give either workers or machines (its older name), not both");
  if (root.has("workers")) s.machines = root.at("workers").ints(1, 1 << 16);
  if (root.has("machines")) s.machines = root.at("machines").ints(1, 1 << 16);
  if (root.has("local_iters")) s.local_iters = root.at("local_iters").ints(1, 100000);
  if (s.machines.empty()) throw UserError(std::string(root.has("machines") ? "machines" : "workers") + ": must not be empty");
  if (s.local_iters.empty()) throw UserError("local_iters: must not be empty");
  if (kind == Kind::validate) {
    if (s.local_iters.size() != 1) throw UserError("local_iters: validate takes one value");
    for (std::size_t i = 0; i < s.machines.size(); ++i)
      if (s.machines[i] < 2 || s.machines[i] > 8)
        throw UserError(std::string(root.has("machines") ? "machines" : "workers") + "[" + std::to_string(i) +
                        "]: validate runs 2..8 local ranks (got " +
                        std::to_string(s.machines[i]) + ")");
  }
  if (root.has("bandwidths")) {
    s.bandwidths = strings(root.at("bandwidths"));
    for (std::size_t i = 0; i < s.bandwidths.size(); ++i)
      sim::parse_quantity(s.bandwidths[i], sim::Unit::bandwidth, "bandwidths[" + std::to_string(i) + "]");
  }
  if (root.has("batch_size")) s.batch_size = int(root.at("batch_size").integer(1, 1 << 20));
  if (root.has("min_depth")) s.min_depth = int(root.at("min_depth").integer(1, 10000));
  if (root.has("epochs")) s.epochs = int(root.at("epochs").integer(1, 100000));
  if (root.has("train_size")) s.train_size = root.at("train_size").integer(1, std::int64_t(1) << 40);
  if (root.has("sample_rounds")) s.sample_rounds = int(root.at("sample_rounds").integer(1, 10000));
  if (root.has("max_simulated_rounds"))
    s.max_simulated_rounds = int(root.at("max_simulated_rounds").integer(0, 1000000));
  if (root.has("platform")) {
    s.platform = root.at("platform").str();
    if (!s.platform.empty() && fs::path(s.platform).is_relative())
      s.platform = (fs::path(path).parent_path() / s.platform).lexically_normal().string();
  }
  if (root.has("platform_overrides")) s.overrides = strings(root.at("platform_overrides"));
  if (root.has("collectives")) {
    const Reader c = root.at("collectives");
    if (!c.j.is_object()) c.fail("must be an object");
    for (const auto& [key, value] : c.j.items()) {
      const Reader v = c.at(key);
      if (key == "allreduce") s.collectives.allreduce = parse_algorithm(Collective::allreduce, v.str(), v.path);
      else if (key == "reduce") s.collectives.reduce = parse_algorithm(Collective::reduce, v.str(), v.path);
      else if (key == "broadcast") s.collectives.broadcast = parse_algorithm(Collective::broadcast, v.str(), v.path);
      else throw UserError("collectives." + key + ": unknown key (accepted: allreduce, reduce, broadcast)");
    }
  }
  if (root.has("as_run")) s.as_run = sim::as_run_from_json(j.at("as_run"), "as_run");
  if (root.has("measure_here")) s.lp_measure = parse_lp_measure(j.at("measure_here"), "measure_here");
  if (root.has("rounds")) s.rounds = int(root.at("rounds").integer(1, 10000));
  if (root.has("train_subset")) s.train_subset = int(root.at("train_subset").integer(1, 1 << 30));
  if (root.has("test_subset")) s.test_subset = int(root.at("test_subset").integer(0, 1 << 30));
  if (root.has("threads")) s.threads = int(root.at("threads").integer(1, 1024));
  if (root.has("warmup_rounds")) s.warmup_rounds = int(root.at("warmup_rounds").integer(0, 1000));
  if ((kind == Kind::validate || kind == Kind::validate_grid) && s.warmup_rounds >= s.rounds)
    throw UserError("warmup_rounds: must be below rounds (" + std::to_string(s.rounds) + ")");
  if (kind == Kind::convergence) parse_convergence_keys(root, s);
  if (kind == Kind::validate_grid) parse_validate_grid(root, s);
  return s;
}


sim::Platform study_platform(const Study& s, const std::string& bandwidth) {
  auto o = s.overrides;
  if (!bandwidth.empty()) o.push_back("nic.bandwidth=" + bandwidth);
  try {
    return sim::load_platform(s.platform, o);
  } catch (const UserError& e) {
    throw UserError(std::string("platform: ") + e.what());
  }
}

// Everything that can be wrong with a study, checked before anything runs.
void check_study(const Study& s) {
  ModelSpec spec;
  try {
    spec = build_model(s.model);
  } catch (const UserError& e) {
    throw UserError(std::string("model: ") + e.what());
  }
  if (s.kind == Kind::validate_grid) return check_validate_grid(s);
  const int max_m = *std::max_element(s.machines.begin(), s.machines.end());
  if (s.kind != Kind::table1 && s.kind != Kind::validate) {
    std::vector<std::string> bws = s.bandwidths.empty() ? std::vector<std::string>{""} : s.bandwidths;
    for (const auto& bw : bws) {
      const auto p = study_platform(s, bw);
      try {
        sim::check_ranks(p, max_m, "workers");
      } catch (const UserError& e) {
        throw UserError(std::string("workers: ") + e.what());
      }
    }
  }
  std::vector<sim::Platform> platforms;
  if (s.kind != Kind::table1 && s.kind != Kind::validate)
    for (const auto& bw : s.bandwidths.empty() ? std::vector<std::string>{""} : s.bandwidths)
      platforms.push_back(study_platform(s, bw));
  for (const auto& name : s.protocols)
    for (int m : s.machines)
      for (int ell : s.local_iters) try {
          sim::RunOptions o;
          o.schedule = schedule_config(s, parse_protocol(name), m, ell);
          validate(spec, o.schedule);
          // a platform far too slow to simulate is refused here, before any output
          for (const auto& p : platforms) sim::check_scale(spec, p, o);
        } catch (const UserError& e) {
          throw UserError("workers/local_iters/min_depth (" + name + ", " + std::to_string(m) + " workers, ℓ=" +
                          std::to_string(ell) + "): " + e.what());
        }
}

// ---------------------------------------------------------------------------
// Small output helpers

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}
std::string gb(double bytes) { return fmt("%.3f", bytes / 1e9); }
std::string times(double x) { return x > 0 ? fmt("%.2f×", x) : "-"; }
std::string bw_label(double Bps) { return fmt("%g Gbit/s", Bps * 8 / 1e9); }



using tools::Progress;

void write(const std::string& path, const std::string& text) { json_util::write_atomic(path, text, "--out"); }

// Runs analysis/figures.py on a finished study directory.
void figures(const std::string& out, const Paths& paths) {
  const std::string script = paths.analysis_dir + "/figures.py";
  if (!fs::exists(script)) throw UserError("figures: '" + script + "' not found (set RESIST_ANALYSIS_DIR)");
  const std::string cmd = paths.python + " '" + script + "' '" + out + "' >&2";
  const int st = std::system(cmd.c_str());
  if (st != 0)
    throw UserError("figures: '" + cmd + "' failed (exit " + std::to_string(WIFEXITED(st) ? WEXITSTATUS(st) : -1) +
                    "); is python3-matplotlib installed?");
}

std::string figure_md(const std::string& title, const std::string& stem) {
  return "![" + title + "](figures/" + stem + ".png) ([SVG](figures/" + stem + ".svg))\n\n";
}

// ---------------------------------------------------------------------------
// table1: per-round communication, no simulation

Outcome run_table1(const Study& s, const std::string& out) {
  const ModelSpec spec = build_model(s.model);
  std::ostringstream csv;
  csv << "model,protocol,workers,params_per_worker,bytes_per_round,wire_bytes_per_round,busiest_wire_bytes\n";
  Table t{{"protocol", "workers", "params/worker", "bytes/round (GB)", "wire/round (GB)", "busiest sends (GB)",
           "vs local SGD"},
          {}};
  std::map<int, double> local;
  for (int m : s.machines)
    for (const auto& name : s.protocols) {
      // The last round gathers the model at rank 0: not sampled (comm_row).
      const auto row = tools::comm_row(spec, schedule_config(s, parse_protocol(name), m, s.local_iters.front()),
                                       s.sample_rounds);
      const std::uint64_t bytes = row.bytes_per_round, params = row.params_per_worker;
      const double wire = row.wire_bytes_per_round, busiest = row.wire_bytes_per_worker_max;
      if (name == "local-sgd") local[m] = double(bytes);
      char line[256];
      std::snprintf(line, sizeof line, "%s,%s,%d,%llu,%llu,%.0f,%.0f\n", spec.name.c_str(), name.c_str(), m,
                    (unsigned long long)params, (unsigned long long)bytes, wire, busiest);
      csv << line;
      const double ratio = local.count(m) && bytes ? local[m] / double(bytes) : 0;
      t.rows.push_back({name, std::to_string(m), thousands(params), gb(double(bytes)), gb(wire), gb(busiest),
                        name == "local-sgd" ? "1.00×" : (ratio > 0 ? fmt("%.2f× fewer", ratio) : "-")});
    }
  write(out + "/comm.csv", csv.str());
  Outcome o;
  o.tables.push_back({"Per-round communication (" + spec.name + ")", t.md()});
  o.report_md = "Model `" + spec.name + "` (" + thousands(spec.param_count()) + " parameters); ℓ = " +
                std::to_string(s.local_iters.front()) +
                (s.model.model == "mlp" ? std::string() : ", d_min = " + std::to_string(s.min_depth)) + ", seed " +
                std::to_string(s.seed) + ", " +
                std::to_string(s.sample_rounds) + " rounds sampled.\n\n" + t.md() +
                "\n- **bytes/round**: the paper's Table 1 convention: every worker receives its (sub-)model's fp32 "
                "parameters at the start of a round and sends them back at its end; summed over workers.\n"
                "- **wire/round**: what the implemented algorithms put on the wire (ring all-reduce of the shared "
                "layers, chain reduce among a block's holders, hand-off to its next owners), all workers, mean of "
                "the sampled rounds; **busiest sends**: the most one worker sends in a round.\n\n" +
                figure_md("bytes per round vs workers", "bytes_per_round_vs_machines");
  return o;
}

// ---------------------------------------------------------------------------
// Simulated grids: paper-cifar, what-if, scale (the grid itself: tools/grid.hpp)

using SimRow = tools::GridRow;
using tools::GridPoint;
using tools::row_from_json;
using tools::row_json;

// The grid's points, in the order the tables list them: bandwidth, workers,
// protocol, ℓ.
std::vector<GridPoint> grid_points(const Study& s) {
  tools::GridAxes axes;
  axes.bandwidths = s.bandwidths.empty() ? 1 : s.bandwidths.size();
  for (const auto& name : s.protocols) axes.protocols.push_back(parse_protocol(name));
  axes.workers = s.machines;
  axes.local_iters = s.local_iters;
  return tools::grid_points(axes, tools::GridOrder::workers_then_protocols);
}

// Simulates the points `share` (indexes into `points`) here, one after the
// other, naming each on stderr.
std::map<int, SimRow> simulate_share(const Study& s, const std::vector<sim::Platform>& platforms,
                                     const std::vector<GridPoint>& points, const std::vector<int>& share,
                                     const std::string& title) {
  sim::RunOptions base;
  base.schedule = schedule_config(s, Protocol::resist, 1, 1);  // each point sets protocol, workers and ℓ
  base.max_simulated_rounds = s.max_simulated_rounds;
  base.engine.collectives = s.collectives;
  base.as_run = s.as_run;  // "as_run": how the implementation runs the sync (sim/as_run.hpp)
  std::vector<GridPoint> mine;
  for (int i : share) mine.push_back(points[std::size_t(i)]);
  Progress progress(title, int(share.size()));
  auto done = [&](const GridPoint& pt, const sim::RunResult&, const SimRow& r, double host_s) {
    const std::string bw = s.bandwidths.empty() ? "" : " " + s.bandwidths[pt.bw];
    progress.step(r.protocol + " m=" + std::to_string(r.machines) + " ℓ=" + std::to_string(r.ell) + bw +
                  fmt(": %.1f s predicted", r.wall_s) + fmt(" (%.1f s to simulate)", host_s));
  };
  const auto rows = tools::simulate_points(build_model(s.model), platforms, base, mine, done);
  std::map<int, SimRow> by_index;
  for (std::size_t k = 0; k < share.size(); ++k) by_index[share[k]] = rows[k];
  return by_index;
}

// Simulates the points `mine` (indexes into `points`) in s.jobs processes;
// each child writes its rows to a file in `scratch`. Rows are deterministic,
// so the result does not depend on the number of processes.
std::map<int, SimRow> run_points(const Study& s, const std::vector<sim::Platform>& platforms,
                                 const std::vector<GridPoint>& points, const std::vector<int>& mine,
                                 const std::string& scratch) {
  const int jobs = std::max(1, std::min<int>(s.jobs, int(mine.size())));
  if (jobs == 1) return simulate_share(s, platforms, points, mine, s.name);
  std::vector<pid_t> children;
  std::fflush(nullptr);
  for (int j = 0; j < jobs; ++j) {
    const pid_t pid = ::fork();
    if (pid < 0) throw UserError("--jobs: fork failed");
    if (pid > 0) {
      children.push_back(pid);
      continue;
    }
    int code = 0;
    try {
      std::vector<int> share;
      for (std::size_t k = j; k < mine.size(); k += std::size_t(jobs)) share.push_back(mine[k]);
      json out = json::object();
      for (const auto& [i, r] : simulate_share(s, platforms, points, share,
                                               s.name + " job " + std::to_string(j + 1) + "/" + std::to_string(jobs)))
        out[std::to_string(i)] = row_json(r);
      json_util::write_atomic(scratch + "/.rows-job" + std::to_string(j) + ".json", out.dump());
    } catch (const std::exception& e) {
      std::fprintf(stderr, "resist-study: job %d: %s\n", j + 1, e.what());
      code = 1;
    }
    std::fflush(nullptr);
    _exit(code);
  }
  bool failed = false;
  for (pid_t pid : children) {
    int st = 0;
    ::waitpid(pid, &st, 0);
    failed = failed || !WIFEXITED(st) || WEXITSTATUS(st) != 0;
  }
  std::map<int, SimRow> rows;
  for (int j = 0; j < jobs; ++j) {
    const std::string f = scratch + "/.rows-job" + std::to_string(j) + ".json";
    if (!failed) {
      const json part = json_util::read_file(f, "--jobs");
      for (const auto& [k, v] : part.items()) rows[std::stoi(k)] = row_from_json(v);
    }
    fs::remove(f);
  }
  if (failed) throw UserError("--jobs: a simulation process failed (see above)");
  return rows;
}

// merge: every point's row from the shards' files, each point exactly once.
std::map<int, SimRow> merged_rows(const Study& s, int npoints) {
  std::map<int, SimRow> rows;
  for (const auto& f : s.merge_rows) {
    const json shard = json_util::read_file(f, "merge");
    for (const auto& [k, v] : shard.at("rows").items()) {
      const int i = std::stoi(k);
      if (i < 0 || i >= npoints || rows.count(i))
        throw UserError("merge: " + f + ": grid point " + k + " is out of range or in two shards");
      rows[i] = row_from_json(v);
    }
  }
  if (int(rows.size()) != npoints)
    throw UserError("merge: study " + s.name + ": the shards hold " + std::to_string(rows.size()) + " of " +
                    std::to_string(npoints) + " grid points (is a shard missing?)");
  return rows;
}

std::vector<SimRow> simulate_grid(const Study& s, std::vector<sim::Platform>& platforms,
                                  const std::string& out) {
  std::vector<std::string> bws = s.bandwidths.empty() ? std::vector<std::string>{""} : s.bandwidths;
  for (const auto& bw : bws) platforms.push_back(study_platform(s, bw));
  const auto points = grid_points(s);
  std::map<int, SimRow> by_index;
  if (!s.merge_rows.empty()) {
    by_index = merged_rows(s, int(points.size()));
  } else {
    std::vector<int> all(points.size());
    for (std::size_t i = 0; i < all.size(); ++i) all[i] = int(i);
    by_index = run_points(s, platforms, points, all, out);
  }
  std::vector<SimRow> rows;
  for (auto& [i, r] : by_index) rows.push_back(std::move(r));
  tools::add_speedups(rows);
  return rows;
}

void write_rows(const std::string& path, const std::string& model, const std::vector<SimRow>& rows) {
  write(path, tools::grid_csv(model, rows));
}

// One round (round 1: neither the first nor the final gather) per protocol,
// simulated with its timeline, shifted to start at 0: the Gantt chart's data.
void write_gantt(const Study& s, const sim::Platform& platform, int machines, const std::string& path) {
  const ModelSpec spec = build_model(s.model);
  std::ostringstream csv;
  csv << "protocol,worker,kind,op,start_s,end_s,bytes,iters\n";
  for (const auto& name : s.protocols) {
    sim::RunOptions o;
    o.schedule = schedule_config(s, parse_protocol(name), machines, s.local_iters.front());
    o.schedule.rounds = 3;
    o.engine.collectives = s.collectives;
    o.as_run = s.as_run;
    o.timeline = true;
    o.full = true;
    const auto r = sim::simulate_run(spec, platform, o);
    double t0 = 1e300;
    for (const auto& e : r.timeline.events)
      if (e.round == 1) t0 = std::min(t0, e.start_s);
    for (const auto& e : r.timeline.events) {
      if (e.round != 1) continue;
      char line[256];
      std::snprintf(line, sizeof line, "%s,%d,%s,%d,%.9g,%.9g,%llu,%d\n", name.c_str(), e.worker, e.kind.c_str(),
                    e.op, e.start_s - t0, e.end_s - t0, (unsigned long long)e.bytes, e.iters);
      csv << line;
    }
  }
  write(path, csv.str());
}

std::string hours(double s) { return fmt("%.2f", s / 3600); }

// What a grid study trained on, in words: the resolved model name, epochs of
// how many samples ("images" for image data sets), and d_min for ResNets only.
std::string setup_md(const Study& s) {
  const bool mlp = s.model.model == "mlp";
  std::string md = "Model `" + build_model(s.model).name + "`, " + std::to_string(s.epochs) + " epoch(s) of " +
                   thousands(std::uint64_t(s.train_size)) + (mlp ? " samples" : " images") + ", batch " +
                   std::to_string(s.batch_size) + " per worker";
  if (!mlp) md += ", d_min = " + std::to_string(s.min_depth) + " (the fewest partitionable blocks a sub-ResNet keeps)";
  return md + ", seed " + std::to_string(s.seed);
}

bool has_protocol(const Study& s, const char* name) {
  return std::find(s.protocols.begin(), s.protocols.end(), name) != s.protocols.end();
}

// A study with "as_run": the same grid once more with the implementation's
// overheads off, side by side with the as-run times (results-as-designed.csv).
std::string as_run_section(const Study& s, const std::vector<SimRow>& as_run, const std::string& out, Table& t) {
  Study plain = s;
  plain.as_run = sim::AsRun{};
  plain.merge_rows.clear();  // simulated here also after a --shard merge
  std::vector<sim::Platform> platforms;
  const auto designed = simulate_grid(plain, platforms, out);
  write_rows(out + "/results-as-designed.csv", build_model(s.model).name, designed);
  t.head = {"protocol", "workers", "ℓ", "rounds", "as designed (h)", "as run (h)", "overhead per round (s)",
            "vs local SGD, as designed", "vs local SGD, as run"};
  for (std::size_t i = 0; i < as_run.size() && i < designed.size(); ++i) {
    const SimRow &a = as_run[i], &d = designed[i];
    const std::string ell = a.protocol == "data-parallel" ? "-" : std::to_string(a.ell);
    const double per_round = a.rounds ? (a.wall_s - d.wall_s) / a.rounds : 0.0;
    t.rows.push_back({a.protocol, std::to_string(a.machines), ell, std::to_string(a.rounds), hours(d.wall_s),
                      hours(a.wall_s), fmt("%.2f", per_round), times(d.vs_local), times(a.vs_local)});
  }
  const auto& r = s.as_run;
  return "\n**As run vs as designed.** The same grid simulated twice: *as designed* runs the schedule's ops as "
         "resist's runtime does (one call per op); *as run* models the implementation (`as_run`, sim/as_run.hpp): " +
         std::string(to_string(r.granularity)) + " granularity (one call per " + to_string(r.granularity) + ")" +
         (r.blocks_via_root ? ", local SGD's partitionable blocks reduced to rank 0 then broadcast from it" : "") +
         (r.fresh_groups ? ", two process groups created per partitioned block every round" : "") +
         fmt("; launch latency %g s per call", r.launch_s) + fmt(", group set-up %g s", r.setup_s) +
         fmt(" + %g s per rank", r.setup_per_rank_s) + fmt(" + %g s per host beyond the first", r.setup_per_host_s) +
         ". Speedups are for the same number of epochs (" + std::to_string(s.epochs) +
         "), not to an accuracy.\n\n" + t.md() + "\n";
}

Outcome run_paper_cifar(const Study& s, const std::string& out) {
  std::vector<sim::Platform> platforms;
  const auto rows = simulate_grid(s, platforms, out);
  write_rows(out + "/results.csv", build_model(s.model).name, rows);
  write_gantt(s, platforms[0], *std::max_element(s.machines.begin(), s.machines.end()), out + "/gantt.csv");
  // Hours for ResNet runs; seconds when every run is short (the MLPs of IST).
  double longest = 0;
  for (const auto& r : rows) longest = std::max(longest, r.wall_s);
  const bool in_s = longest < 600;  // hours would read 0.00
  const std::string u = in_s ? " (s)" : " (h)";
  auto span = [&](double v) { return in_s ? fmt("%.1f", v) : hours(v); };
  // Speedup columns only for the baselines this study has.
  const bool vs_dp = has_protocol(s, "data-parallel"), vs_local = has_protocol(s, "local-sgd");
  Table t{{"protocol", "workers", "ℓ", "total" + u, "compute" + u, "exposed comm." + u, "bytes/round (GB)"}, {}};
  if (vs_dp) t.head.push_back("speedup vs data-parallel");
  if (vs_local) t.head.push_back("speedup vs local SGD");
  for (const auto& r : rows) {
    t.rows.push_back({r.protocol, std::to_string(r.machines), r.protocol == "data-parallel" ? "-" : std::to_string(r.ell),
                      span(r.wall_s), span(r.compute_s), span(r.exposed_s), gb(double(r.bytes_per_round))});
    if (vs_dp) t.rows.back().push_back(times(r.vs_dp));
    if (vs_local) t.rows.back().push_back(times(r.vs_local));
  }
  const auto& p = platforms[0];
  Outcome o;
  o.tables.push_back({"Simulated training time, " + build_model(s.model).name + ", " + std::to_string(s.epochs) +
                          " epoch(s) (" + p.name + "); speedups for the same epochs, not to an accuracy",
                      t.md()});
  o.report_md = setup_md(s) + ", platform `" + p.name + "` (" + p.description +
                "). Data-parallel all-reduces gradients every iteration (no overlap with backward).\n\n" + t.md() +
                "\n- **total**: predicted wall-clock of the whole run; **compute**: the sum over rounds of the "
                "slowest worker's local iterations; **exposed comm.**: time in rounds beyond compute, i.e. "
                "communication nobody could hide.\n- **speedup**: the other protocol's total divided by this "
                "row's, at the same number of workers (and ℓ for local SGD), for the same number of epochs (not to "
                "an accuracy)." +
                (s.model.model == "mlp"
                     ? std::string(" The IST paper reports, to 77% accuracy, 4.2× (2-layer) and 6.1× (3-layer) over "
                                   "local SGD, 10.6× and 16.6× over data-parallel, on 2–8 cloud machines.\n\n")
                     : std::string(" The ResIST paper measured 3.58–3.81× over local SGD on 4 and 8 V100s.\n\n")) +
                figure_md("speedup vs workers", "speedup_vs_machines") +
                figure_md("compute / communication breakdown", "breakdown") +
                figure_md("one round per protocol, on one time axis", "gantt");
  if (s.as_run.enabled) {
    Table cmp;
    o.report_md += as_run_section(s, rows, out, cmp);
    o.tables.push_back({"As run vs as designed, " + build_model(s.model).name + ", " + std::to_string(s.epochs) +
                            " epoch(s) (" + p.name + "); speedups for the same epochs, not to an accuracy",
                        cmp.md()});
  }
  return o;
}

Outcome run_what_if(const Study& s, const std::string& out) {
  std::vector<sim::Platform> platforms;
  const auto rows = simulate_grid(s, platforms, out);
  write_rows(out + "/results.csv", build_model(s.model).name, rows);
  std::string md = setup_md(s) + ", platform `" + platforms[0].name +
                   "` with its NIC bandwidth set to each value; at most " + std::to_string(s.max_simulated_rounds) +
                   " distinct rounds simulated per run, the rest estimated from them (sim/run.hpp). A cell reads "
                   "`ratio (local SGD s / ResIST s)`: local SGD's time divided by ResIST's, then both times per "
                   "epoch (the whole run divided by its epochs) in seconds.\n\n";
  auto local_of = [&](const SimRow& r) -> const SimRow* {
    for (const auto& q : rows)
      if (q.protocol == "local-sgd" && q.machines == r.machines && q.ell == r.ell && q.bw_Bps == r.bw_Bps) return &q;
    return nullptr;
  };
  auto secs = [](double v) { return v >= 100 ? fmt("%.0f", v) : v >= 10 ? fmt("%.1f", v) : fmt("%.2f", v); };
  // Per bandwidth: the matrix workers × ℓ of ResIST's speedup over local SGD.
  int wins = 0, cells = 0;
  const SimRow* best = nullptr;
  const SimRow* worst = nullptr;
  for (const auto& p : platforms) {
    Table t{{"workers \\ ℓ"}, {}};
    for (int ell : s.local_iters) t.head.push_back(std::to_string(ell));
    t.head.push_back("vs data-parallel (ℓ=" + std::to_string(s.local_iters.back()) + ")");
    for (int m : s.machines) {
      std::vector<std::string> line{std::to_string(m)};
      double last_dp = 0;
      for (int ell : s.local_iters)
        for (const auto& r : rows)
          if (r.protocol == "resist" && r.machines == m && r.ell == ell && r.bw_Bps == p.nic.bandwidth_Bps) {
            const SimRow* l = local_of(r);
            line.push_back(fmt(r.vs_local >= 0.995 && r.vs_local < 1.005 ? "%.3f" : "%.2f", r.vs_local) +
                           (l ? " (" + secs(l->wall_s / l->epochs) + " / " + secs(r.wall_s / r.epochs) + ")" : ""));
            last_dp = r.vs_dp;
            ++cells;
            if (r.vs_local > 1) ++wins;
            if (!best || r.vs_local > best->vs_local) best = &r;
            if (!worst || r.vs_local < worst->vs_local) worst = &r;
          }
      line.push_back(last_dp > 0 ? fmt("%.2f", last_dp) : "-");
      t.rows.push_back(line);
    }
    md += "**" + bw_label(p.nic.bandwidth_Bps) +
          "**: ResIST's speedup over local SGD (same workers, same ℓ, same epochs: not to an accuracy)\n\n" + t.md() +
          "\n";
  }
  // Where it stops winning: per bandwidth, the configurations where ResIST
  // is less than 1.25× faster.
  std::string verdict = fmt("ResIST is faster than local SGD in %.0f", double(wins)) + " of " + std::to_string(cells) +
                        " configurations.";
  if (best)
    verdict += " Largest speedup (same epochs, not to an accuracy) " + fmt("%.2f×", best->vs_local) + " (" + std::to_string(best->machines) +
               " workers, ℓ = " + std::to_string(best->ell) + ", " + bw_label(best->bw_Bps) + "); smallest " +
               fmt("%.2f×", worst->vs_local) + " (" + std::to_string(worst->machines) + " workers, ℓ = " +
               std::to_string(worst->ell) + ", " + bw_label(worst->bw_Bps) + ").";
  std::string gains;
  for (const auto& p : platforms) {
    std::vector<std::string> below;
    for (const auto& r : rows)
      if (r.protocol == "resist" && r.bw_Bps == p.nic.bandwidth_Bps && r.vs_local < 1.25)
        below.push_back("(" + std::to_string(r.machines) + ", ℓ=" + std::to_string(r.ell) + ")");
    gains += "- " + bw_label(p.nic.bandwidth_Bps) + ": speedup below 1.25× at " +
             (below.empty() ? std::string("no configuration") : std::to_string(below.size()) + " of " +
                                                                  std::to_string(s.machines.size() * s.local_iters.size()) + ": ") +
             (below.size() > 12 ? "" : [&] {
               std::string j;
               for (const auto& b : below) j += (j.empty() ? "" : ", ") + b;
               return j;
             }()) +
             "\n";
  }
  md += verdict + "\n\n" + gains +
        "\nReading it: a cell is local SGD's time divided by ResIST's at the same workers, ℓ and bandwidth "
        "(> 1: ResIST wins). ResIST saves twice: each worker trains a shallower sub-ResNet (less compute per "
        "iteration) and synchronises fewer parameters. The communication saving matters most where "
        "communication dominates (small ℓ, slow links); where ℓ is large and links are fast, only the compute "
        "saving is left, and it shrinks once d_min caps how shallow a sub-ResNet gets.\n\n" +
        figure_md("ResIST's speedup over local SGD", "heatmap_speedup") +
        figure_md("time per epoch vs ℓ", "time_vs_local_iters") + figure_md("speedup vs workers", "speedup_vs_machines");
  Outcome o;
  o.report_md = md;
  o.tables.push_back({"What-if (" + build_model(s.model).name + "): " + verdict, ""});
  return o;
}

// The scale report's reading of its own rows: where ResIST stops paying off
// and which part of the time grows.
std::string scale_findings(const Study& s, const std::vector<SimRow>& rows) {
  const SimRow* best = nullptr;
  const SimRow *last_win = nullptr, *first_loss = nullptr;
  std::map<int, const SimRow*> local;
  for (const auto& r : rows)
    if (r.protocol == "local-sgd") local[r.machines] = &r;
  for (const auto& r : rows) {
    if (r.protocol != "resist" || r.vs_local <= 0) continue;
    if (!best || r.vs_local > best->vs_local) best = &r;
    if (r.vs_local >= 1) last_win = &r;
    if (r.vs_local < 1 && !first_loss) first_loss = &r;
  }
  const std::int64_t one_iter = (s.train_size + s.batch_size - 1) / s.batch_size;
  std::string md = "- " + std::to_string(s.epochs) + " epochs of " + std::to_string(s.train_size) +
                   " images: an epoch has ceil(images / (machines × batch)) iterations per worker, one from " +
                   std::to_string(one_iter / 2 + 1) + " machines on. Rounds run across epoch boundaries, so " +
                   "with many machines the whole run is a few rounds of ℓ iterations and both protocols " +
                   "synchronise equally rarely; compute per epoch stops falling once an epoch is one iteration.\n";
  if (best)
    md += "- ResIST's speedup over local SGD (same epochs, not to an accuracy) peaks at " +
          fmt("%.2f×", best->vs_local) + " with " + std::to_string(best->machines) + " machines.";
  if (last_win && first_loss && first_loss->machines > last_win->machines)
    md += " It stops paying off between " + std::to_string(last_win->machines) + " (" +
          fmt("%.2f×", last_win->vs_local) + ") and " + std::to_string(first_loss->machines) + " machines (" +
          fmt("%.2f×", first_loss->vs_local) + ").";
  else if (!first_loss && best)
    md += " It wins at every size in the grid.";
  md += "\n";
  if (first_loss && local.count(first_loss->machines)) {
    const SimRow& r = *first_loss;
    const SimRow& l = *local[r.machines];
    md += "- Where it loses, compute is not the reason (ResIST " + fmt("%.2f", r.compute_s / r.epochs) +
          " s/epoch vs local SGD " + fmt("%.2f", l.compute_s / l.epochs) + "): its exposed communication is " +
          fmt("%.2f", r.exposed_s / r.epochs) + " s/epoch vs " + fmt("%.2f", l.exposed_s / l.epochs) +
          ". Local SGD's one all-reduce per round hardly depends on the number of machines, while each "
          "partitionable block is held by about machines × k / B sub-ResNets, and its reduce and hand-off cost "
          "grows with that number of holders: a chain moves a block that fits in one chunk hop by hop, "
          "(holders − 1)·(α + M/B), so doubling the machines doubles ResIST's exposed communication. Trees "
          "(`\"collectives\": {\"reduce\": \"auto\", \"broadcast\": \"auto\"}`) cut that to log2(holders) hops.\n";
  }
  md += "- **bytes/round** (Table 1 convention) grows linearly with machines for both; **wire/round** is what the "
        "algorithms move.\n";
  return md;
}

Outcome run_scale(const Study& s, const std::string& out) {
  std::vector<sim::Platform> platforms;
  const auto rows = simulate_grid(s, platforms, out);
  write_rows(out + "/results.csv", build_model(s.model).name, rows);
  Table t{{"protocol", "workers", "iters/epoch", "time/epoch (s)", "compute/epoch (s)", "exposed comm./epoch (s)",
           "bytes/round (GB)", "wire/round (GB)", "ResIST speedup vs local SGD (same epochs)"},
          {}};
  for (const auto& r : rows)
    t.rows.push_back({r.protocol, std::to_string(r.machines), std::to_string(r.iters_per_epoch),
                      fmt("%.2f", r.wall_s / r.epochs), fmt("%.2f", r.compute_s / r.epochs),
                      fmt("%.2f", r.exposed_s / r.epochs), gb(double(r.bytes_per_round)),
                      gb(r.rounds ? double(r.wire_total) / r.rounds : 0), r.protocol == "resist" ? times(r.vs_local) : ""});
  Outcome o;
  o.report_md = setup_md(s) + ", ℓ = " + std::to_string(s.local_iters.front()) + ", platform `" +
                platforms[0].name + "` (" + platforms[0].description + "), collectives: all-reduce `" +
                to_string(s.collectives.allreduce) + "`, reduce `" + to_string(s.collectives.reduce) +
                "`, broadcast `" + to_string(s.collectives.broadcast) + "`.\n\n" + t.md() + "\n" +
                scale_findings(s, rows) + "\n" +
                figure_md("bytes per round vs workers", "bytes_per_round_vs_machines") +
                figure_md("time per epoch vs workers", "time_per_epoch_vs_machines");
  return o;
}

// ---------------------------------------------------------------------------
// layer-parallel: K stages on K devices against layer-serial training on one
// device, and against data-parallel and ResIST on the same K devices; ρ(K)
// of REFERENCE.md beside the simulated speedup.

struct LpRow {
  int k = 0;
  double lp_s = 0, dp_s = 0, resist_s = 0, exchange_s = 0, rho = 0, rho_limit = 0;
};

// ρ(K) from the platform's per-block costs, the split's auxiliary heads and
// the simulated exchange time per iteration (T_data = 0: no data loading is simulated).
void add_bound(const ModelSpec& spec, const sim::Platform& platform, int batch, LpRow& row) {
  const int width = ScheduleConfig{}.aux_width;
  const sim::ComputeModel cost(spec, platform, batch, 2.0, std::nullopt);
  const double overhead = cost.iteration_s({}, 0);
  std::vector<double> block_s, aux_s;
  for (int b = 0; b < int(spec.blocks.size()); ++b) block_s.push_back(cost.iteration_s({b}, 0) - overhead);
  for (const auto& st : layer_parallel_stages(spec, row.k, width))
    aux_s.push_back(st.first > 0 ? cost.aux_head_s(aux_head(spec, st.first, width), 0) : 0.0);
  auto t = layer_parallel_times(block_s, aux_s, row.exchange_s, 0.0);
  t.serial_s += overhead;
  row.rho = layer_parallel_rho(t, row.k);
  row.rho_limit = layer_parallel_rho_limit(t);
}

Outcome run_layer_parallel(const Study& s, const std::string& out, const Paths& paths) {
  const ModelSpec spec = build_model(s.model);
  const sim::Platform platform = study_platform(s, "");
  const int ell = s.local_iters.front();
  Progress progress(s.name, 1 + 3 * int(s.machines.size()));
  auto simulate = [&](Protocol p, int machines) {
    sim::RunOptions o;
    o.schedule = schedule_config(s, p, machines, ell);
    o.max_simulated_rounds = s.max_simulated_rounds;
    o.engine.collectives = s.collectives;
    const auto r = sim::simulate_run(spec, platform, o);
    progress.step(std::string(to_string(p)) + " on " + std::to_string(machines));
    return r;
  };
  const double serial_s = simulate(Protocol::data_parallel, 1).wall_clock_s / s.epochs;
  std::vector<LpRow> rows;
  for (int k : s.machines) {
    LpRow row;
    row.k = k;
    const auto lp = simulate(Protocol::layer_parallel, k);
    row.lp_s = lp.wall_clock_s / s.epochs;
    row.exchange_s = lp.rounds ? lp.exposed_communication_s / lp.rounds : 0;
    row.dp_s = simulate(Protocol::data_parallel, k).wall_clock_s / s.epochs;
    row.resist_s = simulate(Protocol::resist, k).wall_clock_s / s.epochs;
    add_bound(spec, platform, s.batch_size, row);
    rows.push_back(row);
  }
  std::ostringstream csv;
  csv << "protocol,workers,time_per_epoch_s\nlayer-serial,1," << fmt("%.9g", serial_s) << "\n";
  std::ostringstream bound;
  bound << "stages,speedup_simulated,rho_bound,rho_limit,exchange_s_per_iteration\n";
  Table t{{"K (devices)", "layer-serial, 1 device (s/epoch)", "layer-parallel (s/epoch)", "data-parallel (s/epoch)",
           "ResIST (s/epoch)", "layer-parallel speedup per epoch (simulated)", "ρ(K) bound", "ρ(∞)"},
          {}};
  for (const auto& r : rows) {
    csv << "layer-parallel," << r.k << ',' << fmt("%.9g", r.lp_s) << "\ndata-parallel," << r.k << ','
        << fmt("%.9g", r.dp_s) << "\nresist," << r.k << ',' << fmt("%.9g", r.resist_s) << '\n';
    bound << r.k << ',' << fmt("%.6g", serial_s / r.lp_s) << ',' << fmt("%.6g", r.rho) << ','
          << fmt("%.6g", r.rho_limit) << ',' << fmt("%.6g", r.exchange_s) << '\n';
    t.rows.push_back({std::to_string(r.k), fmt("%.2f", serial_s), fmt("%.2f", r.lp_s), fmt("%.2f", r.dp_s),
                      fmt("%.2f", r.resist_s), times(serial_s / r.lp_s), times(r.rho), times(r.rho_limit)});
  }
  write(out + "/results.csv", csv.str());
  write(out + "/bound.csv", bound.str());
  Outcome o;
  o.tables.push_back({"Layer-parallel vs layer-serial, data-parallel and ResIST, " + spec.name + " (" +
                          platform.name + ")",
                      t.md()});
  o.report_md =
      "Model `" + spec.name + "`, batch " + std::to_string(s.batch_size) + " per device, " +
      std::to_string(s.train_size) + " images per epoch, ResIST with ℓ = " + std::to_string(ell) + ", platform `" +
      platform.name + "`. Layer-serial: one device trains the whole network. Layer-parallel: K stages on K devices, "
      "one replica (docs/layer-parallel.md); data-parallel and ResIST use the same K devices, batch per device "
      "unchanged, so an epoch is K times fewer iterations for them.\n\n" + t.md() +
      "\n- **ρ(K) bound**: REFERENCE.md's ρ(K) = (T_data + T_fwd + T_bwd) / (T_data + t_aux + t_extra + "
      "(T_fwd + T_bwd)/K) from the same per-block costs: T_data = 0 (no data loading is simulated), t_aux the "
      "split's largest auxiliary head, t_extra the simulated exposed exchange per iteration. It assumes equal "
      "stages; the simulated speedup is below it by the split's imbalance. **ρ(∞)**: its limit in K.\n\n" +
      figure_md("time per epoch", "time_per_epoch_vs_machines");
  if (s.lp_measure.enabled) o.report_md += measure_layer_parallel_here(s.lp_measure, s.seed, out, paths);
  return o;
}

}  // namespace

ScheduleConfig schedule_config(const Study& s, Protocol p, int machines, int ell) {
  ScheduleConfig c;
  c.protocol = p;
  c.model = s.model;
  c.workers = machines;
  c.local_iters = ell;
  c.min_depth = s.min_depth;
  c.seed = s.seed;
  c.batch_size = s.batch_size;
  c.epochs = s.epochs;
  c.train_size = s.train_size;
  return c;
}

Study read_study(const std::string& path) {
  try {
    const json j = json_util::read_file(path, "study");
    Study s = parse_study(j, path);
    check_study(s);
    return s;
  } catch (const UserError& e) {
    const std::string msg = e.what();
    if (msg.rfind(path, 0) == 0 || msg.rfind("study", 0) == 0) throw;
    throw UserError(path + ": " + msg);
  }
}

Outcome run_validate(const Study& s, const std::string& out, const Paths& paths);       // validate.cpp
Outcome run_validate_grid(const Study& s, const std::string& out, const Paths& paths);  // validate_grid.cpp

bool runtime_available(const Paths& paths) {
  return fs::exists(paths.runtime_dir + "/resist-train") && fs::exists(paths.runtime_dir + "/resist-launch");
}

bool needs_runtime(Kind k) { return k == Kind::validate || k == Kind::convergence || k == Kind::validate_grid; }

bool is_grid(Kind k) { return k == Kind::paper_cifar || k == Kind::what_if || k == Kind::scale; }

namespace {

// --shard K/N: this shard's grid points only, as grid-rows.json; the report
// comes from `resist-study merge`.
void write_shard(const Study& s, const std::string& out) {
  std::vector<sim::Platform> platforms;
  for (const auto& bw : s.bandwidths.empty() ? std::vector<std::string>{""} : s.bandwidths)
    platforms.push_back(study_platform(s, bw));
  const auto points = grid_points(s);
  std::vector<int> mine;
  for (int i = 0; i < int(points.size()); ++i)
    if (i % s.shards == s.shard) mine.push_back(i);
  json rows = json::object();
  for (const auto& [i, r] : run_points(s, platforms, points, mine, out)) rows[std::to_string(i)] = row_json(r);
  write(out + "/grid-rows.json", json{{"format", "resist-study-shard"}, {"version", 1}, {"study", s.name},
                                      {"shard", s.shard + 1}, {"shards", s.shards},
                                      {"points", points.size()}, {"rows", rows}}.dump(1) + "\n");
}

}  // namespace

Outcome run_study(const Study& s, const std::string& out, const Paths& paths) {
  std::error_code ec;
  fs::create_directories(out + "/figures", ec);
  if (ec) throw UserError("--out: cannot create directory '" + out + "' (" + ec.message() + ")");
  if (s.shards > 1) {
    Outcome o;
    o.name = s.name;
    o.skipped = true;
    if (is_grid(s.kind)) {
      std::fprintf(stderr, "study %s: shard %d/%d\n", s.name.c_str(), s.shard + 1, s.shards);
      write_shard(s, out);
    }
    return o;
  }
  const auto t0 = std::chrono::steady_clock::now();
  std::fprintf(stderr, "study %s (%s): starting\n", s.name.c_str(), to_string(s.kind));
  Outcome o;
  switch (s.kind) {
    case Kind::table1: o = run_table1(s, out); break;
    case Kind::paper_cifar:
    case Kind::protocol_grid: o = run_paper_cifar(s, out); break;
    case Kind::what_if: o = run_what_if(s, out); break;
    case Kind::scale: o = run_scale(s, out); break;
    case Kind::validate: o = run_validate(s, out, paths); break;
    case Kind::layer_parallel: o = run_layer_parallel(s, out, paths); break;
    case Kind::convergence: o = run_convergence(s, out, paths); break;
    case Kind::validate_grid: o = run_validate_grid(s, out, paths); break;
  }
  o.name = s.name;
  json meta = {{"format", "resist-study-result"}, {"version", 1}, {"name", s.name}, {"kind", to_string(s.kind)},
               {"model", build_model(s.model).name}, {"study_file", s.path}, {"seed", s.seed},
               {"skipped", o.skipped}};
  write(out + "/study.json", meta.dump(2) + "\n");
  if (!o.skipped) figures(out, paths);
  std::string report = "## " + s.name + " (`" + std::string(to_string(s.kind)) + "`)\n\n";
  if (!s.description.empty()) report += s.description + "\n\n";
  report += "Study file `" + s.path + "`, seed " + std::to_string(s.seed) + ".\n\n" + o.report_md;
  o.report_md = report;
  write(out + "/report.md", "# resist study report\n\n" + report);
  std::fprintf(stderr, "study %s: done in %.1f s\n", s.name.c_str(),
               std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  return o;
}

}  // namespace resist::study
