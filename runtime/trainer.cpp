// resist-train's worker: one process walking a schedule (schedule/schedule.hpp)
// with real LibTorch training. Start reading at Trainer::run, the worker loop:
// for every round, load this worker's (sub-)model from the parameter store,
// train it for the round's local iterations, carry out the round's sync ops
// in order, evaluate when the round says so, report.
//
// The trainer never asks which protocol it runs: the round states which
// blocks this worker trains, whether the optimizer starts afresh, which ops
// run per iteration (gradients) or at the end of the round, who holds each
// op's result, and whether to evaluate. Where the parameters live between
// rounds: param_store.hpp (whole blocks, or IST's neuron slices). Also here:
// checkpoint.cpp, report.cpp (metrics, progress, report.json, model.pt),
// sync_check.cpp (--check-sync), profiler.cpp (--profile), sampler.hpp.
#include "runtime/trainer.hpp"
#include "schedule/protocol.hpp"

#include <algorithm>
#include <cmath>
#include <csignal>
#include <filesystem>
#include <iostream>
#include <sstream>
#include <optional>
#include <thread>

#include <torch/torch.h>

#include "models/error.hpp"
#include "models/torch_model.hpp"
#include "runtime/checkpoint.hpp"
#include "runtime/context.hpp"
#include "runtime/blas.hpp"
#include "runtime/data.hpp"
#include "runtime/fused_sgd.hpp"
#include "runtime/loader.hpp"
#include "runtime/grad_buckets.hpp"
#include "runtime/host_memory.hpp"
#include "runtime/inference.hpp"
#include "runtime/lp_stage.hpp"
#include "runtime/param_store.hpp"
#include "runtime/preflight.hpp"
#include "runtime/report.hpp"
#include "runtime/run_record.hpp"
#include "runtime/sampler.hpp"
#include "schedule/accounting.hpp"
#include "schedule/rng.hpp"
#include "schedule/round_setup.hpp"
#if RESIST_HAVE_NCCL
#include "runtime/nccl_comm.hpp"
#endif

namespace resist::runtime {

namespace fs = std::filesystem;

void die(int rank, const std::string& msg) {
  std::cerr << "resist-train: rank " << rank << ": " << msg << std::endl;
  std::fflush(nullptr);
  std::_Exit(1);
}

namespace {

std::string first_line(const std::string& s) { return s.substr(0, s.find('\n')); }

// After backward: a parameter backward did not reach gets zeros, as
// zero_grad() left it, so that the step still applies its weight decay and
// momentum.
void zero_missing_gradients(torch::optim::Optimizer& optim) {
  for (auto& group : optim.param_groups())
    for (auto& p : group.params())
      if (!p.grad().defined()) p.mutable_grad() = torch::zeros_like(p);
}

// [p18] A bad image found while training: one line naming it, exit 2.
[[noreturn]] void die_bad_data(int rank, const std::string& msg) {
  std::cerr << "resist-train: rank " << rank << ": " << msg << std::endl;
  std::fflush(nullptr);
  std::_Exit(kUserErrorExit);
}

class Trainer {
 public:
  explicit Trainer(const TrainOptions& o) : opt_(o), report_(opt_, ctx_) {}
  int run();

 private:
  void setup();
  void load_schedule();
  void check_before_rendezvous();
  void connect();
  int resume();
  void start(int first_round);
  void train_round(const Round& round, RoundStats& stats);
  void train_step(const Round& round, std::int64_t iter, RoundStats& stats);
  // [p18 data hook] loading the data and building batches (runtime/loader.hpp)
  void load_training_data(ScheduleConfig& c);
  LoaderOptions loader_options() const;
  Batch next_train_batch(std::int64_t t);
  void exchange_gradients(const Round& round, double round_start);
  void prepare_buckets(const Round& round, bool new_net);
  void finish_buckets(const CommOp& op, int op_index, int round);
  void sync(const Round& round);
  void execute(const CommOp& op, int op_index, int round, OpValues& values);
  double evaluate(int round);
  bool load_aux(const Round& round);
  void new_optimizer();
  double lr_at(std::int64_t iter) const;
  void finish(double test_acc);

  TrainOptions opt_;
  bool loader_auto_ = false;  // --loader-threads chosen from the cores (setup)
  RunContext ctx_;
  RunReport report_;
  ModelSpec spec_;
  std::unique_ptr<RoundSource> sched_;
  std::unique_ptr<ParamStore> store_;
  Data data_;
  std::unique_ptr<Sampler> sampler_;
  std::unique_ptr<Loader> loader_;  // [p18] training batches, built ahead by decoder threads
  torch::Device device_{torch::kCPU};
  Net net_{nullptr};
  AuxHead aux_{nullptr};  // layer-parallel: this worker's auxiliary head, if the round gives it one
  std::unique_ptr<torch::optim::SGD> optim_;
  SyncStats sync_stats_;
  // Data-parallel on Gloo: the per-iteration all-reduce in buckets during backward.
  std::unique_ptr<GradientBuckets> buckets_;
  int bucket_op_ = -1;              // the round's op they carry out; -1: none
  std::vector<int> bucket_blocks_;  // the op's blocks they were built for
  std::uint64_t bucket_bytes_before_ = 0;
  OutputLock out_lock_;              // --out, locked by rank 0 (runtime/preflight.hpp)
  nlohmann::json ckpt_config_;       // what checkpoints record (checkpoint_config())
  std::optional<Resumed> resumed_;   // --resume: read and checked before the rendezvous
};

// The worker loop.
int Trainer::run() {
  setup();
  const int first = resume(), N = sched_->num_rounds();
  start(first);
  double test_acc = -1;
  const auto& h = sched_->header();
  std::optional<Round> prev;  // the round before, which this round's set-up depends on
  for (int r = first; r < N; ++r) {
    Round round = sched_->round(r);
    const double round_start = seconds_since(ctx_.t0);
    const bool new_head = load_aux(round);
    // As the schedule says (schedule/round_setup.hpp); resume() may have
    // set the first round up already, to restore the optimizer.
    const bool loaded = r == first && !net_.is_empty();
    const bool new_net =
        !loaded && store_->load(round, round_setup(h, prev ? &*prev : nullptr, round, ctx_.rank), net_);
    if (new_net || new_head || round.reset_optimizer || !optim_) new_optimizer();
    prepare_buckets(round, new_net);
    const std::uint64_t bytes_before = ctx_.comm->bytes_sent();
    RoundStats stats;
    stats.epoch = double(std::min<std::int64_t>(h.total_iters, std::int64_t(r + 1) * h.config.local_iters)) /
                  double(std::max(1, h.iters_per_epoch));
    train_round(round, stats);
    sync(round);
    const double acc = round.evaluate && ctx_.rank == 0 ? evaluate(r) : -1;
    if (acc >= 0) test_acc = acc;
    report_.round_done(r, N, stats, ctx_.comm->bytes_sent() - bytes_before, seconds_since(ctx_.t0) - round_start,
                       acc, lr_at(std::int64_t(r) * sched_->header().config.local_iters));
    if (opt_.checkpoint_every > 0 && !opt_.out.empty() && (r + 1) % opt_.checkpoint_every == 0 && r + 1 < N) {
      report_.drain();  // a resumed run keeps the metrics of the rounds before its checkpoint
      write_checkpoint(opt_.out, r + 1, ctx_, store_->snapshot(),
                       sched_->round(r + 1).reset_optimizer ? nullptr : optim_.get(), ckpt_config_,
                       aux_.is_empty() ? torch::Tensor() : flat_parameters(aux_));
    }
    prev = std::move(round);
  }
  finish(test_acc);
  return 0;
}

void Trainer::train_round(const Round& round, RoundStats& stats) {
  net_->train();
  const std::int64_t first_iter = std::int64_t(round.index) * sched_->header().config.local_iters;
  const double start = ctx_.now();
  for (int it = 0; it < round.local_iters; ++it) {
    if (round.index == opt_.fail_round && ctx_.rank == opt_.fail_rank && opt_.fail_mode == "kill" &&
        it == round.local_iters / 2) {
      std::cerr << "resist-train: rank " << ctx_.rank << ": killing myself at round " << round.index
                << " (--fail-mode kill)" << std::endl;
      std::raise(SIGKILL);
    }
    if (round.index == opt_.fail_round && ctx_.rank == opt_.fail_rank && opt_.fail_mode == "error")
      throw std::runtime_error("injected local error at round " + std::to_string(round.index) + " (--fail-mode error)");
    for (auto& g : optim_->param_groups())
      static_cast<torch::optim::SGDOptions&>(g.options()).lr(lr_at(first_iter + it));
    train_step(round, first_iter + it, stats);
    exchange_gradients(round, start);
  }
  const bool per_iteration = std::any_of(round.sync.begin(), round.sync.end(),
                                         [](const CommOp& op) { return op.phase == Phase::iteration; });
  if (!per_iteration)
    ctx_.timeline.events.push_back({ctx_.rank, round.index, "compute", -1, start, ctx_.now(), 0, round.local_iters});
}

// Forward and backward on this worker's next batch.
void Trainer::train_step(const Round& round, std::int64_t t, RoundStats& stats) {
  const Batch batch = next_train_batch(t);  // [p18 data hook]
  const auto& index = batch.index;
  const auto& x = batch.x;
  const auto& y = batch.y;
  drop_gradients(*optim_);
  // Forward, the activations the round exchanges after it (layer-parallel
  // stages; none otherwise), then this worker's loss (lp_stage.hpp).
  LocalStep step(net_, aux_, ctx_.rank, opt_.lp_beta, opt_.lp_aux_step);
  auto logits = step.forward(x);
  for (std::size_t k = 0; k < round.sync.size(); ++k)
    if (round.sync[k].phase == Phase::forward && round.sync[k].involves(ctx_.rank))
      execute(round.sync[k], int(k), round.index, step);
  // Two losses (lp_stage.hpp): the network's and, in a layer-parallel stage
  // after the first, its auxiliary head's, each with its own backward pass.
  // With --lp-aux-step > 0 the head's target moves along the stage's input
  // gradient, so the stage's backward runs before the head's loss exists.
  const auto stage_loss = step.stage_loss(y);
  const bool stage_first = step.head_needs_stage_backward();
  if (stage_first) stage_loss.backward();
  const auto head_loss = step.has_head() ? step.head_loss() : torch::Tensor();
  auto loss = head_loss.defined() ? stage_loss.detach() + head_loss : stage_loss;
  if (round.index == opt_.fail_round && ctx_.rank == opt_.fail_rank && opt_.fail_mode == "nan")
    loss = loss * std::nan("");
  const double loss_v = loss.item<double>();
  if (!std::isfinite(loss_v)) {
    std::ostringstream m;
    m << "loss is " << loss_v << " at round " << round.index << ", iteration " << t << "; stopping";
    if (opt_.checkpoint_every > 0 && !opt_.out.empty())
      m << " (the last good checkpoint in " << opt_.out << "/checkpoints is intact)";
    die(ctx_.rank, m.str());
  }
  if (bucket_op_ >= 0) {
    bucket_bytes_before_ = ctx_.comm->bytes_sent();
    buckets_->begin();
  }
  if (!stage_first) stage_loss.backward();
  if (head_loss.defined()) head_loss.backward();
  zero_missing_gradients(*optim_);
  stats.loss_sum += loss_v;
  if (step.holds_output()) stats.correct += logits.argmax(1).eq(y).sum().item<std::int64_t>();
  stats.seen += std::int64_t(index.size());
  stats.iters += 1;
  ctx_.images += std::int64_t(index.size());
}

// The round's per-iteration ops (gradients, between backward and the
// optimizer step), then the step.
void Trainer::exchange_gradients(const Round& round, double round_start) {
  bool exchanged = false;
  GradientValues grads(net_);
  for (std::size_t k = 0; k < round.sync.size(); ++k) {
    const auto& op = round.sync[k];
    if (op.phase != Phase::iteration || !op.involves(ctx_.rank)) continue;
    if (!exchanged)
      ctx_.timeline.events.push_back({ctx_.rank, round.index, "compute", -1, round_start, ctx_.now(), 0, 1});
    if (int(k) == bucket_op_) finish_buckets(op, int(k), round.index);
    else execute(op, int(k), round.index, grads);
    exchanged = true;
  }
  const double t_opt = ctx_.now();
  optim_->step();
  if (exchanged)
    ctx_.timeline.events.push_back({ctx_.rank, round.index, "optimizer", -1, t_opt, ctx_.now(), 0, 0});
}

// The index of `round`'s per-iteration op when it is rank's only one and an
// all-reduce of the gradients (what buckets can carry out); -1 otherwise.
int gradient_allreduce(const Round& round, int rank) {
  int found = -1, count = 0;
  for (std::size_t k = 0; k < round.sync.size(); ++k)
    if (round.sync[k].phase == Phase::iteration && round.sync[k].involves(rank)) found = int(k), ++count;
  return count == 1 && round.sync[std::size_t(found)].kind == OpKind::allreduce ? found : -1;
}

// Buckets for the round's per-iteration all-reduce of gradients, when there
// is exactly one, on Gloo, with --bucket-mb > 0; kept while the network and
// the op's blocks stay the same.
void Trainer::prepare_buckets(const Round& round, bool new_net) {
  bucket_op_ = -1;
  if (opt_.bucket_mb <= 0 || std::string(ctx_.comm->backend()) != "gloo") return;
  const int found = gradient_allreduce(round, ctx_.rank);
  if (found < 0) return;
  const auto& op = round.sync[std::size_t(found)];
  if (new_net || !buckets_ || bucket_blocks_ != op.blocks) {
    std::vector<torch::Tensor> params;
    for (int b : op.blocks)
      for (auto& p : net_->block_parameters(b)) params.push_back(p);
    buckets_.reset();
    buckets_ = std::make_unique<GradientBuckets>(params, op.ranks, *ctx_.comm,
                                                 std::size_t(opt_.bucket_mb * (1 << 20) / 4));
    bucket_blocks_ = op.blocks;
  }
  bucket_op_ = found;
}

// Waits for the buckets' all-reduce; one timeline event for the op, from the
// first bucket's start to the last one's end (overlapping the compute).
void Trainer::finish_buckets(const CommOp& op, int op_index, int round) {
  (void)op;
  const auto [first, last] = buckets_->finish();
  const double t0 = std::chrono::duration<double>(ctx_.t0.time_since_epoch()).count() - ctx_.wall_offset_s;
  ctx_.timeline.events.push_back({ctx_.rank, round, "allreduce", op_index, first - t0, last - t0,
                                  ctx_.comm->bytes_sent() - bucket_bytes_before_, 0});
}

// The end-of-round ops on the stored parameters (an auxiliary head's, for
// Payload::aux), in the schedule's order; every rank prepares every op (the
// communicator's tags stay in step).
void Trainer::sync(const Round& round) {
  store_->take(net_);
  if (opt_.check_sync) store_->before_check(round);
  AuxValues head(aux_);
  for (std::size_t k = 0; k < round.sync.size(); ++k) {
    const auto& op = round.sync[k];
    ctx_.comm->prepare(op.ranks);
    if (op.phase != Phase::round_end || !op.involves(ctx_.rank)) continue;
    if (op.payload == Payload::aux) execute(op, int(k), round.index, head);
    else execute(op, int(k), round.index, *store_);
  }
  store_->end_sync([&] { return sched_->held_after(round.index, ctx_.rank); }, round.evaluate && ctx_.rank == 0);
  if (opt_.check_sync) store_->check(round, sched_->num_rounds(), sync_stats_);
}

// One op on this rank: gather the op's elements into one bucket, run the
// algorithm, put the result back where this rank holds it.
void Trainer::execute(const CommOp& op, int op_index, int round, OpValues& values) {
  const double start = ctx_.now();
  const std::uint64_t before = ctx_.comm->bytes_sent();
  const bool source = op.root() == ctx_.rank;
  const bool has_input = op.kind == OpKind::allreduce || op.kind == OpKind::reduce || source;
  const bool on_gloo = std::string(ctx_.comm->backend()) == "gloo";
  const std::int64_t count = values.count(op);
  torch::Tensor bucket;
  if (has_input) {
    bucket = values.gather(op);
    if (on_gloo) bucket = bucket.to(torch::kCPU);
  } else {
    bucket = torch::empty({count}, torch::TensorOptions(torch::kFloat32).device(on_gloo ? torch::kCPU : device_));
  }
  if (bucket.numel() != count) throw std::logic_error("op " + std::to_string(op_index) + ": bucket size mismatch");
  run_op(*ctx_.comm, op, bucket.data_ptr<float>(), std::size_t(count));
  if (op.holds_result(ctx_.rank))
    values.scatter(op, bucket);
  else
    values.drop(op);
  std::string kind = to_string(op.kind);
  if (op.kind == OpKind::send && !source) kind = "recv";
  ctx_.timeline.events.push_back({ctx_.rank, round, kind, op_index, start, ctx_.now(),
                                  ctx_.comm->bytes_sent() - before, 0, wire_received(op, ctx_.world, opt_.collectives)[std::size_t(ctx_.rank)]});
}

// Rank 0, after an evaluating round's sync: test accuracy of the whole model.
double Trainer::evaluate(int round) {
  const double t_eval = ctx_.now();
  // The inference model (branch scales folded into the last convs): what
  // model.pt holds, so that a user who loads it scores this accuracy.
  const auto values = fold_branch_scales(spec_, sched_->header().eval_scale, store_->model());
  Net full(spec_, all_indices(int(spec_.blocks.size())), 0);
  full->to(device_);
  torch::NoGradGuard ng;
  for (int b = 0; b < int(spec_.blocks.size()); ++b) {
    std::int64_t off = 0;
    const auto& flat = values.at(b);
    for (auto& p : full->block_parameters(b)) {
      p.copy_(flat.slice(0, off, off + p.numel()).view(p.sizes()));
      off += p.numel();
    }
  }
  full->eval();
  // [p18 data hook] the test set in order, through the loader (no augmentation).
  std::int64_t correct = 0, seen = 0;
  const std::int64_t n = data_.test.size(), eb = opt_.eval_batch, steps = (n + eb - 1) / eb;
  Loader loader(
      data_, data_.test, false,
      [&](std::int64_t s) {
        std::vector<std::int64_t> index;
        for (std::int64_t i = s * eb; i < std::min(n, (s + 1) * eb); ++i) index.push_back(i);
        return index;
      },
      0, steps, 0, loader_options());
  for (std::int64_t s = 0; s < steps; ++s) {
    Batch b;
    try {
      b = loader.next(s);
    } catch (const UserError& e) {
      die_bad_data(ctx_.rank, e.what());
    }
    correct += full->forward(b.x).argmax(1).eq(b.y).sum().item<std::int64_t>();
    seen += b.y.size(0);
  }
  ctx_.timeline.events.push_back({0, round, "eval", -1, t_eval, ctx_.now(), 0, 0});
  return seen ? double(correct) / double(seen) : 0.0;
}

// The auxiliary head the round gives this worker (Round::workers[].aux_target),
// built once; true when it changed.
bool Trainer::load_aux(const Round& round) {
  const int target = round.workers.at(std::size_t(ctx_.rank)).aux_target;
  if (target < 0) {
    const bool had = !aux_.is_empty();
    aux_ = AuxHead{nullptr};
    return had;
  }
  if (!aux_.is_empty() && aux_->spec().target == target) return false;
  const auto& c = sched_->header().config;
  aux_ = AuxHead(aux_head(spec_, target, c.aux_width), c.seed);
  aux_->to(device_);
  return true;
}

void Trainer::new_optimizer() {
  auto params = net_->parameters();
  if (!aux_.is_empty())
    for (auto& p : aux_->parameters()) params.push_back(p);
  optim_ = std::make_unique<FusedSGD>(
      params, torch::optim::SGDOptions(opt_.lr).momentum(opt_.momentum).weight_decay(opt_.weight_decay));
}

double Trainer::lr_at(std::int64_t t) const {
  const double T = double(std::max<std::int64_t>(1, sched_->header().total_iters));
  if (opt_.lr_schedule == "cosine") return opt_.lr * 0.5 * (1 + std::cos(M_PI * double(t) / T));
  double lr = opt_.lr;
  if (double(t) >= 0.5 * T) lr *= 0.1;
  if (double(t) >= 0.75 * T) lr *= 0.1;
  return lr;
}


void Trainer::setup() {
  const Env env = read_env();
  ctx_.rank = env.rank;
  ctx_.world = env.world_size;
  if (opt_.lr_schedule != "step" && opt_.lr_schedule != "cosine")
    throw UserError("--lr-schedule: unknown value '" + opt_.lr_schedule + "' (accepted: step, cosine)");
  opt_.schedule.optimizer_state = parse_optimizer_state(opt_.optimizer_state);
  if (opt_.device != "cpu" && opt_.device != "cuda")
    throw UserError("--device: unknown value '" + opt_.device + "' (accepted: cpu, cuda)");
  if (opt_.device == "cuda") {
    if (!torch::cuda::is_available()) throw UserError("--device cuda: this LibTorch build has no usable CUDA device");
    device_ = torch::Device(torch::kCUDA, env.local_rank % int(torch::cuda::device_count()));
  }
  const int threads = set_worker_threads(opt_.threads, env.local_world_size);
  // Decoder threads only where the ranks' intra-op threads leave cores idle:
  // on an oversubscribed machine they take their time from the training
  // step (docs/performance.md: 4 ranks on 2 cores ran 14% faster without).
  loader_auto_ = opt_.loader_threads < 0;
  if (loader_auto_) {
    const int spare = int(std::thread::hardware_concurrency()) - env.local_world_size * threads;
    opt_.loader_threads = std::clamp(spare / env.local_world_size, 0, 2);
  }
  load_schedule();
  check_before_rendezvous();
  connect();
  store_ = make_store(sched_->header(), spec_, ctx_, device_);
}

// The schedule: from a file, or generated from the flags with the actual
// training-set size and the world size.
void Trainer::load_schedule() {
  auto& c = opt_.schedule;
  std::optional<Schedule> file;
  if (!opt_.schedule_file.empty()) {
    file = read_schedule_file(opt_.schedule_file);
    if (file->config.workers != ctx_.world)
      throw UserError("--schedule: " + opt_.schedule_file + " is for " + std::to_string(file->config.workers) +
                      " workers, but WORLD_SIZE is " + std::to_string(ctx_.world));
    c = file->config;
  }
  load_training_data(c);  // [p18] image folders: classes and input size come from the data
  spec_ = build_model(c.model);
  if (!file) validate(spec_, [&] {
      ScheduleConfig v = c;
      v.workers = ctx_.world;
      return v;
    }());
  if (file) {
    sched_ = std::make_unique<RoundSource>(spec_, std::move(*file));
  } else {
    c.workers = ctx_.world;
    c.train_size = data_.train.size();
    sched_ = std::make_unique<RoundSource>(spec_, c);
  }
  const auto& h = sched_->header();
  // One data shard per replica (layer-parallel: the stages of a replica read the same batches).
  sampler_ = std::make_unique<Sampler>(data_.train.size(), h.data_shards(), c.batch_size, h.iters_per_epoch, c.seed);
}

// Everything a rank can check alone, before the rendezvous: bad input ends
// here with one line and exit 2, before any rank writes a file.
void Trainer::check_before_rendezvous() {
  check_data_fits(data_, spec_, ctx_.world);
  if (opt_.checkpoint_every > 0 || !opt_.resume.empty()) ckpt_config_ = checkpoint_config(opt_, *sched_);
  if (!opt_.resume.empty()) {
    ResumeCheck check;
    check.config = ckpt_config_;
    check.num_rounds = sched_->num_rounds();
    for (int b = 0; b < int(spec_.blocks.size()); ++b)
      check.block_numel.push_back(std::int64_t(spec_.param_count({b})));
    check.held = [this](int next) {
      if (sched_->header().holding != Holding::slices) return sched_->held_after(next - 1, ctx_.rank);
      return all_indices(int(spec_.blocks.size()));
    };
    resumed_ = load_checkpoint(opt_.resume, check, ctx_, device_);
  }
  if (!opt_.out.empty()) out_lock_.check(opt_.out, ctx_.rank == 0);
}

// ---- [p18 data hook] what the trainer needs from the data pipeline.
void Trainer::load_training_data(ScheduleConfig& c) {
  DataOptions d;
  d.name = c.model.dataset;
  d.dir = opt_.data_dir;
  d.train_subset = opt_.train_subset;
  d.test_subset = opt_.test_subset;
  d.image_size = c.model.image_size;
  d.check_images = opt_.check_images;
  d.threads = std::max(1, opt_.loader_threads);
  data_ = load_data(d);
  if (!data_.from_files()) return;
  const int classes = int(data_.classes.size());
  if (!opt_.schedule_file.empty() && c.model.classes != classes)
    throw UserError("--schedule: " + opt_.schedule_file + " is for " + std::to_string(c.model.classes) +
                    " classes, but the image folder has " + std::to_string(classes));
  c.model.classes = classes;
  c.model.image_size = data_.image_size;
}

LoaderOptions Trainer::loader_options() const {
  LoaderOptions o;
  o.threads = opt_.loader_threads;
  o.prefetch = opt_.prefetch;
  o.skip_bad = opt_.skip_bad_images;
  o.device = device_;
  o.who = "resist-train: rank " + std::to_string(ctx_.rank);
  return o;
}

// Iteration t's batch: this worker's data shard of the epoch's permutation;
// sample j is augmented from its own generator keyed by (seed, shard, t, j).
// The shard is the schedule's (Schedule::shard_of): the rank itself, but the
// stages of a layer-parallel replica share one, so they see the same images.
Batch Trainer::next_train_batch(std::int64_t t) {
  if (!loader_) {
    const auto& h = sched_->header();
    const int shard = h.shard_of(ctx_.rank);
    const std::uint64_t seed = Rng(h.config.seed ^ 0xa06a06ull, std::uint64_t(shard)).next();
    loader_ = std::make_unique<Loader>(
        data_, data_.train, data_.augment, [this, shard](std::int64_t step) { return sampler_->batch(shard, step); },
        t, std::max({h.total_iters, std::int64_t(sched_->num_rounds()) * h.config.local_iters, t + 1}), seed,
        loader_options());
  }
  try {
    Batch b = loader_->next(t);
    ctx_.skipped_images = loader_->skipped();
    return b;
  } catch (const UserError& e) {  // a bad image found mid-epoch
    die_bad_data(ctx_.rank, e.what());
  }
}

void Trainer::connect() {
  const Env env = read_env();
  const auto timeout = std::chrono::milliseconds(std::int64_t(opt_.timeout_s * 1000));
  ctx_.kv = connect_store(env, timeout);
  std::string backend = opt_.backend;
  if (backend == "auto") backend = device_.is_cuda() ? "nccl" : "gloo";
  if (backend == "gloo") {
    ctx_.comm = make_gloo_communicator(env, ctx_.kv, timeout);
    auto& p2p = dynamic_cast<P2PCommunicator&>(*ctx_.comm);
    p2p.collectives = opt_.collectives;
    p2p.collectives.ranks_per_node = env.local_world_size;
  } else if (backend == "nccl") {
#if RESIST_HAVE_NCCL
    if (!device_.is_cuda()) throw UserError("--backend nccl: needs --device cuda");
    ctx_.comm = make_nccl_communicator(env, ctx_.kv, device_.index(), nullptr);
#else
    throw UserError("--backend nccl: this build has no NCCL (needs CUDA and libnccl at configure time)");
#endif
  } else {
    throw UserError("--backend: unknown value '" + backend + "' (accepted: auto, gloo, nccl)");
  }
  ctx_.timeline.source = "runtime";
  ctx_.timeline.workers = ctx_.world;
}

// --resume: the stored blocks (and a kept optimizer) of the latest checkpoint.
int Trainer::resume() {
  if (!resumed_) return 0;
  Resumed res = std::move(*resumed_);
  resumed_.reset();
  store_->restore(std::move(res.held));
  if (res.next_round >= sched_->num_rounds()) return res.next_round;
  const Round round = sched_->round(res.next_round);
  if (res.aux.defined()) {  // layer-parallel: the auxiliary head as trained so far
    load_aux(round);
    if (aux_.is_empty()) throw UserError("--resume: the checkpoint has an auxiliary head this run does not train");
    set_parameters(aux_, res.aux);
  }
  if (!res.optim_file.empty() && !round.reset_optimizer) {
    store_->load(round, round_setup(sched_->header(), nullptr, round, ctx_.rank), net_);
    new_optimizer();
    torch::load(*optim_, res.optim_file);
  }
  return res.next_round;
}

// Rank 0 writes the schedule and opens the metrics; everyone starts the clock.
void Trainer::start(int first_round) {
  const int N = sched_->num_rounds();
  const auto& header = sched_->header();
  if (!opt_.out.empty() && ctx_.rank == 0) {
    out_lock_.acquire(opt_.out);
    Schedule s = header;
    for (int r = 0; r < N; ++r) s.rounds.push_back(sched_->round(r));
    write_schedule_file(s, (fs::path(opt_.out) / "schedule.json").string());
  }
  report_.open_metrics(first_round);
  // A shared time origin: the monotonic clock is system-wide on one machine.
  ctx_.kv->barrier("start", ctx_.rank, ctx_.world);
  ctx_.t0 = Clock::now();
  if (ctx_.rank != 0 || opt_.quiet) return;
  std::cerr << "resist-train: " << to_string(header.config.protocol) << ", " << spec_.name << ", " << ctx_.world
            << " worker(s) over " << ctx_.comm->backend() << ", " << N << " rounds of " << header.config.local_iters
            << " iteration(s), " << data_.train.size() << " training / " << data_.test.size() << " test images, "
            << torch::get_num_threads() << " thread(s) per worker ("
            << (opt_.threads > 0 ? "--threads" : "cores / local workers") << "), " << opt_.loader_threads
            << " loader thread(s) (" << (loader_auto_ ? "the cores left per worker, at most 2" : "--loader-threads")
            << ")";
  // The per-iteration gradient all-reduce (prepare_buckets), if the rounds have one.
  if (N > 0 && gradient_allreduce(sched_->round(std::min(first_round, N - 1)), ctx_.rank) >= 0 &&
      std::string(ctx_.comm->backend()) == "gloo") {
    std::cerr << ", gradient all-reduce ";
    if (opt_.bucket_mb > 0) std::cerr << "in " << opt_.bucket_mb << "-MB buckets during backward";
    else std::cerr << "after backward";
    std::cerr << " (--bucket-mb)";
  }
  std::cerr << "; BLAS: " << describe(blas_info()) << std::endl;
}

void Trainer::finish(double test_acc) {
  const auto& h = sched_->header();
  RunSummary s;
  s.protocol = to_string(h.config.protocol);
  s.model = spec_.name;
  s.backend = ctx_.comm->backend();
  s.device = device_.str();
  s.threads = torch::get_num_threads();
  s.rounds = sched_->num_rounds();
  s.local_iters = h.config.local_iters;
  s.batch_size = h.config.batch_size;
  s.train_images = data_.train.size();
  s.test_images = data_.test.size();
  s.test_accuracy = test_acc;
  s.wall_clock_s = ctx_.now();
  s.eval_batch = opt_.eval_batch;
  s.data_dir = opt_.data_dir.empty() ? default_data_dir(h.config.model.dataset) : opt_.data_dir;
  // The optimizer policy as resolved: re-created every round, or kept (the last round's).
  const bool reset = sched_->round(sched_->num_rounds() - 1).reset_optimizer;
  s.run = run_record(opt_, h, spec_, read_env(), s.threads, reset ? "reset" : "keep");
  s.eval_scale = h.eval_scale;
  report_.finish(spec_, ctx_.rank == 0 ? store_->model() : std::map<int, torch::Tensor>{}, s, sync_stats_);
}

}  // namespace

int set_worker_threads(int requested, int local_workers) {
  const int threads =
      requested > 0 ? requested : std::max(1, int(std::thread::hardware_concurrency()) / std::max(1, local_workers));
  torch::set_num_threads(threads);
  set_blas_threads(threads);
  keep_freed_memory();
  return threads;
}

int train(const TrainOptions& options) {
  Trainer t(options);
  int rank = 0;
  try {
    rank = read_env().rank;
    return t.run();
  } catch (const UserError&) {
    throw;
  } catch (const PeerFailure& e) {  // only communication with other ranks says "peer"
    die(rank,
        "communication failure: " + first_line(e.what()) + " (a peer may have died; see the other ranks' output)");
  } catch (const std::exception& e) {
    die(rank, "runtime failure: " + first_line(e.what()));
  }
}

}  // namespace resist::runtime

