// `lctrain forward`: logits of a token sequence, written as one float32 [T, V] safetensors tensor.
#include "cli/commands.h"
#include "cli/model_options.h"
#include "io/safetensors.h"
#include "io/token_ids_file.h"
#include "util/logging.h"

namespace lctrain::cli {

Action add_forward_command(CLI::App& app) {
  struct Options {
    ModelOptions model;
    std::string ids_file;
    std::string out_file;
  };
  auto options = std::make_shared<Options>();
  CLI::App* command = app.add_subcommand("forward", "Compute logits for token ids");
  options->model.add_to(*command);
  command->add_option("--ids", options->ids_file, "text file of whitespace-separated token ids")
      ->required();
  command->add_option("--out", options->out_file, "output .safetensors holding 'logits' [T, V]")
      ->required();

  return [options] {
    LlamaModel model = options->model.load();
    const std::vector<int64_t> ids = io::read_token_ids(options->ids_file);
    torch::NoGradGuard no_grad;
    const auto input = torch::tensor(ids, torch::kInt64).unsqueeze(0);
    const auto logits =
        model.forward(input).squeeze(0).to(torch::kCPU, torch::kFloat32).contiguous();
    io::write_safetensors(options->out_file, {{"logits", logits}});
    log()->info("wrote logits [{}, {}] for {} tokens (RoPE {}) to {}", logits.size(0),
                logits.size(1), ids.size(), model.runtime_rope().describe(), options->out_file);
  };
}

}  // namespace lctrain::cli
