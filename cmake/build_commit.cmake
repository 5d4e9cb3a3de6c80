# Writes OUT, a header with the commit the build is made from: the short hash of
# SOURCE_DIR's HEAD, marked when tracked files outside results/ have uncommitted
# changes, or "unknown" when SOURCE_DIR is not the top of a git checkout (a tarball,
# even one unpacked inside another repository) or git cannot tell. Run at every
# build; the header is rewritten only when the text changes, so nothing recompiles
# needlessly. Reports and run summaries name this commit: the code that was
# compiled, not the state of the working tree when the program ran.
set(commit "unknown")
if(GIT)
  execute_process(COMMAND "${GIT}" -C "${SOURCE_DIR}" rev-parse --show-toplevel
                  OUTPUT_VARIABLE top OUTPUT_STRIP_TRAILING_WHITESPACE RESULT_VARIABLE status ERROR_QUIET)
  if(status EQUAL 0)
    file(REAL_PATH "${top}" top)
    file(REAL_PATH "${SOURCE_DIR}" source)
  endif()
  if(status EQUAL 0 AND top STREQUAL source)
    execute_process(COMMAND "${GIT}" -C "${SOURCE_DIR}" rev-parse --short HEAD
                    OUTPUT_VARIABLE head OUTPUT_STRIP_TRAILING_WHITESPACE RESULT_VARIABLE status ERROR_QUIET)
    # --no-optional-locks: a build must not take index.lock from a commit running beside it
    execute_process(COMMAND "${GIT}" --no-optional-locks -C "${SOURCE_DIR}" status --porcelain --untracked-files=no
                            -- . ":(exclude)results"
                    OUTPUT_VARIABLE changes RESULT_VARIABLE changes_status ERROR_QUIET)
    if(status EQUAL 0 AND NOT head STREQUAL "")
      if(NOT changes_status EQUAL 0)
        set(commit "${head} (uncommitted changes unknown)")
      elseif(NOT changes STREQUAL "")
        set(commit "${head} (with uncommitted changes)")
      else()
        set(commit "${head}")
      endif()
    endif()
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
