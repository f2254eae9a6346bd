#include "train/stop_request.h"

#include <atomic>

#include "util/error.h"

namespace lctrain {
namespace {

volatile std::sig_atomic_t g_stop_signal = 0;

void on_stop_signal(int signal) {
  if (signal == SIGINT && g_stop_signal == SIGINT) {
    // Second Ctrl-C: the user does not want to wait for the checkpoint.
    std::signal(SIGINT, SIG_DFL);
    std::raise(SIGINT);
    return;
  }
  g_stop_signal = signal;
}

}  // namespace

StopRequest::StopRequest() {
  g_stop_signal = 0;
  struct sigaction action {};
  action.sa_handler = on_stop_signal;
  sigemptyset(&action.sa_mask);
  LCTRAIN_CHECK(::sigaction(SIGTERM, &action, &previous_term_) == 0 &&
                    ::sigaction(SIGINT, &action, &previous_int_) == 0,
                "cannot install the SIGTERM/SIGINT handlers");
}

StopRequest::~StopRequest() {
  ::sigaction(SIGTERM, &previous_term_, nullptr);
  ::sigaction(SIGINT, &previous_int_, nullptr);
}

bool StopRequest::received() const { return g_stop_signal != 0; }

int StopRequest::signal_number() const { return g_stop_signal; }

bool StopRequest::received_by_any(Communicator& communicator) const {
  if (communicator.world_size() == 1) return received();
  return communicator.sum_over_ranks(received() ? 1.0 : 0.0) > 0.0;
}

}  // namespace lctrain
