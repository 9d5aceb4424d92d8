#pragma once
// What a run writes: metrics.jsonl (one line per round, gathered at rank 0
// through the control-plane store), the progress display, and at the end
// report.json, timeline.json and model.pt.
#include <cstdint>
#include <fstream>
#include <map>
#include <string>

#include <torch/torch.h>

#include "models/spec.hpp"
#include "runtime/context.hpp"
#include "runtime/param_store.hpp"
#include "runtime/trainer.hpp"

namespace resist::runtime {

// One rank's training statistics of one round.
struct RoundStats {
  double loss_sum = 0;
  std::int64_t correct = 0, seen = 0, iters = 0;
};

// What the final report states besides the context's numbers.
struct RunSummary {
  std::string protocol, model, backend, device;
  int threads = 0, rounds = 0, local_iters = 0, batch_size = 0;
  std::int64_t train_images = 0, test_images = 0;
  double test_accuracy = -1, wall_clock_s = 0;
};

class RunReport {
 public:
  RunReport(const TrainOptions& options, RunContext& ctx) : opt_(options), ctx_(ctx) {}
  // Rank 0: opens metrics.jsonl, keeping a resumed run's earlier rounds.
  void open_metrics(int start_round);
  // Every rank, after round r: gathers the round's statistics at rank 0,
  // which writes the metrics line and the progress display.
  void round_done(int r, int num_rounds, const RoundStats& stats, std::uint64_t bytes, double round_s,
                  double test_acc, double lr);
  // Every rank, at the end: gathers timelines and byte counts at rank 0,
  // which writes timeline.json, model.pt (the assembled `model`) and report.json.
  void finish(const ModelSpec& spec, const std::map<int, torch::Tensor>& model, const RunSummary& summary,
              const SyncStats& sync);

 private:
  void progress(int r, int num_rounds, double loss, double train_acc, double test_acc, double img_per_s);
  std::uint64_t write_model(const ModelSpec& spec, const std::map<int, torch::Tensor>& model);

  const TrainOptions& opt_;
  RunContext& ctx_;
  std::ofstream metrics_;
};

}  // namespace resist::runtime
