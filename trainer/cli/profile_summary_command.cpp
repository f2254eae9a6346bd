// `lctrain profile-summary TRACE [--step-scope NAME] [--json]`: where the profiled steps' time
// went (GEMM, attention, elementwise, optimizer, communication/copies, idle), from a trace that
// `LCTRAIN_PROFILE` wrote or that torch.profiler exported (bench/hf_train_step.py --profile marks
// its steps with the same scope), so that both sides are split by the same rules.
#include <iostream>

#include "cli/commands.h"
#include "profile/step_breakdown.h"
#include "profile/trace_events.h"

namespace lctrain::cli {

Action add_profile_summary_command(CLI::App& app) {
  CLI::App* command = app.add_subcommand(
      "profile-summary", "Split profiled training steps into GEMM, attention, elementwise, "
                         "optimizer, communication and idle time");
  auto trace = std::make_shared<std::string>();
  auto step_scope = std::make_shared<std::string>(kStepScope);
  auto as_json = std::make_shared<bool>(false);
  command->add_option("trace", *trace, "Chrome trace (LCTRAIN_PROFILE or torch.profiler)")
      ->required();
  command->add_option("--step-scope", *step_scope,
                      "name of the scope that marks each step (record_function)");
  command->add_flag("--json", *as_json, "print the breakdown as JSON");
  return [trace, step_scope, as_json] {
    const StepBreakdown breakdown = break_down(read_chrome_trace(*trace), *step_scope);
    if (*as_json) {
      std::cout << breakdown_json(breakdown).dump(2) << "\n";
    } else {
      std::cout << format_breakdown(breakdown);
    }
  };
}

}  // namespace lctrain::cli
