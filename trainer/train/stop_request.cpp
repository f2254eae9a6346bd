#include "train/stop_request.h"

#include <unistd.h>

#include <cstring>

#include "util/error.h"

namespace lctrain {
namespace {

volatile std::sig_atomic_t g_stop_signal = 0;
volatile std::sig_atomic_t g_interrupts = 0;

void say(const char* text) {
  // write(2) is async-signal-safe; spdlog is not.
  const ssize_t ignored = ::write(STDERR_FILENO, text, std::strlen(text));
  (void)ignored;
}

void on_stop_signal(int signal) {
  if (signal == SIGINT) g_interrupts = g_interrupts + 1;
  if (g_stop_signal == 0) {
    g_stop_signal = signal;
    return;
  }
  // An impatient second Ctrl-C still gets the checkpoint, as under `lctrain launch` (which
  // forwards every signal to its ranks); only a third one gives up on it.
  if (signal == SIGINT && g_interrupts >= 3) {
    say("lctrain: third interrupt, exiting without a checkpoint\n");
    std::signal(SIGINT, SIG_DFL);
    std::raise(SIGINT);
    return;
  }
  if (signal == SIGINT && g_interrupts == 2) {
    say("lctrain: already stopping after this step to write a checkpoint; interrupt once more to "
        "exit without it\n");
  }
}

}  // namespace

StopRequest::StopRequest() {
  g_stop_signal = 0;
  g_interrupts = 0;
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
