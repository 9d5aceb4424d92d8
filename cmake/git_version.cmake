# Writes ${OUT}: the source tree's git commit (with "-dirty" when it has
# uncommitted changes), for report.json. Run at every build; the header only
# changes (and only recompiles its user) when the commit does.
execute_process(COMMAND git -C "${SRC}" describe --always --dirty --abbrev=40
                OUTPUT_VARIABLE commit OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET RESULT_VARIABLE rc)
if(NOT rc EQUAL 0 OR commit STREQUAL "")
  set(commit "unknown (not a git checkout)")
endif()
file(WRITE "${OUT}.tmp" "#pragma once\n#define RESIST_GIT_COMMIT \"${commit}\"\n")
file(COPY_FILE "${OUT}.tmp" "${OUT}" ONLY_IF_DIFFERENT)
file(REMOVE "${OUT}.tmp")
