# bash completion for swprof: subcommands, each one's options, the values of options that take a
# fixed set, snapshot files (*.swp) where a snapshot is expected, and the command after `record --`
# or `top --`.
# Installed as share/bash-completion/completions/swprof; works without the bash-completion package.
# tests/e2e/test_install.py checks these lists against `swprof SUBCOMMAND --help`.

_swprof_options() {
  case $1 in
    record) echo "-h --help -o --output -p --pid -i --interval -d --duration --entry --min-duration --max-segments --max-parallel --max-depth --tasks --native --subprocesses --realtime --idle --no-idle --gil -q --quiet" ;;
    analyze) echo "-h --help -f --format --min-percent --segments --color --no-color --show-importlib --mode --estimator --lines --thread --process --by-thread --by-process --by-greenlet --by-task --flat --segment --slowest --full-stack" ;;
    flamegraph) echo "-h --help -o --output --title --inverted --min-width --show-importlib --mode --estimator --lines --thread --process --by-thread --by-process --by-greenlet --by-task --segment --slowest --full-stack --diff --per-segment" ;;
    export) echo "-h --help -f --format -o --output --mode --lines --thread --process --segment --slowest --full-stack --segments --task-id" ;;
    import) echo "-h --help --from -o --output" ;;
    diff) echo "-h --help -f --format --mode --per-segment --lines --full-stack --limit" ;;
    dump) echo "-h --help -p --pid --locals -f --format" ;;
    top) echo "-h --help -p --pid -i --interval -o --output --refresh -d --duration --lines --idle --rows --plain" ;;
  esac
}

# COMPREPLY from compgen, split at newlines only: file names with spaces stay whole. (No process
# substitution: it needs /dev/fd, which a chroot without /proc lacks.)
_swprof_reply() {
  local found IFS=$' \t\n'  # compgen -W splits its word list with IFS
  found=$(compgen "$@")
  IFS=$'\n'
  local -
  set -f  # a file name with * or ? is a name, not a pattern
  COMPREPLY=($found)
}

# Snapshot files and directories to look in.
_swprof_snapshots() {
  local found IFS=$'\n'
  found=$(compgen -f -X '!*.swp' -- "$cur"; compgen -d -- "$cur")
  local -
  set -f
  COMPREPLY=($found)
}

_swprof() {
  local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD - 1]}
  local sub="" i
  COMPREPLY=()
  for ((i = 1; i < COMP_CWORD; i++)); do
    if [[ ${COMP_WORDS[i]} == -- && ($sub == record || $sub == top) ]]; then
      # The program to profile: a command first, then its arguments (files).
      if ((COMP_CWORD == i + 1)); then
        _swprof_reply -c -- "$cur"
      else
        _swprof_reply -f -- "$cur"
      fi
      return
    fi
    if [[ -z $sub && ${COMP_WORDS[i]} != -* ]]; then
      sub=${COMP_WORDS[i]}
    fi
  done

  if [[ -z $sub ]]; then
    _swprof_reply -W "record analyze flamegraph export import diff dump top -h --help --version" -- "$cur"
    return
  fi

  # Values of the option just typed.
  case $prev in
    -f | --format)
      case $sub in
        analyze) _swprof_reply -W "text json collapsed" -- "$cur" ;;
        export) _swprof_reply -W "pprof speedscope chrome skywalking collapsed" -- "$cur" ;;
        diff | dump) _swprof_reply -W "text json" -- "$cur" ;;
      esac
      return ;;
    --mode) _swprof_reply -W "wall cpu offcpu" -- "$cur"; return ;;
    --estimator) _swprof_reply -W "default skywalking" -- "$cur"; return ;;
    --from) _swprof_reply -W "skywalking" -- "$cur"; return ;;
    -p | --pid) _swprof_reply -W "$(command ps -eo pid= 2>/dev/null)" -- "$cur"; return ;;
    -o | --output) _swprof_reply -f -- "$cur"; return ;;
    --diff) _swprof_snapshots; return ;;
    -i | --interval | -d | --duration | --min-duration | --entry | --max-segments | --max-parallel | --max-depth | --min-percent | \
      --thread | --segment | --slowest | --title | --min-width | --task-id | --limit | --refresh | --rows)
      return ;;  # a value of the user's own
  esac

  if [[ $cur == -* ]]; then
    _swprof_reply -W "$(_swprof_options "$sub") $([[ $sub == record || $sub == top ]] && echo --)" -- "$cur"
  elif [[ $sub == import ]]; then
    _swprof_reply -f -- "$cur"
  elif [[ $sub != record && $sub != top && $sub != dump ]]; then
    _swprof_snapshots
  fi
}

complete -o filenames -F _swprof swprof
