# Writes the source of `minipuzzle --version` (cli/main.cpp) at every build, but touches the file
# only when its text changes, so a new commit recompiles that one file and relinks the binary.
# Inputs (-D): SOURCE_DIR, OUTPUT, TEMPLATE, MP_VERSION, MP_TORCH_CUDA, MP_CUDA_KERNELS.
# The commit is `git rev-parse --short HEAD`, with "-dirty" when tracked files differ from it or
# files git does not ignore are untracked; "unknown" outside a git checkout or without git.
set(MP_COMMIT "unknown")
find_program(_mp_git git)
if(_mp_git)
  execute_process(COMMAND ${_mp_git} -C "${SOURCE_DIR}" rev-parse --short HEAD
                  OUTPUT_VARIABLE _mp_head OUTPUT_STRIP_TRAILING_WHITESPACE
                  RESULT_VARIABLE _mp_rc ERROR_QUIET)
  if(_mp_rc EQUAL 0 AND _mp_head MATCHES "^[0-9a-f]+$")
    set(MP_COMMIT "${_mp_head}")
    execute_process(COMMAND ${_mp_git} -C "${SOURCE_DIR}" --no-optional-locks status --porcelain
                    OUTPUT_VARIABLE _mp_status RESULT_VARIABLE _mp_rc ERROR_QUIET)
    if(NOT _mp_rc EQUAL 0 OR NOT _mp_status STREQUAL "")
      string(APPEND MP_COMMIT "-dirty")
    endif()
  endif()
endif()
if(MP_TORCH_CUDA)
  if(MP_CUDA_KERNELS)
    set(MP_CUDA_TEXT "yes (LibTorch with CUDA, minipuzzle's CUDA kernels)")
  else()
    set(MP_CUDA_TEXT "yes (LibTorch with CUDA; minipuzzle's CUDA kernels not compiled)")
  endif()
else()
  set(MP_CUDA_TEXT "no")
endif()
configure_file("${TEMPLATE}" "${OUTPUT}" @ONLY)  # leaves the file alone when its text is the same
