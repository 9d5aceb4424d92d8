#pragma once
// The trainer: one worker process walking a Schedule (schedule/schedule.hpp)
// with real LibTorch training. No LibTorch in this header.
#include <cstdint>
#include <string>
#include <vector>

#include "schedule/collectives.hpp"
#include "schedule/schedule.hpp"
#include "schedule/timeline.hpp"

namespace resist::runtime {

struct TrainOptions {
  ScheduleConfig schedule;    // protocol, model, seed, batch size, epochs/rounds, ℓ, d_min, eval cadence
  std::string schedule_file;  // if set, the schedule is read from here instead
  std::string data_dir;       // empty: the dataset's default location
  std::int64_t train_subset = 0, test_subset = 0;
  // Data loading (runtime/loader.hpp): decoder threads, batches built ahead,
  // image folders: header check up front, bad images skipped instead of fatal.
  int loader_threads = -1, prefetch = 4;  // loader_threads -1: auto (Trainer::setup)
  bool check_images = true, skip_bad_images = false;

  double lr = 0.1, momentum = 0.9, weight_decay = 5e-4;
  std::string lr_schedule = "step";     // step (÷10 at 50% and 75%) | cosine
  std::string optimizer_state = "auto"; // reset every round | keep | auto (resist: reset, others: keep)
  int eval_batch = 256;

  std::string out;      // output directory (metrics.jsonl, report.json, timeline.json, model.pt)
  TraceRounds trace;    // rounds timeline.json keeps (all with --trace-all)
  std::string resume;   // a previous --out directory with checkpoints
  int checkpoint_every = 0;  // rounds; 0: never
  std::string profile;  // write a per-block time profile here and exit

  double timeout_s = 300;  // communication / rendezvous timeout
  int threads = 0;         // intra-op threads; 0: cores / local workers
  std::string device = "cpu";
  std::string backend = "auto";  // gloo | nccl | auto
  // Gloo: the all-reduce / reduce / broadcast algorithms and chain chunk
  // (schedule/collectives.hpp); node size = LOCAL_WORLD_SIZE.
  CollectiveOptions collectives;
  bool check_sync = false;       // hash every shared copy after every sync
  bool quiet = false;

  // Fault injection (tests): at round fail_round, rank fail_rank either
  // kills itself mid-round ("kill"), produces a NaN loss ("nan") or throws
  // a local exception ("error").
  int fail_round = -1, fail_rank = 0;
  std::string fail_mode;

  std::vector<std::string> argv;  // the command line, for report.json
  double bucket_mb = 4;  // data-parallel: gradient buckets all-reduced during backward (0: after it)

  // Layer-parallel: weight β of the stage penalty (docs/layer-parallel.md).
  double lp_beta = 1.0;
  double lp_aux_step = 5.0;  // layer-parallel: the head target's step along the stage's input gradient
};

// Returns the process exit code. Throws UserError for bad input.
int train(const TrainOptions& options);
int profile(const TrainOptions& options);

// A worker's threads, intra-op and the BLAS's own pool alike: `requested`
// (--threads) if > 0, else the machine's cores shared among the
// `local_workers` ranks on it (OpenBLAS would otherwise take every core).
// Sets both; returns the number.
int set_worker_threads(int requested, int local_workers);

}  // namespace resist::runtime
