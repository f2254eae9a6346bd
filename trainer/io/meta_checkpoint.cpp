#include "io/meta_checkpoint.h"

#include <algorithm>
#include <memory>
#include <regex>
#include <set>
#include <vector>

#include "io/hf_model_dir.h"
#include "io/torch_pickle.h"
#include "util/error.h"
#include "util/json_fields.h"
#include "util/logging.h"

namespace lctrain::io {
namespace {

namespace fs = std::filesystem;
using Shard = std::map<std::string, torch::Tensor>;

constexpr int kReplicated = -1;

// The consolidated.NN.pth files in shard order; the numbering must run 00, 01, ... without gaps.
std::vector<fs::path> shard_files(const fs::path& dir) {
  static const std::regex pattern(R"(consolidated\.(\d{1,4})\.pth)");
  std::map<int, fs::path> by_index;
  for (const auto& entry : fs::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    std::smatch match;
    if (!std::regex_match(name, match, pattern)) continue;
    by_index[std::stoi(match[1].str())] = entry.path();
  }
  std::vector<fs::path> files;
  for (const auto& [index, path] : by_index) {
    LCTRAIN_CHECK(index == static_cast<int>(files.size()),
                  "model-parallel shards must be numbered from 00 without gaps; found {} after {} "
                  "file(s)",
                  path.filename().string(), files.size());
    files.push_back(path);
  }
  return files;
}

// How Meta's model-parallel code split each weight (fairscale's ColumnParallelLinear splits the
// output dim, RowParallelLinear the input dim, ParallelEmbedding the embedding dim).
struct NameMap {
  std::string hf_name;
  int split = 0;
  int permute = 0;  // 0: none, 1: query heads, 2: key/value heads
};

std::optional<NameMap> map_name(const std::string& name) {
  if (name == "tok_embeddings.weight") return NameMap{"model.embed_tokens.weight", 1};
  if (name == "norm.weight") return NameMap{"model.norm.weight", kReplicated};
  if (name == "output.weight") return NameMap{"lm_head.weight", 0};
  static const std::regex layer(R"(layers\.(\d+)\.(.+))");
  std::smatch match;
  if (!std::regex_match(name, match, layer)) return std::nullopt;
  const std::string prefix = "model.layers." + match[1].str() + ".";
  static const std::map<std::string, NameMap> kLayer = {
      {"attention.wq.weight", {"self_attn.q_proj.weight", 0, 1}},
      {"attention.wk.weight", {"self_attn.k_proj.weight", 0, 2}},
      {"attention.wv.weight", {"self_attn.v_proj.weight", 0}},
      {"attention.wo.weight", {"self_attn.o_proj.weight", 1}},
      {"feed_forward.w1.weight", {"mlp.gate_proj.weight", 0}},
      {"feed_forward.w2.weight", {"mlp.down_proj.weight", 1}},
      {"feed_forward.w3.weight", {"mlp.up_proj.weight", 0}},
      {"attention_norm.weight", {"input_layernorm.weight", kReplicated}},
      {"ffn_norm.weight", {"post_attention_layernorm.weight", kReplicated}},
  };
  const auto found = kLayer.find(match[2].str());
  if (found == kLayer.end()) return std::nullopt;
  NameMap mapped = found->second;
  mapped.hf_name = prefix + mapped.hf_name;
  return mapped;
}

// Meta's interleaved RoPE pairs (0,1), (2,3), ... of each head become Hugging Face's halves
// (0, d/2), (1, d/2+1), ...: transformers' convert_llama_weights_to_hf.py permute().
torch::Tensor permute_rows(const torch::Tensor& weight, int64_t heads) {
  const int64_t rows = weight.size(0);
  const int64_t columns = weight.size(1);
  return weight.reshape({heads, rows / heads / 2, 2, columns})
      .transpose(1, 2)
      .reshape({rows, columns});
}

std::string shape_text(c10::IntArrayRef shape) {
  return fmt::format("[{}]", fmt::join(shape, ", "));
}

// The merged shape, after checking that the shards agree everywhere but along the split dim.
std::vector<int64_t> merged_shape(const std::vector<fs::path>& files,
                                  const std::vector<Shard>& shards, const std::string& name,
                                  int split) {
  const torch::Tensor& first = shards[0].at(name);
  std::vector<int64_t> shape = first.sizes().vec();
  LCTRAIN_CHECK(split < static_cast<int>(shape.size()),
                "tensor '{}' in {} has shape {}; its model-parallel split is along dim {}", name,
                files[0].filename().string(), shape_text(first.sizes()), split);
  for (size_t index = 1; index < shards.size(); ++index) {
    const torch::Tensor& part = shards[index].at(name);
    bool agrees = part.dim() == first.dim() && part.scalar_type() == first.scalar_type();
    for (int64_t dim = 0; agrees && dim < first.dim(); ++dim) {
      agrees = dim == split || part.size(dim) == first.size(dim);
    }
    LCTRAIN_CHECK(agrees,
                  "tensor '{}' is {} {} in {} but {} {} in {}; model-parallel shards must agree {}",
                  name, c10::toString(part.scalar_type()), shape_text(part.sizes()),
                  files[index].filename().string(), c10::toString(first.scalar_type()),
                  shape_text(first.sizes()), files[0].filename().string(),
                  split == kReplicated ? "exactly (it is replicated)"
                                       : fmt::format("except along dim {}", split));
    if (split != kReplicated) shape[static_cast<size_t>(split)] += part.size(split);
  }
  return shape;
}

torch::Tensor merge(const std::vector<fs::path>& files, const std::vector<Shard>& shards,
                    const std::string& name, int split) {
  if (split != kReplicated) {
    std::vector<torch::Tensor> parts;
    for (const Shard& shard : shards) parts.push_back(shard.at(name));
    return parts.size() == 1 ? parts.front() : torch::cat(parts, split);
  }
  const torch::Tensor& first = shards[0].at(name);
  for (size_t index = 1; index < shards.size(); ++index) {
    LCTRAIN_CHECK(torch::equal(shards[index].at(name), first),
                  "replicated tensor '{}' differs between {} and {}", name,
                  files[0].filename().string(), files[index].filename().string());
  }
  return first;
}

// Hugging Face's converter hard-codes the window per LLaMA version; params.json rarely says.
int64_t trained_window(const JsonFields& params, int64_t vocab_size, double norm_eps,
                       double rope_theta) {
  if (const auto given = params.optional_int("max_seq_len")) return *given;
  if (vocab_size >= 128000) {  // LLaMA 3 (3.1 and later use scaled RoPE)
    return params.optional_bool("use_scaled_rope").value_or(false) ? 131072 : 8192;
  }
  if (rope_theta >= 1e6) return 16384;   // Code Llama
  return norm_eps < 5e-6 ? 2048 : 4096;  // LLaMA 1 shipped norm_eps 1e-6, LLaMA 2 1e-5
}

// Elements [begin, begin + out.numel()) of the merged (and, with heads > 0, row-permuted) tensor
// `name` of shape `shape` (1-D or 2-D), read row by row from the parts that hold them; each part
// row's mapped pages are released after use. Replicated tensors are checked equal over the range.
void read_merged_range(const std::vector<fs::path>& files, const std::vector<Shard>& shards,
                       const std::string& name, int split, int64_t heads,
                       const std::vector<int64_t>& shape, int64_t begin, torch::Tensor& out) {
  const int64_t count = out.numel();
  if (count == 0) return;
  if (shape.size() == 1) {  // norms: replicated (or, from one file, whole)
    const torch::Tensor first = shards.front().at(name).narrow(0, begin, count);
    for (size_t index = 1; index < shards.size() && split == kReplicated; ++index) {
      LCTRAIN_CHECK(torch::equal(shards[index].at(name).narrow(0, begin, count), first),
                    "replicated tensor '{}' differs between {} and {}", name,
                    files[0].filename().string(), files[index].filename().string());
    }
    out.copy_(first);
    for (const Shard& shard : shards) release_mapped_tensor(shard.at(name));
    return;
  }
  const int64_t columns = shape[1];
  const int64_t half = heads > 0 ? shape[0] / heads / 2 : 0;
  // The stored row of merged row `row`: Meta's pairs (h, i, j) become Hugging Face's (h, j, i).
  const auto source_row = [&](int64_t row) {
    if (heads == 0) return row;
    const int64_t head = row / (2 * half);
    const int64_t j = (row % (2 * half)) / half;
    const int64_t i = row % half;
    return head * 2 * half + i * 2 + j;
  };
  // One merged row as a 1-D tensor (a view on the mapping when it comes from one part).
  const auto merged_row = [&](int64_t row) -> std::vector<torch::Tensor> {
    const int64_t stored = source_row(row);
    if (split == 1) {
      std::vector<torch::Tensor> pieces;
      for (const Shard& shard : shards) pieces.push_back(shard.at(name).select(0, stored));
      return pieces;
    }
    if (split == kReplicated) return {shards.front().at(name).select(0, stored)};
    int64_t offset = 0;
    for (const Shard& shard : shards) {
      const torch::Tensor& part = shard.at(name);
      if (stored < offset + part.size(0)) return {part.select(0, stored - offset)};
      offset += part.size(0);
    }
    throw Error("internal: row {} of '{}' beyond its {} rows", stored, name, offset);
  };
  int64_t done = 0;
  for (int64_t row = begin / columns; done < count; ++row) {
    const int64_t from = row == begin / columns ? begin % columns : 0;
    const int64_t take = std::min(columns - from, count - done);
    int64_t column = 0;
    for (const torch::Tensor& piece : merged_row(row)) {
      const int64_t lo = std::max(from, column);
      const int64_t hi = std::min(from + take, column + piece.size(0));
      if (lo < hi) {
        out.narrow(0, done + lo - from, hi - lo).copy_(piece.narrow(0, lo - column, hi - lo));
      }
      release_mapped_tensor(piece);
      column += piece.size(0);
    }
    done += take;
  }
}

}  // namespace

bool is_meta_checkpoint_dir(const fs::path& dir) {
  return fs::exists(dir / "params.json") && fs::exists(dir / "consolidated.00.pth");
}

int64_t meta_intermediate_size(int64_t dim, int64_t multiple_of,
                               std::optional<double> ffn_dim_multiplier) {
  LCTRAIN_CHECK(multiple_of > 0, "multiple_of must be positive, got {}", multiple_of);
  auto hidden = static_cast<int64_t>(2.0 * 4.0 * static_cast<double>(dim) / 3.0);
  if (ffn_dim_multiplier) {
    hidden = static_cast<int64_t>(*ffn_dim_multiplier * static_cast<double>(hidden));
  }
  return multiple_of * ((hidden + multiple_of - 1) / multiple_of);
}

LlamaConfig load_meta_config(const fs::path& dir) {
  return with_context(fmt::format("Meta checkpoint folder '{}'", dir.string()), [&] {
    const fs::path path = dir / "params.json";
    const nlohmann::json json = read_json_file(path);
    const JsonFields params(json, path.string());
    const int64_t dim = params.required_int("dim");
    const int64_t heads = params.required_int("n_heads");
    const auto files = shard_files(dir);
    LCTRAIN_CHECK(!files.empty(), "has params.json but no consolidated.00.pth");
    const Shard first = read_torch_archive(files.front());
    const auto embedding = first.find("tok_embeddings.weight");
    LCTRAIN_CHECK(embedding != first.end() && embedding->second.dim() == 2,
                  "{}: no 2-D tensor 'tok_embeddings.weight'", files.front().string());

    int64_t vocab_size = params.optional_int("vocab_size").value_or(-1);
    if (vocab_size <= 0) vocab_size = embedding->second.size(0);  // -1: "as the tokenizer has"
    const double norm_eps = params.optional_number("norm_eps").value_or(1e-5);
    const double rope_theta = params.optional_number("rope_theta").value_or(10000.0);
    const bool llama3 = vocab_size >= 128000;

    nlohmann::json config = {
        {"architectures", {"LlamaForCausalLM"}},
        {"model_type", "llama"},
        {"hidden_act", "silu"},
        {"hidden_size", dim},
        {"intermediate_size",
         meta_intermediate_size(dim, params.optional_int("multiple_of").value_or(256),
                                params.optional_number("ffn_dim_multiplier"))},
        {"num_hidden_layers", params.required_int("n_layers")},
        {"num_attention_heads", heads},
        {"num_key_value_heads", params.optional_int("n_kv_heads").value_or(heads)},
        {"vocab_size", vocab_size},
        {"rms_norm_eps", norm_eps},
        {"rope_theta", rope_theta},
        {"max_position_embeddings", trained_window(params, vocab_size, norm_eps, rope_theta)},
        {"tie_word_embeddings", false},
        {"bos_token_id", llama3 ? 128000 : 1},
        {"eos_token_id", llama3 ? 128001 : 2},
        {"torch_dtype", dtype_name(embedding->second.scalar_type())},
    };
    if (params.optional_bool("use_scaled_rope").value_or(false)) {
      config["rope_scaling"] = {{"rope_type", "llama3"},
                                {"factor", 8.0},
                                {"low_freq_factor", 1.0},
                                {"high_freq_factor", 4.0},
                                {"original_max_position_embeddings", 8192}};
    }
    if (!params.has("max_seq_len")) {
      log()->info(
          "{}: params.json gives no trained window; assuming {} tokens as Hugging Face's "
          "converter does for this LLaMA version",
          path.string(), config["max_position_embeddings"].get<int64_t>());
    }
    return LlamaConfig::from_json(config, path.string());
  });
}

TensorSources open_meta_checkpoint(const fs::path& dir, const LlamaConfig& config) {
  return with_context(fmt::format("Meta checkpoint folder '{}'", dir.string()), [&] {
    const auto files = std::make_shared<const std::vector<fs::path>>(shard_files(dir));
    LCTRAIN_CHECK(!files->empty(), "has no consolidated.00.pth");
    auto shards = std::make_shared<std::vector<Shard>>();
    for (const fs::path& file : *files) shards->push_back(read_torch_archive(file));

    const Shard& first = shards->front();
    for (size_t index = 1; index < shards->size(); ++index) {
      for (const auto& [name, tensor] : (*shards)[index]) {
        LCTRAIN_CHECK(first.count(name) != 0, "tensor '{}' is in {} but not in {}", name,
                      (*files)[index].string(), files->front().string());
      }
      for (const auto& [name, tensor] : first) {
        LCTRAIN_CHECK((*shards)[index].count(name) != 0, "tensor '{}' is in {} but not in {}", name,
                      files->front().string(), (*files)[index].string());
      }
    }

    const std::string origin = files->size() == 1
                                   ? files->front().filename().string()
                                   : fmt::format("{}..{}", files->front().filename().string(),
                                                 files->back().filename().string());
    TensorSources sources;
    for (const auto& [name, tensor] : first) {
      if (name == "rope.freqs") continue;  // LLaMA 1 saved its RoPE frequencies; we compute them
      const NameMap mapped = map_name(name).value_or(NameMap{name, 0});
      const int split = shards->size() == 1 ? kReplicated : mapped.split;
      TensorSource source;
      source.shape = merged_shape(*files, *shards, name, split);
      source.dtype = tensor.scalar_type();
      source.origin = fmt::format("{} (as '{}')", origin, name);
      const int64_t heads = mapped.permute == 1   ? config.num_attention_heads
                            : mapped.permute == 2 ? config.num_key_value_heads
                                                  : 0;
      // A mis-shaped wq/wk stays unpermuted so that the loader's shape check names it.
      const bool permute =
          heads > 0 && source.shape.size() == 2 && source.shape[0] == heads * config.head_dim;
      source.read = [files, shards, name = name, split, permute, heads] {
        const torch::Tensor merged = merge(*files, *shards, name, split);
        return permute ? permute_rows(merged, heads) : merged;
      };
      source.release = [shards, name = name] {
        for (const Shard& shard : *shards) release_mapped_tensor(shard.at(name));
      };
      // Ranges map to rows of the model-parallel parts (through the wq/wk row permutation): a
      // rank reads only the rows its slice covers, whatever the split.
      const bool regular = (source.shape.size() == 2 && tensor.dim() == 2) ||
                           (source.shape.size() == 1 && split == kReplicated);
      if (regular) {
        source.read_range = [files, shards, name = name, split, permute, heads,
                             shape = source.shape](int64_t begin, torch::Tensor& out) {
          read_merged_range(*files, *shards, name, split, permute ? heads : 0, shape, begin, out);
        };
      }
      LCTRAIN_CHECK(sources.emplace(mapped.hf_name, std::move(source)).second,
                    "two tensors map to '{}'", mapped.hf_name);
    }
    return sources;
  });
}

}  // namespace lctrain::io
