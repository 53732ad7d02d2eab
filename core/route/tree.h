// Reading libpg_query's parse tree (its protobuf-c form): typed access to Node unions, a
// generic walk over every message below a node, and constant values.
#pragma once

#include <pg_query/pg_query.pb-c.h>

#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

namespace switchyard::route::tree {

// The message a Node holds, or nullptr.
const ProtobufCMessage* NodeMessage(const PgQuery__Node* node);

// Pushes the messages directly below `message` (its Node fields resolved to what they hold)
// onto `stack` so that popping them visits them in field order. Scalars are skipped.
void PushChildren(const ProtobufCMessage* message, std::vector<const ProtobufCMessage*>& stack);

// The smallest source location (byte offset) of any message at or below `node`; -1 if none.
int32_t MinLocation(const PgQuery__Node* node);

inline std::string_view View(const char* s) { return s == nullptr ? std::string_view() : s; }

// The last String of a qualified name (funcname, names, defnames), and the one before it.
std::string_view LastName(PgQuery__Node* const* names, size_t count);
std::string_view Qualifier(PgQuery__Node* const* names, size_t count);

// A constant written in the statement: A_Const (through any TypeCasts), or a bare String,
// Integer or Boolean node (DefElem arguments).
struct Constant {
  enum class Kind : uint8_t { kNone, kNull, kString, kInteger, kBoolean };
  Kind kind = Kind::kNone;
  std::string_view text;  // kString
  int64_t integer = 0;    // kInteger, kBoolean (0 or 1)
};
Constant ConstantOf(const PgQuery__Node* node);

// PostgreSQL's boolean input (boolin) for a constant: true/false, yes/no, on/off, 1/0 and their
// unambiguous prefixes, case-insensitive; integers are true when non-zero.
std::optional<bool> BooleanOf(const Constant& constant);

}  // namespace switchyard::route::tree
