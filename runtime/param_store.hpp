#pragma once
// Where a worker keeps its parameters between rounds, behind one interface,
// so that the trainer's single execute(op) serves every protocol:
//   BlockStore  whole blocks, one flat fp32 tensor per spec block (ResNets:
//               data-parallel, local SGD, ResIST);
//   SliceStore  full-shape tensors of which this rank's slices are meaningful
//               (IST's neuron slices, schedule/ist.hpp).
// Which one a run uses is the schedule's Schedule::holding.
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "models/torch_model.hpp"
#include "runtime/context.hpp"
#include "schedule/ist.hpp"
#include "schedule/round_setup.hpp"
#include "schedule/schedule.hpp"

namespace resist::runtime {

// The values an op reads and writes on this rank, flattened in the op's
// order (per block in op.blocks, its parameters in spec order).
class OpValues {
 public:
  virtual ~OpValues() = default;
  virtual std::int64_t count(const CommOp& op) = 0;      // elements the op carries
  virtual torch::Tensor gather(const CommOp& op) = 0;    // this rank's input
  virtual void scatter(const CommOp& op, const torch::Tensor& values) = 0;  // the op's result
  virtual void drop(const CommOp& op) { (void)op; }      // this rank does not hold the result
};

// The gradients of a network's blocks (ops of Phase::iteration).
class GradientValues : public OpValues {
 public:
  explicit GradientValues(Net& net) : net_(net) {}
  std::int64_t count(const CommOp& op) override { return std::int64_t(op.bytes / 4); }
  torch::Tensor gather(const CommOp& op) override;
  void scatter(const CommOp& op, const torch::Tensor& values) override;

 private:
  Net& net_;
};

// --check-sync: rounds checked, copies compared (report.json).
struct SyncStats {
  int rounds = 0;
  std::uint64_t copies = 0;
};

class ParamStore : public OpValues {
 public:
  // Sets up the network this rank trains in `round` as the schedule says
  // (`setup` = round_setup(), schedule/round_setup.hpp): builds it anew when
  // setup.rebuild, and copies the stored values of setup.reload_blocks into
  // it. Throws std::logic_error when the store's own state disagrees (a
  // block it would have to copy that `setup` leaves out, or one it does not
  // hold). Returns setup.rebuild: `net` is a new module (its optimizer must
  // be re-created).
  virtual bool load(const Round& round, const RoundSetup& setup, Net& net) = 0;
  // Takes the trained values back from `net` before the round's sync.
  virtual void take(const Net& net) = 0;
  // After round r's sync: keeps what this rank needs next (`keep`, block
  // store) and, when `keep_all`, the whole model for an evaluation.
  virtual void end_sync(const std::function<std::vector<int>()>& keep, bool keep_all) = 0;
  // Every block, flat: rank 0's model after an evaluating round's sync.
  virtual std::map<int, torch::Tensor> model() const = 0;
  // --check-sync: called before and after a round's sync ops.
  virtual void before_check(const Round& round) { (void)round; }
  virtual void check(const Round& round, int num_rounds, SyncStats& stats) = 0;
  // Checkpoints (block store only): what this rank holds, and restoring it.
  virtual bool checkpoints() const { return false; }
  virtual std::map<int, torch::Tensor> snapshot() const { return {}; }
  virtual void restore(std::map<int, torch::Tensor> held) { (void)held; }
};

std::unique_ptr<ParamStore> make_store(const Schedule& header, const ModelSpec& spec, RunContext& ctx,
                                       torch::Device device);

// A block's values as the stores hold them: a copy of `params` in one flat
// tensor, in order; and back, `flat` copied into `params`. (The profiler
// times these, runtime/profiler.cpp.)
torch::Tensor flat_copy(const std::vector<torch::Tensor>& params);
void copy_into(const std::vector<torch::Tensor>& params, const torch::Tensor& flat);

// FNV-1a over a tensor's bytes: what ranks exchange to prove identical copies.
std::uint64_t hash_tensor(const torch::Tensor& t);

// A block's value stays in the network's parameters, uncopied, for as long
// as nothing else needs it: take() only notes the network; an op that reads
// a block flattens it straight from the parameters into the op's bucket; a
// block no op touched is kept in the network (in_net_) and load() does not
// copy it back (the schedule's round_setup() names exactly the others; load()
// checks that it does). Data-parallel rounds (no round-end ops) then copy nothing,
// local SGD once each way around its all-reduce.
class BlockStore : public ParamStore {
 public:
  BlockStore(const Schedule& header, const ModelSpec& spec, RunContext& ctx, torch::Device device)
      : header_(header), spec_(spec), ctx_(ctx), device_(device) {}
  bool load(const Round& round, const RoundSetup& setup, Net& net) override;
  void take(const Net& net) override;
  std::int64_t count(const CommOp& op) override { return std::int64_t(op.bytes / 4); }
  torch::Tensor gather(const CommOp& op) override;
  void scatter(const CommOp& op, const torch::Tensor& values) override;
  void drop(const CommOp& op) override;
  void end_sync(const std::function<std::vector<int>()>& keep, bool keep_all) override;
  std::map<int, torch::Tensor> model() const override { return full_.empty() ? snapshot() : full_; }
  void check(const Round& round, int num_rounds, SyncStats& stats) override;  // sync_check.cpp
  bool checkpoints() const override { return true; }
  std::map<int, torch::Tensor> snapshot() const override;
  void restore(std::map<int, torch::Tensor> held) override;

 private:
  torch::Tensor flat_block(int b) const;  // a copy of block b's parameters in net_, flat
  void copy_out_of_net();                 // in_net_ blocks into held_ (net_ is about to change)
  void copy_in(const Round& round, const std::vector<int>& blocks, Net& net) const;  // held blocks into net
  [[noreturn]] void disagree(const Round& round, const std::string& what) const;   // a bug: logic_error

  const Schedule& header_;
  const ModelSpec& spec_;
  RunContext& ctx_;
  torch::Device device_;
  std::vector<int> net_blocks_;        // the blocks of the current network
  Net net_{nullptr};                   // the network take() last read
  std::map<int, torch::Tensor> held_;  // block -> flat fp32 parameters, between rounds
  std::set<int> in_net_;               // between rounds: held blocks whose value is net_'s parameters
  std::map<int, torch::Tensor> after_; // during a sync: blocks an op gave a value here
  std::set<int> pending_;              // during a sync: blocks whose value is still net_'s parameters
  std::map<int, torch::Tensor> full_;  // rank 0 on evaluating rounds: every block after the sync
};

class SliceStore : public ParamStore {
 public:
  SliceStore(const Schedule& header, const ModelSpec& spec, RunContext& ctx, torch::Device device);
  bool load(const Round& round, const RoundSetup& setup, Net& net) override;
  void take(const Net& net) override;
  std::int64_t count(const CommOp& op) override;
  torch::Tensor gather(const CommOp& op) override;
  void scatter(const CommOp& op, const torch::Tensor& values) override;
  void drop(const CommOp&) override { cached_op_ = nullptr; }
  void end_sync(const std::function<std::vector<int>()>&, bool) override { cached_op_ = nullptr; }
  std::map<int, torch::Tensor> model() const override;
  // Checkpoints: this rank's full-shape tensors, flat per block (its layout
  // is meaningful only where it holds slices; restoring it restores that).
  bool checkpoints() const override { return true; }
  std::map<int, torch::Tensor> snapshot() const override { return model(); }
  void restore(std::map<int, torch::Tensor> held) override;
  void before_check(const Round& round) override;                             // sync_check.cpp
  void check(const Round& round, int num_rounds, SyncStats& stats) override;  // sync_check.cpp

 private:
  torch::Tensor indices(const IstPiece& piece, int block, int param) const;
  const std::vector<torch::Tensor>& op_indices(const CommOp& op);  // per block and param of the op
  std::uint64_t set_hash(const IstSet& set) const;
  std::uint64_t layout_hash(int round, int num_rounds, bool after) const;

  const Schedule& header_;
  const ModelSpec& spec_;
  RunContext& ctx_;
  torch::Device device_;
  IstPlan plan_;
  std::vector<std::vector<torch::Tensor>> store_;          // [block][param], full shape
  std::vector<std::vector<std::uint64_t>> param_offset_;  // element offset of [block][param] in the model
  std::vector<IstSlice> slices_;                           // this round's slices, spec order
  std::uint64_t pre_hash_ = 0;
  const CommOp* cached_op_ = nullptr;  // the op whose indices are cached (between gather and scatter)
  std::vector<torch::Tensor> cached_indices_;
};

}  // namespace resist::runtime
