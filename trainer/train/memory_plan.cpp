#include "train/memory_plan.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "util/error.h"

namespace lctrain {
namespace {

constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;

double dtype_bytes(const std::string& precision) {
  if (precision == "fp32") return 4.0;
  LCTRAIN_CHECK(precision == "bf16" || precision == "fp16",
                "precision '{}' is not one of bf16, fp16, fp32", precision);
  return 2.0;
}

struct Units {
  double embeddings = 0.0;
  double layer = 0.0;
  double head = 0.0;  // norm + lm_head (untied) or norm alone (tied: the head reuses embeddings)
};

Units unit_sizes(const LlamaConfig& config) {
  const double hidden = static_cast<double>(config.hidden_size);
  const double vocab = static_cast<double>(config.vocab_size);
  Units units;
  units.embeddings = vocab * hidden;
  units.layer = (static_cast<double>(config.num_parameters()) - hidden -
                 vocab * hidden * (config.tie_word_embeddings ? 1.0 : 2.0)) /
                static_cast<double>(config.num_hidden_layers);
  units.head = hidden + (config.tie_word_embeddings ? 0.0 : vocab * hidden);
  return units;
}

// Elements one decoder layer keeps for backward per token when it is not recomputed: the inputs
// of its matrix products, norms and activation function (attention keeps q, k, v, out and one
// log-sum-exp per head and row).
double layer_activation_elements(const LlamaConfig& config) {
  const double hidden = static_cast<double>(config.hidden_size);
  const double kv = static_cast<double>(config.num_key_value_heads * config.head_dim);
  const double intermediate = static_cast<double>(config.intermediate_size);
  // x, norm1 out, q, k, v, attention out, residual, norm2 out: 6 h + 2 kv; gate, up, silu, product
  // feeding down_proj: 4 i.
  return 6.0 * hidden + 2.0 * kv + 4.0 * intermediate;
}

}  // namespace

Plan make_plan(const PlanInput& input) {
  const LlamaConfig& config = input.config;
  LCTRAIN_CHECK(input.devices > 0 && input.micro_batch > 0 && input.sequence_length > 0,
                "devices, micro-batch and sequence length must be positive");
  const double world = static_cast<double>(input.devices);
  const double compute = dtype_bytes(input.precision);
  const double parameters = static_cast<double>(config.num_parameters());
  const double layers = static_cast<double>(config.num_hidden_layers);
  LCTRAIN_CHECK(input.context_parallel > 0 && input.devices % input.context_parallel == 0,
                "context parallelism {} does not divide {} devices into equal groups",
                input.context_parallel, input.devices);
  LCTRAIN_CHECK(input.sequence_length % (2 * input.context_parallel) == 0,
                "L'={} does not split into {} equal zigzag chunks (context parallelism {})",
                input.sequence_length, 2 * input.context_parallel, input.context_parallel);
  const double context_parallel = static_cast<double>(input.context_parallel);
  // Everything that scales with the tokens counts a rank's share: L' / C of each sequence.
  const double tokens =
      static_cast<double>(input.micro_batch * input.sequence_length) / context_parallel;
  const double hidden = static_cast<double>(config.hidden_size);
  const double vocab = static_cast<double>(config.vocab_size);
  const Units units = unit_sizes(config);

  Plan plan;
  const auto add = [&](std::string what, double bytes) {
    plan.device.push_back({std::move(what), bytes});
    plan.device_total += bytes;
  };
  // Each unit is padded to a multiple of W; the padding is below one element per rank per unit.
  add("fp32 parameter shard", 4.0 * parameters / world);
  add("fp32 gradient shard", 4.0 * parameters / world);
  add("AdamW moments (fp32 exp_avg, exp_avg_sq)", 8.0 * parameters / world);

  // The peak is in a recomputed layer's backward: its gathered weights, the previous unit
  // prefetched, the full gradient in the compute dtype and again in fp32 to reduce-scatter.
  const double gathered =
      compute * (2.0 * units.layer) + (compute + (compute == 4.0 ? 0.0 : 4.0)) * units.layer;
  add("gathered units (computing + prefetched + full gradient)", gathered);

  const bool checkpointing = input.checkpoint_every > 0;
  const double recomputed =
      checkpointing ? std::ceil(layers / static_cast<double>(input.checkpoint_every)) : 0.0;
  const double per_layer_kept = layer_activation_elements(config) * compute;
  const double saved =
      tokens * (recomputed * hidden * compute + (layers - recomputed) * per_layer_kept) +
      tokens * hidden * compute * 2.0;  // embeddings output, final hidden states
  add(checkpointing ? fmt::format("saved activations ({} of {} layers recomputed)",
                                  static_cast<int64_t>(recomputed), config.num_hidden_layers)
                    : std::string("saved activations (no recomputation)"),
      saved);
  // One layer's recomputation in backward: its activations and their gradients.
  if (checkpointing) add("one layer's recompute + its gradients", 2.0 * tokens * per_layer_kept);

  // linear_cross_entropy: chunks of at most 256 MiB of fp32 logits, with their gradient and the
  // compute-dtype logits they come from.
  const double chunk_tokens = std::min(tokens, std::floor(256.0 * 1024 * 1024 / (4.0 * vocab)));
  add("chunked logits (fp32 + gradient + compute dtype)",
      chunk_tokens * vocab * (4.0 + 4.0 + compute));

  const double heads = static_cast<double>(config.num_attention_heads);
  double attention = 0.0;
  if (input.cpu && input.context_parallel == 1 && input.sequence_length < 4096) {
    // CPU math path below 4096 keys: the score matrix and its softmax, fp32.
    attention = 2.0 * static_cast<double>(input.micro_batch) * heads * 4.0 *
                static_cast<double>(input.sequence_length) *
                static_cast<double>(input.sequence_length);
  } else if (input.cpu) {
    attention = 3.0 * static_cast<double>(input.micro_batch) * heads * 4.0 * 512.0 * 512.0 +
                tokens * heads * 4.0;  // blockwise: a few 512 x 512 blocks per head, fp32
  } else {
    attention = tokens * heads * 4.0 + tokens * hidden * compute;  // fused: log-sum-exp, output
  }
  if (input.context_parallel > 1) {
    // Ring attention: the K/V block computing and the one arriving; in backward also the
    // travelling dK/dV, fp32.
    const double kv_row = 2.0 * static_cast<double>(config.num_key_value_heads * config.head_dim);
    attention += tokens * kv_row * (2.0 * compute + 2.0 * 4.0);
  }
  add(input.context_parallel > 1 ? "attention workspace (ring: K/V blocks in flight)"
                                 : "attention workspace",
      attention);

  if (input.cpu) {
    // Measured (bench/sliced_loading_memory.sh, W = 1, 2, 4; 2026-12-01, with multi-rank jobs'
    // lean heap, util/heap_policy.h): the peak exceeds the other components by 0.51-0.52 GiB
    // whatever W: LibTorch's and Gloo's resident code and threads, and freed memory the heap
    // keeps.
    add("process (LibTorch, Gloo, heap kept for activations)", 0.52 * kGiB);
  } else {
    add("CUDA context + allocator fragmentation (~5%)", 0.75 * kGiB + 0.05 * plan.device_total);
  }

  // Host RAM of a GPU rank: the process, one converted tensor while loading (random init draws
  // the largest tensor whole in fp32) and one tensor of a gathered unit while final/ is written.
  const double largest_tensor =
      std::max(vocab * hidden, static_cast<double>(config.intermediate_size) * hidden);
  plan.host_per_rank = 1.5 * kGiB + 4.0 * largest_tensor;

  // Model FLOPs per token: 6 N for the matrices (forward + backward) and 6 n h L' for causal
  // attention; recomputed layers run their forward again (another 2 N_layers + 2 n h L').
  const double layer_parameters = units.layer * layers;
  const double flops_per_token =
      6.0 * parameters + 6.0 * layers * hidden * static_cast<double>(input.sequence_length) +
      (recomputed / std::max(1.0, layers)) *
          (2.0 * layer_parameters +
           2.0 * layers * hidden * static_cast<double>(input.sequence_length));
  // Zigzag chunks give every rank of a group the same causal work: 1/C of the sequence's FLOPs.
  plan.step_seconds = tokens * flops_per_token / (input.device_peak_flops * input.mfu);
  plan.tokens_per_second = tokens * world / plan.step_seconds;
  plan.fits = plan.device_total <= input.device_memory_bytes;
  return plan;
}

std::string change_to_fit(const PlanInput& input) {
  if (make_plan(input).fits) return "";
  if (input.checkpoint_every != 1) {
    PlanInput every_layer = input;
    every_layer.checkpoint_every = 1;
    if (make_plan(every_layer).fits)
      return "recompute every layer (activation_checkpointing_every=1)";
  }
  PlanInput smaller = input;
  smaller.checkpoint_every = 1;
  while (smaller.micro_batch > 1) {
    smaller.micro_batch /= 2;
    if (make_plan(smaller).fits) {
      return fmt::format(
          "recompute every layer and micro_batch_size={} (gradient accumulation "
          "keeps the global batch)",
          smaller.micro_batch);
    }
  }
  PlanInput more = input;
  for (int64_t devices = input.devices + 1; devices <= 4096; ++devices) {
    if (devices % input.context_parallel != 0) continue;
    more.devices = devices;
    if (make_plan(more).fits)
      return fmt::format("{} devices instead of {}", devices, input.devices);
    more.checkpoint_every = 1;
    more.micro_batch = 1;
    if (make_plan(more).fits) {
      return fmt::format("{} devices, recomputing every layer, micro-batch 1", devices);
    }
    more.checkpoint_every = input.checkpoint_every;
    more.micro_batch = input.micro_batch;
  }
  // Split each sequence over C ranks (C dividing W, 2C dividing L'), on these devices or more.
  for (int64_t devices = input.devices; devices <= 4096; ++devices) {
    for (int64_t context_parallel = 2 * input.context_parallel; context_parallel <= devices;
         context_parallel *= 2) {
      if (devices % context_parallel != 0 || input.sequence_length % (2 * context_parallel) != 0)
        continue;
      PlanInput split = input;
      split.devices = devices;
      split.context_parallel = context_parallel;
      split.checkpoint_every = 1;
      split.micro_batch = 1;
      if (make_plan(split).fits) {
        return fmt::format("{}training.context_parallel={} (each sequence over {} ranks){}",
                           devices == input.devices ? "" : fmt::format("{} devices, ", devices),
                           context_parallel, context_parallel,
                           input.checkpoint_every == 1 && input.micro_batch == 1
                               ? ""
                               : ", recomputing every layer, micro-batch 1");
      }
    }
  }
  return "nothing up to 4096 devices, even with context parallelism";
}

std::string describe_plan(const PlanInput& input, const Plan& plan) {
  const LlamaConfig& config = input.config;
  std::string text = fmt::format(
      "model: {:.2f} B parameters ({} layers, hidden {}, vocab {})\n"
      "job: {} {} x {:.0f} GiB, L'={}{}, micro-batch {}, {}, {}\n\n",
      static_cast<double>(config.num_parameters()) / 1e9, config.num_hidden_layers,
      config.hidden_size, config.vocab_size, input.devices, input.cpu ? "CPU ranks" : "GPUs",
      input.device_memory_bytes / kGiB, input.sequence_length,
      input.context_parallel > 1
          ? fmt::format(" split over {} ranks ({} tokens each)", input.context_parallel,
                        input.sequence_length / input.context_parallel)
          : std::string(),
      input.micro_batch, input.precision,
      input.checkpoint_every == 0 ? std::string("no activation checkpointing")
      : input.checkpoint_every == 1
          ? std::string("every layer recomputed")
          : fmt::format("every {}th layer recomputed", input.checkpoint_every));
  text += fmt::format("{:<62} {:>10}\n", input.cpu ? "per rank (host RSS)" : "per GPU", "GiB");
  for (const PlanLine& line : plan.device) {
    text += fmt::format("  {:<60} {:>10.2f}\n", line.what, line.bytes / kGiB);
  }
  text += fmt::format("  {:<60} {:>10.2f}   {} ({:.0f} GiB)\n", "total", plan.device_total / kGiB,
                      plan.fits ? "fits" : "DOES NOT FIT", input.device_memory_bytes / kGiB);
  if (!input.cpu) {
    text += fmt::format("host RAM per rank: {:.2f} GiB (no rank ever holds the whole model)\n",
                        plan.host_per_rank / kGiB);
  }
  text +=
      fmt::format("step time at {:.0f}% MFU: {:.2f} s per micro-batch ({:.0f} tokens/s in all)\n",
                  input.mfu * 100.0, plan.step_seconds, plan.tokens_per_second);
  if (!plan.fits) text += "to fit: " + change_to_fit(input) + "\n";
  return text;
}

}  // namespace lctrain
