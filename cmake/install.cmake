# `make install` (Makefile: PREFIX, DESTDIR) and `cmake --install <build> [--prefix P]`: every
# install rule of FerryMQ is here (docs/OPERATIONS.md, "Installing").
#
#   <prefix>/bin/                     mqnamesrv mqbroker mqcontroller mqadmin mqbench ferrymq
#   <prefix>/lib/libferry.a           libferry, the C client, as one archive (its parts merged)
#   <prefix>/lib/pkgconfig/ferry.pc   pkg-config --static --cflags --libs ferry
#   <prefix>/include/ferry/           its public header(s)
#   <prefix>/share/ferrymq/conf/      the sample configs (conf/*.conf); the units read
#                                     FERRY_CONF_DIR (/etc/ferrymq), which `make install` never
#                                     writes, so an upgrade never overwrites an edited config
#   <prefix>/lib/systemd/system/      the systemd units (dist/systemd/*.in), ExecStart naming
#                                     <prefix>/bin, substituted when installing (so --prefix counts)
#   <prefix>/lib/sysusers.d/ferrymq.conf  the ferrymq system user (systemd-sysusers)
#   <prefix>/share/doc/ferrymq/       README.md, docs/*.md, examples/*.c
include(GNUInstallDirs)

set(FERRY_CONF_DIR "/etc/ferrymq" CACHE PATH
    "Directory of the config files the installed systemd units read (-c)")
set(FERRY_SYSTEMD_UNIT_DIR "lib/systemd/system" CACHE STRING
    "Where the systemd units go, relative to the install prefix")

# ---- binaries -------------------------------------------------------------------------------
set(_ferry_bins)
foreach(t mqnamesrv mqbroker mqcontroller mqadmin mqbench ferrymq)
  if(TARGET ${t})
    list(APPEND _ferry_bins ${t})
  endif()
endforeach()
install(TARGETS ${_ferry_bins} RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})

# ---- libferry: one static archive of the client and the libraries it is built on -----------
if(TARGET ferry_client)
  set(_ferry_parts ferry_client ferry_remoting ferry_store ferry_common)
  set(_ferry_lib ${CMAKE_BINARY_DIR}/libferry.a)
  set(_mri "CREATE ${_ferry_lib}\n")
  foreach(p ${_ferry_parts})
    string(APPEND _mri "ADDLIB $<TARGET_FILE:${p}>\n")
  endforeach()
  string(APPEND _mri "SAVE\nEND\n")
  file(GENERATE OUTPUT ${CMAKE_BINARY_DIR}/libferry.mri CONTENT "${_mri}")
  add_custom_command(
    OUTPUT ${_ferry_lib}
    COMMAND ${CMAKE_COMMAND} -E rm -f ${_ferry_lib}
    COMMAND sh -c "\"${CMAKE_AR}\" -M < \"${CMAKE_BINARY_DIR}/libferry.mri\""
    DEPENDS ${_ferry_parts} ${CMAKE_BINARY_DIR}/libferry.mri
    COMMENT "Merging libferry.a (${_ferry_parts})"
    VERBATIM)
  add_custom_target(libferry ALL DEPENDS ${_ferry_lib})
  install(FILES ${_ferry_lib} DESTINATION ${CMAKE_INSTALL_LIBDIR})
  install(DIRECTORY ${CMAKE_SOURCE_DIR}/include/ferry DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}
          FILES_MATCHING PATTERN "*.h")
  # ferry.pc finds its prefix from its own place (${pcfiledir}), so it holds for any --prefix.
  file(RELATIVE_PATH FERRY_PC_TO_PREFIX
       /prefix/${CMAKE_INSTALL_LIBDIR}/pkgconfig /prefix)
  string(REGEX REPLACE "/$" "" FERRY_PC_TO_PREFIX "${FERRY_PC_TO_PREFIX}")
  if(PROJECT_VERSION)
    set(FERRY_PC_VERSION ${PROJECT_VERSION})
  else()
    set(FERRY_PC_VERSION 0.0.0) # project() names no version yet
  endif()
  set(FERRY_PC_SANITIZE "") # a sanitizer build's objects need the sanitizer runtimes
  if(FERRY_SANITIZE)
    set(FERRY_PC_SANITIZE " -fsanitize=address,undefined")
  endif()
  configure_file(${CMAKE_SOURCE_DIR}/dist/ferry.pc.in ${CMAKE_BINARY_DIR}/ferry.pc @ONLY)
  install(FILES ${CMAKE_BINARY_DIR}/ferry.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
endif()

# ---- sample configs and docs -----------------------------------------------------------------
file(GLOB _ferry_confs CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/conf/*.conf ${CMAKE_SOURCE_DIR}/conf/*.yml)
install(FILES ${_ferry_confs} DESTINATION ${CMAKE_INSTALL_DATADIR}/ferrymq/conf)
file(GLOB _ferry_docs CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/docs/*.md)
install(FILES ${CMAKE_SOURCE_DIR}/README.md ${_ferry_docs} DESTINATION ${CMAKE_INSTALL_DOCDIR})
file(GLOB _ferry_examples CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/examples/*.c
     ${CMAKE_SOURCE_DIR}/examples/*.h)
install(FILES ${_ferry_examples} DESTINATION ${CMAKE_INSTALL_DOCDIR}/examples)

# ---- systemd units -----------------------------------------------------------------------------
# Configured when installing, not when building: ExecStart must name the prefix actually
# installed to (cmake --install --prefix P), never the DESTDIR staging root.
file(GLOB _ferry_units CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/dist/systemd/*.service.in)
set(_ferry_unit_out)
foreach(in ${_ferry_units})
  get_filename_component(name ${in} NAME)
  string(REGEX REPLACE "\\.in$" "" name ${name})
  list(APPEND _ferry_unit_out ${CMAKE_BINARY_DIR}/dist/systemd/${name})
endforeach()
foreach(v BINDIR DATADIR DOCDIR)
  if(IS_ABSOLUTE "${CMAKE_INSTALL_${v}}")
    set(_ferry_${v} "${CMAKE_INSTALL_${v}}")
  else()
    set(_ferry_${v} "\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_${v}}")
  endif()
endforeach()
install(CODE "
  set(FERRY_BINDIR \"${_ferry_BINDIR}\")
  set(FERRY_SAMPLE_DIR \"${_ferry_DATADIR}/ferrymq/conf\")
  set(FERRY_DOC_DIR \"${_ferry_DOCDIR}\")
  set(FERRY_CONF_DIR \"${FERRY_CONF_DIR}\")
  foreach(in ${_ferry_units})
    get_filename_component(name \${in} NAME)
    string(REGEX REPLACE \"\\\\.in$\" \"\" name \${name})
    configure_file(\${in} \"${CMAKE_BINARY_DIR}/dist/systemd/\${name}\" @ONLY)
  endforeach()
")
install(FILES ${_ferry_unit_out} DESTINATION ${FERRY_SYSTEMD_UNIT_DIR})
install(FILES ${CMAKE_SOURCE_DIR}/dist/systemd/ferrymq-sysusers.conf
        DESTINATION lib/sysusers.d RENAME ferrymq.conf)
