# Writes OUTPUT from `BINARY completion bash` (cli/CMakeLists.txt); a failure fails the build.
execute_process(COMMAND ${BINARY} completion bash OUTPUT_FILE ${OUTPUT}.tmp RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  file(REMOVE ${OUTPUT}.tmp)
  message(FATAL_ERROR "${BINARY} completion bash failed: ${rc}")
endif()
file(RENAME ${OUTPUT}.tmp ${OUTPUT})
