// StopRequest: turns SIGTERM / SIGINT (preemption, Ctrl-C, `lctrain launch` forwarding them) into
// a flag the training loop reads between steps, so that the job finishes the step, saves a
// checkpoint and exits 0. A second SIGINT (an impatient Ctrl-C) is acknowledged and still gets the
// checkpoint, as under `lctrain launch`; a third ends the process at once.
#pragma once

#include <csignal>

#include "distributed/communicator.h"

namespace lctrain {

class StopRequest {
 public:
  StopRequest();   // installs the handlers
  ~StopRequest();  // restores the previous ones
  StopRequest(const StopRequest&) = delete;
  StopRequest& operator=(const StopRequest&) = delete;

  // Whether a signal reached this process.
  bool received() const;
  // Collective: whether a signal reached any rank (all ranks must stop at the same step).
  bool received_by_any(Communicator& communicator) const;
  // The signal's number, 0 when none.
  int signal_number() const;

 private:
  struct sigaction previous_term_ {};
  struct sigaction previous_int_ {};
};

}  // namespace lctrain
