// LibTorch 1.13 vs 2.x differences in the profiler (torch/csrc/autograd/profiler_kineto.h), kept
// beside torch_compat.h. The event accessors changed over 2.x (microsecond accessors joined, then
// partly replaced, by nanosecond ones), so they are picked by what the type offers rather than by
// version number: a LibTorch this code was not built against still compiles.
#pragma once

#include <torch/csrc/autograd/profiler_kineto.h>

#include <cstdint>
#include <utility>

namespace lctrain::compat {

namespace profiler_detail {
template <typename Event>
auto start_ns(const Event& event, int) -> decltype(static_cast<int64_t>(event.startNs())) {
  return static_cast<int64_t>(event.startNs());
}
template <typename Event>
int64_t start_ns(const Event& event, long) {
  return static_cast<int64_t>(event.startUs()) * 1000;
}
template <typename Event>
auto duration_ns(const Event& event, int) -> decltype(static_cast<int64_t>(event.durationNs())) {
  return static_cast<int64_t>(event.durationNs());
}
template <typename Event>
int64_t duration_ns(const Event& event, long) {
  return static_cast<int64_t>(event.durationUs()) * 1000;
}
}  // namespace profiler_detail

using ProfiledEvent = torch::autograd::profiler::KinetoEvent;

inline int64_t event_start_ns(const ProfiledEvent& event) {
  return profiler_detail::start_ns(event, 0);
}
inline int64_t event_duration_ns(const ProfiledEvent& event) {
  return profiler_detail::duration_ns(event, 0);
}

}  // namespace lctrain::compat
