# shellcheck shell=bash
# What the launch scripts share; each sources this file after setting PROG.
# It sets the scripts' DRY_RUN and MAIN_ARGS, which shellcheck cannot see used here.
# shellcheck disable=SC2034

die_usage() {
  printf '%s: %s\n' "$PROG" "$1" >&2
  printf 'Run %s --help for usage.\n' "$PROG" >&2
  exit 2
}

# Prints one word so that a shell reads it back as it is (plain words stay plain).
quote() {
  local s=$1
  if [[ $s =~ ^[A-Za-z0-9_@%+=:,./-]+$ ]]; then
    printf '%s' "$s"
  elif [[ $s =~ ^(--[A-Za-z0-9_.-]+=)(.*)$ ]]; then
    local flag=${BASH_REMATCH[1]} value=${BASH_REMATCH[2]}
    printf '%s' "$flag"
    quote "$value"
  else
    printf "'%s'" "${s//\'/\'\\\'\'}"
  fi
}

# The words quoted and joined with spaces.
quote_words() {
  local out=() word
  for word in "$@"; do
    out+=("$(quote "$word")")
  done
  printf '%s' "${out[*]}"
}

# Whether WORKDIR is a bucket: 0 for gs://BUCKET[/PATH] (every host reaches it, so it is
# shared storage; the trainer writes to it through Orbax and gcsfs), 1 for a path. Any other
# URL (another scheme, or no bucket) is a usage error.
is_bucket_workdir() {
  case $WORKDIR in
    gs://?*) return 0 ;;
    *://*)
      die_usage "WORKDIR=$WORKDIR: a URL workdir must be gs://BUCKET/PATH (other storage: mount\
 it on every host and pass the mounted path)"
      ;;
  esac
  return 1
}

# Parses the command line into the calling script's settings: -h/--help, --dry-run, the
# script's switches (its set_switch returns 0 for a flag it takes without a value),
# --flag VALUE and --flag=VALUE (its set_option), other words (its set_word) and, after --,
# the flags for avrl_jax.main (MAIN_ARGS).
parse_args() {
  local arg
  while [ $# -gt 0 ]; do
    arg=$1
    shift
    case $arg in
      -h | --help)
        usage
        exit 0
        ;;
      --dry-run) DRY_RUN=1 ;;
      --)
        MAIN_ARGS=("$@")
        return
        ;;
      --*=*) set_option "${arg%%=*}" "${arg#*=}" ;;
      --*)
        if set_switch "$arg"; then
          continue
        fi
        [ $# -ge 1 ] || die_usage "$arg needs a value"
        set_option "$arg" "$1"
        shift
        ;;
      *) set_word "$arg" ;;
    esac
  done
}

# The defaults of parse_args's hooks: no switches, no words.
set_switch() {
  return 1
}

set_word() {
  die_usage "unexpected argument: $1 (flags for avrl_jax.main go after --)"
}
