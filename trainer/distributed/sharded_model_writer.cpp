#include "distributed/sharded_model_writer.h"

#include <optional>
#include <string>

#include "io/streaming_model_writer.h"
#include "util/error.h"

namespace lctrain {

void save_sharded_model(ShardedLlama& model, const std::filesystem::path& model_dir,
                        const LlamaConfig& config, torch::ScalarType dtype,
                        uint64_t max_shard_bytes) {
  torch::NoGradGuard no_grad;
  Communicator& communicator = model.units().front()->communicator();
  const bool writes = communicator.rank() == 0;
  std::optional<std::string> failure;
  std::optional<io::StreamingModelWriter> writer;
  const auto attempt = [&](auto&& body) {
    if (!writes || failure) return;
    try {
      body();
    } catch (const Error& error) {
      failure = error.what();
    } catch (const std::exception& error) {  // filesystem errors, a full disk in LibTorch's copy
      failure = error.what();
    }
  };
  attempt([&] { writer.emplace(model_dir, config, dtype, max_shard_bytes); });
  for (auto& unit : model.units()) {
    // Gathered straight in the output dtype: converting each element before or after the gather
    // gives the same bits, and the gathered unit is half the size for bf16.
    const torch::Tensor full = unit->gather(dtype);
    const std::vector<torch::Tensor> views = unit->views(full);
    attempt([&] {
      for (size_t index = 0; index < views.size(); ++index) {
        writer->write(unit->entries()[index].name, views[index]);
      }
    });
  }
  attempt([&] { writer->finish(); });
  const bool failed = communicator.sum_over_ranks(failure ? 1.0 : 0.0) > 0.0;
  if (failure) throw Error("{}", *failure);
  LCTRAIN_CHECK(!failed, "rank 0 failed to write {} (see its error)", model_dir.string());
}

}  // namespace lctrain
