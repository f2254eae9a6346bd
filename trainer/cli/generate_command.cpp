// `lctrain generate`: greedy text continuation with a KV cache.
#include <iostream>

#include "cli/commands.h"
#include "cli/model_options.h"
#include "io/tokenizer.h"
#include "model/generate.h"
#include "model/memory_estimate.h"
#include "util/logging.h"

namespace lctrain::cli {

Action add_generate_command(CLI::App& app) {
  struct Options {
    ModelOptions model;
    std::string prompt;
    int64_t max_new_tokens = 64;
    bool no_cache = false;
  };
  auto options = std::make_shared<Options>();
  CLI::App* command = app.add_subcommand("generate", "Greedy text generation");
  options->model.add_to(*command);
  command->add_option("--prompt", options->prompt, "text to continue")->required();
  command->add_option("--max-new-tokens", options->max_new_tokens, "tokens to generate")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  command->add_flag("--no-cache", options->no_cache,
                    "recompute the whole sequence every step (slow; for checking the cache)");

  return [options] {
    const io::Tokenizer tokenizer = options->model.load_tokenizer();
    const std::vector<int64_t> prompt = tokenizer.encode(options->prompt);
    // Refused before the weights are read when the sequence cannot fit.
    const io::ModelLoadOptions load = options->model.to_load_options();
    check_fits_in_memory(estimate_generation_memory(options->model.load_config().config, load.dtype,
                                                    load.device, static_cast<double>(prompt.size()),
                                                    static_cast<double>(options->max_new_tokens),
                                                    !options->no_cache),
                         load.device,
                         fmt::format("generate --max-new-tokens {} after a {}-token prompt",
                                     options->max_new_tokens, prompt.size()));
    LlamaModel model = options->model.load();
    GenerateOptions generate;
    generate.max_new_tokens = options->max_new_tokens;
    generate.stop_token =
        tokenizer.eos_id() >= 0 ? tokenizer.eos_id() : model.config().eos_token_id;
    generate.use_cache = !options->no_cache;
    const std::vector<int64_t> tokens = greedy_generate(model, prompt, generate);
    // Decoding prompt and continuation together keeps SentencePiece's word-boundary spaces right.
    std::vector<int64_t> all = prompt;
    all.insert(all.end(), tokens.begin(), tokens.end());
    std::cout << tokenizer.decode(all) << std::endl;
    log()->debug("generated {} tokens after a {}-token prompt", tokens.size(), prompt.size());
  };
}

}  // namespace lctrain::cli
