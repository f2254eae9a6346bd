#include "distributed/sharded_llama.h"

#include <fmt/format.h>

#include <functional>
#include <tuple>

#include "model/linear_cross_entropy.h"
#include "model/llama_model.h"
#include "util/error.h"

namespace lctrain {

// Views of each participating unit's gathered parameters, in unit order.
using UnitParameters = std::vector<std::vector<torch::Tensor>>;

struct ShardedLlama::UnitCall {
  std::vector<FlatParamUnit*> units;  // usually one; the tied head also uses the embeddings
  std::function<torch::Tensor(const torch::Tensor&, const UnitParameters&)> compute;
  FlatParamUnit* prefetch_in_backward = nullptr;
  bool checkpointed = true;  // recompute in backward, or keep activations and gathered weights
  ShardingOptions options;
};

namespace {

// Gather-compute-free forward, gather-recompute-reduce-scatter backward (see the header).
class CheckpointedUnit : public torch::autograd::Function<CheckpointedUnit> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* context, torch::Tensor input,
                               torch::TensorList shards, int64_t call_address) {
    (void)shards;  // inputs only so that autograd routes their gradients
    auto* call = reinterpret_cast<ShardedLlama::UnitCall*>(call_address);
    context->saved_data["call"] = call_address;
    context->save_for_backward({input});
    UnitParameters parameters;
    for (FlatParamUnit* unit : call->units) {
      parameters.push_back(unit->views(unit->gather(call->options.compute_dtype)));
    }
    return call->compute(input, parameters);  // the gathered buffers die with `parameters`
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* context,
                                                 torch::autograd::variable_list output_gradients) {
    auto* call = reinterpret_cast<ShardedLlama::UnitCall*>(context->saved_data["call"].toInt());
    const torch::Tensor input = context->get_saved_variables()[0];
    // Backward runs with grad mode off: the recomputation must turn it back on, and the views
    // must be taken inside that scope so that they track their flat buffer.
    torch::AutoGradMode enable_grad(true);
    std::vector<torch::Tensor> full_leaves;
    UnitParameters parameters;
    for (FlatParamUnit* unit : call->units) {
      full_leaves.push_back(
          unit->gather(call->options.compute_dtype).detach().requires_grad_(true));
      parameters.push_back(unit->views(full_leaves.back()));
    }
    if (call->prefetch_in_backward != nullptr && call->options.prefetch) {
      call->prefetch_in_backward->prefetch(call->options.compute_dtype);
    }
    torch::Tensor input_leaf = input.detach();
    if (input_leaf.is_floating_point()) input_leaf.requires_grad_(true);
    {
      const torch::Tensor output = call->compute(input_leaf, parameters);
      torch::autograd::backward({output}, {output_gradients[0]});
    }
    torch::autograd::variable_list gradients;
    gradients.push_back(input_leaf.requires_grad() ? input_leaf.grad() : torch::Tensor());
    for (size_t index = 0; index < call->units.size(); ++index) {
      gradients.push_back(call->units[index]->reduce_scatter_mean(full_leaves[index].grad(),
                                                                  call->options.reduce_dtype));
    }
    gradients.emplace_back();  // call_address
    return gradients;
  }
};

}  // namespace

ShardedLlama::ShardedLlama(LlamaConfig config, const LlamaWeights& weights,
                           RopeScaling runtime_rope, std::shared_ptr<Communicator> communicator,
                           ShardingOptions options)
    : ShardedLlama(config, *io::in_memory_weight_slices(named_weights(config, weights)),
                   std::move(runtime_rope), std::move(communicator), options) {}

ShardedLlama::ShardedLlama(LlamaConfig config, io::WeightSlices& source, RopeScaling runtime_rope,
                           std::shared_ptr<Communicator> communicator, ShardingOptions options)
    : config_(std::move(config)),
      rotary_(std::move(runtime_rope), config_.head_dim, config_.rope_theta,
              config_.max_position_embeddings),
      communicator_(std::move(communicator)),
      options_(options),
      mesh_(ProcessMesh::make(communicator_->world_size(),
                              static_cast<int>(options.context_parallel), communicator_->rank())) {
  if (mesh_.context_parallel > 1) ring_ = std::make_unique<CommunicatorRing>(mesh_, communicator_);
  // Group the Hugging Face tensors into units: "model.embed_tokens", "model.layers.N", head.
  const auto unit_of = [](const std::string& name) -> std::string {
    if (name.rfind("model.layers.", 0) == 0) {
      return name.substr(0, name.find('.', std::string("model.layers.").size()));
    }
    return name == "model.embed_tokens.weight" ? "embeddings" : "head";
  };
  std::vector<std::pair<std::string, std::vector<ParameterSpec>>> groups;
  LlamaWeights unused;
  for (const WeightSlot& slot : weight_slots(config_, unused)) {
    const std::string unit = unit_of(slot.name);
    if (groups.empty() || groups.back().first != unit) groups.push_back({unit, {}});
    groups.back().second.push_back({slot.name, slot.shape});
  }
  const ParameterRangeReader read = [&source](const std::string& name, int64_t begin,
                                              torch::Tensor& out) {
    source.read(name, begin, out);
  };
  for (const auto& [unit, parameters] : groups) {
    units_.push_back(std::make_unique<FlatParamUnit>(unit, parameters, read, communicator_));
  }
  LCTRAIN_CHECK(units_.size() == static_cast<size_t>(config_.num_hidden_layers) + 2,
                "unexpected FSDP unit layout ({} units for {} layers)", units_.size(),
                config_.num_hidden_layers);
  for (WeightSlot& slot : weight_slots(config_, bound_)) bound_slots_[slot.name] = slot.tensor;
  if (options_.fused_projections) declare_fused_projections();
}

void ShardedLlama::declare_fused_projections() {
  for (size_t layer = 0; layer < static_cast<size_t>(config_.num_hidden_layers); ++layer) {
    FlatParamUnit& unit = *units_[layer + 1];
    DecoderLayerWeights& weights = bound_.layers[layer];
    const std::string prefix = fmt::format("model.layers.{}.", layer);
    const auto index_of = [&](const std::string& name) {
      const auto& entries = unit.entries();
      for (size_t index = 0; index < entries.size(); ++index) {
        if (entries[index].name == prefix + name) return index;
      }
      throw Error("FSDP unit {} has no {}", unit.name(), prefix + name);
    };
    // (span name, first entry, entries, where the model finds it)
    std::vector<std::tuple<std::string, std::string, size_t, torch::Tensor*>> spans = {
        {"self_attn.qkv_proj.weight", "self_attn.q_proj.weight", 3, &weights.attention.qkv_proj},
        {"mlp.gate_up_proj.weight", "mlp.gate_proj.weight", 2, &weights.mlp.gate_up_proj}};
    if (config_.attention_bias) {
      spans.emplace_back("self_attn.qkv_proj.bias", "self_attn.q_proj.bias", 3,
                         &weights.attention.qkv_bias);
    }
    if (config_.mlp_bias) {
      spans.emplace_back("mlp.gate_up_proj.bias", "mlp.gate_proj.bias", 2,
                         &weights.mlp.gate_up_bias);
    }
    for (const auto& [name, first, count, slot] : spans) {
      // weight_slots() lists each group in order, one after another: a span is a plain view.
      const size_t start = index_of(first);
      if (unit.add_span(prefix + name, start, count)) bound_slots_[prefix + name] = slot;
    }
  }
}

ShardedLlama::~ShardedLlama() = default;

std::vector<torch::Tensor> ShardedLlama::parameters() {
  std::vector<torch::Tensor> shards;
  for (auto& unit : units_) shards.push_back(unit->shard());
  return shards;
}

void ShardedLlama::bind_views(FlatParamUnit& unit, const std::vector<torch::Tensor>& views) {
  for (size_t index = 0; index < views.size(); ++index) {
    *bound_slots_.at(unit.view_entry(index).name) = views[index];
  }
}

void ShardedLlama::unbind_views(FlatParamUnit& unit) {
  // Drop our references so the gathered buffer is freed as soon as the unit is done.
  for (const auto* list : {&unit.entries(), &unit.spans()}) {
    for (const FlatParamEntry& entry : *list) *bound_slots_.at(entry.name) = torch::Tensor();
  }
}

bool ShardedLlama::recomputes(size_t index) const {
  const auto layers = static_cast<size_t>(config_.num_hidden_layers);
  // The head keeps only its input and normed hidden states whatever the mode: its loss
  // recomputes the logits chunk by chunk in backward (model/linear_cross_entropy.h).
  if (!options_.activation_checkpointing || index == layers + 1) return false;
  return index == 0 ||
         (index - 1) % static_cast<size_t>(options_.activation_checkpointing_every) == 0;
}

torch::Tensor ShardedLlama::run_unit(UnitCall& call, const torch::Tensor& input) {
  if (call.checkpointed) {
    std::vector<torch::Tensor> shards;
    for (FlatParamUnit* unit : call.units) shards.push_back(unit->shard());
    // As a TensorList (not a vector) so that autograd sees the shards as differentiable inputs.
    return CheckpointedUnit::apply(input, torch::TensorList(shards),
                                   reinterpret_cast<int64_t>(&call));
  }
  // Without checkpointing autograd keeps the gathered weights for backward; a hook on each
  // gathered buffer reduce-scatters its gradient into the shard as soon as it is complete.
  UnitParameters parameters;
  for (FlatParamUnit* unit : call.units) {
    torch::Tensor full = unit->gather(options_.compute_dtype).detach().requires_grad_(true);
    const torch::ScalarType reduce_dtype = options_.reduce_dtype;
    full.register_hook([unit, reduce_dtype](const torch::Tensor& gradient) {
      unit->accumulate_gradient(unit->reduce_scatter_mean(gradient, reduce_dtype));
      return torch::Tensor();
    });
    parameters.push_back(unit->views(full));
  }
  torch::Tensor output = call.compute(input, parameters);
  // This unit's backward starts when its output's gradient arrives: start gathering the
  // previous unit then, as a recomputing unit's backward does.
  if (FlatParamUnit* previous = call.prefetch_in_backward;
      previous != nullptr && options_.prefetch) {
    const torch::ScalarType dtype = options_.compute_dtype;
    output.register_hook([previous, dtype](const torch::Tensor&) {
      previous->prefetch(dtype);
      return torch::Tensor();
    });
  }
  return output;
}

torch::Tensor ShardedLlama::loss(const torch::Tensor& sequence_inputs,
                                 const torch::Tensor& sequence_targets) {
  LCTRAIN_CHECK(sequence_inputs.dim() == 2 && sequence_inputs.sizes() == sequence_targets.sizes(),
                "inputs and targets must both be [batch, length]");
  live_calls_.clear();
  const torch::Device device = units_.front()->shard().device();
  auto [cos, sin] = rotary_.cos_sin(0, sequence_inputs.size(1), device);
  torch::Tensor inputs = sequence_inputs;
  torch::Tensor targets = sequence_targets;
  if (ring_ != nullptr) {
    // This rank's share: its tokens, their labels (taken before splitting, so a chunk's last
    // label is the next chunk's first token) and their true positions.
    const ZigzagLayout layout(ring_->size(), ring_->position(), sequence_inputs.size(1));
    inputs = layout.take(sequence_inputs, 1);
    targets = layout.take(sequence_targets, 1);
    cos = layout.take(cos, 0);
    sin = layout.take(sin, 0);
  }
  KeyValueRing* ring = ring_.get();
  const size_t layer_count = static_cast<size_t>(config_.num_hidden_layers);
  FlatParamUnit* embeddings = units_.front().get();
  FlatParamUnit* head = units_.back().get();

  // `index`: the unit's place (see recomputes()). A recomputing unit's backward prefetches the
  // previous unit only if that one gathers again too: a prefetch nobody takes would be stale
  // by the next forward.
  const auto make_call = [&](size_t index, std::vector<FlatParamUnit*> units,
                             auto compute) -> UnitCall& {
    auto call = std::make_unique<UnitCall>();
    call->units = std::move(units);
    call->checkpointed = recomputes(index);
    if (index > 0 && recomputes(index - 1)) call->prefetch_in_backward = units_[index - 1].get();
    call->options = options_;
    call->compute = compute;
    live_calls_.push_back(std::move(call));
    return *live_calls_.back();
  };

  if (options_.prefetch) embeddings->prefetch(options_.compute_dtype);
  UnitCall& embed_call =
      make_call(0, {embeddings}, [](const torch::Tensor& ids, const UnitParameters& parameters) {
        return torch::embedding(parameters[0][0], ids);
      });
  torch::Tensor hidden = run_unit(embed_call, inputs.to(device));

  for (size_t layer = 0; layer < layer_count; ++layer) {
    FlatParamUnit* unit = units_[layer + 1].get();
    if (options_.prefetch) units_[layer + 2]->prefetch(options_.compute_dtype);
    UnitCall& call = make_call(layer + 1, {unit},
                               [this, unit, layer, cos = cos, sin = sin, ring](
                                   const torch::Tensor& x, const UnitParameters& parameters) {
                                 bind_views(*unit, parameters[0]);
                                 torch::Tensor output =
                                     decoder_layer_forward(config_, bound_.layers[layer], x, cos,
                                                           sin, nullptr, layer, ring);
                                 unbind_views(*unit);
                                 return output;
                               });
    hidden = run_unit(call, hidden);
  }

  std::vector<FlatParamUnit*> head_units{head};
  if (config_.tie_word_embeddings) head_units.push_back(embeddings);
  const torch::Tensor flat_targets = targets.to(device).reshape({-1});
  UnitCall& head_call = make_call(
      layer_count + 1, head_units,
      [this, flat_targets](const torch::Tensor& x, const UnitParameters& parameters) {
        const torch::Tensor& norm = parameters[0][0];
        const torch::Tensor& lm_head =
            config_.tie_word_embeddings ? parameters[1][0] : parameters[0][1];
        const auto normed = rms_norm(x, norm, config_.rms_norm_eps);
        return linear_cross_entropy(normed.reshape({-1, normed.size(-1)}), lm_head, flat_targets);
      });
  return run_unit(head_call, hidden);
}

LlamaWeights ShardedLlama::gather_weights(torch::ScalarType dtype) {
  torch::NoGradGuard no_grad;
  LlamaWeights weights;
  std::map<std::string, torch::Tensor*> slots;
  for (WeightSlot& slot : weight_slots(config_, weights)) slots[slot.name] = slot.tensor;
  for (auto& unit : units_) {
    const auto views = unit->views(unit->gather(torch::kFloat32));
    for (size_t index = 0; index < unit->entries().size(); ++index) {
      *slots.at(unit->entries()[index].name) = views[index].to(dtype).clone();
    }
  }
  if (config_.tie_word_embeddings) weights.lm_head = weights.embed_tokens;
  return weights;
}

}  // namespace lctrain
