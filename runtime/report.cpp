#include "runtime/report.hpp"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <sstream>
#include <vector>

#include <nlohmann/json.hpp>

#include "runtime/inference.hpp"
#include "schedule/json_util.hpp"

namespace resist::runtime {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

// The node a worker runs on, for grouping the timeline by node.
std::string host_name() {
  char buf[256] = {0};
  if (::gethostname(buf, sizeof buf - 1) != 0 || !buf[0]) return "localhost";
  return buf;
}

std::uint64_t peak_rss_bytes() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return std::uint64_t(u.ru_maxrss) * 1024;
}

std::string format_eta(double s) {
  const long t = long(std::max(0.0, s) + 0.5);
  char buf[32];
  if (t >= 3600) std::snprintf(buf, sizeof buf, "%ldh%02ldm", t / 3600, t / 60 % 60);
  else std::snprintf(buf, sizeof buf, "%ldm%02lds", t / 60, t % 60);
  return buf;
}

}  // namespace

void RunReport::open_metrics(int start_round) {
  first_round_ = start_round;
  if (opt_.out.empty() || ctx_.rank != 0) return;
  // On resume keep the metrics of the rounds already done.
  std::vector<std::string> kept;
  if (start_round > 0) {
    std::ifstream in(fs::path(opt_.resume) / "metrics.jsonl");
    for (std::string line; std::getline(in, line);) {  // a damaged line (a killed run's last) is dropped
      const json j = json::parse(line, nullptr, false);
      if (j.is_object() && j.contains("round") && j["round"].is_number_integer() &&
          j["round"].get<std::int64_t>() < start_round)
        kept.push_back(line);
    }
  }
  metrics_.open(fs::path(opt_.out) / "metrics.jsonl", std::ios::trunc);
  for (const auto& l : kept) metrics_ << l << "\n";
  metrics_.flush();
}

RunReport::~RunReport() {
  bool busy = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
    busy = busy_;
  }
  cv_.notify_all();
  if (!gatherer_.joinable()) return;
  // Only when leaving on an error: a look-up may wait for a rank that is gone.
  if (busy) gatherer_.detach();
  else gatherer_.join();
}

void RunReport::round_done(int r, int N, const RoundStats& st, std::uint64_t round_bytes, double round_s,
                           double acc, double lr) {
  // Control plane, not counted as wire bytes.
  // This rank's compute and communication time in the round, from its timeline.
  double compute_s = 0, comm_s = 0;
  for (auto e = ctx_.timeline.events.rbegin(); e != ctx_.timeline.events.rend() && e->round >= r; ++e) {
    if (e->round != r || e->worker != ctx_.rank) continue;
    if (e->is_comm()) comm_s += e->end_s - e->start_s;
    else if (e->kind == "compute" || e->kind == "optimizer") compute_s += e->end_s - e->start_s;
  }
  const json mine = {{"loss", st.loss_sum}, {"iters", st.iters}, {"correct", st.correct}, {"seen", st.seen},
                     {"bytes", round_bytes}, {"round_s", round_s}, {"compute_s", compute_s}, {"comm_s", comm_s}};
  ctx_.kv->set("metrics/" + std::to_string(r) + "/" + std::to_string(ctx_.rank), mine.dump());
  if (ctx_.rank != 0) return;
  std::lock_guard<std::mutex> lock(mu_);
  if (error_) std::rethrow_exception(error_);
  if (!gatherer_.joinable()) {
    auto kv = ctx_.kv->connect_again();
    gatherer_ = std::thread([this, kv = kv ? kv : ctx_.kv] { gather_loop(kv); });
  }
  queue_.push_back({r, N, ctx_.now(), round_s, acc, lr, st.epoch});
  cv_.notify_all();
}

void RunReport::drain() {
  if (ctx_.rank != 0) return;
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return queue_.empty() || error_; });
  if (error_) std::rethrow_exception(error_);
}

void RunReport::gather_loop(std::shared_ptr<KeyValue> kv) {
  for (;;) {
    Finished f;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
      if (stop_) return;  // (finish() drained the queue; else the run is ending on an error)
      f = queue_.front();
      busy_ = true;
    }
    try {
      write_round(*kv, f);
    } catch (...) {
      std::lock_guard<std::mutex> lock(mu_);
      error_ = std::current_exception();
      busy_ = false;
      cv_.notify_all();
      return;
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      queue_.pop_front();
      busy_ = false;
    }
    cv_.notify_all();
  }
}

// Rank 0: the round's line from every rank's statistics.
void RunReport::write_round(KeyValue& kv, const Finished& f) {
  const int r = f.round;
  double loss = 0;
  std::int64_t iters = 0, correct = 0, seen = 0;
  std::uint64_t bytes = 0;
  double compute_max = 0, comm_max = 0;  // the slowest rank's
  for (int w = 0; w < ctx_.world; ++w) {
    const auto m = json::parse(kv.get("metrics/" + std::to_string(r) + "/" + std::to_string(w)));
    compute_max = std::max(compute_max, m["compute_s"].get<double>());
    comm_max = std::max(comm_max, m["comm_s"].get<double>());
    loss += m["loss"].get<double>();
    iters += m["iters"].get<std::int64_t>();
    correct += m["correct"].get<std::int64_t>();
    seen += m["seen"].get<std::int64_t>();
    bytes += m["bytes"].get<std::uint64_t>();
  }
  json line = {{"round", r}, {"loss", iters ? loss / double(iters) : 0.0},
               {"train_accuracy", seen ? double(correct) / double(seen) : 0.0},
               {"wall_s", f.wall_s}, {"round_s", f.round_s}, {"bytes_sent", bytes}, {"lr", f.lr},
               {"epoch", f.epoch}, {"images_per_s", double(seen) / std::max(f.round_s, 1e-9)},
               {"compute_s", compute_max}, {"comm_s", comm_max}};
  if (f.test_acc >= 0) line["test_accuracy"] = f.test_acc;
  if (metrics_.is_open()) metrics_ << line.dump() << "\n" << std::flush;
  progress(r, f.num_rounds, line["loss"].get<double>(), line["train_accuracy"].get<double>(), f.test_acc,
           double(seen) / double(ctx_.world) / std::max(f.round_s, 1e-9));
}

// The progress display: a bar redrawn in place on a terminal, else a line
// per round (every 1% of the rounds for long runs, and every evaluation).
void RunReport::progress(int r, int N, double loss, double train_acc, double acc, double img_per_s) {
  const bool tty = isatty(2);
  const bool print = !opt_.quiet && (tty || N <= 200 || (r + 1) % std::max(1, N / 100) == 0 || acc >= 0);
  if (!print) return;
  std::ostringstream msg;
  // The round's index as in metrics.jsonl, timeline.json and schedule.json
  // (0-based), then how many of the N rounds are done, and the time left.
  const double eta = seconds_since(ctx_.t0) / double(std::max(1, r + 1 - first_round_)) * double(N - r - 1);
  msg << "round " << r << " [" << (r + 1) << "/" << N << ", ETA " << format_eta(eta) << "]  loss " << std::fixed
      << std::setprecision(4) << loss
      << "  train acc " << std::setprecision(3) << train_acc;
  if (acc >= 0) msg << "  test acc " << std::setprecision(4) << acc;
  msg << "  " << std::setprecision(0) << img_per_s << " img/s/worker";
  if (tty) {
    const int width = 24, filled = int(double(width) * (r + 1) / N);
    std::cerr << "\r[" << std::string(std::size_t(filled), '#') << std::string(std::size_t(width - filled), ' ')
              << "] " << msg.str() << "\033[K" << (r + 1 == N ? "\n" : "") << std::flush;
  } else {
    std::cerr << msg.str() << "\n";
  }
}

// The final model, assembled at rank 0 by the last round's sync: a
// state_dict {name: tensor} Python's torch.load reads, of the inference
// model (branch scales folded in). Returns the hash of the trained values.
std::uint64_t RunReport::write_model(const ModelSpec& spec, const std::map<int, torch::Tensor>& trained,
                                     const std::vector<double>& eval_scale) {
  std::uint64_t model_hash = kFnvOffset;
  for (int b = 0; b < int(spec.blocks.size()); ++b) model_hash = (model_hash ^ hash_tensor(trained.at(b))) * kFnvPrime;
  const auto values = fold_branch_scales(spec, eval_scale, trained);
  c10::Dict<std::string, torch::Tensor> sd;
  for (int b = 0; b < int(spec.blocks.size()); ++b) {
    const auto& flat = values.at(b);
    std::int64_t off = 0;
    for (const auto& p : spec.blocks[std::size_t(b)].params) {
      const std::int64_t n = std::int64_t(p.numel());
      sd.insert(p.name, flat.slice(0, off, off + n).view(p.shape).to(torch::kCPU).clone());
      off += n;
    }
  }
  const fs::path out(opt_.out);
  const auto bytes = torch::pickle_save(sd);
  std::ofstream f((out / "model.pt.tmp").string(), std::ios::binary);
  f.write(bytes.data(), std::streamsize(bytes.size()));
  f.close();
  fs::rename(out / "model.pt.tmp", out / "model.pt");
  return model_hash;
}

void RunReport::finish(const ModelSpec& spec, const std::map<int, torch::Tensor>& model, const RunSummary& s,
                       const SyncStats& sync) {
  drain();
  const int S = ctx_.world;
  const json mine = {{"peak_memory_bytes", peak_rss_bytes()},
                     {"bytes_sent", ctx_.bytes_offset + ctx_.comm->bytes_sent()},
                     {"host", host_name()},
                     {"local_rank", std::getenv("LOCAL_RANK") ? std::getenv("LOCAL_RANK") : "0"},
                     {"skipped_images", ctx_.skipped_images},
                     {"timeline", to_json(ctx_.timeline)["traceEvents"]}};
  ctx_.kv->set("final/" + std::to_string(ctx_.rank), mine.dump());
  if (ctx_.rank != 0 || opt_.out.empty()) {
    ctx_.kv->barrier("end", ctx_.rank, S);
    return;
  }
  json peak = json::array(), sent = json::array();
  std::uint64_t total = 0;
  std::int64_t skipped = 0;
  Timeline all;
  all.source = "runtime";
  all.workers = S;
  all.rounds = s.rounds;
  all.traced_rounds = opt_.trace.kept(s.rounds);
  std::map<std::string, int> node_index;  // one Perfetto process per host
  for (int w = 0; w < S; ++w) {
    const auto m = json::parse(ctx_.kv->get("final/" + std::to_string(w)));
    const std::string host = m["host"].get<std::string>();
    if (!node_index.count(host)) {
      node_index[host] = int(all.node_names.size());
      all.node_names.push_back(host);
    }
    all.node_of.push_back(node_index[host]);
    all.worker_labels.push_back("rank " + std::to_string(w) + " (local rank " + m["local_rank"].get<std::string>() + ")");
    peak.push_back(m["peak_memory_bytes"]);
    sent.push_back(m["bytes_sent"]);
    total += m["bytes_sent"].get<std::uint64_t>();
    skipped += m["skipped_images"].get<std::int64_t>();
    json tl = {{"format", "resist-timeline"}, {"version", 1}, {"source", "runtime"}, {"workers", S},
               {"traceEvents", m["timeline"]}};
    for (auto& e : timeline_from_json(tl).events)
      if (e.worker == w && opt_.trace.keep(e.round, s.rounds)) all.events.push_back(e);
  }
  write_timeline_file(all, (fs::path(opt_.out) / "timeline.json").string());
  const std::uint64_t model_hash = write_model(spec, model, s.eval_scale);
  json report = {{"format", "resist-report"}, {"version", 1}, {"protocol", s.protocol}, {"model", s.model},
                 {"workers", S}, {"backend", s.backend}, {"device", s.device}, {"threads", s.threads},
                 {"rounds", s.rounds}, {"local_iters", s.local_iters}, {"batch_size", s.batch_size},
                 {"train_images", s.train_images}, {"test_images", s.test_images},
                 {"test_accuracy", s.test_accuracy}, {"wall_clock_s", s.wall_clock_s},
                 {"bytes_sent_total", total}, {"bytes_sent_per_worker", sent}, {"peak_memory_bytes", peak},
                 {"model_hash", std::to_string(model_hash)}, {"eval_batch", s.eval_batch},
                 {"data_dir", s.data_dir},
                 {"model_pt", {{"eval_scale", "folded"},
                               {"note", "inference model: every partitioned residual branch's eval_scale "
                                        "(schedule.json) is folded into its last convolution"}}},
                 {"run", s.run}};
  if (opt_.check_sync) report["sync_check"] = {{"rounds", sync.rounds}, {"copies_compared", sync.copies}};
  if (opt_.skip_bad_images) report["skipped_images"] = skipped;
  json_util::write_atomic((fs::path(opt_.out) / "report.json").string(), report.dump(2) + "\n");
  ctx_.kv->barrier("end", ctx_.rank, S);
  if (!opt_.quiet)
    std::cerr << "resist-train: test accuracy " << s.test_accuracy << ", " << s.wall_clock_s << " s, " << total
              << " bytes sent; results in " << opt_.out << std::endl;
}

}  // namespace resist::runtime
