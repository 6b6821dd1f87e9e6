# `cpack -G DEB` in the build folder: minipuzzle_<version>-1_<arch>.deb (the runtime component:
# binary, configs, docs, README) and minipuzzle-dev_<version>-1_<arch>.deb (libraries, headers,
# CMake package). The binary's Depends come from dpkg-shlibdeps, i.e. the Debian packages of the
# libraries it links directly (LibTorch, PCRE2, utf8proc, the C/C++ runtime); LibTorch's own
# Depends bring the rest (Gloo, a BLAS, ...). OpenBLAS is recommended: the reference BLAS that
# libblas3 provides is several times slower.
set(CPACK_PACKAGE_NAME minipuzzle)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "prune and distill Nemotron-H hybrid Mamba-Transformer checkpoints")
set(CPACK_PACKAGE_DESCRIPTION "minipuzzle scores what matters in a Nemotron-H checkpoint, searches for the architecture \
that fits a deployment budget, prunes the Hugging Face checkpoint to it and recovers its quality by distillation. \
Native C++ on LibTorch.")
if(NOT CPACK_PACKAGE_CONTACT)
  set(CPACK_PACKAGE_CONTACT "minipuzzle maintainers")
endif()
set(CPACK_GENERATOR DEB)
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_COMPONENTS_ALL runtime dev)
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_RELEASE 1)
set(CPACK_DEBIAN_PACKAGE_SECTION science)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)

set(CPACK_DEBIAN_RUNTIME_PACKAGE_NAME minipuzzle)
set(CPACK_DEBIAN_RUNTIME_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_RUNTIME_PACKAGE_RECOMMENDS "libopenblas0-pthread")

# The headers include LibTorch's, fmt's, nlohmann-json's and Eigen's; the package config finds
# PCRE2 and utf8proc through pkg-config.
set(CPACK_DEBIAN_DEV_PACKAGE_NAME minipuzzle-dev)
set(CPACK_DEBIAN_DEV_PACKAGE_SECTION libdevel)
set(CPACK_DEBIAN_DEV_PACKAGE_SHLIBDEPS OFF)
set(CPACK_DEBIAN_DEV_PACKAGE_DEPENDS
    "minipuzzle (= ${PROJECT_VERSION}-1), libtorch-dev, libfmt-dev, nlohmann-json3-dev, libeigen3-dev, libpcre2-dev, libutf8proc-dev, pkg-config")
set(CPACK_COMPONENT_RUNTIME_DESCRIPTION "the minipuzzle command, its configs and documentation")
set(CPACK_COMPONENT_DEV_DESCRIPTION "static libraries, headers and CMake package for C++ programs")
include(CPack)
