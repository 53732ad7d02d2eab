// Shrinking with RapidCheck (DESIGN.md section 7): a stateful property whose commands are the
// scenario itself, workload steps and fault decisions, run against the real core on the
// simulated network with the oracles judging every answer. On the correct core it holds; with a
// rule broken on purpose it fails, and RapidCheck shrinks the failure to a handful of commands,
// printed with the RC_PARAMS line that replays it.
//
// Under ctest RC_PARAMS pins the seed (tests/sim_shrink/CMakeLists.txt), so a run is repeatable;
// a campaign runs the binary with fresh seeds: RC_PARAMS="seed=$RANDOM max_success=1000".
#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/state.h>

#include <algorithm>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <string_view>

#include "core/base/strings.h"
#include "core/mutants.h"
#include "tests/sim_shrink/commands.h"
#include "tests/sim_shrink/scenario.h"

namespace switchyard::sim {
namespace {

// A shrunk counterexample longer than this means shrinking is not doing its job.
constexpr size_t kShrunkCommandsMax = 10;

// How much of the scenario space a check covers. RC_PARAMS may ask for more cases; a case costs
// about a millisecond (twenty under ASan).
struct Reach {
  int cases_min = 0;
  int commands_max = 0;  // RapidCheck's size: a case has 1 to this many commands
};
// The correct core: long scenarios.
constexpr Reach kSearch{.cases_min = 300, .commands_max = 100};
// A broken rule: more, shorter scenarios. Shrinking a failure costs a few hundred cases per
// command it removes, so shorter failures shrink faster.
constexpr Reach kHunt{.cases_min = 600, .commands_max = 50};

// What checking the property found.
struct Outcome {
  bool failed = false;
  int cases = 0;            // cases that passed before the failing one
  std::string message;      // the failing case's assertion: the oracles' report
  ScenarioCommands shrunk;  // the smallest failing command sequence
  std::string reproduce;    // the RC_PARAMS value that replays exactly that sequence
  std::string test_name;    // Suite.Name, for --gtest_filter

  std::string Describe() const {
    return Cat("RapidCheck found a failing scenario after ", cases,
               " passing case(s) and shrank it to ", shrunk.size(), " command(s):\n",
               DescribeCommands(shrunk), "what went wrong: ", message, "\nreproduce: RC_PARAMS=\"",
               reproduce, "\" ./sim_shrink_test --gtest_filter=", test_name, "\n");
  }
};

// RapidCheck's own listener would print every expected failure again at exit.
class QuietListener final : public rc::detail::TestListener {
 public:
  void onTestCaseFinished(const rc::detail::CaseDescription&) override {}
  void onShrinkTried(const rc::detail::CaseDescription&, bool) override {}
  void onTestFinished(const rc::detail::TestMetadata&, const rc::detail::TestResult&) override {}
};

// What the cases of one check did, summed (evidence that they exercised the proxy), and the last
// case that failed. Shrinking only moves from a failing case to a smaller failing one, so after
// the check that case is the shrunk counterexample.
struct Totals {
  uint64_t cases = 0;
  uint64_t commands = 0;
  uint64_t answers = 0;
  uint64_t planned = 0;  // choices a command decided
  ScenarioCommands last_failure;
};

// One case: RapidCheck's commands against a fresh world, then its end with faults healed.
void RunCase(const ScenarioOptions& options, Totals& totals) {
  ScenarioModel initial;
  initial.clients = options.clients;
  initial.keys = options.keys;
  const ScenarioCommands commands = *rc::state::gen::commands(initial, &GenerateCommand);
  Scenario scenario(options);
  try {
    rc::state::runAll(commands, initial, scenario);
    scenario.Finish();
    if (!scenario.ok()) RC_FAIL(Cat("at the end, faults healed: ", scenario.Report()));
  } catch (...) {
    totals.last_failure = commands;
    throw;
  }
  ++totals.cases;
  totals.commands += commands.size();
  totals.answers += scenario.answers();
  totals.planned += scenario.decisions().planned_used();
}

// Checks the property with the configuration RC_PARAMS gives (seed, max_success, reproduce...),
// within `reach`.
Outcome CheckScenarios(const ScenarioOptions& options, Reach reach, Totals* totals_out = nullptr) {
  const testing::TestInfo* info = testing::UnitTest::GetInstance()->current_test_info();
  Outcome outcome;
  outcome.test_name = Cat(info->test_suite_name(), ".", info->name());
  rc::detail::TestMetadata metadata;
  metadata.id = Cat(info->test_suite_name(), "/", info->name());
  metadata.description = metadata.id;

  auto totals = std::make_shared<Totals>();
  const auto property = [options, totals] { RunCase(options, *totals); };
  const rc::detail::Configuration& config = rc::detail::configuration();
  rc::detail::TestParams params = config.testParams;
  params.maxSuccess = std::max(params.maxSuccess, reach.cases_min);
  params.maxSize = std::min(params.maxSize, reach.commands_max);
  QuietListener listener;
  const rc::detail::TestResult result = rc::detail::checkProperty(
      rc::detail::toProperty(property), metadata, params, listener, config.reproduce);
  if (totals_out != nullptr) *totals_out = *totals;

  rc::detail::FailureResult failure;
  if (result.match(failure)) {
    outcome.failed = true;
    outcome.cases = failure.numSuccess;
    outcome.message = failure.description;
    outcome.shrunk = totals->last_failure;
    rc::detail::Configuration replay = config;
    replay.reproduce.clear();
    replay.reproduce[metadata.id] = failure.reproduce;
    outcome.reproduce = rc::detail::configToMinimalString(replay);
    return outcome;
  }
  rc::detail::GaveUpResult gave_up;
  rc::detail::Error error;
  EXPECT_FALSE(result.match(gave_up)) << gave_up.description;
  EXPECT_FALSE(result.match(error)) << error.description;
  rc::detail::SuccessResult success;
  if (result.match(success)) outcome.cases = success.numSuccess;
  return outcome;
}

// Whether a shrunk scenario holds a command whose description contains `text`.
bool Holds(const ScenarioCommands& commands, std::string_view text) {
  return std::any_of(commands.begin(), commands.end(), [&](const auto& command) {
    std::ostringstream shown;
    command->show(shown);
    return shown.str().find(text) != std::string::npos;
  });
}

// ---------------------------------------------------------------- the correct core

TEST(ShrinkTest, ScenariosOnTheCorrectCoreAreClean) {
  Totals totals;
  const Outcome outcome = CheckScenarios(ScenarioOptions{}, kSearch, &totals);
  EXPECT_FALSE(outcome.failed) << outcome.Describe();
  std::cout << "cases=" << totals.cases << " commands=" << totals.commands
            << " answers=" << totals.answers << " planned choices=" << totals.planned << "\n";
  if (!rc::detail::configuration().reproduce.empty()) return;  // one case, replayed
  // The cases did exercise the proxy: statements answered, faults struck.
  EXPECT_GE(totals.cases, static_cast<uint64_t>(kSearch.cases_min));
  EXPECT_GT(4 * totals.answers, totals.commands);
  EXPECT_GT(8 * totals.planned, totals.commands);
}

// ---------------------------------------------------------------- bugs it finds and shrinks

// A rule broken on purpose, in every build: once the primary has restarted, key lookups come
// back empty, as if the proxy answered them from a node that lost its data. Finding it takes a
// committed write, a node that goes down and comes back, and a read of that key (the probes at
// the end read k00); shrinking must throw away everything else.
TEST(ShrinkTest, AReadThatForgetsARestartIsFoundAndShrunk) {
  ScenarioOptions options;
  options.tamper_answer_for_test = [](const Scenario& scenario, const ClientInfo&,
                                      const Request& request, Answer& answer) {
    if (scenario.node_restarts() > 0 && request.op == Op::kRead && !answer.rows.empty()) {
      answer.rows.clear();
      answer.tags = {"SELECT 0"};
    }
  };
  const Outcome outcome = CheckScenarios(options, kHunt);
  ASSERT_TRUE(outcome.failed) << "the broken rule went unnoticed in " << outcome.cases << " cases";
  std::cout << outcome.Describe();
  EXPECT_LE(outcome.shrunk.size(), kShrunkCommandsMax) << outcome.Describe();
  EXPECT_TRUE(Holds(outcome.shrunk, "node: ")) << outcome.Describe();
  EXPECT_TRUE(Holds(outcome.shrunk, ": insert k")) << outcome.Describe();
  EXPECT_NE(outcome.message.find("model"), std::string::npos) << outcome.Describe();
}

// The core's own mutants (core/mutants.h): one broken rule each, compiled into the simulator's
// build. Each must be found, and shrunk to a few commands.
struct MutantCase {
  Mutant mutant;
  std::string_view oracle;  // who must notice
};

void PrintTo(const MutantCase& c, std::ostream* os) { *os << MutantName(c.mutant); }

class ShrinkMutantTest : public testing::TestWithParam<MutantCase> {};

TEST_P(ShrinkMutantTest, IsFoundAndShrunk) {
  if (!kMutantsCompiledIn) GTEST_SKIP() << "mutants are compiled into the simulator's build only";
  ScenarioOptions options;
  options.mutants = static_cast<uint64_t>(GetParam().mutant);
  const Outcome outcome = CheckScenarios(options, kHunt);
  ASSERT_TRUE(outcome.failed) << MutantName(GetParam().mutant) << " went unnoticed in "
                              << outcome.cases << " cases";
  std::cout << MutantName(GetParam().mutant) << ": " << outcome.Describe();
  EXPECT_LE(outcome.shrunk.size(), kShrunkCommandsMax) << outcome.Describe();
  EXPECT_NE(outcome.message.find(GetParam().oracle), std::string::npos) << outcome.Describe();
}

INSTANTIATE_TEST_SUITE_P(Mutants, ShrinkMutantTest,
                         testing::Values(MutantCase{Mutant::kSkipDiscardAll, "session_state"},
                                         MutantCase{Mutant::kDropReadyForQuery, "liveness"},
                                         MutantCase{Mutant::kCancelWrongServer, "cancel"},
                                         MutantCase{Mutant::kForwardServerFatal,
                                                    "connection_loss"}),
                         [](const testing::TestParamInfo<MutantCase>& info) {
                           std::string name;
                           for (char c : MutantName(info.param.mutant)) {
                             if (c != '-') name += c;
                           }
                           return name;
                         });

}  // namespace
}  // namespace switchyard::sim
