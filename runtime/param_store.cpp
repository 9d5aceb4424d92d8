// The two parameter stores (param_store.hpp). Their --check-sync halves are
// in sync_check.cpp.
#include "runtime/param_store.hpp"

#include <algorithm>
#include <numeric>
#include <stdexcept>
#include <string>

namespace resist::runtime {

torch::Tensor flat_copy(const std::vector<torch::Tensor>& params) {
  torch::NoGradGuard ng;
  std::vector<torch::Tensor> flat;
  for (const auto& p : params) flat.push_back(p.detach().reshape({-1}));
  return torch::cat(flat);  // a new tensor: cat copies
}

void copy_into(const std::vector<torch::Tensor>& params, const torch::Tensor& flat) {
  torch::NoGradGuard ng;
  std::int64_t off = 0;
  for (auto p : params) {
    p.copy_(flat.slice(0, off, off + p.numel()).view(p.sizes()));
    off += p.numel();
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

std::uint64_t hash_tensor(const torch::Tensor& t) {
  auto c = t.to(torch::kCPU).contiguous();
  const auto* p = static_cast<const unsigned char*>(c.data_ptr());
  std::uint64_t h = kFnvOffset;
  for (std::size_t i = 0, n = c.numel() * c.element_size(); i < n; ++i) h = (h ^ p[i]) * kFnvPrime;
  return h;
}

std::unique_ptr<ParamStore> make_store(const Schedule& header, const ModelSpec& spec, RunContext& ctx,
                                       torch::Device device) {
  if (header.holding == Holding::slices) return std::make_unique<SliceStore>(header, spec, ctx, device);
  return std::make_unique<BlockStore>(header, spec, ctx, device);
}

// ------------------------------------------------------------ gradients

torch::Tensor GradientValues::gather(const CommOp& op) {
  std::vector<torch::Tensor> flat;
  for (int b : op.blocks)
    for (auto& p : net_->block_parameters(b)) flat.push_back(p.grad().reshape({-1}));
  return torch::cat(flat);
}

void GradientValues::scatter(const CommOp& op, const torch::Tensor& values) {
  torch::NoGradGuard ng;
  std::int64_t off = 0;
  for (int b : op.blocks)
    for (auto& p : net_->block_parameters(b)) {
      p.mutable_grad().copy_(values.slice(0, off, off + p.numel()).view(p.sizes()));
      off += p.numel();
    }
}

// ------------------------------------------------------------ blocks

bool BlockStore::load(const Round& round, const RoundSetup& setup, Net& net) {
  std::vector<int> blocks = trained_blocks(header_, round, ctx_.rank);
  std::sort(blocks.begin(), blocks.end());
  const auto& reload = setup.reload_blocks;
  auto copied = [&reload](int b) { return std::binary_search(reload.begin(), reload.end(), b); };
  torch::NoGradGuard ng;
  if (!setup.rebuild) {  // the same modules (local SGD, DP): copy in what the last sync replaced
    if (!net || blocks != net_blocks_) disagree(round, "keeps a network this rank has not built");
    if (net_.is_empty() || net.ptr() != net_.ptr()) copy_out_of_net();
    for (int b : blocks)
      if (!copied(b) && !in_net_.count(b))
        disagree(round, "leaves out block " + std::to_string(b) + ", not in the network");
    copy_in(round, reload, net);
    in_net_.clear();  // training the network now changes them
    return false;
  }
  for (int b : blocks)  // not copied: the block's seeded initial weights, before any value is held
    if (!copied(b) && (held_.count(b) || in_net_.count(b)))
      disagree(round, "leaves out block " + std::to_string(b) + ", which it holds");
  copy_out_of_net();
  net = Net(spec_, blocks, header_.config.seed);
  net->to(device_);
  net_blocks_ = blocks;
  copy_in(round, reload, net);
  return true;
}

void BlockStore::copy_in(const Round& round, const std::vector<int>& blocks, Net& net) const {
  for (int b : blocks) {
    auto it = held_.find(b);
    if (it == held_.end()) disagree(round, "copies block " + std::to_string(b) + ", which it does not hold");
    copy_into(net->block_parameters(b), it->second);
  }
}

void BlockStore::disagree(const Round& round, const std::string& what) const {
  throw std::logic_error("round " + std::to_string(round.index) + ", rank " + std::to_string(ctx_.rank) +
                         ": the schedule's set-up " + what);
}

torch::Tensor BlockStore::flat_block(int b) const { return flat_copy(net_->block_parameters(b)); }

void BlockStore::copy_out_of_net() {
  for (int b : in_net_) held_[b] = flat_block(b);
  in_net_.clear();
}

// The values stay in `net` until an op or the next round needs them.
void BlockStore::take(const Net& net) {
  after_.clear();
  net_ = net;
  pending_ = std::set<int>(net_blocks_.begin(), net_blocks_.end());
}

torch::Tensor BlockStore::gather(const CommOp& op) {
  torch::NoGradGuard ng;
  std::vector<torch::Tensor> parts;
  for (int b : op.blocks) {
    if (!after_.count(b) && pending_.count(b))  // straight from the parameters
      for (auto& p : net_->block_parameters(b)) parts.push_back(p.detach().reshape({-1}));
    else
      parts.push_back(after_.at(b));
  }
  return torch::cat(parts);
}

// The op's result: views of `values`, a buffer the op allocated for itself.
void BlockStore::scatter(const CommOp& op, const torch::Tensor& values) {
  std::int64_t off = 0;
  for (int b : op.blocks) {
    const std::int64_t n = std::int64_t(spec_.blocks[std::size_t(b)].param_count);
    after_[b] = values.slice(0, off, off + n).to(device_);
    pending_.erase(b);
    off += n;
  }
}

void BlockStore::drop(const CommOp& op) {
  for (int b : op.blocks) {
    after_.erase(b);
    pending_.erase(b);
  }
}

void BlockStore::end_sync(const std::function<std::vector<int>()>& keep, bool keep_all) {
  held_.clear();
  in_net_.clear();
  for (int b : keep()) {
    if (auto it = after_.find(b); it != after_.end())
      held_[b] = it->second;
    else if (pending_.count(b))
      in_net_.insert(b);
    else
      throw std::logic_error("schedule left rank " + std::to_string(ctx_.rank) + " without block " + std::to_string(b));
  }
  full_.clear();
  if (keep_all) {
    full_ = std::move(after_);
    for (int b : pending_) full_[b] = flat_block(b);
  }
  after_.clear();
  pending_.clear();
}

// What this rank holds, each block in a tensor of its own (a checkpoint
// must not save the whole buffer an op's result is a view of).
std::map<int, torch::Tensor> BlockStore::snapshot() const {
  std::map<int, torch::Tensor> out;
  for (const auto& [b, t] : held_) out[b] = t.storage().nbytes() == t.nbytes() ? t : t.clone();
  for (int b : in_net_) out[b] = flat_block(b);
  return out;
}

void BlockStore::restore(std::map<int, torch::Tensor> held) {
  held_ = std::move(held);
  in_net_.clear();
}

// ------------------------------------------------------------ slices

SliceStore::SliceStore(const Schedule& header, const ModelSpec& spec, RunContext& ctx, torch::Device device)
    : header_(header), spec_(spec), ctx_(ctx), device_(device), plan_(spec, ctx.world, header.config.seed) {
  // Every rank starts from the same seeded full network (no traffic).
  Net full = make_full_net(spec_, header.config.seed);
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

bool SliceStore::load(const Round& round, const RoundSetup& setup, Net& net) {
  if (!setup.rebuild || setup.reload_blocks.size() != spec_.blocks.size())
    throw std::logic_error("round " + std::to_string(round.index) +
                           ": neuron slices need a new subnet and every block copied in every round");
  const auto part = plan_.partition(round.index);
  slices_ = plan_.worker_slices(part, ctx_.rank);
  net = make_full_net(build_model(plan_.subnet_options(part, ctx_.rank)), header_.config.seed);
  net->to(device_);
  torch::NoGradGuard ng;
  std::size_t k = 0;
  for (int b = 0; b < int(spec_.blocks.size()); ++b)
    for (auto& p : net->block_parameters(b)) {
      const auto& sl = slices_.at(k++);
      const auto& full = store_[std::size_t(sl.block)][std::size_t(sl.param)];
      const std::int64_t cols = full.dim() > 1 ? full.size(1) : 1;
      p.copy_(full.reshape({-1}).index_select(0, slice_flat_index(sl, cols, device_)).view(p.sizes()));
    }
  return true;
}

void SliceStore::take(const Net& net) {
  torch::NoGradGuard ng;
  std::size_t k = 0;
  for (int b = 0; b < int(spec_.blocks.size()); ++b)
    for (auto& p : net->block_parameters(b)) {
      const auto& sl = slices_.at(k++);
      auto& full = store_[std::size_t(sl.block)][std::size_t(sl.param)];
      const std::int64_t cols = full.dim() > 1 ? full.size(1) : 1;
      full.view({-1}).index_copy_(0, slice_flat_index(sl, cols, device_), p.detach().reshape({-1}));
    }
}

torch::Tensor SliceStore::indices(const IstPiece& piece, int block, int param) const {
  return torch::tensor(plan_.piece_indices(piece, block, param), torch::kInt64).to(device_);
}

// The payload is, per block in op.blocks and parameter in spec order, the
// piece's elements in ascending flat index; the source gathers them
// (index_select), receivers scatter them back (index_copy_). The schedule
// states the payload's size (op.bytes; checked when a file is read).
std::int64_t SliceStore::count(const CommOp& op) {
  if (!op.piece) throw std::logic_error("IST op without a piece");
  return std::int64_t(op.bytes / 4);
}

const std::vector<torch::Tensor>& SliceStore::op_indices(const CommOp& op) {
  if (cached_op_ == &op) return cached_indices_;
  cached_indices_.clear();
  for (int b : op.blocks)
    for (int p = 0; p < int(store_[std::size_t(b)].size()); ++p) cached_indices_.push_back(indices(*op.piece, b, p));
  cached_op_ = &op;
  return cached_indices_;
}

torch::Tensor SliceStore::gather(const CommOp& op) {
  const auto& idx = op_indices(op);
  std::vector<torch::Tensor> parts;
  std::size_t k = 0;
  for (int b : op.blocks)
    for (int p = 0; p < int(store_[std::size_t(b)].size()); ++p)
      parts.push_back(store_[std::size_t(b)][std::size_t(p)].reshape({-1}).index_select(0, idx[k++]));
  return torch::cat(parts).contiguous();
}

void SliceStore::scatter(const CommOp& op, const torch::Tensor& bucket) {
  torch::NoGradGuard ng;
  const auto& idx = op_indices(op);
  auto values = bucket.to(device_);
  std::int64_t off = 0;
  std::size_t k = 0;
  for (int b : op.blocks)
    for (int p = 0; p < int(store_[std::size_t(b)].size()); ++p) {
      const std::int64_t n = idx[k].numel();
      store_[std::size_t(b)][std::size_t(p)].view({-1}).index_copy_(0, idx[k++], values.slice(0, off, off + n));
      off += n;
    }
  cached_op_ = nullptr;
}

void SliceStore::restore(std::map<int, torch::Tensor> held) {
  torch::NoGradGuard ng;
  for (int b = 0; b < int(store_.size()); ++b) {
    const auto& flat = held.at(b);
    std::int64_t off = 0;
    for (auto& t : store_[std::size_t(b)]) {
      t.copy_(flat.slice(0, off, off + t.numel()).view(t.sizes()));
      off += t.numel();
    }
  }
}

std::map<int, torch::Tensor> SliceStore::model() const {
  std::map<int, torch::Tensor> out;
  for (int b = 0; b < int(store_.size()); ++b) {
    std::vector<torch::Tensor> flat;
    for (const auto& t : store_[std::size_t(b)]) flat.push_back(t.reshape({-1}));
    out[b] = torch::cat(flat).clone();
  }
  return out;
}

}  // namespace resist::runtime
