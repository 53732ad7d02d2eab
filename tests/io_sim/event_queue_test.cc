// The virtual clock and event queue: (time, sequence) order, cancellation, and no time travel.
#include "io_sim/event_queue.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace switchyard::io_sim {
namespace {

TEST(EventQueue, PopsByTimeThenBySchedulingOrder) {
  EventQueue<std::string> queue;
  queue.Schedule(Instant{30}, "c");
  queue.Schedule(Instant{10}, "a1");
  queue.Schedule(Instant{20}, "b");
  queue.Schedule(Instant{10}, "a2");
  queue.Schedule(Instant{10}, "a3");
  std::vector<std::string> order;
  std::vector<int64_t> times;
  while (auto entry = queue.PopNext()) {
    order.push_back(entry->payload);
    times.push_back(queue.now().us);
  }
  EXPECT_EQ(order, (std::vector<std::string>{"a1", "a2", "a3", "b", "c"}));
  EXPECT_EQ(times, (std::vector<int64_t>{10, 10, 10, 20, 30}));
}

TEST(EventQueue, ClockJumpsToTheNextEventAndOnlyForward) {
  EventQueue<int> queue(Instant{1000});
  EXPECT_EQ(queue.now().us, 1000);
  EXPECT_FALSE(queue.HasDue());
  queue.ScheduleAfter(500, 1);
  EXPECT_EQ(queue.NextTime()->us, 1500);
  EXPECT_FALSE(queue.HasDue());
  auto entry = queue.PopNext();
  ASSERT_TRUE(entry.has_value());
  EXPECT_EQ(entry->at.us, 1500);
  EXPECT_EQ(queue.now().us, 1500);
  // An event at "now" is due at once and does not move the clock.
  queue.Schedule(queue.now(), 2);
  EXPECT_TRUE(queue.HasDue());
  queue.PopNext();
  EXPECT_EQ(queue.now().us, 1500);
  queue.AdvanceTo(Instant{2000});
  EXPECT_EQ(queue.now().us, 2000);
  EXPECT_FALSE(queue.PopNext().has_value());
}

TEST(EventQueue, CancelRemovesOnlyThatEvent) {
  EventQueue<int> queue;
  const EventId a = queue.Schedule(Instant{5}, 1);
  const EventId b = queue.Schedule(Instant{5}, 2);
  queue.Schedule(Instant{7}, 3);
  EXPECT_TRUE(queue.Cancel(a));
  EXPECT_FALSE(queue.Cancel(a));  // twice
  EXPECT_EQ(queue.size(), 2u);
  EXPECT_EQ(queue.PopNext()->payload, 2);
  EXPECT_FALSE(queue.Cancel(b));  // already ran
  EXPECT_EQ(queue.PopNext()->payload, 3);
  EXPECT_TRUE(queue.empty());
}

TEST(EventQueue, SequenceNumbersAreNeverReused) {
  EventQueue<int> queue;
  const EventId a = queue.Schedule(Instant{1}, 1);
  queue.Cancel(a);
  const EventId b = queue.Schedule(Instant{1}, 2);
  EXPECT_NE(a, b);
  EXPECT_FALSE(queue.Cancel(a));  // the old id does not name the new event
  EXPECT_EQ(queue.size(), 1u);
}

TEST(EventQueueDeathTest, SchedulingInThePastStops) {
  EventQueue<int> queue(Instant{100});
  EXPECT_DEATH(queue.Schedule(Instant{99}, 1), "event scheduled in the past");
  queue.Schedule(Instant{200}, 1);
  EXPECT_DEATH(queue.AdvanceTo(Instant{300}), "advancing past a scheduled event");
  EXPECT_DEATH(queue.AdvanceTo(Instant{50}), "only moves forward");
}

TEST(EventQueueDeathTest, BoundStopsARunawaySimulation) {
  EventQueue<int> queue(Instant{0}, /*events_max=*/3);
  for (int i = 0; i < 3; ++i) queue.Schedule(Instant{i}, i);
  EXPECT_DEATH(queue.Schedule(Instant{9}, 9), "over its bound");
}

}  // namespace
}  // namespace switchyard::io_sim
