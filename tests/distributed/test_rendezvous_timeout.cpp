// Every rendezvous step ends within distributed.timeout_seconds with the address named: a rank
// whose master port is held by something other than the c10d store (a listener that never
// answers, an HTTP server) and a master whose peers never come both stop with a clear error
// instead of hanging.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "distributed/launcher.h"
#include "support/test_support.h"

namespace lctrain {
namespace {

using testing::contains;
using testing::quoted;
using testing::ScratchDir;
using testing::write_text;

// A training recipe that reaches the rendezvous at once (tiny random model, CPU).
std::string write_recipe(const ScratchDir& scratch) {
  write_text(scratch / "model.json",
             R"({"vocab_size": 40, "hidden_size": 32, "intermediate_size": 48,
                 "num_hidden_layers": 1, "num_attention_heads": 2, "max_position_embeddings": 8})");
  std::string tokens;
  for (int i = 0; i < 500; ++i) tokens += std::to_string((i * 7) % 40) + " ";
  write_text(scratch / "tokens.txt", tokens);
  write_text(scratch / "run.yaml", "model: {config: " + (scratch / "model.json").string() +
                                       "}\ncontext: {target_length: 16}\ndata: {path: " +
                                       (scratch / "tokens.txt").string() +
                                       "}\ntraining: {steps: 2, precision: fp32, device: cpu}\n"
                                       "distributed: {timeout_seconds: 3}\noutput: {dir: " +
                                       (scratch / "run").string() + "}\n");
  return (scratch / "run.yaml").string();
}

// `lctrain train` as rank `rank` of 2 with the store at 127.0.0.1:port; `timeout 90` turns a
// hang into exit status 124 instead of a stuck test.
testing::CommandResult train_as_rank(const std::string& recipe, int rank, int port) {
  return testing::run_command("RANK=" + std::to_string(rank) + " LOCAL_RANK=0 WORLD_SIZE=2 " +
                              "MASTER_ADDR=127.0.0.1 MASTER_PORT=" + std::to_string(port) +
                              " timeout 90 " + quoted(testing::lctrain_binary()) +
                              " train --config " + quoted(recipe));
}

// A TCP listener that accepts connections (the kernel does, into the backlog) and never answers.
class SilentListener {
 public:
  SilentListener() {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    address.sin_port = 0;
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
    EXPECT_EQ(::listen(fd_, 16), 0);
    socklen_t length = sizeof address;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&address), &length);
    port_ = ntohs(address.sin_port);
  }
  ~SilentListener() { ::close(fd_); }
  SilentListener(const SilentListener&) = delete;
  SilentListener& operator=(const SilentListener&) = delete;
  int port() const { return port_; }

 private:
  int fd_ = -1;
  int port_ = 0;
};

void expect_clear_timeout(const testing::CommandResult& result, int port) {
  EXPECT_NE(result.exit_code, 0) << result.output;
  EXPECT_NE(result.exit_code, 124) << "hung until killed:\n" << result.output;
  EXPECT_TRUE(contains(result.output, "127.0.0.1:" + std::to_string(port))) << result.output;
  EXPECT_TRUE(contains(result.output, "3 s")) << result.output;
}

TEST(RendezvousTimeout, APortHeldByASilentListenerEndsInAClearError) {
  ScratchDir scratch;
  const std::string recipe = write_recipe(scratch);
  SilentListener listener;
  const auto result = train_as_rank(recipe, 1, listener.port());
  expect_clear_timeout(result, listener.port());
  EXPECT_TRUE(contains(result.output, "another service")) << result.output;
}

TEST(RendezvousTimeout, APortHeldByAnHttpServerEndsInAClearError) {
  ScratchDir scratch;
  const std::string recipe = write_recipe(scratch);
  const int port = dist::find_free_port("127.0.0.1");
  const std::string port_text = std::to_string(port);
  // The server runs for the length of the command; it is stopped by its pid, whatever happens.
  // In a subshell, so that run_command's 2>&1 takes the whole of it.
  const auto result = testing::run_command(
      "(/usr/bin/python3 -m http.server " + port_text + " --bind 127.0.0.1 >/dev/null 2>&1 & " +
      "server=$!; for i in $(seq 100); do /usr/bin/python3 -c \"import socket; "
      "socket.create_connection(('127.0.0.1', " +
      port_text + "))\" 2>/dev/null && break; sleep 0.1; done; RANK=1 LOCAL_RANK=0 WORLD_SIZE=2 " +
      "MASTER_ADDR=127.0.0.1 MASTER_PORT=" + port_text + " timeout 90 " +
      quoted(testing::lctrain_binary()) + " train --config " + quoted(recipe) +
      "; status=$?; kill $server; exit $status)");
  expect_clear_timeout(result, port);
}

TEST(RendezvousTimeout, AMasterWhosePeerNeverComesSaysHowManyJoined) {
  ScratchDir scratch;
  const std::string recipe = write_recipe(scratch);
  const int port = dist::find_free_port("127.0.0.1");
  const auto result = train_as_rank(recipe, 0, port);
  expect_clear_timeout(result, port);
  EXPECT_TRUE(contains(result.output, "only 1 of 2 ranks joined")) << result.output;
}

}  // namespace
}  // namespace lctrain
