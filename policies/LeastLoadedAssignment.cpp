// Least-Loaded Expert Parallelism (Nguyen et al., arXiv 2601.17111, Alg. 2/3),
// the planner of `llep` and `llep-topo`. Below the imbalance threshold lambda
// the plan is EP's; above it the Least-Loaded Assignment (LLA) keeps each
// expert on its native rank up to the per-rank capacity m_alpha and spills the
// excess to the least-loaded other ranks in chunks of at least m slots (LLAS).
// Which rank takes a spilled chunk is the one hook (a template parameter, so
// plain LLEP pays nothing for it). docs/policies.md has the details.
//
// Every rank runs this once per step and layer, so it is written to be cheap
// (docs/performance.md, "Planner"): scratch buffers are reused per thread, and a
// plan allocates only what it returns.
#include "policies/LeastLoadedAssignment.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>
#include <numeric>
#include <stdexcept>

namespace moe {

MOE_DECLARE_POLICY(llep)

LlepParams llep_params_from(const PolicyParams& p) {
  check_declared(llep_param_specs(), p);
  return {p.number("alpha"), p.integer("min-chunk"), p.number("lambda")};
}

namespace {

/// Per-thread buffers of one planning call.
struct LlaScratch {
  std::vector<int64_t> loads;     // per expert: global load (column sums of the counts)
  std::vector<int64_t> key;       // per rank: assigned + pending (starts as the EP rank load)
  std::vector<uint64_t> packed;   // visit-order sort keys
  std::vector<int> order;         // experts in visit order
  std::vector<int> helper_stamp;  // per rank: 1 + the last expert it received a transfer of
};

LlaScratch& scratch() {
  thread_local LlaScratch s;
  return s;
}

/// Global load of each expert into `sums`: the column sums of the all-gathered
/// counts. The P x N reduction is the largest single cost of a plan at P = 64,
/// so it runs four rows at a time over plain pointers, which the compiler
/// vectorises.
void column_sums(const LoadMatrix& loads, std::vector<int64_t>& sums) {
  const size_t N = static_cast<size_t>(loads.num_experts);
  const int P = loads.num_ranks;
  sums.assign(N, 0);
  int64_t* out = sums.data();
  const int64_t* row = loads.counts.data();
  int r = 0;
  for (; r + 4 <= P; r += 4, row += 4 * N)
    for (size_t e = 0; e < N; ++e) out[e] += row[e] + row[N + e] + row[2 * N + e] + row[3 * N + e];
  for (; r < P; ++r, row += N)
    for (size_t e = 0; e < N; ++e) out[e] += row[e];
}

/// Experts with a nonzero load, by decreasing load, ties by smaller id.
void visit_order(const std::vector<int64_t>& loads, LlaScratch& s) {
  const int N = static_cast<int>(loads.size());
  s.order.clear();
  const int64_t max_load = N ? *std::max_element(loads.begin(), loads.end()) : 0;
  const int id_bits = std::bit_width(static_cast<unsigned>(N));
  if (id_bits < 63 && max_load < (int64_t{1} << (63 - id_bits))) {
    // Pack (max_load - load, id) into one integer: an ascending sort of plain
    // integers is the wanted order, without an indirect comparison.
    s.packed.clear();
    for (int e = 0; e < N; ++e)
      if (loads[e] > 0)
        s.packed.push_back((static_cast<uint64_t>(max_load - loads[e]) << id_bits) | static_cast<uint64_t>(e));
    std::sort(s.packed.begin(), s.packed.end());
    const uint64_t id_mask = (uint64_t{1} << id_bits) - 1;
    for (uint64_t k : s.packed) s.order.push_back(static_cast<int>(k & id_mask));
    return;
  }
  for (int e = 0; e < N; ++e)  // loads too large to pack
    if (loads[e] > 0) s.order.push_back(e);
  std::sort(s.order.begin(), s.order.end(),
            [&](int a, int b) { return loads[a] != loads[b] ? loads[a] > loads[b] : a < b; });
}

/// The rank other than `native` with the smallest (key, rank id). P is at most
/// a few hundred and only spills ask, so two passes over one contiguous array
/// beat keeping a heap up to date after every native visit: a min over four
/// independent lanes (a single running min is one long dependency chain), then
/// the first rank holding it. The native is hidden behind the largest key
/// while it scans.
int least_loaded_other(std::vector<int64_t>& key, int native) {
  constexpr int64_t kNone = std::numeric_limits<int64_t>::max();
  const int P = static_cast<int>(key.size());
  const int64_t native_key = key[native];
  key[native] = kNone;
  int64_t lane[4] = {kNone, kNone, kNone, kNone};
  int r = 0;
  for (; r + 4 <= P; r += 4)
    for (int l = 0; l < 4; ++l) lane[l] = std::min(lane[l], key[r + l]);
  for (; r < P; ++r) lane[0] = std::min(lane[0], key[r]);
  const int64_t least = std::min(std::min(lane[0], lane[1]), std::min(lane[2], lane[3]));
  int found = -1;  // stays -1 only when P == 1: there is no other rank
  for (r = 0; r < P; ++r)
    if (key[r] == least && r != native) {
      found = r;
      break;
    }
  key[native] = native_key;
  return found;
}

/// Appends [start, end) for `rank`, merging with the previous range when the
/// same rank continues it (a forced remainder right after its own chunk).
void append_range(SlotRangeList& ranges, int rank, int64_t start, int64_t end) {
  if (!ranges.empty() && ranges.back().rank == rank && ranges.back().end == start) {
    ranges.back().end = end;
    return;
  }
  ranges.push_back({rank, start, end});
}

/// LLAS's rule for a chunk of c slots out of `remainder`: worth giving when it
/// is > 0 and not a too-small chunk (c < m while more than c remains).
bool chunk_qualifies(int64_t c, int64_t remainder, int64_t m) { return c > 0 && !(c < m && remainder > c); }

/// The helper hooks: given q, the least-loaded other rank, which rank takes
/// the next chunk of the remainder.
struct LeastLoadedHelper {  // plain LLEP: q
  int operator()(const std::vector<int64_t>& /*key*/, int /*native*/, int q, int64_t /*remainder*/, int64_t /*m_alpha*/,
                 int64_t /*m*/) const {
    return q;
  }
};

struct SameNodeHelper {  // llep-topo: NodePreference's rule
  NodePreference pref;
  int operator()(const std::vector<int64_t>& key, int native, int q, int64_t remainder, int64_t m_alpha,
                 int64_t m) const {
    const int rpn = pref.ranks_per_node;
    const int node = node_of(native, rpn);
    if (node_of(q, rpn) == node) return q;  // q is on the native's node already (always, with one node)
    const int first = node * rpn;
    const int last = std::min(static_cast<int>(key.size()), first + rpn);
    int h = -1;  // least (key, id) on the node, the native excluded
    for (int r = first; r < last; ++r)
      if (r != native && (h < 0 || key[r] < key[h])) h = r;
    if (h < 0) return q;
    if (!(static_cast<double>(key[h]) <= (1.0 + pref.tolerance) * static_cast<double>(key[q]))) return q;
    if (!chunk_qualifies(std::min(remainder, m_alpha - key[h]), remainder, m)) return q;
    return h;
  }
};

/// LLA; s.key holds the EP rank loads (all pending, nothing assigned yet).
template <class Helper>
Plan least_loaded_assignment(const std::vector<int64_t>& loads, int P, const LlepParams& params,
                             const std::string& name, LlaScratch& s, const Helper& pick_helper) {
  const int N = static_cast<int>(loads.size());
  const int M = N / P;
  const int64_t total = std::accumulate(loads.begin(), loads.end(), int64_t{0});
  // m_alpha = max(1, floor(alpha * floor(total / P))). No key ever exceeds
  // the total, so a capacity beyond it behaves as the total does (and a huge
  // alpha never overflows the cast).
  const int64_t per_rank = total / P;  // floor(total / P), as Alg. 2 writes it
  const double raw_capacity = std::floor(params.alpha * static_cast<double>(per_rank));
  const int64_t m_alpha =
      std::max<int64_t>(1, raw_capacity >= static_cast<double>(total) ? total : static_cast<int64_t>(raw_capacity));
  const int64_t m = params.min_chunk;

  Plan plan;
  plan.policy = name;
  plan.num_ranks = P;
  plan.num_experts = N;
  plan.assignments.resize(N);
  plan.dropped.assign(N, 0);
  plan.transfers.reserve(static_cast<size_t>(P));  // enough for one hot expert on every rank
  s.helper_stamp.assign(P, 0);
  std::vector<int64_t>& key = s.key;

  visit_order(loads, s);
  for (const int e : s.order) {
    const int64_t load = loads[e];
    const int native = e / M;
    SlotRangeList& ranges = plan.assignments[e];  // ranges are stored inline: no allocation
    // Moving e from native's pending to its assigned leaves key unchanged, so
    // room before the visit is m_alpha - (key - load).
    const int64_t room = m_alpha - (key[native] - load);
    const int64_t native_take = P == 1 ? load : std::clamp<int64_t>(room, 0, load);
    key[native] -= load - native_take;
    if (native_take > 0) ranges.push_back({native, 0, native_take});

    int64_t given = native_take;
    while (given < load) {
      const int64_t remainder = load - given;
      // Ranks in (key, id) order have non-increasing room, so if the least
      // loaded one cannot take a chunk no later one can: checking it alone
      // is the paper's "first qualifying rank" rule. The hook may name
      // another rank only when that one qualifies (llep-topo).
      const int q = pick_helper(key, native, least_loaded_other(key, native), remainder, m_alpha, m);
      const int64_t c = std::min(remainder, m_alpha - key[q]);
      const bool qualifies = chunk_qualifies(c, remainder, m);
      const int64_t take = qualifies ? c : remainder;  // else forced: q takes it all
      append_range(ranges, q, given, given + take);
      key[q] += take;
      given += take;
      // One weight transfer per helper of e, even if a forced remainder
      // gives it a second range.
      if (s.helper_stamp[q] != e + 1) {
        s.helper_stamp[q] = e + 1;
        plan.transfers.push_back({e, native, q});
      }
    }
  }
  return plan;
}

/// llep-topo's layout of a split expert's slots (NodePreference): which slot
/// positions each rank computes, its number of slots as LLA decided. Slots
/// are numbered rank by rank in origin order, so rank q's slots of e are the
/// block [off_q, off_q + n_q). Per-thread buffers, indexed by rank.
struct Layout {
  std::vector<int64_t> excess;     // per computing rank: slots still to place
  std::vector<int64_t> gap_start;  // per origin rank: first slot of its block not yet placed
  std::vector<int64_t> gap_len;    // per origin rank: slots of its block not yet placed
  std::vector<SlotRange> out;

  /// Places the excess of ranks [r0, r1) on the unplaced slots of origins
  /// [q0, q1), both in rank order.
  void fill(int q0, int q1, int r0, int r1) {
    int q = q0, r = r0;
    while (true) {
      while (q < q1 && gap_len[q] == 0) ++q;
      while (r < r1 && excess[r] == 0) ++r;
      if (q >= q1 || r >= r1) return;
      const int64_t n = std::min(gap_len[q], excess[r]);
      out.push_back({r, gap_start[q], gap_start[q] + n});
      gap_start[q] += n;
      gap_len[q] -= n;
      excess[r] -= n;
    }
  }
};

/// Every split expert's ranges re-laid, each rank keeping its number of
/// slots: first each rank computes as many of its own slots as it can, then
/// the rest of each node's slots go to the node's ranks with slots left (both
/// in rank order), and only what remains crosses nodes (slot order, rank
/// order). That puts the most slots possible on their own rank and then on
/// their own node, for these counts per rank.
void lay_out_by_origin(Plan& plan, const LoadMatrix& loads, int ranks_per_node) {
  thread_local Layout l;
  const int P = plan.num_ranks, Q = loads.num_ranks;  // Q: origin ranks (1 for global loads)
  for (int e = 0; e < plan.num_experts; ++e) {
    SlotRangeList& ranges = plan.assignments[e];
    if (ranges.size() < 2) continue;
    l.excess.assign(P, 0);
    for (const SlotRange& r : ranges) l.excess[r.rank] += r.size();
    l.gap_start.assign(Q, 0);
    l.gap_len.assign(Q, 0);
    l.out.clear();
    int64_t off = 0;
    for (int q = 0; q < Q; ++q) {
      const int64_t n = loads.at(q, e);
      const int64_t own = q < P ? std::min(l.excess[q], n) : 0;
      if (own > 0) l.out.push_back({q, off, off + own});
      if (q < P) l.excess[q] -= own;
      l.gap_start[q] = off + own;
      l.gap_len[q] = n - own;
      off += n;
    }
    for (int lo = 0; lo < P; lo += ranks_per_node) {
      const int hi = std::min(P, lo + ranks_per_node);
      l.fill(std::min(lo, Q), std::min(hi, Q), lo, hi);
    }
    l.fill(0, Q, 0, P);
    std::sort(l.out.begin(), l.out.end(), [](const SlotRange& a, const SlotRange& b) { return a.start < b.start; });
    ranges.clear();
    for (const SlotRange& r : l.out) append_range(ranges, r.rank, r.start, r.end);
  }
}

}  // namespace

Plan least_loaded_plan(const LoadMatrix& loads, int num_ranks, const LlepParams& params, const std::string& name,
                       const NodePreference* pref) {
  LlaScratch& s = scratch();
  column_sums(loads, s.loads);
  const std::vector<int64_t>& expert_loads = s.loads;
  const int N = static_cast<int>(expert_loads.size());
  const int P = num_ranks;
  if (P <= 0 || N % P != 0) throw std::invalid_argument("number of experts must be divisible by the number of ranks");
  if (std::any_of(expert_loads.begin(), expert_loads.end(), [](int64_t l) { return l < 0; }))
    throw std::invalid_argument("expert loads must be >= 0");

  const int M = N / P;  // experts per rank; expert e is native to rank e / M
  s.key.assign(P, 0);
  for (int r = 0; r < P; ++r)
    for (int i = 0; i < M; ++i) s.key[r] += expert_loads[static_cast<size_t>(r) * M + i];
  if (imbalance(s.key) < params.lambda) return ep_plan(expert_loads, P, name);
  if (pref) {
    Plan plan = least_loaded_assignment(expert_loads, P, params, name, s, SameNodeHelper{*pref});
    if (node_of(P - 1, pref->ranks_per_node) > 0) lay_out_by_origin(plan, loads, pref->ranks_per_node);
    return plan;
  }
  return least_loaded_assignment(expert_loads, P, params, name, s, LeastLoadedHelper{});
}

std::vector<PlacementPolicy::Alternative> LeastLoadedPolicy::budget_alternatives(const LoadMatrix& loads,
                                                                                 int num_ranks) const {
  std::vector<double> alphas;
  for (int k = 1; k <= 9; ++k) alphas.push_back(params_.alpha * (1.0 - 0.1 * k));
  for (int k = 1; k <= 4; ++k) alphas.push_back(params_.alpha * (1.0 + 0.25 * k));
  std::vector<Alternative> out;
  for (double a : alphas) {
    LlepParams other = params_;
    other.alpha = a;
    out.push_back({LeastLoadedPolicy(name_, other, pref_).plan(loads, num_ranks), a});
  }
  return out;
}

}  // namespace moe
