# The Debian packages (`make package`, docs/INSTALL.md "What the packages install"): medic-server,
# medic-agent and medic, built by CPack's DEB generator from the install() rules below, one
# component each. Their sources (default configs, systemd units, maintainer scripts, copyright,
# changelog) live in deploy/. Depends: is computed by dpkg-shlibdeps (dpkg-dev) from the
# binaries, plus what the maintainer scripts call. `cpack -G DEB` in the build directory (the
# Makefile's `package` target, and the CTest fixture package.build) writes
# build/packages/<name>_<version>_amd64.deb. Nothing here runs during the regular build.

set(MEDIC_DEPLOY_DIR ${PROJECT_SOURCE_DIR}/deploy)
# cpack (and `make install` in the build directory) packs what the build made without first
# re-checking all ~200 targets (8 s when nothing changed): `make package` builds first, and
# the CTest fixture runs after the build.
set(CMAKE_SKIP_INSTALL_ALL_DEPENDENCY ON)

# The changelog's newest entry must name this version: a version bump without a
# changelog entry (or the reverse) stops the configure step here, not a user's apt.
file(STRINGS ${MEDIC_DEPLOY_DIR}/debian/changelog _medic_changelog_head LIMIT_COUNT 1)
if(NOT _medic_changelog_head MATCHES "^medic \\(${PROJECT_VERSION}\\) ")
  message(FATAL_ERROR "deploy/debian/changelog: the first entry must be for version "
    "${PROJECT_VERSION} (project() in CMakeLists.txt), found: ${_medic_changelog_head}")
endif()
# Compressed as Debian policy wants it: gzip -9, no name or time stamp in the header (-n), so
# that the same source gives the same package. The version has no Debian revision (0.1.0, not
# 0.1.0-1): these are native packages, whose changelog is changelog.gz (policy 12.7, lintian).
file(MAKE_DIRECTORY ${CMAKE_BINARY_DIR}/deploy)
foreach(_src debian/changelog man/medic-server.8 man/medic-agent.8 man/medic.1)
  get_filename_component(_name ${_src} NAME)
  set(_gz ${CMAKE_BINARY_DIR}/deploy/${_name}.gz)
  execute_process(COMMAND gzip -9 -n -c ${MEDIC_DEPLOY_DIR}/${_src}
    OUTPUT_FILE ${_gz} RESULT_VARIABLE _rc)
  if(NOT _rc EQUAL 0)
    message(FATAL_ERROR "gzip of deploy/${_src} failed: ${_rc}")
  endif()
  set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${MEDIC_DEPLOY_DIR}/${_src})
endforeach()
set(_medic_changelog_gz ${CMAKE_BINARY_DIR}/deploy/changelog.gz)

# install() rules, relative to CPACK_PACKAGING_INSTALL_PREFIX (/usr) except the absolute ones
# in /etc and /lib. `cmake --install` follows the same rules.
install(TARGETS medic-server RUNTIME DESTINATION bin COMPONENT server)
install(TARGETS medic-agent RUNTIME DESTINATION bin COMPONENT agent)
install(TARGETS medic RUNTIME DESTINATION bin COMPONENT cli)

install(FILES ${MEDIC_DEPLOY_DIR}/server.yaml DESTINATION /etc/medic COMPONENT server)
# The agent's config may hold an enrolment code: root only.
install(FILES ${MEDIC_DEPLOY_DIR}/agent.yaml DESTINATION /etc/medic
  PERMISSIONS OWNER_READ OWNER_WRITE COMPONENT agent)

install(FILES ${MEDIC_DEPLOY_DIR}/medic-server.service
  DESTINATION /lib/systemd/system COMPONENT server)
install(FILES ${MEDIC_DEPLOY_DIR}/medic-agent.service
  DESTINATION /lib/systemd/system COMPONENT agent)

install(FILES ${CMAKE_BINARY_DIR}/deploy/medic-server.8.gz DESTINATION share/man/man8
  COMPONENT server)
install(FILES ${CMAKE_BINARY_DIR}/deploy/medic-agent.8.gz DESTINATION share/man/man8
  COMPONENT agent)
install(FILES ${CMAKE_BINARY_DIR}/deploy/medic.1.gz DESTINATION share/man/man1 COMPONENT cli)

foreach(_comp server agent cli)
  set(_pkg medic-${_comp})
  if(_comp STREQUAL "cli")
    set(_pkg medic)
  endif()
  install(FILES ${MEDIC_DEPLOY_DIR}/debian/copyright ${_medic_changelog_gz}
    DESTINATION share/doc/${_pkg} COMPONENT ${_comp})
endforeach()
# The two lintian findings the agent has on purpose, each with its reason in the file.
install(FILES ${MEDIC_DEPLOY_DIR}/debian/lintian/medic-agent
  DESTINATION share/lintian/overrides COMPONENT agent)
# Every agent option with its default and an example for each: the reference next to the short
# default config in /etc/medic.
install(FILES ${PROJECT_SOURCE_DIR}/config/agent.yaml
  DESTINATION share/doc/medic-agent/examples COMPONENT agent)

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME medic)
set(CPACK_PACKAGE_VENDOR "medic maintainers")
set(CPACK_PACKAGE_CONTACT "medic maintainers <maintainers@users.noreply.r-seed-4b6fca4c.example>")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_DIRECTORY ${CMAKE_BINARY_DIR}/packages)
set(CPACK_STRIP_FILES ON)  # the build keeps its debug info; the packages do not
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_COMPONENTS_ALL server agent cli)
set(CPACK_COMPONENTS_GROUPING IGNORE)  # one package per component
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)  # NAME_VERSION_ARCH.deb
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_SECTION admin)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
# Maintainer scripts 0755 and conffiles 0644 whatever the checkout's modes.
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)

set(CPACK_DEBIAN_SERVER_PACKAGE_NAME medic-server)
set(CPACK_DEBIAN_AGENT_PACKAGE_NAME medic-agent)
set(CPACK_DEBIAN_CLI_PACKAGE_NAME medic)
# postinst: adduser (the system user), deb-systemd-helper (init-system-helpers, priority
# required); dpkg-statoverride is dpkg's own.
set(CPACK_DEBIAN_SERVER_PACKAGE_DEPENDS "adduser")
set(CPACK_DEBIAN_SERVER_PACKAGE_RECOMMENDS "medic")
set(CPACK_DEBIAN_AGENT_PACKAGE_SUGGESTS "medic")
set(CPACK_DEBIAN_CLI_PACKAGE_SUGGESTS "medic-server, medic-agent, nginx")

set(CPACK_DEBIAN_SERVER_DESCRIPTION "self-healing infrastructure: control plane
medic raises alarms from the metrics and health checks its agents report,
opens incidents, has the host run diagnostics, proposes a fix (from a runbook
or an AI provider), runs it at once or after an operator's approval, and
verifies that the alarm cleared.
.
This package holds medic-server (operator API, web dashboard, SQLite or
PostgreSQL store), its systemd unit and a default /etc/medic/server.yaml; it
runs as the system user medic.")
set(CPACK_DEBIAN_AGENT_DESCRIPTION "self-healing infrastructure: host agent
medic-agent measures a host's disk, memory and service health, reports to
medic-server and runs the diagnostics and fixes the server sends, within a
local policy the server cannot change (actions, services and paths it allows).
.
This package holds medic-agent, its systemd unit (running as root: it restarts
services, truncates logs and signals processes) and /etc/medic/agent.yaml,
which names no server yet.")
set(CPACK_DEBIAN_CLI_DESCRIPTION "self-healing infrastructure: command-line client
medic lists and approves incidents, hosts, alarms and tokens of a
medic-server, runs chaos experiments, serves MCP for coding assistants and
starts a local demo fleet (medic demo).")

set(_control ${MEDIC_DEPLOY_DIR}/debian)
set(CPACK_DEBIAN_SERVER_PACKAGE_CONTROL_EXTRA
  "${_control}/medic-server/conffiles;${_control}/medic-server/postinst;${_control}/medic-server/prerm;${_control}/medic-server/postrm")
set(CPACK_DEBIAN_AGENT_PACKAGE_CONTROL_EXTRA
  "${_control}/medic-agent/conffiles;${_control}/medic-agent/postinst;${_control}/medic-agent/prerm;${_control}/medic-agent/postrm")

include(CPack)
