# Writes OUT, a header with the commit the build is made from: the short hash of
# SOURCE_DIR's HEAD, marked when tracked files outside results/ have uncommitted
# changes, or "unknown" outside a git checkout. Run at every build; the header is
# rewritten only when the text changes, so nothing recompiles needlessly. Reports
# and run summaries name this commit: the code that was compiled, not the state of
# the working tree when the program ran.
execute_process(COMMAND git -C "${SOURCE_DIR}" rev-parse --short HEAD
                OUTPUT_VARIABLE commit OUTPUT_STRIP_TRAILING_WHITESPACE
                RESULT_VARIABLE status ERROR_QUIET)
if(NOT status EQUAL 0 OR commit STREQUAL "")
  set(commit "unknown")
else()
  execute_process(COMMAND git -C "${SOURCE_DIR}" status --porcelain --untracked-files=no -- . ":(exclude)results"
                  OUTPUT_VARIABLE changes RESULT_VARIABLE status ERROR_QUIET)
  if(NOT changes STREQUAL "")
    string(APPEND commit " (with uncommitted changes)")
  endif()
endif()
set(text "/* Generated at build time by cmake/build_commit.cmake. */\n#define KD_BUILD_COMMIT \"${commit}\"\n")
if(EXISTS "${OUT}")
  file(READ "${OUT}" old)
  if(old STREQUAL text)
    return()
  endif()
endif()
file(WRITE "${OUT}" "${text}")
