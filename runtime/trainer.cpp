// The worker's loop: for every round of the schedule, materialise this
// worker's (sub-)model, train it for the round's local iterations, then carry
// out the round's synchronisation ops in order. Parameters live between
// rounds as one flat fp32 tensor per block (`held_`), keyed by spec block
// index; they move between workers by block, in the spec's parameter order.
#include "runtime/trainer.hpp"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <map>
#include <numeric>
#include <set>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "models/error.hpp"
#include "models/torch_model.hpp"
#include "runtime/comm.hpp"
#include "runtime/data.hpp"
#include "runtime/dist.hpp"
#include "schedule/accounting.hpp"
#include "schedule/ist.hpp"
#include "schedule/json_util.hpp"
#include "schedule/rng.hpp"
#include "schedule/timeline.hpp"
#include "schedule/profile.hpp"
#if RESIST_HAVE_NCCL
#include "runtime/nccl_comm.hpp"
#endif

namespace resist::runtime {

namespace fs = std::filesystem;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

std::uint64_t peak_rss_bytes() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return std::uint64_t(u.ru_maxrss) * 1024;
}

// FNV-1a over a tensor's bytes: what ranks exchange to prove identical copies.
std::uint64_t hash_tensor(const torch::Tensor& t) {
  auto c = t.to(torch::kCPU).contiguous();
  const auto* p = static_cast<const unsigned char*>(c.data_ptr());
  std::uint64_t h = 1469598103934665603ull;
  for (std::size_t i = 0, n = c.numel() * c.element_size(); i < n; ++i) h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

// Where a worker's round of training data comes from: every epoch a seeded
// permutation of the training set is cut into S disjoint shards; worker w
// walks shard w in batches.
class Sampler {
 public:
  Sampler(std::int64_t n, int workers, int batch, int iters_per_epoch, std::uint64_t seed)
      : n_(n), S_(workers), B_(batch), ipe_(iters_per_epoch), seed_(seed) {}
  std::vector<std::int64_t> batch(int worker, std::int64_t iter) {
    const std::int64_t epoch = iter / ipe_, j = iter % ipe_;
    if (epoch != epoch_) {
      perm_.resize(std::size_t(n_));
      std::iota(perm_.begin(), perm_.end(), 0);
      Rng rng(seed_ ^ 0x5eed0da7aull, std::uint64_t(epoch));
      rng.shuffle(perm_);
      epoch_ = epoch;
    }
    const std::int64_t lo = n_ * worker / S_, hi = n_ * (worker + 1) / S_, len = hi - lo;
    std::vector<std::int64_t> out;
    for (std::int64_t k = j * B_; k < (j + 1) * B_ && k < std::max<std::int64_t>(len, 1) + j * B_; ++k) {
      if (k >= len && !out.empty()) break;
      out.push_back(perm_[std::size_t(lo + k % len)]);
    }
    return out;
  }

 private:
  std::int64_t n_;
  int S_, B_, ipe_;
  std::uint64_t seed_;
  std::int64_t epoch_ = -1;
  std::vector<std::int64_t> perm_;
};

// A schedule either generated from flags or read from a file.
class ScheduleSource {
 public:
  ScheduleSource(const ModelSpec& spec, const ScheduleConfig& c) : gen_(std::make_unique<ScheduleGenerator>(spec, c)) {
    header_ = gen_->header();
    rounds_ = gen_->num_rounds();
  }
  explicit ScheduleSource(Schedule s) : file_(std::move(s)) {
    header_ = file_;
    header_.rounds.clear();
    rounds_ = int(file_.rounds.size());
  }
  const Schedule& header() const { return header_; }
  int num_rounds() const { return rounds_; }
  Round round(int r) const { return gen_ ? gen_->round(r) : file_.rounds.at(std::size_t(r)); }
  // The partitionable blocks `rank` holds in round r; after the last round
  // rank 0 holds everything (the final model is assembled there).
  std::vector<int> holding(const ModelSpec& spec, int r, int rank) const {
    if (r < rounds_) return round(r).workers.at(std::size_t(rank)).blocks;
    return final_holding(spec, header_, rank);
  }

 private:
  std::unique_ptr<ScheduleGenerator> gen_;
  Schedule file_, header_;
  int rounds_ = 0;
};

struct RoundStats {
  double loss_sum = 0;
  std::int64_t correct = 0, seen = 0, iters = 0;
};

[[noreturn]] void die(int rank, const std::string& msg) {
  std::cerr << "resist-train: rank " << rank << ": " << msg << std::endl;
  std::fflush(nullptr);
  // Communication threads of a broken process group may block destructors.
  std::_Exit(1);
}

class Trainer {
 public:
  explicit Trainer(const TrainOptions& o) : opt_(o) {}
  int run();

 private:
  // --- set-up
  void setup();
  // --- one round
  void build_net(const std::vector<int>& blocks);
  void train_round(const Round& round, RoundStats& stats);
  void sync(const Round& round, bool eval_round);
  void execute(const CommOp& op, int op_index, int round, std::map<int, torch::Tensor>& values);
  std::map<int, torch::Tensor> collect_params() const;
  // --- results
  double evaluate(const std::map<int, torch::Tensor>& values);
  void check_copies(int round);
  void write_checkpoint(int next_round);
  int load_checkpoint();
  void finish(double wall_s, double test_acc);
  double lr_at(std::int64_t iter) const;
  bool is_eval_round(const Round& round) const;
  // --- IST (schedule/ist.hpp, docs/ist.md): every rank stores full-shape
  // tensors of which only the elements of its layout (held / trained sets)
  // are meaningful; subnets are sliced out of them and written back.
  void ist_setup();
  void ist_build_net(const Round& round);
  void ist_write_back();
  void ist_sync(const Round& round);
  void ist_execute(const CommOp& op, int op_index, int round);
  torch::Tensor ist_indices(const IstPiece& piece, int block, int param) const;
  std::uint64_t ist_hash(const IstSet& set) const;  // additive hash of this rank's values of `set`
  std::uint64_t ist_layout_hash(int round, bool after) const;
  void ist_check(int round, bool eval_round);
  std::map<int, torch::Tensor> ist_values() const;  // every block, flat: rank 0's assembled model

  TrainOptions opt_;
  Env env_;
  int rank_ = 0, S_ = 1;
  std::shared_ptr<KeyValue> kv_;
  std::unique_ptr<Communicator> comm_;
  ModelSpec spec_;
  std::unique_ptr<ScheduleSource> sched_;
  Data data_;
  std::unique_ptr<Sampler> sampler_;
  torch::Device device_{torch::kCPU};

  Net net_{nullptr};
  std::vector<int> net_blocks_;
  std::unique_ptr<torch::optim::SGD> optim_;
  bool keep_optimizer_ = false;
  std::map<int, torch::Tensor> held_;  // block -> flat fp32 parameters, between rounds
  std::map<int, torch::Tensor> full_;  // rank 0 on eval rounds: every block after the sync
  std::unique_ptr<IstPlan> ist_;
  std::vector<std::vector<torch::Tensor>> store_;  // IST: [block][param], full shape
  std::vector<std::vector<std::uint64_t>> param_offset_;  // IST: element offset of [block][param] in the model
  std::vector<IstSlice> slices_;                   // IST: this round's slices, spec order
  std::uint64_t ist_pre_hash_ = 0;

  Timeline timeline_;
  Clock::time_point t0_;
  double wall_offset_s_ = 0;          // wall time of the run before a resume
  std::uint64_t bytes_offset_ = 0;    // bytes sent before a resume
  std::int64_t images_ = 0;
  int sync_checked_rounds_ = 0;
  std::uint64_t sync_compared_copies_ = 0;
  double last_test_acc_ = -1;
  std::ofstream metrics_;
};

double Trainer::lr_at(std::int64_t t) const {
  const double T = double(std::max<std::int64_t>(1, sched_->header().total_iters));
  if (opt_.lr_schedule == "cosine") return opt_.lr * 0.5 * (1 + std::cos(M_PI * double(t) / T));
  double lr = opt_.lr;
  if (double(t) >= 0.5 * T) lr *= 0.1;
  if (double(t) >= 0.75 * T) lr *= 0.1;
  return lr;
}

void Trainer::setup() {
  env_ = read_env();
  rank_ = env_.rank;
  S_ = env_.world_size;
  if (opt_.lr_schedule != "step" && opt_.lr_schedule != "cosine")
    throw UserError("--lr-schedule: unknown value '" + opt_.lr_schedule + "' (accepted: step, cosine)");
  if (opt_.optimizer_state != "auto" && opt_.optimizer_state != "reset" && opt_.optimizer_state != "keep")
    throw UserError("--optimizer-state: unknown value '" + opt_.optimizer_state + "' (accepted: auto, reset, keep)");
  if (opt_.device != "cpu" && opt_.device != "cuda")
    throw UserError("--device: unknown value '" + opt_.device + "' (accepted: cpu, cuda)");
  if (opt_.device == "cuda") {
    if (!torch::cuda::is_available()) throw UserError("--device cuda: this LibTorch build has no usable CUDA device");
    device_ = torch::Device(torch::kCUDA, env_.local_rank % int(torch::cuda::device_count()));
  }
  const int threads = opt_.threads > 0 ? opt_.threads
                                       : std::max(1, int(std::thread::hardware_concurrency()) / env_.local_world_size);
  torch::set_num_threads(threads);

  // The schedule: from a file, or generated from the flags with the actual
  // training-set size and the world size.
  auto& c = opt_.schedule;
  if (!opt_.schedule_file.empty()) {
    Schedule s = read_schedule_file(opt_.schedule_file);
    if (s.config.workers != S_)
      throw UserError("--schedule: " + opt_.schedule_file + " is for " + std::to_string(s.config.workers) +
                      " workers, but WORLD_SIZE is " + std::to_string(S_));
    c = s.config;
    spec_ = build_model(c.model);
    sched_ = std::make_unique<ScheduleSource>(std::move(s));
  }
  spec_ = build_model(c.model);
  if (c.protocol == Protocol::ist) {
    validate_ist(spec_, S_);
    if (opt_.checkpoint_every > 0 || !opt_.resume.empty())
      throw UserError("--protocol ist: --checkpoint-every and --resume are not supported for IST");
    if (opt_.optimizer_state == "keep")
      throw UserError("--optimizer-state keep: not for IST (every round trains a different subnet)");
  }
  data_ = load_data(c.model.dataset, opt_.data_dir, opt_.train_subset, opt_.test_subset);
  if (!sched_) {
    c.workers = S_;
    c.train_size = data_.train.size();
    sched_ = std::make_unique<ScheduleSource>(spec_, c);
  }
  const auto& h = sched_->header();
  keep_optimizer_ = opt_.optimizer_state == "keep" ||
                    (opt_.optimizer_state == "auto" && c.protocol != Protocol::resist && c.protocol != Protocol::ist);
  if (keep_optimizer_ && c.protocol == Protocol::resist)
    throw UserError("--optimizer-state keep: only for local-sgd and data-parallel (ResIST re-creates it every round, "
                    "as the authors do)");
  sampler_ = std::make_unique<Sampler>(data_.train.size(), S_, c.batch_size, h.iters_per_epoch, c.seed);

  const auto timeout = std::chrono::milliseconds(std::int64_t(opt_.timeout_s * 1000));
  kv_ = connect_store(env_, timeout);
  std::string backend = opt_.backend;
  if (backend == "auto") backend = device_.is_cuda() ? "nccl" : "gloo";
  if (backend == "gloo") {
    comm_ = make_gloo_communicator(env_, kv_, timeout);
  } else if (backend == "nccl") {
#if RESIST_HAVE_NCCL
    if (!device_.is_cuda()) throw UserError("--backend nccl: needs --device cuda");
    comm_ = make_nccl_communicator(env_, kv_, device_.index(), nullptr);
#else
    throw UserError("--backend nccl: this build has no NCCL (needs CUDA and libnccl at configure time)");
#endif
  } else {
    throw UserError("--backend: unknown value '" + backend + "' (accepted: auto, gloo, nccl)");
  }
  timeline_.source = "runtime";
  timeline_.workers = S_;
}

void Trainer::build_net(const std::vector<int>& blocks) {
  // Keep the modules when the set of blocks does not change (local SGD, DP).
  if (net_ && blocks == net_blocks_) {
    torch::NoGradGuard ng;
    for (int b : blocks) {
      auto params = net_->block_parameters(b);
      auto& flat = held_.at(b);
      std::int64_t off = 0;
      for (auto& p : params) {
        p.copy_(flat.slice(0, off, off + p.numel()).view(p.sizes()));
        off += p.numel();
      }
    }
    return;
  }
  net_ = Net(spec_, blocks, sched_->header().config.seed);
  net_->to(device_);
  net_blocks_ = blocks;
  torch::NoGradGuard ng;
  for (int b : blocks) {
    auto it = held_.find(b);
    if (it == held_.end()) continue;  // first round: the block's seeded initial weights
    std::int64_t off = 0;
    for (auto& p : net_->block_parameters(b)) {
      p.copy_(it->second.slice(0, off, off + p.numel()).view(p.sizes()));
      off += p.numel();
    }
  }
  optim_.reset();
}

std::map<int, torch::Tensor> Trainer::collect_params() const {
  std::map<int, torch::Tensor> out;
  torch::NoGradGuard ng;
  for (int b : net_blocks_) {
    std::vector<torch::Tensor> flat;
    for (auto& p : net_->block_parameters(b)) flat.push_back(p.detach().reshape({-1}));
    out[b] = torch::cat(flat).clone();
  }
  return out;
}

void Trainer::train_round(const Round& round, RoundStats& stats) {
  const auto& c = sched_->header().config;
  if (!optim_ || !keep_optimizer_)
    optim_ = std::make_unique<torch::optim::SGD>(
        net_->parameters(),
        torch::optim::SGDOptions(opt_.lr).momentum(opt_.momentum).weight_decay(opt_.weight_decay));
  net_->train();
  const std::int64_t first_iter = std::int64_t(round.index) * c.local_iters;
  const double start = seconds_since(t0_) + wall_offset_s_;
  for (int it = 0; it < round.local_iters; ++it) {
    const std::int64_t t = first_iter + it;
    if (round.index == opt_.fail_round && rank_ == opt_.fail_rank && opt_.fail_mode == "kill" &&
        it == round.local_iters / 2) {
      std::cerr << "resist-train: rank " << rank_ << ": killing myself at round " << round.index
                << " (--fail-mode kill)" << std::endl;
      std::raise(SIGKILL);
    }
    for (auto& g : optim_->param_groups()) static_cast<torch::optim::SGDOptions&>(g.options()).lr(lr_at(t));
    Rng aug(c.seed ^ 0xa06a06ull, std::uint64_t(t) * std::uint64_t(S_) + std::uint64_t(rank_));
    const auto index = sampler_->batch(rank_, t);
    auto x = make_batch(data_, data_.train, index, data_.augment, aug).to(device_);
    auto idx = torch::from_blob(const_cast<std::int64_t*>(index.data()), {std::int64_t(index.size())}, torch::kInt64);
    auto y = data_.train.labels.index_select(0, idx).to(device_);
    optim_->zero_grad();
    auto logits = net_->forward(x);
    auto loss = torch::nn::functional::cross_entropy(logits, y);
    if (round.index == opt_.fail_round && rank_ == opt_.fail_rank && opt_.fail_mode == "nan")
      loss = loss * std::nan("");
    const double loss_v = loss.item<double>();
    if (!std::isfinite(loss_v)) {
      std::ostringstream m;
      m << "loss is " << loss_v << " at round " << round.index << ", iteration " << t << "; stopping";
      if (opt_.checkpoint_every > 0 && !opt_.out.empty())
        m << " (the last good checkpoint in " << opt_.out << "/checkpoints is intact)";
      die(rank_, m.str());
    }
    loss.backward();
    stats.loss_sum += loss_v;
    stats.correct += logits.argmax(1).eq(y).sum().item<std::int64_t>();
    stats.seen += std::int64_t(index.size());
    stats.iters += 1;
    images_ += std::int64_t(index.size());

    // Data-parallel: the round's only op all-reduces the gradients (one
    // bucket) between backward and the optimizer step.
    for (std::size_t k = 0; k < round.sync.size(); ++k) {
      const auto& op = round.sync[k];
      if (op.payload != Payload::gradients) continue;
      const double t_compute = seconds_since(t0_) + wall_offset_s_;
      timeline_.events.push_back({rank_, round.index, "compute", -1, start, t_compute, 0, 1});
      std::map<int, torch::Tensor> grads;
      for (int b : op.blocks) {
        std::vector<torch::Tensor> flat;
        for (auto& p : net_->block_parameters(b)) flat.push_back(p.grad().reshape({-1}));
        grads[b] = torch::cat(flat);
      }
      execute(op, int(k), round.index, grads);
      torch::NoGradGuard ng;
      for (int b : op.blocks) {
        std::int64_t off = 0;
        for (auto& p : net_->block_parameters(b)) {
          p.mutable_grad().copy_(grads[b].slice(0, off, off + p.numel()).view(p.sizes()));
          off += p.numel();
        }
      }
      const double t_opt = seconds_since(t0_) + wall_offset_s_;
      optim_->step();
      timeline_.events.push_back({rank_, round.index, "optimizer", -1, t_opt, seconds_since(t0_) + wall_offset_s_, 0, 0});
      goto stepped;
    }
    optim_->step();
  stepped:;
  }
  if (sched_->header().config.protocol != Protocol::data_parallel)
    timeline_.events.push_back(
        {rank_, round.index, "compute", -1, start, seconds_since(t0_) + wall_offset_s_, 0, round.local_iters});
}

// One op on this rank: flatten the op's blocks into one bucket, run the
// algorithm, scatter the result back into `values`.
void Trainer::execute(const CommOp& op, int op_index, int round, std::map<int, torch::Tensor>& values) {
  const double start = seconds_since(t0_) + wall_offset_s_;
  const std::uint64_t before = comm_->bytes_sent();
  const std::int64_t count = std::int64_t(op.bytes / 4);
  const int me = rank_;
  const bool source = op.root() == me;
  const bool has_input = op.kind == OpKind::allreduce || op.kind == OpKind::reduce || source;
  const bool on_gloo = std::string(comm_->backend()) == "gloo";
  torch::Tensor bucket;
  if (has_input) {
    std::vector<torch::Tensor> parts;
    for (int b : op.blocks) parts.push_back(values.at(b));
    bucket = torch::cat(parts);
    if (on_gloo) bucket = bucket.to(torch::kCPU);
  } else {
    bucket = torch::empty({count}, torch::TensorOptions(torch::kFloat32).device(on_gloo ? torch::kCPU : device_));
  }
  assert(bucket.numel() == count);
  run_op(*comm_, op, bucket.data_ptr<float>(), std::size_t(count));
  // Who has a valid copy afterwards: everyone but the non-root reducers.
  const bool valid = op.kind != OpKind::reduce || source;
  std::int64_t off = 0;
  for (int b : op.blocks) {
    const std::int64_t n = std::int64_t(spec_.blocks[std::size_t(b)].param_count);
    if (valid)
      values[b] = bucket.slice(0, off, off + n).to(device_).clone();
    else
      values.erase(b);
    off += n;
  }
  std::string kind = to_string(op.kind);
  if (op.kind == OpKind::send && !source) kind = "recv";
  timeline_.events.push_back(
      {me, round, kind, op_index, start, seconds_since(t0_) + wall_offset_s_, comm_->bytes_sent() - before, 0});
}

bool Trainer::is_eval_round(const Round& round) const {
  const auto& c = sched_->header().config;
  if (round.index + 1 == sched_->num_rounds()) return true;
  if (c.protocol == Protocol::resist)
    return std::any_of(round.sync.begin(), round.sync.end(), [](const CommOp& o) { return o.payload == Payload::eval; }) ||
           (c.eval_every > 0 && (round.index + 1) % c.eval_every == 0);
  return c.eval_every > 0 && (round.index + 1) % c.eval_every == 0;
}

void Trainer::sync(const Round& round, bool eval_round) {
  // `after`: every block this rank has a valid value of once the ops ran.
  std::map<int, torch::Tensor> after = collect_params();
  for (std::size_t k = 0; k < round.sync.size(); ++k) {
    const auto& op = round.sync[k];
    comm_->prepare(op.ranks);
    if (op.payload == Payload::gradients || !op.involves(rank_)) continue;
    execute(op, int(k), round.index, after);
  }
  // Keep what this rank trains next round; rank 0 keeps everything for an evaluation.
  const auto& shared = sched_->header().shared_blocks;
  std::set<int> next(shared.begin(), shared.end());
  for (int b : sched_->holding(spec_, round.index + 1, rank_)) next.insert(b);
  held_.clear();
  for (int b : next) {
    auto it = after.find(b);
    if (it == after.end())
      throw std::logic_error("schedule left rank " + std::to_string(rank_) + " without block " + std::to_string(b));
    held_[b] = it->second;
  }
  full_.clear();
  if (eval_round && rank_ == 0) full_ = std::move(after);
}

double Trainer::evaluate(const std::map<int, torch::Tensor>& values) {
  std::vector<int> all(spec_.blocks.size());
  std::iota(all.begin(), all.end(), 0);
  Net full(spec_, all, 0);
  full->to(device_);
  full->set_branch_scales(sched_->header().eval_scale);
  torch::NoGradGuard ng;
  for (int b : all) {
    std::int64_t off = 0;
    const auto& flat = values.at(b);
    for (auto& p : full->block_parameters(b)) {
      p.copy_(flat.slice(0, off, off + p.numel()).view(p.sizes()));
      off += p.numel();
    }
  }
  full->eval();
  std::int64_t correct = 0;
  const std::int64_t n = data_.test.size();
  Rng unused(0, 0);
  for (std::int64_t lo = 0; lo < n; lo += opt_.eval_batch) {
    std::vector<std::int64_t> index;
    for (std::int64_t i = lo; i < std::min(n, lo + opt_.eval_batch); ++i) index.push_back(i);
    auto x = make_batch(data_, data_.test, index, false, unused).to(device_);
    auto y = data_.test.labels.slice(0, lo, lo + std::int64_t(index.size())).to(device_);
    correct += full->forward(x).argmax(1).eq(y).sum().item<std::int64_t>();
  }
  return n ? double(correct) / double(n) : 0.0;
}

// Every rank publishes a hash per block it holds; rank 0 compares the copies.
void Trainer::check_copies(int round) {
  std::ostringstream s;
  for (const auto& [b, t] : held_) s << b << ' ' << hash_tensor(t) << ' ';
  const std::string prefix = "hash/" + std::to_string(round) + "/";
  kv_->set(prefix + std::to_string(rank_), s.str());
  if (rank_ != 0) return;
  std::map<int, std::pair<std::uint64_t, int>> first;  // block -> (hash, rank)
  for (int r = 0; r < S_; ++r) {
    std::istringstream in(kv_->get(prefix + std::to_string(r)));
    int b;
    std::uint64_t h;
    while (in >> b >> h) {
      auto [it, inserted] = first.try_emplace(b, h, r);
      if (inserted) continue;
      ++sync_compared_copies_;
      if (it->second.first != h)
        die(0, "after the sync of round " + std::to_string(round) + " ranks " + std::to_string(it->second.second) +
                   " and " + std::to_string(r) + " hold different copies of block " + spec_.blocks[std::size_t(b)].name);
    }
  }
  ++sync_checked_rounds_;
}

// Checkpoint layout: DIR/checkpoints/round-R/rank-K.pt (+ optim-K.pt), then
// DIR/checkpoints/latest.json names R once every rank has written its files.
void Trainer::write_checkpoint(int next_round) {
  const fs::path root = fs::path(opt_.out) / "checkpoints";
  const fs::path dir = root / ("round-" + std::to_string(next_round));
  fs::create_directories(dir);
  c10::Dict<std::string, torch::Tensor> d;
  for (const auto& [b, t] : held_) d.insert(std::to_string(b), t.to(torch::kCPU));
  d.insert("meta", torch::tensor({double(next_round), wall_offset_s_ + seconds_since(t0_),
                                  double(bytes_offset_ + comm_->bytes_sent()), double(images_)},
                                 torch::kFloat64));
  const auto bytes = torch::pickle_save(d);
  const fs::path file = dir / ("rank-" + std::to_string(rank_) + ".pt");
  {
    std::ofstream out(file.string() + ".tmp", std::ios::binary);
    out.write(bytes.data(), std::streamsize(bytes.size()));
    if (!out) throw UserError("--out: cannot write " + file.string());
  }
  fs::rename(file.string() + ".tmp", file);
  if (keep_optimizer_ && optim_) {
    const fs::path of = dir / ("optim-" + std::to_string(rank_) + ".pt");
    torch::save(*optim_, of.string() + ".tmp");
    fs::rename(of.string() + ".tmp", of);
  }
  kv_->barrier("ckpt-" + std::to_string(next_round), rank_, S_);
  if (rank_ == 0) {
    json_util::write_atomic((root / "latest.json").string(),
                            json{{"format", "resist-checkpoint"}, {"version", 1}, {"round", next_round},
                                 {"workers", S_}, {"dir", dir.filename().string()}}
                                    .dump() + "\n");
    for (const auto& e : fs::directory_iterator(root))
      if (e.is_directory() && e.path() != dir) fs::remove_all(e.path());
  }
}

int Trainer::load_checkpoint() {
  const fs::path root = fs::path(opt_.resume) / "checkpoints";
  const auto j = json_util::read_file((root / "latest.json").string(), "--resume");
  const json_util::Reader r{j, ""};
  json_util::expect_format(r, "resist-checkpoint", 1);
  if (r.at("workers").integer(1, 1 << 20) != S_)
    throw UserError("--resume: the checkpoint is for " + std::to_string(r.at("workers").integer(1, 1 << 20)) +
                    " workers, WORLD_SIZE is " + std::to_string(S_));
  const int next = int(r.at("round").integer(0, json_util::kMaxInt));
  const fs::path dir = root / r.at("dir").str();
  const fs::path file = dir / ("rank-" + std::to_string(rank_) + ".pt");
  std::ifstream in(file, std::ios::binary);
  if (!in) throw UserError("--resume: missing checkpoint file " + file.string());
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const auto d = torch::pickle_load(bytes).toGenericDict();
  held_.clear();
  for (const auto& kv : d) {
    const auto key = kv.key().toStringRef();
    if (key == "meta") {
      const auto m = kv.value().toTensor();
      wall_offset_s_ = m[1].item<double>();
      bytes_offset_ = std::uint64_t(m[2].item<double>());
      images_ = std::int64_t(m[3].item<double>());
    } else {
      held_[std::stoi(key)] = kv.value().toTensor().to(device_);
    }
  }
  if (keep_optimizer_) {
    std::vector<int> blocks;
    for (const auto& [b, t] : held_) blocks.push_back(b);
    build_net(blocks);
    optim_ = std::make_unique<torch::optim::SGD>(
        net_->parameters(), torch::optim::SGDOptions(opt_.lr).momentum(opt_.momentum).weight_decay(opt_.weight_decay));
    const fs::path of = dir / ("optim-" + std::to_string(rank_) + ".pt");
    if (fs::exists(of)) torch::load(*optim_, of.string());
  }
  return next;
}

int Trainer::run() {
  setup();
  const int N = sched_->num_rounds();
  const auto& header = sched_->header();
  int start_round = 0;
  if (!opt_.resume.empty()) start_round = load_checkpoint();
  if (header.config.protocol == Protocol::ist) ist_setup();
  if (!opt_.out.empty() && rank_ == 0) {
    fs::create_directories(opt_.out);
    write_schedule_file([&] {
      Schedule s = header;
      for (int r = 0; r < N; ++r) s.rounds.push_back(sched_->round(r));
      return s;
    }(), (fs::path(opt_.out) / "schedule.json").string());
    // On resume keep the metrics of the rounds already done.
    std::vector<std::string> kept;
    const auto mpath = fs::path(opt_.out) / "metrics.jsonl";
    if (start_round > 0) {
      const fs::path old = fs::path(opt_.resume) / "metrics.jsonl";
      std::ifstream in(old);
      for (std::string line; std::getline(in, line);)
        if (!line.empty() && json::parse(line).value("round", 1 << 30) < start_round) kept.push_back(line);
    }
    metrics_.open(mpath, std::ios::trunc);
    for (const auto& l : kept) metrics_ << l << "\n";
    metrics_.flush();
  }
  // A shared time origin: the monotonic clock is system-wide on one machine.
  kv_->barrier("start", rank_, S_);
  t0_ = Clock::now();
  const bool tty = isatty(2);
  if (rank_ == 0 && !opt_.quiet)
    std::cerr << "resist-train: " << to_string(header.config.protocol) << ", " << spec_.name << ", " << S_
              << " worker(s) over " << comm_->backend() << ", " << N << " rounds of " << header.config.local_iters
              << " iteration(s), " << data_.train.size() << " training / " << data_.test.size() << " test images, "
              << torch::get_num_threads() << " thread(s) per worker" << std::endl;

  double test_acc = -1;
  for (int r = start_round; r < N; ++r) {
    const Round round = sched_->round(r);
    const double round_start = seconds_since(t0_);
    if (ist_) {
      ist_build_net(round);
    } else {
      std::vector<int> blocks(header.shared_blocks.begin(), header.shared_blocks.end());
      for (int b : round.workers.at(std::size_t(rank_)).blocks) blocks.push_back(b);
      std::sort(blocks.begin(), blocks.end());
      build_net(blocks);  // first round: the blocks' seeded initial weights
    }
    const std::uint64_t bytes_before = comm_->bytes_sent();
    RoundStats st;
    train_round(round, st);
    const bool eval_round = is_eval_round(round);
    if (ist_) {
      ist_sync(round);
      if (opt_.check_sync) ist_check(r, eval_round);
    } else {
      sync(round, eval_round);
      if (opt_.check_sync) check_copies(r);
    }
    double acc = -1;
    if (eval_round && rank_ == 0) {
      const double t_eval = seconds_since(t0_) + wall_offset_s_;
      acc = ist_ ? evaluate(ist_values()) : evaluate(full_.empty() ? held_ : full_);
      timeline_.events.push_back({0, r, "eval", -1, t_eval, seconds_since(t0_) + wall_offset_s_, 0, 0});
      test_acc = acc;
    }
    // Per-round metrics, gathered at rank 0 through the store (control plane,
    // not counted as wire bytes).
    const double round_s = seconds_since(t0_) - round_start;
    const json mine = {{"loss", st.loss_sum}, {"iters", st.iters}, {"correct", st.correct}, {"seen", st.seen},
                       {"bytes", comm_->bytes_sent() - bytes_before}, {"round_s", round_s}};
    kv_->set("metrics/" + std::to_string(r) + "/" + std::to_string(rank_), mine.dump());
    if (rank_ == 0) {
      double loss = 0;
      std::int64_t iters = 0, correct = 0, seen = 0;
      std::uint64_t bytes = 0;
      for (int w = 0; w < S_; ++w) {
        const auto m = json::parse(kv_->get("metrics/" + std::to_string(r) + "/" + std::to_string(w)));
        loss += m["loss"].get<double>();
        iters += m["iters"].get<std::int64_t>();
        correct += m["correct"].get<std::int64_t>();
        seen += m["seen"].get<std::int64_t>();
        bytes += m["bytes"].get<std::uint64_t>();
      }
      const double wall = seconds_since(t0_) + wall_offset_s_;
      json line = {{"round", r}, {"loss", iters ? loss / double(iters) : 0.0},
                   {"train_accuracy", seen ? double(correct) / double(seen) : 0.0},
                   {"wall_s", wall}, {"round_s", round_s}, {"bytes_sent", bytes},
                   {"lr", lr_at(std::int64_t(r) * header.config.local_iters)}};
      if (acc >= 0) line["test_accuracy"] = acc;
      if (metrics_.is_open()) metrics_ << line.dump() << "\n" << std::flush;
      const bool print = !opt_.quiet && (tty || N <= 200 || (r + 1) % std::max(1, N / 100) == 0 || acc >= 0);
      if (print) {
        std::ostringstream msg;
        msg << "round " << (r + 1) << "/" << N << "  loss " << std::fixed << std::setprecision(4)
            << line["loss"].get<double>() << "  train acc " << std::setprecision(3)
            << line["train_accuracy"].get<double>();
        if (acc >= 0) msg << "  test acc " << std::setprecision(4) << acc;
        msg << "  " << std::setprecision(0) << double(seen) / double(S_) / std::max(round_s, 1e-9)
            << " img/s/worker";
        if (tty) {
          const int width = 24, filled = int(double(width) * (r + 1) / N);
          std::cerr << "\r[" << std::string(std::size_t(filled), '#') << std::string(std::size_t(width - filled), ' ')
                    << "] " << msg.str() << "\033[K" << (r + 1 == N ? "\n" : "") << std::flush;
        } else {
          std::cerr << msg.str() << "\n";
        }
      }
    }
    if (opt_.checkpoint_every > 0 && !opt_.out.empty() && (r + 1) % opt_.checkpoint_every == 0 && r + 1 < N)
      write_checkpoint(r + 1);
  }
  if (ist_) {
    // After the last round's sync rank 0 holds the whole model.
    held_.clear();
    full_.clear();
    if (rank_ == 0) full_ = ist_values();
  }
  finish(seconds_since(t0_) + wall_offset_s_, test_acc);
  return 0;
}

// ------------------------------------------------------------ IST

void Trainer::ist_setup() {
  const auto& c = sched_->header().config;
  ist_ = std::make_unique<IstPlan>(spec_, S_, c.seed);
  // Every rank starts from the same seeded full network (no traffic).
  Net full = make_full_net(spec_, c.seed);
  full->to(device_);
  torch::NoGradGuard ng;
  std::uint64_t off = 0;
  store_.assign(spec_.blocks.size(), {});
  param_offset_.assign(spec_.blocks.size(), {});
  for (int b = 0; b < int(spec_.blocks.size()); ++b)
    for (auto& p : full->block_parameters(b)) {
      store_[std::size_t(b)].push_back(p.detach().clone());
      param_offset_[std::size_t(b)].push_back(off);
      off += std::uint64_t(p.numel());
    }
}

namespace {
// Flat (row-major) indices of a slice into its full parameter of `cols` columns.
torch::Tensor slice_flat_index(const IstSlice& s, std::int64_t cols, torch::Device device) {
  auto rows = torch::tensor(s.rows, torch::kInt64);
  if (s.cols.empty()) return rows.to(device);
  auto cs = torch::tensor(s.cols, torch::kInt64);
  return (rows.unsqueeze(1) * cols + cs.unsqueeze(0)).reshape({-1}).to(device);
}
}  // namespace

void Trainer::ist_build_net(const Round& round) {
  const auto part = ist_->partition(round.index);
  slices_ = ist_->worker_slices(part, rank_);
  net_ = make_full_net(build_model(ist_->subnet_options(part, rank_)), sched_->header().config.seed);
  net_->to(device_);
  net_blocks_.resize(spec_.blocks.size());
  std::iota(net_blocks_.begin(), net_blocks_.end(), 0);
  optim_.reset();
  torch::NoGradGuard ng;
  std::size_t k = 0;
  for (int b = 0; b < int(spec_.blocks.size()); ++b)
    for (auto& p : net_->block_parameters(b)) {
      const auto& sl = slices_.at(k++);
      const auto& full = store_[std::size_t(sl.block)][std::size_t(sl.param)];
      const std::int64_t cols = full.dim() > 1 ? full.size(1) : 1;
      p.copy_(full.reshape({-1}).index_select(0, slice_flat_index(sl, cols, device_)).view(p.sizes()));
    }
}

void Trainer::ist_write_back() {
  torch::NoGradGuard ng;
  std::size_t k = 0;
  for (int b = 0; b < int(spec_.blocks.size()); ++b)
    for (auto& p : net_->block_parameters(b)) {
      const auto& sl = slices_.at(k++);
      auto& full = store_[std::size_t(sl.block)][std::size_t(sl.param)];
      const std::int64_t cols = full.dim() > 1 ? full.size(1) : 1;
      full.view({-1}).index_copy_(0, slice_flat_index(sl, cols, device_), p.detach().reshape({-1}));
    }
}

torch::Tensor Trainer::ist_indices(const IstPiece& piece, int block, int param) const {
  return torch::tensor(ist_->piece_indices(piece, block, param), torch::kInt64).to(device_);
}

void Trainer::ist_sync(const Round& round) {
  ist_write_back();
  if (opt_.check_sync) ist_pre_hash_ = ist_layout_hash(round.index, false);
  for (std::size_t k = 0; k < round.sync.size(); ++k) {
    const auto& op = round.sync[k];
    comm_->prepare(op.ranks);
    if (!op.involves(rank_)) continue;
    ist_execute(op, int(k), round.index);
  }
}

// One IST op: the payload is, per block in op.blocks and parameter in spec
// order, the piece's elements in ascending flat index; the source gathers
// them (index_select), receivers scatter them back (index_copy_).
void Trainer::ist_execute(const CommOp& op, int op_index, int round) {
  if (!op.piece) throw std::logic_error("IST op without a piece");
  const double start = seconds_since(t0_) + wall_offset_s_;
  const std::uint64_t before = comm_->bytes_sent();
  const bool source = op.root() == rank_;
  const bool has_input = op.kind == OpKind::allreduce || op.kind == OpKind::reduce || source;
  const bool on_gloo = std::string(comm_->backend()) == "gloo";
  std::vector<std::tuple<int, int, torch::Tensor>> where;  // block, param, indices
  std::int64_t count = 0;
  for (int b : op.blocks)
    for (int p = 0; p < int(store_[std::size_t(b)].size()); ++p) {
      auto idx = ist_indices(*op.piece, b, p);
      count += idx.numel();
      where.emplace_back(b, p, std::move(idx));
    }
  if (std::uint64_t(count) * 4 != op.bytes)
    throw std::logic_error("IST op " + std::to_string(op_index) + " of round " + std::to_string(round) +
                           ": piece has " + std::to_string(count) + " elements, op says " + std::to_string(op.bytes) +
                           " bytes");
  torch::Tensor bucket;
  if (has_input) {
    std::vector<torch::Tensor> parts;
    for (const auto& [b, p, idx] : where)
      parts.push_back(store_[std::size_t(b)][std::size_t(p)].reshape({-1}).index_select(0, idx));
    bucket = torch::cat(parts);
    if (on_gloo) bucket = bucket.to(torch::kCPU);
    bucket = bucket.contiguous();
  } else {
    bucket = torch::empty({count}, torch::TensorOptions(torch::kFloat32).device(on_gloo ? torch::kCPU : device_));
  }
  run_op(*comm_, op, bucket.data_ptr<float>(), std::size_t(count));
  const bool receives = op.kind == OpKind::send ? !source : (op.kind != OpKind::reduce || source);
  if (receives) {
    torch::NoGradGuard ng;
    auto values = bucket.to(device_);
    std::int64_t off = 0;
    for (const auto& [b, p, idx] : where) {
      const std::int64_t n = idx.numel();
      store_[std::size_t(b)][std::size_t(p)].view({-1}).index_copy_(0, idx, values.slice(0, off, off + n));
      off += n;
    }
  }
  std::string kind = to_string(op.kind);
  if (op.kind == OpKind::send && !source) kind = "recv";
  timeline_.events.push_back(
      {rank_, round, kind, op_index, start, seconds_since(t0_) + wall_offset_s_, comm_->bytes_sent() - before, 0});
}

std::map<int, torch::Tensor> Trainer::ist_values() const {
  std::map<int, torch::Tensor> out;
  for (int b = 0; b < int(store_.size()); ++b) {
    std::vector<torch::Tensor> flat;
    for (const auto& t : store_[std::size_t(b)]) flat.push_back(t.reshape({-1}));
    out[b] = torch::cat(flat).clone();
  }
  return out;
}

// Σ over the set's elements of mix(element id, value bits), mod 2^64: equal
// for two layouts exactly when (up to hash collisions) they hold the same
// values at the same places, whichever ranks hold them.
std::uint64_t Trainer::ist_hash(const IstSet& set) const {
  auto mix = [](std::uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
  };
  std::uint64_t h = 0;
  const IstPiece piece{set, IstSet{IstSetKind::all, -1, -1}};
  for (int b = 0; b < int(store_.size()); ++b)
    for (int p = 0; p < int(store_[std::size_t(b)].size()); ++p) {
      const auto idx = ist_->piece_indices(piece, b, p);
      if (idx.empty()) continue;
      auto vals = store_[std::size_t(b)][std::size_t(p)]
                      .reshape({-1})
                      .index_select(0, torch::tensor(idx, torch::kInt64).to(device_))
                      .to(torch::kCPU)
                      .contiguous();
      const auto* bits = static_cast<const std::uint32_t*>(vals.data_ptr());
      const std::uint64_t base = param_offset_[std::size_t(b)][std::size_t(p)];
      for (std::size_t i = 0; i < idx.size(); ++i)
        h += mix(((base + std::uint64_t(idx[i])) << 32) | bits[i]);
    }
  return h;
}

// This rank's share of the model's layout before (after = false) or after
// round r's sync: the elements it holds authoritatively.
std::uint64_t Trainer::ist_layout_hash(int r, bool after) const {
  const auto& c = sched_->header().config;
  const bool last = r + 1 == sched_->num_rounds();
  const IstSet all{IstSetKind::all, -1, -1};
  if (S_ == 1) return ist_hash(all);
  if (c.ist_sync == IstSync::decentralised) {
    if (!after) return ist_hash({IstSetKind::held, r, rank_});
    if (last) return rank_ == 0 ? ist_hash(all) : 0;
    return ist_hash({IstSetKind::held, r + 1, rank_});
  }
  // Parameter server: rank 0 is authoritative for everything except, before
  // the gather, what the others trained.
  if (rank_ != 0) return after ? 0 : ist_hash({IstSetKind::trained, r, rank_});
  std::uint64_t h = ist_hash(all);
  if (!after)
    for (int w = 1; w < S_; ++w) h -= ist_hash({IstSetKind::trained, r, w});
  return h;
}

// --check-sync for IST: the layout after the sync reassembles into exactly
// the model the layout before it held (the exchange moved every element to
// the right place, unchanged); every rank has the same averaged shared bias;
// with the parameter server each worker's slice equals rank 0's copy; when
// rank 0 gathered the model (eval, last round) it equals the reassembly.
void Trainer::ist_check(int r, bool eval_round) {
  const auto& c = sched_->header().config;
  const bool last = r + 1 == sched_->num_rounds();
  std::uint64_t shared_hash = 1469598103934665603ull;
  for (int b = 0; b < int(store_.size()); ++b)
    for (int p = 0; p < int(store_[std::size_t(b)].size()); ++p)
      if (ist_->param(b, p).role == IstRole::shared)
        shared_hash = (shared_hash ^ hash_tensor(store_[std::size_t(b)][std::size_t(p)])) * 1099511628211ull;
  std::uint64_t slice_hash = 0;
  const bool ps_slice = c.ist_sync == IstSync::parameter_server && !last && rank_ != 0 && S_ > 1;
  if (ps_slice) slice_hash = ist_hash({IstSetKind::trained, r + 1, rank_});
  const std::string prefix = "isthash/" + std::to_string(r) + "/";
  kv_->set(prefix + std::to_string(rank_), std::to_string(ist_pre_hash_) + " " +
                                               std::to_string(ist_layout_hash(r, true)) + " " +
                                               std::to_string(shared_hash) + " " + std::to_string(slice_hash));
  if (rank_ != 0) return;
  std::uint64_t pre = 0, post = 0;
  for (int w = 0; w < S_; ++w) {
    std::istringstream in(kv_->get(prefix + std::to_string(w)));
    std::uint64_t a, b, sh, sl;
    in >> a >> b >> sh >> sl;
    pre += a;
    post += b;
    if (w > 0) {
      ++sync_compared_copies_;
      if (sh != shared_hash)
        die(0, "after the sync of round " + std::to_string(r) + " ranks 0 and " + std::to_string(w) +
                   " hold different shared parameters");
      if (c.ist_sync == IstSync::parameter_server && !last) {
        ++sync_compared_copies_;
        if (sl != ist_hash({IstSetKind::trained, r + 1, w}))
          die(0, "after the scatter of round " + std::to_string(r) + " rank " + std::to_string(w) +
                     "'s slice differs from rank 0's model");
      }
    }
  }
  if (pre != post)
    die(0, "after the sync of round " + std::to_string(r) +
               " the ranks' pieces do not reassemble into the model trained before it");
  if ((eval_round || last) && S_ > 1 && ist_hash({IstSetKind::all, -1, -1}) != post)
    die(0, "round " + std::to_string(r) + ": the model gathered at rank 0 differs from the ranks' pieces");
  ++sync_checked_rounds_;
}

void Trainer::finish(double wall_s, double test_acc) {
  // Gather per-worker results and timelines at rank 0 through the store.
  const json mine = {{"peak_memory_bytes", peak_rss_bytes()},
                     {"bytes_sent", bytes_offset_ + comm_->bytes_sent()},
                     {"images", images_},
                     {"params", [&] {
                        std::uint64_t n = 0;
                        for (const auto& [b, t] : held_) n += std::uint64_t(t.numel());
                        return n;
                      }()},
                     {"timeline", to_json(timeline_)["traceEvents"]}};
  kv_->set("final/" + std::to_string(rank_), mine.dump());
  if (rank_ != 0 || opt_.out.empty()) {
    kv_->barrier("end", rank_, S_);
    return;
  }
  json peak = json::array(), sent = json::array();
  std::uint64_t total = 0;
  Timeline all;
  all.source = "runtime";
  all.workers = S_;
  for (int w = 0; w < S_; ++w) {
    const auto m = json::parse(kv_->get("final/" + std::to_string(w)));
    peak.push_back(m["peak_memory_bytes"]);
    sent.push_back(m["bytes_sent"]);
    total += m["bytes_sent"].get<std::uint64_t>();
    json tl = {{"format", "resist-timeline"}, {"version", 1}, {"source", "runtime"}, {"workers", S_},
               {"traceEvents", m["timeline"]}};
    for (auto& e : timeline_from_json(tl).events)
      if (e.worker == w) all.events.push_back(e);
  }
  const fs::path out(opt_.out);
  write_timeline_file(all, (out / "timeline.json").string());
  // The final model, assembled at rank 0 by the last round's sync: a
  // state_dict {name: tensor} Python's torch.load reads.
  std::uint64_t model_hash = 1469598103934665603ull;
  {
    std::vector<int> all_blocks(spec_.blocks.size());
    std::iota(all_blocks.begin(), all_blocks.end(), 0);
    const auto& values = full_.empty() ? held_ : full_;
    c10::Dict<std::string, torch::Tensor> sd;
    for (int b : all_blocks) {
      const auto& flat = values.at(b);
      model_hash = (model_hash ^ hash_tensor(flat)) * 1099511628211ull;
      std::int64_t off = 0;
      for (const auto& p : spec_.blocks[std::size_t(b)].params) {
        const std::int64_t n = std::int64_t(p.numel());
        sd.insert(p.name, flat.slice(0, off, off + n).view(p.shape).to(torch::kCPU).clone());
        off += n;
      }
    }
    const auto bytes = torch::pickle_save(sd);
    std::ofstream f((out / "model.pt.tmp").string(), std::ios::binary);
    f.write(bytes.data(), std::streamsize(bytes.size()));
    f.close();
    fs::rename(out / "model.pt.tmp", out / "model.pt");
  }
  const auto& h = sched_->header();
  json report = {{"format", "resist-report"},
                 {"version", 1},
                 {"protocol", to_string(h.config.protocol)},
                 {"model", spec_.name},
                 {"workers", S_},
                 {"backend", comm_->backend()},
                 {"device", device_.str()},
                 {"threads", torch::get_num_threads()},
                 {"rounds", sched_->num_rounds()},
                 {"local_iters", h.config.local_iters},
                 {"batch_size", h.config.batch_size},
                 {"train_images", data_.train.size()},
                 {"test_images", data_.test.size()},
                 {"eval_batch", opt_.eval_batch},
                 {"data_dir", opt_.data_dir.empty() ? default_data_dir(h.config.model.dataset) : opt_.data_dir},
                 {"test_accuracy", test_acc},
                 {"wall_clock_s", wall_s},
                 {"bytes_sent_total", total},
                 {"bytes_sent_per_worker", sent},
                 {"peak_memory_bytes", peak},
                 {"model_hash", std::to_string(model_hash)}};
  if (opt_.check_sync) report["sync_check"] = {{"rounds", sync_checked_rounds_}, {"copies_compared", sync_compared_copies_}};
  json_util::write_atomic((out / "report.json").string(), report.dump(2) + "\n");
  kv_->barrier("end", rank_, S_);
  if (!opt_.quiet)
    std::cerr << "resist-train: test accuracy " << test_acc << ", " << wall_s << " s, " << total
              << " bytes sent; results in " << opt_.out << std::endl;
}

}  // namespace

int train(const TrainOptions& options) {
  Trainer t(options);
  int rank = 0;
  try {
    rank = read_env().rank;
    return t.run();
  } catch (const UserError&) {
    throw;
  } catch (const std::exception& e) {
    std::string msg = e.what();
    msg = msg.substr(0, msg.find('\n'));
    die(rank, "communication or runtime failure: " + msg + " (a peer may have died; see the other ranks' output)");
  }
}

// --profile: per-block forward and backward times of the full model at the
// batch size, the SGD step time per parameter, and the rest of an iteration.
int profile(const TrainOptions& o) {
  const auto& c = o.schedule;
  const ModelSpec spec = build_model(c.model);
  if (o.threads > 0) torch::set_num_threads(o.threads);
  torch::Device device(torch::kCPU);
  if (o.device == "cuda") {
    if (!torch::cuda::is_available()) throw UserError("--device cuda: this LibTorch build has no usable CUDA device");
    device = torch::Device(torch::kCUDA, 0);
  }
  auto sync = [&] {
    if (device.is_cuda()) torch::cuda::synchronize();
  };
  Net net = make_full_net(spec, c.seed);
  net->to(device);
  net->train();
  const auto& ds = spec.dataset;
  torch::manual_seed(c.seed);
  auto x0 = torch::randn({c.batch_size, ds.channels, ds.height, ds.width}).to(device);
  const int warmup = 2, reps = 5;
  Profile p;
  p.model = c.model;
  p.batch_size = c.batch_size;
  p.device = device.is_cuda() ? "cuda" : "cpu";
  p.threads = torch::get_num_threads();
  torch::Tensor x = x0;
  for (int b = 0; b < int(spec.blocks.size()); ++b) {
    auto& block = net->block(b);
    std::vector<double> fwd, bwd;
    torch::Tensor out;
    for (int rep = 0; rep < warmup + reps; ++rep) {
      auto in = x.detach().requires_grad_(b > 0);
      sync();
      auto t = Clock::now();
      out = block.forward(in);
      sync();
      const double f = seconds_since(t);
      auto g = torch::ones_like(out);
      t = Clock::now();
      out.backward(g);
      sync();
      const double bk = seconds_since(t);
      if (rep >= warmup) {
        fwd.push_back(f);
        bwd.push_back(bk);
      }
    }
    std::sort(fwd.begin(), fwd.end());
    std::sort(bwd.begin(), bwd.end());
    p.blocks.push_back({spec.blocks[std::size_t(b)].name, fwd[fwd.size() / 2], bwd[bwd.size() / 2]});
    x = out.detach();
  }
  torch::optim::SGD sgd(net->parameters(), torch::optim::SGDOptions(0.01).momentum(0.9).weight_decay(5e-4));
  auto y = torch::zeros({c.batch_size}, torch::kInt64).to(device);
  std::vector<double> step_s, iter_s;
  for (int rep = 0; rep < warmup + reps; ++rep) {
    sgd.zero_grad();
    sync();
    auto t = Clock::now();
    auto loss = torch::nn::functional::cross_entropy(net->forward(x0), y);
    loss.backward();
    sync();
    auto t1 = Clock::now();
    sgd.step();
    sync();
    if (rep >= warmup) {
      step_s.push_back(seconds_since(t1));
      iter_s.push_back(seconds_since(t));
    }
  }
  std::sort(step_s.begin(), step_s.end());
  std::sort(iter_s.begin(), iter_s.end());
  const double step = step_s[step_s.size() / 2];
  p.optimizer_step_s_per_param = step / double(spec.param_count());
  double blocks_s = 0;
  for (const auto& b : p.blocks) blocks_s += b.forward_s + b.backward_s;
  p.iteration_overhead_s = std::max(0.0, iter_s[iter_s.size() / 2] - blocks_s);
  write_profile_file(p, o.profile);
  std::cerr << "resist-train: profile of " << spec.name << " at batch " << c.batch_size << " written to " << o.profile
            << " (" << std::setprecision(3) << blocks_s << " s forward+backward per iteration)" << std::endl;
  return 0;
}

}  // namespace resist::runtime
