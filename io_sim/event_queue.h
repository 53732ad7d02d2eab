// The simulator's virtual clock and event queue (DESIGN.md section 7): events are ordered by
// (time, sequence number), so two events at the same instant run in the order they were
// scheduled, and the clock only moves forward, jumping straight to the next event.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <new>
#include <optional>
#include <type_traits>
#include <utility>
#include <vector>

#include "core/base/check.h"
#include "core/base/types.h"

namespace switchyard::io_sim {

// Names one scheduled event, for Cancel(). Sequence numbers are never reused; `slot` is where
// the queue keeps the event's payload, so a cancel finds it without a search.
struct EventId {
  uint64_t seq = 0;
  uint32_t slot = 0;
  bool valid() const { return seq != 0; }
  friend auto operator<=>(const EventId&, const EventId&) = default;
};

// Keys are (time, sequence number) over a slot table of payloads. The order is total (sequence
// numbers are unique), so the queue pops exactly what an ordered map would, in the same order,
// without a node allocation per event. Two containers hold the keys:
// - `due_now_`, a FIFO of events scheduled for the current instant. Sequence numbers only grow,
//   so such an event comes after every event already queued for this instant and before every
//   later one: appending keeps the FIFO sorted. Most events are of this kind (readiness checks,
//   deferred work), and the FIFO is always empty before the clock moves on.
// - `heap_`, a binary min-heap of everything else.
// A cancelled event leaves its key behind, marked stale (its slot no longer holds that sequence
// number); stale keys are dropped when they reach the front, so both fronts are always live.
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
  size_t size() const { return live_; }
  bool empty() const { return live_ == 0; }

  // Schedules `payload` at `at`, which may not be in the past.
  EventId Schedule(Instant at, Payload payload) {
    CHECK(at >= now_) << "event scheduled in the past: at=" << at.us << " now=" << now_.us;
    CHECK(live_ < events_max_) << "event queue over its bound " << events_max_;
    const EventId id{next_seq_++, TakeSlot()};
    slots_[id.slot].seq = id.seq;
    slots_[id.slot].payload = std::move(payload);
    const Key key{at.us, id.seq, id.slot};
    if (at == now_) {
      due_now_.push_back(key);
    } else {
      heap_.push_back(key);
      SiftUp(heap_.size() - 1);
    }
    ++live_;
    return id;
  }
  EventId ScheduleAfter(int64_t delay_us, Payload payload) {
    CHECK(delay_us >= 0) << "negative delay " << delay_us;
    return Schedule(now_ + delay_us, std::move(payload));
  }

  // False when the event already ran or was cancelled.
  bool Cancel(EventId id) {
    if (!id.valid() || id.slot >= slots_.size() || slots_[id.slot].seq != id.seq) return false;
    // The payload dies now, as it would have had the event run, but only once the queue is
    // consistent again: its destructor may be anything.
    [[maybe_unused]] const Payload dropped = TakePayload(id.slot);
    --live_;
    DropStaleFronts();
    // Stale keys of far-away events could pile up (a timer re-armed on every message): rebuild
    // once they outnumber the live ones, which keeps the keys within twice the live events.
    const size_t keys = heap_.size() + DueCount();
    if (keys > 64 && keys > 2 * live_) Compact();
    return true;
  }

  std::optional<Instant> NextTime() const {
    if (DueCount() > 0) return now_;  // nothing in the heap can be earlier
    if (heap_.empty()) return std::nullopt;
    return Instant{heap_.front().at};
  }
  // An event is due now: running it does not move the clock.
  bool HasDue() const { return DueCount() > 0 || (!heap_.empty() && heap_.front().at <= now_.us); }

  // Removes the earliest event and moves the clock to its time.
  std::optional<Entry> PopNext() {
    const bool from_heap =
        DueCount() == 0 || (!heap_.empty() && heap_.front() < due_now_[due_head_]);
    if (from_heap && heap_.empty()) return std::nullopt;
    const Key top = from_heap ? heap_.front() : due_now_[due_head_];
    CHECK(!Stale(top)) << "a stale key at the front of the event queue";
    Entry entry{Instant{top.at}, EventId{top.seq, top.slot}, TakePayload(top.slot)};
    --live_;
    if (from_heap) {
      PopTop();
    } else {
      PopDue();
    }
    DropStaleFronts();
    CHECK(entry.at >= now_) << "time travel in the event queue";
    CHECK(entry.at == now_ || DueCount() == 0) << "the clock left events due now behind";
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
  struct Key {
    int64_t at;    // time in us
    uint64_t seq;  // sequence number: ties at one time run in scheduling order
    uint32_t slot;
    bool operator<(const Key& other) const {
      return at != other.at ? at < other.at : seq < other.seq;
    }
  };
  struct Slot {
    uint64_t seq = 0;  // the event the slot holds; 0 when free
    Payload payload{};
  };

  uint32_t TakeSlot() {
    if (!free_slots_.empty()) {
      const uint32_t slot = free_slots_.back();
      free_slots_.pop_back();
      return slot;
    }
    CHECK(slots_.size() < UINT32_MAX) << "event queue out of slots";
    slots_.emplace_back();
    return static_cast<uint32_t>(slots_.size() - 1);
  }
  Payload TakePayload(uint32_t slot) {
    Payload payload = std::move(slots_[slot].payload);
    slots_[slot].payload = Payload{};
    slots_[slot].seq = 0;
    free_slots_.push_back(slot);
    return payload;
  }
  bool Stale(const Key& key) const { return slots_[key.slot].seq != key.seq; }

  size_t DueCount() const { return due_now_.size() - due_head_; }
  void PopDue() {
    if (++due_head_ == due_now_.size()) {
      due_now_.clear();
      due_head_ = 0;
    }
  }
  void DropStaleFronts() {
    while (DueCount() > 0 && Stale(due_now_[due_head_])) PopDue();
    while (!heap_.empty() && Stale(heap_.front())) PopTop();
  }
  void Compact() {
    due_now_.erase(due_now_.begin(), due_now_.begin() + static_cast<ptrdiff_t>(due_head_));
    due_head_ = 0;
    std::erase_if(due_now_, [this](const Key& key) { return Stale(key); });
    std::erase_if(heap_, [this](const Key& key) { return Stale(key); });
    for (size_t i = heap_.size() / 2; i-- > 0;) SiftDown(i);
    CHECK(heap_.size() + due_now_.size() == live_) << "event queue lost track of its events";
  }

  void PopTop() {
    heap_.front() = heap_.back();
    heap_.pop_back();
    if (!heap_.empty()) SiftDown(0);
  }
  void SiftUp(size_t i) {
    const Key key = heap_[i];
    while (i > 0) {
      const size_t parent = (i - 1) / 2;
      if (!(key < heap_[parent])) break;
      heap_[i] = heap_[parent];
      i = parent;
    }
    heap_[i] = key;
  }
  void SiftDown(size_t i) {
    const Key key = heap_[i];
    const size_t n = heap_.size();
    while (true) {
      size_t child = 2 * i + 1;
      if (child >= n) break;
      if (child + 1 < n && heap_[child + 1] < heap_[child]) ++child;
      if (!(heap_[child] < key)) break;
      heap_[i] = heap_[child];
      i = child;
    }
    heap_[i] = key;
  }

  Instant now_;
  size_t events_max_;
  uint64_t next_seq_ = 1;
  size_t live_ = 0;           // scheduled and neither run nor cancelled
  std::vector<Key> due_now_;  // keys at now_, in sequence order, from due_head_ on
  size_t due_head_ = 0;
  std::vector<Key> heap_;    // the other live keys, and stale ones below the top
  std::vector<Slot> slots_;  // payloads, by EventId::slot
  std::vector<uint32_t> free_slots_;
};

// A move-only `void()` callable for the timeline. std::function puts every callable over 16
// bytes on the heap, and a simulation schedules an event per network piece, so callables up to
// kInlineBytes (a `this` and a few ids) live inline here instead; bigger ones still work.
class Callback {
 public:
  static constexpr size_t kInlineBytes = 48;

  Callback() = default;
  template <typename F, typename = std::enable_if_t<!std::is_same_v<std::decay_t<F>, Callback>>>
  Callback(F&& f) {  // NOLINT(google-explicit-constructor): a lambda converts, as to std::function
    using Stored = std::decay_t<F>;
    static_assert(std::is_invocable_v<Stored&>, "a timeline callback takes no arguments");
    if constexpr (StoredInline<Stored>()) {
      new (storage_) Stored(std::forward<F>(f));
    } else {
      *reinterpret_cast<Stored**>(storage_) = new Stored(std::forward<F>(f));
    }
    ops_ = &kOps<Stored>;
  }
  Callback(Callback&& other) noexcept { TakeFrom(other); }
  Callback& operator=(Callback&& other) noexcept {
    if (this != &other) {
      Reset();
      TakeFrom(other);
    }
    return *this;
  }
  Callback(const Callback&) = delete;
  Callback& operator=(const Callback&) = delete;
  ~Callback() { Reset(); }

  explicit operator bool() const { return ops_ != nullptr; }
  void operator()() {
    CHECK(ops_ != nullptr) << "an empty timeline callback was run";
    ops_->call(storage_);
  }

 private:
  struct Ops {
    void (*call)(void* storage);
    void (*move)(void* from, void* to);  // leaves `from` destroyed
    void (*destroy)(void* storage);
  };

  template <typename F>
  static constexpr bool StoredInline() {
    return sizeof(F) <= kInlineBytes && alignof(F) <= alignof(std::max_align_t) &&
           std::is_nothrow_move_constructible_v<F>;
  }
  template <typename F>
  static F& Target(void* storage) {
    if constexpr (StoredInline<F>()) {
      return *std::launder(reinterpret_cast<F*>(storage));
    } else {
      return **reinterpret_cast<F**>(storage);
    }
  }
  template <typename F>
  static constexpr Ops kOps = {
      [](void* storage) { Target<F>(storage)(); },
      [](void* from, void* to) {
        if constexpr (StoredInline<F>()) {
          new (to) F(std::move(Target<F>(from)));
          Target<F>(from).~F();
        } else {
          *reinterpret_cast<F**>(to) = *reinterpret_cast<F**>(from);
        }
      },
      [](void* storage) {
        if constexpr (StoredInline<F>()) {
          Target<F>(storage).~F();
        } else {
          delete *reinterpret_cast<F**>(storage);
        }
      },
  };

  void TakeFrom(Callback& other) {
    if (other.ops_ == nullptr) return;
    other.ops_->move(other.storage_, storage_);
    ops_ = std::exchange(other.ops_, nullptr);
  }
  void Reset() {
    // Cleared first: the callable's destructor may be anything, and this object is then empty.
    if (const Ops* ops = std::exchange(ops_, nullptr)) ops->destroy(storage_);
  }

  alignas(std::max_align_t) unsigned char storage_[kInlineBytes];
  const Ops* ops_ = nullptr;
};

// The queue every part of one simulation shares: network deliveries, timers, workload steps.
using Timeline = EventQueue<Callback>;

}  // namespace switchyard::io_sim
