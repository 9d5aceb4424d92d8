#pragma once
// What a run writes: metrics.jsonl (one line per round, gathered at rank 0
// through the control-plane store), the progress display, and at the end
// report.json, timeline.json and model.pt.
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>
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
  double epoch = 0;  // epochs of training done by the end of the round
};

// What the final report states besides the context's numbers.
struct RunSummary {
  std::string protocol, model, backend, device;
  int threads = 0, rounds = 0, local_iters = 0, batch_size = 0;
  std::int64_t train_images = 0, test_images = 0;
  double test_accuracy = -1, wall_clock_s = 0;
  int eval_batch = 0;
  std::string data_dir;
  nlohmann::json run;  // run_record.hpp: everything needed to repeat the run
  std::vector<double> eval_scale;  // folded into model.pt (runtime/inference.hpp)
};

// Rank 0 gathers the other ranks' statistics of a round on a thread of its
// own (runtime/report.cpp), over its own connection to the store, while the
// training thread goes on with the next round: each of those look-ups is a
// round trip whose wake-ups wait for a core when the ranks share them (on 4
// ranks over 2 cores the training thread lost ~15 ms per round to them).
class RunReport {
 public:
  RunReport(const TrainOptions& options, RunContext& ctx) : opt_(options), ctx_(ctx) {}
  ~RunReport();
  // Rank 0: opens metrics.jsonl, keeping a resumed run's earlier rounds.
  void open_metrics(int start_round);
  int first_round() const { return first_round_; }
  // Every rank, after round r: publishes the round's statistics; rank 0's
  // gatherer writes the metrics line (wall_s: when rank 0 finished the
  // round) and the progress display.
  void round_done(int r, int num_rounds, const RoundStats& stats, std::uint64_t bytes, double round_s,
                  double test_acc, double lr);
  // Rank 0: returns once every finished round's line is written (before a
  // checkpoint, and at the end); rethrows the gatherer's failure.
  void drain();
  // Every rank, at the end: gathers timelines and byte counts at rank 0,
  // which writes timeline.json, model.pt (the assembled `model`) and report.json.
  void finish(const ModelSpec& spec, const std::map<int, torch::Tensor>& model, const RunSummary& summary,
              const SyncStats& sync);

 private:
  void progress(int r, int num_rounds, double loss, double train_acc, double test_acc, double img_per_s);
  std::uint64_t write_model(const ModelSpec& spec, const std::map<int, torch::Tensor>& model,
                            const std::vector<double>& eval_scale);

  struct Finished {  // a round as rank 0 finished it
    int round = 0, num_rounds = 0;
    double wall_s = 0, round_s = 0, test_acc = -1, lr = 0, epoch = 0;
  };
  void gather_loop(std::shared_ptr<KeyValue> kv);
  void write_round(KeyValue& kv, const Finished& f);

  const TrainOptions& opt_;
  RunContext& ctx_;
  std::ofstream metrics_;
  int first_round_ = 0;
  // Rank 0's gatherer: rounds finished and not yet written, oldest first.
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Finished> queue_;
  bool stop_ = false, busy_ = false;
  std::exception_ptr error_;
  std::thread gatherer_;
};

}  // namespace resist::runtime
