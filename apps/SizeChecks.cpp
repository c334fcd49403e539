#include "apps/SizeChecks.hpp"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <new>
#include <regex>

#include "runtime/common/CheckedMath.hpp"
#include "runtime/common/Errors.hpp"
#include "runtime/harness/Comparison.hpp"
#include "runtime/layer/MemoryModel.hpp"

namespace moe::app {

int64_t physical_memory_bytes() {
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
  if (pages <= 0 || page <= 0) return 0;
  return checked_mul(pages, page).value_or(INT64_MAX);
}

std::string bytes_text(int64_t bytes) {
  char buf[48];
  const double b = static_cast<double>(bytes);
  if (b >= 1024.0 * 1024.0 * 1024.0 * 1024.0 * 1024.0)
    std::snprintf(buf, sizeof buf, "%.3g PiB", b / (1024.0 * 1024.0 * 1024.0 * 1024.0 * 1024.0));
  else if (b >= 1024.0 * 1024.0 * 1024.0)
    std::snprintf(buf, sizeof buf, "%.1f GiB", b / (1024.0 * 1024.0 * 1024.0));
  else
    std::snprintf(buf, sizeof buf, "%.1f MiB", b / (1024.0 * 1024.0));
  return buf;
}

namespace {

std::string tokens_flag(const RunConfig& c) { return c.tokens_per_rank.empty() ? "--tokens" : "--tokens-per-rank"; }

// Physical memory for a host-only command (no budget).
MemoryLimit machine_limit() {
  MemoryLimit l;
  l.bytes = physical_memory_bytes();
  l.text = "this machine's " + bytes_text(l.bytes) + " of memory";
  return l;
}

[[noreturn]] void too_big(const std::string& flags, const std::string& what, int64_t need, const MemoryLimit& limit) {
  throw InputError(flags + ": " + what + " needs at least " + bytes_text(need) + " but the limit is " + limit.text +
                   "; use smaller values");
}

}  // namespace

void check_run_sizes(const RunConfig& c, int P, const MemoryLimit& limit, const MemoryLimit& machine) {
  const ModelShape& s = c.shape;
  const std::string tf = tokens_flag(c);
  // The job's tokens and slots.
  CheckedSize total(tf, "total token count over all ranks");
  int64_t max_tokens = 0;
  int busiest = 0;
  for (int r = 0; r < P; ++r) {
    total.add(c.tokens_on(r));
    if (c.tokens_on(r) > max_tokens) max_tokens = c.tokens_on(r), busiest = r;
  }
  const int64_t total_slots = product_or_throw({total.value(), s.top_k}, tf + ", --top-k", "token-slot count");
  // No size any plan can reach on any rank may wrap: all slots on one rank,
  // every expert imported.
  const std::string all_flags = tf + ", --top-k, --hidden, --ffn, --experts, --layers";
  if (!max_rank_bytes(s, P, max_tokens, total_slots, c.layers))
    throw InputError(all_flags + ": the buffers they size do not fit in 64 bits (overflow); use smaller values");
  // --check: rank 0 holds the reference of all tokens in double precision.
  int64_t check_bytes = 0;
  if (c.check) {
    CheckedSize ref(tf + ", --top-k, --hidden, --check", "reference size");
    ref.add_product({total_slots, s.hidden}).add_product({5, total.value(), s.hidden}).add_product({3, total_slots});
    check_bytes = product_or_throw({ref.value(), 8}, tf + ", --top-k, --hidden, --check", "reference size");
  }
  // The least any plan needs on the busiest rank (and on rank 0 with --check).
  const auto need_busiest = min_rank_bytes(s, P, max_tokens, c.layers);
  const auto need_0 = min_rank_bytes(s, P, c.tokens_on(0), c.layers);
  if (!need_busiest || !need_0)
    throw InputError(all_flags + ": the buffers they size do not fit in 64 bits (overflow); use smaller values");
  const std::string need_flags = tf + ", --hidden, --ffn, --experts, --layers";
  if (limit.bytes > 0 && *need_busiest > limit.bytes)
    too_big(need_flags,
            "rank " + std::to_string(busiest) + " (weights of " + std::to_string(c.layers) +
                " layer(s), tokens, output and router logits)",
            *need_busiest, limit);
  if (c.check && machine.bytes > 0) {
    const auto need = checked_add(*need_0, check_bytes);
    if (!need || *need > machine.bytes)
      too_big(need_flags + ", --check", "rank 0 with --check's double-precision reference of all ranks' tokens",
              need.value_or(INT64_MAX), machine);
  }
}

void check_trace_sizes(const ModelShape& s, const std::vector<int64_t>& tokens_per_rank, int steps, int layers) {
  CheckedSize total("--tokens, --tokens-per-rank, --ranks", "total token count");
  for (int64_t t : tokens_per_rank) total.add(t);
  const std::string flags = "--tokens, --tokens-per-rank, --ranks, --top-k";
  const int64_t ids = product_or_throw({total.value(), s.top_k}, flags, "id count of a step");
  const int64_t bytes = product_or_throw({ids, 4}, flags, "id buffer of a step");
  product_or_throw({bytes, steps, layers}, flags + ", --steps, --layers", "trace size");
  const MemoryLimit limit = machine_limit();
  // The step's ids plus one rank's sampling buffer.
  if (limit.bytes > 0 && bytes > limit.bytes / 2) too_big(flags, "the trace's buffer of one step", bytes, limit);
}

void check_plan_sizes(const ModelShape& s, int ranks, bool from_scenario) {
  const int64_t cells = product_or_throw({ranks, s.num_experts}, "--ranks, --experts", "load matrix");
  CheckedSize need("--ranks, --experts", "memory");
  need.add_product({cells, 8, 3}).add_product({s.num_experts, 128});
  std::string flags = "--ranks, --experts";
  if (from_scenario) {
    flags += ", --tokens, --top-k";
    const int64_t ids = product_or_throw({s.tokens, s.top_k}, "--tokens, --top-k", "id count of a rank");
    product_or_throw({ids, ranks}, "--tokens, --top-k, --ranks", "token-slot count");
    need.add_product({ids, 4});
  }
  const MemoryLimit limit = machine_limit();
  if (limit.bytes > 0 && need.value() > limit.bytes) too_big(flags, "the planner", need.value(), limit);
}

void check_emulate_sizes(const ModelShape& s, int ranks) {
  const std::string flags = "--tokens, --ranks, --top-k";
  const int64_t rank_slots = product_or_throw({s.tokens, s.top_k}, "--tokens, --top-k", "slot count of a rank");
  const int64_t total_slots = product_or_throw({rank_slots, ranks}, flags, "token-slot count");
  const auto ewb = checked_expert_weight_bytes(s);
  if (!ewb) throw InputError("--hidden, --ffn: the expert weights they size do not fit in 64 bits (overflow)");
  // The host runner's worst case: every slot on one rank, one block per expert.
  CheckedSize worst(flags + ", --hidden, --ffn, --experts", "buffer size");
  worst.add_product({2, total_slots, s.hidden, 4})
      .add_product({3, total_slots, s.ffn, 4})
      .add_product({s.num_experts, *ewb});
  // Planning: the load matrix and one rank's sampled ids.
  CheckedSize plan(flags + ", --experts", "planner memory");
  plan.add_product({ranks, s.num_experts, 8, 3}).add_product({rank_slots, 4});
  const MemoryLimit limit = machine_limit();
  if (limit.bytes > 0 && plan.value() > limit.bytes) too_big(flags + ", --experts", "planning", plan.value(), limit);
  // The least the host runner needs: one expert's weights and the busiest
  // rank's rows (at least the mean).
  CheckedSize least(flags + ", --hidden, --ffn", "buffer size");
  least.add(*ewb).add_product({2, rank_slots, s.hidden, 4});
  if (limit.bytes > 0 && least.value() > limit.bytes)
    too_big("--tokens, --top-k, --hidden, --ffn", "the busiest emulated rank", least.value(), limit);
}

bool is_allocation_failure(const std::exception& e) {
  if (dynamic_cast<const std::bad_alloc*>(&e)) return true;
  const std::string w = e.what();
  return w.find("failed to allocate") != std::string::npos || w.find("out of memory") != std::string::npos;
}

std::string allocation_failure(const std::exception& e, const std::string& fallback_flags) {
  const std::string w = e.what();
  std::smatch m;
  std::string label;
  if (std::regex_search(w, m, std::regex("label \"([^\"]*)\""))) label = m[1];
  std::string size;
  if (std::regex_search(w, m, std::regex("size ([0-9.]+ ?[KMGTP]?i?B)"))) size = " (" + std::string(m[1]) + ")";
  struct Row {
    const char* label;
    const char* what;
    const char* flags;
  };
  static const Row rows[] = {
      {"tokens", "the rank's tokens", "--tokens/--tokens-per-rank, --hidden"},
      {"output", "the rank's output", "--tokens/--tokens-per-rank, --hidden"},
      {"router_logits", "the router logits", "--tokens/--tokens-per-rank, --experts"},
      {"dispatch_send", "the dispatch send buffer", "--tokens, --top-k, --hidden, --scenario"},
      {"dispatch_recv", "the dispatch receive buffer", "--tokens, --top-k, --hidden, --scenario"},
      {"expert_in", "the expert-major input", "--tokens, --top-k, --hidden, --scenario"},
      {"expert_out", "the expert-major output", "--tokens, --top-k, --hidden, --scenario"},
      {"gate_up", "the gate/up workspace", "--tokens, --top-k, --ffn, --scenario"},
      {"activation", "the activation workspace", "--tokens, --top-k, --ffn, --scenario"},
      {"native_experts", "the native expert weights", "--experts, --hidden, --ffn, --layers"},
      {"imported_expert", "an imported expert's weights", "--hidden, --ffn"},
      {"router", "the router weights", "--experts, --hidden, --layers"},
      {"emulate_x", "the emulated rank's rows", "--tokens, --top-k, --hidden, --ranks"},
      {"emulate_y", "the emulated rank's output rows", "--tokens, --top-k, --hidden, --ranks"},
      {"emulate_gu", "the gate/up workspace", "--tokens, --top-k, --ffn, --ranks"},
      {"emulate_act", "the activation workspace", "--tokens, --top-k, --ffn, --ranks"},
      {"emulate_w", "the expert weight buffers", "--experts, --hidden, --ffn"},
  };
  for (const auto& r : rows)
    if (label == r.label)
      return std::string("out of memory allocating ") + r.what + " ('" + label + "'" + size + "), sized by " + r.flags +
             "; use smaller values (or a --mem-budget to see which plans fit)";
  if (!label.empty())
    return "out of memory allocating '" + label + "'" + size + ", sized by " + fallback_flags + "; use smaller values";
  return "out of memory (" +
         std::string(dynamic_cast<const std::bad_alloc*>(&e) ? "std::bad_alloc" : "allocation failed") +
         "), in buffers sized by " + fallback_flags + "; use smaller values";
}

}  // namespace moe::app
