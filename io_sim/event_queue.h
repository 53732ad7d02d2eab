// The simulator's virtual clock and event queue (DESIGN.md section 7): events are ordered by
// (time, sequence number), so two events at the same instant run in the order they were
// scheduled, and the clock only moves forward, jumping straight to the next event.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <utility>

#include "core/base/check.h"
#include "core/base/types.h"

namespace switchyard::io_sim {

// Names one scheduled event, for Cancel(). Sequence numbers are never reused.
struct EventId {
  uint64_t seq = 0;
  bool valid() const { return seq != 0; }
  friend auto operator<=>(const EventId&, const EventId&) = default;
};

template <typename Payload>
class EventQueue {
 public:
  struct Entry {
    Instant at;
    EventId id;
    Payload payload;
  };

  // A runaway simulation (an event that always schedules two more) stops with a message
  // instead of eating the machine.
  static constexpr size_t kEventsMaxDefault = size_t{1} << 24;

  explicit EventQueue(Instant start = Instant{0}, size_t events_max = kEventsMaxDefault)
      : now_(start), events_max_(events_max) {}

  Instant now() const { return now_; }
  size_t size() const { return events_.size(); }
  bool empty() const { return events_.empty(); }

  // Schedules `payload` at `at`, which may not be in the past.
  EventId Schedule(Instant at, Payload payload) {
    CHECK(at >= now_) << "event scheduled in the past: at=" << at.us << " now=" << now_.us;
    CHECK(events_.size() < events_max_) << "event queue over its bound " << events_max_;
    const EventId id{next_seq_++};
    events_.emplace(Key{at.us, id.seq}, std::move(payload));
    time_of_.emplace(id.seq, at.us);
    return id;
  }
  EventId ScheduleAfter(int64_t delay_us, Payload payload) {
    CHECK(delay_us >= 0) << "negative delay " << delay_us;
    return Schedule(now_ + delay_us, std::move(payload));
  }

  // False when the event already ran or was cancelled.
  bool Cancel(EventId id) {
    auto it = time_of_.find(id.seq);
    if (it == time_of_.end()) return false;
    events_.erase(Key{it->second, id.seq});
    time_of_.erase(it);
    return true;
  }

  std::optional<Instant> NextTime() const {
    if (events_.empty()) return std::nullopt;
    return Instant{events_.begin()->first.first};
  }
  // An event is due now: running it does not move the clock.
  bool HasDue() const { return !events_.empty() && events_.begin()->first.first <= now_.us; }

  // Removes the earliest event and moves the clock to its time.
  std::optional<Entry> PopNext() {
    if (events_.empty()) return std::nullopt;
    auto it = events_.begin();
    Entry entry{Instant{it->first.first}, EventId{it->first.second}, std::move(it->second)};
    events_.erase(it);
    time_of_.erase(entry.id.seq);
    CHECK(entry.at >= now_) << "time travel in the event queue";
    now_ = entry.at;
    return entry;
  }

  // Moves the clock to `t` without running anything; no event may be due before it.
  void AdvanceTo(Instant t) {
    CHECK(t >= now_) << "the clock only moves forward";
    CHECK(!NextTime() || *NextTime() >= t) << "advancing past a scheduled event";
    now_ = t;
  }

 private:
  using Key = std::pair<int64_t, uint64_t>;  // (time in us, sequence number)
  Instant now_;
  size_t events_max_;
  uint64_t next_seq_ = 1;
  std::map<Key, Payload> events_;
  std::map<uint64_t, int64_t> time_of_;  // sequence number -> time, for Cancel
};

// The queue every part of one simulation shares: network deliveries, timers, workload steps.
using Timeline = EventQueue<std::function<void()>>;

}  // namespace switchyard::io_sim
