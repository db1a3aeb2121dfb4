swprof_e2e(flamegraph test_flamegraph.py PYTHONS pyenv-3.11 debian-3.11 LOAD pyenv-3.11)
