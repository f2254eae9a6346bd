#include "model/ring_attention.h"

#include "model/blockwise_attention.h"
#include "util/error.h"

namespace lctrain {

ZigzagLayout::ZigzagLayout(int64_t ring_size, int64_t position, int64_t sequence_length)
    : ring_size_(ring_size), position_(position), chunk_length_(0) {
  LCTRAIN_CHECK(ring_size > 0 && position >= 0 && position < ring_size,
                "ring position {} of {} is invalid", position, ring_size);
  LCTRAIN_CHECK(sequence_length > 0 && sequence_length % (2 * ring_size) == 0,
                "context parallelism over {} ranks cuts a sequence into {} equal chunks: {} tokens "
                "do not divide into them",
                ring_size, 2 * ring_size, sequence_length);
  chunk_length_ = sequence_length / (2 * ring_size);
}

torch::Tensor ZigzagLayout::take(const torch::Tensor& full, int64_t dim) const {
  const auto [first, second] = chunks();
  return torch::cat({full.narrow(dim, first * chunk_length_, chunk_length_),
                     full.narrow(dim, second * chunk_length_, chunk_length_)},
                    dim);
}

namespace {

// How a chunk of queries sees a chunk of keys under the causal mask.
enum class Visibility { kNone, kCausal, kAll };

Visibility visibility(int64_t query_chunk, int64_t key_chunk) {
  if (key_chunk > query_chunk) return Visibility::kNone;
  return key_chunk == query_chunk ? Visibility::kCausal : Visibility::kAll;
}

// partial_attention_*'s offset: the diagonal is causal, an earlier chunk wholly visible.
int64_t offset_of(Visibility seen, int64_t chunk_length) {
  return seen == Visibility::kCausal ? 0 : chunk_length;
}

// The gradient of repeat_kv: each key/value head collects its query heads' gradients.
torch::Tensor sum_heads(const torch::Tensor& x, int64_t groups) {
  if (groups == 1) return x;
  const auto sizes = x.sizes();
  return x.view({sizes[0], sizes[1] / groups, groups, sizes[2], sizes[3]}).sum(2);
}

// Adds one span pair's partial attention into a row's running result (log-sum-exp merge).
void merge(PartialAttention& into, PartialAttention part) {
  if (!into.output.defined()) {
    into = std::move(part);
    return;
  }
  const auto merged = torch::logaddexp(into.log_sum_exp, part.log_sum_exp);
  into.output = into.output * torch::exp(into.log_sum_exp - merged) +
                part.output * torch::exp(part.log_sum_exp - merged);
  into.log_sum_exp = merged;
}

// The ring position whose keys and values this one holds at step s of a pass.
int64_t source_at(const KeyValueRing& ring, int64_t step) {
  return (ring.position() - step + ring.size()) % ring.size();
}

std::array<int64_t, 2> zigzag_chunks(int64_t ring_size, int64_t position) {
  return {position, 2 * ring_size - 1 - position};
}

// One rank's query chunks, and the key chunks of the source it holds, each with its index.
struct ChunkPair {
  int64_t query_slot;  // 0 or 1: where the query chunk sits locally
  int64_t key_slot;    // 0 or 1: where the key chunk sits in the source's local tensors
  Visibility seen;
};

std::vector<ChunkPair> visible_pairs(const KeyValueRing& ring, int64_t source) {
  const auto own = zigzag_chunks(ring.size(), ring.position());
  const auto theirs = zigzag_chunks(ring.size(), source);
  std::vector<ChunkPair> pairs;
  for (int64_t q = 0; q < 2; ++q) {
    for (int64_t k = 0; k < 2; ++k) {
      const Visibility seen = visibility(own[q], theirs[k]);
      if (seen != Visibility::kNone) pairs.push_back({q, k, seen});
    }
  }
  return pairs;
}

// fp32 output and log-sum-exp of this rank's queries over every key they see. The packed keys
// and values ([2, B, Hkv, 2c, D], in their own dtype) travel on while each step computes.
PartialAttention ring_forward(const torch::Tensor& query, const torch::Tensor& key,
                              const torch::Tensor& value, KeyValueRing& ring, int64_t block) {
  const torch::Tensor q = query.to(torch::kFloat32);
  const int64_t chunk = q.size(2) / 2;
  const int64_t groups = q.size(1) / key.size(1);
  std::array<PartialAttention, 2> rows;
  torch::Tensor key_value = torch::stack({key, value}).contiguous();
  for (int64_t step = 0; step < ring.size(); ++step) {
    std::function<torch::Tensor()> arriving;
    if (step + 1 < ring.size()) arriving = ring.pass(key_value);
    const torch::Tensor k = repeat_kv(key_value[0].to(torch::kFloat32), groups);
    const torch::Tensor v = repeat_kv(key_value[1].to(torch::kFloat32), groups);
    for (const ChunkPair& pair : visible_pairs(ring, source_at(ring, step))) {
      merge(rows[pair.query_slot],
            partial_attention_forward(q.narrow(2, pair.query_slot * chunk, chunk),
                                      k.narrow(2, pair.key_slot * chunk, chunk),
                                      v.narrow(2, pair.key_slot * chunk, chunk),
                                      offset_of(pair.seen, chunk), block));
    }
    if (arriving) key_value = arriving();
  }
  // Each query chunk sees its own diagonal at step 0, so both rows are defined.
  return {torch::cat({rows[0].output, rows[1].output}, 2),
          torch::cat({rows[0].log_sum_exp, rows[1].log_sum_exp}, 2)};
}

class RingAttention : public torch::autograd::Function<RingAttention> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* context,
                               const torch::Tensor& query, const torch::Tensor& key,
                               const torch::Tensor& value, int64_t ring_address, int64_t block) {
    auto& ring = *reinterpret_cast<KeyValueRing*>(ring_address);
    auto [output, log_sum_exp] = ring_forward(query, key, value, ring, block);
    context->save_for_backward({query, key, value, output, log_sum_exp});
    context->saved_data["ring"] = ring_address;
    context->saved_data["block"] = block;
    return output.to(query.scalar_type());
  }

  // Keys and values go around once more; the gradients of each source's keys and values follow
  // them, one hop behind, collecting every rank's share, and the last hop brings them home.
  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* context,
                                               torch::autograd::tensor_list gradients) {
    auto& ring = *reinterpret_cast<KeyValueRing*>(context->saved_data["ring"].toInt());
    const int64_t block = context->saved_data["block"].toInt();
    const auto saved = context->get_saved_variables();
    const torch::Tensor query = saved[0].to(torch::kFloat32);
    const torch::Tensor& output = saved[3];
    const torch::Tensor& log_sum_exp = saved[4];
    const torch::Tensor grad_output = gradients[0].to(torch::kFloat32);
    const torch::Tensor row_term = (grad_output * output).sum(-1, true);
    const int64_t chunk = query.size(2) / 2;
    const int64_t groups = query.size(1) / saved[1].size(1);

    torch::Tensor grad_query = torch::zeros_like(query);
    torch::Tensor key_value = torch::stack({saved[1], saved[2]}).contiguous();
    std::function<torch::Tensor()> gradients_arriving;
    for (int64_t step = 0; step < ring.size(); ++step) {
      std::function<torch::Tensor()> arriving;
      if (step + 1 < ring.size()) arriving = ring.pass(key_value);
      const torch::Tensor k = repeat_kv(key_value[0].to(torch::kFloat32), groups);
      const torch::Tensor v = repeat_kv(key_value[1].to(torch::kFloat32), groups);
      torch::Tensor key_value_grad =
          torch::zeros(key_value.sizes(), key_value.options().dtype(torch::kFloat32));
      for (const ChunkPair& pair : visible_pairs(ring, source_at(ring, step))) {
        const int64_t q0 = pair.query_slot * chunk;
        const int64_t k0 = pair.key_slot * chunk;
        const AttentionGradients share = partial_attention_backward(
            query.narrow(2, q0, chunk), k.narrow(2, k0, chunk), v.narrow(2, k0, chunk),
            grad_output.narrow(2, q0, chunk), log_sum_exp.narrow(2, q0, chunk),
            row_term.narrow(2, q0, chunk), offset_of(pair.seen, chunk), block);
        grad_query.narrow(2, q0, chunk).add_(share.query);
        key_value_grad[0].narrow(2, k0, chunk).add_(sum_heads(share.key, groups));
        key_value_grad[1].narrow(2, k0, chunk).add_(sum_heads(share.value, groups));
      }
      // What the ranks before this one found for the same source's keys and values.
      if (gradients_arriving) key_value_grad.add_(gradients_arriving());
      gradients_arriving = ring.pass(key_value_grad);
      if (arriving) key_value = arriving();
    }
    const torch::Tensor own_grad = gradients_arriving();
    return {grad_query.to(saved[0].scalar_type()), own_grad[0].to(saved[1].scalar_type()),
            own_grad[1].to(saved[2].scalar_type()), torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

torch::Tensor ring_causal_attention(const torch::Tensor& query, const torch::Tensor& key,
                                    const torch::Tensor& value, KeyValueRing& ring, int64_t block) {
  LCTRAIN_CHECK(query.dim() == 4 && key.dim() == 4 && value.dim() == 4,
                "ring attention takes [B, H, T, D] tensors");
  LCTRAIN_CHECK(key.sizes() == value.sizes() && query.size(2) == key.size(2) &&
                    query.size(2) % 2 == 0 && query.size(1) % key.size(1) == 0,
                "ring attention: {} query heads x {} tokens against {} key heads x {} tokens do "
                "not make a zigzag share",
                query.size(1), query.size(2), key.size(1), key.size(2));
  LCTRAIN_CHECK(block > 0, "attention block must be positive");
  const bool differentiable =
      torch::GradMode::is_enabled() &&
      (query.requires_grad() || key.requires_grad() || value.requires_grad());
  if (differentiable) {
    return RingAttention::apply(query, key, value, reinterpret_cast<int64_t>(&ring), block);
  }
  return ring_forward(query, key, value, ring, block).output.to(query.scalar_type());
}

}  // namespace lctrain
