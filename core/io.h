// The core's boundary: the events a driver hands in and the actions it drains (DESIGN.md 2).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "core/base/types.h"
#include "core/service.h"
#include "core/trace/record.h"

namespace switchyard {

// --- Events: what happened, reported by the driver (io_real or io_sim). ---

// A client connected. The driver delivers this first to every new unit, so the unit can start
// its authentication timer.
struct Accepted {
  ConnId conn;
  std::string peer;  // "host:port" of the client, for logs.
};
struct Connected {
  ConnId conn;
};
struct ConnectFailed {
  ConnId conn;
  std::string why;
};
// Bytes read from a connection. The view is valid only during Handle(); the core copies what it
// keeps.
struct Received {
  ConnId conn;
  std::string_view bytes;
};
// The driver handed `flushed` more bytes of this connection's output to the kernel.
struct Writable {
  ConnId conn;
  uint64_t flushed = 0;
};
// The peer closed the connection, or it failed. The driver has already released it: the core
// must not emit a Close for it.
struct Closed {
  ConnId conn;
  std::string why;
};
struct TimerFired {};
struct ServiceReplied {
  ServiceReply reply;
};

// The cluster view changed (a role, a node up or down, an LSN): the driver delivers it to every
// unit.
struct NodeStateChanged {
  ClusterSnapshot snapshot;
};

// Traffic capture was switched on or off, or a new capture file began (DESIGN.md section 6):
// the driver delivers it to every unit, and a new unit gets the current state with Accepted.
// `epoch` numbers the capture file records go to; on a new epoch every live captured session
// writes a snapshot, so each file can be replayed on its own. Record times count from `start`.
struct CaptureChanged {
  bool on = false;
  uint64_t epoch = 0;
  Instant start;
};

using Event = std::variant<Accepted, Connected, ConnectFailed, Received, Writable, Closed,
                           TimerFired, ServiceReplied, NodeStateChanged, CaptureChanged>;

// --- Actions: what the core wants done, drained by the driver with PollAction(). ---

struct Send {
  ConnId conn;
  std::string bytes;
};
// Open a new TCP connection to a node; answered with Connected or ConnectFailed.
struct Connect {
  ConnId conn;
  NodeId node;
};
// Close after flushing everything already sent on this connection. No Closed event follows.
struct Close {
  ConnId conn;
  std::string why;
};
struct PauseRead {
  ConnId conn;
};
struct ResumeRead {
  ConnId conn;
};
struct RequestService {
  ServiceRequest request;
};

// Capture records for the log (only while capture is on): `count` whole records, encoded as in
// a trace file (core/trace/encoder.h), all made for the file of epoch `epoch`; `refused` more
// were over the record size bound and count as dropped. A unit emits at most one per Handle().
struct Trace {
  uint64_t epoch = 0;
  std::string records;
  uint64_t count = 0;
  uint64_t refused = 0;
};

using Action = std::variant<Send, Connect, Close, PauseRead, ResumeRead, RequestService, Trace>;

// What the driver supplies that the core cannot make itself. io_real backs it with an atomic
// counter and OpenSSL's RAND_bytes; io_sim with the seeded decision source.
class Environment {
 public:
  virtual ~Environment() = default;
  virtual ConnId NewConnId() = 0;
  virtual void RandomBytes(char* out, size_t n) = 0;
};

}  // namespace switchyard
