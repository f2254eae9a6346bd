// ProgressBar: one self-redrawing status line on stderr when it is a terminal (never in logs or
// pipes). Log lines are printed through it so that the bar does not tear them.
#pragma once

#include <cstdint>
#include <string>

namespace lctrain {

class ProgressBar {
 public:
  // Active only when `enabled` and stderr is a terminal.
  ProgressBar(int64_t total, bool enabled);
  ~ProgressBar();
  ProgressBar(const ProgressBar&) = delete;
  ProgressBar& operator=(const ProgressBar&) = delete;

  // Redraws the bar at `done` of `total` with a short status text.
  void update(int64_t done, const std::string& status);
  // Clears the bar before something else writes to the terminal; the next update() redraws it.
  void clear();
  bool active() const { return active_; }

 private:
  int64_t total_;
  bool active_;
  bool drawn_ = false;
};

}  // namespace lctrain
