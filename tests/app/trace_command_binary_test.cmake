# Runs the real binary's `switchyard trace show|stats` on captures written by trace_command_test,
# and checks what a user sees: the lines, the statistics, the error and the exit status.
# Usage: cmake -DSWITCHYARD=<binary> -DUNIT_TEST=<trace_command_test> -DWORK_DIR=<dir> -P <this>

file(REMOVE_RECURSE ${WORK_DIR})
file(MAKE_DIRECTORY ${WORK_DIR})
# The unit tests write their captures into gtest's TempDir(), which TEST_TMPDIR sets.
execute_process(
  COMMAND ${CMAKE_COMMAND} -E env TEST_TMPDIR=${WORK_DIR} ${UNIT_TEST}
          --gtest_filter=TraceShowTest.PrintsOneReadableLinePerRecord:TraceShowTest.StopsAtADamagedRecordAndSaysWhere
  RESULT_VARIABLE result OUTPUT_QUIET)
if(NOT result EQUAL 0)
  message(FATAL_ERROR "${UNIT_TEST} could not write the sample captures (status ${result})")
endif()
set(sample ${WORK_DIR}/trace_command_test_show)
set(damaged ${WORK_DIR}/trace_command_test_damaged)

# Runs the binary with ARGN; checks its exit status and that its stdout and stderr contain the
# expected texts.
function(expect status out_text error_text)
  execute_process(COMMAND ${SWITCHYARD} ${ARGN} RESULT_VARIABLE result OUTPUT_VARIABLE out
                  ERROR_VARIABLE error)
  if(NOT result EQUAL status)
    message(FATAL_ERROR "switchyard ${ARGN}: status ${result}, expected ${status}\n${out}${error}")
  endif()
  string(FIND "${out}" "${out_text}" out_at)
  string(FIND "${error}" "${error_text}" error_at)
  if(out_at EQUAL -1 OR error_at EQUAL -1)
    message(FATAL_ERROR "switchyard ${ARGN}: expected \"${out_text}\" on stdout and "
                        "\"${error_text}\" on stderr, got:\n${out}\n--\n${error}")
  endif()
endfunction()

expect(0 "0.001000 s1 #3 client->proxy Query 38 bytes sql=\"SELECT * FROM users WHERE id = 1\""
       "" trace show ${sample})
expect(0 "0.006500 s2 #4 proxy->client DataRow 18 bytes values=[\"bob\",NULL]" ""
       trace show --session 2 --from 0.0065 --to 0.0065 ${sample})
expect(0 "2       0      2.000      4.000      4.000      4.000  a0ead580058af585" ""
       trace stats ${sample})
expect(1 "0.020500 s1 #12 cancel not-forwarded" "trace_command_test_damaged: trace record 20 at byte"
       trace show ${damaged})
expect(1 "records     20," "trace record 20 at byte" trace stats ${damaged})
expect(2 "" "--to must not be before --from" trace show --from 2 --to 1 ${sample})
expect(2 "" "" trace show)
expect(2 "" "" trace)
