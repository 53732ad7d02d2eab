// Lingering closes: sockets the core has already closed whose last bytes must still reach the
// peer. core/io.h promises that a Close flushes everything already sent; a slow client (a full
// socket buffer) would otherwise lose the tail, usually the FATAL sent just before the close.
//
// The set works as nginx's lingering close does. It keeps writing the rest of the output
// whenever the socket is writable and throws away whatever it reads; once everything is
// written it shuts the write side (our FIN) and keeps reading until the peer's FIN. Reading
// matters because Linux answers a close() with unread input by a reset, and a reset can destroy
// data the peer has received but not yet read. Every socket has a hard deadline, and the set
// has a size bound; past either, the socket is simply closed.
//
//   LingeringSet set(config);
//   set.Offer(fd, std::move(out), out_pos, now);   // any thread; then wake the owner thread
//   // owner thread: register set.poll_fd() (EPOLLIN) in its own poll set, then per wake-up:
//   set.Adopt(now); set.Poll(now); set.Expire(now); sleep until set.NextDeadline()
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "core/base/types.h"

namespace switchyard::io_real {

struct LingeringConfig {
  // From the Close: after this long the socket is closed, whatever is left unsent.
  int64_t timeout_ms = 5'000;
  // From our FIN (all output written): how long to wait for the peer's FIN.
  int64_t drain_ms = 2'000;
  // Sockets lingering at once; beyond this a Close closes at once.
  size_t sockets_max = 4096;
};

struct LingeringCounts {
  uint64_t closes = 0;    // sockets taken into the set
  uint64_t timeouts = 0;  // closed at their deadline (or at shutdown) before the peer's FIN
  uint64_t refused = 0;   // not taken: the set was full
};

class LingeringSet {
 public:
  explicit LingeringSet(LingeringConfig config);
  ~LingeringSet();  // closes every socket still here
  LingeringSet(const LingeringSet&) = delete;
  LingeringSet& operator=(const LingeringSet&) = delete;

  // Any thread. Takes ownership of `fd`, a connected non-blocking socket that no poll set holds
  // any more, with its unsent output out[out_pos..] (possibly nothing: then the set only drains
  // the peer's unread input before closing). False when the set is full: the caller keeps the
  // descriptor and closes it. The owner thread must be woken afterwards to adopt it.
  bool Offer(int fd, std::string out, size_t out_pos, Instant now);
  LingeringCounts counts() const;

  // --- The owner thread only ---
  // Readable while a lingering socket is ready: one level-triggered entry in the owner's set.
  int poll_fd() const { return poll_fd_; }
  // Registers the sockets offered since the last call.
  void Adopt(Instant now);
  // Writes to and reads from the sockets that are ready, closing those that are done.
  void Poll(Instant now);
  // Closes the sockets whose deadline has passed.
  void Expire(Instant now);
  std::optional<Instant> NextDeadline() const;
  bool empty() const { return sockets_.empty(); }
  size_t size() const { return sockets_.size(); }
  // Shutdown: closes every socket at once, as if its deadline had passed.
  void CloseAll();

 private:
  struct Socket {
    int fd = -1;
    std::string out;  // out[out_pos..] not yet written
    size_t out_pos = 0;
    Instant deadline;  // the hard one, from the Close
    Instant due;       // when it is closed: the deadline, or earlier once our FIN is out
    bool write_shut = false;
    bool read_eof = false;
    uint32_t registered = 0;  // epoll events it is registered for
    bool pending() const { return out.size() > out_pos; }
  };
  enum class End { kDone, kPeerGone, kTimeout };

  void Handle(uint64_t id, uint32_t events, Instant now);
  // Reads and throws away what the peer sent; false when the connection failed.
  bool Discard(Socket& socket);
  // Writes what the kernel takes; false when the connection failed.
  bool Write(Socket& socket);
  // Shuts the write side once everything is written, and the socket is done once both FINs are
  // out; otherwise brings its registration up to date. False when it was closed.
  bool Advance(uint64_t id, Socket& socket, Instant now);
  void SetDue(uint64_t id, Socket& socket, Instant due);
  void Finish(uint64_t id, End end);

  const LingeringConfig config_;
  int poll_fd_ = -1;
  std::unique_ptr<char[]> buffer_;

  // Offered and not yet adopted, and the number of sockets offered and not yet closed (the one
  // the bound applies to).
  mutable std::mutex mu_;
  std::vector<Socket> offered_;
  size_t count_ = 0;

  // The owner thread's: sockets by id (ids are never reused, so an event for a socket closed
  // earlier in the same batch finds nothing), and the same ordered by when they are due.
  uint64_t next_id_ = 0;
  std::map<uint64_t, Socket> sockets_;
  std::set<std::pair<Instant, uint64_t>> by_due_;

  std::atomic<uint64_t> closes_{0}, timeouts_{0}, refused_{0};
};

}  // namespace switchyard::io_real
