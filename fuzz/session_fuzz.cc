// libFuzzer target: a whole Unit (client session, server session, pool) fed arbitrary bytes.
// The input is a script of steps: [op][length][bytes...]. Whatever it does, the unit must keep
// its invariants (checked after every event), never crash, and answer bad bytes with a close.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "tests/core/session/harness.h"

namespace {

using switchyard::ConnId;
using switchyard::testing::Harness;

std::string ServerLogin() {
  namespace pg = switchyard::pg;
  return pg::Authentication{pg::Authentication::kOk, ""}.Encode() +
         pg::ParameterStatus{"server_version", "15.18"}.Encode() +
         pg::BackendKeyData{99, 7}.Encode() + pg::ReadyForQuery{'I'}.Encode();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  switchyard::ProxyConfig config = Harness::DefaultConfig();
  config.message_size_max = 1 << 16;
  Harness h(config);
  size_t unit = h.Accept();
  ConnId client = h.client(unit);
  bool server_logged_in = false;
  size_t i = 0;
  while (i + 2 <= size) {
    const uint8_t op = data[i] % 6;
    const size_t length = std::min<size_t>(data[i + 1], size - i - 2);
    std::string_view bytes(reinterpret_cast<const char*>(data + i + 2), length);
    i += 2 + length;
    const bool has_server =
        h.connect_count() > 0 && !h.IsClosed(h.LastConnect()) && h.HasUnitOwner(h.LastConnect());
    switch (op) {
      case 0:
        if (!h.IsClosed(client)) h.Receive(client, bytes);
        break;
      case 1:
        if (has_server && server_logged_in) h.Receive(h.LastConnect(), bytes);
        break;
      case 2:
        if (!h.IsClosed(client)) {
          h.PeerClosed(client);
          h.MarkClosedForTest(client);
        }
        break;
      case 3:
        if (has_server) {
          h.PeerClosed(h.LastConnect());
          h.MarkClosedForTest(h.LastConnect());
        }
        break;
      case 4:
        h.AdvanceMs(bytes.empty() ? 1 : static_cast<uint8_t>(bytes[0]) * 100);
        break;
      case 5:
        if (has_server && !server_logged_in) {
          h.Connected(h.LastConnect());
          h.Receive(h.LastConnect(), ServerLogin());
          server_logged_in = true;
        }
        break;
    }
  }
  return 0;
}
