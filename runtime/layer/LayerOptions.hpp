#pragma once
// How the layer runs — not what it computes: the forward's results do not
// depend on these (`backward` adds the backward pass).

#include <cstdint>

#include "kernels/ExpertFfn.hpp"
#include "runtime/common/ModelConfig.hpp"

namespace moe {

struct LayerOptions {
  /// Rows per expert-FFN tile (--ffn-tile): each expert block runs in tiles of
  /// this many rows, so the gate/up and activation workspaces are bounded by
  /// the tile, not by the largest block. 0: the measured default for the shape.
  int64_t ffn_tile_rows = 0;
  /// Nodes the step's intra/inter-node bytes are counted with (the
  /// StepRecord's *_inter_node): > 0, blocks of this many consecutive ranks
  /// (--ranks-per-node, e.g. to model 2 nodes on one machine); 0, the
  /// communicator's nodes (MPI's shared-memory split).
  int ranks_per_node = 0;
  /// --backward: the forward keeps what the backward needs and every
  /// forward() is followed by a backward() (the layer holds its weight
  /// gradients, tracked like its weights).
  bool backward = false;

  int64_t tile_rows(const ModelShape& s) const {
    return ffn_tile_rows > 0 ? ffn_tile_rows : default_ffn_tile_rows(s.hidden, s.ffn);
  }
};

}  // namespace moe
