#pragma once
// `--dump FILE.h5` of `moe-ep compare` and `moe-ep run` (docs/dump.md): one
// layer's inputs, weights, routing and outputs (and, when present, its
// gradients) for one step, gathered on rank 0, so that the layer can be
// recomputed in another framework (tools/check_dump.py does it in PyTorch).
// Plain data here; the file is written by write_layer_dump (HDF5, serial, on
// one process). Meant for small shapes: layer_dump_limit_reason() refuses
// runs whose dump would exceed kLayerDumpMaxBytes.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "runtime/common/ModelConfig.hpp"

namespace moe {

/// Version of the layout in docs/dump.md (root attribute format_version).
inline constexpr int64_t kLayerDumpFormatVersion = 1;
/// The largest dump accepted: bytes of its datasets, counted by layer_dump_bytes.
inline constexpr int64_t kLayerDumpMaxBytes = int64_t{256} << 20;

/// Every gradient of L = <Y, G> for one policy (docs/backward.md), over all
/// ranks, each in the layout of what it is the gradient of. Values are
/// written as float32. An empty vector is not written (e.g. the bias
/// gradients of a SwiGLU backward that does not compute them); a non-empty
/// one must have exactly its size.
struct DumpGradients {
  std::vector<double> output_grad;     // G, T x D (rows in rank order)
  std::vector<double> dx;              // T x D
  std::vector<double> router_weights;  // dL/dW_r, D x N
  std::vector<double> w_gu;            // N x D x 2H
  std::vector<double> w_d;             // N x H x D
  std::vector<double> b_gu;            // N x 2H
  std::vector<double> b_d;             // N x D
};

/// One policy's forward (and optionally backward) at the dumped (step, layer).
struct PolicyDump {
  std::string name;
  bool exact = true;
  /// "ok", or "oom" when the plan did not fit the memory budget at this
  /// (step, layer): then nothing below is written.
  std::string status = "oom";
  std::vector<int32_t> expert_ids;         // T*K, slot t*K + k
  std::vector<double> gates;               // T*K, the runtime's gate weights
  std::vector<uint8_t> kept;               // T*K, 0 where the capacity policy dropped the slot
  std::vector<double> output;              // T x D, the runtime's output
  std::optional<DumpGradients> gradients;  // written when present
};

/// What the file holds (docs/dump.md). All float data are written as float32.
struct LayerDump {
  ModelShape shape;
  std::vector<int64_t> tokens_per_rank;  // one per rank; T is their sum
  uint64_t seed = 0;
  int step = 0, layer = 0;  // the dumped (step, layer) of the measured steps
  std::string scenario;     // --scenario as given
  std::string routing;      // who chose the expert ids: "router" (top-K of the logits), "scenario" or "trace"
  std::string tool_version;
  std::string config_json;             // the run's config, as compare's JSON writes it
  std::string policy_params_json;      // the policies' parameters
  std::vector<double> tokens;          // T x D, rows in rank order
  std::vector<double> router_weights;  // D x N
  std::vector<double> w_gu;            // N x D x 2H (columns 0..H-1 gate, H..2H-1 up)
  std::vector<double> w_d;             // N x H x D
  std::vector<double> b_gu;            // N x 2H (zero for SwiGLU)
  std::vector<double> b_d;             // N x D  (zero for SwiGLU)
  std::vector<PolicyDump> policies;    // in the order of --policies
};

/// Bytes of the datasets of a dump of this run: inputs, weights, and per
/// policy routing, output and every gradient (counted whether or not a
/// backward writes them, so a shape is accepted or refused alike either way).
/// In double, so that no shape overflows.
double layer_dump_bytes(const ModelShape& shape, int64_t total_tokens, int num_policies);

/// "" when a dump of this run fits kLayerDumpMaxBytes, else a one-line
/// reason naming --dump, the size and the limit.
std::string layer_dump_limit_reason(const ModelShape& shape, int64_t total_tokens, int num_policies);

/// Writes `dump` to a new file beside `path` (docs/reliability.md: a
/// temporary ".NAME.XXXXXX.tmp", flushed to the disk, then renamed over
/// `path` while an exclusive flock is held on the file it replaces). On any
/// failure (disk full, a reader holding `path` open, inconsistent sizes) the
/// temporary is removed, `path` is untouched, and OutputError says
/// "FLAG: cannot write 'PATH': reason ('PATH' is unchanged)".
void write_layer_dump(const std::string& path, const LayerDump& dump, const std::string& flag = "--dump");

}  // namespace moe
