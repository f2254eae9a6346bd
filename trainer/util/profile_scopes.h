// The names of the scopes lctrain records for its profiler (profile/step_profiler.h): the code
// that does the work marks it with a ProfileScope, and profile/step_breakdown.h counts
// everything inside a scope in its category, whatever the operators' own names. Costs one check
// of a global flag when no profiler runs.
#pragma once

#include <ATen/record_function.h>

namespace lctrain {

inline constexpr const char* kStepScope = "lctrain::step";
inline constexpr const char* kOptimizerScope = "lctrain::optimizer";
inline constexpr const char* kAttentionScope = "lctrain::attention";
inline constexpr const char* kCommunicationScope = "lctrain::communication";

// One scope, from construction to destruction: RECORD_USER_SCOPE without the macro's hidden
// variable (named `guard`, which shadows the caller's own).
class ProfileScope {
 public:
  explicit ProfileScope(const char* name) : record_(at::RecordScope::USER_SCOPE) {
    if (record_.isActive()) record_.before(name);
  }

 private:
  at::RecordFunction record_;
};

}  // namespace lctrain
