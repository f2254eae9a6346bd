// ShardedLlama: a LLaMA trained FSDP-style (ZeRO-3). Units: the embeddings, each decoder layer,
// and final norm + lm_head. Each unit's fp32 master weights are sharded 1/W across ranks; its
// full weights are gathered in the compute dtype just before it runs and freed right after.
// With activation checkpointing (the default for long sequences) a layer's backward gathers
// again, recomputes, and reduce-scatters its gradient into the shard: full parameters of a unit
// exist only while it computes. Without checkpointing, gathered units stay alive until their
// backward (activations need them) and gradients are reduce-scattered from a hook. The head is
// never recomputed: its loss keeps only the hidden states and recomputes logits in chunks.
#pragma once

#include <map>
#include <memory>
#include <vector>

#include "distributed/communicator.h"
#include "distributed/flat_param_unit.h"
#include "distributed/process_mesh.h"
#include "io/weight_slices.h"
#include "model/llama_config.h"
#include "model/llama_weights.h"
#include "model/rope.h"

namespace lctrain {

struct ShardingOptions {
  torch::ScalarType compute_dtype = torch::kBFloat16;
  torch::ScalarType reduce_dtype = torch::kFloat32;
  bool activation_checkpointing = true;
  // With checkpointing: decoder layers whose index is a multiple of this are recomputed, the
  // others keep their activations (1: every layer; 2: every second, torchtitan's selective
  // layer policy). The embeddings follow activation_checkpointing; the head never recomputes.
  int64_t activation_checkpointing_every = 1;
  bool prefetch = true;  // start the next unit's gather while this one computes
  // C: consecutive groups of C ranks split each sequence between them (ring attention over
  // zigzag chunks, see distributed/process_mesh.h); 1: every rank computes whole sequences.
  int64_t context_parallel = 1;
  // q/k/v and gate/up each as one GEMM over a view of the gathered buffer (no copy; the layout
  // on disk and in checkpoints is unchanged). Off: one GEMM per projection, for comparison.
  bool fused_projections = true;
};

class ShardedLlama {
 public:
  // `weights`: the full model, identical on every rank (each keeps only its shards).
  ShardedLlama(LlamaConfig config, const LlamaWeights& weights, RopeScaling runtime_rope,
               std::shared_ptr<Communicator> communicator, ShardingOptions options);
  // Each rank reads from `source` only its own slice of each unit (io::open_weight_slices for a
  // model folder, io::random_weight_slices for a fresh model): no rank holds the whole model.
  ShardedLlama(LlamaConfig config, io::WeightSlices& source, RopeScaling runtime_rope,
               std::shared_ptr<Communicator> communicator, ShardingOptions options);
  ~ShardedLlama();

  // Mean next-token cross-entropy (fp32 scalar) of `targets` given `inputs`, both int64 [B, T].
  // Call backward() on it before the next loss(): the autograd graph refers to per-call state.
  // With context parallelism every rank of a group passes the same whole sequences and computes
  // the mean over its zigzag share of their tokens: all shares are the same size, so the mean
  // over the group's ranks (and over all ranks, as the gradient reduction takes it) is the mean
  // over every token, exactly as without context parallelism.
  torch::Tensor loss(const torch::Tensor& inputs, const torch::Tensor& targets);

  // The fp32 master shards: what the optimizer updates and gradients accumulate into.
  std::vector<torch::Tensor> parameters();
  std::vector<std::unique_ptr<FlatParamUnit>>& units() { return units_; }

  // The full weights (every rank gets them) in `dtype`, for export and evaluation.
  LlamaWeights gather_weights(torch::ScalarType dtype);

  const LlamaConfig& config() const { return config_; }
  const ShardingOptions& options() const { return options_; }
  const ProcessMesh& mesh() const { return mesh_; }

  struct UnitCall;  // one unit's computation within one loss() call

 private:
  torch::Tensor run_unit(UnitCall& call, const torch::Tensor& input);
  // Whether unit `index` (0: embeddings, 1..layers: decoder layers, then the head) recomputes.
  bool recomputes(size_t index) const;
  void bind_views(FlatParamUnit& unit, const std::vector<torch::Tensor>& views);
  void unbind_views(FlatParamUnit& unit);
  // Spans over q/k/v and gate/up of each decoder layer's unit (ShardingOptions).
  void declare_fused_projections();

  LlamaConfig config_;
  RotaryEmbedding rotary_;
  std::shared_ptr<Communicator> communicator_;
  ShardingOptions options_;
  ProcessMesh mesh_;
  std::unique_ptr<CommunicatorRing> ring_;             // with context parallelism
  std::vector<std::unique_ptr<FlatParamUnit>> units_;  // embeddings, layers..., head
  // A LlamaWeights whose tensors are pointed at a unit's gathered views while it computes.
  LlamaWeights bound_;
  std::map<std::string, torch::Tensor*> bound_slots_;
  std::vector<std::unique_ptr<UnitCall>> live_calls_;
};

}  // namespace lctrain
