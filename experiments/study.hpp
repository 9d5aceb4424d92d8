#pragma once
// What-if studies: one JSON file ({"format": "resist-study", "version": 1},
// see docs/studies.md) names a kind of study and its grid; `run_study`
// simulates it in-process (sim/run.hpp) or, for `validate`, runs the LibTorch
// runtime and the simulator side by side, then writes CSV/JSON results, a
// report.md with the tables and, through analysis/figures.py (matplotlib),
// the figures as PNG and SVG.
#include <cstdint>
#include <string>
#include <vector>

#include "experiments/lp_measure.hpp"
#include "models/spec.hpp"
#include "schedule/collectives.hpp"
#include "schedule/schedule.hpp"
#include "sim/as_run.hpp"

namespace resist::study {

// protocol_grid runs like paper_cifar (a protocols × workers × ℓ grid with
// speedups, a breakdown and one round's Gantt chart) for any model, e.g. the
// IST paper's speech MLPs; paper_cifar is that grid with the ResIST paper's set-up.
// layer_parallel: K stages vs layer-serial, data-parallel and ResIST (docs/layer-parallel.md).
// convergence: real runs' test accuracy against the simulator's wall-clock (experiments/convergence.hpp).
// validate_grid: `validate` over a grid of held-out runs (validate_grid.cpp).
enum class Kind { table1, paper_cifar, what_if, scale, validate, protocol_grid, layer_parallel, convergence,
                  validate_grid };
const char* to_string(Kind k);

struct Study {
  std::string path;  // the JSON file, for messages
  Kind kind = Kind::table1;
  std::string name, description;
  std::uint64_t seed = 1;
  ModelOptions model;
  std::string platform;                 // file (relative to the study file), "" = embedded default
  std::vector<std::string> overrides;   // "nic.latency=10us", ...
  std::vector<std::string> protocols;   // protocol names
  std::vector<int> machines, local_iters;
  std::vector<std::string> bandwidths;  // inter-node (NIC) bandwidths, e.g. "10Gbps"; empty: the platform's
  int epochs = 160, batch_size = 128, min_depth = 4;
  std::int64_t train_size = 50000;
  int sample_rounds = 10;         // table1: rounds averaged for the wire figures
  int max_simulated_rounds = 64;  // simulator fast path: distinct rounds simulated per run
  CollectiveOptions collectives;  // "collectives": {"allreduce": "auto", ...} (simulated kinds)
  // paper-cifar / protocol-grid: "as_run": how the implementation runs the
  // sync ops (sim/as_run.hpp); the report then compares with and without.
  sim::AsRun as_run;
  // layer-parallel: "measure_here", K = 2 vs layer-serial measured on this
  // machine beside the simulator's prediction (experiments/lp_measure.hpp).
  LpMeasure lp_measure;
  // validate only
  int rounds = 0;                 // training rounds to measure
  int train_subset = 0, test_subset = 0, threads = 1, warmup_rounds = 1;
  // convergence only (also train_subset, test_subset, threads): seeds seed ..
  // seed + seeds - 1, test accuracy evaluated about evals_per_epoch times per
  // epoch, targets in percent.
  int seeds = 2, evals_per_epoch = 2;
  std::vector<double> target_accuracies;
  // validate-grid only: measured runs per configuration, and IST's model (an MLP)
  int repeats = 1;
  ModelOptions ist_model;

  // How a run is spread (resist-study run --jobs / --shard, resist-study
  // merge); set by the command line, not by the file. Simulated grids
  // (paper-cifar, what-if, scale) only.
  int jobs = 1;                         // processes simulating the grid's points
  int shard = 0, shards = 1;            // this process runs points i with i % shards == shard
  std::vector<std::string> merge_rows;  // merge: the shards' grid-rows.json instead of simulating
};

// Whether a kind is a simulated grid (the kinds --jobs and --shard spread).
bool is_grid(Kind k);

// Reads and checks a study file. Every error is one UserError line naming the
// file and the JSON path.
Study read_study(const std::string& path);

struct Paths {
  std::string analysis_dir;  // holds figures.py
  std::string python = "/usr/bin/python3";
  std::string runtime_dir;   // holds resist-train and resist-launch (validate)
};

// Headline tables (markdown) a caller may print on stdout.
struct Outcome {
  std::string name;
  std::vector<std::pair<std::string, std::string>> tables;  // title, markdown
  std::string report_md;  // the study's section of the report
  bool skipped = false;
};

// Runs the study into `out` (created). Progress goes to stderr.
Outcome run_study(const Study& s, const std::string& out, const Paths& paths);

// The schedule of one grid point of a study (simulated studies).
ScheduleConfig schedule_config(const Study& s, Protocol p, int machines, int ell);

// Whether `validate` can run here (the runtime's programs exist).
bool runtime_available(const Paths& paths);
// Whether a kind runs the LibTorch runtime (validate, convergence).
bool needs_runtime(Kind k);

}  // namespace resist::study
