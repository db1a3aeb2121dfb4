# End-to-end tests: one ctest per interpreter (see swprof_e2e in ../CMakeLists.txt). SANITIZE and
# LOAD name the interpreters whose run is also in the sanitizer step and the busy-machine step
# of tests/run.sh: one or two per frame model, the tests that exercise the most code.
swprof_e2e(nested_sleeps test_nested_sleeps.py LOAD pyenv-3.8 pyenv-3.12)
swprof_e2e(seed_server test_seed_server.py LOAD pyenv-3.11)
swprof_e2e(threads test_threads.py SANITIZE pyenv-3.12 LOAD pyenv-3.10)
swprof_e2e(attach test_attach.py SANITIZE pyenv-3.9)
swprof_e2e(kill9 test_kill9.py PYTHONS pyenv-3.11 debian-3.11 SANITIZE pyenv-3.11)
swprof_e2e(bad_input test_bad_input.py PYTHONS pyenv-3.11 SANITIZE pyenv-3.11)
if(EXISTS ${CMAKE_CURRENT_LIST_DIR}/flamegraph.cmake)
  include(${CMAKE_CURRENT_LIST_DIR}/flamegraph.cmake)
endif()
swprof_e2e(launch test_launch.py PYTHONS pyenv-3.11 debian-3.11 pyenv-3.8 SANITIZE pyenv-3.8)
swprof_e2e(known_stacks test_known_stacks.py SANITIZE pyenv-3.10 pyenv-3.11 sid-3.14 LOAD pyenv-3.13 debian-3.11)
swprof_e2e(quiet_threads test_quiet_threads.py SANITIZE pyenv-3.12 LOAD pyenv-3.11 sid-3.15)
swprof_e2e(gil_quiet test_gil_quiet.py SANITIZE pyenv-3.11 LOAD pyenv-3.8 pyenv-3.12 sid-3.15)
swprof_e2e(discovery test_discovery.py SANITIZE debian-3.11)
swprof_e2e(stress test_stress.py TIMEOUT 200)
add_test(NAME "e2e: unsupported versions 2.7 3.6 3.7"
         COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_LIST_DIR}/test_unsupported.py --swprof $<TARGET_FILE:swprof>)
set_tests_properties("e2e: unsupported versions 2.7 3.6 3.7" PROPERTIES SKIP_RETURN_CODE 77 LABELS "e2e;sanitize")
swprof_e2e(segments test_segments.py TIMEOUT 300 SANITIZE pyenv-3.12 LOAD pyenv-3.11)
swprof_e2e(skywalking test_skywalking.py PYTHONS pyenv-3.11 pyenv-3.9 SANITIZE pyenv-3.11)
swprof_e2e(cpu_gil test_cpu_gil.py SANITIZE pyenv-3.13
           LOAD pyenv-3.8 pyenv-3.9 pyenv-3.10 pyenv-3.11 pyenv-3.12 pyenv-3.13 debian-3.11 sid-3.14 sid-3.15)
swprof_e2e(gevent test_gevent.py PYTHONS debian-3.11 SANITIZE debian-3.11 LOAD debian-3.11)
swprof_e2e(hostile_files test_hostile_files.py PYTHONS pyenv-3.11 SANITIZE pyenv-3.11)
swprof_e2e(hostile_names test_hostile_names.py PYTHONS pyenv-3.8 pyenv-3.11 pyenv-3.13 sid-3.14
           SANITIZE pyenv-3.8 sid-3.14)
swprof_e2e(full_disk test_full_disk.py PYTHONS pyenv-3.11 SANITIZE pyenv-3.11)
# Exports opened by their consumers: go tool pprof, speedscope's schema and app (npm, headless
# Chromium), the Trace Event format's rules and speedscope's importer of it.
swprof_e2e(export_pprof test_export_pprof.py PYTHONS pyenv-3.11 pyenv-3.9)
swprof_e2e(export_speedscope test_export_speedscope.py PYTHONS pyenv-3.11)
swprof_e2e(export_chrome test_export_chrome.py PYTHONS pyenv-3.11 debian-3.11)
swprof_e2e(diff test_diff.py PYTHONS pyenv-3.11 pyenv-3.8)
swprof_e2e(export_names test_export_names.py PYTHONS pyenv-3.11 pyenv-3.8)
swprof_e2e(greenlet_switches test_greenlet_switches.py PYTHONS debian-3.11 sid-3.14
           ARGS --tool $<TARGET_FILE:swprof_greenlet_trace>)
swprof_e2e(containers test_containers.py)
swprof_e2e(threaded_server test_threaded_server.py TIMEOUT 300)
swprof_e2e(asyncio_tasks test_asyncio_tasks.py ARGS --tool $<TARGET_FILE:swprof_asyncio_tasks>)
swprof_e2e(torn test_torn.py)
swprof_e2e(deep_stacks test_deep_stacks.py)
swprof_e2e(waiting_requests test_waiting_requests.py TIMEOUT 300)
swprof_e2e(entry_dropped test_entry_dropped.py)
swprof_e2e(recorder_stall test_recorder_stall.py SANITIZE pyenv-3.11 LOAD pyenv-3.12)
swprof_e2e(tasks_view test_tasks_view.py)
# swprof dump and top: a live process looked at now.
swprof_e2e(dump test_dump.py LOAD pyenv-3.8 pyenv-3.12)
swprof_e2e(dump_greenlets test_dump_greenlets.py PYTHONS debian-3.11 sid-3.14)
swprof_e2e(gc_walk test_gc_walk.py ARGS --tool $<TARGET_FILE:swprof_gc_objects>)
swprof_e2e(top test_top.py LOAD pyenv-3.11)
# Native frames merged with Python frames (tests/tools/native_stacks.cpp): a C extension's call
# chain on every interpreter, numpy's BLAS frames (Debian's python3-numpy), and threads that
# cannot be stopped or whose observer is killed.
swprof_e2e(native_chain test_native_frames.py ARGS --tool $<TARGET_FILE:swprof_native_stacks> --part chain)
swprof_e2e(native_places test_native_frames.py PYTHONS pyenv-3.11 sid-3.14
           ARGS --tool $<TARGET_FILE:swprof_native_stacks> --part places)
swprof_e2e(native_numpy test_native_frames.py PYTHONS debian-3.11 ARGS --tool $<TARGET_FILE:swprof_native_stacks> --part numpy)
swprof_e2e(native_faults test_native_frames.py PYTHONS pyenv-3.11 sid-3.14
           ARGS --tool $<TARGET_FILE:swprof_native_stacks> --part faults)
# The same, recorded: record --native, launched and attached, read back by analyze.
swprof_e2e(record_native test_record_native.py PYTHONS pyenv-3.11 debian-3.11 sid-3.14 pyenv-3.8 SANITIZE pyenv-3.11
           ARGS --part chain)
swprof_e2e(record_native_numpy test_record_native.py PYTHONS debian-3.11 ARGS --part numpy)
swprof_e2e(record_native_unstoppable test_record_native.py PYTHONS pyenv-3.11 sid-3.14 SANITIZE pyenv-3.11
           ARGS --part unstoppable)
swprof_e2e(record_native_refused test_record_native.py PYTHONS pyenv-3.11 ARGS --part refused)
# record --subprocesses: multiprocessing's three start methods and a pre-fork server (gunicorn).
swprof_e2e(subprocesses test_subprocesses.py PYTHONS pyenv-3.8 pyenv-3.11 pyenv-3.13 debian-3.11 sid-3.14 sid-3.15
           SANITIZE pyenv-3.11 LOAD pyenv-3.13 ARGS --part pool TIMEOUT 300)
swprof_e2e(subprocesses_gunicorn test_subprocesses.py PYTHONS debian-3.11 SANITIZE debian-3.11 ARGS --part gunicorn)
swprof_e2e(subprocesses_mixed test_subprocesses.py PYTHONS pyenv-3.11 sid-3.14 ARGS --part mixed)
# Off-CPU reasons: threads waiting on known sockets, locks, sleeps, pipes, select and epoll; the
# reader alone (tests/tools/offcpu_reasons.cpp), interpreter-independent, so on three that wait
# differently; and recorded by swprof, shown under <off-CPU: ...> leaves, with a spinner's
# off-CPU time all <waiting for a CPU> (also under load).
swprof_e2e(offcpu_reasons test_offcpu_reasons.py PYTHONS pyenv-3.8 pyenv-3.11 sid-3.14
           ARGS --tool $<TARGET_FILE:swprof_offcpu_reasons> --part reader)
swprof_e2e(offcpu_recorded test_offcpu_reasons.py PYTHONS pyenv-3.8 pyenv-3.10 pyenv-3.11 pyenv-3.13 debian-3.11 sid-3.14
           LOAD pyenv-3.10 sid-3.14 ARGS --part record)
swprof_e2e(realtime test_realtime.py PYTHONS pyenv-3.11)
# (Its real-time recorder holds a core for a quarter of a second on purpose: nothing beside it.)
set_tests_properties("e2e: realtime [pyenv-3.11]" PROPERTIES RUN_SERIAL TRUE)
swprof_e2e(record_stopped test_record_stopped.py SANITIZE pyenv-3.11 LOAD pyenv-3.12)
