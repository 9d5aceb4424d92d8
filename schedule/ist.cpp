#include "schedule/ist.hpp"

#include <algorithm>
#include <cassert>
#include <string>

#include "models/error.hpp"
#include "schedule/accounting.hpp"
#include "schedule/rng.hpp"

namespace resist {

const char* to_string(IstRole r) {
  switch (r) {
    case IstRole::shared: return "shared";
    case IstRole::rows: return "rows";
    case IstRole::vector: return "vector";
    case IstRole::block: return "block";
    case IstRole::cols: return "cols";
  }
  return "?";
}

void validate_ist(const ModelSpec& spec, int workers) {
  bool mlp = !spec.blocks.empty() && spec.blocks.back().kind == BlockKind::dense_out;
  for (std::size_t i = 0; i + 1 < spec.blocks.size(); ++i) mlp = mlp && spec.blocks[i].kind == BlockKind::dense;
  if (!mlp || spec.blocks.size() < 2)
    throw UserError("--protocol ist: model " + spec.name +
                    " is not a fully-connected network (ist partitions neurons; use --model mlp)");
  for (std::size_t i = 0; i + 1 < spec.blocks.size(); ++i)
    if (spec.blocks[i].out_channels < workers)
      throw UserError("--workers: ist needs at least one neuron per worker in every hidden layer (" +
                      spec.blocks[i].name + " has " + std::to_string(spec.blocks[i].out_channels) + ", got " +
                      std::to_string(workers) + " workers)");
}

IstPlan::IstPlan(const ModelSpec& spec, int workers, std::uint64_t seed)
    : spec_(spec), workers_(workers), seed_(seed) {
  validate_ist(spec, workers);
  const int nblocks = int(spec.blocks.size());
  const int last = nblocks - 2;  // last hidden layer
  for (int b = 0; b <= last; ++b) hidden_.push_back(spec.blocks[b].out_channels);
  for (int b = 0; b < nblocks; ++b) {
    const auto& blk = spec.blocks[b];
    first_param_.push_back(int(params_.size()));
    for (int p = 0; p < int(blk.params.size()); ++p) {
      const auto& ps = blk.params[p];
      IstParam ip;
      ip.block = b;
      ip.param = p;
      ip.rows = ps.shape.at(0);
      ip.cols = ps.shape.size() > 1 ? ps.shape[1] : 1;
      if (blk.kind == BlockKind::dense_out) {
        ip.role = ps.shape.size() == 2 ? IstRole::cols : IstRole::shared;
        ip.layer = ip.role == IstRole::cols ? last : -1;
      } else {
        ip.layer = b;
        ip.role = ps.shape.size() == 1 ? IstRole::vector : (b == 0 ? IstRole::rows : IstRole::block);
      }
      if (ip.role == IstRole::shared) shared_params_ += ps.numel();
      params_.push_back(ip);
    }
  }
}

const IstParam& IstPlan::param(int block, int param) const {
  return params_.at(first_param_.at(block) + param);
}

IstPartition IstPlan::partition(int round) const {
  IstPartition p;
  p.round = round;
  Rng rng(seed_, std::uint64_t(round));
  const int S = workers_;
  for (std::int64_t H : hidden_) {
    std::vector<std::int64_t> perm(H);
    for (std::int64_t i = 0; i < H; ++i) perm[i] = i;
    rng.shuffle(perm);
    std::vector<std::vector<std::int64_t>> sets(S);
    std::vector<int> owner(H);
    for (int w = 0; w < S; ++w) {
      const Chunk c = ring_chunk(std::uint64_t(H), S, w);
      sets[w].assign(perm.begin() + std::int64_t(c.offset), perm.begin() + std::int64_t(c.offset + c.count));
      std::sort(sets[w].begin(), sets[w].end());
      for (auto n : sets[w]) owner[n] = w;
    }
    p.neurons.push_back(std::move(sets));
    p.owner.push_back(std::move(owner));
  }
  return p;
}

int IstPlan::home(int layer, std::int64_t row) const {
  const std::int64_t H = hidden_.at(layer), S = workers_;
  const std::int64_t base = H / S, extra = H % S;
  // The first `extra` chunks have base + 1 rows.
  if (row < extra * (base + 1)) return int(row / (base + 1));
  return int(extra + (row - extra * (base + 1)) / base);
}

std::vector<IstSlice> IstPlan::worker_slices(const IstPartition& p, int w) const {
  std::vector<IstSlice> out;
  auto iota = [](std::int64_t n) {
    std::vector<std::int64_t> v(n);
    for (std::int64_t i = 0; i < n; ++i) v[i] = i;
    return v;
  };
  for (const auto& ip : params_) {
    IstSlice s{ip.block, ip.param, ip.role, {}, {}};
    const bool two_d = spec_.blocks[ip.block].params[ip.param].shape.size() == 2;
    switch (ip.role) {
      case IstRole::shared: s.rows = iota(ip.rows); if (two_d) s.cols = iota(ip.cols); break;
      case IstRole::vector: s.rows = p.neurons[ip.layer][w]; break;
      case IstRole::rows: s.rows = p.neurons[ip.layer][w]; s.cols = iota(ip.cols); break;
      case IstRole::block: s.rows = p.neurons[ip.layer][w]; s.cols = p.neurons[ip.layer - 1][w]; break;
      case IstRole::cols: s.rows = iota(ip.rows); s.cols = p.neurons[ip.layer][w]; break;
    }
    out.push_back(std::move(s));
  }
  return out;
}

ModelOptions IstPlan::subnet_options(const IstPartition& p, int w) const {
  ModelOptions o = spec_.options;
  o.input = int(spec_.blocks.front().in_channels);
  o.classes = int(spec_.blocks.back().out_channels);
  for (std::size_t l = 0; l < hidden_.size(); ++l) o.hidden[l] = int(p.neurons[l][w].size());
  return o;
}

std::uint64_t IstPlan::trained_params(const IstPartition& p, int w) const {
  std::uint64_t n = 0;
  for (const auto& ip : params_) {
    const std::uint64_t mine = ip.layer >= 0 ? p.neurons[ip.layer][w].size() : 0;
    switch (ip.role) {
      case IstRole::shared: break;
      case IstRole::vector:
      case IstRole::rows: n += mine * std::uint64_t(ip.cols); break;
      case IstRole::block: n += mine * p.neurons[ip.layer - 1][w].size(); break;
      case IstRole::cols: n += std::uint64_t(ip.rows) * mine; break;
    }
  }
  return n;
}

namespace {

// Is a "per-neuron" element (a row of rows/vector, a column of cols) with
// neuron owner `owner` in the set? (Such elements are trained every round,
// so trained and held coincide.)
bool neuron_in(const IstSet& s, int owner) {
  switch (s.kind) {
    case IstSetKind::shared: return false;
    case IstSetKind::all: return true;
    case IstSetKind::trained:
    case IstSetKind::held: return owner == s.worker;
  }
  return false;
}

// Is element (row, col) of a hidden-to-hidden weight in the set, given the
// owner of its row neuron, of its column neuron, and the row's home?
bool block_in(const IstSet& s, int row_owner, int col_owner, int home) {
  switch (s.kind) {
    case IstSetKind::shared: return false;
    case IstSetKind::all: return true;
    case IstSetKind::trained: return row_owner == s.worker && col_owner == s.worker;
    case IstSetKind::held: return (row_owner == col_owner ? row_owner : home) == s.worker;
  }
  return false;
}

[[maybe_unused]] bool has_round(const IstSet& s) { return s.kind == IstSetKind::trained || s.kind == IstSetKind::held; }

}  // namespace

bool IstPlan::contains(const IstSet& s, const IstPartition& p, int block, int param, std::int64_t flat) const {
  const IstParam& ip = this->param(block, param);
  assert(!has_round(s) || s.round == p.round);
  const std::int64_t i = flat / ip.cols, j = flat % ip.cols;
  switch (ip.role) {
    case IstRole::shared: return s.kind == IstSetKind::shared;
    case IstRole::vector:
    case IstRole::rows: return neuron_in(s, p.owner[ip.layer][i]);
    case IstRole::cols: return neuron_in(s, p.owner[ip.layer][j]);
    case IstRole::block:
      return block_in(s, p.owner[ip.layer][i], p.owner[ip.layer - 1][j], home(ip.layer, i));
  }
  return false;
}

// Walks rows, then columns, deciding per row (rows, vector) or per column
// (cols) where membership depends on one neuron: the work is the piece's
// size plus one test per row and column, not one per element of the full
// tensor (resist-train calls this for every IST op on every rank).
std::vector<std::int64_t> IstPlan::piece_indices(const IstPiece& piece, int block, int param) const {
  const IstPartition pf = partition(std::max(0, piece.from.round));
  const IstPartition pt = piece.to.round == pf.round ? pf : partition(std::max(0, piece.to.round));
  const IstParam& ip = this->param(block, param);
  std::vector<std::int64_t> out;
  const auto both = [&](int owner_from, int owner_to) {
    return neuron_in(piece.from, owner_from) && neuron_in(piece.to, owner_to);
  };
  switch (ip.role) {
    case IstRole::shared:
      if (piece.from.kind == IstSetKind::shared && piece.to.kind == IstSetKind::shared)
        for (std::int64_t e = 0; e < ip.rows * ip.cols; ++e) out.push_back(e);
      break;
    case IstRole::vector:
    case IstRole::rows:
      for (std::int64_t i = 0; i < ip.rows; ++i)
        if (both(pf.owner[ip.layer][i], pt.owner[ip.layer][i]))
          for (std::int64_t j = 0; j < ip.cols; ++j) out.push_back(i * ip.cols + j);
      break;
    case IstRole::cols: {
      std::vector<std::int64_t> cols;
      for (std::int64_t j = 0; j < ip.cols; ++j)
        if (both(pf.owner[ip.layer][j], pt.owner[ip.layer][j])) cols.push_back(j);
      for (std::int64_t i = 0; i < ip.rows; ++i)
        for (std::int64_t j : cols) out.push_back(i * ip.cols + j);
      break;
    }
    case IstRole::block:
      for (std::int64_t i = 0; i < ip.rows; ++i) {
        const int h = home(ip.layer, i), rf = pf.owner[ip.layer][i], rt = pt.owner[ip.layer][i];
        for (std::int64_t j = 0; j < ip.cols; ++j)
          if (block_in(piece.from, rf, pf.owner[ip.layer - 1][j], h) &&
              block_in(piece.to, rt, pt.owner[ip.layer - 1][j], h))
            out.push_back(i * ip.cols + j);
      }
      break;
  }
  return out;
}

std::uint64_t IstPlan::piece_numel(const IstPiece& piece, int block) const {
  const IstPartition pf = partition(std::max(0, piece.from.round));
  const IstPartition pt = piece.to.round == pf.round ? pf : partition(std::max(0, piece.to.round));
  return piece_numel(piece, block, pf, pt);
}

std::uint64_t IstPlan::piece_numel(const IstPiece& piece, int block, const IstPartition& pf,
                                   const IstPartition& pt) const {
  assert(!has_round(piece.from) || piece.from.round == pf.round);
  assert(!has_round(piece.to) || piece.to.round == pt.round);
  const int S = workers_;
  std::uint64_t total = 0;
  const int end = block + 1 < int(first_param_.size()) ? first_param_[block + 1] : int(params_.size());
  for (int k = first_param_.at(block); k < end; ++k) {
    const IstParam& ip = params_[k];
    switch (ip.role) {
      case IstRole::shared:
        if (piece.from.kind == IstSetKind::shared && piece.to.kind == IstSetKind::shared)
          total += std::uint64_t(ip.rows * ip.cols);
        break;
      case IstRole::vector:
      case IstRole::rows:
      case IstRole::cols: {
        const std::uint64_t per = std::uint64_t(ip.role == IstRole::cols ? ip.rows : ip.cols);
        const auto& of = pf.owner[ip.layer];
        const auto& ot = pt.owner[ip.layer];
        for (std::size_t n = 0; n < of.size(); ++n)
          if (neuron_in(piece.from, of[n]) && neuron_in(piece.to, ot[n])) total += per;
        break;
      }
      case IstRole::block: {
        // Columns classified by (owner in the from round, owner in the to
        // round); then each row costs O(S^2) instead of O(columns).
        const auto& cf = pf.owner[ip.layer - 1];
        const auto& ct = pt.owner[ip.layer - 1];
        std::vector<std::uint64_t> K(std::size_t(S) * S, 0);
        for (std::size_t c = 0; c < cf.size(); ++c) ++K[std::size_t(cf[c]) * S + ct[c]];
        const auto& rf = pf.owner[ip.layer];
        const auto& rt = pt.owner[ip.layer];
        for (std::int64_t row = 0; row < ip.rows; ++row) {
          const int h = home(ip.layer, row);
          for (int a = 0; a < S; ++a) {
            if (!block_in(piece.from, rf[row], a, h)) continue;
            for (int b = 0; b < S; ++b)
              if (block_in(piece.to, rt[row], b, h)) total += K[std::size_t(a) * S + b];
          }
        }
        break;
      }
    }
  }
  return total;
}

}  // namespace resist
