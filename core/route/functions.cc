// Function volatility: the table loaded from pg_proc, and the built-in fallback used until then.
#include "core/route/functions.h"

#include <string>
#include <string_view>

#include "core/base/strings.h"

namespace switchyard::route {
namespace {

// PostgreSQL 15's pg_proc (src/include/catalog/pg_proc.dat), worst volatility over the overloads
// of each name. Volatile built-ins (random, clock_timestamp, nextval, set_config, pg_sleep,
// gen_random_uuid, pg_relation_size, the advisory lock functions, ...) are simply absent: an
// absent name is volatile.
// Packed by hand, one list per volatility.
// clang-format off
constexpr std::string_view kImmutableNames[] = {
    "abbrev", "abs", "acos", "acosd", "acosh", "area", "array_agg", "array_append", "array_cat",
    "array_dims", "array_fill", "array_length", "array_lower", "array_ndims", "array_position",
    "array_positions", "array_prepend", "array_remove", "array_replace", "array_to_tsvector",
    "array_upper", "ascii", "asin", "asind", "asinh", "atan", "atan2", "atan2d", "atand", "atanh",
    "avg", "bit_and", "bit_length", "bit_or", "bit_xor", "bool", "bool_and", "bool_or", "boolin",
    "box", "bpchar", "broadcast", "btrim", "cardinality", "cbrt", "ceil", "ceiling", "center",
    "char_length", "character_length", "chr", "circle", "corr", "cos", "cosd", "cosh", "cot",
    "cotd", "count", "covar_pop", "covar_samp", "cume_dist", "date_bin", "daterange", "decode",
    "degrees", "dense_rank", "diameter", "div", "encode", "every", "exp", "family", "first_value",
    "float4", "float8", "floor", "gcd", "generate_subscripts", "hashint4", "hashtext", "height",
    "host", "hostmask", "inet_merge", "inet_same_family", "initcap", "int2", "int4", "int4range",
    "int8", "int8range", "interval", "is_normalized", "isempty", "isfinite", "json_array_element",
    "json_array_element_text", "json_array_elements", "json_array_elements_text",
    "json_array_length", "json_each", "json_each_text", "json_extract_path",
    "json_extract_path_text", "json_object", "json_object_field", "json_object_field_text",
    "json_object_keys", "json_strip_nulls", "json_typeof", "jsonb_array_element",
    "jsonb_array_element_text", "jsonb_array_elements", "jsonb_array_elements_text",
    "jsonb_array_length", "jsonb_concat", "jsonb_contains", "jsonb_each", "jsonb_each_text",
    "jsonb_exists", "jsonb_exists_all", "jsonb_exists_any", "jsonb_extract_path",
    "jsonb_extract_path_text", "jsonb_insert", "jsonb_object", "jsonb_object_agg",
    "jsonb_object_field", "jsonb_object_field_text", "jsonb_object_keys", "jsonb_path_exists",
    "jsonb_path_match", "jsonb_path_query", "jsonb_path_query_array", "jsonb_path_query_first",
    "jsonb_pretty", "jsonb_set", "jsonb_set_lax", "jsonb_strip_nulls", "jsonb_typeof",
    "justify_days", "justify_hours", "justify_interval", "lag", "last_value", "lcm", "lead", "left",
    "ln", "log", "log10", "lower", "lower_inc", "lower_inf", "lpad", "lseg", "ltrim", "make_date",
    "make_interval", "make_time", "make_timestamp", "masklen", "max", "md5", "min", "min_scale",
    "mod", "mode", "multirange", "netmask", "network", "normalize", "nth_value", "ntile",
    "num_nonnulls", "num_nulls", "numnode", "numrange", "octet_length", "overlay", "path",
    "percent_rank", "percentile_cont", "percentile_disc", "pg_size_bytes", "pg_size_pretty", "pi",
    "point", "polygon", "position", "pow", "power", "querytree", "quote_ident", "radians", "radius",
    "range_agg", "range_intersect_agg", "range_merge", "rank", "regexp_count", "regexp_instr",
    "regexp_like", "regexp_match", "regexp_matches", "regexp_replace", "regexp_split_to_array",
    "regexp_split_to_table", "regexp_substr", "regr_avgx", "regr_avgy", "regr_count",
    "regr_intercept", "regr_r2", "regr_slope", "regr_sxx", "regr_sxy", "regr_syy", "repeat",
    "replace", "reverse", "right", "round", "row_number", "rpad", "rtrim", "scale", "set_masklen",
    "setweight", "sha224", "sha256", "sha384", "sha512", "sign", "similar_escape",
    "similar_to_escape", "sin", "sind", "sinh", "split_part", "sqrt", "starts_with", "stddev",
    "stddev_pop", "stddev_samp", "string_agg", "string_to_array", "string_to_table", "strip",
    "strpos", "substr", "substring", "sum", "tan", "tand", "tanh", "text", "textcat", "textlen",
    "to_ascii", "to_hex", "translate", "trim_array", "trim_scale", "trunc", "ts_delete",
    "ts_filter", "ts_rank", "ts_rank_cd", "tsrange", "tstzrange", "tsvector_to_array", "unistr",
    "unnest", "upper", "upper_inc", "upper_inf", "uuid_in", "var_pop", "var_samp", "varchar",
    "variance", "width", "width_bucket", "xml_is_well_formed_content",
    "xml_is_well_formed_document", "xmlagg", "xmlcomment", "xmlexists", "xpath", "xpath_exists"
};
constexpr std::string_view kStableNames[] = {
    "age", "array_to_json", "array_to_string", "col_description", "concat", "concat_ws", "convert",
    "convert_from", "convert_to", "current_database", "current_schema", "current_schemas",
    "current_setting", "current_user", "date", "date_part", "date_trunc", "extract", "format",
    "format_type", "generate_series", "get_current_ts_config", "has_any_column_privilege",
    "has_column_privilege", "has_database_privilege", "has_function_privilege",
    "has_schema_privilege", "has_sequence_privilege", "has_table_privilege", "json_agg",
    "json_build_array", "json_build_object", "json_object_agg", "json_populate_record",
    "json_populate_recordset", "json_to_record", "json_to_recordset", "jsonb_agg",
    "jsonb_build_array", "jsonb_build_object", "jsonb_path_exists_tz", "jsonb_path_match_tz",
    "jsonb_path_query_array_tz", "jsonb_path_query_first_tz", "jsonb_path_query_tz",
    "jsonb_populate_record", "jsonb_populate_recordset", "jsonb_to_record", "jsonb_to_recordset",
    "length", "make_timestamptz", "now", "numeric", "obj_description", "overlaps",
    "pg_char_to_encoding", "pg_client_encoding", "pg_collation_for", "pg_column_compression",
    "pg_column_size", "pg_describe_object", "pg_encoding_to_char", "pg_function_is_visible",
    "pg_get_constraintdef", "pg_get_expr", "pg_get_function_arguments",
    "pg_get_function_identity_arguments", "pg_get_function_result", "pg_get_functiondef",
    "pg_get_indexdef", "pg_get_keywords", "pg_get_object_address", "pg_get_partkeydef",
    "pg_get_ruledef", "pg_get_serial_sequence", "pg_get_statisticsobjdef", "pg_get_triggerdef",
    "pg_get_userbyid", "pg_get_viewdef", "pg_has_role", "pg_identify_object",
    "pg_index_column_has_property", "pg_index_has_property", "pg_indexam_has_property",
    "pg_options_to_table", "pg_relation_filenode", "pg_relation_filepath", "pg_table_is_visible",
    "pg_tablespace_location", "pg_type_is_visible", "pg_typeof", "phraseto_tsquery",
    "plainto_tsquery", "quote_literal", "quote_nullable", "row_security_active", "row_to_json",
    "session_user", "shobj_description", "statement_timestamp", "table_to_xml", "time", "timestamp",
    "timestamptz", "timezone", "to_char", "to_date", "to_json", "to_jsonb", "to_number",
    "to_regclass", "to_regnamespace", "to_regproc", "to_regprocedure", "to_regrole", "to_regtype",
    "to_timestamp", "to_tsquery", "to_tsvector", "transaction_timestamp", "ts_headline", "version",
    "websearch_to_tsquery", "xml_is_well_formed"
};
// clang-format on

int Rank(char volatility) {
  switch (volatility) {
    case FunctionVolatility::kImmutable:
      return 0;
    case FunctionVolatility::kStable:
      return 1;
    default:
      return 2;
  }
}

}  // namespace

FunctionVolatility FunctionVolatility::Builtin() {
  FunctionVolatility table;
  for (std::string_view name : kImmutableNames) table.names_.emplace(std::string(name), kImmutable);
  for (std::string_view name : kStableNames) table.names_.emplace(std::string(name), kStable);
  return table;
}

absl::Status FunctionVolatility::AddRow(std::string_view name, std::string_view volatility) {
  if (volatility.size() != 1 ||
      (volatility[0] != kImmutable && volatility[0] != kStable && volatility[0] != kVolatile)) {
    return absl::InvalidArgumentError(
        Cat("function volatility must be i, s or v, not '", volatility.substr(0, 8), "'"));
  }
  if (name.empty() || name.size() > kNameBytesMax) {
    return absl::InvalidArgumentError(Cat("function name of ", name.size(), " bytes"));
  }
  const char value = volatility[0];
  auto it = names_.find(absl::string_view(name.data(), name.size()));
  if (it != names_.end()) {
    if (Rank(value) > Rank(it->second)) it->second = value;
    return absl::OkStatus();
  }
  if (names_.size() >= kNamesMax) {
    return absl::ResourceExhaustedError(Cat("more than ", kNamesMax, " function names"));
  }
  names_.emplace(std::string(name), value);
  return absl::OkStatus();
}

char FunctionVolatility::Lookup(std::string_view name) const {
  auto it = names_.find(absl::string_view(name.data(), name.size()));
  return it == names_.end() ? kVolatile : it->second;
}

}  // namespace switchyard::route
