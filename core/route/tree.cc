// Reading libpg_query's protobuf-c parse tree through protobuf-c's own reflection, so that a
// walk reaches every node whatever its type, including ones added by later grammar versions.
#include "core/route/tree.h"

#include <algorithm>
#include <cctype>
#include <string>

#include "core/base/check.h"
#include "core/base/strings.h"

namespace switchyard::route::tree {
namespace {

template <typename T>
const T& FieldAt(const ProtobufCMessage* message, unsigned offset) {
  return *reinterpret_cast<const T*>(reinterpret_cast<const char*>(message) + offset);
}

}  // namespace

const ProtobufCMessage* NodeMessage(const PgQuery__Node* node) {
  if (node == nullptr || node->node_case == PG_QUERY__NODE__NODE__NOT_SET) return nullptr;
  // Every member of Node's oneof is a message pointer; the field descriptor says where.
  const ProtobufCFieldDescriptor* field = protobuf_c_message_descriptor_get_field(
      &pg_query__node__descriptor, static_cast<unsigned>(node->node_case));
  CHECK(field != nullptr) << "node case " << node->node_case;
  CHECK_EQ(field->type, PROTOBUF_C_TYPE_MESSAGE);
  return FieldAt<const ProtobufCMessage*>(&node->base, field->offset);
}

void PushChildren(const ProtobufCMessage* message, std::vector<const ProtobufCMessage*>& stack) {
  const ProtobufCMessageDescriptor* descriptor = message->descriptor;
  if (descriptor == &pg_query__node__descriptor) {
    const ProtobufCMessage* held = NodeMessage(reinterpret_cast<const PgQuery__Node*>(message));
    if (held != nullptr) stack.push_back(held);
    return;
  }
  // Last field first, so that the stack pops them in field order.
  for (unsigned i = descriptor->n_fields; i-- > 0;) {
    const ProtobufCFieldDescriptor& field = descriptor->fields[i];
    if (field.type != PROTOBUF_C_TYPE_MESSAGE) continue;
    if (field.label == PROTOBUF_C_LABEL_REPEATED) {
      const size_t count = FieldAt<size_t>(message, field.quantifier_offset);
      ProtobufCMessage* const* items = FieldAt<ProtobufCMessage* const*>(message, field.offset);
      for (size_t k = count; k-- > 0;) {
        if (items[k] != nullptr) stack.push_back(items[k]);
      }
      continue;
    }
    if ((field.flags & PROTOBUF_C_FIELD_FLAG_ONEOF) != 0 &&
        FieldAt<uint32_t>(message, field.quantifier_offset) != field.id) {
      continue;
    }
    const ProtobufCMessage* child = FieldAt<const ProtobufCMessage*>(message, field.offset);
    if (child != nullptr) stack.push_back(child);
  }
}

int32_t MinLocation(const PgQuery__Node* node) {
  int32_t best = -1;
  std::vector<const ProtobufCMessage*> stack;
  if (node != nullptr) stack.push_back(&node->base);
  while (!stack.empty()) {
    const ProtobufCMessage* message = stack.back();
    stack.pop_back();
    const ProtobufCFieldDescriptor* field =
        protobuf_c_message_descriptor_get_field_by_name(message->descriptor, "location");
    if (field != nullptr && field->type == PROTOBUF_C_TYPE_INT32) {
      const int32_t location = FieldAt<int32_t>(message, field->offset);
      if (location >= 0 && (best < 0 || location < best)) best = location;
    }
    PushChildren(message, stack);
  }
  return best;
}

std::string_view LastName(PgQuery__Node* const* names, size_t count) {
  if (count == 0 || names[count - 1]->node_case != PG_QUERY__NODE__NODE_STRING) return {};
  return View(names[count - 1]->string->sval);
}

std::string_view Qualifier(PgQuery__Node* const* names, size_t count) {
  if (count < 2 || names[count - 2]->node_case != PG_QUERY__NODE__NODE_STRING) return {};
  return View(names[count - 2]->string->sval);
}

Constant ConstantOf(const PgQuery__Node* node) {
  while (node != nullptr && node->node_case == PG_QUERY__NODE__NODE_TYPE_CAST) {
    node = node->type_cast->arg;
  }
  Constant constant;
  if (node == nullptr) return constant;
  switch (node->node_case) {
    case PG_QUERY__NODE__NODE_STRING:
      return Constant{.kind = Constant::Kind::kString, .text = View(node->string->sval)};
    case PG_QUERY__NODE__NODE_INTEGER:
      return Constant{.kind = Constant::Kind::kInteger, .integer = node->integer->ival};
    case PG_QUERY__NODE__NODE_BOOLEAN:
      return Constant{.kind = Constant::Kind::kBoolean, .integer = node->boolean->boolval ? 1 : 0};
    case PG_QUERY__NODE__NODE_A_CONST:
      break;
    default:
      return constant;
  }
  const PgQuery__AConst& value = *node->a_const;
  if (value.isnull) return Constant{.kind = Constant::Kind::kNull};
  switch (value.val_case) {
    case PG_QUERY__A__CONST__VAL_SVAL:
      return Constant{.kind = Constant::Kind::kString, .text = View(value.sval->sval)};
    case PG_QUERY__A__CONST__VAL_IVAL:
      return Constant{.kind = Constant::Kind::kInteger, .integer = value.ival->ival};
    case PG_QUERY__A__CONST__VAL_BOOLVAL:
      return Constant{.kind = Constant::Kind::kBoolean, .integer = value.boolval->boolval ? 1 : 0};
    default:
      return constant;
  }
}

std::optional<bool> BooleanOf(const Constant& constant) {
  if (constant.kind == Constant::Kind::kInteger || constant.kind == Constant::Kind::kBoolean) {
    return constant.integer != 0;
  }
  if (constant.kind != Constant::Kind::kString) return std::nullopt;
  std::string_view trimmed = constant.text;
  while (!trimmed.empty() && std::isspace(static_cast<unsigned char>(trimmed.front()))) {
    trimmed.remove_prefix(1);
  }
  while (!trimmed.empty() && std::isspace(static_cast<unsigned char>(trimmed.back()))) {
    trimmed.remove_suffix(1);
  }
  std::string text;
  for (char c : trimmed)
    text.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  if (text.empty()) return std::nullopt;
  auto prefix_of = [&](std::string_view word) { return std::string_view(word).starts_with(text); };
  if (prefix_of("true") || prefix_of("yes") || text == "on" || text == "1") return true;
  if (prefix_of("false") || prefix_of("no") || text == "of" || text == "off" || text == "0") {
    return false;
  }
  return std::nullopt;
}

}  // namespace switchyard::route::tree
