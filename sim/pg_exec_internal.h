// Statement handlers shared between pg_exec.cc (dispatch and the running-statement life),
// pg_dml.cc (SELECT, INSERT, UPDATE, DELETE, COPY) and pg_functions.cc (functions, SET, SHOW).
// Private to sim/.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "sim/pg_eval.h"
#include "sim/pg_node_internal.h"

namespace switchyard::sim::internal {

// PostgreSQL's bound on a NOTIFY payload.
inline constexpr size_t kNotifyPayloadBytesMax = 8000;

// What pg_cancel_backend / pg_terminate_backend asked of the calling session itself.
enum class SelfSignal { kNone, kCancel, kTerminate };

// The functions that need the node or the session: pg_sleep, the LSN and recovery functions,
// current_setting/set_config, pg_notify, pg_cancel_backend/pg_terminate_backend, ...
class SessionFunctions final : public FunctionHost {
 public:
  SessionFunctions(NodeState& node, Session& session, int64_t* sleep_us,
                   std::vector<std::string>* notices, SelfSignal* self_signal)
      : node_(node),
        session_(session),
        sleep_us_(sleep_us),
        notices_(notices),
        self_signal_(self_signal) {}
  std::optional<SqlError> Call(std::string_view name, const std::vector<Datum>& args,
                               Datum* out) override;

 private:
  // pg_cancel_backend, pg_terminate_backend.
  std::optional<SqlError> Signal(std::string_view name, const std::vector<Datum>& args, Datum* out);
  // pg_is_in_recovery and the LSN functions.
  std::optional<SqlError> Wal(std::string_view name, const std::vector<Datum>& args, Datum* out);

  NodeState& node_;
  Session& session_;
  int64_t* sleep_us_;
  std::vector<std::string>* notices_;
  SelfSignal* self_signal_;
};

ExecResult RunSelect(NodeState& node, Session& session, const SelectStmt& stmt,
                     const EvalContext& context);
ExecResult RunInsert(NodeState& node, Session& session, const Statement& statement,
                     const InsertStmt& stmt, const EvalContext& context);
ExecResult RunUpdate(NodeState& node, Session& session, const Statement& statement,
                     const UpdateStmt& stmt, const EvalContext& context);
ExecResult RunDelete(NodeState& node, Session& session, const Statement& statement,
                     const DeleteStmt& stmt, const EvalContext& context);
// COPY TO returns the rows; COPY FROM asks for copy-in mode, then inserts `copy_rows`.
ExecResult RunCopy(NodeState& node, Session& session, const Statement& statement,
                   const CopyStmt& stmt, const std::vector<Row>* copy_rows);
ExecResult RunSet(NodeState& node, Session& session, const SetStmt& stmt,
                  std::vector<std::string>* notices);
// NOTIFY and pg_notify: queued in the transaction, delivered at commit.
std::optional<SqlError> QueueNotify(NodeState& node, Session& session, std::string_view channel,
                                    std::string_view payload);
// SHOW's and current_setting's value of `name`, computed ones included.
std::optional<std::string> ShowValue(const NodeState& node, const Session& session,
                                     std::string_view name);

}  // namespace switchyard::sim::internal
