#include "schedule/check.hpp"

#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "models/error.hpp"

namespace resist {

namespace {

std::string block_name(const ModelSpec& spec, int b) {
  return "block " + std::to_string(b) + " (" + spec.blocks[std::size_t(b)].name + ")";
}

std::string op_path(int r, std::size_t k) { return "rounds[" + std::to_string(r) + "].sync[" + std::to_string(k) + "]"; }

// Rounds numbered in order, iterations adding up, ops well-formed.
void check_structure(const ModelSpec& spec, const Schedule& s) {
  const int nblocks = int(spec.blocks.size());
  std::vector<char> shared(std::size_t(nblocks), 0);
  for (std::size_t i = 0; i < s.shared_blocks.size(); ++i) {
    if (shared[std::size_t(s.shared_blocks[i])])
      throw UserError("shared_blocks[" + std::to_string(i) + "]: " + block_name(spec, s.shared_blocks[i]) + " twice");
    shared[std::size_t(s.shared_blocks[i])] = 1;
  }
  if (s.rounds.empty()) throw UserError("rounds: must not be empty");
  std::int64_t iters = 0;
  for (std::size_t r = 0; r < s.rounds.size(); ++r) {
    const Round& round = s.rounds[r];
    const std::string at = "rounds[" + std::to_string(r) + "]";
    if (round.index != int(r)) throw UserError(at + ".index: must be " + std::to_string(r) + " (got " + std::to_string(round.index) + ")");
    if (round.local_iters < 1) throw UserError(at + ".local_iters: must be >= 1");
    iters += round.local_iters;
    for (std::size_t w = 0; w < round.workers.size(); ++w) {
      std::vector<char> seen(std::size_t(nblocks), 0);
      for (int b : round.workers[w].blocks) {
        const std::string wat = at + ".workers[" + std::to_string(w) + "]";
        if (seen[std::size_t(b)]) throw UserError(wat + ": " + block_name(spec, b) + " twice");
        if (shared[std::size_t(b)] && s.holding == Holding::blocks)
          throw UserError(wat + ": " + block_name(spec, b) + " is a shared block (every rank trains it)");
        seen[std::size_t(b)] = 1;
      }
    }
    for (std::size_t k = 0; k < round.sync.size(); ++k) {
      const CommOp& op = round.sync[k];
      auto sorted = op.ranks;
      std::sort(sorted.begin(), sorted.end());
      if (std::adjacent_find(sorted.begin(), sorted.end()) != sorted.end())
        throw UserError(op_path(int(r), k) + ".ranks: a rank appears twice");
      auto blocks = op.blocks;
      std::sort(blocks.begin(), blocks.end());
      if (std::adjacent_find(blocks.begin(), blocks.end()) != blocks.end())
        throw UserError(op_path(int(r), k) + ".blocks: a block appears twice");
      if (op.blocks.empty()) throw UserError(op_path(int(r), k) + ".blocks: must not be empty");
    }
  }
  if (iters != s.total_iters)
    throw UserError("total_iters: must equal the rounds' local_iters summed (" + std::to_string(iters) + ", got " +
                    std::to_string(s.total_iters) + ")");
}

// Whose updates a copy contains: ids of interned sorted rank sets.
class Contributions {
 public:
  static constexpr int kNone = -1;  // no usable copy
  int single(int rank) { return intern({rank}); }
  int merge(const std::vector<int>& ids) {
    std::vector<int> all;
    for (int id : ids) all.insert(all.end(), sets_[std::size_t(id)].begin(), sets_[std::size_t(id)].end());
    std::sort(all.begin(), all.end());
    all.erase(std::unique(all.begin(), all.end()), all.end());
    return intern(std::move(all));
  }
  int intern(std::vector<int> set) {
    auto [it, fresh] = index_.try_emplace(set, int(sets_.size()));
    if (fresh) sets_.push_back(std::move(set));
    return it->second;
  }
  void clear() {
    sets_.clear();
    index_.clear();
  }

 private:
  std::vector<std::vector<int>> sets_;
  std::map<std::vector<int>, int> index_;
};

struct Walk {
  const ModelSpec& spec;
  const Schedule& s;
  int S, nblocks;
  Contributions sets;
  std::vector<std::vector<int>> state;     // [rank][block]: contribution id or kNone
  std::vector<std::vector<char>> complete;  // [rank][block]: holds the full average of the last round
  std::vector<char> synced;                 // [block]: an op of the last round carried its parameters

  std::vector<int> trains(int r, int w) const { return trained_blocks(s, s.rounds[std::size_t(r)], w); }
  // Layer-parallel replicas average a stage every ℓ rounds (one iteration
  // each): in between, a copy no op carried continues on the rank that holds it.
  bool local_periods() const { return !s.stages.empty(); }

  // Training: every rank starts from the complete average (or, between a
  // layer-parallel stage's averagings, from its own copy) and adds its update.
  std::vector<int> train(int r) {
    std::vector<std::vector<int>> trainers{std::size_t(nblocks)};
    for (int w = 0; w < S; ++w) {
      const std::vector<int> before = state[std::size_t(w)];
      std::fill(state[std::size_t(w)].begin(), state[std::size_t(w)].end(), Contributions::kNone);
      for (int b : trains(r, w)) {
        const bool continues = r > 0 && local_periods() && !synced[std::size_t(b)] &&
                               before[std::size_t(b)] != Contributions::kNone;
        if (continues) {
          state[std::size_t(w)][std::size_t(b)] = sets.merge({before[std::size_t(b)], sets.single(w)});
          trainers[std::size_t(b)].push_back(state[std::size_t(w)][std::size_t(b)]);
          continue;
        }
        if (r > 0 && !complete[std::size_t(w)][std::size_t(b)]) {
          const bool shared = std::find(s.shared_blocks.begin(), s.shared_blocks.end(), b) != s.shared_blocks.end();
          throw UserError("rounds[" + std::to_string(r) + "].workers[" + std::to_string(w) + "]: " +
                          (shared ? "trains shared " : "trains ") + block_name(spec, b) +
                          " without the average of round " + std::to_string(r - 1) + "'s updates (no op of rounds[" +
                          std::to_string(r - 1) + "].sync brought it to rank " + std::to_string(w) + ")");
        }
        state[std::size_t(w)][std::size_t(b)] = sets.single(w);
        trainers[std::size_t(b)].push_back(state[std::size_t(w)][std::size_t(b)]);
      }
    }
    std::fill(synced.begin(), synced.end(), 0);
    std::vector<int> expected(std::size_t(nblocks), int(Contributions::kNone));
    for (int b = 0; b < nblocks; ++b)
      if (!trainers[std::size_t(b)].empty()) expected[std::size_t(b)] = sets.merge(trainers[std::size_t(b)]);
    return expected;
  }

  void run_op(int r, std::size_t k) {
    const CommOp& op = s.rounds[std::size_t(r)].sync[k];
    // Activations and auxiliary heads carry no block's parameters.
    if (op.payload == Payload::activations || op.payload == Payload::aux) return;
    for (int b : op.blocks) {
      if (op.payload != Payload::eval) synced[std::size_t(b)] = 1;
      const auto has = [&](std::size_t i) {
        const int rank = op.ranks[i];
        if (state[std::size_t(rank)][std::size_t(b)] == Contributions::kNone)
          throw UserError(op_path(r, k) + ".ranks[" + std::to_string(i) + "]: rank " + std::to_string(rank) +
                          " does not hold " + block_name(spec, b) + ", which this " + to_string(op.kind) + " carries");
        return state[std::size_t(rank)][std::size_t(b)];
      };
      if (op.payload == Payload::eval) {  // read only: rank 0 evaluates a gathered copy
        has(0);
        continue;
      }
      if (op.kind == OpKind::allreduce || op.kind == OpKind::reduce) {
        std::vector<int> ids;
        for (std::size_t i = 0; i < op.ranks.size(); ++i) ids.push_back(has(i));
        const int merged = sets.merge(ids);
        for (std::size_t i = 0; i < op.ranks.size(); ++i)
          if (op.kind == OpKind::allreduce || i == 0) state[std::size_t(op.ranks[i])][std::size_t(b)] = merged;
      } else {
        const int from = has(0);
        for (std::size_t i = 1; i < op.ranks.size(); ++i) state[std::size_t(op.ranks[i])][std::size_t(b)] = from;
      }
    }
  }
};

}  // namespace

void check_schedule(const ModelSpec& spec, const Schedule& s) {
  check_structure(spec, s);
  if (s.holding == Holding::slices) return;  // IST: neuron pieces, checked as they are read
  Walk walk{spec, s, s.config.workers, int(spec.blocks.size()), {}, {}, {}, {}};
  walk.state.assign(std::size_t(walk.S), std::vector<int>(std::size_t(walk.nblocks), Contributions::kNone));
  walk.complete.assign(std::size_t(walk.S), std::vector<char>(std::size_t(walk.nblocks), 0));
  walk.synced.assign(std::size_t(walk.nblocks), 0);
  const int R = int(s.rounds.size());
  for (int r = 0; r < R; ++r) {
    if (!walk.local_periods()) walk.sets.clear();  // a continuing copy keeps its id
    const std::vector<int> expected = walk.train(r);
    for (std::size_t k = 0; k < s.rounds[std::size_t(r)].sync.size(); ++k) walk.run_op(r, k);
    for (int w = 0; w < walk.S; ++w)
      for (int b = 0; b < walk.nblocks; ++b)
        walk.complete[std::size_t(w)][std::size_t(b)] =
            expected[std::size_t(b)] != Contributions::kNone && walk.state[std::size_t(w)][std::size_t(b)] == expected[std::size_t(b)];
  }
  for (int b = 0; b < walk.nblocks; ++b)
    if (!walk.complete[0][std::size_t(b)])
      throw UserError("rounds[" + std::to_string(R - 1) + "].sync: after the last round rank 0 lacks the average of " +
                      block_name(spec, b) + " (the final model is assembled at rank 0)");
}

}  // namespace resist
