// --check-sync: after every round's sync the ranks publish hashes of what
// they hold through the control-plane store and rank 0 compares them; a
// mismatch ends the run with a message naming the round and the ranks.
#include <set>
#include <sstream>
#include <string>

#include "runtime/param_store.hpp"

namespace resist::runtime {

// Block store: every rank publishes a hash per block it holds; rank 0
// compares the copies.
void BlockStore::check(const Round& round, int, SyncStats& stats) {
  // The blocks the round's ops synchronised (between two averagings,
  // layer-parallel replicas of a stage hold different copies, as they should).
  std::set<int> synced;
  for (const auto& op : round.sync)
    if (op.payload != Payload::activations && op.payload != Payload::aux) synced.insert(op.blocks.begin(), op.blocks.end());
  std::ostringstream s;
  for (const auto& [b, t] : held_)
    if (synced.count(b)) s << b << ' ' << hash_tensor(t) << ' ';
  for (int b : in_net_)
    if (synced.count(b)) s << b << ' ' << hash_tensor(flat_block(b)) << ' ';
  const std::string prefix = "hash/" + std::to_string(round.index) + "/";
  ctx_.kv->set(prefix + std::to_string(ctx_.rank), s.str());
  if (ctx_.rank != 0) return;
  std::map<int, std::pair<std::uint64_t, int>> first;  // block -> (hash, rank)
  for (int r = 0; r < ctx_.world; ++r) {
    std::istringstream in(ctx_.kv->get(prefix + std::to_string(r)));
    int b;
    std::uint64_t h;
    while (in >> b >> h) {
      auto [it, inserted] = first.try_emplace(b, h, r);
      if (inserted) continue;
      ++stats.copies;
      if (it->second.first != h)
        die(0, "after the sync of round " + std::to_string(round.index) + " ranks " +
                   std::to_string(it->second.second) + " and " + std::to_string(r) +
                   " hold different copies of block " + spec_.blocks[std::size_t(b)].name);
    }
  }
  ++stats.rounds;
}

// Σ over the set's elements of mix(element id, value bits), mod 2^64: equal
// for two layouts exactly when (up to hash collisions) they hold the same
// values at the same places, whichever ranks hold them.
std::uint64_t SliceStore::set_hash(const IstSet& set) const {
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
      const auto idx = plan_.piece_indices(piece, b, p);
      if (idx.empty()) continue;
      auto vals = store_[std::size_t(b)][std::size_t(p)]
                      .reshape({-1})
                      .index_select(0, torch::tensor(idx, torch::kInt64).to(device_))
                      .to(torch::kCPU)
                      .contiguous();
      const auto* bits = static_cast<const std::uint32_t*>(vals.data_ptr());
      const std::uint64_t base = param_offset_[std::size_t(b)][std::size_t(p)];
      for (std::size_t i = 0; i < idx.size(); ++i) h += mix(((base + std::uint64_t(idx[i])) << 32) | bits[i]);
    }
  return h;
}

// This rank's share of the model's layout before (after = false) or after
// round r's sync: the elements it holds authoritatively.
std::uint64_t SliceStore::layout_hash(int r, int num_rounds, bool after) const {
  const auto& c = header_.config;
  const int rank = ctx_.rank, S = ctx_.world;
  const bool last = r + 1 == num_rounds;
  const IstSet all{IstSetKind::all, -1, -1};
  if (S == 1) return set_hash(all);
  if (c.ist_sync == IstSync::decentralised) {
    if (!after) return set_hash({IstSetKind::held, r, rank});
    if (last) return rank == 0 ? set_hash(all) : 0;
    return set_hash({IstSetKind::held, r + 1, rank});
  }
  // Parameter server: rank 0 is authoritative for everything except, before
  // the gather, what the others trained.
  if (rank != 0) return after ? 0 : set_hash({IstSetKind::trained, r, rank});
  std::uint64_t h = set_hash(all);
  if (!after)
    for (int w = 1; w < S; ++w) h -= set_hash({IstSetKind::trained, r, w});
  return h;
}

void SliceStore::before_check(const Round& round) {
  // The run's length only matters after the sync.
  pre_hash_ = layout_hash(round.index, -1, false);
}

// Slice store: the layout after the sync reassembles into exactly the model
// the layout before it held (the exchange moved every element to the right
// place, unchanged); every rank has the same averaged shared bias; with the
// parameter server each worker's slice equals rank 0's copy; when rank 0
// gathered the model (eval, last round) it equals the reassembly.
void SliceStore::check(const Round& round, int num_rounds, SyncStats& stats) {
  const auto& c = header_.config;
  const int r = round.index, rank = ctx_.rank, S = ctx_.world;
  const bool last = r + 1 == num_rounds;
  std::uint64_t shared_hash = kFnvOffset;
  for (int b = 0; b < int(store_.size()); ++b)
    for (int p = 0; p < int(store_[std::size_t(b)].size()); ++p)
      if (plan_.param(b, p).role == IstRole::shared)
        shared_hash = (shared_hash ^ hash_tensor(store_[std::size_t(b)][std::size_t(p)])) * kFnvPrime;
  std::uint64_t slice_hash = 0;
  const bool ps = c.ist_sync == IstSync::parameter_server;
  if (ps && !last && rank != 0 && S > 1) slice_hash = set_hash({IstSetKind::trained, r + 1, rank});
  const std::string prefix = "isthash/" + std::to_string(r) + "/";
  ctx_.kv->set(prefix + std::to_string(rank), std::to_string(pre_hash_) + " " +
                                                  std::to_string(layout_hash(r, num_rounds, true)) + " " +
                                                  std::to_string(shared_hash) + " " + std::to_string(slice_hash));
  if (rank != 0) return;
  std::uint64_t pre = 0, post = 0;
  for (int w = 0; w < S; ++w) {
    std::istringstream in(ctx_.kv->get(prefix + std::to_string(w)));
    std::uint64_t a, b, sh, sl;
    in >> a >> b >> sh >> sl;
    pre += a;
    post += b;
    if (w == 0) continue;
    ++stats.copies;
    if (sh != shared_hash)
      die(0, "after the sync of round " + std::to_string(r) + " ranks 0 and " + std::to_string(w) +
                 " hold different shared parameters");
    if (ps && !last) {
      ++stats.copies;
      if (sl != set_hash({IstSetKind::trained, r + 1, w}))
        die(0, "after the scatter of round " + std::to_string(r) + " rank " + std::to_string(w) +
                   "'s slice differs from rank 0's model");
    }
  }
  if (pre != post)
    die(0, "after the sync of round " + std::to_string(r) +
               " the ranks' pieces do not reassemble into the model trained before it");
  if ((round.evaluate || last) && S > 1 && set_hash({IstSetKind::all, -1, -1}) != post)
    die(0, "round " + std::to_string(r) + ": the model gathered at rank 0 differs from the ranks' pieces");
  ++stats.rounds;
}

}  // namespace resist::runtime
