#include "runtime/report.hpp"

#include <sys/resource.h>
#include <unistd.h>

#include <filesystem>
#include <iomanip>
#include <iostream>
#include <sstream>
#include <vector>

#include <nlohmann/json.hpp>

#include "schedule/json_util.hpp"

namespace resist::runtime {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

std::uint64_t peak_rss_bytes() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return std::uint64_t(u.ru_maxrss) * 1024;
}

}  // namespace

void RunReport::open_metrics(int start_round) {
  if (opt_.out.empty() || ctx_.rank != 0) return;
  // On resume keep the metrics of the rounds already done.
  std::vector<std::string> kept;
  if (start_round > 0) {
    std::ifstream in(fs::path(opt_.resume) / "metrics.jsonl");
    for (std::string line; std::getline(in, line);)
      if (!line.empty() && json::parse(line).value("round", 1 << 30) < start_round) kept.push_back(line);
  }
  metrics_.open(fs::path(opt_.out) / "metrics.jsonl", std::ios::trunc);
  for (const auto& l : kept) metrics_ << l << "\n";
  metrics_.flush();
}

void RunReport::round_done(int r, int N, const RoundStats& st, std::uint64_t round_bytes, double round_s,
                           double acc, double lr) {
  // Control plane, not counted as wire bytes.
  const json mine = {{"loss", st.loss_sum}, {"iters", st.iters}, {"correct", st.correct}, {"seen", st.seen},
                     {"bytes", round_bytes}, {"round_s", round_s}};
  ctx_.kv->set("metrics/" + std::to_string(r) + "/" + std::to_string(ctx_.rank), mine.dump());
  if (ctx_.rank != 0) return;
  double loss = 0;
  std::int64_t iters = 0, correct = 0, seen = 0;
  std::uint64_t bytes = 0;
  for (int w = 0; w < ctx_.world; ++w) {
    const auto m = json::parse(ctx_.kv->get("metrics/" + std::to_string(r) + "/" + std::to_string(w)));
    loss += m["loss"].get<double>();
    iters += m["iters"].get<std::int64_t>();
    correct += m["correct"].get<std::int64_t>();
    seen += m["seen"].get<std::int64_t>();
    bytes += m["bytes"].get<std::uint64_t>();
  }
  json line = {{"round", r}, {"loss", iters ? loss / double(iters) : 0.0},
               {"train_accuracy", seen ? double(correct) / double(seen) : 0.0},
               {"wall_s", ctx_.now()}, {"round_s", round_s}, {"bytes_sent", bytes}, {"lr", lr}};
  if (acc >= 0) line["test_accuracy"] = acc;
  if (metrics_.is_open()) metrics_ << line.dump() << "\n" << std::flush;
  progress(r, N, line["loss"].get<double>(), line["train_accuracy"].get<double>(), acc,
           double(seen) / double(ctx_.world) / std::max(round_s, 1e-9));
}

// The progress display: a bar redrawn in place on a terminal, else a line
// per round (every 1% of the rounds for long runs, and every evaluation).
void RunReport::progress(int r, int N, double loss, double train_acc, double acc, double img_per_s) {
  const bool tty = isatty(2);
  const bool print = !opt_.quiet && (tty || N <= 200 || (r + 1) % std::max(1, N / 100) == 0 || acc >= 0);
  if (!print) return;
  std::ostringstream msg;
  msg << "round " << (r + 1) << "/" << N << "  loss " << std::fixed << std::setprecision(4) << loss
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
// state_dict {name: tensor} Python's torch.load reads. Returns its hash.
std::uint64_t RunReport::write_model(const ModelSpec& spec, const std::map<int, torch::Tensor>& values) {
  std::uint64_t model_hash = kFnvOffset;
  c10::Dict<std::string, torch::Tensor> sd;
  for (int b = 0; b < int(spec.blocks.size()); ++b) {
    const auto& flat = values.at(b);
    model_hash = (model_hash ^ hash_tensor(flat)) * kFnvPrime;
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
  const int S = ctx_.world;
  const json mine = {{"peak_memory_bytes", peak_rss_bytes()},
                     {"bytes_sent", ctx_.bytes_offset + ctx_.comm->bytes_sent()},
                     {"timeline", to_json(ctx_.timeline)["traceEvents"]}};
  ctx_.kv->set("final/" + std::to_string(ctx_.rank), mine.dump());
  if (ctx_.rank != 0 || opt_.out.empty()) {
    ctx_.kv->barrier("end", ctx_.rank, S);
    return;
  }
  json peak = json::array(), sent = json::array();
  std::uint64_t total = 0;
  Timeline all;
  all.source = "runtime";
  all.workers = S;
  for (int w = 0; w < S; ++w) {
    const auto m = json::parse(ctx_.kv->get("final/" + std::to_string(w)));
    peak.push_back(m["peak_memory_bytes"]);
    sent.push_back(m["bytes_sent"]);
    total += m["bytes_sent"].get<std::uint64_t>();
    json tl = {{"format", "resist-timeline"}, {"version", 1}, {"source", "runtime"}, {"workers", S},
               {"traceEvents", m["timeline"]}};
    for (auto& e : timeline_from_json(tl).events)
      if (e.worker == w) all.events.push_back(e);
  }
  write_timeline_file(all, (fs::path(opt_.out) / "timeline.json").string());
  const std::uint64_t model_hash = write_model(spec, model);
  json report = {{"format", "resist-report"}, {"version", 1}, {"protocol", s.protocol}, {"model", s.model},
                 {"workers", S}, {"backend", s.backend}, {"device", s.device}, {"threads", s.threads},
                 {"rounds", s.rounds}, {"local_iters", s.local_iters}, {"batch_size", s.batch_size},
                 {"train_images", s.train_images}, {"test_images", s.test_images},
                 {"test_accuracy", s.test_accuracy}, {"wall_clock_s", s.wall_clock_s},
                 {"bytes_sent_total", total}, {"bytes_sent_per_worker", sent}, {"peak_memory_bytes", peak},
                 {"model_hash", std::to_string(model_hash)}};
  if (opt_.check_sync) report["sync_check"] = {{"rounds", sync.rounds}, {"copies_compared", sync.copies}};
  json_util::write_atomic((fs::path(opt_.out) / "report.json").string(), report.dump(2) + "\n");
  ctx_.kv->barrier("end", ctx_.rank, S);
  if (!opt_.quiet)
    std::cerr << "resist-train: test accuracy " << s.test_accuracy << ", " << s.wall_clock_s << " s, " << total
              << " bytes sent; results in " << opt_.out << std::endl;
}

}  // namespace resist::runtime
