#include "schedule/collectives.hpp"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <limits>
#include <unordered_map>

#include "models/error.hpp"

namespace resist {

// ------------------------------------------------------------- names

const char* to_string(Collective c) {
  switch (c) {
    case Collective::allreduce: return "allreduce";
    case Collective::reduce: return "reduce";
    case Collective::broadcast: return "broadcast";
    case Collective::send: return "send";
    case Collective::allgather: return "allgather";
    case Collective::reduce_scatter: return "reduce-scatter";
  }
  return "?";
}

Collective parse_collective(const std::string& s) {
  for (Collective c : {Collective::allreduce, Collective::reduce, Collective::broadcast, Collective::send,
                       Collective::allgather, Collective::reduce_scatter})
    if (s == to_string(c)) return c;
  throw UserError("--op: unknown value '" + s +
                  "' (accepted: allreduce, reduce, broadcast, send, allgather, reduce-scatter)");
}

Collective collective_of(OpKind k) {
  switch (k) {
    case OpKind::allreduce: return Collective::allreduce;
    case OpKind::reduce: return Collective::reduce;
    case OpKind::broadcast: return Collective::broadcast;
    case OpKind::send: return Collective::send;
  }
  return Collective::send;
}

const char* to_string(Algorithm a) {
  switch (a) {
    case Algorithm::automatic: return "auto";
    case Algorithm::ring: return "ring";
    case Algorithm::tree: return "tree";
    case Algorithm::hd: return "hd";
    case Algorithm::hierarchical: return "hierarchical";
    case Algorithm::chain: return "chain";
    case Algorithm::direct: return "direct";
    case Algorithm::binomial: return "binomial";
  }
  return "?";
}

const std::vector<Algorithm>& algorithms_for(Collective c) {
  static const std::vector<Algorithm> allreduce = {Algorithm::ring, Algorithm::tree, Algorithm::binomial,
                                                   Algorithm::hd, Algorithm::hierarchical};
  static const std::vector<Algorithm> rooted = {Algorithm::chain, Algorithm::tree};
  static const std::vector<Algorithm> ring = {Algorithm::ring};
  static const std::vector<Algorithm> direct = {Algorithm::direct};
  switch (c) {
    case Collective::allreduce: return allreduce;
    case Collective::reduce:
    case Collective::broadcast: return rooted;
    case Collective::allgather:
    case Collective::reduce_scatter: return ring;
    case Collective::send: return direct;
  }
  return direct;
}

Algorithm parse_algorithm(Collective c, const std::string& s, const std::string& flag) {
  if (s == "auto") return Algorithm::automatic;
  std::string accepted = "auto";
  for (Algorithm a : algorithms_for(c)) {
    if (s == to_string(a)) return a;
    accepted += std::string(", ") + to_string(a);
  }
  throw UserError(flag + ": unknown " + to_string(c) + " algorithm '" + s + "' (accepted: " + accepted + ")");
}

// ------------------------------------------------------------- chunks

Chunk ring_chunk(std::uint64_t elements, int n, int c) {
  assert(n > 0 && c >= 0 && c < n);
  const std::uint64_t base = elements / n, extra = elements % n;
  const std::uint64_t uc = std::uint64_t(c);
  return {uc * base + std::min(uc, extra), base + (uc < extra ? 1 : 0)};
}

int chain_chunks(std::uint64_t elements, std::uint64_t chunk_bytes) {
  const std::uint64_t per = std::max<std::uint64_t>(1, chunk_bytes / 4);
  return int(std::max<std::uint64_t>(1, (elements + per - 1) / per));
}

int double_tree_chunks(std::uint64_t elements, std::uint64_t chunk_bytes) {
  return chain_chunks(elements - elements / 2, chunk_bytes);
}

int double_tree_message_times(int n, int chunks) {
  if (n < 2) return 0;
  if (n == 2) return 2 * chunks;
  int k = 0;
  while ((2 << k) <= n) ++k;
  const int R = 2 * k - 1 + ((n & (n + 1)) == 0 ? 1 : 0);
  const int delta = chunks == 1 && k >= 3 && n <= (1 << k) + (1 << (k - 1)) - 2 ? 1 : 0;
  return 4 * (chunks - 1) + 2 * R - 2 * delta;
}

namespace {

int mod(int a, int n) { return ((a % n) + n) % n; }
int ceil_log2(int n) {
  int l = 0;
  while ((1 << l) < n) ++l;
  return l;
}

}  // namespace

// ------------------------------------------------------------- step sources

// One algorithm's steps over local positions 0..n-1.
class StepSource {
 public:
  virtual ~StepSource() = default;
  virtual int steps() const = 0;
  // Appends the transfers of step k (all, or those `pos` sends or receives).
  virtual void at(int k, int pos, std::vector<Transfer>& out) const = 0;
};

namespace {

using Source = std::shared_ptr<const StepSource>;

class Empty : public StepSource {
 public:
  int steps() const override { return 0; }
  void at(int, int, std::vector<Transfer>&) const override {}
};

// n-1 steps; at step s position i sends ring_chunk (i + shift - s) mod n to i + 1.
class RingPhase : public StepSource {
 public:
  RingPhase(int n, std::uint64_t elements, int shift, bool add) : n_(n), e_(elements), shift_(shift), add_(add) {}
  int steps() const override { return n_ - 1; }
  void at(int s, int pos, std::vector<Transfer>& out) const override {
    if (pos < 0) {  // all n transfers: walk the chunks without a division each (hot at 8,192 ranks)
      const std::uint64_t base = e_ / n_, extra = e_ % n_;
      std::uint64_t c = std::uint64_t(mod(shift_ - s, n_));
      const std::size_t first = out.size();
      out.resize(first + std::size_t(n_));
      for (int i = 0; i < n_; ++i) {
        out[first + i] = {i, i + 1 == n_ ? 0 : i + 1, c * base + std::min(c, extra), base + (c < extra ? 1 : 0), add_};
        if (++c == std::uint64_t(n_)) c = 0;
      }
      return;
    }
    out.push_back(from(pos, s));
    out.push_back(from(mod(pos - 1, n_), s));
  }

 private:
  Transfer from(int i, int s) const {
    const Chunk c = ring_chunk(e_, n_, mod(i + shift_ - s, n_));
    return {i, mod(i + 1, n_), c.offset, c.count, add_};
  }
  int n_;
  std::uint64_t e_;
  int shift_;
  bool add_;
};

// Pipelined chain through `order`-indices 0 -> 1 -> ... -> n-1 (positions
// reversed when `towards_root`): at step t index j sends chunk t - j to j + 1.
class Chain : public StepSource {
 public:
  Chain(int n, std::uint64_t elements, int chunks, bool towards_root)
      : n_(n), e_(elements), c_(chunks), reverse_(towards_root) {}
  int steps() const override { return n_ - 1 + c_ - 1; }
  void at(int t, int pos, std::vector<Transfer>& out) const override {
    if (pos < 0) {
      for (int j = std::max(0, t - c_ + 1); j <= std::min(t, n_ - 2); ++j) out.push_back(from(j, t));
      return;
    }
    const int j = reverse_ ? n_ - 1 - pos : pos;
    if (j + 1 < n_ && t - j >= 0 && t - j < c_) out.push_back(from(j, t));
    if (j > 0 && t - j + 1 >= 0 && t - j + 1 < c_) out.push_back(from(j - 1, t));
  }

 private:
  int position(int j) const { return reverse_ ? n_ - 1 - j : j; }
  Transfer from(int j, int t) const {
    const Chunk c = ring_chunk(e_, c_, t - j);
    return {position(j), position(j + 1), c.offset, c.count, reverse_};
  }
  int n_;
  std::uint64_t e_;
  int c_;
  bool reverse_;
};

// Binomial tree rooted at position 0. Reduce: at step k every position p with
// p mod 2^(k+1) = 2^k sends its (partial) sum to p - 2^k. Broadcast: at step
// k, with d = 2^(L-1-k), every p with p mod 2d = 0 sends to p + d.
class Binomial : public StepSource {
 public:
  Binomial(int n, std::uint64_t elements, bool reduce) : n_(n), e_(elements), reduce_(reduce), L_(ceil_log2(n)) {}
  int steps() const override { return L_; }
  void at(int k, int pos, std::vector<Transfer>& out) const override {
    const int d = reduce_ ? 1 << k : 1 << (L_ - 1 - k);
    // Reduce: senders are p ≡ d (mod 2d), receivers p ≡ 0; broadcast the other way.
    auto sender = [&](int p) { return reduce_ ? p % (2 * d) == d : p % (2 * d) == 0 && p + d < n_; };
    auto emit = [&](int p) { out.push_back({p, reduce_ ? p - d : p + d, 0, e_, reduce_}); };
    if (pos < 0) {
      for (int p = 0; p < n_; ++p)
        if (sender(p)) emit(p);
      return;
    }
    if (sender(pos)) emit(pos);
    const int peer = reduce_ ? pos + d : pos - d;
    if (peer >= 0 && peer < n_ && sender(peer) && (reduce_ ? peer - d : peer + d) == pos) emit(peer);
  }

 private:
  int n_;
  std::uint64_t e_;
  bool reduce_;
  int L_;
};

// Double binary tree: two binary trees over the n positions, tree t reducing
// then broadcasting its half of the buffer (t = 0 the first ⌈e/2⌉ elements,
// t = 1 the rest) in C chunks. Both are the heap of n nodes (node j's children
// 2j+1 and 2j+2, root 0); position r is node r of tree 0 and node b(r) of
// tree 1, b(r) = n-1-r for even n; for odd n b(0) = n-1, b(n-1) = n-2 and
// b(r) = n-2-r otherwise. So no position is interior in both trees, and a
// position is a left child (odd j) in one tree where it is a right child in the
// other. Slots: left children send at even steps, right children at odd ones,
// so no position sends or receives twice in one step. Node j sends chunk c up
// at step off(j) + 2c, off(j) the least step of j's parity after its children's
// (leaves: 0 or 1); the reduce takes H = 2(C-1) + max off + 1 steps. The
// broadcast runs it backwards: its step H-1-s carries down what step s carried
// up, chunk C-1-c for chunk c.
class DoubleTree : public StepSource {
 public:
  DoubleTree(int n, std::uint64_t elements, int chunks) : n_(n), e_(elements), C_(chunks), off_(std::size_t(n), 0) {
    int top = 0;
    for (int j = n - 1; j >= 1; --j) {
      int o = 0;
      for (int c = 2 * j + 1; c <= 2 * j + 2 && c < n; ++c) o = std::max(o, off_[c] + 1);
      if (o % 2 != slot(j)) ++o;
      off_[j] = o;
      top = std::max(top, o);
    }
    half_ = 2 * (C_ - 1) + top + 1;
  }
  int steps() const override { return 2 * half_; }
  void at(int k, int pos, std::vector<Transfer>& out) const override {
    const bool up = k < half_;
    const int s = up ? k : 2 * half_ - 1 - k;  // the reduce step this one mirrors
    for (int t = 0; t < 2; ++t) {
      if (pos < 0) {
        for (int j = 1; j < n_; ++j) emit(t, j, s, up, out);
        continue;
      }
      const int j = node(t, pos);
      if (j > 0) emit(t, j, s, up, out);
      for (int c = 2 * j + 1; c <= 2 * j + 2 && c < n_; ++c) emit(t, c, s, up, out);
    }
  }

 private:
  static int slot(int j) { return j % 2 == 1 ? 0 : 1; }
  int node(int t, int pos) const {
    if (t == 0) return pos;
    if (n_ % 2 == 0) return n_ - 1 - pos;
    return pos == 0 ? n_ - 1 : pos == n_ - 1 ? n_ - 2 : n_ - 2 - pos;
  }
  int position(int t, int j) const {
    if (t == 0) return j;
    if (n_ % 2 == 0) return n_ - 1 - j;
    return j == n_ - 1 ? 0 : j == n_ - 2 ? n_ - 1 : n_ - 2 - j;
  }
  // The message of node j's edge at reduce step s, if any: up (reduce) or down (broadcast).
  void emit(int t, int j, int s, bool up, std::vector<Transfer>& out) const {
    const int d = s - off_[j];
    if (d < 0 || d % 2 != 0 || d / 2 >= C_) return;
    const int c = up ? d / 2 : C_ - 1 - d / 2;
    const std::uint64_t first = e_ - e_ / 2, base = t == 0 ? 0 : first;
    const Chunk ch = ring_chunk(t == 0 ? first : e_ / 2, C_, c);
    const int child = position(t, j), parent = position(t, (j - 1) / 2);
    out.push_back({up ? child : parent, up ? parent : child, base + ch.offset, ch.count, up});
  }
  int n_;
  std::uint64_t e_;
  int C_;
  std::vector<int> off_;  // per heap node
  int half_ = 0;
};

// Recursive halving-doubling over p = 2^L ≤ n virtual ranks; positions 2j+1
// for j < r = n - p first add their buffer into 2j and get the result back
// at the end. Virtual rank v sits at position v < r ? 2v : v + r. Halving step
// h, d = p / 2^(h+1): v keeps the half of its range [lo, lo + 2d) of the p
// chunks that holds chunk v and sends the other half to v xor d, which adds
// it. Doubling step h, d = 2^h: v sends its range [lo, lo + d) to v xor d.
class HalvingDoubling : public StepSource {
 public:
  HalvingDoubling(int n, std::uint64_t elements) : n_(n), e_(elements) {
    L_ = 0;
    while ((2 << L_) <= n) ++L_;
    p_ = 1 << L_;
    r_ = n - p_;
  }
  int steps() const override { return 2 * L_ + (r_ > 0 ? 2 : 0); }
  void at(int k, int pos, std::vector<Transfer>& out) const override {
    const int extra = r_ > 0 ? 1 : 0;
    if (extra && (k == 0 || k == steps() - 1)) {
      const bool pre = k == 0;
      for (int j = 0; j < r_; ++j) {
        if (pos >= 0 && pos != 2 * j && pos != 2 * j + 1) continue;
        out.push_back(pre ? Transfer{2 * j + 1, 2 * j, 0, e_, true} : Transfer{2 * j, 2 * j + 1, 0, e_, false});
      }
      return;
    }
    const int h = k - extra;
    const bool halving = h < L_;
    const int d = halving ? p_ >> (h + 1) : 1 << (h - L_);
    if (pos < 0) {
      for (int v = 0; v < p_; ++v) out.push_back(from(v, d, halving));
      return;
    }
    const int v = virtual_of(pos);
    if (v < 0) return;
    out.push_back(from(v, d, halving));
    out.push_back(from(v ^ d, d, halving));
  }

 private:
  int position(int v) const { return v < r_ ? 2 * v : v + r_; }
  int virtual_of(int pos) const {
    if (pos >= 2 * r_) return pos - r_;
    return pos % 2 == 0 ? pos / 2 : -1;
  }
  std::uint64_t offset(int c) const { return c >= p_ ? e_ : ring_chunk(e_, p_, c).offset; }
  Transfer from(int v, int d, bool halving) const {
    int a, b;  // chunk range sent
    if (halving) {
      const int lo = v & ~(2 * d - 1);
      a = (v & d) ? lo : lo + d;
      b = a + d;
    } else {
      a = v & ~(d - 1);
      b = a + d;
    }
    return {position(v), position(v ^ d), offset(a), offset(b) - offset(a), halving};
  }
  int n_;
  std::uint64_t e_;
  int L_ = 0, p_ = 1, r_ = 0;
};

class Direct : public StepSource {
 public:
  explicit Direct(std::uint64_t elements) : e_(elements) {}
  int steps() const override { return 1; }
  void at(int, int, std::vector<Transfer>& out) const override { out.push_back({0, 1, 0, e_, false}); }

 private:
  std::uint64_t e_;
};

// Phases one after the other.
class Sequence : public StepSource {
 public:
  explicit Sequence(std::vector<Source> phases) : phases_(std::move(phases)) {}
  int steps() const override {
    int s = 0;
    for (const auto& p : phases_) s += p->steps();
    return s;
  }
  void at(int k, int pos, std::vector<Transfer>& out) const override {
    for (const auto& p : phases_) {
      if (k < p->steps()) return p->at(k, pos, out);
      k -= p->steps();
    }
  }

 private:
  std::vector<Source> phases_;
};

// Disjoint groups of positions running their own sources side by side.
class Parallel : public StepSource {
 public:
  Parallel(int n, std::vector<std::vector<int>> groups, std::vector<Source> sources)
      : groups_(std::move(groups)), sources_(std::move(sources)), group_of_(n, -1), local_of_(n, -1) {
    for (int g = 0; g < int(groups_.size()); ++g)
      for (int l = 0; l < int(groups_[g].size()); ++l) {
        group_of_[groups_[g][l]] = g;
        local_of_[groups_[g][l]] = l;
      }
  }
  int steps() const override {
    int s = 0;
    for (const auto& src : sources_) s = std::max(s, src->steps());
    return s;
  }
  void at(int k, int pos, std::vector<Transfer>& out) const override {
    if (pos < 0) {
      for (int g = 0; g < int(groups_.size()); ++g) emit(g, k, -1, out);
    } else if (group_of_[pos] >= 0) {
      emit(group_of_[pos], k, local_of_[pos], out);
    }
  }

 private:
  void emit(int g, int k, int local, std::vector<Transfer>& out) const {
    if (k >= sources_[g]->steps()) return;
    const std::size_t first = out.size();
    sources_[g]->at(k, local, out);
    for (std::size_t i = first; i < out.size(); ++i) {
      out[i].src = groups_[g][out[i].src];
      out[i].dst = groups_[g][out[i].dst];
    }
  }
  std::vector<std::vector<int>> groups_;
  std::vector<Source> sources_;
  std::vector<int> group_of_, local_of_;
};

Source ring_allreduce(int n, std::uint64_t e) {
  return std::make_shared<Sequence>(
      std::vector<Source>{std::make_shared<RingPhase>(n, e, 0, true), std::make_shared<RingPhase>(n, e, 1, false)});
}

// Positions grouped by node (nodes in order of first appearance, members in op order).
std::vector<std::vector<int>> by_node(const std::vector<int>& ranks, int ranks_per_node) {
  std::vector<std::vector<int>> nodes;
  std::unordered_map<int, int> index;  // node -> its entry in `nodes`
  for (int pos = 0; pos < int(ranks.size()); ++pos) {
    const int node = ranks[pos] / std::max(1, ranks_per_node);
    const auto [it, fresh] = index.try_emplace(node, int(nodes.size()));
    if (fresh) nodes.emplace_back();
    nodes[it->second].push_back(pos);
  }
  return nodes;
}

Source hierarchical(const std::vector<int>& ranks, std::uint64_t e, int ranks_per_node) {
  const int n = int(ranks.size());
  const auto nodes = by_node(ranks, ranks_per_node);
  std::vector<Source> reduce, bcast;
  std::vector<int> leaders;
  for (const auto& members : nodes) {
    const int m = int(members.size());
    reduce.push_back(std::make_shared<Binomial>(m, e, true));
    bcast.push_back(std::make_shared<Binomial>(m, e, false));
    leaders.push_back(members[0]);
  }
  const int N = int(leaders.size());
  return std::make_shared<Sequence>(std::vector<Source>{
      std::make_shared<Parallel>(n, nodes, reduce),
      std::make_shared<Parallel>(n, std::vector<std::vector<int>>{leaders}, std::vector<Source>{ring_allreduce(N, e)}),
      std::make_shared<Parallel>(n, nodes, bcast)});
}

Source make_source(Collective c, Algorithm a, const std::vector<int>& ranks, std::uint64_t e,
                   const CollectiveOptions& o) {
  const int n = int(ranks.size());
  if (n < 2) return std::make_shared<Empty>();
  switch (c) {
    case Collective::allreduce:
      if (a == Algorithm::tree) return std::make_shared<DoubleTree>(n, e, double_tree_chunks(e, o.chunk_bytes));
      if (a == Algorithm::binomial)
        return std::make_shared<Sequence>(
            std::vector<Source>{std::make_shared<Binomial>(n, e, true), std::make_shared<Binomial>(n, e, false)});
      if (a == Algorithm::hd) return std::make_shared<HalvingDoubling>(n, e);
      if (a == Algorithm::hierarchical) return hierarchical(ranks, e, o.ranks_per_node);
      return ring_allreduce(n, e);
    case Collective::reduce:
    case Collective::broadcast: {
      const bool reduce = c == Collective::reduce;
      if (a == Algorithm::tree) return std::make_shared<Binomial>(n, e, reduce);
      return std::make_shared<Chain>(n, e, chain_chunks(e, o.chunk_bytes), reduce);
    }
    case Collective::allgather: return std::make_shared<RingPhase>(n, e, 0, false);
    case Collective::reduce_scatter: return std::make_shared<RingPhase>(n, e, -1, true);
    case Collective::send: return std::make_shared<Direct>(e);
  }
  return std::make_shared<Empty>();
}

}  // namespace

Algorithm configured_algorithm(Collective c, const CollectiveOptions& o) {
  switch (c) {
    case Collective::allreduce: return o.allreduce;
    case Collective::reduce: return o.reduce;
    case Collective::broadcast: return o.broadcast;
    default: return algorithms_for(c).front();
  }
}

// ------------------------------------------------------------- plan

CollectivePlan::CollectivePlan(Collective c, Algorithm algorithm, const std::vector<int>& ranks,
                               std::uint64_t elements, const CollectiveOptions& options)
    : collective_(c), algorithm_(algorithm), ranks_(ranks), elements_(elements) {
  if (algorithm_ == Algorithm::automatic) algorithm_ = choose_algorithm(c, ranks, 4 * elements, options);
  const auto& ok = algorithms_for(c);
  assert(std::find(ok.begin(), ok.end(), algorithm_) != ok.end());
  (void)ok;
  assert(c != Collective::send || ranks.size() == 2);
  source_ = make_source(c, algorithm_, ranks_, elements_, options);
}

CollectivePlan::CollectivePlan(const CommOp& op, const CollectiveOptions& options)
    : CollectivePlan(collective_of(op.kind), configured_algorithm(collective_of(op.kind), options), op.ranks, op.bytes / 4,
                     options) {}

int CollectivePlan::steps() const { return source_->steps(); }

void CollectivePlan::transfers(int k, int position, std::vector<Transfer>& out) const {
  source_->at(k, position, out);
}

std::vector<std::uint64_t> ring_allreduce_bytes_sent(std::uint64_t elements, int n) {
  std::vector<std::uint64_t> sent(std::size_t(std::max(n, 0)), 0);
  if (n < 2) return sent;
  for (int i = 0; i < n; ++i)
    sent[std::size_t(i)] = 4 * (2 * elements - ring_chunk(elements, n, (i + 1) % n).count -
                                ring_chunk(elements, n, (i + 2) % n).count);
  return sent;
}

std::vector<std::uint64_t> CollectivePlan::bytes_received() const {
  const int n = size();
  if (collective_ == Collective::allreduce && algorithm_ == Algorithm::ring) {
    const auto sent = ring_allreduce_bytes_sent(elements_, n);  // i receives what i - 1 sends
    std::vector<std::uint64_t> got(sent.size(), 0);
    for (int i = 0; i < n && n > 1; ++i) got[std::size_t(i)] = sent[std::size_t((i + n - 1) % n)];
    return got;
  }
  std::vector<std::uint64_t> got(ranks_.size(), 0);
  std::vector<Transfer> t;
  for (int k = 0; k < steps(); ++k) {
    t.clear();
    transfers(k, -1, t);
    for (const auto& x : t) got[x.dst] += 4 * x.count;
  }
  return got;
}

std::vector<std::uint64_t> CollectivePlan::bytes_sent() const {
  if (collective_ == Collective::allreduce && algorithm_ == Algorithm::ring) return ring_allreduce_bytes_sent(elements_, size());
  std::vector<std::uint64_t> sent(ranks_.size(), 0);
  std::vector<Transfer> t;
  for (int k = 0; k < steps(); ++k) {
    t.clear();
    transfers(k, -1, t);
    for (const auto& x : t) sent[x.src] += 4 * x.count;
  }
  return sent;
}

// ------------------------------------------------------------- auto

double alpha_beta_s(Collective c, Algorithm a, int n, std::uint64_t bytes, double alpha, double B,
                    std::uint64_t chunk_bytes) {
  if (n < 2) return 0;
  const double M = double(bytes);
  const int L = ceil_log2(n);
  switch (c) {
    case Collective::allreduce:
      if (a == Algorithm::binomial) return 2.0 * L * (alpha + M / B);
      if (a == Algorithm::tree) {
        const int C = double_tree_chunks(bytes / 4, chunk_bytes);
        return double_tree_message_times(n, C) * (alpha + M / (2.0 * C * B));
      }
      if (a == Algorithm::hd) {
        int l = 0;
        while ((2 << l) <= n) ++l;
        const double p = double(1 << l);
        return 2.0 * l * alpha + 2.0 * (p - 1) / p * M / B + ((1 << l) < n ? 2.0 * (alpha + M / B) : 0.0);
      }
      return 2.0 * (n - 1) * (alpha + M / (double(n) * B));
    case Collective::reduce:
    case Collective::broadcast: {
      if (a == Algorithm::tree) return L * (alpha + M / B);
      const int C = chain_chunks(bytes / 4, chunk_bytes);
      return (n - 1 + C - 1) * (alpha + M / (double(C) * B));
    }
    case Collective::allgather:
    case Collective::reduce_scatter: return (n - 1) * (alpha + M / (double(n) * B));
    case Collective::send: return alpha + M / B;
  }
  return 0;
}

Algorithm choose_algorithm(Collective c, const std::vector<int>& ranks, std::uint64_t bytes,
                           const CollectiveOptions& o) {
  const auto& candidates = algorithms_for(c);
  if (candidates.size() == 1) return candidates.front();
  const auto nodes = by_node(ranks, o.ranks_per_node);
  bool shared_node = false;
  for (const auto& m : nodes) shared_node = shared_node || m.size() > 1;
  if (c == Collective::allreduce && nodes.size() > 1 && shared_node) return Algorithm::hierarchical;
  const bool one_node = nodes.size() == 1;
  const double alpha = one_node ? o.intra_latency_s : o.inter_latency_s;
  const double B = one_node ? o.intra_bandwidth_Bps : o.inter_bandwidth_Bps;
  Algorithm best = candidates.front();
  double best_s = std::numeric_limits<double>::infinity();
  for (Algorithm a : candidates) {
    if (a == Algorithm::hierarchical) continue;
    const double t = alpha_beta_s(c, a, int(ranks.size()), bytes, alpha, B, o.chunk_bytes);
    if (t < best_s * (1 - 1e-9)) best = a, best_s = t;
  }
  return best;
}

}  // namespace resist
